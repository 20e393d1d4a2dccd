"""Training: SFT on tool-use trajectories (:mod:`astra.train.sft`) and multi-turn RL.

``from astra.train import train_sft, SFTRunConfig`` — imported lazily, so importing this
package does not load torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FormatCheck", "SFTResult", "SFTRunConfig", "load_sft_data", "train_sft"]


def __getattr__(name: str) -> Any:
    if name in ("FormatCheck", "SFTResult", "SFTRunConfig", "train_sft"):
        from astra.train import sft

        return getattr(sft, name)
    if name == "load_sft_data":
        from astra.train.data import load_sft_data

        return load_sft_data
    raise AttributeError(f"module 'astra.train' has no attribute {name!r}")
