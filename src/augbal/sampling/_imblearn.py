"""The imbalanced-learn bridge: resample *indices* of an image dataset, never the images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_bool, check_choice, is_int
from ._strategy import _check

__all__ = ["resample_indices"]

_METHODS = ("over", "under")


def resample_indices(
    labels: Any,
    *,
    sampling_strategy: Any = "auto",
    method: str = "over",
    seed: int | Sequence[int],
    classes: Sequence[str] | None = None,
    replacement: bool = False,
) -> np.ndarray:
    """Dataset indices resampled by imbalanced-learn's ``RandomOverSampler`` / ``RandomUnderSampler``.

    The samplers' ``fit_resample`` runs on an index column (``X = arange(N)[:, None]``),
    so every ``sampling_strategy`` imbalanced-learn accepts works on an image dataset
    without loading an image, and the result is the one imbalanced-learn gives for these
    labels and seed. The strategy is first checked by :func:`check_sampling_strategy`
    (augbal's messages; class names allowed with ``classes``).

    Args:
        labels: per-sample class indices, or any dataset ``augbal.data.targets_of`` reads.
        sampling_strategy: any imbalanced-learn form ('auto', 'not majority', dict, float,
            callable, ...); see :func:`check_sampling_strategy`.
        method: ``"over"`` (``RandomOverSampler``: originals first, then the added draws)
            or ``"under"`` (``RandomUnderSampler``: kept indices grouped by class).
        seed: an integer, or a sequence of integers such as ``(seed, epoch)`` (mixed with
            ``numpy.random.SeedSequence`` into one 32-bit seed).
        classes: class names in index order, so dict keys may be names.
        replacement: under-sampling only: draw the kept samples with replacement.

    Returns:
        ``int64`` indices into the dataset; their labels have the checked target counts.

    Example:
        >>> labels = [0] * 6 + [1] * 2 + [2] * 1
        >>> idx = resample_indices(labels, sampling_strategy="auto", method="over", seed=0)
        >>> np.bincount(np.asarray(labels)[idx]).tolist(), idx[:9].tolist()
        ([6, 6, 6], [0, 1, 2, 3, 4, 5, 6, 7, 8])
        >>> idx = resample_indices(labels, sampling_strategy={0: 3}, method="under", seed=0)
        >>> np.bincount(np.asarray(labels)[idx]).tolist()
        [3, 2, 1]
    """
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    from ..data import targets_of

    check_choice("method", method, _METHODS)
    check_bool("replacement", replacement)
    if replacement and method == "over":
        raise ValueError("replacement applies to under-sampling only (over-sampling always repeats); got method='over'")
    random_state = _seed32(seed)
    y = targets_of(labels)
    targets, targeted = _check(sampling_strategy, y, kind=method, of="labels", classes=classes)
    # imbalanced-learn's own dict form (final counts for over- and under-sampling), holding
    # exactly the classes its own check would target: same draws as calling it directly
    strategy = {c: targets[c] for c in targeted}
    if method == "over":
        sampler = RandomOverSampler(sampling_strategy=strategy, random_state=random_state)
    else:
        sampler = RandomUnderSampler(sampling_strategy=strategy, random_state=random_state, replacement=replacement)
    # the narrowest dtypes halve imbalanced-learn's time and memory at 10M samples; the
    # draws do not depend on them
    column = np.arange(y.size, dtype=np.int32 if y.size < 2**31 else np.int64)[:, None]
    resampled, _ = sampler.fit_resample(column, y.astype(_narrow(len(targets)), copy=False))
    return np.ascontiguousarray(resampled[:, 0], dtype=np.int64)


def _seed32(seed: Any) -> int:
    """An int seed as is (when it fits imbalanced-learn's 32 bits); a sequence via SeedSequence."""
    if is_int(seed):
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32) or a sequence of non-negative integers; got {seed!r}")
        return int(seed)
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, (str, bytes)) and len(seed) > 0:
        parts = list(seed)
        if all(is_int(p) and p >= 0 for p in parts):
            return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
    raise ValueError(f"seed must be an integer in [0, 2**32) or a sequence of non-negative integers; got {seed!r}")


def _narrow(n_classes: int) -> type:
    """The smallest signed integer dtype holding class indices below ``n_classes``."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_classes <= np.iinfo(dtype).max:
            return dtype
    return np.int64
