"""The offline generator's query writer: a plan -> a natural user request.

No model: each step's intent is the first sentence of its tool's description, rewritten
with the step's concrete values ("Look up the coordinates and time zone of a city" +
``city=Tokyo`` -> "look up the coordinates and time zone of Tokyo"); values derived from
an earlier step become references ("get the current weather observation at that
location"). Steps are joined with varied connectives, and a closing asks for the final
result's key fields. Tool names never appear: the text comes from descriptions, and a
rendering that still contains an identifier-like tool name is rejected by the caller.

The same module writes the facts the complexity augmentation can add without changing the
tool sequence (conditions that hold in the dry run, the defaults a step uses).
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from astra.tasks.plan.format import Plan, PlanStep
from astra.tasks.plan.resolve import is_identifier
from astra.tasks.plan.schema import enum_values, json_types
from astra.tasks.text import normalize_description
from astra.types import Tool, ToolServer

#: Qualifiers a tool description adds to its object that a user does not say
#: ("a file of any extension from currrent directory" -> "a file").
_QUALIFIERS = re.compile(r"\s+(?:of\s+any\s+(?:extension|kind|type|format)|(?:at|from|in)\s+(?:the\s+)?curr?r?ent\s+"
                         r"(?:working\s+)?directory|in\s+the\s+system|if\s+(?:it\s+is\s+)?(?:not\s+)?"
                         r"(?:provided|given|specified))\b", re.IGNORECASE)

_ROLE_FROM = ("from_", "source_", "src_", "origin")
_ROLE_TO = ("to_", "target_", "dest_", "destination")
_QUERYISH = re.compile(r"^(query|q|keywords?|search|search_term|terms?|search_query)$")
_PERSONISH = re.compile(r"(traveler|traveller|guest|passenger|holder|recipient|person|full|customer|contact)_?name$")
_TEXTISH = {"content": 'saying "{v}"', "text": 'saying "{v}"', "comment": 'saying "{v}"', "body": 'saying "{v}"',
            "message": 'saying "{v}"', "subject": 'with the subject "{v}"',
            "description": 'with the description "{v}"', "reason": 'with the reason "{v}"',
            "note": 'with the note "{v}"', "memo": 'with the memo "{v}"', "title": 'titled "{v}"'}
_UNIT_NOUNS = {"quantity": "unit", "passengers": "passenger", "rooms": "room", "days": "day", "nights": "night",
               "servings": "serving", "guests": "guest", "people": "person", "seats": "seat", "tickets": "ticket",
               "adults": "adult", "children": "child", "hours": "hour", "minutes": "minute", "weeks": "week"}
_NOUN_SYNONYMS = {"path": ["file", "directory", "folder", "document", "path"],
                  "latitude": ["location", "place", "point", "coordinates"],
                  "longitude": ["location", "place", "point", "coordinates"],
                  "lat": ["location", "place"], "lon": ["location", "place"], "lng": ["location", "place"],
                  "destination": ["destination", "airport"], "origin": ["origin", "airport"],
                  "date": ["date", "day"]}
_ENUM_PREP = {"units": "in {v} units", "unit": "in {v} units", "category": "in the {v} category",
              "cuisine": "from {v} cuisine", "diet": "that suit a {v} diet", "cabin": "in {v} class",
              "language": "in {v}", "sort": "sorted by {v}", "sort_by": "sorted by {v}", "order": "in {v} order",
              "shipping_method": "with {v} shipping", "mode": "in {v} mode", "status": "with status {v}",
              "priority": "with {v} priority", "team": "on the {v} team", "direction": "({v} only)",
              "account_type": "(only {v} accounts)", "min_severity": "of at least {v} severity",
              "author": "as the {v}", "country": "in {v}", "currency": "in {v}"}
_ORDINALS = ["first", "second", "third", "fourth", "fifth"]
_FIELD_PRIORITY = ["total", "total_price", "booking_id", "order_id", "ticket_id", "transfer_id", "status",
                   "converted_amount", "rate", "current_balance", "available_balance", "balance", "temperature",
                   "condition", "aqi", "category", "price", "available_quantity", "estimated_delivery",
                   "refund_amount", "content", "size_bytes", "calories_kcal", "factor", "item_count", "days",
                   "high", "low", "shopping_list_id", "line_count", "path", "name", "title"]
_BORING_FIELDS = frozenset("currency units latitude longitude observed_at as_of created_on created updated "
                           "modified timezone country city schema_version".split())


# ---------------------------------------------------------------------------------
# Small formatting helpers
# ---------------------------------------------------------------------------------


def fmt_value(v: Any) -> str:
    """How a value is written in a query (and checked as a mention)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.6f}".rstrip("0").rstrip(".")
    if isinstance(v, list | tuple):
        items = [fmt_value(x) for x in v]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return str(v)


def mention_values(v: Any) -> list[str]:
    if isinstance(v, bool) or v is None:
        return []
    if isinstance(v, list | tuple):
        return [fmt_value(x) for x in v if not isinstance(x, bool) and x is not None]
    return [fmt_value(v)]


_UNIT_SUFFIX = re.compile(r"_(bytes|minutes|hours|seconds|days|km|kph|mph|percent|usd|eur|kcal|mg|g|kg|mm|cm|m)$")


def label(name: str) -> str:
    """``total_price`` -> ``total price``; ``booking_id`` -> ``booking ID``; ``aqi`` -> ``AQI``;
    ``size_bytes`` -> ``size in bytes``."""
    m = _UNIT_SUFFIX.search(name)
    if m and m.start() > 0:
        return f"{label(name[:m.start()])} in {m.group(1)}"
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").split()
    out = []
    for w in words:
        if w.lower() in ("id", "ids"):
            out.append(w.upper() if w.lower() == "id" else "IDs")
        elif len(w) <= 3 and w.isalpha() and w.lower() in ("aqi", "uv", "iban", "pm", "url", "api", "sku"):
            out.append(w.upper())
        else:
            out.append(w.lower())
    return " ".join(out)


def noun_of(param: str) -> str:
    """The thing a parameter names: ``from_account_id`` -> ``account``."""
    p = param.lower()
    for pre in ("from_", "to_", "source_", "target_", "src_", "dest_", "new_", "old_", "min_", "max_"):
        if p.startswith(pre) and len(p) > len(pre) + 1:
            p = p[len(pre):]
            break
    p = re.sub(r"_(id|ids|code|key|uuid|name|number)$", "", p)
    return p.replace("_", " ")


def _plural(word: str, n: Any = 2) -> str:
    if n == 1:
        return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 3 else word
    if word.endswith("s") and not word.endswith("ss"):
        return word  # already plural ("stars")
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word == "person":
        return "people"
    if word == "child":
        return "children"
    return word + "s"


_MEASURE = re.compile(r"price|cost|fare|amount|balance|rating|score|temperature|speed|distance|weight|size|"
                      r"value|rate|percent|level|budget|salary|fee|total")
_NOT_VERBS = frozenset("this these those its his is was has does status address process access class bus "
                       "news series analysis basis lens gas plus".split())


def imperative(text: str) -> str:
    """"Converts the gallon to liter" -> "Convert the gallon to liter"; "Presses the
    pedal" -> "Press the pedal" (a description in the third person made a request)."""
    m = re.match(r"^([A-Za-z]+)(\b.*)$", text, re.S)
    if not m:
        return text
    word, rest = m.group(1), m.group(2)
    w = word.lower()
    if w in _NOT_VERBS or len(w) < 4 or not w.endswith("s") or w.endswith(("ss", "us", "is")):
        return text
    if w.endswith("ies"):
        base = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        base = w[:-2]
    else:
        base = w[:-1]
    if not re.match(r"\s+(?:the|a|an|all|one|two|current|new|your|its|their|each|every|information|details|"
                    r"data|list|[a-z]+s\b)", rest):
        return text  # "Lists" alone, or a noun phrase ("Stocks of a sector")
    base = base.capitalize() if word[0].isupper() else base
    return base + rest


def intent_phrase(tool: Tool) -> str:
    """The tool's job as a lower-case imperative phrase, from its description."""
    desc = normalize_description(tool.description or "")
    first = re.split(r"(?<=[.!?])\s+|\n", desc, maxsplit=1)[0].strip() if desc else ""
    first = _QUALIFIERS.sub("", first)
    first = re.sub(r"\s*\([^)]*\)", "", first).strip().rstrip(".!").strip()
    if ":" in first:
        first = first.split(":", 1)[0].strip()
    first = re.sub(r",?\s+(?:optionally|newest|oldest|most recently|best|sorted|cheapest|ordered by|"
                   r"in (?:descending|ascending) order)\b.*$", "", first)
    first = re.sub(r"\s+matching (?:all|any) (?:of )?(?:the )?given (?:filters|criteria)", "", first)
    first = re.sub(r",\s+[a-z]+ing\b[^,]*$", "", first)  # ", creating missing parent directories"
    first = re.sub(r"\s+by (?:its|their) (?:identifier|id|ID)s?\b", "", first)
    if re.match(r"^Returns?\b", first):
        first = "get " + re.sub(r"^Returns?\s+", "", first)
    first = imperative(first)
    if not first:
        first = "handle the " + label(tool.name) + " step"
    if len(first) > 1 and not first[1].isupper():
        first = first[0].lower() + first[1:]
    return first


# ---------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------


def _nouns(param: str) -> list[str]:
    base = param.lower()
    out = list(_NOUN_SYNONYMS.get(base, []))
    full = label(param).lower()
    if " " in full and not full.endswith((" id", " ids")):
        out.insert(0, full)  # "coupon code" before "coupon"
    n = noun_of(param)
    if n and n not in out:
        out.append(n)
        last = n.split()[-1]
        if last != n:
            out.append(last)
    return out


def _np_regex(noun: str) -> str:
    return (rf"\b(?:a|an|one|the)\s+{re.escape(noun)}"
            rf"(?:\s+or\s+(?:a|an)\s+(?:[a-z]+\s+)?[a-z]+\b|\s+or\s+[a-z]+\b)?\b")


def _replace_np(text: str, nouns: list[str], repl: str) -> tuple[str, bool]:
    """Replace the first "a/an/one/the <noun>" of ``text`` by ``repl`` (``{noun}`` in it
    is the noun that matched)."""
    for adjective in (False, True):
        for noun in nouns:
            pat = _np_regex(noun)
            if adjective:  # "a full recipe"
                pat = pat.replace(r"\s+", r"\s+(?:[a-z]+\s+)?", 1)
            if re.search(pat, text):
                out = repl.replace("{noun}", noun)
                return re.sub(pat, lambda _m, o=out: o, text, count=1), True  # type: ignore[misc]
    return text, False


def _value_phrase(param: str, v: Any, tool: Tool) -> tuple[str, bool]:
    """(phrase, inline): ``inline`` phrases can replace an indefinite noun phrase of the
    intent ("a city" -> "Tokyo"); the others are appended ("with high priority")."""
    p = param.lower()
    schema = tool.properties.get(param) or {}
    types = json_types(schema)
    fv = fmt_value(v)
    if _QUERYISH.match(p):
        return f'"{fv}"', False
    if p in _TEXTISH:
        return _TEXTISH[p].format(v=fv), False
    for key, tpl in _TEXTISH.items():
        if p.endswith("_" + key):
            return tpl.format(v=fv), False
    if _PERSONISH.search(p):
        return f"under the name {fv}", False
    if re.search(r"address_?(line_?)?[2-9]$|(^|_)line_?[2-9]$", p):
        return f"({fv})", False  # the second address line goes with the first
    if "address" in p:
        return f"to {fv}", False
    if "email" in p:
        return f"at {fv}", False
    if p.startswith("min_") and types & {"integer", "number"}:
        noun = noun_of(param)
        if _MEASURE.search(noun) or (isinstance(v, float) and not v.is_integer()):
            return f"with a {noun} of at least {fv}", False
        return f"with at least {fv} {_plural(noun, v)}", False
    if p.startswith("max_") and types & {"integer", "number"}:
        noun = noun_of(param)
        m = re.search(r"\s(minutes|hours|days|seconds|km|kg)$", noun)
        if m:
            return f"with a {noun[:m.start()]} of at most {fv} {m.group(1)}", False
        return f"with a {noun} of at most {fv}", False
    if p in _UNIT_NOUNS:
        return f"for {fv} {_plural(_UNIT_NOUNS[p], v)}", False
    if enum_values(schema) or "boolean" in types:
        if "boolean" in types and not enum_values(schema):
            return (f"with {label(param)} turned on" if v else f"with {label(param)} turned off"), False
        prep = _ENUM_PREP.get(p)
        if prep is None:
            for key, t in _ENUM_PREP.items():
                if p.endswith("_" + key):
                    prep = t
                    break
        return (prep or "with {label} {v}").format(v=fv, label=label(param)), False
    if is_identifier(p) or re.fullmatch(r"[A-Z]{1,5}-\d+", str(v)):
        return f"{noun_of(param)} {fv}", True
    if types & {"integer", "number"}:
        if p in ("amount", "price", "value", "sum", "total"):
            return fv, True
        return f"with {label(param)} {fv}", False
    return fv, True


_FROM_DATE = re.compile(r"(^|_)(start|from|since|pickup|departure|checkin|begin)(_|$)|^check_in$")
_TO_DATE = re.compile(r"(^|_)(end|to|until|return|dropoff|drop|checkout)(_|$)|^check_out$")


def _role(param: str) -> str | None:
    p = param.lower()
    if p.startswith(_ROLE_FROM) or p in ("origin", "start", "since") or ("date" in p and _FROM_DATE.search(p)) \
            or p in ("check_in", "checkin"):
        return "from"
    if p.startswith(_ROLE_TO) or p in ("destination", "end", "until") or ("date" in p and _TO_DATE.search(p)) \
            or p in ("check_out", "checkout"):
        return "to"
    return None


def _pairs(params: list[str]) -> list[tuple[str, str]]:
    """(from, to) parameter pairs: origin/destination, from_x/to_x, check_in/check_out."""
    froms = [p for p in params if _role(p) == "from"]
    tos = [p for p in params if _role(p) == "to"]
    out = []
    for f in froms:
        for t in tos:
            fn, tn = noun_of(f), noun_of(t)
            if fn == tn or {f, t} in ({"origin", "destination"}, {"check_in", "check_out"},
                                     {"checkin", "checkout"}, {"start_date", "end_date"},
                                     {"departure_date", "return_date"}, {"start", "end"}) \
                    or (f.lower().endswith("date") and t.lower().endswith("date")):
                out.append((f, t))
                tos.remove(t)
                break
    return out


def _derived_phrase(step: PlanStep, param: str, plan: Plan, rng: random.Random) -> str:
    ref = step.derived_args[param]
    noun = _nouns(param)[0] if _nouns(param) else "one"
    index = next((k for k in ref.path if isinstance(k, int)), None)
    if "*" in ref.path:
        return f"all of those {_plural(noun)}"
    if index is None:
        return rng.choice([f"that {noun}", f"that {noun}", f"the same {noun}"])
    if index == 0:
        return rng.choice([f"the first {noun}", f"the top {noun}", f"the first {noun} you find"])
    return f"the {_ORDINALS[min(index, len(_ORDINALS) - 1)]} {noun}"


def render_step(tool: Tool, plan: Plan, i: int, rng: random.Random, said: dict[str, Any]
                ) -> tuple[str, list[str]]:
    """One step as a phrase, and the values it states. ``said`` holds the values earlier
    steps already stated (repeats become "the same ...")."""
    step = plan.steps[i]
    text = intent_phrase(tool)
    mentions: list[str] = []
    tail: list[str] = []
    user = dict(step.user_args)
    has_values = bool(user)
    if has_values:
        text = re.sub(r"\s+by\s+[a-z][\w' ,-]*(?:,|\bor\b|\band\b)[\w' ,-]*$", "", text)

    # repeated values: "for the same dates", "in the same cabin"
    repeats = [p for p in user if p in said and said[p] == user[p]]
    for f, t in _pairs(repeats):
        if "date" in f or "check" in f:
            tail.append("for the same dates")
        elif {f.lower(), t.lower()} == {"origin", "destination"}:
            tail.append("on the same route")
        else:
            tail.append(f"with the same {_plural(noun_of(f))}")
        user.pop(f)
        user.pop(t)
        repeats.remove(f)
        repeats.remove(t)
    for p in repeats:
        if p in user:
            text, done = _replace_np(text, _nouns(p), "the same {noun}")
            if done:
                user.pop(p)
                continue
            if p.lower() in _UNIT_NOUNS:
                tail.append(f"for the same number of {_plural(_UNIT_NOUNS[p.lower()])}")
            else:
                tail.append(f"with the same {label(noun_of(p))}")
            user.pop(p)

    # from/to pairs: "between two airports" -> "from JFK to LAX"
    for f, t in _pairs(list(user)):
        phrase = f"from {fmt_value(user[f])} to {fmt_value(user[t])}"
        text, done = _replace_sub(text, r"\bbetween\s+(?:two\s+)?(?:of\s+)?[\w' ]+?(?=\s+(?:on|at|for|in|with)\b|$)",
                                  phrase)
        if not done:
            tail.append(phrase)
        mentions += mention_values(user.pop(f)) + mention_values(user.pop(t))

    # coordinates given by the user: "a location" -> "the location at 47.6062, -122.3321"
    lat = next((p for p in user if p.lower() in ("latitude", "lat")), None)
    lon = next((p for p in user if p.lower() in ("longitude", "lon", "lng")), None)
    if lat and lon:
        phrase = f"the location at {fmt_value(user[lat])}, {fmt_value(user[lon])}"
        text, done = _replace_np(text, ["location", "place", "point"], phrase)
        if not done:
            tail.append(f"at coordinates {fmt_value(user[lat])}, {fmt_value(user[lon])}")
        mentions += mention_values(user.pop(lat)) + mention_values(user.pop(lon))

    for p in list(user):
        v = user.pop(p)
        phrase, inline = _value_phrase(p, v, tool)
        if enum_values(tool.properties.get(p) or {}):
            if re.match(r"^(change|set|update|switch|move|mark)\b", text) and re.search(rf"\b{re.escape(label(p))}\b", text):
                phrase, inline = f"to {fmt_value(v)}", False
            else:  # "close the task with a resolution" -> "... with resolution done"
                text, done = _replace_np(text, [label(p)], f"{label(p)} {fmt_value(v)}")
                if done:
                    mentions += mention_values(v)
                    continue
        mentions += mention_values(v)
        unit = _UNIT_NOUNS.get(p.lower())
        unit_re = rf"\b(?:an?\s+(?:\w+\s+)?number\s+of\s+)?{unit}s\b"
        if unit and re.search(unit_re, text) and not re.search(rf"\d\s+{unit}s\b", text):
            text = re.sub(unit_re, f"{fmt_value(v)} {_plural(unit, v)}", text, count=1)
            continue
        if p.lower() in ("amount", "price", "sum", "value") and re.search(r"\b(?:an amount of |some )?money\b", text):
            text = re.sub(r"\b(?:an amount of |some )?money\b", phrase, text, count=1)
            continue
        if inline:
            text, done = _replace_np(text, _nouns(p), phrase)
            if done:
                continue
            if p.lower() == "amount" and re.search(r"\ban amount\b", text):
                text = re.sub(r"\ban amount\b", phrase, text, count=1)
                continue
            role = _role(p)
            if role:
                phrase = f"{role} {phrase}"
            elif p.lower() in ("city", "location", "place", "region", "area"):
                phrase = rng.choice([f"in {phrase}", f"for {phrase}"])
            elif p.lower() == "date" or p.lower().endswith("_date"):
                phrase = f"on {phrase}"
            elif p.lower() in ("path", "file", "directory", "folder", "url"):
                phrase = phrase
            elif is_identifier(p):
                phrase = f"for {phrase}"
            else:
                phrase = f"with {label(p)} {phrase}"
        elif _QUERYISH.match(p.lower()):
            phrase = rng.choice(["for ", "matching "]) + phrase
        tail.append(phrase)

    # derived values: "a product" -> "the first product"
    pairs = _pairs(list(step.derived_args))
    for f, t in pairs:
        noun = _nouns(f)[0] if _nouns(f) else "one"
        text, _ = _replace_sub(text, rf"\bbetween\s+(?:two\s+)?(?:of\s+)?[\w' ]*?{re.escape(_plural(noun))}\b",
                               f"from the {_ref_ordinal(step, f)} {noun} to the {_ref_ordinal(step, t)} one")
    paired = {p for pr in pairs for p in pr}
    for p in step.derived_args:
        if p in paired:
            continue
        phrase = _derived_phrase(step, p, plan, rng)
        if "*" in step.derived_args[p].path:
            text, done = _replace_sub(text, rf"\b(?:one or more|several|multiple|some|the)\s+{re.escape(_plural(_nouns(p)[-1]))}\b"
                                      if _nouns(p) else r"$^", phrase)
            if not done:
                text, _ = _replace_np(text, [n for n in _nouns(p)], phrase)
        else:
            text, _ = _replace_np(text, _nouns(p), phrase)
    for p, v in step.user_args.items():
        said.setdefault(p, v)
    for p, unit in _UNIT_NOUNS.items():  # "add units of a product" without a quantity
        if p not in step.user_args and p not in step.derived_args:
            text = re.sub(rf"^(\w+) {unit}s of ", r"\1 ", text)
    if tail:
        text = text + " " + " ".join(_join_tail(tail))
    return _tidy(text), mentions


def _ref_ordinal(step: PlanStep, param: str) -> str:
    idx = next((k for k in step.derived_args[param].path if isinstance(k, int)), 0)
    return _ORDINALS[min(int(idx), len(_ORDINALS) - 1)]


def _replace_sub(text: str, pattern: str, repl: str) -> tuple[str, bool]:
    if re.search(pattern, text):
        return re.sub(pattern, lambda _m: repl, text, count=1), True
    return text, False


def _join_tail(tail: list[str]) -> list[str]:
    out = []
    for k, t in enumerate(tail):
        if k and t.startswith("with ") and tail[k - 1].startswith(("with ", "and ")):
            out.append("and " + t[5:])
        elif k and not t.startswith(("(", "with ", "for ", "in ", "on ", "to ", "from ", "under ", "at ", "saying",
                                  "titled", "sorted", "of ", "that ", "as ")):
            out.append("and " + t)
        else:
            out.append(t)
    return out


def _tidy(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:?!])", r"\1", text)
    return text


# ---------------------------------------------------------------------------------
# The whole query
# ---------------------------------------------------------------------------------

_OPENERS = ["", "", "Please ", "Could you ", "Can you ", "I need you to ", "I'd like you to "]
_MIDDLE = ["then", "after that", "next", "and then"]
_LAST = ["and finally", "and after that", "then", "and then", "and once that's done,"]


def result_fields(tool: Tool, step: PlanStep, k: int = 2) -> list[str]:
    """Up to ``k`` interesting top-level fields of a tool's result (not its inputs)."""
    schema = tool.output_schema or {}
    if "array" in json_types(schema):
        return []
    found = schema.get("properties")
    props: dict[str, Any] = found if isinstance(found, dict) else {}
    names = [n for n in props if n not in step.user_args and n not in step.derived_args and n not in _BORING_FIELDS
             and "boolean" not in json_types(props.get(n))]
    ranked = sorted(names, key=lambda n: (_FIELD_PRIORITY.index(n) if n in _FIELD_PRIORITY else 99,
                                          names.index(n)))
    ranked = [n for n in ranked if n in _FIELD_PRIORITY][:k] or ranked[:1]
    return ranked


def _closing(server: ToolServer, plan: Plan, rng: random.Random) -> str:
    last = plan.steps[-1]
    try:
        tool = server.tool(last.tool)
    except KeyError:
        return ""
    fields = [label(f) for f in result_fields(tool, last)]
    schema = tool.output_schema or {}
    if not fields:
        if "array" in json_types(schema):
            return rng.choice(["Tell me what you find.", "Show me the results.", "List what comes back.",
                               "Let me know what you find.", ""])
        return rng.choice(["Let me know how it goes.", "Tell me the result.", ""])
    what = " and ".join(f"the {f}" for f in fields)
    return rng.choice([f"Tell me {what}.", f"Let me know {what} when you're done.",
                       f"In the end, give me {what}.", f"Tell me the final result, including {what}.",
                       f"Report back with {what}.", ""])


def render_query(server: ToolServer, plan: Plan, rng: random.Random) -> tuple[str, list[str]]:
    """Write the user request for ``plan``; returns the query and the values it states."""
    said: dict[str, Any] = {}
    phrases, mentions = [], []
    for i, step in enumerate(plan.steps):
        phrase, m = render_step(server.tool(step.tool), plan, i, rng, said)
        phrases.append(phrase)
        mentions += m
    opener = rng.choice(_OPENERS)
    question = opener.strip() in ("Could you", "Can you")
    n = len(phrases)
    if n == 1:
        body = phrases[0]
        body = (opener + body) if opener else body
        body += "?" if question else "."
    else:
        style = rng.randrange(3)
        if style == 0 or question or opener:
            parts = [phrases[0]]
            for k, ph in enumerate(phrases[1:], start=1):
                conn = rng.choice(_LAST if k == n - 1 else _MIDDLE)
                parts.append(f"{conn} {ph}")
            body = opener + ", ".join(parts) + ("?" if question else ".")
        elif style == 1:
            sents = [f"First, {phrases[0]}."]
            for k, ph in enumerate(phrases[1:], start=1):
                lead = "Finally," if k == n - 1 and n > 2 else rng.choice(["Then", "After that,", "Next,"])
                sents.append(f"{lead} {ph}.")
            body = " ".join(sents)
        else:
            head = "; ".join(phrases[:-1])
            body = f"{head}, {rng.choice(['and then', 'and after that', 'and finally'])} {phrases[-1]}."
    closing = _closing(server, plan, rng)
    text = _tidy(f"{body} {closing}")
    text = _capitalize_sentences(text)
    mentions = list(dict.fromkeys(mentions))
    return text, mentions


def _capitalize_sentences(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text)
    out = []
    for p in parts:
        if p and p[0].islower() and not re.match(r"^[a-z]+[A-Z_]", p):
            p = p[0].upper() + p[1:]
        out.append(p)
    return " ".join(out)


# ---------------------------------------------------------------------------------
# Facts for the complexity augmentation
# ---------------------------------------------------------------------------------

_NUMERIC_FACT = re.compile(r"(price|total|rate|fare|cost|amount|balance|subtotal|fee)")


def constraint_facts(server: ToolServer, plan: Plan, results: list[Any] | None) -> list[str]:
    """Constraint phrases that hold for this plan, so adding them keeps the tool sequence:
    a boolean condition true in the dry run ("only if it is in stock"), a numeric bound the
    dry run satisfies ("as long as the price is under 100"), and the defaults a step uses
    ("use metric units")."""
    facts: list[str] = []
    if results:
        for r in results[:-1]:  # conditions on intermediate results only
            obj = r[0] if isinstance(r, list) and r and isinstance(r[0], dict) else r
            if not isinstance(obj, dict):
                continue
            for k, v in obj.items():
                kl = k.lower()
                if v is True and (kl.startswith(("in_", "is_")) or kl in ("available", "refundable", "active")):
                    rest = kl.split("_", 1)[1] if kl.startswith(("in_", "is_")) and "_" in kl else kl
                    word = f"in {rest}" if kl.startswith("in_") else rest.replace("_", " ")
                    facts.append(f"only if it is {word}")
                elif isinstance(v, int | float) and not isinstance(v, bool) and v > 0 and _NUMERIC_FACT.search(kl):
                    bound = _round_up(v * 1.25)
                    facts.append(f"as long as the {label(k)} is under {fmt_value(bound)}")
    for step in plan.steps:
        try:
            tool = server.tool(step.tool)
        except KeyError:
            continue
        for p, s in tool.properties.items():
            if p in step.user_args or p in step.derived_args or not isinstance(s, dict):
                continue
            default = s.get("default")
            if default is not None and enum_values(s) and default in enum_values(s):
                phrase, _ = _value_phrase(p, default, tool)
                facts.append(f"use {fmt_value(default)} {label(p)}" if phrase.startswith("with") else phrase)
    return list(dict.fromkeys(facts))


def _round_up(x: float) -> float:
    if x <= 0:
        return x
    mag = 10 ** max(0, int(math.log10(x)) - 1)
    return float(math.ceil(x / mag) * mag)


def followup_fields(server: ToolServer, plan: Plan, results: list[Any] | None = None) -> list[str]:
    """Further fields of the final result a follow-up question can ask for (with a dry
    run, only fields that hold a value)."""
    last = plan.steps[-1]
    try:
        tool = server.tool(last.tool)
    except KeyError:
        return []
    asked = set(result_fields(tool, last))
    props = (tool.output_schema or {}).get("properties") or {}
    final = results[-1] if results else None
    out = []
    for n in props:
        if n in asked or n in _BORING_FIELDS or n in last.user_args or n.endswith(("_id", "_ids")):
            continue
        if isinstance(final, dict) and final.get(n) in (None, "", [], {}):
            continue
        out.append(label(n))
    return out[:4]


__all__ = ["constraint_facts", "fmt_value", "followup_fields", "intent_phrase", "label", "mention_values",
           "render_query", "render_step", "result_fields"]
