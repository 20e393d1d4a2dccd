"""Typed answer matching: does a tool's output (or an agent's final answer) contain a gold answer?

the ASTRA method §2.3 accepts a synthesized tool iff its output "contains the gold answer", and the ASTRA method §3.2
counts a sub-task solved on the same test. A raw substring check is wrong for short
answers ("3" is inside "13", "2023", "3.5" and most JSON), so matching here is typed:

- **numbers** (``answer_type`` ``int``/``float``, or a gold that reads as a number): every
  number *token* of the output is compared by value, with relative tolerance 1e-6 or
  absolute 0.01 (``"1,200"`` == ``1200`` == ``1200.0``). A token is a whole number: "3"
  does not match "13", "2023", "3.5", "-3" or the "03" of ``2023-03-01`` (date spans are
  taken out before numbers are read). JSON numbers are compared directly.
- **dates** (``answer_type`` ``date``, or a gold that reads as a date): the gold is parsed
  (ISO ``2025-03-02``, ``2025/03/02``, ``March 2, 2025``, ``2 March 2025``, ``Mar 2 2025``,
  ``02.03.2025`` / ``03/02/2025`` — a slashed or dotted day/month pair is accepted in
  either order) and compared with every date found in the output; an ISO datetime counts
  by its date.
- **text and entity names** (everything else): Unicode NFKD without accents, case-folded,
  punctuation dropped, then split into word and number tokens; the gold's token sequence
  must occur as a contiguous run of the output's tokens. So "Ann" is not in "Annabel",
  "Route 9" is not in "Route 9.5", but "Ilse Marrow" is in "Directed by Ilse Marrow."
- **yes/no** golds also match JSON booleans.
- **structures**: a dict/list output (or a string holding JSON) matches if any leaf value
  matches; keys are ignored.
- **echoes**: with ``exclude=`` (a tool call's arguments), what the output merely repeats
  from the arguments does not count: the tokens of each argument value are cut out of a
  text leaf before matching, and numbers/dates equal to an argument are skipped.

**The final answer** (:func:`check_final_answer`) is held to more: it must state the gold
and nothing that competes with it — no other number (numeric gold), no other date (date
gold), none of the environment's other known values, and not much more text than the gold
needs (:data:`MAX_EXTRA_TOKENS`). "It is 15." passes for 15; "3 + 12 = 15" and "Ilse Marrow
or Odalys Fenn" do not.

Pure functions, no I/O: :func:`answer_in_output`, :func:`answer_equals`, :func:`check_final_answer`,
:func:`value_runs`, :func:`leaves`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

REL_TOL = 1e-6
ABS_TOL = 0.01
MAX_DEPTH = 32
MAX_LEAVES = 20_000

NUMERIC_TYPES = ("int", "float", "number", "integer")
DATE_TYPES = ("date", "datetime")

_MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
     "november", "december"])}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MON = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|" \
       r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"

# Date spans, most specific first. Each yields candidate dates.
_DATE_PATTERNS: list[re.Pattern[str]] = [
    re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
               r"(?:Z|[+-]\d{2}:?\d{2})?)?(?!\d)"),
    re.compile(r"(?<!\d)(?P<y>\d{4})[/.](?P<m>\d{1,2})[/.](?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<!\d)(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<y>\d{4})(?!\d)"),
    re.compile(r"(?<![\w])" + _MON + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})(?!\d)", re.I),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MON + r",?\s+(?P<y>\d{4})(?!\d)", re.I),
]

# A whole number: not preceded by a letter/digit/decimal point, not followed by a digit, a
# letter or a decimal part. Thousands separators only in groups of three.
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?(?![\w]|\.\d)"
)
_GOLD_NUMBER = re.compile(
    r"^\s*(?:us)?\$?\s*[-+\u2212]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"\s*(?:%|usd|eur|km|kg|m|cm|mm|min|minutes|h|hours|years?|million|musd)?\s*$", re.I)
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")

YES = ("yes", "true")
NO = ("no", "false")


# ---------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------


def normalize_text(s: Any) -> str:
    """NFKD, accents dropped, case-folded, typographic quotes unified, whitespace collapsed."""
    t = unicodedata.normalize("NFKD", str(s))
    t = "".join(ch for ch in t if not unicodedata.combining(ch))
    t = t.casefold().replace("\u2019", "'").replace("\u2018", "'").replace("\u2212", "-")
    return re.sub(r"\s+", " ", t).strip()


def tokens(s: Any) -> list[str]:
    """Word and number tokens of normalized text (punctuation dropped; ``9.5`` stays one token)."""
    return _TOKEN.findall(normalize_text(s))


def parse_number(s: Any) -> float | None:
    """A gold answer as a number (``"1,200"`` -> 1200.0, ``"$3.5"`` -> 3.5), else None."""
    if isinstance(s, bool):
        return None
    if isinstance(s, int | float):
        return float(s) if math.isfinite(float(s)) else None
    t = str(s).strip()
    if not t or not _GOLD_NUMBER.match(t):
        return None
    m = _NUMBER.search(t.replace("$", " "))
    if m is None:
        return None
    return _number_value(m)


def _number_value(m: re.Match[str]) -> float | None:
    try:
        v = float(m.group("num").replace(",", ""))
    except ValueError:
        return None
    if m.group("exp"):
        try:
            v *= 10 ** int(m.group("exp"))
        except (OverflowError, ValueError):
            return None
    if m.group("sign") in ("-", "\u2212"):
        v = -v
    return v if math.isfinite(v) else None


def numbers_in(text: str) -> list[float]:
    """The whole numbers written in ``text``, date spans excluded."""
    masked = _mask_dates(text)
    out = []
    for m in _NUMBER.finditer(masked):
        v = _number_value(m)
        if v is not None:
            out.append(v)
    return out


def numbers_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _mk_date(y: int, m: int, d: int) -> _dt.date | None:
    try:
        return _dt.date(y, m, d)
    except ValueError:
        return None


def _dates_of_match(i: int, m: re.Match[str]) -> list[_dt.date]:
    g = m.groupdict()
    y = int(g["y"])
    if i in (0, 1):
        d = _mk_date(y, int(g["m"]), int(g["d"]))
        return [d] if d else []
    if i == 2:
        a, b = int(g["a"]), int(g["b"])
        return [d for d in {_mk_date(y, a, b), _mk_date(y, b, a)} if d]
    mon = _MONTHS.get(g["mon"].lower().rstrip("."))
    if mon is None:
        return []
    d = _mk_date(y, mon, int(g["d"]))
    return [d] if d else []


def dates_in(text: str) -> list[_dt.date]:
    """Every date written in ``text`` (an ambiguous ``dd/mm/yyyy`` gives both readings)."""
    out: list[_dt.date] = []
    for i, pat in enumerate(_DATE_PATTERNS):
        for m in pat.finditer(text):
            out.extend(_dates_of_match(i, m))
    return out


def _mask_dates(text: str) -> str:
    for pat in _DATE_PATTERNS:
        text = pat.sub(lambda m: " " * len(m.group(0)), text)
    return text


def parse_date(s: Any) -> _dt.date | None:
    """A gold answer as a date when the whole string is one date, else None."""
    if isinstance(s, _dt.datetime):
        return s.date()
    if isinstance(s, _dt.date):
        return s
    if not isinstance(s, str):
        return None
    t = s.strip()
    for i, pat in enumerate(_DATE_PATTERNS):
        m = pat.fullmatch(t)
        if m:
            ds = _dates_of_match(i, m)
            if len(ds) == 1:
                return ds[0]
            if len(ds) > 1:  # ambiguous day/month order: take the day-first reading
                return _mk_date(int(m.group("y")), int(m.group("b")), int(m.group("a")))
    return None


# ---------------------------------------------------------------------------------
# Walking outputs
# ---------------------------------------------------------------------------------


def _maybe_json(s: str) -> Any:
    t = s.strip()
    if len(t) >= 2 and t[0] in "[{" and t[-1] in "]}":
        try:
            return json.loads(t)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser allows
            return None
    return None


def leaves(output: Any, _depth: int = 0) -> Iterator[Any]:
    """Scalar leaf values of ``output`` (dict values, list items, JSON held in strings);
    dict keys are not leaves."""
    if _depth > MAX_DEPTH:
        return
    if isinstance(output, dict):
        for v in output.values():
            yield from leaves(v, _depth + 1)
    elif isinstance(output, list | tuple | set | frozenset):
        for v in output:
            yield from leaves(v, _depth + 1)
    elif isinstance(output, str):
        parsed = _maybe_json(output)
        if isinstance(parsed, dict | list):
            yield from leaves(parsed, _depth + 1)
        else:
            yield output
    else:
        yield output


# ---------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------


def gold_kind(gold: Any, answer_type: str | None = None) -> str:
    """How a gold answer is compared: ``number``, ``date``, ``bool`` or ``text``.

    ``answer_type`` wins where it says number or date and the gold parses as one; an
    ``entity``/``str`` type is text unless the gold is a plain number (a numeric string
    answer is compared by value — "42" must not match "42.5")."""
    t = (answer_type or "").lower()
    if t in NUMERIC_TYPES and parse_number(gold) is not None:
        return "number"
    if t in DATE_TYPES and parse_date(gold) is not None:
        return "date"
    if t == "entity":
        return "text"
    if parse_number(gold) is not None:
        return "number"
    if parse_date(gold) is not None:
        return "date"
    if normalize_text(gold) in YES + NO:
        return "bool"
    return "text"


def _contains_tokens(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(hay):
        return False
    first = needle[0]
    for i in range(len(hay) - n + 1):
        if hay[i] == first and hay[i:i + n] == needle:
            return True
    return False


def _remove_runs(hay: list[str], runs: list[list[str]]) -> list[str]:
    """``hay`` with every occurrence of each token run replaced by a gap marker."""
    if not runs:
        return hay
    out: list[str] = []
    i = 0
    while i < len(hay):
        for r in runs:
            if r and hay[i:i + len(r)] == r:
                out.append("\x00")
                i += len(r)
                break
        else:
            out.append(hay[i])
            i += 1
    return out


class _Excluded:
    """What an output may echo from the call's arguments without it counting."""

    def __init__(self, exclude: Any) -> None:
        self.numbers: list[float] = []
        self.dates: list[_dt.date] = []
        self.runs: list[list[str]] = []
        if exclude is None:
            return
        for leaf in leaves(exclude):
            if leaf is None or isinstance(leaf, bool):
                continue
            if isinstance(leaf, int | float):
                self.numbers.append(float(leaf))
                self.runs.append(tokens(_plain_number(leaf)))
                continue
            text = str(leaf)
            self.numbers += numbers_in(text)
            self.dates += dates_in(text)
            t = tokens(text)
            if t:
                self.runs.append(t)
        self.runs.sort(key=len, reverse=True)

    def number(self, v: float) -> bool:
        return any(numbers_close(v, x) for x in self.numbers)


def _leaf_matches(kind: str, gold: Any, gnum: float | None, gdate: _dt.date | None, gtok: list[str],
                  leaf: Any, ex: _Excluded) -> bool:
    if leaf is None:
        return False
    if isinstance(leaf, bool):
        if kind == "bool":
            return leaf is (normalize_text(gold) in YES)
        return False
    if isinstance(leaf, int | float):
        if kind == "number" and gnum is not None:
            return math.isfinite(float(leaf)) and numbers_close(float(leaf), gnum) and not ex.number(float(leaf))
        if kind == "text":  # an entity written as digits ("1984") vs a number leaf
            return gtok == tokens(_plain_number(leaf)) and not ex.number(float(leaf))
        return False
    text = str(leaf)
    if kind == "number" and gnum is not None:
        return any(numbers_close(v, gnum) and not ex.number(v) for v in numbers_in(text))
    if kind == "date" and gdate is not None:
        return gdate in dates_in(text) and gdate not in ex.dates
    toks = _remove_runs(tokens(text), ex.runs)
    if kind == "bool":  # "no" must be said, and "yes" not (and the other way round)
        want, other = (YES, NO) if normalize_text(gold) in YES else (NO, YES)
        return any(w in toks for w in want) and not any(o in toks for o in other)
    return _contains_tokens(toks, gtok)


def _plain_number(x: int | float) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def answer_in_output(gold: Any, output: Any, answer_type: str | None = None, *, exclude: Any = None) -> bool:
    """Whether ``output`` contains the gold answer (typed; see the module docstring).

    ``exclude``: values the output may merely echo — a tool call's arguments. Their
    occurrences in the output do not count (the text ``"Kharvost mark"`` echoed from the
    arguments does not show the answer ``"Kharvost"``; a separate ``"Kharvost"`` does)."""
    if gold is None:
        return False
    kind = gold_kind(gold, answer_type)
    gnum = parse_number(gold) if kind == "number" else None
    gdate = parse_date(gold) if kind == "date" else None
    gtok = tokens(gold)
    if kind == "text" and not gtok:
        return False
    ex = _Excluded(exclude)
    for i, leaf in enumerate(leaves(output)):
        if i >= MAX_LEAVES:
            break
        if _leaf_matches(kind, gold, gnum, gdate, gtok, leaf, ex):
            return True
    return False


def answer_equals(gold: Any, value: Any, answer_type: str | None = None) -> bool:
    """Whether ``value`` *is* the gold answer (not merely contains it): the same number,
    the same date, or the same token sequence."""
    kind = gold_kind(gold, answer_type)
    if kind == "number":
        v = parse_number(value)
        g = parse_number(gold)
        return v is not None and g is not None and numbers_close(v, g)
    if kind == "date":
        vd = parse_date(value)
        return vd is not None and vd == parse_date(gold)
    if kind == "bool" and isinstance(value, bool):
        return value is (normalize_text(gold) in YES)
    gt = tokens(gold)
    return bool(gt) and tokens(value) == gt


# ---------------------------------------------------------------------------------
# The final answer: one value, the gold
# ---------------------------------------------------------------------------------

#: Longest final answer that is read at all (characters); a longer one is ``too_long``.
MAX_ANSWER_CHARS = 2000
#: Tokens a final answer may have beyond the gold answer's own ("The answer is …").
MAX_EXTRA_TOKENS = 12
#: Words that never count as "another value" when they appear in an answer.
FILLER = frozenset({"a", "an", "the", "of", "and", "or", "in", "on", "at", "to", "by", "for", "is", "are", "was",
                    "it", "its", "yes", "no", "true", "false", "none", "null", "answer", "object", "sentence"})

ANSWER_REASONS = ("ok", "empty", "too_long", "missing", "several_values")


@dataclass(frozen=True)
class AnswerVerdict:
    """The judgement of :func:`check_final_answer`: ``reason`` is one of :data:`ANSWER_REASONS`."""

    ok: bool
    reason: str
    detail: str = ""


def _is_number_token(tok: str) -> bool:
    return tok[:1].isdigit()


def value_runs(values: Any, *, keys: bool = False) -> frozenset[tuple[str, ...]]:
    """The token runs of ``values`` (strings, numbers, nested dicts/lists; dict keys too
    with ``keys=True`` — the entity names of a mock-data table, not the field names of a
    tool's output), as :func:`check_final_answer` compares them; runs made only of
    :data:`FILLER` words are left out."""
    runs: set[tuple[str, ...]] = set()
    stack: list[tuple[Any, int]] = [(values, 0)]
    seen = 0
    while stack and seen < MAX_LEAVES:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(v, dict):
            if keys:
                stack.extend((k, depth + 1) for k in v.keys())
            stack.extend((x, depth + 1) for x in v.values())
            continue
        if isinstance(v, list | tuple | set | frozenset):
            stack.extend((x, depth + 1) for x in v)
            continue
        if isinstance(v, str):
            parsed = _maybe_json(v)
            if isinstance(parsed, dict | list):
                stack.append((parsed, depth + 1))
                continue
        seen += 1
        if v is None or isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            if not math.isfinite(float(v)):
                continue
            v = _plain_number(v)
        t = tuple(tokens(v))
        if t and not all(x in FILLER for x in t):
            runs.add(t)
    return frozenset(runs)


def _gold_spans(kind: str, gold: Any, gtok: list[str], atok: list[str]) -> list[tuple[int, int]]:
    """Where the gold itself stands in the answer's tokens (``[start, end)`` spans)."""
    if kind == "text":
        n = len(gtok)
        return [(i, i + n) for i in range(len(atok) - n + 1) if atok[i:i + n] == gtok]
    if kind == "bool":
        want = YES if normalize_text(gold) in YES else NO
        return [(i, i + 1) for i, t in enumerate(atok) if t in want]
    if kind == "number":
        g = parse_number(gold)
        out = []
        for i, t in enumerate(atok):
            v = parse_number(t) if _is_number_token(t) else None
            if v is not None and g is not None and numbers_close(v, g):
                out.append((i, i + 1))
        return out
    return []


def check_final_answer(gold: Any, answer: Any, answer_type: str | None = None, *,
                       values: Any = ()) -> AnswerVerdict:
    """Whether a final answer states the gold answer — and only it.

    In order (the first that fails gives the reason):

    1. ``empty``: no answer, or only whitespace.
    2. ``too_long``: more than :data:`MAX_ANSWER_CHARS` characters, or more tokens than
       the gold's own plus :data:`MAX_EXTRA_TOKENS`.
    3. ``missing``: the gold is not in the answer (typed, as :func:`answer_in_output`:
       "3" is not in "13"; a yes/no answer that says both is missing its answer).
    4. ``several_values``: the answer names another value besides the gold — for a number,
       any other number; for a date, any other date; for every type, any of ``values``
       (the environment's known values: its mock data, sub-answers, what the tools returned;
       see :func:`value_runs`) written outside the gold's own span. Numeric values are
       judged by the number rule when the gold is a number or a date.

    ``values`` may be raw values or the frozenset :func:`value_runs` returns."""
    if answer is None:
        return AnswerVerdict(False, "empty")
    text = answer if isinstance(answer, str) else str(answer)
    if not text.strip():
        return AnswerVerdict(False, "empty")
    if len(text) > MAX_ANSWER_CHARS:
        return AnswerVerdict(False, "too_long", f"{len(text)} characters (at most {MAX_ANSWER_CHARS})")
    kind = gold_kind(gold, answer_type)
    gtok = tokens(gold)
    atok = tokens(text)
    limit = len(gtok) + MAX_EXTRA_TOKENS
    if len(atok) > limit:
        return AnswerVerdict(False, "too_long", f"{len(atok)} tokens (at most {limit} for this answer)")
    if not answer_in_output(gold, text, answer_type):
        if kind == "bool" and any(t in YES for t in atok) and any(t in NO for t in atok):
            return AnswerVerdict(False, "several_values", "says both yes and no")
        return AnswerVerdict(False, "missing", f"the answer {gold!r} is not in it")
    if kind == "number":
        g = parse_number(gold)
        other = [v for v in numbers_in(text) if g is None or not numbers_close(v, g)]
        if other:
            return AnswerVerdict(False, "several_values", f"also names the number {_plain_number(other[0])}")
    if kind == "date":
        gd = parse_date(gold)
        for i, pat in enumerate(_DATE_PATTERNS):
            for m in pat.finditer(text):
                readings = _dates_of_match(i, m)
                if readings and gd not in readings:
                    return AnswerVerdict(False, "several_values", f"also names the date {m.group(0)!r}")
    runs = values if isinstance(values, frozenset) else value_runs(values)
    if runs:
        spans = _gold_spans(kind, gold, gtok, atok)
        present = set(atok)
        gold_run = tuple(gtok)
        for run in runs:
            if run == gold_run or run[0] not in present or len(run) > len(atok):
                continue
            if kind in ("number", "date") and all(_is_number_token(t) for t in run):
                continue
            n = len(run)
            for i in range(len(atok) - n + 1):
                if tuple(atok[i:i + n]) == run and not any(a <= i and i + n <= b for a, b in spans):
                    return AnswerVerdict(False, "several_values", f"also names {' '.join(run)!r}")
    return AnswerVerdict(True, "ok")


__all__ = [
    "ABS_TOL", "ANSWER_REASONS", "FILLER", "MAX_ANSWER_CHARS", "MAX_EXTRA_TOKENS", "REL_TOL", "AnswerVerdict",
    "answer_equals", "answer_in_output", "check_final_answer", "dates_in", "gold_kind", "leaves", "normalize_text",
    "numbers_in", "parse_date", "parse_number", "tokens", "value_runs",
]
