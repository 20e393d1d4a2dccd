"""Numeric precision of training and rollouts: fp32, or bf16 autocast with fp32 weights.

``--precision auto`` is bf16 on a CUDA device that supports it and fp32 everywhere else
(on the CPU it is a no-op: fp32). ``bf16`` runs the forward passes (rollout generation,
log-probs, the loss) under ``torch.autocast(dtype=torch.bfloat16)``: matmuls in bf16,
reductions and the weights, gradients and optimizer state in fp32 (the master copy), so
nothing else changes. ``bf16`` is accepted on the CPU too (torch's CPU autocast; slower
than fp32 on most CPUs, useful to test the code path).
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from astra.choices import check_choice

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")


def device_type(device: Any) -> str:
    """``cuda`` or ``cpu`` (the autocast device type) of a device or device string."""
    return str(device).split(":", 1)[0] if str(device).startswith("cuda") else "cpu"


def resolve_precision(precision: str, device: Any) -> str:
    """``fp32`` or ``bf16``; ValueError for an unknown name or bf16 on a GPU without it."""
    import torch

    check_choice(precision, PRECISIONS, "precision")
    cuda = device_type(device) == "cuda"
    if precision == "auto":
        return "bf16" if cuda and torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("--precision bf16: this GPU does not support bfloat16 (use fp32)")
    return precision


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a resolved precision (a no-op for fp32)."""
    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=torch.bfloat16)
