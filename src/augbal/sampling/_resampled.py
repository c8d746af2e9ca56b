"""ResampledSampler: imbalanced-learn's random over/under-sampling, re-drawn every epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_choice, is_int, resolve_class_mapping
from ._base import SAMPLERS, ClassSampler
from ._imblearn import resample_indices


@SAMPLERS.register("resampled")
class ResampledSampler(ClassSampler):
    """Each epoch, the indices imbalanced-learn's ``RandomOverSampler`` / ``RandomUnderSampler`` keep.

    The resampling runs on an index column with seed ``(seed, epoch)``, so every
    ``sampling_strategy`` imbalanced-learn accepts works and each epoch draws afresh. The
    kept indices are then ordered like ``ClassAwareSampler``'s: a seeded shuffle, every
    image of a class once before any repeats, each replica with its share of every class.
    When the count is not a multiple of ``num_replicas``, a few first draws of a class are
    drawn again to pad it (or, with ``drop_last``, a few last draws of a class, repeats
    first, are left out), so every world size draws the images imbalanced-learn kept.

    Args:
        labels: class label per sample (an integer array, tensor, list, or a dataset ``targets_of`` reads).
        sampling_strategy: any imbalanced-learn form ('auto', 'not majority', dict, float, callable);
            dict keys are label values or, with ``classes``, class names
            (``augbal._validation.resolve_class_key``).
        method: "over" or "under".
        classes: class names indexed by label value, so dict strategies may use names.
        seed, num_replicas, rank, drop_last, yield_draws: see ``ClassSampler``.

    Example:
        >>> import numpy as np
        >>> labels = np.array([0] * 8 + [1] * 2)
        >>> sampler = ResampledSampler(labels, sampling_strategy="auto", method="over", seed=0)
        >>> len(sampler), sampler.quotas()
        (16, {0: 8, 1: 8})
    """

    def __init__(
        self,
        labels: Any,
        *,
        sampling_strategy: Any = "auto",
        method: str = "over",
        classes: Sequence[str] | None = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        yield_draws: bool = False,
    ) -> None:
        super().__init__(
            labels, seed=seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last, yield_draws=yield_draws
        )
        check_choice("method", method, ("over", "under"))
        self.sampling_strategy = sampling_strategy
        self.method = method
        self.classes = classes
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None
        if not callable(sampling_strategy):  # checked against the class counts now, not at the first len()
            self._fit()
            self._target(0)

    def _fit(self) -> None:
        super()._fit()
        if getattr(self, "dense_labels_", None) is None:
            dense = np.empty(self.num_labels_, dtype=np.int32)
            for c in range(self.classes_.size):
                dense[self.order_[self.offsets_[c] : self.offsets_[c + 1]]] = c
            self.dense_labels_ = dense

    def _resampled(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(kept indices, their dense classes) for ``epoch``: imbalanced-learn's draw, seeded by
        ``(seed, epoch)`` alone, so it never depends on ``num_replicas``."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1], self._cache[2]
        idx = resample_indices(
            self.dense_labels_,
            sampling_strategy=self._strategy_on_dense(),
            method=self.method,
            seed=(self.seed, epoch),
            classes=self._dense_names(),
        )
        cls = self.dense_labels_[idx]
        self._cache = (epoch, idx, cls)
        return idx, cls

    def _dense_names(self) -> list[str] | None:
        """Class names of the present classes, in dense order (``classes`` is indexed by label)."""
        if self.classes is None:
            return None
        if len(self.classes) <= int(self.classes_[-1]):
            raise ValueError(f"classes must name every label up to {int(self.classes_[-1])}; got {len(self.classes)} names")
        return [self.classes[v] for v in self.classes_.tolist()]

    def _strategy_on_dense(self) -> Any:
        """The strategy on dense class ids: integer label keys translated (names kept); a
        callable is called with the label values, as imbalanced-learn would call it, and
        its dict translated the same way."""
        s = self.sampling_strategy
        if isinstance(s, Mapping):
            return self._keys_to_dense(s)
        if callable(s):
            classes = self.classes_

            def on_dense(dense: np.ndarray) -> Any:
                result = s(classes[np.asarray(dense)])
                return self._keys_to_dense(result) if isinstance(result, Mapping) else result  # the check reports a non-dict

            return on_dense
        return s

    def _keys_to_dense(self, s: Mapping[Any, Any]) -> dict[int, Any]:
        """``{dense class: target}`` from keys that are label values or class names (``classes``
        is indexed by label value); a named class without samples may only be given 0."""
        if self.classes is None:
            return resolve_class_mapping(s, labels=self.classes_, name="sampling_strategy key")
        self._dense_names()  # classes must cover every label
        by_label = resolve_class_mapping(s, classes=[str(c) for c in self.classes], name="sampling_strategy key")
        dense_of = {int(v): c for c, v in enumerate(self.classes_.tolist())}
        out: dict[int, Any] = {}
        for (label, value), key in zip(by_label.items(), s):
            if label in dense_of:
                out[dense_of[label]] = value
            elif not (is_int(value) and value == 0):  # a named class without samples stays empty
                raise ValueError(
                    f"an empty class cannot be resampled, its target must be 0; got {value!r} for class {key!r}"
                )
        return out

    def _target(self, epoch: int) -> np.ndarray:
        from ._strategy import check_sampling_strategy

        s, top = self.sampling_strategy, int(self.classes_[-1])
        dense_names = self._dense_names()  # classes must name every label
        on_dense = self._strategy_on_dense()  # a key naming no label or class is refused here
        if isinstance(s, Mapping) and top < 1 << 20:  # checked as given first, so a message names the caller's key
            full = np.zeros(top + 1, dtype=np.int64)
            full[self.classes_] = self.class_counts_
            names = None if self.classes is None else [str(c) for c in self.classes]
            check_sampling_strategy(s, full.tolist(), kind=self.method, classes=names)
        final = check_sampling_strategy(on_dense, self.class_counts_, kind=self.method, classes=dense_names)
        return np.array([final.get(c, n) for c, n in enumerate(self.class_counts_.tolist())], dtype=np.float64)

    def _quotas(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        _idx, cls = self._resampled(epoch)
        return np.bincount(cls, minlength=self.classes_.size).astype(np.int64)

    def _streams(self, epoch: int, q: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx, cls = self._resampled(epoch)
        by_index = np.argsort(idx, kind="stable")
        sorted_idx = idx[by_index]
        run_start = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
        run_len = np.diff(np.r_[run_start, sorted_idx.size])
        rep = np.empty(idx.size, dtype=np.int64)
        rep[by_index] = np.arange(idx.size) - np.repeat(run_start, run_len)
        order = np.lexsort((rng.random(idx.size), rep, cls))
        return idx[order].astype(self.order_.dtype), rep[order]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_cache"] = None
        return state
