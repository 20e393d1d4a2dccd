"""Small text checks shared by generation, augmentation and scoring.

Pure functions, no model: does a text name a tool, does it state a value, is it a "how to"
question rather than an execution request, does it look like English, how similar are two
queries (character-shingle Jaccard).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9]+(?:['_-][A-Za-z0-9]+)*")

# ---------------------------------------------------------------------------------
# Tool names
# ---------------------------------------------------------------------------------


def named_tools(text: str, tool_names: Iterable[str]) -> list[str]:
    """The tool names that ``text`` contains as identifiers.

    A snake_case / camelCase name matches as a whole identifier (``get_balance`` but not
    ``get_balances``); a name that is one plain word (``search``) only matches when it
    appears verbatim with a call-like marker (``search(`` or backticks) since plain words
    are ordinary language.
    """
    found = []
    for name in tool_names:
        if not name:
            continue
        if re.search(r"[_A-Z0-9.]", name[1:]) or "-" in name:
            if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text, flags=re.IGNORECASE):
                found.append(name)
        elif re.search(rf"`{re.escape(name)}`|\b{re.escape(name)}\(", text):
            found.append(name)
    return found


# ---------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------


def value_forms(value: Any) -> list[str]:
    """The ways a concrete argument value may be written in a query (lower-case).

    ``250.0`` -> ``["250", "250.0", "250.00"]``; ``"ACC-1002"`` -> ``["acc-1002"]``; a list ->
    the forms of its first item (every item is checked by :func:`value_mentioned`).
    Booleans and ``None`` have no textual form (they are rendered as phrases).
    """
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [str(value), f"{value:,}"]
    if isinstance(value, float):
        forms = [f"{value:g}", f"{value:.2f}", str(value), f"{value:,.2f}"]
        if value.is_integer():
            forms += [str(int(value)), f"{int(value):,}"]
        return list(dict.fromkeys(f.lower() for f in forms))
    if isinstance(value, list | tuple):
        return value_forms(value[0]) if value else []
    text = str(value).strip().lower()
    return [text] if text else []


def value_mentioned(value: Any, text: str) -> bool:
    """Whether ``text`` states ``value`` (numbers in any common form, strings verbatim and
    case-insensitively, every item of a list). Values without a textual form count as stated."""
    if isinstance(value, list | tuple):
        return all(value_mentioned(v, text) for v in value)
    forms = value_forms(value)
    if not forms:
        return True
    low = text.lower()
    for f in forms:
        if re.fullmatch(r"[\d.,]+", f):
            if re.search(rf"(?<![\d.]){re.escape(f)}(?![\d]|\.\d)", low):
                return True
        elif f in low:
            return True
    return False


def missing_mentions(mentions: Iterable[Any], text: str) -> list[Any]:
    """The mentions (values) that ``text`` no longer states."""
    return [m for m in mentions if not value_mentioned(m, text)]


# ---------------------------------------------------------------------------------
# Request form and language
# ---------------------------------------------------------------------------------

_HOW_TO = re.compile(
    r"^\s*(?:(?:hi|hello|hey)[,!.]?\s+)?(?:how\s+(?:do|can|could|would|should)\s+(?:i|one|we|you)\b|how\s+to\b|"
    r"what(?:'s| is)\s+the\s+(?:best\s+)?way\s+to\b|explain\s+how\b|is\s+it\s+possible\s+to\b|"
    r"what\s+(?:tool|function|api)s?\b|which\s+(?:tool|function|api)s?\b)",
    re.IGNORECASE,
)


def is_how_to(text: str) -> bool:
    """Whether ``text`` asks *how* to do something (or which tool to use) instead of asking
    for it to be done."""
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0] if text.strip() else ""
    return bool(_HOW_TO.search(first)) or bool(_HOW_TO.search(text.strip()))


_EN_STOP = frozenset(
    "a an the and or of to in on for with at by from is are be it me my i you your please then that this "
    "what which when there their them can could would will should do does tell give find get show check "
    "after before also if as so about into over all any".split()
)


def looks_english(text: str) -> bool:
    """A cheap, honest heuristic: mostly ASCII letters and at least a few common English
    function words. Used to catch an augmentation that switched language."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return False
    ascii_ratio = sum(1 for c in letters if c.isascii()) / len(letters)
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return False
    stop = sum(1 for w in words if w in _EN_STOP)
    return ascii_ratio >= 0.9 and (stop >= 2 or stop / len(words) >= 0.1)


# ---------------------------------------------------------------------------------
# Tool descriptions: the job, without boilerplate
# ---------------------------------------------------------------------------------

_DESC_MARKER = re.compile(r"\b(?:tool|function|api|endpoint)\s+description\s*:\s*", re.IGNORECASE)
#: Sentences that describe the tool or its API rather than what it does.
BOILERPLATE = re.compile(
    r"^\s*(?:"
    r"(?:this|the)\s+(?:tool|function|api|endpoint|method|operation|service)\s+(?:belongs\s+to|is\s+(?:a\s+)?part\s+of|"
    r"is\s+provided\s+by|is\s+from|comes\s+from|is\s+one\s+of|is\s+used\s+(?:by|in))\b"
    r"|it\s+is\s+an?\s+(?:\w+\s+){0,6}(?:system|api|service|tool|platform|application|server|backend|interface)\b"
    r"|(?:this|the)\s+(?:\w+\s+){0,4}(?:api|service|server|system|platform)\s+(?:allows|lets|enables|provides|offers|is)\b"
    r"|note\s*:|(?:\[?optional\]?)\s*$"
    r")", re.IGNORECASE)
_BOILER_ECHO = re.compile(r"\b(?:this\s+tool|this\s+function|this\s+api|belongs\s+to\s+the|tool\s+description|"
                          r"the\s+agent\s+(?:needs|should|must)|the\s+function\s+will)\b", re.IGNORECASE)


def normalize_description(text: str) -> str:
    """A tool description reduced to what the tool does: the text after a "Tool
    description:" marker, without leading sentences about the tool's API or service
    ("This tool belongs to the Gorilla file system. It is a simple file system that ...")."""
    t = (text or "").strip()
    marks = list(_DESC_MARKER.finditer(t))
    if marks and t[marks[-1].end():].strip():
        t = t[marks[-1].end():].strip()
    sents = re.split(r"(?<=[.!?])\s+|\n+", t)
    while len(sents) > 1 and BOILERPLATE.match(sents[0]):
        sents = sents[1:]
    out = " ".join(x.strip() for x in sents if x.strip())
    return out or t


def boilerplate_echo(query: str) -> str | None:
    """The phrase of ``query`` that comes from tool-description boilerplate ("this tool",
    "belongs to the", "the agent needs to"), if any."""
    m = _BOILER_ECHO.search(query or "")
    return m.group(0) if m else None


# ---------------------------------------------------------------------------------
# Similarity
# ---------------------------------------------------------------------------------


def normalize_query(text: str) -> str:
    """Lower-case, accents folded, punctuation removed, whitespace collapsed."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).lower()
    t = re.sub(r"[^\w\s]", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def shingles(text: str, k: int = 5) -> frozenset[str]:
    """Character ``k``-shingles of the normalized text (the whole text when shorter)."""
    t = normalize_query(text)
    if len(t) <= k:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i:i + k] for i in range(len(t) - k + 1))


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def content_words(text: str) -> list[str]:
    """Lower-case words of ``text`` without English function words, cut to a 5-letter stem."""
    return [w.lower()[:5] for w in _WORD.findall(text) if w.lower() not in _EN_STOP and len(w) > 2]


__all__ = [
    "boilerplate_echo", "normalize_description", "content_words", "is_how_to", "jaccard", "looks_english", "missing_mentions", "named_tools",
    "normalize_query", "shingles", "value_forms", "value_mentioned",
]
