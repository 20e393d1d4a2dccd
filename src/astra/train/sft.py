"""Supervised fine-tuning on tool-use trajectories with TRL's ``SFTTrainer``.

``train_sft(SFTRunConfig(...)) -> SFTResult`` is the API; ``astra train sft`` is a thin
wrapper. What it does:

- loads the data (:mod:`astra.train.data`: an ``astra export sft`` directory or JSONL),
  measures every conversation in tokens, drops (or truncates) the ones over
  ``max_length`` and splits off a held-out set (``eval_fraction``);
- loads the model (``embedded`` = the converted SmolLM2-135M-Instruct, a local path or a
  Hugging Face id) and gives its tokenizer the project's tool-capable ChatML template when
  its own has no tool support (or would re-encode string arguments), so the loss is
  computed on assistant tokens only (``assistant_only_loss=True`` + the template's
  ``{% generation %}`` markers: system, user and tool-response tokens are masked);
- trains in fp32 on the CPU (bf16 autocast on a GPU that supports it), optionally with
  LoRA on the attention and MLP projections; checkpoints every ``save_steps``; ``resume``
  continues from the newest checkpoint in the output directory;
- evaluates the held-out loss before training, every ``eval_steps`` and at the end;
  checks before and after training whether the model's greedy replies to held-out prompts
  are well-formed ``<tool_call>`` blocks naming a real tool;
- writes the final model + tokenizer to the output directory (with LoRA: the adapter
  there and a merged plain model in ``OUT/merged``), ``logs.jsonl``, ``curves.png`` and
  ``train_summary.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from astra.cli_config import Flag
from astra.errors import ConfigError, InputError
from astra.io import append_lines, write_json
from astra.train.data import PreparedData, load_sft_sources, prepare_records, to_dataset

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SUMMARY = "train_summary.json"
LOGS = "logs.jsonl"
CURVES = "curves.png"


class SFTRunConfig(BaseModel):
    """Everything an SFT run needs, declared once: ``astra train sft`` derives its options from
    these fields (:func:`astra.cli_config.takes_config`). Defaults follow the ASTRA method §3.1
    (2 epochs, LR 5e-6, cosine, 5% warmup, no packing) scaled to one machine (batch 4)."""

    model_config = ConfigDict(extra="forbid")

    data: Annotated[list[Path], Flag(short="-d")] = Field(description=(
        "`astra export sft` directory (openai | sharegpt | hf, detected) or a JSONL file of "
        "{messages, tools} records (e.g. from `astra train demos`); repeat to train on several together."))
    output_dir: Annotated[Path, Flag("--output", "-o")] = Field(description=(
        "Output directory (checkpoints, final model, logs)."))
    model: Annotated[str, Flag(short="-m")] = Field("embedded", description=(
        "'embedded' (SmolLM2-135M-Instruct), 'embedded:PATH', a local model directory or a Hugging Face id."))
    limit: int | None = Field(None, description="Use only the first N conversations.")
    # optimization
    epochs: float = Field(2.0, description="Epochs (when --max-steps is unset).")
    max_steps: int | None = Field(None, description="Stop after N optimizer steps.")
    learning_rate: Annotated[float, Flag("--lr")] = Field(5e-6, description=(
        "Peak learning rate (cosine schedule, 5% warmup)."))
    lr_scheduler: str = Field("cosine", description="Learning-rate schedule (a transformers scheduler name).")
    warmup_ratio: float = Field(0.05, description="Share of the steps spent warming up.")
    weight_decay: float = Field(0.0, description="AdamW weight decay.")
    batch_size: int = Field(4, ge=1, description="Conversations per device batch.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    max_length: int | None = Field(None, description=(
        "Maximum tokens per conversation (default: the model's context length, 8,192 for the embedded model)."))
    overlong: Literal["drop", "truncate"] = Field("drop", description=(
        "Conversations over --max-length: 'drop' them or 'truncate' (keep the start)."))
    allow_drop: bool = Field(False, description=(
        "Train even when --overlong drop removes more than 10% of the conversations (an error otherwise)."))
    seed: int = Field(0, description="Seed of the split, shuffling and initialization.")
    # LoRA
    lora: bool = Field(False, description="Train LoRA adapters (attention + MLP projections).")
    lora_r: int = Field(16, description="LoRA rank (alpha = 2·r unless --lora-alpha).")
    lora_alpha: int | None = Field(None, description="LoRA alpha (default 2·r).")
    lora_dropout: float = Field(0.05, description="LoRA dropout.")
    merge_lora: bool = Field(True, description="Also write the adapters merged into the model (OUT/merged).")
    # evaluation, checkpoints, logging
    eval_fraction: float = Field(0.1, description="Share held out for the eval loss.")
    eval_steps: int | None = Field(None, description="Also evaluate every N steps (always before training and at the end).")
    save_steps: int = Field(50, description="Checkpoint every N steps (and at the end).")
    save_total_limit: int = Field(2, description="Checkpoints kept.")
    resume: bool = Field(False, description="Continue from the newest checkpoint in -o.")
    logging_steps: int = Field(1, description="Log every N steps.")
    report_to: list[str] = Field(default_factory=list, description="Also log to 'tensorboard' or 'wandb' (repeatable).")
    format_check_prompts: Annotated[int, Flag("--format-check")] = Field(4, description=(
        "Held-out prompts for the tool-call format check before/after (0: off)."))
    format_check_max_tokens: Annotated[int, Flag("--format-check-tokens")] = Field(256, description=(
        "Tokens generated per format-check prompt (room for a planning sentence and the call)."))
    # hardware
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto' (CUDA when available), 'cpu' or 'cuda'.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description=(
        "'auto' (fp32 on CPU, bf16 on a GPU that supports it), 'fp32', 'bf16' or 'fp16'."))
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (off by default).")
    threads: int | None = Field(None, description="torch CPU threads (default: torch's choice).")
    chat_template: Literal["auto", "model", "astra"] = Field("auto", description=(
        "'auto' (the model's own when it supports tools and string arguments, else astra's ChatML tool "
        "template), 'model' or 'astra'."))

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str | Path) else v


class FormatCheck(BaseModel):
    """Greedy replies to held-out prompts: do they contain well-formed tool calls?"""

    prompts: int = 0
    with_tool_call: float = 0.0  # share of replies containing a <tool_call> block
    well_formed: float = 0.0  # share whose calls all parse, name a real tool and have object arguments
    expected_tool: float = 0.0  # share whose first call names the reference's first tool
    seconds: float = 0.0
    samples: list[str] = Field(default_factory=list)


class SFTResult(BaseModel):
    output_dir: Path
    model_path: Path  # a plain model directory later stages load (`embedded:PATH`)
    adapter_path: Path | None = None
    global_step: int
    train_loss: float | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    format_before: FormatCheck | None
    format_after: FormatCheck | None
    data: dict[str, Any]
    train_seconds: float
    total_seconds: float
    train_tokens_per_second: float | None
    resumed_from: str | None = None
    device: str
    precision: str
    chat_template: str


# ---------------------------------------------------------------------------------
# model and tokenizer
# ---------------------------------------------------------------------------------


def resolve_model(model: str) -> str:
    """'embedded' → the converted default model; 'embedded:PATH' → PATH; else as given."""
    from astra.llm.embedded import ensure_default_model, resolve_model_path

    if model in ("embedded", "", "default"):
        return str(ensure_default_model())
    if model.startswith("embedded:"):
        return model.split(":", 1)[1]
    return resolve_model_path(model)


def _template_keeps_string_arguments(tok: Any) -> bool:
    probe = [{"role": "user", "content": "x"},
             {"role": "assistant", "content": None, "tool_calls": [
                 {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}]
    tools = [{"type": "function", "function": {"name": "f", "description": "", "parameters": {"type": "object"}}}]
    try:
        text = tok.apply_chat_template(probe, tools=tools, tokenize=False)
    except Exception:  # any template failure means: do not use it
        return False
    return '"a": 1' in text and '\\"a\\"' not in text


def choose_chat_template(tok: Any, mode: str = "auto") -> str:
    """Set the tokenizer's chat template for tool SFT; return which one is used."""
    from trl.chat_template_utils import has_generation_markers

    from astra.llm.embedded import is_previous_tool_template, tool_chat_template

    own = tok.chat_template if isinstance(tok.chat_template, str) else None
    if own and own.strip() == tool_chat_template().strip():
        return "astra-chatml-tools"  # e.g. the converted embedded model, which ships it
    if is_previous_tool_template(own):  # saved with an earlier version of it: use the current one
        tok.chat_template = tool_chat_template()
        return "astra-chatml-tools"
    if mode == "model":
        if not own:
            raise ConfigError("the model has no chat template: use --chat-template auto or astra")
        return "model"
    if mode == "auto" and own and "tools" in own and has_generation_markers(own) \
            and _template_keeps_string_arguments(tok):
        return "model"
    tok.chat_template = tool_chat_template()
    return "astra-chatml-tools"


def load_tokenizer(path: str, template: str = "auto") -> tuple[Any, str]:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load the tokenizer of {path!r}: {e}") from None
    which = choose_chat_template(tok, template)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, which


#: A tokenizer's ``model_max_length`` above this is the "no limit" sentinel, not a context length.
_NO_LIMIT = 10**7


def context_length(path: str, tok: Any) -> int:
    """The model's context length: its config's ``max_position_embeddings``, else the
    tokenizer's ``model_max_length`` (8,192 for the embedded model)."""
    from transformers import AutoConfig

    try:
        n = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
    except (OSError, ValueError):
        n = None
    if not n:
        m = getattr(tok, "model_max_length", None)
        n = m if m and m < _NO_LIMIT else None
    if not n:
        raise ConfigError(f"cannot tell the context length of {path!r}: pass --max-length")
    return int(n)


def _device_and_precision(cfg: SFTRunConfig) -> tuple[str, str]:
    import torch

    cuda = torch.cuda.is_available()
    if cfg.device == "cuda" and not cuda:
        raise ConfigError("--device cuda but no CUDA device is available")
    device = "cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and cuda)) else "cpu"
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if device == "cpu" and precision != "fp32":
        log.warning("%s on the CPU is slow or unsupported here; fp32 is recommended", precision)
    return device, precision


# ---------------------------------------------------------------------------------
# tool-call format check
# ---------------------------------------------------------------------------------


def format_prompts(records: list[dict[str, Any]], n: int) -> list[tuple[list[dict], list[dict], str | None]]:
    """Up to ``n`` (messages, tools, expected first tool) contexts that end right before an
    assistant turn that calls tools: first turns of each conversation, then later ones."""
    first: list[tuple[list[dict], list[dict], str | None]] = []
    later: list[tuple[list[dict], list[dict], str | None]] = []
    for rec in records:
        tools = json.loads(rec["tools"])
        seen_first = False
        for i, m in enumerate(rec["messages"]):
            if m["role"] == "assistant" and m.get("tool_calls"):
                item = (rec["messages"][:i], tools, m["tool_calls"][0]["function"]["name"])
                (later if seen_first else first).append(item)
                seen_first = True
    return (first + later)[:n]


def check_tool_call_format(model: Any, tok: Any, prompts: list[tuple[list[dict], list[dict], str | None]], *,
                           max_new_tokens: int = 96, batch_size: int = 4) -> FormatCheck:
    """Generate greedily and score the replies' ``<tool_call>`` blocks."""
    import torch

    if not prompts:
        return FormatCheck()
    t0 = time.perf_counter()
    stop = [tok.eos_token_id]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != tok.unk_token_id and im_end not in stop:
        stop.append(im_end)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    replies: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            texts = [tok.apply_chat_template(msgs, tools=tools or None, add_generation_prompt=True, tokenize=False)
                     for msgs, tools, _ in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, padding_side="left",
                      add_special_tokens=False).to(device)
            with torch.no_grad():
                # use_cache explicitly: the Trainer sets config.use_cache=False for training
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                     pad_token_id=tok.pad_token_id, use_cache=True)
            replies += tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return score_replies(prompts, replies, seconds=time.perf_counter() - t0)


def score_replies(prompts: list[tuple[list[dict], list[dict], str | None]], replies: list[str], *,
                  seconds: float = 0.0) -> FormatCheck:
    """A reply is well-formed when it has at least one ``<tool_call>`` block, every block
    parses (``astra.llm.toolparse``), names one of the prompt's tools and has object arguments."""
    from astra.llm.toolparse import parse_tool_calls

    with_call = well_formed = expected = 0
    for (_, tools, want), reply in zip(prompts, replies, strict=True):
        names = {t["function"]["name"] for t in tools}
        parsed = parse_tool_calls(reply)
        with_call += "<tool_call>" in reply
        ok = bool(parsed.tool_calls) and not parsed.errors
        for c in parsed.tool_calls:
            try:
                args = json.loads(c.arguments or "{}")
            except json.JSONDecodeError:
                args = None
            ok = ok and c.name in names and isinstance(args, dict)
        well_formed += ok
        expected += bool(parsed.tool_calls) and parsed.tool_calls[0].name == want
    n = len(prompts)
    if not n:
        return FormatCheck()
    return FormatCheck(prompts=n, with_tool_call=round(with_call / n, 4), well_formed=round(well_formed / n, 4),
                       expected_tool=round(expected / n, 4), seconds=round(seconds, 2),
                       samples=[r[:300] for r in replies[:3]])


# ---------------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------------


def _make_log_callback(path: Path) -> Any:
    from transformers import TrainerCallback

    class JsonlLogCallback(TrainerCallback):
        """Each trainer log as one JSON line: step, loss, eval_loss, lr, tokens/s."""

        def __init__(self) -> None:
            self.phase = "train"
            self.step_seconds = 0.0
            self._step_t0: float | None = None
            self._last_tokens: float | None = None
            self._seconds_at_last = 0.0
            self.tokens_per_second: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self._step_t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self._step_t0 is not None:
                self.step_seconds += time.perf_counter() - self._step_t0
                self._step_t0 = None

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            rec: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                                   "time": round(time.time(), 3)}
            if "eval_loss" in logs:
                rec["phase"] = self.phase if self.phase != "train" else "eval"
            for key, name in (("loss", "loss"), ("eval_loss", "eval_loss"), ("learning_rate", "lr"),
                              ("grad_norm", "grad_norm"), ("mean_token_accuracy", "token_accuracy"),
                              ("eval_mean_token_accuracy", "eval_token_accuracy"), ("num_tokens", "tokens_seen"),
                              ("train_loss", "train_loss"), ("train_runtime", "train_runtime")):
                if key in logs and isinstance(logs[key], int | float):
                    rec[name] = logs[key]
            if "loss" in logs and "num_tokens" in logs:
                tokens = float(logs["num_tokens"])
                dt = self.step_seconds - self._seconds_at_last
                if self._last_tokens is not None and tokens > self._last_tokens and dt > 0:
                    rec["tokens_per_s"] = round((tokens - self._last_tokens) / dt, 2)
                    self.tokens_per_second.append(rec["tokens_per_s"])
                elif self._last_tokens is None and dt > 0:
                    rec["tokens_per_s"] = round(tokens / dt, 2)
                    self.tokens_per_second.append(rec["tokens_per_s"])
                self._last_tokens, self._seconds_at_last = tokens, self.step_seconds
            append_lines(path, [rec])

    return JsonlLogCallback()


def plot_curves(logs_path: Path, out_png: Path, title: str = "SFT") -> Path | None:
    """Training loss and held-out loss against the step, from ``logs.jsonl``."""
    if not logs_path.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in logs_path.read_text("utf-8").splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    speed = [(r["step"], r["tokens_per_s"]) for r in rows if "tokens_per_s" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", lw=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="held-out loss", lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    if speed:
        ax.plot(*zip(*speed, strict=True), lw=1.2, color="tab:green")
    ax.set_xlabel("step")
    ax.set_ylabel("training tokens/s")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


# ---------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------


def _lora_config(model: Any, cfg: SFTRunConfig) -> Any:
    from peft import LoraConfig

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets: list[str] | str = [t for t in LORA_TARGETS if t in names] or "all-linear"
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def _last_checkpoint(out: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(out)) if out.is_dir() else None


@dataclass
class SFTRun:
    """A configured run before training: what :func:`train_sft` trains (tests inspect it)."""

    cfg: SFTRunConfig
    trainer: Any
    tokenizer: Any
    model_source: str
    prepared: PreparedData
    stats: dict[str, Any]
    callback: Any
    resume_from: str | None
    device: str
    precision: str
    chat_template: str


def prepare_sft(cfg: SFTRunConfig) -> SFTRun:
    """Load data, tokenizer and model and build the ``SFTTrainer`` (no training yet)."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    out = Path(cfg.output_dir)
    if cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise ConfigError("batch size and gradient accumulation must be >= 1")
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ConfigError("--max-steps must be >= 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device, precision = _device_and_precision(cfg)
    resume_from = _last_checkpoint(out) if cfg.resume else None
    if cfg.resume and resume_from is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", out)

    # data
    data = load_sft_sources(cfg.data)
    if cfg.limit is not None:
        data.records = data.records[:cfg.limit]
    path = resolve_model(cfg.model)
    tok, template = load_tokenizer(path, cfg.chat_template)
    try:
        max_length = cfg.max_length or context_length(path, tok)
        prepared = prepare_records(data.records, tok, max_length=max_length, overlong=cfg.overlong,
                                   eval_fraction=cfg.eval_fraction, seed=cfg.seed, allow_drop=cfg.allow_drop)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    stats = {"source": data.source, "format": data.format, **prepared.stats}
    if stats["overlong"]:
        log.warning("%d conversation(s) longer than max_length=%d tokens: %s", stats["overlong"], max_length,
                    "dropped" if cfg.overlong == "drop" else "truncated (the end is cut)")
    train_ds, eval_ds = to_dataset(prepared.train), (to_dataset(prepared.eval) if prepared.eval else None)
    stats["steps_per_epoch"] = math.ceil(len(train_ds) / (cfg.batch_size * cfg.grad_accum))

    # model
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load model {path!r}: {e}") from None
    model.config.pad_token_id = tok.pad_token_id

    out.mkdir(parents=True, exist_ok=True)
    logs_path = out / LOGS
    if resume_from is None and logs_path.exists():
        logs_path.unlink()
    evaluate_steps = bool(cfg.eval_steps and eval_ds is not None)
    args = SFTConfig(
        output_dir=str(out),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps is not None else -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=_warmup(cfg),
        weight_decay=cfg.weight_decay,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        max_length=max_length,
        truncation_mode="keep_start",
        packing=False,
        assistant_only_loss=True,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        activation_checkpointing=cfg.gradient_checkpointing,
        dataloader_num_workers=0,
        eval_strategy="steps" if evaluate_steps else "no",
        eval_steps=cfg.eval_steps if evaluate_steps else None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        report_to=cfg.report_to or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=not os.isatty(2),
    )
    callback = _make_log_callback(logs_path)
    peft_config = _lora_config(model, cfg) if cfg.lora else None
    try:
        trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tok, peft_config=peft_config, callbacks=[callback])
    except RuntimeError as e:  # e.g. an example without assistant tokens after templating
        raise InputError(f"cannot prepare the SFT data: {e}", path=str(cfg.data)) from None
    return SFTRun(cfg=cfg, trainer=trainer, tokenizer=tok, model_source=path, prepared=prepared, stats=stats,
                  callback=callback, resume_from=resume_from, device=device, precision=precision,
                  chat_template=template)


def _warmup(cfg: SFTRunConfig) -> int | float:
    """Warm-up steps: with ``--max-steps`` a whole number of steps, rounded down (a 4-step
    run gets none, rather than a first step at learning rate 0); otherwise the ratio,
    which the trainer applies to the total steps it computes from the epochs."""
    if cfg.max_steps is not None:
        return int(cfg.warmup_ratio * cfg.max_steps)
    return cfg.warmup_ratio


def train_sft(cfg: SFTRunConfig) -> SFTResult:
    """Run SFT as configured; see the module docstring."""
    t_start = time.perf_counter()
    run = prepare_sft(cfg)
    trainer, tok, callback, out = run.trainer, run.tokenizer, run.callback, Path(cfg.output_dir)
    eval_ds = trainer.eval_dataset

    prompts = format_prompts(run.prepared.eval or run.prepared.train, cfg.format_check_prompts)
    fmt_kwargs = {"max_new_tokens": cfg.format_check_max_tokens, "batch_size": 8}
    format_before = check_tool_call_format(trainer.model, tok, prompts, **fmt_kwargs) if prompts else None
    eval_before = None
    if eval_ds is not None:
        callback.phase = "before"
        eval_before = trainer.evaluate().get("eval_loss")
        callback.phase = "train"

    t_train = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=run.resume_from)
    train_seconds = time.perf_counter() - t_train

    eval_after = None
    if eval_ds is not None:
        last = trainer.state.log_history[-2:] if trainer.state.log_history else []
        done = [h["eval_loss"] for h in last if "eval_loss" in h and h.get("step") == trainer.state.global_step]
        if done:  # the last step was just evaluated (--eval-steps)
            eval_after = done[-1]
        else:
            callback.phase = "after"
            eval_after = trainer.evaluate().get("eval_loss")
    format_after = check_tool_call_format(trainer.model, tok, prompts, **fmt_kwargs) if prompts else None

    # save: final model (or adapter) + tokenizer; with LoRA also a merged plain model
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    model_path, adapter_path = out, None
    if cfg.lora:
        adapter_path = out
        if cfg.merge_lora:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(str(out / "merged"))
            tok.save_pretrained(str(out / "merged"))
            model_path = out / "merged"
    plot_curves(out / LOGS, out / CURVES,
                title=f"SFT {Path(run.model_source).name}{' (LoRA)' if cfg.lora else ''}")

    speeds = callback.tokens_per_second
    res = SFTResult(
        output_dir=out, model_path=model_path, adapter_path=adapter_path,
        global_step=trainer.state.global_step, train_loss=getattr(result, "training_loss", None),
        eval_loss_before=eval_before, eval_loss_after=eval_after,
        format_before=format_before, format_after=format_after, data=run.stats,
        train_seconds=round(train_seconds, 2), total_seconds=round(time.perf_counter() - t_start, 2),
        train_tokens_per_second=round(sum(speeds) / len(speeds), 2) if speeds else None,
        resumed_from=run.resume_from, device=run.device, precision=run.precision,
        chat_template=run.chat_template,
    )
    write_json(out / SUMMARY, {**res.model_dump(mode="json"),
                               "config": cfg.model_dump(mode="json"), "model_source": run.model_source})
    return res
