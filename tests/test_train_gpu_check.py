"""benchmarks/gpu_check.sh --cpu-smoke: every check runs and prints one JSON object per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_smoke_prints_every_check(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    res = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    checks = [x["check"] for x in lines]
    assert checks == ["env", "matmul_peak", "rl_update", "rl_update", "sft_step", "sft_step", "rollout", "rollout",
                      "rollout_engines", "vllm_skipped", "done"]
    by = {(x["check"], x.get("precision"), x.get("engine"), x.get("gradient_checkpointing")): x for x in lines}
    assert by[("matmul_peak", None, None, None)]["bf16_tflops"] > 0
    for key in (("rl_update", "fp32", None, None), ("rl_update", "bf16", None, None),
                ("sft_step", "bf16", None, False), ("sft_step", "bf16", None, True)):
        assert 0 < by[key]["mfu_vs_bf16_peak"] < 1 and by[key]["tokens_per_s"] > 0, key
    engines = next(x for x in lines if x["check"] == "rollout_engines")
    assert engines["identical_tokens"] is True
    rolls = [x for x in lines if x["check"] == "rollout"]
    assert rolls[0]["generated_tokens"] == rolls[1]["generated_tokens"] > 0 and rolls[0]["turns"] > 1
    skipped = next(x for x in lines if x["check"] == "vllm_skipped")  # no vllm (nor a GPU) here
    assert "pip install 'astra[vllm]'" in skipped["reason"] or "CUDA" in skipped["reason"]
