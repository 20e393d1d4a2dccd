"""Concrete user values: :class:`ValuePool` holds the candidate values of a server's
parameters -- schema enums / examples / defaults, examples in parameter descriptions, and
for Python servers the implementation's seed data (module-level constants) and the outputs
of parameter-free tools (a probe run on a fresh instance) -- and, where the server has
none, realistic values by what a parameter is (:func:`realistic_values`)."""

from __future__ import annotations

import copy
import datetime as _dt
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from astra.tasks.plan.execute import Executor, error_result, jsonable
from astra.tasks.plan.resolve import is_identifier
from astra.tasks.plan.schema import enum_values, items_schema, json_types
from astra.types import Tool, ToolServer

PERSON_NAMES = ["Maya Chen", "Daniel Brooks", "Aisha Rahman", "Lukas Novak", "Sofia Marino", "Kenji Watanabe",
                "Grace Okoye", "Tomás Herrera", "Emily Carter", "Priya Nair", "Oliver Smith", "Hannah Schultz"]
ADDRESSES = ["14 Alder Lane, Portland, OR 97205", "221 Maple Street, Austin, TX 78701",
             "9 Harbor View Road, Seattle, WA 98101", "580 Pine Avenue, Denver, CO 80202",
             "37 Elm Court, Boston, MA 02116"]
EMAILS = ["maya.chen@example.com", "d.brooks@example.org", "aisha.rahman@example.net"]
TEXTS = {
    "content": ["Agenda: budget review, hiring plan, next steps.", "Reminder: send the weekly status report on Friday.",
                "Notes from today's call: the client approved the revised timeline."],
    "subject": ["Invoice shows the wrong total", "Cannot log in after the update", "Question about my last payment"],
    "description": ["Since this morning the invoice export stops halfway with an error.",
                    "I was charged twice for the same month and need a refund.",
                    "The password reset email never arrives."],
    "reason": ["ordered the wrong size", "found a better price elsewhere", "no longer needed"],
    "note": ["Customer confirmed by phone.", "Waiting on the payment processor.", "Follow up next week."],
    "memo": ["March rent top-up", "holiday savings", "emergency fund"],
    "text": ["Thanks for your patience, we are looking into it.", "Could you send a screenshot of the error?",
             "The fix has been deployed; please try again."],
    "message": ["Hello, just checking in on this.", "Please call me back when you can."],
    "title": ["Weekly summary", "Project kickoff notes"],
}
_TEXT_KEYS = {"comment": "text", "body": "text", "details": "description"}

#: Realistic values by what a parameter is (its name and description), for parameters
#: whose server holds no value and documents no example. Checked in order.
_REALISTIC: list[tuple[re.Pattern[str], list[Any]]] = [
    (re.compile(r"time ?zone|\bIANA\b|\btz\b", re.I), ["America/New_York", "Europe/London", "Asia/Tokyo",
                                                        "Europe/Berlin", "Australia/Sydney"]),
    (re.compile(r"currency|ISO 4217", re.I), ["USD", "EUR", "GBP", "JPY"]),
    (re.compile(r"country.?code|ISO 3166|alpha-2", re.I), ["US", "GB", "DE", "JP"]),
    (re.compile(r"\bcountry\b", re.I), ["France", "Japan", "Canada", "Brazil"]),
    (re.compile(r"language.?code|ISO 639|locale", re.I), ["en", "fr", "de", "es"]),
    (re.compile(r"\bIATA\b|airport.?code", re.I), ["JFK", "LAX", "SFO", "ORD", "LHR"]),
    (re.compile(r"ticker|stock.?symbol", re.I), ["AAPL", "MSFT", "NVDA", "AMZN"]),
    (re.compile(r"\bphone|telephone|mobile.?number", re.I), ["+1 415 555 0134", "+44 20 7946 0958"]),
    (re.compile(r"\burl\b|website|web page", re.I), ["https://www.python.org", "https://en.wikipedia.org/wiki/Lisbon"]),
    (re.compile(r"\b(zip|postal|post) ?code|\bzip\b", re.I), ["94105", "10001", "60601"]),
    (re.compile(r"HH:MM|24-hour|\btime of day\b", re.I), ["09:30", "14:45", "18:00"]),
    (re.compile(r"ISO 8601|date.?time|timestamp", re.I), ["2026-03-18T09:30:00", "2026-04-02T15:00:00"]),
    (re.compile(r"\bcity\b|\btown\b", re.I), ["Paris", "Tokyo", "Chicago", "Cape Town", "Lisbon"]),
    (re.compile(r"colou?r", re.I), ["blue", "red", "green"]),
]


_NUMBERS: list[tuple[re.Pattern[str], list[float]]] = [
    (re.compile(r"gallon|liter|litre|fuel|volume", re.I), [10.0, 15.0, 30.0]),
    (re.compile(r"amount|price|cost|fare|balance|fund|deposit|withdraw|payment|budget|salary|total|fee|usd|dollar",
                re.I), [250.0, 120.0, 75.5, 1200.0]),
    (re.compile(r"quantit|count|number of|passengers|guests|people|seats|rooms|nights|days|shares|copies|items|"
                r"servings|tickets|lines|limit|top", re.I), [2, 3, 5]),
    (re.compile(r"percent|threshold|rate|ratio", re.I), [5.0, 2.5, 10.0]),
    (re.compile(r"distance|mileage|\bkm\b|miles", re.I), [120.0, 45.5, 300.0]),
    (re.compile(r"temperature|celsius|fahrenheit", re.I), [21.0, 18.5, 25.0]),
    (re.compile(r"weight|\bkg\b|pounds", re.I), [2.5, 12.0]),
    (re.compile(r"\bage\b|year", re.I), [2024, 2025, 34]),
    (re.compile(r"\bnumbers?\b|\bvalue\b|\bbase\b|exponent|operand|\b[abxy]\b|dividend|divisor", re.I),
     [12.0, 7.0, 3.5, 9.0, 2.0]),
]


def _numbers_by_meaning(param: str, description: str) -> list[float] | None:
    """Plausible numbers for what a numeric parameter is (an amount of money, a count, a
    percentage ...), or None when its name and description say nothing."""
    words = re.split(r"[_\W]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", param))
    text = " ".join(words) + " " + description
    for pattern, values in _NUMBERS:
        if pattern.search(text):
            return list(values)
    return None


def realistic_values(param: str, description: str = "") -> list[Any]:
    """Realistic values for a parameter by what it is (time zone, currency, city, URL ...),
    or [] when it is nothing this table knows (no type-invented filler)."""
    text = f"{param.replace('_', ' ')} {description}"
    for pattern, values in _REALISTIC:
        if pattern.search(text):
            return list(values)
    return []

QUERYISH = re.compile(r"^(query|q|keywords?|search|search_term|term|terms|search_query)$")
_PERSONISH = re.compile(r"(traveler|traveller|guest|passenger|holder|recipient|person|full|customer|contact)_?name$|"
                        r"^(name|full_name)$")
_THING_NAME = re.compile(r"\b(company|product|file|folder|directory|stock|city|country|item|project|branch|"
                         r"repository|repo|team|group|channel|category|brand|store|shop|hotel|airport|place)\b", re.I)
_EXAMPLE_SPAN = re.compile(r"(?:e\.g\.|such as|for example|for instance|like)\s*(.*?)(?:;|\)|\.(?:\s|$)|, as\b|$)",
                           re.IGNORECASE)
_QUOTED = re.compile(r"'([^']+)'|\"([^\"]+)\"")
_NUMBER = re.compile(r"(?<![\w.-])(-?\d+(?:\.\d+)?)(?![\w-])")
_RANGE = re.compile(r"\((\d+)\s*[-–]\s*(\d+)\)")



def description_examples(schema: dict[str, Any]) -> list[Any]:
    """Example values a parameter's description gives ("e.g. 'Tokyo' or 'Cape Town'",
    "such as 'ACC-1001'", "e.g. 250.0"), typed by the parameter's schema."""
    desc = str(schema.get("description") or "")
    types = json_types(schema)
    out: list[Any] = []
    for m in _EXAMPLE_SPAN.finditer(desc):
        span = m.group(1)
        quoted = [a or b for a, b in _QUOTED.findall(span)]
        if types & {"number", "integer"} and not quoted:
            for n in _NUMBER.findall(span):
                out.append(int(float(n)) if "integer" in types else float(n))
        elif quoted:
            out.extend(quoted)
    for key in ("examples",):
        if isinstance(schema.get(key), list):
            out.extend(schema[key])
    if "example" in schema:
        out.append(schema["example"])
    return out


def _singular(word: str) -> str:
    w = word.lower().strip("_")
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith("ses") or w.endswith("xes"):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float) and not isinstance(v, bool) and v != ""


class ValuePool:
    """Candidate concrete values for a server's parameters (see the module docstring)."""

    def __init__(self, server: ToolServer, factory: Callable[[], Executor] | None = None):
        self.server = server
        self.keyed: dict[str, list[Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.tables: dict[str, list[str]] = {}
        self.today: str | None = None
        #: descriptions of harvested keys (from the output schema of the tool that returned them)
        self.key_desc: dict[str, str] = {}
        #: keys whose values came as a list of scalars (``current_directory_content``)
        self.list_keys: set[str] = set()
        self._matched: dict[tuple[str, str, bool], list[Any]] = {}
        #: values returned during the plan being sampled (a fork's own)
        self.live: dict[str, list[Any]] = {}
        self._scores: dict[tuple[str, str, str, str, bool], float | None] = {}
        #: whether probing a copy of a live executor is cheap enough to do at every step
        self.cheap_copies = True
        if server.call.kind == "python" and server.call.target:
            self._scan_module(server.call.target)
        if factory is not None and server.call.kind == "python":  # MCP tools are never probed
            import time

            t0 = time.perf_counter()
            copy.deepcopy(factory())
            self.cheap_copies = time.perf_counter() - t0 < 0.05
            self._scan_instance(factory)
            self.probe(factory)

    def fork(self) -> ValuePool:
        """A copy to add a plan's live results to (the original is not changed)."""
        other = copy.copy(self)
        other.keyed = dict(self.keyed)  # lists are copied on the fork's first write (_add)
        other._owned = set()
        other.records = list(self.records)
        other.tables = {k: list(v) for k, v in self.tables.items()}
        other.key_desc = dict(self.key_desc)
        other.list_keys = set(self.list_keys)
        other._matched = {}
        other.live = {}
        other._scores = self._scores  # shared: a field/parameter pair scores the same in every fork
        return other

    def absorb(self, tool: Tool, result: Any) -> None:
        """Add what ``tool`` returned during a plan (its values come first for later steps)."""
        self._describe(tool)
        self._recording = True
        try:
            self._walk(jsonable(result))
            if not isinstance(result, dict | list):
                from astra.graph.dataflow import output_fields

                fields = output_fields(tool)
                if fields and fields[0].path == "":
                    self._add(fields[0].name, result)
                    self.key_desc.setdefault(fields[0].name, fields[0].description)
        finally:
            self._recording = False
        self._matched = {}

    def _describe(self, tool: Tool) -> None:
        props = (tool.output_schema or {}).get("properties") if isinstance(tool.output_schema, dict) else None
        for k, sub in (props or {}).items():
            if isinstance(sub, dict) and sub.get("description"):
                self.key_desc.setdefault(k, str(sub["description"]))

    def _scan_instance(self, factory: Callable[[], Executor]) -> None:
        """The implementation's own data: the attributes of a fresh instance (a tau2 toolkit's
        database, a BFCL class's loaded scenario), walked for keyed values and records."""
        try:
            instance = getattr(factory(), "instance", None)
        except Exception:  # no instance data is not an error
            return
        if instance is None:
            return
        for name, value in list(vars(instance).items())[:50]:
            if name.startswith("__"):
                continue
            if hasattr(value, "model_dump"):
                try:
                    value = value.model_dump(mode="json")
                except Exception:
                    continue
            if isinstance(value, dict | list | tuple):
                self._walk(jsonable(value), table=name.strip("_").lower())

    # -- collecting ---------------------------------------------------------------

    _recording = False
    _owned: set[str] | None = None  # a fork's keys whose lists it has copied

    def _add(self, key: str, value: Any) -> None:
        if not _scalar(value):
            return
        key = str(key)
        if self._recording:  # what the plan's own calls returned comes first later
            live = self.live.setdefault(key, [])
            if value not in live and len(live) < 200:
                live.append(value)
        vals = self.keyed.get(key)
        if vals is not None and (value in vals or len(vals) >= 200):
            return
        if self._owned is not None and key not in self._owned:
            vals = list(vals or [])
            self.keyed[key] = vals
            self._owned.add(key)
        elif vals is None:
            vals = self.keyed[key] = []
        vals.append(value)

    def _walk(self, obj: Any, depth: int = 0, table: str | None = None) -> None:
        if depth > 5:
            return
        if isinstance(obj, dict):
            if obj and all(isinstance(k, str) for k in obj) and all(isinstance(v, dict) for v in obj.values()):
                keys = list(obj)
                if table:
                    self.tables.setdefault(_singular(table), []).extend(k for k in keys if k not in
                                                                        self.tables.get(_singular(table), []))
                if all(k.startswith("/") for k in keys):
                    for k in keys:
                        self._add("path", k)
                for v in obj.values():
                    self._walk(v, depth + 1)
                return
            flat = {k: v for k, v in obj.items() if _scalar(v)}
            for sub in obj.values():  # a user's name and address belong to the user
                if isinstance(sub, dict):
                    for k2, v2 in sub.items():
                        if _scalar(v2):
                            flat.setdefault(k2, v2)
            if len(flat) >= 2 and len(self.records) < 2000:
                self.records.append(flat)
            for k, v in obj.items():
                if _scalar(v):
                    self._add(k, v)
                elif isinstance(v, list | tuple) and v and all(_scalar(x) for x in v[:50]):
                    self.list_keys.add(str(k))
                    for x in v[:50]:
                        self._add(k, x)
                elif isinstance(v, dict | list | tuple):
                    self._walk(v, depth + 1, table=k)
        elif isinstance(obj, list | tuple):
            for v in obj[:500]:
                if isinstance(v, dict | list | tuple):
                    self._walk(v, depth + 1)

    def _scan_module(self, target: str) -> None:
        mod_name = target.split(":", 1)[0]
        if mod_name.endswith(".py") or "/" in mod_name:
            return
        try:
            module = importlib.import_module(mod_name)
        except Exception:  # no seed data is not an error
            return
        for name, value in vars(module).items():
            if name.startswith("__"):
                continue
            if isinstance(value, list | tuple | dict):
                self._walk(value, table=name.strip("_").lower())
            elif name.strip("_").upper() in ("TODAY", "NOW") and isinstance(value, str):
                self.today = value[:10]

    def probe(self, factory: Callable[[], Executor]) -> None:
        """Call every tool that needs no argument (and once more with each boolean
        option switched on) on a fresh executor and collect what it returns."""
        for tool in self.server.tools:
            if tool.required:
                continue
            variants: list[dict[str, Any]] = [{}]
            for p, s in tool.properties.items():
                if "boolean" in json_types(s):
                    variants.append({p: True})
            for args in variants:
                try:
                    result = jsonable(factory().call(tool.name, args))
                except Exception:  # a probe that fails teaches nothing
                    continue
                if error_result(result) is None:
                    self.absorb(tool, result)

    # -- answering ----------------------------------------------------------------

    def seed_values(self, param: str) -> list[Any]:
        p = param.lower()
        out: list[Any] = list(self.keyed.get(param, []))
        for key, vals in self.keyed.items():
            if key != param and is_identifier(key) and p.endswith("_" + key.lower()):
                out.extend(vals)
        for table, keys in self.tables.items():
            if p.startswith(table + "_") or p == table:
                out.extend(keys)
        if "array" not in p and p.endswith("s") and not out:
            out.extend(self.keyed.get(p[:-1], []))
        return list(dict.fromkeys(out))

    def matched_values(self, tool: Tool, param: str, *, live_only: bool = False) -> list[Any]:
        """Values harvested under another key that means what ``param`` means, decided by the
        graph's field matcher (names, then meaning): the entries ``ls`` listed for
        ``file_name``, a watchlist's symbols for ``symbol``. Values seen during this plan
        come first."""
        key = (tool.name, param, live_only)
        hit = self._matched.get(key)
        if hit is not None:
            return hit
        from astra.graph.dataflow import (
            EDGE_THRESHOLD,
            OutField,
            field_text,
            match_field,
            param_text,
            prime_embeddings,
        )

        schema = tool.param_schema(param)
        fields = []
        for k, vals in self.keyed.items():
            if k == param or not vals:
                continue
            sample = vals[0]
            types = frozenset({"integer" if isinstance(sample, int) else "number" if isinstance(sample, float)
                               else "string"})
            path = f"{k}[]" if k in self.list_keys else k
            fields.append(OutField(path=path, name=k, types=types, description=self.key_desc.get(k, "")))
        todo = [f for f in fields if (tool.name, param, f.name, f.description, f.path.endswith("[]"))
                not in self._scores]
        if todo:
            prime_embeddings([field_text(f) for f in todo] + [param_text(param, schema)])
        scored: list[tuple[float, str]] = []
        for f in fields:
            sk = (tool.name, param, f.name, f.description, f.path.endswith("[]"))
            if sk not in self._scores:
                m = match_field(f, param, schema, src_tool="", dst_tool=tool.name, server_tools=[])
                self._scores[sk] = m.raw if m is not None and m.score >= EDGE_THRESHOLD else None
            score = self._scores[sk]
            if score is not None:
                scored.append((score, f.name))
        scored.sort(key=lambda x: -x[0])
        out: list[Any] = []
        for _, k in scored:
            out.extend(self.live.get(k, []))
        if not live_only:
            for _, k in scored:
                out.extend(self.keyed.get(k, []))
        out = list(dict.fromkeys(out))
        self._matched[key] = out
        return out

    def candidates(self, tool: Tool, param: str, *, fallback: bool = True) -> list[Any]:
        """Candidate values for ``param`` of ``tool``, most trustworthy first. Without
        ``fallback``, only values the server documents or holds (no invented ones)."""
        schema = tool.properties.get(param) or {}
        schema = schema if isinstance(schema, dict) else {}
        types = json_types(schema)
        enum = enum_values(schema)
        if enum:
            return enum
        if "array" in types:
            items = self._scalar_candidates(tool, param, items_schema(schema) | {
                "description": schema.get("description", "")}, json_types(items_schema(schema)), fallback)
            ex = [e for e in description_examples(schema) if isinstance(e, list)]
            if json_types(items_schema(schema)) & {"number", "integer"} and len(items) >= 3:
                return ex + [items[:4], items[1:4]]  # a list of numbers to compute on, not one number
            return ex + [[v] for v in items[:10]]
        return self._scalar_candidates(tool, param, schema, types, fallback)

    def _scalar_candidates(self, tool: Tool, param: str, schema: dict[str, Any], types: set[str],
                           fallback: bool = True) -> list[Any]:
        p = param.lower()
        examples = [e for e in description_examples(schema) if not isinstance(e, list)]
        live = list(self.live.get(param, [])) + self.matched_values(tool, param, live_only=True)
        if live and not enum_values(schema):
            typed_live = self.typed(list(dict.fromkeys(live)), schema, types)
            if typed_live:
                return typed_live  # a value the plan's own earlier calls returned: consistent with them
        seed = self.seed_values(param)
        seed = list(dict.fromkeys(seed + self.matched_values(tool, param)))
        if QUERYISH.match(p):
            names = []
            for key in ("name", "title", "subject", "company"):
                for v in self.keyed.get(key, [])[:40]:
                    if isinstance(v, str):
                        names.append(v)
                        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", v) if len(w) > 2]
                        if len(words) >= 3:
                            names.append(" ".join(words[-2:]).lower())
            vals = examples + seed + names
        elif _PERSONISH.search(p) and not seed and not _THING_NAME.search(str(schema.get("description") or "")):
            vals = examples + PERSON_NAMES
        else:
            vals = examples + seed
        if not vals and schema.get("default") not in (None, "", [], {}):
            vals = [schema["default"]]
        if not vals and fallback:
            vals = self._by_type(p, schema, types)
        return self.typed(vals, schema, types)

    def _by_type(self, p: str, schema: dict[str, Any], types: set[str]) -> list[Any]:
        desc = str(schema.get("description") or "")
        if "boolean" in types:
            return [True]
        if "integer" in types or "number" in types:
            m = _RANGE.search(desc)
            bounded = bool(m) or "minimum" in schema or "maximum" in schema
            lo = int(m.group(1)) if m else int(schema.get("minimum", 1))
            hi = int(m.group(2)) if m else int(schema.get("maximum", 10**9))
            by_meaning = _numbers_by_meaning(p, desc)
            if by_meaning is None and not bounded:
                return []  # a number nothing says anything about: no "1" invented from the type
            vals = by_meaning or ([2, 3, 4, 5] if "integer" in types else [2.0, 3.0, 4.0])
            if "integer" in types:
                return [int(v) for v in vals if float(v).is_integer() and lo <= v <= hi] or \
                    ([v for v in (2, 3, lo) if lo <= v <= hi] if bounded else [])
            return [float(v) for v in vals if lo <= v <= hi] or ([float(lo)] if bounded else [])
        if "birth" in p:
            return ["1988-04-12", "1975-11-03", "1993-07-21"]
        if re.search(r"(^|_)(date|day)(_|$)|_on$", p) or "YYYY-MM-DD" in desc or \
                p in ("check_in", "check_out", "checkin", "checkout"):
            base = _dt.date.fromisoformat(self.today) if self.today else _dt.date(2026, 3, 10)
            return [(base + _dt.timedelta(days=d)).isoformat() for d in (8, 10, 12, 14)]
        if "email" in p:
            return EMAILS
        if "address" in p:
            return ADDRESSES
        key = _TEXT_KEYS.get(p, p)
        for k, texts in TEXTS.items():
            if key == k or key.endswith("_" + k):
                return texts
        if re.search(r"(^|_)(first|given)_?name$", p):
            return [n.split()[0] for n in PERSON_NAMES]
        if re.search(r"(^|_)(last|family|sur)_?name$", p):
            return [n.split()[-1] for n in PERSON_NAMES]
        if re.search(r"birth", p + " " + desc, re.IGNORECASE):
            return ["1988-04-12", "1975-11-03", "1993-07-21"]
        if (p.endswith("name") or p in ("name", "traveler", "passenger", "guest", "customer")) and re.search(
                r"\b(full name|first and last name|person|passenger|traveller|traveler|customer|guest)\b",
                desc, re.IGNORECASE) and not _THING_NAME.search(desc):
            return PERSON_NAMES
        generated = realistic_values(p, desc)
        if generated:
            return generated
        return []  # nothing real to offer: the caller finds no plan rather than inventing "example"

    @staticmethod
    def typed(vals: Iterable[Any], schema: dict[str, Any], types: set[str]) -> list[Any]:
        desc = str(schema.get("description") or "")
        m = _RANGE.search(desc)
        lo = schema.get("minimum", int(m.group(1)) if m else None)
        hi = schema.get("maximum", int(m.group(2)) if m else None)
        out = []
        for v in vals:
            if types & {"integer", "number"}:
                if isinstance(v, str):
                    try:
                        v = float(v)
                    except ValueError:
                        continue
                if not isinstance(v, int | float) or isinstance(v, bool):
                    continue
                if "integer" in types and "number" not in types:
                    if float(v) != int(v):
                        continue
                    v = int(v)
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    continue
                if isinstance(v, float) and abs(v - round(v, 2)) > 1e-9:
                    v = round(v, 2)  # a person states 31.3, not 31.29968928699752
            elif "string" in types or not types:
                if isinstance(v, bool) or not _scalar(v):
                    continue
                v = str(v)
                if "\n" in v.strip() or len(v) > 160:  # a user types short, single-line values
                    continue
                v = v.strip()
            elif "boolean" in types and not isinstance(v, bool):
                continue
            if v not in out:
                out.append(v)
        return out
