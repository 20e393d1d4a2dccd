"""Multi-turn rollouts against environments, batched across sessions, at the token level.

Each rollout drives its own environment session (``EnvSession``: isolated state, tools run
in the sandbox). Per turn, **all live sessions generate together** (one batch, up to
``max_batch`` sequences); their tool calls then run concurrently (``session.astep``), and
the tool results are appended as tokens. Two generation engines:

* ``hf`` (default): :class:`astra.train.rl_kvcache.KVCacheBatch` keeps every episode's KV
  cache across turns, so a turn only runs the model on the new tokens (tool results, next
  assistant header), and prefills a prompt prefix shared by the sessions once (the system
  prompt; the whole prompt within a group);
* ``hf-generate``: one left-padded ``model.generate`` call per turn over the whole
  conversations (the reference; every turn prefills everything again);
* ``vllm``: one ``vllm.LLM.generate`` call per turn over the token ids of the live episodes
  (:class:`astra.train.rl_vllm.VLLMGenerator`, passed as ``generator``: vLLM colocated with
  the policy on one GPU, its weights synced after every update).

Both give the same tokens under greedy decoding (tested). The token sequence of an
episode is built by concatenation and never re-tokenized, so the tokens trained on are
exactly the tokens the policy sampled:

``prompt (mask 0) | reply 1 (mask 1) | tool results + next assistant header (mask 0) | reply 2 (mask 1) | ...``

An episode ends when the model answers without a tool call (the reply's text is the final
answer given to ``session.finish``), or when the context budget (``max_total_tokens``)
would be exceeded (no answer). **The turn cap**: when the session's ``max_turns`` (or the
engine's ``max_turns``) is reached, the last turn's tool results are still appended and
the policy gets **one last turn**: its reply is taken as the final answer whatever it
contains; tool calls in it are not executed (the answer is the text outside them, so a
reply that is only a tool call answers nothing and earns 0). The reward is gated on the
final answer (:meth:`astra.envs.runtime.EnvSession.finish`), so an episode is always
finished with one, also when it ends on the cap, a truncated reply, the context budget
or a tool error (then with no answer).

``Episode.end_reason``: ``answer`` (a reply without tool calls), ``max_turns`` (the last
turn after the cap still called tools), ``length`` (a reply cut at ``max_new_tokens``),
``context``, ``error``, ``env_done`` (the session was finished by other means).

:class:`ChatCodec` holds the chat-template arithmetic (prompt ids, the ids of tool
results between two assistant turns); the veRL agent loop plugin reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from astra.choices import check_choice
from astra.llm.toolparse import parse_tool_calls
from astra.tools.sync import run_sync

_MARK = "\u2063ASTRA\u2063TURN\u2063"


class ChatCodec:
    """Token-level view of a chat template with tools (ChatML/Hermes by default)."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer
        stop: set[int] = set()
        for t in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
            i = tokenizer.convert_tokens_to_ids(t)
            if isinstance(i, int) and i >= 0 and i != tokenizer.unk_token_id:
                stop.add(i)
        if tokenizer.eos_token_id is not None:
            stop.add(int(tokenizer.eos_token_id))
        self.stop_ids: list[int] = sorted(stop)
        # The end-of-turn token the template writes after an assistant message.
        self.eot_id = self._template_eot()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eot_id

    def _render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                add_generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(messages, tools=tools or None,
                                            add_generation_prompt=add_generation_prompt, tokenize=False)

    def _template_eot(self) -> int:
        text = self._render([{"role": "user", "content": "u"}, {"role": "assistant", "content": _MARK}],
                            add_generation_prompt=False)
        after = text[text.index(_MARK) + len(_MARK):]
        for i in self.stop_ids:
            s = self.tok.convert_ids_to_tokens(i)
            if isinstance(s, str) and after.startswith(s):
                return i
        return self.stop_ids[0] if self.stop_ids else int(self.tok.eos_token_id)

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> list[int]:
        text = self._render(messages, tools, add_generation_prompt=True)
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def tool_suffix_ids(self, tool_messages: Sequence[dict[str, Any]]) -> list[int]:
        """Ids that follow an assistant turn's end-of-turn token: the tool results and the
        header of the next assistant turn (all masked from the loss)."""
        base: list[dict[str, Any]] = [{"role": "user", "content": "u"},
                                      {"role": "assistant", "content": _MARK}]
        msgs = [{"role": "tool", "content": m.get("content") if isinstance(m.get("content"), str)
                 else str(m.get("content")), **({"tool_call_id": m["tool_call_id"]} if "tool_call_id" in m else {}),
                 **({"name": m["name"]} if "name" in m else {})} for m in tool_messages]
        text = self._render(base + msgs, add_generation_prompt=True)
        rest = text[text.index(_MARK) + len(_MARK):]
        eot = self.tok.convert_ids_to_tokens(self.eot_id)
        if isinstance(eot, str) and rest.startswith(eot):
            rest = rest[len(eot):]
        return list(self.tok(rest, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)


@dataclass
class Episode:
    """One rollout: the session and its token sequence so far."""

    session: Any
    ids: list[int]
    mask: list[int]
    prompt_len: int
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    done: bool = False
    end_reason: str = ""
    turns: int = 0  # assistant replies
    gen_tokens: int = 0
    final_answer: str | None = None
    parse_errors: int = 0
    error: str | None = None
    #: The turn cap was reached: the next reply is the final answer (its tool calls are not run).
    final_turn: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RolloutStats:
    gen_tokens: int = 0
    gen_seconds: float = 0.0
    tool_seconds: float = 0.0
    generate_calls: int = 0
    sequences: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.gen_tokens / self.gen_seconds if self.gen_seconds > 0 else 0.0

    def add(self, other: RolloutStats) -> None:
        self.gen_tokens += other.gen_tokens
        self.gen_seconds += other.gen_seconds
        self.tool_seconds += other.tool_seconds
        self.generate_calls += other.generate_calls
        self.sequences += other.sequences


def start_episode(session: Any, codec: ChatCodec) -> Episode:
    """Reset the session and tokenize its prompt (system + user + tools; mask 0)."""
    messages, tools = session.reset()
    ids = codec.prompt_ids(messages, tools)
    return Episode(session=session, ids=ids, mask=[0] * len(ids), prompt_len=len(ids),
                   messages=[dict(m) for m in messages], tools=list(tools or []))


def finish_episode(e: Episode, reason: str, answer: str | None = None) -> None:
    """End the episode and give the session its final answer (once: ``session.finished``)."""
    e.done, e.end_reason, e.final_answer = True, reason, answer
    if not getattr(e.session, "finished", False):
        e.session.finish(answer)


def apply_reply(e: Episode, new: list[int], stopped: bool, budget: int, codec: ChatCodec) -> list[Any] | None:
    """Append one generated reply (policy tokens, mask 1); return its tool calls to run, or
    None when the episode ended (an answer without tool calls, a truncated reply, or the
    last turn after the turn cap, whose tool calls are not run)."""
    if len(new) > budget:
        new, stopped = new[:budget], False
    e.ids += new
    e.mask += [1] * len(new)
    e.gen_tokens += len(new)
    e.turns += 1
    parsed = parse_tool_calls(codec.decode(new))
    e.parse_errors += len(parsed.errors)
    msg: dict[str, Any] = {"role": "assistant", "content": parsed.content}
    if parsed.tool_calls:
        msg["tool_calls"] = [tc.openai() for tc in parsed.tool_calls]
    e.messages.append(msg)
    if not stopped:  # close the truncated turn (not trained on: the policy did not emit it)
        e.ids.append(codec.eot_id)
        e.mask.append(0)
    last = e.final_turn or getattr(e.session, "done", False)  # no more tool turns: this is the answer
    if parsed.tool_calls and not last:
        return list(parsed.tool_calls)
    reason = "length" if not stopped else ("max_turns" if parsed.tool_calls else "answer")
    finish_episode(e, reason, parsed.content)
    return None


def apply_tool_results(e: Episode, res: Any, codec: ChatCodec, *, max_total_tokens: int,
                       max_turns: int | None = None) -> None:
    """Append the tool messages of one turn and the next assistant header (mask 0), or end
    the episode (tool error, context budget). At the turn cap (the session is ``done``, or
    ``max_turns`` replies were made) the results are appended all the same and the next
    reply is the last one: the final answer."""
    if isinstance(res, BaseException):
        e.error = f"{type(res).__name__}: {res}"
        finish_episode(e, "error")
        return
    e.messages.extend(res)
    if getattr(e.session, "finished", False):  # answered by other means (e.g. astep([]))
        e.done, e.end_reason = True, "env_done"
        return
    suffix = codec.tool_suffix_ids(res)
    if len(e.ids) + len(suffix) + 2 >= max_total_tokens:
        finish_episode(e, "context")
        return
    e.ids += suffix
    e.mask += [0] * len(suffix)
    if getattr(e.session, "done", False) or (max_turns is not None and e.turns >= max_turns):
        e.final_turn = True


ENGINES = ("hf", "hf-generate", "vllm")


class RolloutEngine:
    """Batched multi-turn generation for a list of sessions (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, *, max_new_tokens: int = 128, temperature: float = 1.0,
                 top_p: float = 1.0, max_total_tokens: int | None = None, max_batch: int | None = None,
                 max_turns: int | None = None, engine: str = "hf", autocast: Any = None,
                 generator: Any = None):
        check_choice(engine, ENGINES, "rollout engine")
        if (engine == "vllm") != (generator is not None):
            raise ValueError("the vllm engine takes a generator (astra.train.rl_vllm.VLLMGenerator), "
                             "and only it does")
        self.model, self.tok = model, tokenizer
        self.codec = ChatCodec(tokenizer)
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_p = temperature, top_p
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None) or 4096
        self.max_total_tokens = min(max_total_tokens or limit, limit)
        self.max_batch = max_batch
        self.max_turns = max_turns
        self.kind = engine
        #: () -> a context manager the forward passes run in (bf16 autocast), or None
        self.autocast = autocast
        #: generate(seqs, budgets) -> [(new ids, stopped)] of the ``vllm`` engine
        self.generator = generator
        self.stats = RolloutStats()

    # -- generation ----------------------------------------------------------------------
    def generate(self, seqs: Sequence[Sequence[int]],
                 max_new_tokens: int | Sequence[int]) -> list[tuple[list[int], bool]]:
        """Continue every sequence; returns (new ids up to and including a stop id, stopped).
        ``max_new_tokens``: one budget, or one per sequence (the ``vllm`` engine keeps each;
        HF ``generate`` runs to the largest and :func:`apply_reply` cuts the others)."""
        if self.generator is not None:
            t0 = time.perf_counter()
            res = self.generator.generate(seqs, max_new_tokens)
            self.stats.gen_seconds += time.perf_counter() - t0
            self.stats.generate_calls += 1
            self.stats.gen_tokens += sum(len(r[0]) for r in res)
            return list(res)
        if not isinstance(max_new_tokens, int):
            max_new_tokens = max(max_new_tokens, default=1)
        out: list[tuple[list[int], bool]] = []
        step = self.max_batch or len(seqs) or 1
        for i in range(0, len(seqs), step):
            out.extend(self._generate_chunk(seqs[i:i + step], max_new_tokens))
        return out

    def _generate_chunk(self, seqs: Sequence[Sequence[int]], max_new_tokens: int) -> list[tuple[list[int], bool]]:
        import torch
        from transformers import GenerationConfig

        device = next(self.model.parameters()).device
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.codec.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
            attn[r, width - len(s):] = 1
        sample = self.temperature > 0
        gc = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=sample,
            temperature=self.temperature if sample else None, top_p=self.top_p if sample else None,
            top_k=0 if sample else None, eos_token_id=self.codec.stop_ids, pad_token_id=self.codec.pad_id,
        )
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        with torch.inference_mode(), (self.autocast() if self.autocast is not None else contextlib.nullcontext()):
            gen = self.model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), generation_config=gc)
        self.stats.gen_seconds += time.perf_counter() - t0
        self.stats.generate_calls += 1
        if was_training:
            self.model.train()
        stops = set(self.codec.stop_ids)
        res = []
        for r in range(len(seqs)):
            new = gen[r, width:].tolist()
            stopped = False
            for j, t in enumerate(new):
                if t in stops:
                    new, stopped = new[: j + 1], True
                    break
            res.append((new, stopped))
            self.stats.gen_tokens += len(new)
        return res

    # -- episodes ------------------------------------------------------------------------
    def start(self, session: Any) -> Episode:
        return start_episode(session, self.codec)

    def _finish(self, e: Episode, reason: str, answer: str | None = None) -> None:
        finish_episode(e, reason, answer)

    def _kv_turn(self, eps: Sequence[Episode], live: Sequence[Episode], budgets: Sequence[int],
                 caches: dict[int, Any]) -> list[tuple[list[int], bool]]:
        """One turn of the ``hf`` engine: every chunk of ``max_batch`` episodes continues in
        its own KV cache (finished episodes dropped from it first)."""
        from astra.train.rl_kvcache import KVCacheBatch, make_sampler

        step = self.max_batch or len(eps) or 1
        index = {id(e): i for i, e in enumerate(eps)}
        budget_of = {id(e): b for e, b in zip(live, budgets, strict=True)}
        out: dict[int, tuple[list[int], bool]] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            for c in range(0, len(eps), step):
                rows = [e for e in eps[c:c + step] if not e.done]
                if not rows:
                    caches.pop(c, None)
                    continue
                kv = caches.get(c)
                if kv is None:
                    kv = caches[c] = KVCacheBatch(self.model, pad_id=self.codec.pad_id, stop_ids=self.codec.stop_ids,
                                                  sample=make_sampler(self.temperature, self.top_p),
                                                  autocast=self.autocast)
                else:
                    kv.drop([index[id(e)] for e in eps[c:c + step] if e.done])
                t0 = time.perf_counter()
                res = kv.generate([index[id(e)] for e in rows], [e.ids for e in rows],
                                  [budget_of[id(e)] for e in rows])
                self.stats.gen_seconds += time.perf_counter() - t0
                self.stats.generate_calls += 1
                for e, r in zip(rows, res, strict=True):
                    out[id(e)] = r
                    self.stats.gen_tokens += len(r[0])
        finally:
            if was_training:
                self.model.train()
        return [out[id(e)] for e in live]

    async def arun(self, sessions: Sequence[Any]) -> list[Episode]:
        self.stats.sequences += len(sessions)
        eps = [self.start(s) for s in sessions]
        for e in eps:
            if len(e.ids) + 1 >= self.max_total_tokens:
                self._finish(e, "context")
        caches: dict[int, Any] = {}
        while True:
            live = [e for e in eps if not e.done]
            if not live:
                break
            budgets = [min(self.max_new_tokens, self.max_total_tokens - len(e.ids) - 1) for e in live]
            if self.kind == "hf":
                outs = self._kv_turn(eps, live, budgets, caches)
            elif self.kind == "vllm":
                outs = self.generate([e.ids for e in live], budgets)
            else:
                outs = self.generate([e.ids for e in live], max(budgets))
            pending: list[tuple[Episode, list[Any]]] = []
            for e, (new, stopped), budget in zip(live, outs, budgets, strict=True):
                calls = apply_reply(e, new, stopped, budget, self.codec)
                if calls:
                    pending.append((e, calls))
            if not pending:
                continue
            t0 = time.perf_counter()
            results = await asyncio.gather(*(e.session.astep(calls) for e, calls in pending),
                                           return_exceptions=True)
            self.stats.tool_seconds += time.perf_counter() - t0
            for (e, _calls), res in zip(pending, results, strict=True):
                apply_tool_results(e, res, self.codec, max_total_tokens=self.max_total_tokens,
                                   max_turns=self.max_turns)
        return eps

    def run(self, sessions: Sequence[Any]) -> list[Episode]:
        return run_sync(self.arun(sessions))
