"""imbalanced-learn's ``sampling_strategy`` vocabulary, checked once, as final per-class targets.

augbal speaks imbalanced-learn's ``sampling_strategy`` forms wherever class *target counts*
are asked for (offline builds, resampled samplers, the imblearn bridge). This module is the
one place they are checked. The semantics are imbalanced-learn's
(``imblearn.utils.check_sampling_strategy``, tested for parity), computed from per-class
counts in O(C) so a 100M-sample dataset is never expanded into a label array, and returned
as *final* per-class counts for every class (imbalanced-learn returns, for over-sampling,
the number of samples to *add*, and leaves untouched classes out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_choice, check_int, is_real, resolve_class_mapping
from ._weighting import check_counts

__all__ = ["SAMPLING_STRATEGIES", "check_sampling_strategy", "class_counts"]

#: The string forms of ``sampling_strategy`` (imbalanced-learn's names).
SAMPLING_STRATEGIES = ("auto", "all", "majority", "minority", "not majority", "not minority")

_KINDS = ("over", "under")

_RULE = (
    "sampling_strategy must be one of "
    + ", ".join(repr(s) for s in SAMPLING_STRATEGIES)
    + ", a {class: target count} dict, a float in (0, 1] (two classes only) or a callable "
    "labels -> dict"
)


def class_counts(labels: Any, *, n_classes: int | None = None) -> np.ndarray:
    """Per-class sample counts (``int64``) of integer class labels.

    Args:
        labels: class indices, an array or any dataset ``augbal.data.targets_of`` reads.
        n_classes: length of the result (default: ``max(labels) + 1``).

    Example:
        >>> class_counts([0, 2, 2], n_classes=4).tolist()
        [1, 0, 2, 0]
    """
    from ..data import targets_of

    y = targets_of(labels)
    if y.size and y.min() < 0:
        raise ValueError(f"labels must be class indices (non-negative integers); got {int(y.min())}")
    if n_classes is not None:
        check_int("n_classes", n_classes, low=1)
        if y.size and y.max() >= n_classes:
            raise ValueError(f"labels must be below n_classes={n_classes}; got {int(y.max())}")
    return np.bincount(y, minlength=n_classes or 0).astype(np.int64)


def check_sampling_strategy(
    sampling_strategy: str | float | Mapping[Any, int] | Callable[[np.ndarray], Mapping[Any, int]],
    counts_or_labels: Any,
    *,
    kind: str = "over",
    of: str = "counts",
    classes: Sequence[str] | None = None,
) -> dict[int, int]:
    """Check an imbalanced-learn ``sampling_strategy`` and return the final count of every class.

    Args:
        sampling_strategy: ``'auto'`` (over: ``'not majority'``; under: ``'not minority'``),
            ``'minority'``, ``'majority'``, ``'not minority'``, ``'not majority'``, ``'all'``;
            a ``{class index or name: target count}`` dict; a float ratio in ``(0, 1]``
            (two non-empty classes only: over, minority target = ``int(ratio * n_majority)``;
            under, majority target = ``int(n_minority / ratio)``); or a callable taking the
            label array and returning such a dict.
        counts_or_labels: per-class counts (``of="counts"``, index = class) or per-sample
            class indices / a dataset (``of="labels"``).
        kind: ``"over"`` (targets may only grow) or ``"under"`` (they may only shrink).
        of: what ``counts_or_labels`` holds: ``"counts"`` or ``"labels"``.
        classes: class names, in index order, so dict keys may be names.

    Returns:
        ``{class index: final target count}`` for every class ``0 .. C-1`` in order;
        classes the strategy does not target keep their count; empty classes stay 0.

    Example:
        >>> check_sampling_strategy("auto", [4500, 450, 45], kind="over")
        {0: 4500, 1: 4500, 2: 4500}
        >>> check_sampling_strategy("not minority", [4500, 450, 45], kind="under")
        {0: 45, 1: 45, 2: 45}
        >>> check_sampling_strategy({"cat": 90}, [4500, 450, 45], classes=["deer", "dog", "cat"])
        {0: 4500, 1: 450, 2: 90}

    Raises:
        ValueError: with the rule, then ``got X``, for any strategy imbalanced-learn
            rejects (and for bad counts, kinds or class names).
    """
    targets, _ = _check(sampling_strategy, counts_or_labels, kind=kind, of=of, classes=classes)
    return targets


def _check(
    sampling_strategy: Any, counts_or_labels: Any, *, kind: str, of: str, classes: Sequence[str] | None
) -> tuple[dict[int, int], list[int]]:
    """Final targets for every class, and the classes imbalanced-learn would resample."""
    check_choice("kind", kind, _KINDS)
    check_choice("of", of, ("counts", "labels"))
    if of == "counts":
        counts = check_counts(counts_or_labels)
        labels = None
    elif of == "labels":
        labels = counts_or_labels
        counts = class_counts(labels, n_classes=None if classes is None else len(classes))
    else:
        raise ValueError(f"of must be 'counts' or 'labels'; got {of!r}")
    if classes is not None and len(classes) != counts.size:
        raise ValueError(f"classes must name every class ({counts.size}); got {len(classes)} names")
    present = np.flatnonzero(counts > 0)
    if present.size < 2:
        raise ValueError(
            f"sampling_strategy needs at least 2 non-empty classes; got {present.size} "
            f"(counts {counts.tolist()})"
        )

    if isinstance(sampling_strategy, str):
        targeted, target = _string(sampling_strategy, counts, present, kind)
        wanted = {int(c): target for c in targeted}
    elif isinstance(sampling_strategy, Mapping):
        wanted = _dict(sampling_strategy, counts, kind, classes)
    elif is_real(sampling_strategy):
        wanted = _float(float(sampling_strategy), counts, present, kind)
    elif callable(sampling_strategy):
        y = np.repeat(np.arange(counts.size, dtype=np.int64), counts) if labels is None else _labels(labels)
        result = sampling_strategy(y)
        if not isinstance(result, Mapping):
            raise ValueError(f"a callable sampling_strategy must return a {{class: target count}} dict; got {result!r}")
        wanted = _dict(result, counts, kind, classes)
    else:
        raise ValueError(f"{_RULE}; got {sampling_strategy!r}")

    targets = {c: int(n) for c, n in enumerate(counts.tolist())}
    targets.update(wanted)
    return targets, sorted(wanted)


def _labels(labels: Any) -> np.ndarray:
    from ..data import targets_of

    return targets_of(labels)


def _string(name: str, counts: np.ndarray, present: np.ndarray, kind: str) -> tuple[np.ndarray, int]:
    if name not in SAMPLING_STRATEGIES:
        raise ValueError(f"{_RULE}; got {name!r}")
    # ties resolve to the lowest class index, as in imbalanced-learn
    majority = int(np.argmax(counts))
    minority = int(present[np.argmin(counts[present])])
    if name == "auto":
        name = "not majority" if kind == "over" else "not minority"
    if kind == "over" and name == "majority":
        raise ValueError(f"over-sampling can target any strategy but 'majority'; got {name!r}")
    if kind == "under" and name == "minority":
        raise ValueError(f"under-sampling can target any strategy but 'minority'; got {name!r}")
    target = int(counts.max()) if kind == "over" else int(counts[minority])
    chosen = {
        "all": present,
        "majority": present[present == majority],
        "minority": present[present == minority],
        "not majority": present[present != majority],
        "not minority": present[present != minority],
    }[name]
    return chosen, target


def _dict(spec: Mapping[Any, Any], counts: np.ndarray, kind: str, classes: Sequence[str] | None) -> dict[int, int]:
    dense = resolve_class_mapping(spec, classes=classes, num_classes=counts.size, name="sampling_strategy key")
    keys = dict(zip(dense, spec))  # dense class -> the key as the user wrote it
    wanted: dict[int, int] = {}
    for c, key in keys.items():
        value = check_int(f"the sampling_strategy target of class {key!r}", spec[key])
        have = int(counts[c])
        if have == 0 and value != 0:
            raise ValueError(f"an empty class cannot be resampled, its target must be 0; got {value} for class {key!r}")
        if kind == "over" and value < have:
            raise ValueError(
                f"with over-sampling a class target must be at least its count ({have}); got {value} for class {key!r}"
            )
        if kind == "under" and value > have:
            raise ValueError(
                f"with under-sampling a class target must be at most its count ({have}); got {value} for class {key!r}"
            )
        if have > 0:
            wanted[c] = value
    return wanted


def _float(ratio: float, counts: np.ndarray, present: np.ndarray, kind: str) -> dict[int, int]:
    if present.size != 2:
        raise ValueError(
            f"a float sampling_strategy needs exactly 2 non-empty classes (use a dict for more); "
            f"got {present.size} classes"
        )
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"a float sampling_strategy must be in (0, 1]; got {ratio!r}")
    majority = int(np.argmax(counts))
    minority = int(present[np.argmin(counts[present])])
    if kind == "over":
        other = int(present[present != majority][0])
        target = int(counts[majority] * ratio)
        if target - int(counts[other]) <= 0:
            raise ValueError(
                f"an over-sampling ratio must give the minority more than its {int(counts[other])} samples "
                f"(target = int(ratio * {int(counts[majority])})); got {ratio!r}"
            )
        return {other: target}
    other = int(present[present != minority][0])
    target = int(counts[minority] / ratio)
    if target > int(counts[other]):
        raise ValueError(
            f"an under-sampling ratio must leave the majority at most its {int(counts[other])} samples "
            f"(target = int({int(counts[minority])} / ratio)); got {ratio!r}"
        )
    return {other: target}
