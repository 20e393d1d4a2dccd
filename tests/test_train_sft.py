"""SFT (astra.train): data loading from every export format, assistant-only labels through
TRL's trainer, training steps with checkpoints, resume, held-out loss, LoRA + merge, the
tool-call format check and the CLI — all on a tiny randomly initialized 2-layer Llama that
uses the embedded model's real tokenizer and chat template."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest
import torch

from astra.errors import ConfigError, InputError
from astra.export import export_sft
from astra.judge import Judge
from astra.rollout import RolloutStage
from astra.train.data import load_sft_data, load_sft_sources, prepare_records, render
from astra.train.sft import (
    SFTRunConfig,
    choose_chat_template,
    format_prompts,
    prepare_sft,
    score_replies,
    train_sft,
)
from tests.test_rollout import plan_task, sample_servers, weather_task


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model

    return AutoTokenizer.from_pretrained(ensure_default_model())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tokenizer) -> Path:
    """A 2-layer Llama (hidden 64) with random weights, saved with the real tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tokenizer
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def judged():
    """Five chain-executor trajectories on the Python weather server, judged offline."""
    stage = RolloutStage(servers=list(sample_servers()))
    stage.setup()
    tasks = [
        weather_task("a"),
        weather_task("b", city="Sydney"),
        weather_task("c", city="Seattle"),
        weather_task("d", city="New York", language="es", query="¿Qué tiempo hace ahora en New York?"),
        plan_task("e", "weather", "Give me the forecast and the air quality for London.", [
            {"tool": "geocode_city", "user_args": {"city": "London"}},
            {"tool": "get_forecast", "user_args": {"days": 2},
             "derived_args": {"latitude": {"step": 0, "path": ["latitude"]}, "longitude": {"step": 0, "path": ["longitude"]}}},
            {"tool": "get_air_quality",
             "derived_args": {"latitude": {"step": 0, "path": ["latitude"]}, "longitude": {"step": 0, "path": ["longitude"]}}},
        ]),
    ]

    async def go():
        out = []
        for t in tasks:
            (traj,) = (await stage.process(t)).outputs
            j = await Judge("offline").judge(traj, min_score=0.0)
            out.append(_compact(traj.model_copy(update={"judgement": j.model_dump(mode="json")})))
        return out

    return asyncio.run(go())


def _compact(traj):
    """A shorter transcript for the tiny-model tests: a one-line system prompt and only the
    called tools with one-sentence descriptions (~600 instead of ~2,000 tokens; softmax over
    the real 49k vocabulary dominates a training step on this CPU)."""
    called = {tc["function"]["name"] for m in traj.messages for tc in m.get("tool_calls") or []}
    tools = []
    for t in traj.tools:
        fn = dict(t.get("function", t))
        if fn["name"] in called:
            fn["description"] = fn.get("description", "").split(".")[0] + "."
            props = {k: {kk: vv for kk, vv in v.items() if kk != "description"}
                     for k, v in fn.get("parameters", {}).get("properties", {}).items()}
            fn["parameters"] = {**fn.get("parameters", {}), "properties": props}
            tools.append({"type": "function", "function": fn})
    messages = [{"role": "system", "content": "You solve the user's request by calling the weather tools."},
                *traj.messages[1:]]
    return traj.model_copy(update={"messages": messages, "tools": tools})


@pytest.fixture(scope="module")
def exports(tmp_path_factory, judged) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sft")
    out = {}
    for fmt in ("openai", "hf", "sharegpt"):
        report = export_sft(judged, root / fmt, fmt=fmt)
        assert report.written == len(judged)
        out[fmt] = root / fmt
    return out


def _cfg(tmp_path: Path, data: Path, model: Path, **kw) -> SFTRunConfig:
    base = dict(data=data, output_dir=tmp_path / "ckpt", model=str(model), batch_size=1, max_length=384,
                overlong="truncate",
                learning_rate=1e-3, eval_fraction=0.25, save_steps=2, format_check_prompts=1,
                format_check_max_tokens=6, threads=2)
    base.update(kw)
    return SFTRunConfig(**base)


# ---------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------


def test_loads_every_export_format_and_keeps_arguments_strings(exports):
    openai_dir = load_sft_data(exports["openai"])
    jsonl = load_sft_data(exports["openai"] / "train.jsonl")
    hf = load_sft_data(exports["hf"])
    sharegpt = load_sft_data(exports["sharegpt"])
    assert (openai_dir.format, jsonl.format, hf.format, sharegpt.format) == (
        "openai-jsonl", "openai-jsonl", "hf", "sharegpt")
    assert len(openai_dir.records) == len(hf.records) == len(sharegpt.records) == 5
    for a, b, c in zip(openai_dir.records, hf.records, sharegpt.records, strict=True):
        assert a == b  # hf round trip through Arrow: no null keys added, strings kept
        assert isinstance(a["tools"], str) and json.loads(a["tools"])[0]["type"] == "function"
        calls = [tc for m in a["messages"] for tc in (m["tool_calls"] or [])]
        assert calls and all(isinstance(tc["function"]["arguments"], str) for tc in calls)
        # sharegpt converted back: same roles, same calls and results
        assert [m["role"] for m in c["messages"]] == [m["role"] for m in a["messages"]]
        calls_c = [tc for m in c["messages"] for tc in (m["tool_calls"] or [])]
        assert [(t["function"]["name"], json.loads(t["function"]["arguments"])) for t in calls_c] == [
            (t["function"]["name"], json.loads(t["function"]["arguments"])) for t in calls]
    parallel = openai_dir.records[4]["messages"][4]
    assert len(parallel["tool_calls"]) == 2  # forecast + air quality in one turn
    args = json.loads(parallel["tool_calls"][0]["function"]["arguments"])
    assert set(args) == {"latitude", "longitude", "days"}  # no keys unified in from the other call


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('{"messages": []}', "non-empty list"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "unknown role"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, "tool_calls": '
     '[{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}', "not valid JSON"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "tools": "[{"}',
     "tools"),
    ('{"text": "plain"}', "no 'messages'"),
])
def test_malformed_data_names_file_and_line(tmp_path, line, message):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + line + "\n")
    with pytest.raises(InputError) as e:
        load_sft_data(path)
    assert f"{path}:2" in str(e.value) and message in str(e.value)


def test_several_sources_are_concatenated_in_order(exports):
    both = load_sft_sources([exports["openai"], exports["sharegpt"]])
    one = load_sft_data(exports["openai"])
    assert len(both.records) == 2 * len(one.records) and both.records[:len(one.records)] == one.records
    assert both.format == "openai-jsonl+sharegpt" and str(exports["sharegpt"]) in both.source
    assert load_sft_sources(exports["openai"]).records == one.records
    with pytest.raises(InputError, match="no SFT data"):
        load_sft_sources([])


def test_missing_or_empty_data(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_sft_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no train.jsonl"):
        load_sft_data(tmp_path / "empty")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no training records"):
        load_sft_data(tmp_path / "e.jsonl")


def test_overlong_conversations_are_dropped_or_truncated_and_counted(exports, tokenizer):
    records = load_sft_data(exports["openai"]).records
    lengths = sorted(len(tokenizer(render(tokenizer, r), add_special_tokens=False)["input_ids"]) for r in records)
    limit = lengths[2]  # two conversations are longer
    # dropping 2 of 5 (40% > 10%) is an error unless asked for, with the counts in the message
    with pytest.raises(InputError, match=r"2 of 5 conversations \(40%\).*--allow-drop"):
        prepare_records(records, tokenizer, max_length=limit, overlong="drop", eval_fraction=0.0)
    p = prepare_records(records, tokenizer, max_length=limit, overlong="drop", eval_fraction=0.0, allow_drop=True)
    assert p.stats["dropped_overlong"] == 2 and len(p.train) == 3 and not p.eval
    p = prepare_records(records, tokenizer, max_length=limit, overlong="truncate", eval_fraction=0.4, seed=1)
    assert p.stats["truncated"] == 2 and len(p.train) == 3 and len(p.eval) == 2
    with pytest.raises(InputError, match="longer than max_length"):
        prepare_records(records, tokenizer, max_length=10)


def test_default_max_length_is_the_model_context(tokenizer, tiny_model):
    from astra.llm.embedded import ensure_default_model
    from astra.train.sft import context_length

    assert context_length(str(tiny_model), tokenizer) == 4096  # the model's config, not the tokenizer's
    assert context_length(ensure_default_model(), tokenizer) == 8192


def test_split_and_order_do_not_depend_on_input_order(exports, tokenizer):
    records = load_sft_data(exports["openai"]).records
    a = prepare_records(records, tokenizer, max_length=None, eval_fraction=0.4, seed=3)
    b = prepare_records(list(reversed(records)), tokenizer, max_length=None, eval_fraction=0.4, seed=3)
    assert (a.train, a.eval) == (b.train, b.eval) and len(a.eval) == 2
    assert sorted(map(str, a.train + a.eval)) == sorted(map(str, records))
    c = prepare_records(records, tokenizer, max_length=None, eval_fraction=0.4, seed=4)
    assert [r["id"] for r in c.train + c.eval] != [r["id"] for r in a.train + a.eval]  # the seed matters


def test_chat_template_choice(tokenizer):
    from astra.llm.embedded import tool_chat_template

    tok = copy.deepcopy(tokenizer)
    assert choose_chat_template(tok) == "astra-chatml-tools"  # the converted model ships it
    tok.chat_template = tool_chat_template() + "{#- a model's own copy -#}"
    assert choose_chat_template(tok) == "model"  # tools, generation markers, string arguments kept
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}")  # plain ChatML, no tools
    assert choose_chat_template(tok) == "astra-chatml-tools" and tok.chat_template == tool_chat_template()
    # tools and generation markers, but string arguments re-encoded by `tojson`
    tok.chat_template = tool_chat_template().replace(
        "{%- if fn['arguments'] is string -%}{{- fn['arguments'] -}}{%- else -%}", "{%- if false -%}{%- else -%}")
    assert choose_chat_template(tok) == "astra-chatml-tools"


def test_format_check_scores_replies():
    tools = [{"type": "function", "function": {"name": "geocode_city", "parameters": {}}}]
    prompts = [([], tools, "geocode_city")] * 5
    replies = [
        '<tool_call>\n{"name": "geocode_city", "arguments": {"city": "Tokyo"}}\n</tool_call>',
        '<tool_call>\n{"name": "geocode_city", "arguments": "{\\"city\\": \\"Oslo\\"}"}\n</tool_call>',
        '<tool_call>\n{"name": "made_up", "arguments": {}}\n</tool_call>',
        '<tool_call>\n{"name": "geocode_city", "arguments": {"city": </tool_call>',
        "The weather is nice.",
    ]
    check = score_replies(prompts, replies)
    assert check.prompts == 5 and check.with_tool_call == 0.8
    assert check.well_formed == 0.4 and check.expected_tool == 0.4


# ---------------------------------------------------------------------------------
# trainer: labels, training, checkpoints, resume, LoRA, CLI
# ---------------------------------------------------------------------------------


def _assistant_spans(text: str) -> list[str]:
    spans, pos, head = [], 0, "<|im_start|>assistant\n"
    while (start := text.find(head, pos)) >= 0:
        end = text.index("<|im_end|>", start) + len("<|im_end|>")
        spans.append(text[start + len(head):end])
        pos = end
    return spans


def test_labels_are_set_exactly_on_assistant_spans(tmp_path, exports, tiny_model):
    run = prepare_sft(_cfg(tmp_path, exports["hf"], tiny_model, eval_fraction=0.0, max_length=4096,
                           overlong="drop"))
    trainer, tok = run.trainer, run.tokenizer
    assert trainer.args.assistant_only_loss and not trainer.args.bf16 and trainer.args.use_cpu
    assert not trainer.args.activation_checkpointing and trainer.args.dataloader_num_workers == 0
    assert len(trainer.train_dataset) == len(run.prepared.train) == 5
    for i, rec in enumerate(run.prepared.train):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        text = render(tok, rec)
        assert tok.decode(ids) == text
        runs, cur = [], []
        for t, lab in zip(ids, labels, strict=True):
            if lab != -100:
                assert lab == t
                cur.append(t)
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        spans = _assistant_spans(text)
        assert len(spans) == sum(m["role"] == "assistant" for m in rec["messages"]) >= 3
        assert [tok.decode(r) for r in runs] == spans
        labelled = "".join(tok.decode(r) for r in runs)
        assert "<tool_call>" in labelled and labelled.endswith("<|im_end|>")
        assert "<tool_response>" not in labelled and "<|im_start|>" not in labelled
        user = next(m["content"] for m in rec["messages"] if m["role"] == "user")
        system = rec["messages"][0]["content"]
        assert user not in labelled and system[:60] not in labelled


def test_two_steps_checkpoint_eval_loss_and_resume(tmp_path, exports, tiny_model):
    res = train_sft(_cfg(tmp_path, exports["openai"], tiny_model, max_steps=2))
    out = tmp_path / "ckpt"
    assert res.global_step == 2 and res.train_loss and res.train_loss > 0
    assert (out / "checkpoint-2").is_dir() and (out / "model.safetensors").exists()
    assert (out / "tokenizer_config.json").exists() and (out / "curves.png").stat().st_size > 1000
    assert res.eval_loss_before is not None and res.eval_loss_after is not None
    assert res.data["train"] == 4 and res.data["eval"] == 1
    assert res.format_before is not None and res.format_before.prompts >= 1
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["eval_loss_before"] == res.eval_loss_before and summary["global_step"] == 2
    assert summary["format_after"]["prompts"] >= 1 and summary["config"]["max_steps"] == 2
    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs if "loss" in r] == [1, 2]
    assert {r.get("phase") for r in logs if "eval_loss" in r} == {"before", "after"}
    assert all(r["tokens_per_s"] > 0 and "lr" in r and r["grad_norm"] > 0 for r in logs if "loss" in r)
    # resume from the newest checkpoint and go on to step 3
    res2 = train_sft(_cfg(tmp_path, exports["openai"], tiny_model, max_steps=3, resume=True))
    assert res2.resumed_from and res2.resumed_from.endswith("checkpoint-2") and res2.global_step == 3
    logs = [json.loads(line) for line in (out / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs if "loss" in r] == [1, 2, 3]
    # the final model loads as a plain model
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2


def test_lora_step_and_merge(tmp_path, exports, tiny_model):
    res = train_sft(_cfg(tmp_path, exports["openai"], tiny_model, max_steps=1, lora=True, lora_r=4,
                         eval_fraction=0.0, format_check_prompts=0))
    out = tmp_path / "ckpt"
    assert res.global_step == 1 and res.adapter_path == out and res.model_path == out / "merged"
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert res.eval_loss_before is None and res.format_before is None
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert (out / "merged" / "tokenizer_config.json").exists()


def test_cli_sft_one_step(tmp_path, exports, tiny_model):
    from typer.testing import CliRunner

    from astra.train.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [
        "sft", "--data", str(exports["openai"]), "--data", str(exports["hf"]), "--model", str(tiny_model),
        "-o", str(out), "--max-steps", "1", "--batch-size", "1", "--max-length", "384", "--overlong", "truncate",
        "--lr", "1e-3", "--format-check", "1", "--format-check-tokens", "4", "--eval-fraction", "0.2",
        "--limit", "7", "--threads", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["data"]["eval"] == 1 and summary["data"]["records"] == 7
    assert summary["data"]["format"] == "openai-jsonl+hf" and str(exports["hf"]) in summary["data"]["source"]
    assert summary["format_after"]["prompts"] == 1
    bad = CliRunner().invoke(app, ["sft", "--data", str(tmp_path / "missing"), "--model", str(tiny_model),
                                   "-o", str(out)])
    assert bad.exit_code == 1 and "SFT data not found" in bad.output
    bad = CliRunner().invoke(app, ["sft", "--data", str(exports["openai"]), "-o", str(out), "--overlong", "cut"])
    assert bad.exit_code == 1 and "--overlong" in bad.output


def test_bad_options_are_config_errors(tmp_path, exports, tiny_model):
    with pytest.raises(ConfigError, match="max-steps"):
        train_sft(_cfg(tmp_path, exports["openai"], tiny_model, max_steps=0))


def test_format_prompts_take_first_turns_first(exports):
    records = load_sft_data(exports["openai"]).records
    prompts = format_prompts(records, 7)
    assert len(prompts) == 7
    assert [p[2] for p in prompts[:5]] == ["geocode_city"] * 5
    assert all(p[0][-1]["role"] == "user" for p in prompts[:5])
    assert all(p[0][-1]["role"] == "tool" for p in prompts[5:])


def test_warmup_is_whole_steps_with_max_steps(tmp_path):
    from astra.train.sft import _warmup

    def cfg(**kw):
        return SFTRunConfig(data=tmp_path / "d.jsonl", output_dir=tmp_path / "o", **kw)

    assert _warmup(cfg(max_steps=4)) == 0  # no step at learning rate 0
    assert _warmup(cfg(max_steps=100)) == 5
    assert _warmup(cfg()) == 0.05  # epochs: a ratio of the steps the trainer computes


def _one_step(tmp_path, data, model, **kw):
    run = prepare_sft(_cfg(tmp_path, data, model, max_steps=1, eval_fraction=0.0, format_check_prompts=0,
                           save_steps=100, learning_rate=1e-2, **kw))
    run.trainer.train()
    loss = next(h["loss"] for h in run.trainer.state.log_history if "loss" in h)
    weights = {k: v.detach().float().clone() for k, v in run.trainer.model.named_parameters()}
    return run, loss, weights


def test_gradient_checkpointing_gives_the_same_loss_and_step(tmp_path, exports, tiny_model):
    plain, l1, w1 = _one_step(tmp_path / "a", exports["openai"], tiny_model)
    ckpt, l2, w2 = _one_step(tmp_path / "b", exports["openai"], tiny_model, gradient_checkpointing=True)
    assert ckpt.trainer.args.activation_checkpointing and ckpt.trainer.model.is_activation_checkpointing
    assert not plain.trainer.model.is_activation_checkpointing
    assert l2 == pytest.approx(l1, rel=1e-5)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-6), k


def test_bf16_precision_trains_with_fp32_weights(tmp_path, exports, tiny_model):
    _, l1, _ = _one_step(tmp_path / "a", exports["openai"], tiny_model)
    run, l2, w2 = _one_step(tmp_path / "b", exports["openai"], tiny_model, precision="bf16")
    assert run.precision == "bf16" and run.trainer.args.bf16
    assert l2 != l1 and l2 == pytest.approx(l1, rel=0.02)  # the forward ran in bf16 (autocast)
    assert all(p.dtype == torch.float32 for p in run.trainer.model.parameters())
    auto = prepare_sft(_cfg(tmp_path / "c", exports["openai"], tiny_model, max_steps=1, eval_fraction=0.0))
    assert auto.precision == "fp32" and not auto.trainer.args.bf16  # auto on the CPU
