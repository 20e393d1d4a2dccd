"""Scale-out export to veRL (``astra train rl --backend verl --export DIR``), on the CPU and
without veRL: the parquet layout, the trainer config's ASTRA §3.2 keys, run.sh, and the
written plugin files imported with veRL's base classes stubbed (the agent loop drives a
real ``EnvSession`` with a scripted token server; the reward function replays a response).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from astra.envs import write_environment
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.sandbox import SandboxPool, parse_call_statement
from astra.train.rl_config import RLConfig, VerlJob
from astra.train.verl_export import export_verl_job
from astra.train.verl_plugin.core import AGENT_NAME, EnvCatalog, make_session, replay_reward, split_turns


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def envs(pool):
    insts = compose(load_worlds(["film"]), n=1, seed=0)

    async def build():
        return [await synthesize_environment(i, pool=pool) for i in insts]

    return asyncio.run(build())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model, tool_chat_template

    try:
        path = ensure_default_model()
    except Exception as e:  # pragma: no cover
        pytest.skip(f"needs the embedded model's tokenizer: {e}")
    tok = AutoTokenizer.from_pretrained(path)
    if "tools" not in (tok.chat_template or ""):
        tok.chat_template = tool_chat_template()
    return tok


class RandomSampler:
    """Distractors without an embedding model: the first tool of the next environment."""

    def __init__(self, envs):
        self.envs = envs

    def sample(self, env):
        i = [e.id for e in self.envs].index(env.id)
        other = self.envs[(i + 1) % len(self.envs)]
        return [other.tools[0].model_copy(update={"serves": [], "calls": {}})]


@pytest.fixture(scope="module")
def export_dir(envs, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("verl") / "job"
    cfg = RLConfig(backend="verl", reward="f1", group_size=4, batch_size=16, max_turns=8, distractors="random",
                   distractor_k=1)
    res = export_verl_job(envs, out, cfg, model_path="/models/sft", job=VerlJob(val_fraction=0.25),
                          tokenizer=tokenizer, distractor_sampler=RandomSampler(envs))
    assert res.rows_train + res.rows_val == len(envs)
    return out


def test_parquet_layout(export_dir, envs):
    import pyarrow.parquet as pq

    train = pq.read_table(export_dir / "data" / "train.parquet").to_pylist()
    val = pq.read_table(export_dir / "data" / "val.parquet").to_pylist()
    assert len(train) == len(envs) - 1 and len(val) == 1
    cols = set(pq.read_schema(export_dir / "data" / "train.parquet").names)
    assert cols == {"data_source", "agent_name", "prompt", "ability", "reward_model", "extra_info"}
    by_id = {e.id: e for e in envs}
    for row in train + val:
        assert row["data_source"] == "astra_env" and row["agent_name"] == AGENT_NAME
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        info = row["extra_info"]
        env = by_id[info["env_id"]]
        assert row["prompt"][1]["content"] == env.instance.question
        assert row["reward_model"]["style"] == "rule"
        assert json.loads(row["reward_model"]["ground_truth"])["answer"] == env.instance.answer
        assert info["reward_kind"] == "f1" and info["max_turns"] == 8 and info["env_dir"] == "envs"
        distractors = json.loads(info["distractors"])
        assert len(distractors) == 1 and distractors[0][0] != env.id
        tool_names = {t["function"]["name"] for t in json.loads(info["tools"])}
        assert {t.tool.name for t in env.tools} <= tool_names and distractors[0][1] in tool_names
    assert {r["extra_info"]["split"] for r in val} == {"test"}
    assert len(list((export_dir / "envs").glob("*.json"))) == len(envs)


def test_config_has_spec_settings(export_dir):
    cfg = yaml.safe_load((export_dir / "astra_grpo.yaml").read_text())
    assert "ppo_trainer" in cfg["defaults"] and cfg["hydra"]["searchpath"] == ["pkg://verl.trainer.config"]
    alg, actor = cfg["algorithm"], cfg["actor_rollout_ref"]["actor"]
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert alg["adv_estimator"] == "grpo"
    assert alg["use_kl_in_reward"] is False and alg["kl_ctrl"]["kl_coef"] == 0
    assert actor["use_kl_loss"] is False and actor["kl_loss_coef"] == 0
    assert actor["entropy_coeff"] == 0
    assert actor["loss_agg_mode"] == "token-mean"
    assert (actor["clip_ratio_low"], actor["clip_ratio_high"]) == (0.2, 0.28)
    assert alg["filter_groups"]["enable"] is True and alg["filter_groups"]["metric"] == "seq_reward"
    assert actor["ppo_mini_batch_size"] == cfg["data"]["train_batch_size"] == 4  # 16 samples / G=4
    assert actor["optim"]["lr"] == 2e-6
    assert rollout["n"] == 4 and rollout["multi_turn"]["enable"] is True
    assert rollout["multi_turn"]["max_assistant_turns"] == 8 <= 32
    assert rollout["agent"]["agent_loop_config_path"] == "agent_loop.yaml"
    assert cfg["data"]["max_prompt_length"] >= 256 and cfg["data"]["max_response_length"] == 8192
    assert cfg["data"]["return_raw_chat"] is True
    assert cfg["actor_rollout_ref"]["model"]["path"] == "/models/sft"
    assert cfg["custom_reward_function"] == {"path": "astra_reward.py", "name": "compute_score"}
    loops = yaml.safe_load((export_dir / "agent_loop.yaml").read_text())
    assert loops == [{"name": AGENT_NAME, "_target_": "astra_agent_loop.AstraEnvAgentLoop"}]
    run = (export_dir / "run.sh").read_text()
    assert "verl.trainer.main_ppo" in run and "--config-name astra_grpo" in run
    assert (export_dir / "run.sh").stat().st_mode & 0o111
    manifest = json.loads((export_dir / "export_manifest.json").read_text())
    assert manifest["n_envs"] == 4 and manifest["reward"] == "f1"


def test_too_many_turns_refused(envs, tmp_path):
    from astra.errors import ConfigError

    with pytest.raises(ConfigError, match="32"):
        export_verl_job(envs, tmp_path / "x", RLConfig(backend="verl", max_turns=40, distractors="none"),
                        model_path="m")
    with pytest.raises(ConfigError, match="backend='verl'"):
        export_verl_job(envs, tmp_path / "y", RLConfig(), model_path="m")


# -- the written plugin files, veRL stubbed ---------------------------------------------------


class _Cfg(dict):
    """A dict with attribute access and ``.get``, standing in for OmegaConf's DictConfig."""

    def __getattr__(self, k):
        v = self[k]
        return _Cfg(v) if isinstance(v, dict) else v


@pytest.fixture()
def stub_verl(monkeypatch):
    registry: dict[str, dict] = {}

    class AgentLoopBase:
        def __init__(self, trainer_config, server_manager, tokenizer, processor=None, **kw):
            self.config = trainer_config.config
            self.server_manager = server_manager
            self.tokenizer = tokenizer
            self.processor = processor

    class AgentLoopOutput:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    def register(name):
        def deco(cls):
            registry[name] = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
            return cls
        return deco

    mod = types.ModuleType("verl.experimental.agent_loop.agent_loop")
    mod.AgentLoopBase, mod.AgentLoopOutput, mod.register = AgentLoopBase, AgentLoopOutput, register
    for name in ("verl", "verl.experimental", "verl.experimental.agent_loop"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "verl.experimental.agent_loop.agent_loop", mod)
    return registry


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ScriptedServer:
    """veRL's server manager, scripted: the env's gold calls one turn at a time, then an answer."""

    def __init__(self, tokenizer, env):
        self.tok = tokenizer
        calls = []
        for t in env.tools:
            for sid, stmt in t.calls.items():
                c = parse_call_statement(stmt)
                calls.append((sid, c))
        calls.sort(key=lambda x: int(x[0][1:]))
        self.replies = [f'<tool_call>\n{{"name": "{c.name}", "arguments": {json.dumps(c.kwargs)}}}\n</tool_call><|im_end|>'
                        for _, c in calls] + [f"The answer is {env.instance.answer}.<|im_end|>"]
        self.prompts: list[list[int]] = []

    async def generate(self, *, request_id, prompt_ids, sampling_params, image_data=None):
        self.prompts.append(list(prompt_ids))
        text = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]
        ids = self.tok(text, add_special_tokens=False)["input_ids"]
        return types.SimpleNamespace(token_ids=ids, log_probs=[-0.5] * len(ids))


def test_agent_loop_plugin_drives_the_runtime(export_dir, envs, tokenizer, stub_verl, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setenv("ASTRA_VERL_DIR", str(export_dir))
    mod = _import(export_dir / "astra_agent_loop.py", "astra_agent_loop")
    assert stub_verl[AGENT_NAME]["_target_"] == "astra_agent_loop.AstraEnvAgentLoop"
    row = next(r for r in pq.read_table(export_dir / "data" / "train.parquet").to_pylist()
               if r["extra_info"]["scenario"] == "multi_hop")
    env = next(e for e in envs if e.id == row["extra_info"]["env_id"])
    server = ScriptedServer(tokenizer, env)
    config = _Cfg({"actor_rollout_ref": {"rollout": {"response_length": 2048, "multi_turn": {"max_assistant_turns": 8}}}})
    loop = mod.AstraEnvAgentLoop(types.SimpleNamespace(config=config), server, tokenizer)
    out = asyncio.run(loop.run({"temperature": 1.0}, raw_prompt=row["prompt"], extra_info=row["extra_info"],
                               agent_name=AGENT_NAME))
    # the prompt is the row's messages with the row's tools, as veRL would tokenize them
    expected = tokenizer.apply_chat_template(row["prompt"], tools=json.loads(row["extra_info"]["tools"]),
                                             add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(out.prompt_ids) == expected
    assert len(out.response_ids) == len(out.response_mask) == len(out.response_logprobs)
    policy = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask, strict=True) if m])
    tool = tokenizer.decode([t for t, m in zip(out.response_ids, out.response_mask, strict=True) if not m])
    assert "<tool_call>" in policy and "<tool_response>" not in policy
    assert "<tool_response>" in tool and "<tool_call>" not in tool
    n_tool_subtasks = sum(s.needs_tool for s in env.instance.sub_tasks)
    info = out.extra_fields["reward_extra_info"]
    assert info["solved"] == n_tool_subtasks and info["calls"] == n_tool_subtasks
    assert out.reward_score == pytest.approx(info["reward"]) and out.reward_score > 0.5
    assert out.num_turns == len(server.prompts)
    # logprobs of tool tokens are 0, of policy tokens what the server returned
    assert all(lp == 0.0 for lp, m in zip(out.response_logprobs, out.response_mask, strict=True) if not m)

    # the reward function (fallback) replays the decoded response to the same reward
    rew = _import(export_dir / "astra_reward.py", "astra_reward")
    solution = tokenizer.decode(out.response_ids, skip_special_tokens=True)
    score = rew.compute_score("astra_env", solution, row["reward_model"]["ground_truth"], row["extra_info"])
    assert score["score"] == pytest.approx(out.reward_score)
    assert score["solved"] == info["solved"] and score["calls"] == info["calls"]
    assert rew.compute_score("other", solution, "", row["extra_info"]) == 0.0


def test_core_session_and_replay(export_dir, envs, monkeypatch):
    import pyarrow.parquet as pq

    row = pq.read_table(export_dir / "data" / "train.parquet").to_pylist()[0]
    cat = EnvCatalog(export_dir / "envs")
    s = make_session(row["extra_info"], base_dir=export_dir, catalog=cat)
    msgs, tools = s.reset()
    assert msgs == [{"role": m["role"], "content": m["content"]} for m in row["prompt"]]
    assert tools == json.loads(row["extra_info"]["tools"])  # same distractors, same order (seeded)
    # a response that answers without calling a tool: no sub-task solved, reward 0
    assert replay_reward("I do not know.", row["extra_info"], base_dir=export_dir, catalog=cat)["score"] == 0.0
    assert split_turns("a<tool_response>\nx\n</tool_response>\n<tool_response>y</tool_response>\nassistant\nb") == \
        ["a", "b"]


def test_cli_writes_the_job(envs, tmp_path):
    import typer

    from astra.train.rl_cli import rl_command

    env_dir = tmp_path / "envs"
    for e in envs:
        write_environment(e, env_dir)
    app = typer.Typer()
    app.command()(rl_command)
    res = CliRunner().invoke(app, ["--envs", str(env_dir), "--backend", "verl", "--export", str(tmp_path / "job"),
                                   "--distractors", "none", "--group-size", "8", "--batch", "64",
                                   "--max-turns", "16", "--reward", "recall"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((tmp_path / "job" / "astra_grpo.yaml").read_text())
    assert cfg["actor_rollout_ref"]["rollout"]["n"] == 8 and cfg["data"]["train_batch_size"] == 8
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "job" / "data" / "train.parquet").to_pylist()
    assert {r["extra_info"]["reward_kind"] for r in rows} == {"recall"}
    assert all(json.loads(r["extra_info"]["distractors"]) == [] for r in rows)
    bad = CliRunner().invoke(app, ["--envs", str(env_dir), "--backend", "verl"])
    assert bad.exit_code == 1 and "--export" in bad.output
