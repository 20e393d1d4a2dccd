"""Stateful domains synthesized from doc-only servers (rule-based, offline).

    astra envs domains --tools tools.jsonl -o domains/

For a doc-only server (tool schemas with output schemas, no implementation) whose tools
have common CRUD shapes, this writes a Python module with one class that implements them
over an in-memory **SQLite** database, plus a ``tools.jsonl`` whose servers call that class
(``CallInfo`` kind ``python``), ready for ``astra graph`` → ``astra tasks generate`` →
``astra envs stateful``.

- **Entities**: every object in an output schema with a string ``<entity>_id`` property is a
  table ``<entity>`` whose columns are that object's properties (scalars typed; arrays and
  objects stored as JSON text); the id is the primary key.
- **Tools**, by the verb their name starts with and their schemas: ``get`` (the id in,
  the record out: a select by id), ``search`` / ``list`` / ``find`` (a list of records out:
  equality filters on parameters that name a column, ``min_`` / ``max_`` bounds, and a
  ``query`` / ``keyword`` parameter matched against the text columns), ``create`` / ``add`` /
  ``book`` / ``place`` / ``register`` (a new record out: an insert with the next id),
  ``update`` / ``set`` / ``change`` / ``edit`` (the id and fields in: an update), ``delete`` /
  ``remove`` / ``cancel`` (a delete, or ``status = 'cancelled'`` when the table has a status).
  Other tools are left out (``unmapped``, counted).
- **Seed rows**: five per table, from the schema's enums and the examples in the
  descriptions (``such as 'R-2041'``), else realistic values for the column's name.
- **Verification**: the generated code runs in the sandbox (:mod:`astra.sandbox`), where a
  probe calls every tool once against the seeded schema (get a seed id, list, create, update,
  delete); the domain is kept only when every tool returns a JSON value without raising.

Rejections (counted per reason): ``not_doc_only``, ``no_entities``, ``no_crud_shape`` (no
read tool and write tool over one entity), ``tool_failed`` (the sandbox probe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.types import CallInfo, Tool, ToolServer

_VERBS = {
    "get": ("get", "fetch", "show", "view", "describe", "read", "lookup"),
    "search": ("search", "list", "find", "browse", "query", "filter"),
    "create": ("create", "add", "book", "place", "register", "new", "make", "open", "post", "submit"),
    "update": ("update", "set", "change", "edit", "modify", "rename"),
    "delete": ("delete", "remove", "cancel", "close", "archive", "drop"),
}
REASONS = ("not_doc_only", "no_entities", "no_crud_shape", "tool_failed")


@dataclass
class Entity:
    name: str
    id_field: str
    columns: dict[str, dict[str, Any]]  # column -> JSON schema
    prefix: str = ""
    ids: list[str] = field(default_factory=list)  # seed ids (the documented examples first)
    names: list[str] = field(default_factory=list)  # seed names / titles (the search examples)


@dataclass
class Mapped:
    tool: Tool
    op: str
    entity: str


@dataclass
class DomainResult:
    server: str
    kept: bool
    reason: str | None = None
    detail: str = ""
    tools: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    path: str | None = None
    checks: dict[str, str] = field(default_factory=dict)


def _objects(schema: Any) -> list[dict[str, Any]]:
    if not isinstance(schema, dict):
        return []
    if schema.get("type") == "array":
        return _objects(schema.get("items"))
    if isinstance(schema.get("properties"), dict):
        return [schema]
    return []


def _id_of(props: dict[str, Any]) -> str | None:
    for k, v in props.items():
        if k.endswith("_id") and isinstance(v, dict) and v.get("type") in ("string", None):
            return k
    return None


def _verb(name: str) -> str | None:
    head = re.split(r"[_\W]|(?<=[a-z])(?=[A-Z])", name)[0].lower()
    for op, words in _VERBS.items():
        if head in words:
            return op
    return None


_EXAMPLE_ID = re.compile(r"'([A-Z][A-Z0-9]*-)(\d+)'")


def _example_ids(server: ToolServer, id_field: str) -> list[tuple[str, str]]:
    """``(prefix, number)`` of the ids the descriptions give as examples (``such as 'R-2041'``)."""
    out: list[tuple[str, str]] = []
    for t in server.tools:
        for p, s in (t.parameters.get("properties") or {}).items():
            if p == id_field or (p.endswith("_ids") and p[:-1] == id_field):
                for m in _EXAMPLE_ID.finditer(str(s.get("description", ""))):
                    if (m.group(1), m.group(2)) not in out:
                        out.append((m.group(1), m.group(2)))
    return out


def _prefix(server: ToolServer, id_field: str) -> str:
    ex = _example_ids(server, id_field)
    return ex[0][0] if ex else id_field[:-3].upper()[:3] + "-"


def _text_examples(server: ToolServer) -> list[str]:
    """Examples of the free-text search parameters (``e.g. 'chickpea curry' or 'salmon'``)."""
    out: list[str] = []
    for t in server.tools:
        for p, s in (t.parameters.get("properties") or {}).items():
            if p in _Q_PARAMS:
                out += [x for x in re.findall(r"'([^']{2,40})'", str(s.get("description", ""))) if x not in out]
    return out


def entities(server: ToolServer) -> dict[str, Entity]:
    out: dict[str, Entity] = {}
    for t in server.tools:
        for obj in _objects(t.output_schema):
            props = obj["properties"]
            idf = _id_of(props)
            if idf is None:
                continue
            name = idf[:-3]
            e = out.get(name)
            if e is None:
                ex = [a + b for a, b in _example_ids(server, idf)]
                prefix = _prefix(server, idf)
                ids = (ex + [f"{prefix}{1001 + i}" for i in range(5)])[:5]
                out[name] = Entity(name, idf, dict(props), prefix, ids, _text_examples(server))
            else:
                for k, v in props.items():
                    e.columns.setdefault(k, v)
    return out


def map_tools(server: ToolServer, ents: dict[str, Entity]) -> tuple[list[Mapped], list[str]]:
    mapped, unmapped = [], []
    for t in server.tools:
        op = _verb(t.name)
        outs = _objects(t.output_schema)
        ent = next((e for e in ents.values() for o in outs if o["properties"].get(e.id_field) is not None
                    and _id_of(o["properties"]) == e.id_field), None)
        params = t.parameters.get("properties") or {}
        is_list = isinstance(t.output_schema, dict) and t.output_schema.get("type") == "array"
        if ent is None or op is None:
            unmapped.append(t.name)
            continue
        if op == "get" and (is_list or ent.id_field not in params):
            op = "search" if is_list else None
        if op == "search" and not is_list:
            op = None
        if op in ("update", "delete") and ent.id_field not in params:
            op = None
        if op is None:
            unmapped.append(t.name)
            continue
        mapped.append(Mapped(t, op, ent.name))
    return mapped, unmapped


def _seed_value(col: str, schema: dict[str, Any], i: int, ent: Entity) -> Any:
    from astra.tasks.plan import description_examples, realistic_values

    if col == ent.id_field:
        return ent.ids[i] if i < len(ent.ids) else f"{ent.prefix}{1001 + i}"
    if col in ("name", "title") and ent.names and schema.get("type") in ("string", None):
        return ent.names[i % len(ent.names)].title() if i < len(ent.names) else f"{col} {i + 1}"
    enum = schema.get("enum")
    if enum:
        return enum[i % len(enum)]
    typ = schema.get("type")
    if typ == "array":
        items = schema.get("items") or {}
        return [_seed_value(col[:-1] if col.endswith("s") else col, items, i, ent)] if items.get(
            "type") != "object" else []
    if typ == "object":
        return {}
    if typ == "boolean":
        return i % 2 == 0
    ex = [x for x in description_examples(schema) if not isinstance(x, bool)]
    real = [x for x in realistic_values(col, str(schema.get("description", ""))) if not isinstance(x, bool)]
    pool = [x for x in ex + real if (typ == "integer" and isinstance(x, int)) or (
        typ == "number" and isinstance(x, int | float)) or (typ in ("string", None) and isinstance(x, str))]
    if pool:
        return pool[i % len(pool)]
    if typ == "integer":
        return 10 + 7 * i
    if typ == "number":
        return round(9.5 + 3.25 * i, 2)
    return f"{col.replace('_', ' ')} {i + 1}"


def _pytype(schema: dict[str, Any]) -> str:
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list",
            "object": "dict"}.get(str(schema.get("type")), "str")


_Q_PARAMS = ("query", "q", "keyword", "keywords", "search", "text", "term")


def _method(m: Mapped, ent: Entity) -> str:
    t = m.tool
    props = t.parameters.get("properties") or {}
    required = set(t.parameters.get("required") or [])
    sig, doc = [], []
    for p, s in props.items():
        if not p.isidentifier():
            continue
        ann = _pytype(s)
        sig.append(f"{p}: {ann}" if p in required else f"{p}: {ann} | None = None")
        doc.append(f"            {p}: {str(s.get('description') or p).strip().splitlines()[0]}")
    sig.sort(key=lambda x: "=" in x)
    desc = (t.description or t.name).strip().replace('"""', "'")
    head = f"    def {t.name}(self, {', '.join(sig)}) -> Any:\n" if sig else f"    def {t.name}(self) -> Any:\n"
    body = [head, f'        """{desc}\n\n        Args:\n' + ("\n".join(doc) or "            (none)") + '\n        """\n']
    args = "{" + ", ".join(f"{p!r}: {p}" for p in props if p.isidentifier()) + "}"
    body.append(f"        return self._{m.op}({ent.name!r}, {args})\n")
    return "".join(body)


_RUNTIME = '''
import json
import sqlite3
from typing import Any

_SCHEMA = {schema}
_SEED = {seed}
_Q_PARAMS = {qparams}


class {cls}:
    """{doc}"""

    name = {name!r}
    domain = {domain!r}

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        for table, spec in _SCHEMA.items():
            cols = ", ".join(f'"{{c}}" {{t}}' + (" PRIMARY KEY" if c == spec["id"] else "")
                             for c, t in spec["columns"].items())
            self._db.execute(f'CREATE TABLE "{{table}}" ({{cols}})')
            for row in _SEED.get(table, []):
                self._insert(table, row)
        self._db.commit()

    def __deepcopy__(self, memo: dict) -> "{cls}":
        other = object.__new__(type(self))
        memo[id(self)] = other
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.deserialize(self._db.serialize())
        other.__dict__.update({{k: v for k, v in self.__dict__.items() if k != "_db"}}, _db=db)
        return other

    # -- storage -------------------------------------------------------------------
    def _insert(self, table: str, row: dict) -> None:
        spec = _SCHEMA[table]
        cols = list(spec["columns"])
        vals = [json.dumps(row.get(c)) if spec["columns"][c] == "JSON" else row.get(c) for c in cols]
        self._db.execute(f'INSERT INTO "{{table}}" VALUES ({{", ".join("?" for _ in cols)}})', vals)

    def _row(self, table: str, values: tuple) -> dict:
        spec = _SCHEMA[table]
        out = {{}}
        for (c, t), v in zip(spec["columns"].items(), values):
            out[c] = json.loads(v) if t == "JSON" and v is not None else (bool(v) if t == "BOOL" and v is not None else v)
        return out

    def _one(self, table: str, key: Any) -> dict:
        spec = _SCHEMA[table]
        cur = self._db.execute(f'SELECT * FROM "{{table}}" WHERE "{{spec["id"]}}" = ?', (str(key).strip(),))
        row = cur.fetchone()
        if row is None:
            known = [r[0] for r in self._db.execute(f'SELECT "{{spec["id"]}}" FROM "{{table}}" LIMIT 5')]
            raise ValueError(f"unknown {{spec['id']}} {{key!r}}; for example: {{', '.join(known)}}")
        return self._row(table, row)

    # -- operations ----------------------------------------------------------------
    def _get(self, table: str, args: dict) -> dict:
        return self._one(table, args[_SCHEMA[table]["id"]])

    def _search(self, table: str, args: dict) -> list:
        spec = _SCHEMA[table]
        rows = [self._row(table, r) for r in self._db.execute(f'SELECT * FROM "{{table}}" ORDER BY rowid')]
        for k, v in args.items():
            if v is None:
                continue
            if k in _Q_PARAMS and isinstance(v, str):
                words = v.lower().split()
                rows = [r for r in rows if all(any(w in str(x).lower() for x in r.values()) for w in words)]
            elif k in spec["columns"]:
                rows = [r for r in rows if r[k] == v or (isinstance(r[k], list) and v in r[k])
                        or (isinstance(v, str) and isinstance(r[k], str) and r[k].lower() == v.lower())]
            elif k.startswith(("max_", "min_")) and any(c.startswith(k[4:]) for c in spec["columns"]):
                col = next(c for c in spec["columns"] if c.startswith(k[4:]))
                rows = [r for r in rows if isinstance(r[col], (int, float))
                        and (r[col] <= v if k.startswith("max_") else r[col] >= v)]
        return rows

    def _create(self, table: str, args: dict) -> dict:
        spec = _SCHEMA[table]
        n = self._db.execute(f'SELECT COUNT(*) FROM "{{table}}"').fetchone()[0]
        while True:
            key = f"{{spec['prefix']}}{{1001 + n}}"
            if self._db.execute(f'SELECT 1 FROM "{{table}}" WHERE "{{spec["id"]}}" = ?', (key,)).fetchone() is None:
                break
            n += 1
        row = {{c: spec["defaults"].get(c) for c in spec["columns"]}}
        row.update({{k: v for k, v in args.items() if k in spec["columns"] and v is not None}})
        lists = [v for v in args.values() if isinstance(v, list)]
        for c in spec["columns"]:
            if (c == "count" or c.endswith("_count")) and row.get(c) is None and lists:
                row[c] = len(lists[0])
        row[spec["id"]] = key
        self._insert(table, row)
        return self._one(table, key)

    def _update(self, table: str, args: dict) -> dict:
        spec = _SCHEMA[table]
        key = args[spec["id"]]
        self._one(table, key)
        sets = {{k: v for k, v in args.items() if k in spec["columns"] and k != spec["id"] and v is not None}}
        if not sets:
            raise ValueError("give at least one field to change")
        for k, v in sets.items():
            val = json.dumps(v) if spec["columns"][k] == "JSON" else v
            self._db.execute(f'UPDATE "{{table}}" SET "{{k}}" = ? WHERE "{{spec["id"]}}" = ?', (val, str(key)))
        return self._one(table, key)

    def _delete(self, table: str, args: dict) -> dict:
        spec = _SCHEMA[table]
        key = args[spec["id"]]
        row = self._one(table, key)
        if "status" in spec["columns"]:
            self._db.execute(f'UPDATE "{{table}}" SET "status" = ? WHERE "{{spec["id"]}}" = ?', ("cancelled", str(key)))
            return self._one(table, key)
        self._db.execute(f'DELETE FROM "{{table}}" WHERE "{{spec["id"]}}" = ?', (str(key),))
        return {{spec["id"]: row[spec["id"]], "deleted": True}}

    # -- tools ---------------------------------------------------------------------
'''

_PROBE = '''

def _astra_probe(plan: list) -> dict:
    """Call every tool once on a fresh instance (the synthesis check, run in the sandbox)."""
    inst = {cls}()
    out = {{}}
    for name, args in plan:
        try:
            value = getattr(inst, name)(**args)
            json.dumps(value)
            out[name] = "ok"
        except Exception as e:
            out[name] = f"{{type(e).__name__}}: {{e}}"[:300]
    return out
'''

_SQL = {"string": "TEXT", "integer": "INTEGER", "number": "REAL", "boolean": "BOOL"}


def _class_name(server: ToolServer) -> str:
    return "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", server.name) if w) + "Domain"


def generate(server: ToolServer) -> tuple[str, list[Mapped], list[str], dict[str, Entity], list[list[Any]]]:
    """``(code, mapped tools, unmapped tool names, entities, probe plan)`` (raises ValueError with a reason)."""
    if server.call.kind != "doc_only":
        raise ValueError("not_doc_only")
    ents = entities(server)
    if not ents:
        raise ValueError("no_entities")
    mapped, unmapped = map_tools(server, ents)
    used = {m.entity for m in mapped}
    if not any(m.op in ("get", "search") for m in mapped) or not any(
            m.op in ("create", "update", "delete") for m in mapped):
        raise ValueError("no_crud_shape")
    schema, seed = {}, {}
    for name in sorted(used):
        e = ents[name]
        cols = {c: ("JSON" if s.get("type") in ("array", "object") else _SQL.get(str(s.get("type")), "TEXT"))
                for c, s in e.columns.items()}
        defaults: dict[str, Any] = {c: ([] if s.get("type") == "array" else {} if s.get("type") == "object" else
                        "active" if c == "status" and not s.get("enum") else
                        (s.get("enum") or [None])[0] if c == "status" else None)
                    for c, s in e.columns.items()}
        schema[name] = {"id": e.id_field, "prefix": e.prefix, "columns": cols, "defaults": defaults}
        seed[name] = [{c: _seed_value(c, s, i, e) for c, s in e.columns.items()} for i in range(5)]
    cls = _class_name(server)
    code = _RUNTIME.format(schema=repr(schema), seed=repr(seed), qparams=repr(_Q_PARAMS), cls=cls,
                           doc=(server.description or server.title or server.name).replace('"""', "'"),
                           name=server.name, domain=server.domain)
    code += "\n".join(_method(m, ents[m.entity]) for m in mapped)
    code += _PROBE.format(cls=cls)
    plan: list[list[Any]] = []
    for m in sorted(mapped, key=lambda m: ["get", "search", "create", "update", "delete"].index(m.op)):
        e = ents[m.entity]
        params = m.tool.parameters.get("properties") or {}
        required = list(m.tool.parameters.get("required") or [])
        args: dict[str, Any] = {}
        for p in required:
            if p == e.id_field:
                args[p] = seed[m.entity][{"get": 0, "update": 1, "delete": 2}.get(m.op, 0)][p]
            elif p.endswith("_ids") and p[:-1] in {x.id_field for x in ents.values()}:
                other = next(x for x in ents.values() if x.id_field == p[:-1])
                args[p] = [seed[other.name][0][other.id_field]] if other.name in seed else []
            else:
                args[p] = _seed_value(p, params.get(p) or {}, 0, e)
        if m.op == "update" and len(args) < 2:
            extra = next((p for p in params if p != e.id_field and p in e.columns), None)
            if extra:
                args[extra] = _seed_value(extra, params[extra], 3, e)
        plan.append([m.tool.name, args])
    return code, mapped, unmapped, ents, plan


async def synthesize_domain(server: ToolServer, out_dir: Path, *, pool: Any = None) -> tuple[DomainResult,
                                                                                           ToolServer | None]:
    from astra.sandbox import default_pool

    res = DomainResult(server=server.name, kept=False)
    try:
        code, mapped, unmapped, ents, plan = generate(server)
    except ValueError as e:
        res.reason = str(e)
        return res, None
    res.unmapped = unmapped
    res.tools = [m.tool.name for m in mapped]
    pool = pool or default_pool()
    r = await pool.acall_function(code, "_astra_probe", {"plan": plan}, timeout=30)
    if not r.ok:
        res.reason, res.detail = "tool_failed", f"the probe did not run: {r.error}"
        return res, None
    res.checks = dict(r.value or {})
    bad = {k: v for k, v in res.checks.items() if v != "ok"}
    if bad or len(res.checks) != len(mapped):
        res.reason, res.detail = "tool_failed", "; ".join(f"{k}: {v}" for k, v in bad.items()) or "a tool was not run"
        return res, None
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{re.sub(r'[^A-Za-z0-9_]+', '_', server.name)}_domain.py"
    tmp = path.with_suffix(".py.tmp")
    tmp.write_text(f'"""Stateful domain synthesized by astra from the doc-only server {server.name!r}."""\n'
                   + code, encoding="utf-8")
    tmp.replace(path)
    res.kept, res.path = True, str(path)
    res.tables = {name: 5 for name in {m.entity for m in mapped}}
    kept_tools = [m.tool for m in mapped]
    new = server.model_copy(update={"tools": kept_tools,
                                    "call": CallInfo(kind="python", target=f"{path.resolve()}:{_class_name(server)}"),
                                    "source": f"astra envs domains ({server.source or server.name})"})
    return res, new


async def synthesize_domains(servers: list[ToolServer], out_dir: Path, *, pool: Any = None) -> tuple[
        list[DomainResult], list[ToolServer]]:
    results, kept = [], []
    for s in servers:
        r, new = await synthesize_domain(s, out_dir, pool=pool)
        results.append(r)
        if new is not None:
            kept.append(new)
    return results, kept


def domains_manifest(results: list[DomainResult]) -> dict[str, Any]:
    from collections import Counter

    return {"servers": len(results), "kept": sum(r.kept for r in results),
            "rejected": dict(Counter(r.reason for r in results if r.reason)),
            "tools_kept": sum(len(r.tools) for r in results if r.kept),
            "tools_unmapped": sum(len(r.unmapped) for r in results),
            "per_server": [{"server": r.server, "kept": r.kept, "reason": r.reason, "detail": r.detail,
                            "tools": r.tools, "unmapped": r.unmapped, "checks": r.checks, "path": r.path}
                           for r in results]}


__all__ = ["REASONS", "DomainResult", "domains_manifest", "entities", "generate", "map_tools", "synthesize_domain",
           "synthesize_domains"]
