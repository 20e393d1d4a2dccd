"""Task scoring: question quality, scenario realism, tool-use necessity, plus
tool-selection difficulty and uniqueness, each 1..5 with a reason.

``Task.scores`` after scoring::

    {"quality": 4, "realism": 5, "necessity": 5, "difficulty": 3, "uniqueness": 4,
     "reasons": {"quality": "...", ...}, "scorer": "offline" | "llm"}

A task is kept only if every score passes its threshold (:class:`Thresholds`; quality,
realism and necessity are checked by default, difficulty and uniqueness only when given).
With the LLM scorer (prompt ``task_score``, structured output) a reply that cannot be
parsed or validated after the repair rounds rejects the task as ``score_unusable`` (never
passed); an endpoint that does not answer fails it instead (the runner retries it on a
rerun).

The offline scorer (:func:`offline_scores`) is a set of honest heuristics, not a judge of
meaning. It reads the query, the task's plan (``arguments``: steps and the values it
states) and ``meta["intents"]`` (what each step does, from the tool descriptions):

- **quality** starts at 5: -3 if the query names a tool; -2 if it asks *how to* instead of
  asking for it; -1 per stated value missing from the query (at most -2); -2 if shorter
  than 30 characters, -1 if shorter than 50 or longer than 450; -1 for template artifacts
  (``{``, ``}``, ``None``, ``null``, doubled words, snake_case words that are not values).
- **realism** starts at 3: +1 if every stated value appears (a concrete request), +1 if
  it has 1..4 sentences and 50..350 characters; -1 for template artifacts, -1 for more
  than four tools in one request, -1 for machine-like values people do not type (numbers
  with four or more decimals, such as raw coordinates), -2 for a how-to question.
- **necessity**: 1 + 1 if the query states concrete values (ids, names, dates, numbers
  only a tool can resolve) + 1 if it uses an action or lookup verb + 1 if at least half of
  the steps' intents are mentioned (content-word overlap) + 1 if the task has a dry-run
  verified plan or at least two tools; -2 for a how-to question.
- **difficulty**: by the number of tools (1 -> 2, 2 -> 3, 3 -> 4, 4+ -> 5), +1 (max 5)
  when a later step needs a value derived from an earlier result.
- **uniqueness**: 2 + 1 if at least half of the steps' intents are mentioned, + 1 if all
  are, + 1 if every stated value appears.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field

from astra.llm import LLMClient
from astra.prompts import render
from astra.tasks.text import content_words, is_how_to, missing_mentions, named_tools, value_forms
from astra.types import Task, ToolServer

SCORE_KEYS = ("quality", "realism", "necessity", "difficulty", "uniqueness")


@dataclass
class Thresholds:
    """Minimum score per aspect; ``None`` = not checked."""

    quality: int | None = 3
    realism: int | None = 3
    necessity: int | None = 3
    difficulty: int | None = None
    uniqueness: int | None = None

    def failures(self, scores: dict[str, Any]) -> list[tuple[str, Any, int]]:
        """``(aspect, score, minimum)`` for every aspect below its threshold (a missing
        or non-numeric score fails)."""
        out = []
        for key in SCORE_KEYS:
            minimum = getattr(self, key)
            if minimum is None:
                continue
            value = scores.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < minimum:
                out.append((key, value, minimum))
        return out

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


# ---------------------------------------------------------------------------------
# LLM
# ---------------------------------------------------------------------------------


class Aspect(BaseModel):
    score: int = Field(ge=1, le=5)
    reason: str = ""


class Judgement(BaseModel):
    """What ``task_score`` asks for."""

    quality: Aspect
    realism: Aspect
    necessity: Aspect
    difficulty: Aspect
    uniqueness: Aspect

    def scores(self, scorer: str) -> dict[str, Any]:
        return {**{k: getattr(self, k).score for k in SCORE_KEYS},
                "reasons": {k: getattr(self, k).reason for k in SCORE_KEYS}, "scorer": scorer}


class LLMScorer:
    def __init__(self, client: LLMClient, *, max_repairs: int = 2, max_tokens: int = 512):
        self.client = client
        self.max_repairs = max_repairs
        self.max_tokens = max_tokens

    async def score(self, task: Task, server: ToolServer | None = None) -> dict[str, Any]:
        """The task's scores; raises :class:`~astra.llm.errors.LLMError` (including
        ``StructuredOutputError``) when no valid judgement comes back."""
        intents = list(task.meta.get("intents") or [])
        tools = []
        for i, name in enumerate(task.target_tools):
            desc = ""
            if server is not None:
                try:
                    desc = server.tool(name).description
                except KeyError:
                    desc = ""
            if not desc and i < len(intents):
                desc = intents[i]
            tools.append({"name": name, "description": desc})
        other = [t.name for t in server.tools if t.name not in task.target_tools] if server else []
        prompt = render("task_score", task=task, tools=tools, other_tools=other)
        judgement = await self.client.structured([{"role": "user", "content": prompt}], Judgement,
                                                 max_repairs=self.max_repairs, temperature=0.0,
                                                 max_tokens=self.max_tokens)
        return judgement.scores("llm")


# ---------------------------------------------------------------------------------
# Offline heuristics
# ---------------------------------------------------------------------------------

_ACTION = re.compile(
    r"\b(find|search|look|get|check|show|list|tell|give|book|reserve|add|remove|cancel|move|transfer|convert|"
    r"create|open|assign|update|change|delete|read|write|send|apply|place|order|buy|compare|calculate|"
    r"scale|suggest|combine|report|fetch|pull|download|upload|set|mark|rename|pay)\w*\b", re.IGNORECASE)
_ARTIFACT = re.compile(r"[{}]|\bNone\b|\bnull\b|\bundefined\b|\b(\w+)\s+\1\b", re.IGNORECASE)
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]+\b")
_MACHINE = re.compile(r"(?<![\w.])-?\d+\.\d{4,}\b")
_CONCRETE = re.compile(r"\d|\"[^\"]+\"|'[^']+'|\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*\b|/[\w./-]+")


def _clamp(x: float) -> int:
    return int(max(1, min(5, round(x))))


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _artifacts(query: str, mentions: list[Any]) -> int:
    n = len(_ARTIFACT.findall(query))
    value_text = " ".join(f for m in mentions for f in value_forms(m))
    n += sum(1 for w in _SNAKE.findall(query) if w.lower() not in value_text)
    return n


def _intent_coverage(query: str, intents: list[str]) -> float:
    if not intents:
        return 1.0
    qwords = set(content_words(query))
    hit = 0
    for intent in intents:
        words = set(content_words(intent))
        if not words or words & qwords:
            hit += 1
    return hit / len(intents)


def offline_scores(task: Task, tool_names: list[str] | None = None) -> dict[str, Any]:
    """Rule-based scores with reasons (see the module docstring for every rule)."""
    q = task.query.strip()
    args = task.arguments or {}
    mentions = list(args.get("mentions") or [])
    steps = args.get("steps") or []
    intents = list(task.meta.get("intents") or [])
    names = list(dict.fromkeys((tool_names or []) + list(task.target_tools)))
    named = named_tools(q, names)
    how = is_how_to(q)
    missing = missing_mentions(mentions, q)
    artifacts = _artifacts(q, mentions)
    sents = _sentences(q)
    cover = _intent_coverage(q, intents)
    reasons: dict[str, str] = {}

    quality, why = 5, []
    if named:
        quality -= 3
        why.append(f"names tool(s) {', '.join(named)}")
    if how:
        quality -= 2
        why.append("asks how to instead of asking for it")
    if missing:
        quality -= min(2, len(missing))
        why.append(f"{len(missing)} stated value(s) missing")
    if len(q) < 30:
        quality -= 2
        why.append("very short")
    elif len(q) < 50 or len(q) > 450:
        quality -= 1
        why.append("short" if len(q) < 50 else "very long")
    if artifacts:
        quality -= 1
        why.append("template artifacts")
    reasons["quality"] = "; ".join(why) or "clear, specific execution request with its values"

    realism, why = 3, []
    if not missing and (mentions or not steps):
        realism += 1
        why.append("concrete values")
    if 1 <= len(sents) <= 4 and 50 <= len(q) <= 350:
        realism += 1
        why.append("natural length")
    if artifacts:
        realism -= 1
        why.append("template artifacts")
    if len(task.target_tools) > 4:
        realism -= 1
        why.append("many tools in one request")
    if _MACHINE.search(q):
        realism -= 1
        why.append("machine-like values")
    if how:
        realism -= 2
        why.append("how-to question")
    reasons["realism"] = "; ".join(why) or "plain request"

    necessity, why = 1, []
    if mentions or _CONCRETE.search(q):
        necessity += 1
        why.append("concrete values to resolve")
    if _ACTION.search(q):
        necessity += 1
        why.append("action or lookup verb")
    if cover >= 0.5:
        necessity += 1
        why.append(f"mentions {cover:.0%} of the steps")
    if task.meta.get("dry_run") or len(task.target_tools) >= 2:
        necessity += 1
        why.append("verified plan" if task.meta.get("dry_run") else "several tools")
    if how:
        necessity -= 2
        why.append("how-to question")
    reasons["necessity"] = "; ".join(why) or "no sign the tools are needed"

    n = len(task.target_tools)
    difficulty = {1: 2, 2: 3, 3: 4}.get(n, 5 if n > 3 else 1)
    derived = any(s.get("derived_args") for s in steps if isinstance(s, dict))
    if derived:
        difficulty += 1
    reasons["difficulty"] = f"{n} tool(s)" + (", values passed between steps" if derived else "")

    uniqueness = 2 + (1 if cover >= 0.5 else 0) + (1 if cover >= 1.0 else 0) + (0 if missing else 1)
    reasons["uniqueness"] = f"mentions {cover:.0%} of the steps" + ("" if not missing else "; values missing")

    return {"quality": _clamp(quality), "realism": _clamp(realism), "necessity": _clamp(necessity),
            "difficulty": _clamp(difficulty), "uniqueness": _clamp(uniqueness), "reasons": reasons,
            "scorer": "offline"}


__all__ = ["Aspect", "Judgement", "LLMScorer", "SCORE_KEYS", "Thresholds", "offline_scores"]
