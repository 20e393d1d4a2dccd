"""Confidence intervals of evaluation results: percentile bootstrap over environments.

An evaluation is a mean over environments; its interval is the percentile bootstrap of
that mean (environments resampled with replacement). Two models evaluated on the same
environments are compared with a *paired* bootstrap of the per-environment difference,
which is much tighter than two overlapping intervals suggest.
"""

from __future__ import annotations

from collections.abc import Sequence

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_METHOD = "percentile bootstrap over environments"


def _means(values: Sequence[float], resamples: int, seed: int):  # -> np.ndarray
    import numpy as np

    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    return x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)


def bootstrap_ci(values: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, level: float = BOOTSTRAP_LEVEL,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (None for fewer than 2)."""
    import numpy as np

    if len(values) < 2:
        return None
    means = _means(values, resamples, seed)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def paired_difference(a: Sequence[float], b: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                      level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> dict[str, float | list[float] | None]:
    """Mean of ``b - a`` over paired items, its bootstrap interval, and the bootstrap share
    of resamples where ``b`` is not better than ``a`` (``p_not_better``; None for < 2 items)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} vs {len(b)}")
    d = [y - x for x, y in zip(a, b, strict=True)]
    diff = sum(d) / len(d) if d else 0.0
    if len(d) < 2:
        return {"diff": round(diff, 4), "ci": None, "p_not_better": None}
    means = _means(d, resamples, seed)
    ci = bootstrap_ci(d, resamples=resamples, level=level, seed=seed)
    assert ci is not None
    return {"diff": round(diff, 4), "ci": [round(ci[0], 4), round(ci[1], 4)],
            "p_not_better": round(float((means <= 0).mean()), 4)}
