"""Integer apportionment shared by skew profiles and sampler quotas."""

from __future__ import annotations

import numpy as np


def apportion(
    probs: np.ndarray, total: int, rng: np.random.Generator | None = None, *, ties: np.random.Generator | None = None
) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``probs * total``.

    Largest-remainder rounding: equal remainders go to the lower class position, or, with
    ``ties``, to positions in an order drawn from it (so that no class always loses a tie,
    e.g. 3 draws over 6 equal classes). With ``rng``, unbiased stochastic rounding by
    systematic sampling instead (each count is ``floor`` or ``ceil`` of its share,
    ``E[count] = share``, and the total is still exact).

    Example:
        >>> apportion(np.array([0.5, 0.3, 0.2]), 7).tolist()
        [4, 2, 1]
        >>> sorted(apportion(np.full(6, 1 / 6), 3, ties=np.random.default_rng(0)).tolist())
        [0, 0, 0, 1, 1, 1]
    """
    raw = np.asarray(probs, dtype=np.float64) * total
    base = np.floor(raw).astype(np.int64)
    frac = raw - base
    missing = int(total - base.sum())
    if missing <= 0:
        return base
    if rng is None:
        key = -np.round(frac, 9)  # remainders equal but for float error are ties
        order = np.arange(frac.size) if ties is None else ties.permutation(frac.size)
        top = order[np.argsort(key[order], kind="stable")[:missing]]
        base[top] += 1
        return base
    cum = np.cumsum(frac)
    cum *= missing / cum[-1]  # exact total despite float error
    u = rng.random()
    edges = np.floor(np.concatenate(([0.0], cum)) + u)
    return base + np.diff(edges).astype(np.int64)
