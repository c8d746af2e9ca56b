"""Stratified, group-aware train/val/test splits of an ImageIndex."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from augbal._validation import check_seed, is_int, is_real

from ._index import ImageIndex
from ._skew import _class_table

SIDES: tuple[str, str, str] = ("train", "val", "test")

CountTriple = tuple[int | None, int, int]


@dataclass(frozen=True, eq=False)
class Split:
    """The three sides of a split: sorted sample positions into ``source``.

    ``train``, ``val`` and ``test`` are the sides as ``ImageIndex`` objects; a
    ``Split`` also unpacks as ``train, val, test = split(...)``.

    Attributes:
        source: the index that was split.
        train_indices, val_indices, test_indices: positions into ``source`` (``int64``,
            ascending, pairwise disjoint).
    """

    source: ImageIndex
    train_indices: np.ndarray
    val_indices: np.ndarray
    test_indices: np.ndarray

    @property
    def train(self) -> ImageIndex:
        """The training side."""
        return self.source.subset(self.train_indices)

    @property
    def val(self) -> ImageIndex:
        """The validation side."""
        return self.source.subset(self.val_indices)

    @property
    def test(self) -> ImageIndex:
        """The test side."""
        return self.source.subset(self.test_indices)

    @property
    def unused_indices(self) -> np.ndarray:
        """Positions in no side (only ``counts=`` splits leave images over)."""
        used = np.concatenate([self.train_indices, self.val_indices, self.test_indices])
        return np.setdiff1d(np.arange(len(self.source)), used)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class on each side: ``{"train": {class: n}, "val": ..., "test": ...}``."""
        out = {}
        for side, idx in zip(SIDES, (self.train_indices, self.val_indices, self.test_indices)):
            per_class = np.bincount(self.source.labels[idx], minlength=len(self.source.classes))
            out[side] = dict(zip(self.source.classes, per_class.tolist()))
        return out

    def __iter__(self) -> Iterator[ImageIndex]:
        return iter((self.train, self.val, self.test))

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{side}={len(idx)}" for side, idx in zip(SIDES, (self.train_indices, self.val_indices, self.test_indices))
        )
        return f"Split({sizes}, unused={len(self.source) - sum(map(len, self._sides()))})"

    def _sides(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.train_indices, self.val_indices, self.test_indices


def split(
    index: ImageIndex,
    *,
    ratios: Sequence[float] | None = None,
    counts: Mapping[str | int, CountTriple] | CountTriple | None = None,
    seed: int = 0,
    groups: Sequence[int] | np.ndarray | None = None,
) -> Split:
    """Split ``index`` into train, val and test, stratified by class and group-aware.

    Give one of:

    - ``ratios=(train, val, test)`` (default ``(0.8, 0.1, 0.1)``): a stratified shuffle
      split (scikit-learn ``train_test_split(stratify=...)``, test side first, then val
      from the rest); side sizes are ``round(ratio * n)``. Every image is used.
    - ``counts={class: (n_train, n_val, n_test)}`` naming every class, or one triple for
      all classes: exact images per class and side; ``n_train=None`` takes all the rest.
      Images left over are in ``unused_indices``.

    Each duplicate group (``index.groups``, or an explicit ``groups`` array; ``-1`` means
    no group) lands on one side as a whole, so nothing leaks between train, val and test.
    With groups, ``ratios`` apply to groups rather than images. Classes with 1 or 2
    images stay entirely in train, and every non-empty class keeps at least one train
    image. The same ``seed`` gives the same split.

    Example:
        >>> index = ImageIndex.from_arrays([f"{i}.jpg" for i in range(100)], [i % 2 for i in range(100)], "ab")
        >>> train, val, test = split(index, ratios=(0.8, 0.1, 0.1), seed=0)
        >>> len(train), len(val), len(test)
        (80, 10, 10)
        >>> split(index, counts={"a": (30, 5, 5), "b": (None, 10, 10)}, seed=0).counts()["train"]
        {'a': 30, 'b': 30}

    Raises:
        ValueError: for bad ratios, counts or seed, an unknown class, or a request the data
            cannot meet ("counts for class 'cat' need 60 images; it has 12").
    """
    seed = check_seed("seed", seed)
    units = _Units(index, groups)
    if counts is not None:
        if ratios is not None:
            raise ValueError("split takes ratios= or counts=, not both")
        side = _split_counts(index, units, counts, seed)
    else:
        side = _split_ratios(index, units, (0.8, 0.1, 0.1) if ratios is None else ratios, seed)
    per_sample = side[units.of_sample]
    return Split(index, *(np.flatnonzero(per_sample == s).astype(np.int64) for s in range(3)))


class _Units:
    """Samples grouped into units that move together (a duplicate group, or one sample)."""

    def __init__(self, index: ImageIndex, groups: Sequence[int] | np.ndarray | None) -> None:
        n = len(index)
        g = np.asarray(index.groups if groups is None else groups)
        if g.ndim != 1 or g.shape[0] != n:
            raise ValueError(f"groups must be one id per sample ({n}); got shape {g.shape}")
        if g.dtype.kind in "iub":
            g = g.astype(np.int64)
            alone = g < 0
            g = g.copy()
            g[alone] = (g.max() + 1 if n else 0) + np.arange(int(alone.sum()))
        self.of_sample = np.unique(g, return_inverse=True)[1].reshape(-1).astype(np.int64)
        self.count = int(self.of_sample.max()) + 1 if n else 0
        self.size = np.bincount(self.of_sample, minlength=self.count)
        c = max(len(index.classes), 1)
        pairs, pair_n = np.unique(self.of_sample * c + index.labels, return_counts=True)
        pair_unit, pair_label = pairs // c, pairs % c
        # A unit's class for stratification: its most common label (ties: the lowest label).
        first = np.lexsort((pair_label, -pair_n, pair_unit))
        _, lead = np.unique(pair_unit[first], return_index=True)
        self.label = pair_label[first][lead]
        # Per-unit class composition, only for the rare units that are not one sample.
        self.mixed: dict[int, list[tuple[int, int]]] = {}
        grouped = self.size[pair_unit] > 1
        for u, k, m in zip(pair_unit[grouped].tolist(), pair_label[grouped].tolist(), pair_n[grouped].tolist()):
            self.mixed.setdefault(u, []).append((k, m))


def _split_ratios(index: ImageIndex, units: _Units, ratios: Sequence[float], seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    ok = isinstance(ratios, (Sequence, np.ndarray)) and not isinstance(ratios, str) and all(map(is_real, ratios))
    r = [float(x) for x in ratios] if ok else []
    if len(r) != 3 or any(not math.isfinite(x) or x < 0 for x in r) or abs(sum(r) - 1) > 1e-6 or r[0] <= 0:
        raise ValueError(
            f"ratios must be three non-negative numbers (train, val, test) summing to 1, train > 0; got {tuple(ratios) if ok else ratios!r}"
        )
    side = np.zeros(units.count, dtype=np.int64)
    small = index.class_counts() <= 2
    forced = np.bincount(units.of_sample, weights=small[index.labels], minlength=units.count) > 0
    states = np.random.default_rng(seed).integers(0, 2**31 - 1, size=2)
    pool = np.flatnonzero(~forced)
    # Side sizes are fixed up front (in units), so (0.8, 0.1, 0.1) of 1000 is exactly 800/100/100.
    sizes = {s: int(round(r[s] * pool.size)) for s in (1, 2)}
    for s, state in ((2, states[0]), (1, states[1])):
        if sizes[s] == 0:
            continue
        labels = units.label[pool]
        splittable = np.bincount(labels, minlength=len(index.classes))[labels] >= 2
        candidates = pool[splittable]
        if candidates.size == 0:
            continue
        try:
            rest, taken = train_test_split(
                candidates, test_size=sizes[s], stratify=units.label[candidates], random_state=int(state)
            )
        except ValueError as exc:
            raise ValueError(
                f"ratios={tuple(ratios)} cannot give the {SIDES[s]} side a stratified share of "
                f"{candidates.size} images in {len(np.unique(units.label[candidates]))} classes (a duplicate group counts once) "
                f"(scikit-learn: {exc}); use larger ratios or counts="
            ) from None
        side[taken] = s
        pool = np.concatenate([pool[~splittable], np.sort(rest)])
    _keep_one_train(index, units, side)
    return side


def _keep_one_train(index: ImageIndex, units: _Units, side: np.ndarray) -> None:
    """Move the smallest val/test unit of any class left without train images into train."""
    per_sample = side[units.of_sample]
    has_train = np.bincount(index.labels[per_sample == 0], minlength=len(index.classes)) > 0
    for k in np.flatnonzero(~has_train & (index.class_counts() > 0)):
        if has_train[k]:
            continue
        candidates = np.unique(units.of_sample[index.labels == k])
        u = candidates[np.lexsort((candidates, units.size[candidates]))][0]
        side[u] = 0
        has_train[np.unique(index.labels[units.of_sample == u])] = True


def _split_counts(index: ImageIndex, units: _Units, counts, seed: int) -> np.ndarray:
    c = len(index.classes)
    have = index.class_counts()
    if isinstance(counts, Mapping):
        triples: dict[int, tuple] = {}
        for k, triple in _class_table(index, counts).items():
            triples[k] = _check_triple(triple, index.classes[k])
        missing = [index.classes[k] for k in range(c) if k not in triples]
        if missing:
            raise ValueError(
                f"counts must give (n_train, n_val, n_test) for every class; missing: {', '.join(missing)}"
            )
    else:
        one = _check_triple(counts, "every class")
        triples = dict.fromkeys(range(c), one)

    # want[side, class]; a train count of None means "all the rest" (unbounded).
    unbounded = np.iinfo(np.int64).max // 4
    want = np.zeros((3, c), dtype=np.int64)
    for k, (n_train, n_val, n_test) in triples.items():
        name = index.classes[k]
        if 0 < have[k] <= 2 and (n_val or n_test):
            raise ValueError(
                f"classes with 1 or 2 images stay entirely in train; class {name!r} has {have[k]} "
                f"and counts ask for {n_val} val and {n_test} test"
            )
        need = (min(1, have[k]) if n_train is None else n_train) + n_val + n_test
        if need > have[k]:
            raise ValueError(f"counts for class {name!r} need {need} images; it has {have[k]}")
        want[:, k] = (unbounded if n_train is None else n_train, n_val, n_test)

    side = np.full(units.count, -1, dtype=np.int64)
    taken = np.zeros((3, c), dtype=np.int64)
    fill_order = (2, 1, 0)  # test, then val, then train takes what it needs of the rest
    order = np.random.default_rng(seed).permutation(units.count)
    # Duplicate groups first, in seeded order: each goes whole to the first side with room.
    for u in order[units.size[order] > 1].tolist():
        parts = units.mixed[u]
        for s in fill_order:
            if all(taken[s, k] + m <= want[s, k] for k, m in parts):
                side[u] = s
                for k, m in parts:
                    taken[s, k] += m
                break
    # Then single images fill what is left, per class in the same seeded order.
    single = order[units.size[order] == 1]
    single = single[np.argsort(units.label[single], kind="stable")]
    bounds = np.searchsorted(units.label[single], np.arange(c + 1))
    for k in range(c):
        pos, end = bounds[k], bounds[k + 1]
        for s in fill_order:
            take = int(min(want[s, k] - taken[s, k], end - pos))
            side[single[pos : pos + take]] = s
            taken[s, k] += take
            pos += take
    for s in fill_order:
        for k in range(c):
            if want[s, k] != unbounded and taken[s, k] != want[s, k]:
                raise ValueError(
                    f"counts for class {index.classes[k]!r} cannot be met with duplicate groups kept "
                    f"on one side: {SIDES[s]} got {taken[s, k]} of {want[s, k]}"
                )
    return side


def _check_triple(triple, key) -> tuple[int | None, int, int]:
    ok = isinstance(triple, (tuple, list)) and len(triple) == 3
    if ok:
        n_train, n_val, n_test = triple
        ok = all(is_int(x) and x >= 0 for x in (n_val, n_test))
        ok = ok and (n_train is None or (is_int(n_train) and n_train >= 1))
    if not ok:
        raise ValueError(
            "counts must be (n_train, n_val, n_test) with n_train >= 1 (or None for the rest) "
            f"and n_val, n_test >= 0; got {triple!r} for {key!r}"
        )
    return (None if triple[0] is None else int(triple[0]), int(triple[1]), int(triple[2]))
