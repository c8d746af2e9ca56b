"""Integer apportionment shared by skew profiles and sampler quotas."""

from __future__ import annotations

import numpy as np


def apportion(probs: np.ndarray, total: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``probs * total``.

    Largest-remainder rounding (ties go to the lower class position); with ``rng``,
    unbiased stochastic rounding by systematic sampling (each count is ``floor`` or
    ``ceil`` of its share, ``E[count] = share``, and the total is still exact).

    Example:
        >>> apportion(np.array([0.5, 0.3, 0.2]), 7).tolist()
        [4, 2, 1]
    """
    raw = np.asarray(probs, dtype=np.float64) * total
    base = np.floor(raw).astype(np.int64)
    frac = raw - base
    missing = int(total - base.sum())
    if missing <= 0:
        return base
    if rng is None:
        top = np.argsort(-frac, kind="stable")[:missing]
        base[top] += 1
        return base
    cum = np.cumsum(frac)
    cum *= missing / cum[-1]  # exact total despite float error
    u = rng.random()
    edges = np.floor(np.concatenate(([0.0], cum)) + u)
    return base + np.diff(edges).astype(np.int64)
