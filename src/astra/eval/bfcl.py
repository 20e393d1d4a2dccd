"""BFCL (Berkeley Function Calling Leaderboard) through the ``bfcl-eval`` package.

What is BFCL's own code and what is ours:

- **BFCL's** (imported from ``bfcl_eval``, unchanged): the data and possible answers
  (``load_dataset_entry`` / ``load_ground_truth_entry``), the function-doc → OpenAI tool
  conversion (``convert_to_tool``, with its ``.`` → ``_`` renaming), the FC-call → Python
  call-string conversion (``convert_to_function_call``), the executable multi-turn backends
  and their executor (``execute_multi_turn_func_call``: instances carry their state across
  turns, as in BFCL), the per-entry scorers of ``bfcl evaluate``
  (``_evaluate_single_ast_entry``, ``_evaluate_single_relevance_entry``,
  ``_evaluate_single_multi_turn_entry``, i.e. the AST checker and the multi-turn
  state/response checkers), the step limit, the miss-func prompt, and the summary formulas
  (``calculate_unweighted_accuracy`` / ``calculate_weighted_accuracy``).
- **Ours** (this module): the inference loop, a line-for-line port of BFCL's
  ``BaseHandler.inference_single_turn_FC`` / ``inference_multi_turn_FC`` for an
  OpenAI-style function-calling model, driven through astra's LLM layer (embedded model,
  checkpoint directory or any OpenAI-compatible endpoint); and the **translation layer**
  (:func:`bfcl_model_responses`, :class:`FCDecoder`): our ``ToolCall`` (name + JSON-string
  arguments) becomes BFCL's FC result ``[{name: arguments_json}]``, tool names are mapped
  back from the OpenAI-safe form (``math_factorial``) to BFCL's (``math.factorial``), and
  the decoder is the FC branch of BFCL's ``OpenAICompletionsHandler`` (AST checker input
  ``[{func: {arg: value}}]``; multi-turn input ``["cd(folder='x')", ...]``).

Two narrow import shims keep the package's heavy optional dependencies out (see
:func:`_bfcl`): ``bfcl_eval.constants.model_config`` (it imports every vendor SDK; the
checkers only read ``underscore_to_dot`` from it) and the Java/JavaScript tree-sitter
parsers (only used for prompting-mode Java/JS decoding, which is not supported here).

One safety rule is ours: BFCL ``eval``s the call strings it builds from model output. A
call whose function name is not a dotted identifier, or whose argument names are not
identifiers, could inject code into that string, so it is replaced by the call
``invalid_tool_call()`` (which fails to execute, and never matches an expected call).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib
import json
import os
import re
import sys
import time
import types
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astra.choices import comma_items
from astra.errors import ConfigError
from astra.eval import model_spec
from astra.llm import LLMClient, LLMError, LLMSettings, make_client
from astra.llm.types import ChatResponse

VERSION_PREFIX = "BFCL_v4"

#: Categories this module runs, in BFCL's display order.
SINGLE_TURN_AST = ["simple_python", "multiple", "parallel", "parallel_multiple"]
LIVE_AST = ["live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"]
RELEVANCE = ["irrelevance", "live_irrelevance", "live_relevance"]
MULTI_TURN = ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]
SUPPORTED = SINGLE_TURN_AST + ["irrelevance"] + LIVE_AST + ["live_irrelevance", "live_relevance"] + MULTI_TURN

#: Short names and groups accepted by ``--categories``.
ALIASES: dict[str, list[str]] = {
    "simple": ["simple_python"],
    "python": SINGLE_TURN_AST + ["irrelevance"],
    "single_turn": SINGLE_TURN_AST,
    "ast": SINGLE_TURN_AST,
    "non_live": SINGLE_TURN_AST + ["irrelevance"],
    "live": LIVE_AST + ["live_irrelevance", "live_relevance"],
    "multi_turn": MULTI_TURN,
    "all": SUPPORTED,
}

#: The model key under which the AST checker looks up ``underscore_to_dot``. Our
#: translation layer maps names back to BFCL's dotted form itself, so it is False.
CHECKER_MODEL_NAME = "astra"

_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
INVALID_CALL = "invalid_tool_call"


# --------------------------------------------------------------------------- imports --
class _CheckerModelConfig:
    """What BFCL's checkers read from a model's config: only ``underscore_to_dot``."""

    underscore_to_dot = False


class _ModelConfigMapping(dict):
    def __missing__(self, key: str) -> _CheckerModelConfig:
        return _CheckerModelConfig()


def _unsupported_parser(*_a: Any, **_k: Any) -> Any:
    raise NotImplementedError("Java/JavaScript prompting-mode decoding is not supported by astra eval bfcl")


_BFCL: types.SimpleNamespace | None = None


def _bfcl() -> types.SimpleNamespace:
    """Import the parts of ``bfcl_eval`` we use (once), behind two narrow shims."""
    global _BFCL
    if _BFCL is not None:
        return _BFCL
    from astra.paths import cache_root

    # bfcl_eval creates result/score/lock folders under its project root on import; keep
    # them out of site-packages.
    os.environ.setdefault("BFCL_PROJECT_ROOT", str(cache_root() / "bfcl"))
    shims: dict[str, types.ModuleType] = {}
    try:
        import bfcl_eval  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ConfigError("BFCL needs the 'bfcl-eval' package: pip install --no-deps bfcl-eval==2026.3.23 "
                          f"(and the eval extras listed in docs/evaluation.md): {e}") from None
    if "bfcl_eval.constants.model_config" not in sys.modules:
        m = types.ModuleType("bfcl_eval.constants.model_config")
        m.MODEL_CONFIG_MAPPING = _ModelConfigMapping()  # type: ignore[attr-defined]
        shims[m.__name__] = m
    for mod, fn in [("java_parser", "parse_java_function_call"), ("js_parser", "parse_javascript_function_call")]:
        name = f"bfcl_eval.model_handler.parser.{mod}"
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError:  # tree-sitter and its grammars are not installed
            m = types.ModuleType(name)
            setattr(m, fn, _unsupported_parser)
            shims[name] = m
    sys.modules.update(shims)
    try:
        from bfcl_eval.constants.default_prompts import (
            DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC,
            MAXIMUM_STEP_LIMIT,
        )
        from bfcl_eval.constants.enums import Language, ModelStyle, ReturnFormat
        from bfcl_eval.constants.eval_config import LOCK_DIR
        from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
        from bfcl_eval.eval_checker import eval_runner, eval_runner_helper
        from bfcl_eval.eval_checker.ast_eval import ast_checker
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
        from bfcl_eval.model_handler.utils import convert_to_function_call, convert_to_tool
        from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry
    except ImportError as e:
        raise ConfigError(f"cannot import bfcl_eval ({e}); install the eval extras listed in "
                          "docs/evaluation.md") from None
    finally:
        for name, m in shims.items():  # the shims only served these imports
            if sys.modules.get(name) is m:
                del sys.modules[name]
    mapping = ast_checker.MODEL_CONFIG_MAPPING
    if CHECKER_MODEL_NAME not in mapping:
        mapping[CHECKER_MODEL_NAME] = _CheckerModelConfig()
    _BFCL = types.SimpleNamespace(
        load_dataset_entry=load_dataset_entry, load_ground_truth_entry=load_ground_truth_entry,
        convert_to_tool=convert_to_tool, convert_to_function_call=convert_to_function_call,
        GORILLA_TO_OPENAPI=GORILLA_TO_OPENAPI, ModelStyle=ModelStyle, Language=Language,
        ReturnFormat=ReturnFormat, MAXIMUM_STEP_LIMIT=MAXIMUM_STEP_LIMIT,
        MISS_FUNC_PROMPT=DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC,
        execute=multi_turn_utils.execute_multi_turn_func_call,
        is_empty_execute_response=multi_turn_utils.is_empty_execute_response,
        multi_turn_utils=multi_turn_utils,
        evaluate_ast=eval_runner._evaluate_single_ast_entry,
        evaluate_relevance=eval_runner._evaluate_single_relevance_entry,
        evaluate_multi_turn=eval_runner._evaluate_single_multi_turn_entry,
        LOCK_DIR=LOCK_DIR,
        unweighted=eval_runner_helper.calculate_unweighted_accuracy,
        weighted=eval_runner_helper.calculate_weighted_accuracy,
    )
    return _BFCL


# ------------------------------------------------------------------ translation layer --
class FCDecoder:
    """The FC branch of BFCL's ``OpenAICompletionsHandler.decode_ast`` /
    ``decode_execute`` (``is_fc_model=True``): what ``bfcl evaluate`` uses for an OpenAI
    function-calling model. Passed to BFCL's scorers as their ``handler``."""

    def decode_ast(self, result: Any, language: Any = None, has_tool_call_tag: bool = False) -> list[dict]:
        decoded_output = []
        for invoked_function in result:
            name = list(invoked_function.keys())[0]
            params = json.loads(invoked_function[name])
            decoded_output.append({name: params})
        return decoded_output

    def decode_execute(self, result: Any, has_tool_call_tag: bool = False) -> list[str]:
        return _bfcl().convert_to_function_call(result)


def openai_name_map(functions: Sequence[dict]) -> dict[str, str]:
    """OpenAI-safe tool name → BFCL function name (``math_factorial`` → ``math.factorial``),
    for the names ``convert_to_tool`` renamed (ambiguous renamings are left out)."""
    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    for f in functions:
        safe = re.sub(r"\.", "_", f["name"])
        seen[safe] = seen.get(safe, 0) + 1
        if safe != f["name"]:
            out[safe] = f["name"]
    return {k: v for k, v in out.items() if seen[k] == 1}


def _is_safe_call(name: str, arguments: str) -> bool:
    if not _SAFE_NAME.match(name or ""):
        return False
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except (ValueError, AttributeError):
        return True  # undecodable: BFCL's decoder rejects it before anything is executed
    if isinstance(args, dict):
        return all(isinstance(k, str) and k.isidentifier() for k in args)
    return True


def bfcl_model_responses(resp: ChatResponse, name_map: dict[str, str] | None = None) -> list[dict[str, str]] | str:
    """Our chat response as BFCL's FC ``model_responses``: ``[{name: arguments_json}, ...]``
    when the model called tools, else its text (which BFCL's decoder rejects: no call)."""
    if not resp.tool_calls:
        return resp.content or ""
    name_map = name_map or {}
    out: list[dict[str, str]] = []
    for tc in resp.tool_calls:
        name = name_map.get(tc.name, tc.name)
        arguments = tc.arguments if isinstance(tc.arguments, str) else json.dumps(tc.arguments)
        if not _is_safe_call(name, arguments):
            name, arguments = INVALID_CALL, "{}"
        out.append({name: arguments})
    return out


# ------------------------------------------------------------------------- the data --
def resolve_categories(spec: str | Sequence[str] | None) -> list[str]:
    """``"simple,multiple,multi_turn"`` → BFCL category names (order kept, no duplicates)."""
    if spec is None:
        items = ["simple_python", "multiple", "multi_turn_base"]
    else:
        items = comma_items(spec)
    out: list[str] = []
    for item in items:
        names = ALIASES.get(item, [item])
        for n in names:
            if n not in SUPPORTED:
                raise ConfigError(f"unknown or unsupported BFCL category {item!r}; choose from "
                                  f"{', '.join(SUPPORTED)} or a group ({', '.join(ALIASES)})")
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError("no BFCL category selected")
    return out


def category_of(entry_id: str) -> str:
    return entry_id.split(":")[0].rsplit("_", 1)[0]


def is_multi_turn(category: str) -> bool:
    return category.startswith("multi_turn")


def is_relevance(category: str) -> bool:
    return "relevance" in category


@dataclass
class BfclEntry:
    """One test entry: the prompt as BFCL's generation sees it (``entry``), as its scorer
    sees it (``eval_entry``: no language hint) and the possible answer (None for
    relevance categories)."""

    category: str
    entry: dict
    eval_entry: dict
    ground_truth: Any = None

    @property
    def id(self) -> str:
        return self.entry["id"]


@functools.cache
def _load_category(category: str) -> tuple[list[dict], list[dict], list[dict] | None]:
    """BFCL's prompts of a category as its generation loads them, as its scorer loads them
    (no language hint), and its possible answers (None for relevance categories). Cached:
    multi-turn categories take seconds to populate; callers copy what they keep."""
    b = _bfcl()
    b.LOCK_DIR.mkdir(parents=True, exist_ok=True)  # bfcl_eval's file locks live there
    prompts = b.load_dataset_entry(category)
    eval_prompts = b.load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    answers = None if is_relevance(category) else b.load_ground_truth_entry(category)
    if answers is not None and len(answers) != len(prompts):
        raise ConfigError(f"BFCL data for {category}: {len(prompts)} prompts but {len(answers)} answers")
    return prompts, eval_prompts, answers


def load_entries(category: str, *, ids: Sequence[str] | None = None, limit: int | None = None) -> list[BfclEntry]:
    """BFCL's entries of one category (its order), filtered by ``ids`` then cut to ``limit``."""
    prompts, eval_prompts, answers = _load_category(category)
    wanted = set(ids) if ids else None
    out = []
    for i, (p, e) in enumerate(zip(prompts, eval_prompts, strict=True)):
        if wanted is not None and p["id"] not in wanted:
            continue
        # BFCL aligns prompts and answers by index (answer ids may be spelled differently).
        gt = copy.deepcopy(answers[i]["ground_truth"]) if answers is not None else None
        out.append(BfclEntry(category, copy.deepcopy(p), copy.deepcopy(e), gt))
        if limit is not None and len(out) >= limit:
            break
    return out


# ------------------------------------------------------------------------ inference --
@dataclass
class InferenceOptions:
    temperature: float = 0.0
    max_tokens: int = 1024
    system_prompt: str | None = None  # BFCL's FC mode adds none


def _tools(functions: list[dict]) -> list[dict]:
    b = _bfcl()
    return b.convert_to_tool(functions, b.GORILLA_TO_OPENAPI, b.ModelStyle.OPENAI_COMPLETIONS)


def _start(opts: InferenceOptions) -> list[dict[str, Any]]:
    return [{"role": "system", "content": opts.system_prompt}] if opts.system_prompt else []


def _assistant_message(resp: ChatResponse) -> dict[str, Any]:
    return resp.message()


async def infer_single_turn(client: LLMClient, item: BfclEntry, opts: InferenceOptions) -> tuple[Any, dict]:
    """BFCL's ``inference_single_turn_FC``: one request with the entry's first turn."""
    functions = copy.deepcopy(item.entry["function"])
    messages = _start(opts) + copy.deepcopy(item.entry["question"][0])
    t0 = time.perf_counter()
    resp = await client.chat(messages, tools=_tools(functions), temperature=opts.temperature,
                             max_tokens=opts.max_tokens)
    result = bfcl_model_responses(resp, openai_name_map(functions))
    meta = {"input_token_count": resp.prompt_tokens, "output_token_count": resp.completion_tokens,
            "latency": round(time.perf_counter() - t0, 3),
            "inference_log": messages + [_assistant_message(resp)]}
    return result, meta


def _instance_prefix(run_name: str) -> str:
    return re.sub(r"[-./:]", "_", run_name) + "_"


def release_instances(run_name: str) -> None:
    """Drop the backend instances BFCL's executor cached (in its module globals) for a run."""
    g = vars(_bfcl().multi_turn_utils)
    prefix = _instance_prefix(run_name)
    for k in [k for k in g if k.startswith(prefix) and k.endswith("_instance")]:
        del g[k]


async def infer_multi_turn(client: LLMClient, item: BfclEntry, opts: InferenceOptions,
                           run_name: str) -> tuple[list[list], dict]:
    """BFCL's ``inference_multi_turn_FC``: the user turns in order; within a turn, query,
    decode, execute against BFCL's backends (state carried across turns), feed the results
    back, until the model answers without a decodable call or hits BFCL's step limit
    (which force-quits the entry). Held-out functions (miss_func) join at their turn with
    BFCL's prompt."""
    b = _bfcl()
    entry = item.entry
    decoder = FCDecoder()
    initial_config = entry.get("initial_config", {})
    involved = entry["involved_classes"]
    entry_id = entry["id"]
    long_context = "long_context" in item.category or "composite" in item.category
    holdout: dict[str, list] = entry.get("missed_function", {})
    functions = copy.deepcopy(entry["function"])
    tools = _tools(functions)
    names = openai_name_map(functions)
    # Instantiate the backends (as BFCL does before the first turn).
    b.execute([], initial_config, involved, run_name, entry_id, long_context=long_context, is_evaL_run=False)
    messages = _start(opts)
    all_responses: list[list] = []
    tokens_in: list[list[int]] = []
    tokens_out: list[list[int]] = []
    force_quit = False
    for turn_idx, turn_messages in enumerate(entry["question"]):
        turn_messages = copy.deepcopy(turn_messages)
        if str(turn_idx) in holdout:
            functions.extend(copy.deepcopy(holdout[str(turn_idx)]))
            tools = _tools(functions)
            names = openai_name_map(functions)
            turn_messages = [{"role": "user", "content": b.MISS_FUNC_PROMPT}]
        messages.extend(turn_messages)
        turn_responses: list = []
        turn_in: list[int] = []
        turn_out: list[int] = []
        count = 0
        while True:
            resp = await client.chat(messages, tools=tools, temperature=opts.temperature,
                                     max_tokens=opts.max_tokens)
            turn_in.append(resp.prompt_tokens)
            turn_out.append(resp.completion_tokens)
            model_responses = bfcl_model_responses(resp, names)
            messages.append(_assistant_message(resp))
            turn_responses.append(model_responses)
            try:
                decoded = decoder.decode_execute(model_responses)
                if b.is_empty_execute_response(decoded):
                    break
            except Exception:  # BFCL: an undecodable reply ends the turn
                break
            results, _ = b.execute(decoded, initial_config, involved, run_name, entry_id,
                                   long_context=long_context, is_evaL_run=False)
            for result, tc in zip(results, resp.tool_calls, strict=False):
                messages.append({"role": "tool", "tool_call_id": tc.id, "name": tc.name, "content": result})
            count += 1
            if count > b.MAXIMUM_STEP_LIMIT:
                force_quit = True
                break
        all_responses.append(turn_responses)
        tokens_in.append(turn_in)
        tokens_out.append(turn_out)
        if force_quit:
            break
    meta = {"input_token_count": tokens_in, "output_token_count": tokens_out,
            "force_quit": force_quit, "inference_log": messages}
    return all_responses, meta


# -------------------------------------------------------------------------- scoring --
def score_entry(item: BfclEntry, result: Any, run_name: str) -> dict:
    """Score one entry with BFCL's own per-entry scorer; ``{"valid": True}`` or BFCL's
    error record (``error``/``error_type``/...)."""
    b = _bfcl()
    decoder = FCDecoder()
    eval_entry = copy.deepcopy(item.eval_entry)
    if is_multi_turn(item.category):
        return b.evaluate_multi_turn(decoder, item.id, result, item.ground_truth, eval_entry,
                                     run_name, item.category)
    if is_relevance(item.category):
        return b.evaluate_relevance(decoder, item.id, result, eval_entry, CHECKER_MODEL_NAME, item.category)
    return b.evaluate_ast(decoder, item.id, result, item.ground_truth, eval_entry, CHECKER_MODEL_NAME,
                          item.category, language=b.Language.PYTHON, return_format=b.ReturnFormat.PYTHON,
                          has_tool_call_tag=False)


# -------------------------------------------------------------------------- reports --
@dataclass
class EntryResult:
    id: str
    category: str
    valid: bool
    result: Any
    error_type: str | None = None
    error: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CategoryScore:
    category: str
    total: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class SummaryScore:
    name: str
    accuracy: float
    categories: list[str]
    of: list[str]
    how: str

    @property
    def complete(self) -> bool:
        return set(self.of) <= set(self.categories)


@dataclass
class BfclReport:
    model: str
    categories: list[CategoryScore]
    summaries: list[SummaryScore]
    entries: list[EntryResult]
    seconds: float = 0.0
    command: str | None = None

    def by_category(self) -> dict[str, CategoryScore]:
        return {c.category: c for c in self.categories}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "seconds": round(self.seconds, 1), "command": self.command,
            "categories": {c.category: {"accuracy": c.accuracy, "correct_count": c.correct, "total_count": c.total}
                           for c in self.categories},
            "summaries": {s.name: {"accuracy": s.accuracy, "categories": s.categories, "of": s.of,
                                   "complete": s.complete, "how": s.how} for s in self.summaries},
        }

    def rows(self) -> list[tuple[str, str, str, str]]:
        rows = [(c.category, str(c.total), str(c.correct), f"{100 * c.accuracy:.2f}%") for c in self.categories]
        for s in self.summaries:
            cover = "" if s.complete else f" ({len(s.categories)}/{len(s.of)} categories)"
            n = sum(c.total for c in self.categories if c.category in s.categories)
            rows.append((f"{s.name}{cover}", str(n), "", f"{100 * s.accuracy:.2f}%"))
        return rows

    def markdown(self) -> str:
        lines = [f"BFCL ({VERSION_PREFIX}) — model `{self.model}`", "",
                 "| category | entries | correct | accuracy |", "|---|---:|---:|---:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows()]
        return "\n".join(lines) + "\n"

    def table(self):
        from rich.table import Table

        t = Table(title=f"BFCL ({VERSION_PREFIX}) — {self.model}", title_justify="left")
        for col, just in [("category", "left"), ("entries", "right"), ("correct", "right"), ("accuracy", "right")]:
            t.add_column(col, justify=just)
        n = len(self.categories)
        for i, row in enumerate(self.rows()):
            t.add_row(*row, end_section=(i == n - 1))
        return t


SUMMARY_DEFS = [
    # name, BFCL's categories, formula (as in bfcl_eval's eval_runner_helper)
    ("Non-Live AST (summary)", SINGLE_TURN_AST, "unweighted"),
    ("Live AST (summary)", LIVE_AST, "weighted"),
    ("Multi-Turn (overall)", MULTI_TURN, "unweighted"),
]


def summarize(categories: list[CategoryScore]) -> list[SummaryScore]:
    """BFCL's section scores over the categories that were run: Non-Live and Multi-Turn
    are unweighted means of their categories, Live is weighted by entry count (BFCL's
    ``calculate_unweighted_accuracy`` / ``calculate_weighted_accuracy``). BFCL's own
    leaderboard counts a category that was not run as 0; here it is left out and the row
    says how many categories it covers. (BFCL's "simple" averages Python, Java and
    JavaScript; only Python's is run here.)"""
    b = _bfcl()
    by = {c.category: c for c in categories}
    out = []
    for name, members, how in SUMMARY_DEFS:
        present = [m for m in members if m in by and by[m].total]
        if not present:
            continue
        dicts = [{"accuracy": by[m].accuracy, "total_count": by[m].total, "display_accuracy": by[m].accuracy}
                 for m in present]
        fn = b.unweighted if how == "unweighted" else b.weighted
        acc = fn(dicts, display_na_if_category_missing=False)["accuracy"]
        out.append(SummaryScore(name, acc, present, list(members), how))
    return out


def write_outputs(report: BfclReport, output: Path) -> None:
    """BFCL-format result and score files (JSON lines) plus ``bfcl_summary.{json,md}``."""
    output.mkdir(parents=True, exist_ok=True)
    for cat in report.categories:
        entries = [e for e in report.entries if e.category == cat.category]
        with open(output / f"{VERSION_PREFIX}_{cat.category}_result.json", "w", encoding="utf-8") as f:
            for e in entries:
                f.write(json.dumps(_jsonable({"id": e.id, "result": e.result, **e.meta}), ensure_ascii=False) + "\n")
        header = {"accuracy": cat.accuracy, "correct_count": cat.correct, "total_count": cat.total}
        with open(output / f"{VERSION_PREFIX}_{cat.category}_score.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            for e in entries:
                if not e.valid:
                    rec = {"id": e.id, "test_category": e.category, "valid": False, "error_type": e.error_type,
                           "error": e.error, "model_result": e.result}
                    f.write(json.dumps(_jsonable(rec), ensure_ascii=False) + "\n")
    (output / "bfcl_summary.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    md = report.markdown()
    if report.command:
        md += f"\nCommand: `{report.command}`\n"
    (output / "bfcl_summary.md").write_text(md, encoding="utf-8")


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


# ------------------------------------------------------------------------------ run --
def _error_record(check: dict) -> tuple[str | None, Any]:
    err = check.get("error")
    if isinstance(err, dict):  # multi-turn: {"error_message", "error_type", ...}
        return err.get("error_type"), err.get("error_message", err)
    return check.get("error_type"), err


async def arun_bfcl(
    client: LLMClient,
    *,
    categories: str | Sequence[str] | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    output: Path | str | None = None,
    concurrency: int = 4,
    options: InferenceOptions | None = None,
    model_label: str | None = None,
    on_entry: Callable[[EntryResult], None] | None = None,
) -> BfclReport:
    """Run and score BFCL categories with the model behind ``client``."""
    t0 = time.perf_counter()
    opts = options or InferenceOptions()
    if ids and not categories:
        cats = []
        for i in ids:
            c = category_of(i)
            if c not in cats:
                cats.append(c)
        cats = resolve_categories(cats)
    else:
        cats = resolve_categories(categories)
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be >= 1")
    items: list[BfclEntry] = []
    for cat in cats:
        items.extend(load_entries(cat, ids=ids, limit=limit))
    if ids:
        missing = set(ids) - {it.id for it in items}
        if missing:
            raise ConfigError(f"BFCL ids not found in the selected categories: {', '.join(sorted(missing))}")
    sem = asyncio.Semaphore(max(1, concurrency))
    run_tag = f"astra_{uuid.uuid4().hex[:12]}"

    async def one(item: BfclEntry) -> EntryResult:
        run_name = f"{run_tag}_{re.sub(r'[^A-Za-z0-9_]', '_', item.id)}"
        result: Any  # the model's answer as BFCL's scorers take it, or BFCL's failed-inference string
        async with sem:
            try:
                try:
                    if is_multi_turn(item.category):
                        result, meta = await infer_multi_turn(client, item, opts, run_name)
                    else:
                        result, meta = await infer_single_turn(client, item, opts)
                except LLMError as e:
                    # BFCL records a failed inference as this string; its scorers fail it.
                    result, meta = f"Error during inference: {e}", {"inference_error": f"{type(e).__name__}: {e}"}
                check = score_entry(item, result, run_name)
            finally:
                release_instances(run_name)
        error_type, error = (None, None) if check.get("valid") else _error_record(check)
        er = EntryResult(item.id, item.category, bool(check.get("valid")), result, error_type, error, meta)
        if on_entry:
            on_entry(er)
        return er

    entries = list(await asyncio.gather(*(one(it) for it in items)))
    scores = []
    for cat in cats:
        es = [e for e in entries if e.category == cat]
        scores.append(CategoryScore(cat, len(es), sum(e.valid for e in es)))
    scores = [s for s in scores if s.total]
    label = str(model_label or getattr(client, "provider_id", "model"))
    report = BfclReport(label, scores, summarize(scores), entries, seconds=time.perf_counter() - t0)
    if output is not None:
        write_outputs(report, Path(output))
    return report


def run_bfcl(
    model: str | LLMClient = "embedded",
    *,
    categories: str | Sequence[str] | None = None,
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    output: Path | str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    settings: LLMSettings | None = None,
    concurrency: int = 4,
    temperature: float = 0.0,
    max_tokens: int = 1024,
    system_prompt: str | None = None,
    command: str | None = None,
    on_entry: Callable[[EntryResult], None] | None = None,
) -> BfclReport:
    """Evaluate a model on BFCL (see the module doc). ``model`` is a provider spec
    (``embedded``, ``embedded:PATH``, ``openai:MODEL``), a checkpoint directory, or a
    ready :class:`LLMClient`. Decoding is deterministic (temperature 0) by default."""
    if isinstance(model, LLMClient):
        client, label = model, model.provider_id
    else:
        spec = model_spec(model)
        s = (settings or LLMSettings.from_env()).model_copy(update={"spec": spec})
        if base_url is not None:
            s = s.model_copy(update={"base_url": base_url})
        if api_key_env is not None:
            s = s.model_copy(update={"api_key_env": api_key_env})
        client, label = make_client(s), spec
    report = asyncio.run(arun_bfcl(
        client, categories=categories, limit=limit, ids=ids, output=None, concurrency=concurrency,
        options=InferenceOptions(temperature=temperature, max_tokens=max_tokens, system_prompt=system_prompt),
        model_label=label, on_entry=on_entry))
    report.command = command
    if output is not None:
        write_outputs(report, Path(output))
    return report


__all__ = [
    "ALIASES", "BfclEntry", "BfclReport", "CategoryScore", "EntryResult", "FCDecoder", "InferenceOptions",
    "MULTI_TURN", "SUPPORTED", "SummaryScore", "arun_bfcl", "bfcl_model_responses", "load_entries",
    "openai_name_map", "resolve_categories", "run_bfcl", "score_entry", "summarize",
]

