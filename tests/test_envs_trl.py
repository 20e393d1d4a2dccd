"""TRL's GRPOTrainer over astra environments: the response template for astra's tool chat
template (tool calls parsed), the trainer built with ``environment_factory`` and one real
optimizer step on the embedded model that earns the environment reward."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from astra.envs.adapters import (
    CHATML_TOOLS_RESPONSE_TEMPLATE,
    attach_response_template,
    trl_environment_class,
    trl_grpo_trainer,
)
from astra.envs.exploits import gold_turns
from astra.envsynth.compose import compose
from astra.envsynth.synth import synthesize_environment
from astra.envsynth.worlds import load_worlds
from astra.errors import ConfigError, ToolCallError
from astra.sandbox import SandboxPool

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(size=2)
    yield p
    p.close()


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model

    return AutoTokenizer.from_pretrained(str(ensure_default_model()))


@pytest.fixture(scope="module")
def single_hop(pool):
    inst = next(i for i in compose(load_worlds(["film"]), n=1, seed=0) if i.scenario == "single_hop")
    return asyncio.run(synthesize_environment(inst, pool=pool))


def test_response_template_parses_astra_tool_calls(tokenizer):
    tok = attach_response_template(tokenizer)
    assert tok.response_template == CHATML_TOOLS_RESPONSE_TEMPLATE
    prefix = tok.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    text = ('Looking it up.\n<tool_call>\n{"name": "get_a", "arguments": {"x": "Ann", "n": 2}}\n</tool_call>\n'
            '<tool_call>\n{"name": "get_b", "arguments": {}}\n</tool_call><|im_end|>')
    parsed = tok.parse_response(text, prefix=prefix)
    assert parsed["content"] == "Looking it up."
    assert [c["function"] for c in parsed["tool_calls"]] == [{"name": "get_a", "arguments": {"x": "Ann", "n": 2}},
                                                            {"name": "get_b", "arguments": {}}]
    assert "tool_calls" not in tok.parse_response("It is 15.<|im_end|>", prefix=prefix)


def test_response_template_refuses_a_template_it_cannot_parse():
    from transformers import AutoTokenizer

    from astra.llm.embedded import ensure_default_model

    tok = AutoTokenizer.from_pretrained(str(ensure_default_model()))
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="not ChatML with Hermes"):
        attach_response_template(tok)


def test_trl_tool_methods_give_schema_errors_not_type_errors(single_hop, pool):
    cls = trl_environment_class(single_hop, pool=pool)
    inst = cls()
    inst.reset(prompt=[{"role": "user", "content": "q"}])
    name = single_hop.tools[0].tool.name
    with pytest.raises(ToolCallError, match="missing required argument"):
        getattr(inst, name)()
    with pytest.raises(ToolCallError, match="unexpected argument 'bogus'"):
        getattr(inst, name)(**{single_hop.tools[0].tool.required[0]: "The Salt Orchard", "bogus": 1})
    assert inst._session.calls == 2


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # inside TRL 1.16
def test_grpo_trainer_builds_and_one_step_earns_the_environment_reward(single_hop, pool, tmp_path):
    """Generation is scripted (the gold call, then the right answer in one rollout and a
    wrong one in the other), everything else is TRL's: response parsing, the tool loop
    through the environment's methods, get_reward, the loss and one optimizer step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from astra.llm.embedded import ensure_default_model

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    path = str(ensure_default_model())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "layers.0." in n}
    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=128, max_steps=1, learning_rate=1e-4, report_to=[], logging_steps=1,
                      use_cpu=True, bf16=False, activation_checkpointing=False, max_tool_calling_iterations=2,
                      save_strategy="no", seed=0)
    trainer = trl_grpo_trainer([single_hop], model=model, tokenizer=tok, args=args, pool=pool)
    call = gold_turns(single_hop)[0][0]["function"]
    gold_text = "<tool_call>\n" + json.dumps({"name": call["name"], "arguments": json.loads(call["arguments"])}) + \
        "\n</tool_call>"
    seen: list[str] = []

    def scripted(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        out = []
        for i, ids in enumerate(prompt_ids):
            text = tok.decode(ids)
            after_tool = "<tool_response>" in text.rsplit("<|im_start|>user", 1)[-1]
            reply = (f"The answer is {single_hop.instance.answer}." if i == 0 else "I am not sure.") if after_tool \
                else gold_text
            seen.append(reply)
            out.append(tok(reply + "<|im_end|>", add_special_tokens=False)["input_ids"])
        return out, None

    trainer._generate_single_turn = scripted
    trainer.train()
    logs = trainer.state.log_history[0]
    key = next(k for k in logs if k.startswith("rewards/AstraTRLEnv_") and k.endswith("/mean"))
    assert logs["tools/call_frequency"] == 1.0 and logs["tools/failure_frequency"] == 0.0
    assert logs[key] == pytest.approx(0.5, abs=1e-4)  # one rollout right (reward 1), one wrong (0)
    sessions = [e._session for envs in trainer._environment_pool.values() for e in envs if e._session]
    assert sorted(s.reward().reward for s in sessions) == pytest.approx([0.0, 1.0], abs=1e-4)
    assert all(s.calls == 1 and s.solved == ["s1"] for s in sessions)
    assert gold_text in seen and any(not torch.equal(p, before[n]) for n, p in model.named_parameters()
                                     if n in before)  # the optimizer step changed the weights
