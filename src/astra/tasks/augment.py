"""Task augmentation: keep the original, add variants that keep language, intent
and the tool sequence.

Modes
-----
- ``diversity``: the same request phrased differently and/or placed in a new context;
- ``complexity``: extra constraints that hold for the task (so the tool sequence does not
  change), implicit references, follow-up questions about the same result;
- ``persona``: the request rewritten for a user persona (tone, verbosity, expertise,
  occupation) from the bundled persona set (``astra/data/personas.jsonl``, chosen
  deterministically per task and variant from the seed).

Every variant copies the original's ``target_tools``, ``chain``, ``arguments`` (the plan)
and ``language``, and has ``parent_id`` = the original's id, ``augmentation`` = the mode
and an id ``<parent>.<mode[:3]><j>``. The original is always kept (``augmentation=None``).
A variant is rejected (reason in the stage's rejections) when it drops a value the task
states (``lost_value``: any of ``arguments["mentions"]``), names a tool (``names_tool``),
changes language (``language_changed``: the reported language differs, or an English task
no longer reads as English), asks *how* instead of asking for it
(``not_execution_request``), or is identical to the original or an earlier variant
(``unchanged``); an LLM failure is ``augmentation_failed``.

Backends: ``offline`` (:class:`OfflineAugmenter`, rule-based: phrasing templates and new
contexts for diversity, constraints from ``meta["constraints"]`` -- conditions the dry run
satisfies and defaults the plan uses -- and follow-ups from ``meta["followups"]`` for
complexity, persona framing for persona) and ``llm`` (:class:`LLMAugmenter`, prompts
``task_augment_<mode>``, structured output). The default follows
:func:`astra.tasks.generate.default_backend`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from astra.choices import parse_choices
from astra.errors import InputError
from astra.io import read_records
from astra.llm import LLMClient
from astra.llm.errors import LLMError
from astra.pipeline.failures import is_endpoint_failure
from astra.prompts import render
from astra.tasks.generate import rng_for, stable_hash
from astra.tasks.text import is_how_to, looks_english, missing_mentions, named_tools, normalize_query
from astra.types import Record, Rejection, Task

AUGMENT_MODES = ("diversity", "complexity", "persona")


def parse_modes(spec: str | Sequence[str]) -> list[str]:
    """``"persona,diversity"`` -> ``["diversity", "persona"]`` (validated, in canonical order)."""
    return parse_choices(spec, AUGMENT_MODES, "augmentation mode")


# ---------------------------------------------------------------------------------
# Personas
# ---------------------------------------------------------------------------------


class Persona(Record):
    """A user persona of the bundled set."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    occupation: str
    expertise: Literal["novice", "intermediate", "expert"]
    style: Literal["concise", "verbose", "casual", "formal"]
    description: str
    language: str = "en"

    def record_key(self) -> str:
        return self.id


@lru_cache(maxsize=4)
def load_personas(path: str | None = None) -> tuple[Persona, ...]:
    """The persona set: ``path`` (JSONL of :class:`Persona`) or the bundled one."""
    if path:
        p = Path(path)
        if not p.exists():
            raise InputError("persona file not found", path=str(p))
        personas = tuple(read_records(p, Persona))
    else:
        ref = resources.files("astra.data").joinpath("personas.jsonl")
        with resources.as_file(ref) as p:
            personas = tuple(read_records(p, Persona))
    if not personas:
        raise InputError("the persona file holds no persona", path=str(path or "astra/data/personas.jsonl"))
    return personas


def pick_persona(personas: tuple[Persona, ...] | list[Persona], seed: int, task_id: str, j: int,
                 language: str = "en") -> Persona:
    """A persona for variant ``j`` of ``task_id``, deterministic given ``seed``; personas
    of the task's language are preferred."""
    pool = [p for p in personas if p.language == language] or list(personas)
    return pool[int(stable_hash(seed, "persona", task_id, j, n=8), 16) % len(pool)]


def variant_id(parent_id: str, mode: str, j: int) -> str:
    return f"{parent_id}.{mode[:3]}{j}"


# ---------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------


def check_variant(original: Task, query: str, language: str, *, tool_names: list[str], seen: set[str],
                  key: str) -> Rejection | None:
    """Why a variant is not kept, or None (see the module docstring)."""
    q = query.strip()
    norm = normalize_query(q)
    if not q or norm in seen:
        return Rejection(key=key, reason="unchanged", detail="identical to the original or an earlier variant")
    lost = missing_mentions((original.arguments or {}).get("mentions") or [], q)
    if lost:
        return Rejection(key=key, reason="lost_value", detail=f"no longer states {', '.join(map(str, lost))}")
    named = named_tools(q, tool_names)
    if named:
        return Rejection(key=key, reason="names_tool", detail=f"names {', '.join(named)}")
    lang = (language or original.language).strip().lower()
    if lang != original.language.lower() or (original.language.lower() == "en" and not looks_english(q)):
        return Rejection(key=key, reason="language_changed", detail=f"language {lang!r} != {original.language!r}")
    if is_how_to(q):
        return Rejection(key=key, reason="not_execution_request", detail="asks how to do it")
    return None


def make_variant(original: Task, query: str, mode: str, j: int, *, augmenter: str, persona: Persona | None) -> Task:
    meta = dict(original.meta)
    meta["augmenter"] = augmenter
    return original.model_copy(update={
        "id": variant_id(original.id, mode, j), "query": query.strip(), "augmentation": mode,
        "parent_id": original.id, "persona": persona.id if persona else None, "scores": {}, "meta": meta,
    }, deep=True)


# ---------------------------------------------------------------------------------
# Offline
# ---------------------------------------------------------------------------------

_OPENERS = ["Please ", "Could you ", "Can you ", "I need you to ", "I'd like you to ", "Would you "]
_QUESTION_OPENERS = ("Could you ", "Can you ", "Would you ")
_CONNECTIVES = [("and once that's done,", "and after that"), ("and after that", "and then"), ("after that", "next"),
                ("and finally", "and to finish,"), ("then", "after that"), ("next", "then")]
_CLOSINGS = [r"Tell me (the .+?)\.", r"Let me know (the .+?) when you're done\.", r"In the end, give me (the .+?)\.",
             r"Tell me the final result, including (the .+?)\.", r"Report back with (the .+?)\."]
_CLOSING_TEMPLATES = ["Tell me {x}.", "Let me know {x} when you're done.", "In the end, give me {x}.",
                      "Once you're done, tell me {x}.", "I mainly need {x}.", "Please report {x}."]
_CONTEXTS = {
    "e-commerce": ["I'm restocking my kitchen before the holidays.", "It's a birthday present, so I'm in a hurry.",
                   "I'm setting up a home office.", "My old one just broke."],
    "travel": ["I'm planning a work trip next month.", "My parents are visiting and I'm sorting out the logistics.",
               "We're organising a team offsite.", "I want to surprise my partner with a weekend away."],
    "productivity": ["I'm preparing for tomorrow's client meeting.", "I'm tidying up our shared drive.",
                     "My manager asked for this before the end of the day."],
    "customer-support": ["A customer just called us about this.", "I'm covering the support queue today.",
                         "This came up in this morning's stand-up."],
    "weather": ["I'm deciding what to pack.", "We're planning an outdoor event.", "I have a run planned later."],
    "finance": ["I'm doing my monthly budget review.", "I'm getting ready for a trip abroad.",
                "Rent is due at the end of the week."],
    "food": ["I'm cooking for friends this weekend.", "I'm planning meals for the week.",
             "My sister is coming over for dinner."],
}
_GENERIC_CONTEXTS = ["I need this sorted today.", "This is for something I'm working on.",
                     "A colleague asked me to take care of this.", "I'd like to get this done before lunch."]
_STYLE_INTRO = {"casual": ["Hey! ", "Hi! ", "Hey there, "], "formal": ["Good morning. ", "Hello. ", "Dear assistant, "],
                "verbose": ["Hi there, I hope you're doing well. ", "Hello! I could use a hand with something. "],
                "concise": [""]}
_EXPERTISE = {"novice": ["I'm not very familiar with this, so please take care of it step by step.",
                         "I'm new to this, so please explain what you did in plain words."],
              "expert": ["Skip the explanations, I just need the result.", "No need to explain, just give me the figures."],
              "intermediate": ["", "A short summary is enough."]}


def _strip_opener(q: str) -> tuple[str, bool]:
    for op in _OPENERS:
        if q.startswith(op):
            rest = q[len(op):]
            return rest[:1].upper() + rest[1:], op in _QUESTION_OPENERS
    return q, False


def _main_and_closing(q: str) -> tuple[str, str]:
    """Split the query into its request and its closing sentence (if a known one)."""
    for pat in _CLOSINGS:
        m = re.search(r"\s*" + pat + r"\s*$", q)
        if m:
            return q[: m.start()].strip(), m.group(1)
    return q.strip(), ""


def _with_opener(body: str, opener: str) -> str:
    body = body.rstrip()
    core = body.rstrip(".?!")
    if not opener:
        return core[:1].upper() + core[1:] + "."
    text = opener + core[:1].lower() + core[1:] if not re.match(r"^[A-Z]{2}|^I\b", core) else opener + core
    return text + ("?" if opener in _QUESTION_OPENERS else ".")


def _sentences(body: str) -> list[str]:
    return re.split(r"(?<=[.?!])\s+", body.strip())


class OfflineAugmenter:
    """Rule-based variants (see the module docstring); every choice is deterministic
    given the seed, the task id, the mode and the variant index."""

    def __init__(self, seed: int = 0, personas: tuple[Persona, ...] | None = None):
        self.seed = seed
        self.personas = personas or load_personas()

    def variant(self, task: Task, mode: str, j: int) -> tuple[str, Persona | None]:
        rng = rng_for(self.seed, "augment", task.id, mode, j)
        if mode == "diversity":
            return self._diversity(task, rng, j), None
        if mode == "complexity":
            return self._complexity(task, rng, j), None
        persona = pick_persona(self.personas, self.seed, task.id, j, task.language)
        return self._persona(task, persona, rng), persona

    def _diversity(self, task: Task, rng: random.Random, j: int) -> str:
        body, closing = _main_and_closing(task.query)
        body, _ = _strip_opener(body)
        for a, b in rng.sample(_CONNECTIVES, k=len(_CONNECTIVES)):
            if re.search(rf"\b{re.escape(a)}\b", body):
                body = re.sub(rf"\b{re.escape(a)}\b", b, body, count=1)
                break
        opener = rng.choice(["", *_OPENERS]) if len(_sentences(body)) == 1 else ""
        text = _with_opener(body, opener) if len(_sentences(body)) == 1 else body
        contexts = _CONTEXTS.get(str(task.meta.get("domain") or ""), []) + _GENERIC_CONTEXTS
        context = contexts[(j + rng.randrange(len(contexts))) % len(contexts)]
        closing_text = rng.choice(_CLOSING_TEMPLATES).format(x=closing) if closing else ""
        if rng.random() < 0.5:
            out = f"{context} {text} {closing_text}"
        else:
            out = f"{text} {closing_text} {context}"
        return re.sub(r"\s+", " ", out).strip()

    def _complexity(self, task: Task, rng: random.Random, j: int) -> str:
        body, closing = _main_and_closing(task.query)
        extras: list[str] = []
        constraints = list(task.meta.get("constraints") or [])
        followups = list(task.meta.get("followups") or [])
        if constraints:
            c = constraints[(j + rng.randrange(len(constraints))) % len(constraints)]
            if c.startswith("only if"):
                extras.append(rng.choice([f"Go ahead {c}.", f"Do it {c}; otherwise stop and tell me."]))
            elif c.startswith("as long as"):
                extras.append(rng.choice([f"Only continue {c}.", f"Carry on {c}; otherwise stop and tell me."]))
            elif c.startswith("use "):
                extras.append(c[:1].upper() + c[1:] + ".")
            else:
                extras.append(f"Keep it {c}.")
        if followups and (not extras or rng.random() < 0.6):
            f = followups[(j + rng.randrange(len(followups))) % len(followups)]
            extras.append(rng.choice([f"Also mention the {f} in your answer.",
                                      f"And while you're at it, tell me the {f} too.",
                                      f"I'd also like to know the {f}."]))
        if not extras:
            extras.append(rng.choice(["Double-check each result before moving on, and tell me if anything fails.",
                                      "If any step fails, tell me exactly which one and why.",
                                      "Summarise what each step returned at the end."]))
        closing_text = rng.choice(_CLOSING_TEMPLATES).format(x=closing) if closing else ""
        return re.sub(r"\s+", " ", f"{body} {' '.join(extras)} {closing_text}").strip()

    def _persona(self, task: Task, persona: Persona, rng: random.Random) -> str:
        body, closing = _main_and_closing(task.query)
        core, _ = _strip_opener(body)
        intro = rng.choice(_STYLE_INTRO[persona.style])
        who = ""
        if persona.style in ("verbose", "formal") or rng.random() < 0.3:
            who = rng.choice([f"I'm a {persona.occupation}. ", f"As a {persona.occupation}, I need some help. ",
                              f"I work as a {persona.occupation}. "])
        if persona.style == "formal":
            request = _with_opener(core, rng.choice(["Could you ", "Would you "])).replace("Could you ", "Could you please ", 1)
        elif persona.style == "casual":
            request = _with_opener(core, rng.choice(["Can you ", ""]))
        elif persona.style == "concise":
            request = _with_opener(core, "")
        else:
            request = _with_opener(core, rng.choice(["I'd like you to ", "Could you "]))
        if len(_sentences(core)) > 1:
            request = core if core.endswith((".", "?", "!")) else core + "."
        tail = rng.choice(_EXPERTISE[persona.expertise])
        closing_text = ""
        if closing:
            closing_text = (f"Just the {closing[4:] if closing.startswith('the ') else closing}." if persona.style == "concise"
                            else rng.choice(_CLOSING_TEMPLATES).format(x=closing))
        if persona.style == "verbose" and not tail:
            tail = "Thanks so much in advance!"
        elif persona.style == "formal":
            tail = (tail + " Thank you.").strip()
        return re.sub(r"\s+", " ", f"{intro}{who}{request} {closing_text} {tail}").strip()


# ---------------------------------------------------------------------------------
# LLM
# ---------------------------------------------------------------------------------


class AugmentedQuery(BaseModel):
    """What the augmentation prompts ask for."""

    query: str = Field(min_length=8)
    language: str = "en"


class LLMAugmenter:
    def __init__(self, client: LLMClient, *, seed: int = 0, personas: tuple[Persona, ...] | None = None,
                 temperature: float = 0.8, max_repairs: int = 2, max_tokens: int = 512):
        self.client = client
        self.seed = seed
        self.personas = personas or load_personas()
        self.temperature = temperature
        self.max_repairs = max_repairs
        self.max_tokens = max_tokens

    async def variant(self, task: Task, mode: str, j: int, tool_names: list[str]) -> tuple[str, str, Persona | None]:
        persona = pick_persona(self.personas, self.seed, task.id, j, task.language) if mode == "persona" else None
        prompt = render(f"task_augment_{mode}", task=task, mentions=(task.arguments or {}).get("mentions") or [],
                        tool_names=tool_names, persona=persona, constraints=task.meta.get("constraints") or [],
                        followups=task.meta.get("followups") or [], index=j)
        reply = await self.client.structured([{"role": "user", "content": prompt}], AugmentedQuery,
                                             max_repairs=self.max_repairs, temperature=self.temperature,
                                             sample_index=j, max_tokens=self.max_tokens)
        return reply.query, reply.language, persona


async def augment_task(task: Task, modes: list[str], per_mode: int, *, offline: OfflineAugmenter | None,
                       llm: LLMAugmenter | None, tool_names: list[str] | None = None
                       ) -> tuple[list[Task], list[Rejection]]:
    """The original plus up to ``per_mode`` valid variants per mode, and the rejections."""
    if task.augmentation is not None:  # already a variant: passed through, never re-augmented
        return [task], []
    names = list(dict.fromkeys((tool_names or []) + list(task.target_tools) + list(task.chain or [])))
    out: list[Task] = [task]
    rejections: list[Rejection] = []
    seen = {normalize_query(task.query)}
    for mode in modes:
        for j in range(per_mode):
            key = variant_id(task.id, mode, j)
            try:
                if llm is not None:
                    query, language, persona = await llm.variant(task, mode, j, names)
                    backend = "llm"
                else:
                    assert offline is not None
                    query, persona = offline.variant(task, mode, j)
                    language, backend = task.language, "offline"
            except LLMError as e:
                if is_endpoint_failure(e):
                    raise
                rejections.append(Rejection(key=key, reason="augmentation_failed", detail=str(e)[:300]))
                continue
            bad = check_variant(task, query, language, tool_names=names, seen=seen, key=key)
            if bad is not None:
                rejections.append(bad)
                continue
            seen.add(normalize_query(query))
            out.append(make_variant(task, query, mode, j, augmenter=backend, persona=persona))
    return out, rejections


__all__ = [
    "AUGMENT_MODES", "AugmentedQuery", "LLMAugmenter", "OfflineAugmenter", "Persona", "augment_task",
    "check_variant", "load_personas", "make_variant", "parse_modes", "pick_persona", "variant_id",
]
