"""Prompt tokens of the tool chat template: compact signatures (default) vs JSON schemas.

    .venv/bin/python benchmarks/train_prompt_tokens.py --envs RUN/envs --sft RUN/sft [--distractor-k 1]

For every environment: the prompt an RL rollout or the held-out evaluation starts from
(``EnvSession.reset()``: system prompt, question, tools, without and with the default
banded distractors), rendered with ``add_generation_prompt``. For every SFT record
(``astra export sft`` directory or JSONL): the whole conversation as SFT trains on it.
Both are rendered with the project's template twice: ``tool_format='json'`` (the JSON
schema listing of template v1) and the default compact signatures. One JSON object out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def _stats(xs: list[int]) -> dict[str, float]:
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "mean": round(statistics.fmean(xs), 1), "median": statistics.median(xs), "max": max(xs),
            "total": sum(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=Path, help="environments directory (astra envs synthesize output)")
    ap.add_argument("--sft", type=Path, help="SFT data (astra export sft directory or JSONL)")
    ap.add_argument("--distractor-k", type=int, default=1, help="banded distractors per band (the RL default)")
    ap.add_argument("--model", default=None, help="tokenizer (default: the embedded model's)")
    a = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from astra.llm.embedded import resolve_model_path, tool_chat_template

    tok = AutoTokenizer.from_pretrained(resolve_model_path(a.model))
    tok.chat_template = tool_chat_template()

    def n_tokens(messages, tools, **kw) -> int:
        text = tok.apply_chat_template(messages, tools=tools or None, tokenize=False, **kw)
        return len(tok(text, add_special_tokens=False)["input_ids"])

    out: dict[str, object] = {"tokenizer": str(resolve_model_path(a.model))}
    if a.envs:
        from astra.envs import DistractorSampler, EnvSession
        from astra.train.rl import load_envs

        envs = load_envs(a.envs)
        sampler = DistractorSampler(envs, mode="banded", k=a.distractor_k, seed=0) if a.distractor_k else None
        for label, use_d in (("env_prompt", False), ("env_prompt_with_distractors", True)):
            if use_d and sampler is None:
                continue
            rows: dict[str, list[int]] = {"json": [], "compact": []}
            for env in envs:
                s = EnvSession(env, distractors=sampler.sample(env) if use_d and sampler else None)
                messages, tools = s.reset()
                rows["json"].append(n_tokens(messages, tools, add_generation_prompt=True, tool_format="json"))
                rows["compact"].append(n_tokens(messages, tools, add_generation_prompt=True))
            out[label] = {"envs": str(a.envs), **{k: _stats(v) for k, v in rows.items()},
                          "saved_share": round(1 - sum(rows["compact"]) / sum(rows["json"]), 3)}
    if a.sft:
        from astra.train.data import load_sft_sources

        recs = load_sft_sources(a.sft).records
        rows = {"json": [], "compact": []}
        for r in recs:
            tools = json.loads(r["tools"])
            rows["json"].append(n_tokens(r["messages"], tools, tool_format="json"))
            rows["compact"].append(n_tokens(r["messages"], tools))
        out["sft_record"] = {"data": str(a.sft), **{k: _stats(v) for k, v in rows.items()},
                             "saved_share": round(1 - sum(rows["compact"]) / sum(rows["json"]), 3),
                             "over_2048_json": sum(n > 2048 for n in rows["json"]),
                             "over_2048_compact": sum(n > 2048 for n in rows["compact"]),
                             "over_1024_json": sum(n > 1024 for n in rows["json"]),
                             "over_1024_compact": sum(n > 1024 for n in rows["compact"])}
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
