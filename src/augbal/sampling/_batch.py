"""BalancedBatchSampler: every batch holds m images from each of k classes."""

from __future__ import annotations

from typing import Any

import numpy as np

from augbal._rounding import apportion

from augbal._validation import check_int

from ._base import SAMPLERS, ClassSampler, _small_uint
from ._class_aware import _check_explicit_fits, _class_probs, _dataset_classes
from ._weighting import resolve_weighting


@SAMPLERS.register("balanced_batch")
class BalancedBatchSampler(ClassSampler):
    """A ``batch_sampler``: each batch is ``samples_per_class`` images of each of ``classes_per_batch`` classes.

    Over an epoch, class ``c`` fills ``p_c * num_batches * classes_per_batch`` batch slots
    (largest remainder; ``p`` from the weighting family, "balanced" by default), never two
    slots in one batch. Slots are dealt so that every replica gets its share of every
    class; images are drawn as in ``ClassAwareSampler`` (no repeat before a class is exhausted).

    Args:
        labels: class label per sample (an integer array, tensor, list, or a dataset ``targets_of`` reads).
        classes_per_batch: k, distinct classes per batch.
        samples_per_class: m, images of each of those classes per batch.
        num_batches: batches per epoch over all replicas (default ``len(labels) // (k * m)``),
            rounded up (down with ``drop_last``) to a multiple of ``num_replicas`` by drawing
            the first batches' classes again (or leaving the last batches out), so the
            images drawn do not depend on the world size but for those few batches.
        weighting: how often each class is chosen; anything ``resolve_weighting`` accepts.
        seed, num_replicas, rank, drop_last, yield_draws: see ``ClassSampler``.

    Example:
        >>> import numpy as np
        >>> labels = np.array([0] * 50 + [1] * 30 + [2] * 4)
        >>> sampler = BalancedBatchSampler(labels, classes_per_batch=2, samples_per_class=3, seed=0)
        >>> batches = list(sampler)
        >>> len(batches), len(sampler), [len(set(labels[b])) for b in batches[:3]]
        (14, 14, [2, 2, 2])
    """

    def __init__(
        self,
        labels: Any,
        *,
        classes_per_batch: int = 2,
        samples_per_class: int = 4,
        num_batches: int | None = None,
        weighting: Any = "balanced",
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        yield_draws: bool = False,
    ) -> None:
        super().__init__(
            labels, seed=seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last, yield_draws=yield_draws
        )
        check_int("classes_per_batch", classes_per_batch, low=1)
        check_int("samples_per_class", samples_per_class, low=1)
        check_int("num_batches", num_batches, low=1, allow_none=True)
        self.classes_per_batch = int(classes_per_batch)
        self.samples_per_class = int(samples_per_class)
        self.num_batches = num_batches
        self.weighting = resolve_weighting(weighting, classes=_dataset_classes(labels))
        _check_explicit_fits(labels, self.weighting)
        self._unit = self.classes_per_batch * self.samples_per_class

    def _slots(self, epoch: int) -> tuple[np.ndarray, int]:
        """Batch slots per class and batches of the epoch, all replicas together (one process's)."""
        k = self.classes_per_batch
        p = _class_probs(self, self.weighting, epoch)
        usable = int(np.count_nonzero(p))
        if k > usable:
            raise ValueError(f"classes_per_batch must be <= the number of classes with positive weight ({usable}); got {k}")
        batches = self.num_batches or max(1, self.num_labels_ // self._unit)
        slots = apportion(p, batches * k)
        if np.any(slots > batches):
            c = int(np.argmax(slots - batches))
            raise ValueError(
                f"a class can fill at most one slot per batch; weighting gives class {self.classes_[c]} "
                f"{slots[c]} slots in {batches} batches (p={p[c]:.3f} > 1/classes_per_batch)"
            )
        return slots, batches

    def _target(self, epoch: int) -> np.ndarray:
        return _class_probs(self, self.weighting, epoch)

    def _quotas(self, epoch: int, rng: np.random.Generator) -> np.ndarray:
        return self._slots(epoch)[0] * self.samples_per_class

    def _equal_total(self, total: int) -> int:
        step = self.num_replicas * self._unit
        return super()._equal_total(total) or -(-total // step) * step  # fewer batches than replicas: pad

    def _table(self, epoch: int, slots: np.ndarray) -> np.ndarray:
        """(batches, k) classes of each batch of one process's epoch (never sees num_replicas)."""
        k = self.classes_per_batch
        batches = int(slots.sum()) // k
        rng = self._rng(epoch, 0x7AB1E)
        perm = rng.permutation(slots.size)
        shift = int(rng.integers(batches))
        dtype = _small_uint(slots.size)
        # slot j (classes in random order, each class's slots consecutive) goes to batch (j + shift) % batches
        table = np.roll(np.repeat(perm.astype(dtype), slots[perm]).reshape(k, batches), shift, axis=1).T.copy()
        rng.permuted(table, axis=1, out=table)  # class order inside each batch
        return table

    def _resize(self, epoch: int, q: np.ndarray, total: int) -> np.ndarray:
        """Equal shards as ``DistributedSampler`` makes them, with batches as the items: the
        first batches again (their classes; the images are the next of each class's draws)
        or the last batches left out."""
        table = self._table(epoch, q // self.samples_per_class)
        want = total // self._unit
        if want > len(table):
            table = np.concatenate([table, table[np.arange(want - len(table)) % len(table)]])
        table = table[:want]
        self._table_cache = (epoch, table)
        return np.bincount(table.ravel(), minlength=q.size).astype(np.int64) * self.samples_per_class

    def _class_sequence(self, epoch: int, q: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_table_cache", None)
        if cached is None or cached[0] != epoch:
            self._quota_cache = None
            self._epoch_quotas(epoch)
            cached = self._table_cache
        table = cached[1].copy()
        R, k = self.num_replicas, self.classes_per_batch
        per_rank = table.reshape(len(table) // R, R, k)  # replica r owns batches r, r + R, ...
        shares = np.empty((q.size, R), dtype=np.int64)
        for r in range(R):
            rows = per_rank[:, r, :]
            rows[:] = rows[rng.permutation(rows.shape[0])]
            shares[:, r] = np.bincount(rows.ravel(), minlength=q.size) * self.samples_per_class
        return np.repeat(per_rank.reshape(-1), self.samples_per_class), shares

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_table_cache"] = None
        return state

    def _items(self, idx: np.ndarray, rep: np.ndarray, epoch: int) -> list[Any]:
        if not self.yield_draws:
            return idx.tolist()
        flat = super()._items(idx, rep, epoch)
        u = self._unit
        return [flat[i : i + u] for i in range(0, len(flat), u)]
