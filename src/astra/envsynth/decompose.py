"""QA decomposition: the decomposition contract, its output validation, and the
LLM generator.

Vocabulary
----------
- A *hop* is one sub-question: an instance's hop count is ``len(sub_tasks)``, tool steps
  and non-tool (aggregation) steps alike. This is how the paper counts (6,596 instances,
  28,794 sub-questions, "mean 4.37 hops").
- A *hop budget* (:class:`HopBudget`) is ``fixed`` (``"3"``), a ``range`` (``"3-5"``) or
  ``auto`` (model-chosen; accepted hop counts 1..5, and the offline composer samples a
  count per scenario, see :mod:`astra.envsynth.compose`).
- ``hop_level`` of a sub-question is 1 without dependencies, else 1 + the largest
  ``hop_level`` of its dependencies.

Scenario types are classified from the DAG (:func:`classify_scenario`) over the *tool*
steps (``needs_tool``), with ``T`` = tool steps and levels = their hop levels:

=======================  ====================================================
single_hop               exactly one tool step
parallel_single_hop      >= 2 tool steps, all at hop level 1
multi_hop                depth >= 2 and one tool step per level (a chain)
parallel_multi_hop       depth >= 2 and some level holds >= 2 tool steps
=======================  ====================================================

Non-tool steps (compare, sum, pick the larger, format changes) do not change the type:
"which is older, A or B?" with two lookups and a comparison is *parallel single-hop*.

Output validation (:func:`check_decomposition`), in this order; the first failure rejects
with its reason code:

``no_sub_questions``, ``duplicate_id``, ``empty_question`` (empty q0 or sub-question),
``unknown_dependency``, ``cyclic_dependency`` (incl. a self-dependency), ``forward_dependency``
(a dependency on a later id), ``hop_level_mismatch`` (``hop_level`` != 1 + max of its
dependencies'), ``placeholder_answer`` (a0 or a sub-answer empty or a placeholder such as
"unknown", "N/A", "<answer>", "a1", "TBD"), ``no_tool_step``, ``hops_out_of_budget``,
``scenario_mismatch`` (the classified type is not among the requested ones),
``answer_mismatch`` (question-conditional with a known answer that a0 does not match).

Two things are **corrected, not rejected**, and the correction is recorded in
``meta["corrections"]``: a declared scenario type that differs from the classified one
(the classified one wins; the declared one is kept in ``meta["scenario_declared"]``),
and ``is_parallel`` flags (set to: another sub-question shares the hop level).

LLM generation (:func:`decompose_request`): one :class:`DecomposeRequest` per question
(question-conditional) or per (domain, scenario, sample) (unconditional), prompts
``qa_decompose_conditional`` / ``qa_decompose_unconditional``, structured output
:class:`DecompositionDraft`. An unparseable reply (after the client's repairs) is a
rejection ``unparseable_output``; transport errors (:class:`~astra.llm.LLMError`) propagate
and the runner records the input as failed (retry with ``--retry-failed``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from astra.choices import comma_items
from astra.envsynth.worlds import format_value
from astra.errors import ConfigError, InputError
from astra.llm import LLMClient, StructuredOutputError
from astra.prompts import render
from astra.types import QAInstance, Record, Scenario, SubTask

SCENARIOS: tuple[str, ...] = get_args(Scenario)
AUTO_RANGE = (1, 5)
MAX_HOPS = 12


class Rejected(Exception):  # a verdict, not an error
    """A record that fails a check: ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------
# Hop budgets and scenarios
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HopBudget:
    """How many sub-questions an instance may have (see the module docstring)."""

    mode: Literal["fixed", "range", "auto"]
    lo: int
    hi: int

    @classmethod
    def parse(cls, spec: str | int | HopBudget | None, default: str = "3-5") -> HopBudget:
        if isinstance(spec, HopBudget):
            return spec
        s = str(default if spec is None else spec).strip().lower()
        if s in ("auto", "model", "model-chosen"):
            return cls("auto", *AUTO_RANGE)
        m = re.fullmatch(r"(\d+)(?:\s*(?:-|\.\.)\s*(\d+))?", s)
        if not m:
            raise ConfigError(f"bad hop budget {spec!r}: use a number (3), a range (3-5) or 'auto'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if not 1 <= lo <= hi <= MAX_HOPS:
            raise ConfigError(f"bad hop budget {spec!r}: need 1 <= min <= max <= {MAX_HOPS}")
        return cls("fixed" if lo == hi else "range", lo, hi)

    @property
    def spec(self) -> str:
        return "auto" if self.mode == "auto" else (str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}")

    def contains(self, n: int) -> bool:
        return self.lo <= n <= self.hi

    def describe(self) -> str:
        """The budget as an instruction for a prompt."""
        if self.mode == "auto":
            return (f"Choose the number of sub-questions yourself (between {self.lo} and {self.hi}), "
                    "as many as the question really needs.")
        if self.mode == "fixed":
            return f"Use exactly {self.lo} sub-question{'s' if self.lo > 1 else ''}."
        return f"Use between {self.lo} and {self.hi} sub-questions."


def parse_scenarios(spec: str | Iterable[str] | None) -> list[str]:
    """A comma list (or iterable) of scenario types; ``None``/``"all"`` = all four."""
    if spec is None:
        return list(SCENARIOS)
    items = comma_items(spec)
    if items == ["all"]:
        return list(SCENARIOS)
    norm = [_norm_scenario(s) for s in items]
    bad = [s for s, n in zip(items, norm, strict=True) if n not in SCENARIOS]
    if bad or not norm:
        raise ConfigError(f"unknown scenario type(s) {bad or spec!r}; use a comma list of {', '.join(SCENARIOS)}")
    return [s for s in SCENARIOS if s in norm]


def _norm_scenario(s: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(s).strip().lower())


# ---------------------------------------------------------------------------------
# DAG helpers (pure; sub-tasks are assumed to have unique ids and known dependencies
# unless stated)
# ---------------------------------------------------------------------------------


def deps(st: SubTask) -> list[str]:
    return list(st.dependency or [])


def find_cycle(sub_tasks: list[SubTask]) -> list[str] | None:
    """A dependency cycle as a list of ids (``[a, b, a]``), or None. Unknown ids are ignored."""
    graph = {s.id: [d for d in deps(s)] for s in sub_tasks}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in graph.get(n, []):
            if m not in graph:
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for s in sub_tasks:
        if s.id not in state and (c := visit(s.id)):
            return c
    return None


def hop_levels(sub_tasks: list[SubTask]) -> dict[str, int]:
    """The hop level each sub-task should have (1 + max over its dependencies). Needs an
    acyclic DAG with known ids."""
    by_id = {s.id: s for s in sub_tasks}
    levels: dict[str, int] = {}

    def level(i: str) -> int:
        if i not in levels:
            ds = deps(by_id[i])
            levels[i] = 1 + max((level(d) for d in ds), default=0)
        return levels[i]

    for s in sub_tasks:
        level(s.id)
    return levels


def dependents(sub_tasks: list[SubTask]) -> dict[str, list[str]]:
    """id -> ids of the sub-tasks that depend on it."""
    out: dict[str, list[str]] = {s.id: [] for s in sub_tasks}
    for s in sub_tasks:
        for d in deps(s):
            out.setdefault(d, []).append(s.id)
    return out


def parallel_flags(sub_tasks: list[SubTask]) -> dict[str, bool]:
    """``is_parallel`` as the DAG implies it: another sub-question shares the hop level
    (steps at one level never depend on each other, so they can run together)."""
    levels = hop_levels(sub_tasks)
    count = Counter(levels.values())
    return {i: count[lv] > 1 for i, lv in levels.items()}


def classify_scenario(sub_tasks: list[SubTask]) -> str | None:
    """The scenario type of a DAG (see the module docstring); None without tool steps."""
    levels = hop_levels(sub_tasks)
    tool_levels = [levels[s.id] for s in sub_tasks if s.needs_tool]
    if not tool_levels:
        return None
    if len(tool_levels) == 1:
        return "single_hop"
    if max(tool_levels) == 1:
        return "parallel_single_hop"
    per_level = Counter(tool_levels)
    return "multi_hop" if max(per_level.values()) == 1 else "parallel_multi_hop"


def topological_order(sub_tasks: list[SubTask]) -> list[str]:
    """Ids sorted by (hop level, original position)."""
    levels = hop_levels(sub_tasks)
    pos = {s.id: i for i, s in enumerate(sub_tasks)}
    return sorted(levels, key=lambda i: (levels[i], pos[i]))


# ---------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------

_PLACEHOLDERS = {
    "", "unknown", "unknow", "n/a", "na", "n.a.", "none", "null", "nil", "tbd", "tbc", "todo", "?", "??", "...",
    "…", "-", "--", "answer", "the answer", "sub_answer", "sub-answer", "value", "result", "placeholder",
    "not available", "not known", "unspecified", "not specified", "undefined", "xxx", "x", "same as above",
    "see above", "depends", "it depends", "various", "varies", "not applicable", "unanswerable",
}
_PLACEHOLDER_PATTERNS = [
    re.compile(r"^<[^<>]*>$"), re.compile(r"^\[[^\[\]]*\]$"), re.compile(r"^\{[^{}]*\}$"),
    re.compile(r"^\$?\{?(a|ans|answer|sub_answer|q|result)[ _\-]?\d+\}?$"),
    re.compile(r"^(answer|result|value) (of|from|to) "),
]


def is_placeholder(answer: Any) -> bool:
    """True for an empty answer or a stand-in for one (``unknown``, ``N/A``, ``<answer>``,
    ``a1``, ``{answer_2}``, ``TBD`` …)."""
    if answer is None:
        return True
    s = re.sub(r"\s+", " ", str(answer)).strip().lower().strip(".")
    if s in _PLACEHOLDERS:
        return True
    return any(p.search(s) for p in _PLACEHOLDER_PATTERNS)


_NUM = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


def parse_number(s: Any) -> float | None:
    if isinstance(s, bool):
        return None
    if isinstance(s, int | float):
        return float(s)
    t = str(s).strip().replace("\u2212", "-")
    t = re.sub(r"^(us)?\$|\s*(%|usd|km|m|kg|cm|minutes|min|years?)$", "", t, flags=re.I).strip()
    return float(t.replace(",", "")) if _NUM.match(t) else None


def norm_text(s: Any) -> str:
    t = str(s).casefold().replace("\u2019", "'")
    t = re.sub(r"[\"“”«»]", "", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t.strip(" .!?;:,'")


def answers_match(a: Any, b: Any, *, rel_tol: float = 1e-6) -> bool:
    """Loose equality of two answers: numbers by value (``1,200`` == ``1200.0``), text
    case-, quote- and whitespace-insensitive. (The sandbox's typed matching is stricter.)"""
    na, nb = parse_number(a), parse_number(b)
    if na is not None and nb is not None:
        return math.isclose(na, nb, rel_tol=rel_tol, abs_tol=1e-9)
    return norm_text(a) == norm_text(b) and norm_text(a) != ""


def mentions(text: str, answer: Any) -> bool:
    """Whether ``answer`` occurs in ``text`` as a whole word/number (normalized)."""
    a, t = norm_text(answer), norm_text(text)
    if not a:
        return False
    if re.search(rf"(?<![\w]){re.escape(a)}(?![\w])", t):
        return True
    n = parse_number(answer)
    if n is not None:
        for m in re.finditer(r"[-+]?\d[\d,]*(?:\.\d+)?", t):
            v = parse_number(m.group(0))
            if v is not None and math.isclose(v, n, rel_tol=1e-9, abs_tol=1e-9):
                return True
    return False


# ---------------------------------------------------------------------------------
# The output validation
# ---------------------------------------------------------------------------------


def check_structure(inst: QAInstance) -> None:
    """The structural half of :func:`check_decomposition` (ids, dependencies, acyclicity,
    order, hop levels, concrete answers); raises :class:`Rejected`."""
    subs = inst.sub_tasks
    if not subs:
        raise Rejected("no_sub_questions", "the decomposition has no sub-questions")
    ids = [s.id for s in subs]
    dup = sorted(i for i, n in Counter(ids).items() if n > 1)
    if dup:
        raise Rejected("duplicate_id", f"ids used more than once: {', '.join(dup)}")
    if not inst.question.strip():
        raise Rejected("empty_question", "the main question q0 is empty")
    for s in subs:
        if not s.sub_question.strip():
            raise Rejected("empty_question", f"sub-question {s.id} is empty")
    known = set(ids)
    for s in subs:
        unknown = [d for d in deps(s) if d not in known]
        if unknown:
            raise Rejected("unknown_dependency", f"{s.id} depends on unknown id(s) {', '.join(unknown)}")
        if s.id in deps(s):
            raise Rejected("cyclic_dependency", f"{s.id} depends on itself")
    cycle = find_cycle(subs)
    if cycle:
        raise Rejected("cyclic_dependency", "dependency cycle " + " -> ".join(cycle))
    pos = {i: k for k, i in enumerate(ids)}
    for s in subs:
        later = [d for d in deps(s) if pos[d] > pos[s.id]]
        if later:
            raise Rejected("forward_dependency", f"{s.id} depends on later id(s) {', '.join(later)}")
    levels = hop_levels(subs)
    for s in subs:
        if s.hop_level != levels[s.id]:
            raise Rejected("hop_level_mismatch",
                           f"{s.id} has hop_level {s.hop_level}, its dependencies imply {levels[s.id]}")
    if is_placeholder(inst.answer):
        raise Rejected("placeholder_answer", f"final answer {inst.answer!r} is not a concrete value")
    for s in subs:
        if is_placeholder(s.sub_answer):
            raise Rejected("placeholder_answer", f"{s.id} answer {s.sub_answer!r} is not a concrete value")


def check_decomposition(inst: QAInstance, *, budget: HopBudget | str | None = None,
                        scenarios: Collection[str] | None = None,
                        given_answer: str | None = None) -> QAInstance:
    """Validate a decomposition (see the module docstring for the checks and their order).
    Returns the instance with the scenario type and ``is_parallel`` flags corrected (the
    corrections listed in ``meta["corrections"]``); raises :class:`Rejected`."""
    check_structure(inst)
    subs = inst.sub_tasks
    scenario = classify_scenario(subs)
    if scenario is None:
        raise Rejected("no_tool_step", "no sub-question needs a tool")
    if budget is not None:
        b = HopBudget.parse(budget)
        if not b.contains(len(subs)):
            raise Rejected("hops_out_of_budget", f"{len(subs)} sub-questions, budget {b.spec}")
    if scenarios is not None and scenario not in scenarios:
        raise Rejected("scenario_mismatch", f"the DAG is {scenario} (declared {inst.scenario}); "
                                            f"requested {', '.join(scenarios)}")
    if given_answer is not None and str(given_answer).strip() and not answers_match(inst.answer, given_answer):
        raise Rejected("answer_mismatch", f"a0 {inst.answer!r} differs from the given answer {given_answer!r}")
    corrections: list[str] = list(inst.meta.get("corrections", []))
    meta = dict(inst.meta)
    if scenario != inst.scenario:
        corrections.append(f"scenario {inst.scenario} -> {scenario}")
        meta["scenario_declared"] = inst.scenario
    flags = parallel_flags(subs)
    new_subs = []
    for s in subs:
        if s.is_parallel != flags[s.id]:
            corrections.append(f"{s.id}.is_parallel {s.is_parallel} -> {flags[s.id]}")
            s = s.model_copy(update={"is_parallel": flags[s.id]})
        new_subs.append(s)
    if corrections:
        meta["corrections"] = corrections
    meta["hops"] = len(subs)
    return inst.model_copy(update={"scenario": scenario, "sub_tasks": new_subs, "meta": meta})


# ---------------------------------------------------------------------------------
# Inputs: corpus, questions, requests
# ---------------------------------------------------------------------------------


class CorpusLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    domain: str
    text: str

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class QuestionLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str
    answer: str | None = None
    domain: str | None = None

    @field_validator("id", "answer", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return format_value(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _read_jsonl(path: str | Path, model: type[BaseModel], what: str) -> list[Any]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file not found", path=str(p))
    out = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(model.model_validate(json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"not JSON: {e.msg}", path=str(p), line=n) from None
            except ValidationError as e:
                err = e.errors()[0]
                raise InputError(f"not a {what} record: {err.get('msg')}", path=str(p), line=n,
                                 field=".".join(str(x) for x in err.get("loc", ()))) from None
    return out


def load_corpus(path: str | Path) -> list[CorpusLine]:
    """A knowledge corpus: JSONL of ``{"id", "domain", "text"}``."""
    return _read_jsonl(path, CorpusLine, "corpus")


def load_questions(path: str | Path) -> list[QuestionLine]:
    """Questions to decompose: JSONL of ``{"id", "question", "answer"?, "domain"?}``."""
    return _read_jsonl(path, QuestionLine, "question")


class DecomposeRequest(Record):
    """One LLM decomposition to make: a question to decompose (``conditional``) or a
    question to invent in a domain, grounded in ``knowledge`` (``unconditional``)."""

    id: str
    domain: str
    mode: Literal["conditional", "unconditional"]
    question: str | None = None
    answer: str | None = None  # a known a0 (conditional); a0 must match it
    knowledge: str = ""
    knowledge_ids: list[str] = Field(default_factory=list)
    scenario: Scenario | None = None  # the type asked for (unconditional)
    hops: str = "3-5"  # a HopBudget spec
    sample_index: int = 0

    def record_key(self) -> str:
        return self.id


def _windows(lines: list[CorpusLine], max_chars: int) -> list[list[CorpusLine]]:
    out: list[list[CorpusLine]] = []
    cur: list[CorpusLine] = []
    size = 0
    for ln in lines:
        if cur and size + len(ln.text) > max_chars:
            out.append(cur)
            cur, size = [], 0
        cur.append(ln)
        size += len(ln.text) + 1
    if cur:
        out.append(cur)
    return out


def _knowledge(lines: list[CorpusLine]) -> tuple[str, list[str]]:
    return "\n".join(ln.text.strip() for ln in lines), [ln.id for ln in lines]


def build_requests(*, corpus: list[CorpusLine] | None = None, questions: list[QuestionLine] | None = None,
                   domains: list[str] | None = None, scenarios: list[str] | None = None, n: int = 5,
                   hops: str = "3-5", knowledge_chars: int = 4000) -> list[DecomposeRequest]:
    """The LLM decomposition requests of a run.

    - with ``questions``: one conditional request per question (``domains`` filters the
      questions that name a domain; a question without one gets the single ``--domains``
      value, else ``general``); its knowledge is its domain's corpus lines (truncated to
      ``knowledge_chars``), possibly none;
    - without: ``n`` unconditional requests per (domain, scenario) over the corpus domains
      (or ``domains``), each grounded in the next window of its domain's lines.
    """
    HopBudget.parse(hops)
    by_domain: dict[str, list[CorpusLine]] = {}
    for ln in corpus or []:
        by_domain.setdefault(ln.domain, []).append(ln)
    reqs: list[DecomposeRequest] = []
    if questions is not None:
        default_domain = domains[0] if domains and len(domains) == 1 else "general"
        for q in questions:
            dom = q.domain or default_domain
            if domains and q.domain and q.domain not in domains:
                continue
            lines = _windows(by_domain.get(dom, []), knowledge_chars)[:1]
            text, kids = _knowledge(lines[0]) if lines else ("", [])
            reqs.append(DecomposeRequest(id=f"{dom}.q.{q.id}", domain=dom, mode="conditional", question=q.question,
                                         answer=q.answer, knowledge=text, knowledge_ids=kids, hops=hops))
        return reqs
    if not by_domain:
        raise ConfigError("unconditional decomposition needs a knowledge corpus (--knowledge corpus.jsonl)")
    doms = domains or sorted(by_domain)
    missing = [d for d in doms if d not in by_domain]
    if missing:
        raise ConfigError(f"no corpus lines for domain(s) {', '.join(missing)}; corpus domains: "
                          f"{', '.join(sorted(by_domain))}")
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    for dom in doms:
        wins = _windows(by_domain[dom], knowledge_chars)
        k = 0
        for scen in scenarios or SCENARIOS:
            for i in range(n):
                text, kids = _knowledge(wins[k % len(wins)])
                k += 1
                reqs.append(DecomposeRequest(id=f"{dom}.u.{scen}.{i:03d}", domain=dom, mode="unconditional",
                                             knowledge=text, knowledge_ids=kids, scenario=scen, hops=hops,
                                             sample_index=i))
    return reqs


# ---------------------------------------------------------------------------------
# Structured output of the LLM
# ---------------------------------------------------------------------------------


def _answer_str(v: Any) -> Any:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | float):
        return format_value(v)
    return v


class SubQuestionDraft(BaseModel):
    """One sub-question as the model writes it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    hop_level: int = Field(ge=1)
    sub_question: str
    is_parallel: bool = False
    dependency: list[str] | None = None
    sub_answer: str
    needs_tool: bool = True

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("dependency", mode="before")
    @classmethod
    def _deps(cls, v: Any) -> Any:
        if v is None or v == "" or (isinstance(v, str) and v.strip().lower() in ("null", "none")):
            return None
        if isinstance(v, str | int):
            v = [v]
        if isinstance(v, list):
            v = [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
            return v or None
        return v

    @field_validator("sub_answer", mode="before")
    @classmethod
    def _ans(cls, v: Any) -> Any:
        return _answer_str(v)


class DecompositionDraft(BaseModel):
    """A decomposition as the model writes it: q0, a0, the scenario type and the DAG."""

    model_config = ConfigDict(extra="ignore")

    scenario: Scenario
    question: str
    answer: str
    sub_questions: list[SubQuestionDraft]

    @field_validator("scenario", mode="before")
    @classmethod
    def _scen(cls, v: Any) -> Any:
        return _norm_scenario(v) if isinstance(v, str) else v

    @field_validator("answer", mode="before")
    @classmethod
    def _ans(cls, v: Any) -> Any:
        return _answer_str(v)


SCENARIO_GUIDE = {
    "single_hop": "one sub-question answered by one tool call; a0 is its answer",
    "parallel_single_hop": "2-3 independent sub-questions (no dependencies between them), "
                           "then optionally one final non-tool step that combines their answers "
                           "(compare, sum, pick the larger)",
    "multi_hop": "a chain: each sub-question needs the answer of the previous one (q2 uses a1, q3 uses a2, ...); "
                 "a0 is the answer of the last one",
    "parallel_multi_hop": "two or more independent chains (at least one of length >= 2) whose results are "
                          "joined at the end, usually by a final non-tool comparison or sum",
}


def _example() -> str:
    subs = [
        {"id": "s1", "hop_level": 1, "sub_question": "Which company makes the Zephyr X2 drone?",
         "is_parallel": False, "dependency": None, "sub_answer": "Aerolux", "needs_tool": True},
        {"id": "s2", "hop_level": 2, "sub_question": "Who founded Aerolux?", "is_parallel": False,
         "dependency": ["s1"], "sub_answer": "Mara Quint", "needs_tool": True},
        {"id": "s3", "hop_level": 3, "sub_question": "In what year was Mara Quint born?", "is_parallel": False,
         "dependency": ["s2"], "sub_answer": "1971", "needs_tool": True},
    ]
    head = {"scenario": "multi_hop",
            "question": "In what year was the founder of the company that makes the Zephyr X2 drone born?",
            "answer": "1971"}
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    body = ",\n".join("  " + json.dumps(s, ensure_ascii=False) for s in subs)
    return "{\n" + "\n".join(lines) + '\n "sub_questions": [\n' + body + "\n ]\n}"


def decompose_messages(req: DecomposeRequest, *, scenarios: Collection[str] | None = None) -> list[dict[str, str]]:
    """The chat messages for one request (the prompt templates filled in)."""
    budget = HopBudget.parse(req.hops)
    common = dict(domain=req.domain, knowledge=req.knowledge, budget=budget.describe(),
                  scenario_guide=SCENARIO_GUIDE, example=_example())
    if req.mode == "conditional":
        if not req.question:
            raise ConfigError(f"request {req.id}: a conditional decomposition needs a question")
        allowed = list(scenarios) if scenarios else list(SCENARIOS)
        content = render("qa_decompose_conditional", question=req.question, answer=req.answer or "",
                         allowed=allowed, **common)
    else:
        target = req.scenario or "multi_hop"
        content = render("qa_decompose_unconditional", scenario=target, **common)
    return [{"role": "system", "content": "You design multi-hop question-answer data for training tool-using "
                                          "agents. You answer with JSON only."},
            {"role": "user", "content": content}]


def draft_to_instance(draft: DecompositionDraft, req: DecomposeRequest) -> QAInstance:
    subs = [SubTask(id=s.id.strip(), hop_level=s.hop_level, sub_question=s.sub_question.strip(),
                    is_parallel=s.is_parallel, dependency=[d.strip() for d in s.dependency] if s.dependency else None,
                    sub_answer=s.sub_answer.strip(), needs_tool=s.needs_tool)
            for s in draft.sub_questions]
    question = req.question if req.mode == "conditional" and req.question else draft.question
    meta: dict[str, Any] = {"source": "llm", "mode": req.mode, "request_id": req.id, "hop_budget": req.hops,
                            "knowledge_ids": req.knowledge_ids}
    if req.mode == "conditional" and draft.question.strip() and draft.question.strip() != question.strip():
        meta["question_restated"] = draft.question.strip()
    if req.scenario:
        meta["scenario_requested"] = req.scenario
    if req.answer:
        meta["given_answer"] = req.answer
    return QAInstance(id=req.id, domain=req.domain, scenario=draft.scenario, question=question.strip(),
                      answer=draft.answer.strip(), sub_tasks=subs, knowledge=req.knowledge, meta=meta)


async def decompose_request(client: LLMClient, req: DecomposeRequest, *, scenarios: Collection[str] | None = None,
                            temperature: float = 0.7, max_repairs: int = 2,
                            max_tokens: int = 1500) -> QAInstance:
    """Decompose (or invent and decompose) one question with the LLM and validate the
    result. Raises :class:`Rejected` (``unparseable_output`` or a check's reason) or an
    :class:`~astra.llm.LLMError`."""
    messages = decompose_messages(req, scenarios=scenarios)
    try:
        draft = await client.structured(messages, DecompositionDraft, max_repairs=max_repairs,
                                        temperature=temperature, sample_index=req.sample_index,
                                        max_tokens=max_tokens)
    except StructuredOutputError as e:
        raise Rejected("unparseable_output", str(e)[:300]) from None
    inst = draft_to_instance(draft, req)
    return check_decomposition(inst, budget=req.hops, scenarios=scenarios, given_answer=req.answer)


__all__ = [
    "AUTO_RANGE", "SCENARIOS", "CorpusLine", "DecomposeRequest", "DecompositionDraft", "HopBudget",
    "QuestionLine", "Rejected", "SubQuestionDraft", "answers_match", "build_requests", "check_decomposition",
    "check_structure",
    "classify_scenario", "decompose_messages", "decompose_request", "dependents", "deps", "draft_to_instance",
    "find_cycle", "hop_levels", "is_placeholder", "load_corpus", "load_questions", "mentions", "norm_text",
    "parallel_flags", "parse_number", "parse_scenarios", "topological_order",
]
