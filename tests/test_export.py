"""SFT export: openai / sharegpt / hf formats, skip reasons, and the openai export loaded
into TRL's SFTTrainer with loss on assistant tokens only."""

from __future__ import annotations

import json

import pytest

from astra.export import export_sft
from astra.judge import Judge
from astra.pipeline import load_manifest
from astra.rollout import RolloutStage
from astra.types import Trajectory
from tests.test_rollout import sample_servers, weather_task


@pytest.fixture(scope="module")
def servers():
    return list(sample_servers())


@pytest.fixture(scope="module")
def judged(servers) -> list[Trajectory]:
    """Chain-executor trajectories (one with parallel calls), judged offline."""
    import asyncio

    from tests.test_rollout import plan_task

    stage = RolloutStage(servers=servers)
    stage.setup()
    tasks = [
        weather_task("a"),
        weather_task("b", city="Sydney", language="es", query="¿Qué tiempo hace ahora en Sydney?"),
        plan_task("c", "weather", "Give me the forecast and the air quality for London.", [
            {"tool": "geocode_city", "user_args": {"city": "London"}},
            {"tool": "get_forecast", "user_args": {"days": 2},
             "derived_args": {"latitude": {"step": 0, "path": ["latitude"]}, "longitude": {"step": 0, "path": ["longitude"]}}},
            {"tool": "get_air_quality",
             "derived_args": {"latitude": {"step": 0, "path": ["latitude"]}, "longitude": {"step": 0, "path": ["longitude"]}}},
        ]),
    ]

    async def go() -> list[Trajectory]:
        out = []
        for t in tasks:
            (traj,) = (await stage.process(t)).outputs
            j = await Judge("offline").judge(traj, min_score=0.7)
            out.append(traj.model_copy(update={"judgement": j.model_dump(mode="json")}))
        return out

    return asyncio.run(go())


def test_openai_export_keeps_strings_and_loads_with_datasets(tmp_path, judged):
    import datasets

    report = export_sft(judged, tmp_path, fmt="openai")
    assert report.written == 3 and not report.skipped
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    parallel = rows[2]["messages"][4]
    assert parallel["role"] == "assistant" and len(parallel["tool_calls"]) == 2  # forecast + air quality
    for r in rows:
        assert set(r) == {"id", "messages", "tools"} and isinstance(r["tools"], str)
        for m in r["messages"]:
            assert set(m) <= {"role", "content", "tool_calls", "tool_call_id"}
            for tc in m.get("tool_calls") or []:
                assert isinstance(tc["function"]["arguments"], str)
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "train.jsonl"), split="train")
    # arguments stay exactly as written: Arrow added no null keys
    loaded = [tc["function"]["arguments"] for m in ds[0]["messages"] for tc in (m.get("tool_calls") or [])]
    written = [tc["function"]["arguments"] for m in rows[0]["messages"] for tc in m.get("tool_calls") or []]
    assert loaded == written
    assert json.loads(ds[0]["tools"])[0]["function"]["name"] == "geocode_city"
    assert load_manifest(tmp_path / "export.manifest.json").accepted == 3


def test_sharegpt_export_alternates(tmp_path, judged):
    export_sft(judged, tmp_path, fmt="sharegpt")
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    conv = rows[2]["conversations"]
    assert [t["from"] for t in conv] == ["human", "function_call", "observation", "function_call", "observation", "gpt"]
    call = conv[1]["value"]
    assert call.startswith("<think>\n") and json.loads(call.split("</think>\n\n")[1]) == {
        "name": "geocode_city", "arguments": {"city": "London"}}
    parallel = json.loads(conv[3]["value"].split("</think>\n\n")[1])
    assert [c["name"] for c in parallel] == ["get_forecast", "get_air_quality"]
    assert len(conv[4]["value"].splitlines()) == 2
    assert rows[0]["system"] and json.loads(rows[0]["tools"])[0]["name"] == "geocode_city"
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["astra_sft"]["formatting"] == "sharegpt"
    export_sft(judged, tmp_path / "drop", fmt="sharegpt", thought="drop")
    row = json.loads((tmp_path / "drop" / "train.jsonl").read_text().splitlines()[0])
    assert json.loads(row["conversations"][1]["value"])["name"] == "geocode_city"


def test_hf_export_and_skip_reasons(tmp_path, judged):
    import datasets

    extra = [
        judged[0].model_copy(update={"id": "unjudged", "judgement": None}),
        judged[0].model_copy(update={"id": "failed", "judgement": {"failed": {"message": "down"}, "overall": None}}),
        judged[0].model_copy(update={"id": "low", "judgement": {**judged[0].judgement, "overall": 0.2}}),
        judged[0].model_copy(update={"id": "cut", "messages": judged[0].messages[:-1]}),
    ]
    report = export_sft([*judged, *extra], tmp_path / "hf", fmt="hf")
    assert report.written == 3
    assert dict(report.skipped) == {"unjudged": 1, "judge_failed": 1, "below_min_score": 1, "no_final_answer": 1}
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert len(ds) == 3 and set(ds.column_names) == {"id", "messages", "tools"}
    m = load_manifest(tmp_path / "hf" / "export.manifest.json")
    assert m.rejections_by_reason == {"below_min_score": 1, "judge_failed": 1, "no_final_answer": 1, "unjudged": 1}


@pytest.mark.model
def test_openai_export_trains_with_trl_on_assistant_tokens_only(tmp_path, judged):
    """TRL's SFTTrainer loads the export as is; labels are set exactly on assistant spans."""
    import datasets
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    from astra.llm.embedded import ensure_default_model

    export_sft(judged, tmp_path / "sft", fmt="openai")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "sft" / "train.jsonl"), split="train")
    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=4096, pad_token_id=tok.pad_token_id))
    args = SFTConfig(output_dir=str(tmp_path / "out"), assistant_only_loss=True, max_steps=1,
                     per_device_train_batch_size=1, learning_rate=1e-3, max_length=4096, report_to=[],
                     save_strategy="no", logging_steps=1, bf16=False, use_cpu=True, dataloader_num_workers=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    for i in range(len(ds)):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        # the assistant spans from the rendered text: '<|im_start|>assistant\n' ... '<|im_end|>'
        text = tok.apply_chat_template(ds[i]["messages"], tools=json.loads(ds[i]["tools"]), tokenize=False)
        assert tok.decode(ids) == text
        spans, pos = [], 0
        head = "<|im_start|>assistant\n"
        while (start := text.find(head, pos)) >= 0:
            end = text.index("<|im_end|>", start) + len("<|im_end|>")
            spans.append(text[start + len(head):end])
            pos = end
        n_assistant = sum(1 for m in ds[i]["messages"] if m["role"] == "assistant")
        assert len(spans) == n_assistant >= 3
        # labelled tokens form exactly those spans, in order, and nothing else
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
        assert [tok.decode(r) for r in runs] == spans
        labelled = "".join(tok.decode(r) for r in runs)
        assert "<tool_response>" not in labelled and ds[i]["messages"][1]["content"] not in labelled
    # one optimizer step on the shortest example: the export trains as is
    lengths = [len(x["input_ids"]) for x in trainer.train_dataset]
    trainer.train_dataset = trainer.train_dataset.select([lengths.index(min(lengths))])
    result = trainer.train()
    assert result.global_step == 1 and result.training_loss > 0
