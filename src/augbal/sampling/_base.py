"""Machinery shared by augbal's samplers: class-sorted index, per-epoch plans, sharding, state.

Every sampler here draws *a class, then an image of that class*. The only per-sample
state is one integer array of dataset indices sorted by class (``int32`` below 2^31
samples); everything else is O(C). An epoch is planned with vectorised numpy, each part
from its own generator seeded by ``(seed, epoch, purpose)``:

1. per-class quotas ``q_c`` (the subclass hook ``_quotas``) for the whole epoch, never
   looking at ``num_replicas``;
2. per-class draw streams, also independent of ``num_replicas``: a class is drawn without
   replacement until it is exhausted, then reshuffled (cycle ``k`` of a class holds the
   ``k``-th draw of each of its images), so every image of a class is seen once before any
   image of it repeats;
3. equal shards, as torch's ``DistributedSampler`` makes them: the epoch is padded (the head
   of a class's stream drawn again) or, with ``drop_last``, cut (the tail of a class's
   stream left out) to a multiple of ``num_replicas`` units: fewer than ``num_replicas``
   units change, so the images drawn do not depend on the world size;
4. a class sequence: the quota multiset is dealt to the replicas so that every replica
   gets ``floor`` or ``ceil`` of ``q_c / num_replicas`` of each class, each replica's
   share is arranged uniformly at random (``_arrangement``), and the shares are interleaved
   (replica ``r`` owns global units ``r, r + R, r + 2R, ...``). Only this step depends on
   ``num_replicas``.

Iteration fills blocks of the global sequence with numpy and hands out Python ints
through C-level iterators (or, through ``batches``, whole ``int64`` arrays). When the
process may use two CPUs, epochs of 2^17 to 2^24 positions over at most 256 classes draw
their class sequence whole (one byte per position) on a second thread, which then helps
with the streams (each class of up to 64 from its own generator), and fill their blocks on
two threads in turns. The plan's thread is joined before the plan is returned; the fill's
lives while the epoch is iterated (at most two blocks ahead) and ends with the iteration, when
the iterator is dropped, or when a batch iterator is closed. The draws are those of one thread
(and of any byte order).
"""

from __future__ import annotations

import collections
import functools
import inspect
import itertools
import os
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from augbal._draw import Draw, DrawBatch
from augbal._rounding import apportion
from augbal._registry import Registry
from augbal._validation import check_bool, check_int, check_seed

SAMPLERS: Registry[Any] = Registry("sampler")
"""Every augbal sampler, by name (``SAMPLERS.from_spec(sampler.to_dict(), labels=...)``)."""

_RUNTIME_ARGS = ("labels", "num_replicas", "rank")  # sampler arguments that are not in its spec

_BLOCK = 1 << 16  # items per rank filled per numpy block while iterating
_FIT_BLOCK = 1 << 20  # labels counted per block (bounds bincount's int64 copy)
_SORT_BLOCK = 1 << 16  # labels sorted per block when building the class-sorted index (cache-sized)
_SUBSET_BLOCK = 1 << 18  # members sampled per block when drawing a random subset (bounds the scratch)
_SUBSET_WHOLE = 1 << 20  # classes up to this size draw their subset in one call (8 MB of scratch)
_SUBSET_SCRATCH = 1 << 20  # larger classes shuffle subsets up to this size on int64 scratch (8 MB)
_AHEAD_MIN, _AHEAD_MAX = 1 << 17, 1 << 24  # epochs whose class order is drawn whole, beside the streams (uint8)
_ARRANGE_MAX_CLASSES = 24  # class-order blocks over more classes are shuffles (_arrangement)
_SPLIT_STREAMS = 64  # epochs of up to this many classes draw each class's stream from its own generator

_DRAWS = 2  # version of the sequences a (seed, epoch) draws, in state_dict: 2 since 2026-12-07 (arranged class
# order blocks, a generator per class's stream); a mid-epoch state of another version resumes with a warning

# purposes: every part of a plan has its own generator, so the world-size-dependent
# dealing cannot shift the draws that decide which images an epoch holds
_QUOTAS, _STREAMS, _DEAL = 0x5A4D, 0x57EA, 0xDEA1


@dataclass(frozen=True)
class SamplerReport:
    """What one replica's shard of one epoch holds.

    Attributes:
        epoch: the epoch described.
        rank: the replica whose shard this is (0 without distribution).
        num_samples: items in the shard (indices; for batch samplers, indices in all batches).
        class_counts: realised draws per class label.
        target_counts: this replica's quota per class label.
        unique: distinct images in the shard.
        unique_fraction: ``unique / num_samples`` (1.0 means no image repeats).
        coverage: ``unique / len(dataset)``.
        max_repeats: most draws of one image in the shard.
    """

    epoch: int
    rank: int
    num_samples: int
    class_counts: dict[int, int]
    target_counts: dict[int, int]
    unique: int
    unique_fraction: float
    coverage: float
    max_repeats: int


@dataclass
class _Plan:
    """One epoch, globally: class of every position, class-sorted draw streams."""

    total: int  # T, global positions in the epoch
    cls: np.ndarray | None  # (T,) dense class of every global position; None: drawn per block (see _class_blocks)
    stream: np.ndarray  # dataset indices, class c's draws from stream_offsets[c] on, in draw order
    stream_offsets: np.ndarray  # (C+1,)
    repeats: np.ndarray | None  # repeat number per stream entry; None: entry j of class c is cycle j // n_c ...
    rank_quotas: np.ndarray  # (C, R) draws per class per replica
    key: tuple[int, ...]  # seeds the per-block class draws
    base: np.ndarray | None = None  # ... (with repeats None) except entries j >= base[c], padding:
    pad_repeats: np.ndarray | None = None  # their repeat numbers, class c's at pad_offsets[c]:[c+1]
    pad_offsets: np.ndarray | None = None
    blocks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] | None = None  # class order drawn ahead (_class_blocks)


def _generator(key: list[int]) -> np.random.Generator:
    """The generator of one part of a plan: SFC64 seeded by ``SeedSequence(key)`` (SFC64 shuffles
    ~25% faster than numpy's default PCG64; every draw is still an exact uniform one)."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(key)))


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -((-a) // b)


def _small_uint(n: int) -> type:
    return np.uint8 if n <= 1 << 8 else np.uint16 if n <= 1 << 16 else np.int32


class ClassSampler(Sampler):
    """Base class of augbal's class-aware samplers (drawing a class, then an image).

    Subclasses store their options in ``__init__`` and implement ``_quotas(epoch, rng)``
    (draws per class for one epoch, all replicas together, summing to a multiple of the
    unit and independent of ``num_replicas``); they may override ``_streams`` (which images
    each class's draws are), ``_resize`` (which classes pad or cut the epoch to equal
    shards) and ``_class_sequence`` (the order, the only part that may see ``num_replicas``).

    Args:
        labels: class label per sample: an integer numpy array, torch tensor, list or tuple,
            or any dataset ``targets_of`` reads.
        seed: root of every random draw; all replicas must share it.
        num_replicas, rank: distributed shard; default from ``torch.distributed`` when it
            is initialised, else one replica.
        drop_last: round the epoch length per replica down instead of up to equal length.
            Either way the images drawn are those of one process, but for fewer than
            ``num_replicas`` units (repeats of the first draws of a class when padding,
            the last draws of a class left out when cutting).
        yield_draws: yield ``Draw(index, repeat, epoch)`` items (``augbal._draw.Draw``) instead of ints.

    Resuming: ``state_dict()["yielded"]`` counts the units this sampler has handed out in
    the current epoch (all of them once the epoch is done, so a resumed finished epoch
    yields nothing until ``set_epoch`` selects another). ``set_epoch`` with the saved epoch
    keeps the loaded position. ``state_dict()["draws"]`` is the version of the sequences
    drawn: a mid-epoch state saved by an augbal that drew other ones resumes with a warning. A DataLoader with workers pulls indices ahead of
    the batches the training loop has seen (``prefetch_factor * num_workers`` batches), so
    save the position of the loader (e.g. torchdata's ``StatefulDataLoader``) or subtract
    those batches. The current epoch's plan (an int array of the epoch's draws, and for
    epochs of up to 2^24 draws over at most 256 classes their class order, one byte per
    draw) is kept until the next epoch, so ``len``, ``report`` and resuming do not redraw it.

    Batch mode: ``batches(batch_size)`` yields the same items as ``int64`` arrays (a
    DataLoader ``batch_sampler`` with no Python int per sample), sharing this position.
    """

    _unit = 1  # items per unit that replicas own whole (a batch for batch samplers)
    _ahead: _Ahead | None = None  # the plan's second thread while a plan is drawn (_draw_ahead)

    def __init__(
        self,
        labels: Any,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        yield_draws: bool = False,
    ) -> None:
        check_seed("seed", seed)
        check_int("num_replicas", num_replicas, low=1, allow_none=True)
        check_int("rank", rank, allow_none=True)
        if num_replicas is None or rank is None:
            world, me = _dist_world()
            num_replicas = world if num_replicas is None else num_replicas
            rank = me if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}); got {rank}")
        self.labels = labels
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.drop_last = check_bool("drop_last", drop_last)
        self.yield_draws = check_bool("yield_draws", yield_draws)
        self.epoch = 0
        self._resume = 0  # units of the current epoch to skip at the next __iter__
        self._cursor: list[Any] | None = None  # [units before the current chunk, its iterator, its length, units per item]

    # ------------------------------------------------------------------ public API
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to draw next; replicas given the same epoch agree on the sequence.

        A position loaded for this epoch (``load_state_dict``, unpickling) and not yet
        iterated is kept, so a loop that calls ``set_epoch`` at the top of every epoch resumes.
        """
        check_int("epoch", epoch)
        if epoch == self.epoch and self._cursor is None:
            return
        self.epoch = int(epoch)
        self._resume = 0
        self._cursor = None

    def __len__(self) -> int:
        """Units (indices, or batches for batch samplers) this replica yields in the current epoch."""
        return self._rank_units(self.epoch)

    def __iter__(self) -> Iterator[Any]:
        self._fit()
        return self._iterate(self.epoch, self._resume)

    def batches(self, batch_size: int | None = None, *, drop_last: bool = False) -> SamplerBatches:
        """This sampler's items in whole arrays: a DataLoader ``batch_sampler`` with no Python int per sample.

        Yields what ``BatchSampler(self, batch_size, drop_last)`` would, as ``int64`` numpy
        arrays (``augbal.DrawBatch`` arrays with ``yield_draws=True``), from the same
        epoch, position and ``state_dict`` as the sampler itself: a run may switch between
        item and batch mode and resume either way with the same continuation.
        ``augbal.data.ImageDataset.__getitems__`` takes these batches whole; other datasets
        receive their elements one by one (numpy ints, or ``Draw`` items).

        Args:
            batch_size: items per batch; for a batch sampler a multiple of its own batch
                (default: its own batch).
            drop_last: leave out a last, shorter batch.

        Example:
            >>> import numpy as np
            >>> from augbal.sampling import ClassAwareSampler
            >>> sampler = ClassAwareSampler(np.array([0] * 90 + [1] * 10), seed=0)
            >>> batches = sampler.batches(32)
            >>> arrays = list(batches)
            >>> len(batches), [a.size for a in arrays], arrays[0].dtype
            (4, [32, 32, 32, 4], dtype('int64'))
            >>> bool((np.concatenate(arrays) == np.array(list(sampler))).all())
            True
        """
        u = self._unit
        if batch_size is None and u > 1:
            batch_size = u
        check_int("batch_size", batch_size, low=1)
        if batch_size % u:
            raise ValueError(f"batch_size must be a multiple of this sampler's batch of {u} items; got {batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be a bool; got {drop_last!r}")
        return SamplerBatches(self, int(batch_size), drop_last)

    def state_dict(self) -> dict[str, int]:
        """Position to resume from: the epoch, the units this replica has yielded, the seed and
        num_replicas a sampler must have to load it, and the version of the sequences drawn."""
        return {
            "epoch": self.epoch,
            "yielded": self._yielded(),
            "seed": self.seed,
            "num_replicas": self.num_replicas,
            "draws": _DRAWS,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next ``iter()`` continues the saved epoch after the units already yielded."""
        if not isinstance(state, dict) or not {"epoch", "yielded", "seed"} <= set(state):
            raise ValueError(f"state must be a dict from state_dict() with epoch, yielded, seed; got {state!r}")
        if state["seed"] != self.seed:
            raise ValueError(f"state was saved with seed={state['seed']}; this sampler has seed={self.seed}")
        saved = state.get("num_replicas", self.num_replicas)  # absent in states saved before it was recorded
        if saved != self.num_replicas:
            raise ValueError(
                f"state was saved with num_replicas={saved}; this sampler has num_replicas={self.num_replicas} "
                "(a position in another world size's shards cannot be resumed exactly)"
            )
        self.set_epoch(state["epoch"])
        check_int("yielded", state["yielded"])
        draws = state.get("draws", 1)  # absent in states saved before the sequences changed
        if draws != _DRAWS and state["yielded"]:
            warnings.warn(
                f"state was saved by an augbal whose samplers drew other sequences (draws={draws}; this augbal "
                f"draws={_DRAWS}): the rest of epoch {state['epoch']} follows this version's sequence, so some of "
                "that epoch's images may be drawn twice or missed; the following epochs are whole",
                UserWarning,
                stacklevel=2,
            )
        self._resume = int(state["yielded"])

    def report(self, epoch: int | None = None) -> SamplerReport:
        """Realised class counts, unique fraction and max repeats of this replica's shard."""
        epoch = self.epoch if epoch is None else epoch
        check_int("epoch", epoch)
        self._fit()
        plan = self._plan(epoch)
        idx, cls = self._shard_arrays(plan)
        counts = _count(cls, len(self.classes_))
        if idx.size:
            _, per_image = np.unique(idx, return_counts=True)
            unique, max_rep = int(per_image.size), int(per_image.max())
        else:
            unique, max_rep = 0, 0
        labels = self.classes_.tolist()
        return SamplerReport(
            epoch=epoch,
            rank=self.rank,
            num_samples=int(idx.size),
            class_counts=dict(zip(labels, counts.tolist())),
            target_counts=dict(zip(labels, plan.rank_quotas[:, self.rank].tolist())),
            unique=unique,
            unique_fraction=unique / idx.size if idx.size else 1.0,
            coverage=unique / self.num_labels_,
            max_repeats=max_rep,
        )

    def quotas(self, epoch: int | None = None) -> dict[int, int]:
        """Global draws per class label in ``epoch`` (default: the current one), all replicas
        together, padding (or, with ``drop_last``, cutting) to equal shards included."""
        epoch = self.epoch if epoch is None else epoch
        check_int("epoch", epoch)
        self._fit()
        q = self._epoch_quotas(epoch)[1]
        return dict(zip(self.classes_.tolist(), q.tolist()))

    def target_frequencies(self, epoch: int | None = None) -> dict[int, float]:
        """The class frequencies this sampler aims for in ``epoch`` (before rounding), by class label."""
        epoch = self.epoch if epoch is None else epoch
        check_int("epoch", epoch)
        self._fit()
        p = np.asarray(self._target(epoch), dtype=np.float64)
        return dict(zip(self.classes_.tolist(), (p / p.sum()).tolist()))

    def _target(self, epoch: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ spec
    def get_params(self) -> dict[str, Any]:
        """The configuration: every keyword argument of ``__init__`` (read from the attribute of
        the same name, as scikit-learn does) except ``labels`` and the placement
        ``num_replicas``/``rank``, which are runtime arguments, not configuration."""
        params = {}
        for p in list(inspect.signature(type(self).__init__).parameters.values())[1:]:
            if p.name in _RUNTIME_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if not hasattr(self, p.name):
                raise AttributeError(
                    f"{type(self).__name__}.get_params reads each __init__ argument from the attribute of the "
                    f"same name; {type(self).__name__} has no attribute {p.name!r}"
                )
            params[p.name] = getattr(self, p.name)
        return params

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **get_params()}`` in plain data (the weighting as its own spec).

        The labels (the dataset) and the placement (``num_replicas``, ``rank``) are not part
        of it: ``SAMPLERS.from_spec(spec, labels=...)`` rebuilds the sampler for any dataset,
        and a rebuilt sampler takes its placement from ``torch.distributed`` (or from
        ``num_replicas=``/``rank=`` passed to ``from_spec``), so one recipe serves any world size.

        Example:
            >>> import numpy as np
            >>> s = SAMPLERS.build("class_aware", labels=np.array([0, 0, 1]), weighting="sqrt", seed=3)
            >>> spec = s.to_dict(); spec["name"], spec["weighting"], spec["seed"]
            ('class_aware', {'name': 'power', 'q': 0.5}, 3)
            >>> SAMPLERS.from_spec(spec, labels=np.array([0, 1, 1])).to_dict() == spec
            True
        """
        return SAMPLERS.spec(self, self.get_params())

    # ------------------------------------------------------------------ fitting
    def _fit(self) -> None:
        """Learn ``classes_``, ``class_counts_`` and the class-sorted index (once)."""
        if getattr(self, "order_", None) is not None:
            return
        labels = self.labels
        if not (isinstance(labels, np.ndarray) and labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer)):
            from augbal.data import targets_of

            labels = targets_of(labels)
        n = int(labels.size)
        if n == 0:
            raise ValueError("labels must hold at least one sample; got an empty dataset")
        parts = 2 if n >= _AHEAD_MIN and _cpus() >= 2 else 1
        classes, counts, order = _index_labels(labels, parts)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self.classes_ = classes.astype(np.int64)
        self.class_counts_ = counts.astype(np.int64)
        self.num_labels_ = n
        self.offsets_ = offsets
        self.order_ = order

    # ------------------------------------------------------------------ planning
    def _rng(self, epoch: int, purpose: int = _QUOTAS) -> np.random.Generator:
        return _generator([self.seed, epoch, purpose])

    def _quotas(self, epoch: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pads(self) -> bool:
        """Whether equal shards may add draws (else the epoch is always cut, as with drop_last)."""
        return True

    def _equal_total(self, total: int) -> int:
        """``total`` rounded to a multiple of ``num_replicas * unit`` (down with drop_last)."""
        step = self.num_replicas * self._unit
        if self.drop_last or not self._pads():
            return total // step * step
        return -(-total // step) * step

    def _resize(self, epoch: int, q: np.ndarray, total: int) -> np.ndarray:
        """Per-class draws of the equal-shard epoch of ``total`` draws: each class pads or cuts
        in proportion to its quota (at most ``total - q.sum()`` draws change)."""
        have = int(q.sum())
        if total == have or have == 0:
            return q
        share = q / have
        return q + apportion(share, total - have) if total > have else q - apportion(share, have - total)

    def _epoch_quotas(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(the world-size-free quotas, the quotas padded or cut to equal shards) of ``epoch``."""
        cached = getattr(self, "_quota_cache", None)
        if cached is not None and cached[0] == epoch:
            return cached[1], cached[2]
        q = np.asarray(self._quotas(epoch, self._rng(epoch)), dtype=np.int64)
        if q.sum() % self._unit:
            raise RuntimeError(f"{type(self).__name__}._quotas must sum to a multiple of {self._unit}; got {q.sum()}")
        final = np.asarray(self._resize(epoch, q, self._equal_total(int(q.sum()))), dtype=np.int64)
        if final.sum() % (self.num_replicas * self._unit):  # pragma: no cover - a subclass's bug
            raise RuntimeError(f"{type(self).__name__}._resize must give equal shards; got {final.sum()} draws")
        self._quota_cache = (epoch, q, final)
        return q, final

    def _rank_units(self, epoch: int) -> int:
        self._fit()
        return int(self._epoch_quotas(epoch)[1].sum()) // (self.num_replicas * self._unit)

    def _plan(self, epoch: int) -> _Plan:
        """The epoch's plan; the last one is kept, so resuming or reporting it costs nothing."""
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        cached = self._plan_cache = None  # free the previous epoch's stream before drawing the next
        plan = self._make_plan(epoch)
        self._plan_cache = (epoch, plan)
        return plan

    def _make_plan(self, epoch: int) -> _Plan:
        q, final = self._epoch_quotas(epoch)
        cls, rank_quotas = self._class_sequence(epoch, final, self._rng(epoch, _DEAL))
        empty = np.zeros(0, dtype=np.int64)
        plan = _Plan(int(final.sum()), cls, empty, empty, None, rank_quotas, (self.seed, epoch, 0xC1A55))
        ahead = self._ahead = self._draw_ahead(plan)
        try:
            plan.stream, plan.repeats = self._streams(epoch, q, self._rng(epoch, _STREAMS))
            plan.stream_offsets = np.concatenate(([0], np.cumsum(q)))
            if np.any(final > q):
                self._pad_streams(plan, q, final)
            # (cut classes keep their stream: the cut tail is simply never read)
        except BaseException:
            if ahead is not None:
                ahead.abandon()
            raise
        finally:
            self._ahead = None
        if ahead is not None:
            plan.blocks = ahead.finish()
        return plan

    def _draw_ahead(self, plan: _Plan) -> _Ahead | None:
        """Start drawing the whole class order on a second thread while the streams are drawn, for
        epochs of ``_AHEAD_MIN`` to ``_AHEAD_MAX`` positions and at most 256 classes (one byte per
        position); the thread then helps with the streams' classes (``_share``), and the caller's
        thread takes the blocks left when its streams are done. Each block and class has its own
        generator, so the draws are those made lazily on one thread."""
        if plan.cls is not None or not _AHEAD_MIN <= plan.total <= _AHEAD_MAX or plan.rank_quotas.shape[0] > 1 << 8:
            return None
        if _cpus() < 2:
            return None
        ahead = _Ahead(self, plan)
        try:
            ahead.thread.start()
        except RuntimeError:  # no thread to spare (a process at its thread limit): drawn lazily, the same draws
            return None
        return ahead

    def _pad_streams(self, plan: _Plan, q: np.ndarray, final: np.ndarray) -> None:
        """Extend class ``c``'s stream by ``final[c] - q[c]`` repeats of its first draws, with
        the repeat numbers they have (their draws in the epoch so far, counted on)."""
        extra = final - q
        padded = np.flatnonzero(extra > 0)
        old = plan.stream_offsets
        heads = [plan.stream[old[c] + np.arange(extra[c]) % q[c]] for c in padded]
        counts = []
        for c, head in zip(padded.tolist(), heads):
            lo, hi, n = int(old[c]), int(old[c + 1]), int(self.class_counts_[c])
            if plan.repeats is None:  # full cycles, then a subset: `full`, +1 for images in the subset
                full = int(q[c]) // n
                part = plan.stream[lo + full * n : hi]
                counts.append(full + np.isin(head, part, kind="table" if part.size else None))
            else:
                drawn = np.sort(plan.stream[lo:hi])
                counts.append(np.searchsorted(drawn, head, "right") - np.searchsorted(drawn, head, "left"))
        pad_rep = [count + _occurrence(head) for count, head in zip(counts, heads)]
        at = np.repeat(old[1:][padded], extra[padded])  # insert after each class's own draws
        plan.stream = np.insert(plan.stream, at, np.concatenate(heads).astype(plan.stream.dtype))
        plan.stream_offsets = np.concatenate(([0], np.cumsum(np.maximum(q, final))))
        if plan.repeats is not None:
            plan.repeats = np.insert(plan.repeats, at, np.concatenate(pad_rep))
        else:
            plan.base = q.copy()
            plan.pad_offsets = np.concatenate(([0], np.cumsum(np.maximum(extra, 0))))
            plan.pad_repeats = np.concatenate(pad_rep).astype(np.int64)

    def _deal(self, q: np.ndarray, parts: int, rng: np.random.Generator) -> np.ndarray:
        """Split class counts ``q`` into ``parts`` equal-size shares, each class floor/ceil of ``q/parts``."""
        perm = rng.permutation(q.size)
        shift = int(rng.integers(parts))
        a = np.concatenate(([0], np.cumsum(q[perm])[:-1]))[:, None]
        b = a + q[perm][:, None]
        t = ((np.arange(parts) - shift) % parts)[None, :]
        out = np.empty((q.size, parts), dtype=np.int64)
        out[perm] = _ceil_div(b - t, parts) - _ceil_div(a - t, parts)
        return out

    def _class_sequence(
        self, epoch: int, q: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """Each replica's class counts (C, R); the sequence itself is drawn per block by ``_class_blocks``.

        Replica ``r`` owns global positions ``r::R``; its classes are a uniformly random
        arrangement of its share, drawn block by block (multivariate hypergeometric block
        counts, then ``_arrangement`` inside the block), so the sequence is never held whole.
        Subclasses may return a materialised ``(T,)`` class sequence instead.
        """
        return None, self._deal(q, self.num_replicas, rng)

    def _class_blocks(
        self, plan: _Plan, start_row: int, rows_per_block: int
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """From the block holding ``start_row`` on: (first row, classes of the block's global
        positions, draws per class before the block, draws per class in the block)."""
        row = self.num_replicas * self._unit
        n_rows = plan.total // row
        first = start_row // rows_per_block * rows_per_block
        if plan.cls is not None:
            before = _count(plan.cls[: first * row], plan.rank_quotas.shape[0])
            for lo in range(first, n_rows, rows_per_block):
                block = plan.cls[lo * row : min(n_rows, lo + rows_per_block) * row]
                cnt = _count(block, before.size)
                yield lo, block, before.copy(), cnt
                before += cnt
            return
        # u == 1 here: a row is one position per replica
        if plan.blocks is not None and rows_per_block == _BLOCK:  # drawn ahead
            for lo, block, before, cnt in plan.blocks:
                if lo >= first:
                    yield lo, block, before.copy(), cnt
            return
        for b, lo, counts, before in self._block_counts(plan, rows_per_block):
            if lo >= first:
                yield lo, self._order_block(plan, b, counts), before, counts.sum(axis=1)

    def _block_counts(self, plan: _Plan, rows_per_block: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Every block of the class order: (block number, first row, draws per class per replica in
        the block (C, R), draws per class before the block); the counts are multivariate
        hypergeometric, drawn in sequence from one generator."""
        R = self.num_replicas
        n_rows = plan.total // (R * self._unit)
        remaining = plan.rank_quotas.copy()
        total = plan.rank_quotas.sum(axis=1)
        counter = _generator(list(plan.key))
        for b, lo in enumerate(range(0, n_rows, rows_per_block)):
            size = min(n_rows, lo + rows_per_block) - lo
            counts = np.empty_like(remaining)
            for r in range(R):
                counts[:, r] = counter.multivariate_hypergeometric(remaining[:, r], size, method="marginals")
            before = total - remaining.sum(axis=1)
            remaining -= counts
            yield b, lo, counts, before

    def _order_block(self, plan: _Plan, b: int, counts: np.ndarray) -> np.ndarray:
        """Block ``b`` of the class order: each replica's ``counts`` (C, R) arranged uniformly at
        random (``_arrangement``), interleaved by row."""
        C, R = counts.shape
        rng = _generator([*plan.key, b])
        if R == 1:
            return _arrangement(counts[:, 0], rng, _small_uint(C))
        block = np.empty((int(counts[:, 0].sum()), R), dtype=_small_uint(C))
        for r in range(R):
            block[:, r] = _arrangement(counts[:, r], rng, block.dtype)
        return block.reshape(-1)

    def _streams(self, epoch: int, q: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ``c``'s ``q_c`` draws: shuffled full passes over its images, then a random subset.

        Up to ``_SPLIT_STREAMS`` classes each draw from their own generator (spawned from
        ``rng``), the largest first, shared with the plan's second thread when there is one
        (``_share``); more classes draw from ``rng`` in turn."""
        stream = np.empty(int(q.sum()), dtype=self.order_.dtype)
        at = np.concatenate(([0], np.cumsum(q))).tolist()
        if q.size > _SPLIT_STREAMS:
            for c in range(q.size):
                self._class_stream(stream, c, at[c], int(q[c]), rng)
            return stream, None
        rngs = rng.spawn(q.size)
        largest_first = np.argsort(-q, kind="stable").tolist()
        self._share(
            [functools.partial(self._class_stream, stream, c, at[c], int(q[c]), rngs[c]) for c in largest_first if q[c]]
        )
        return stream, None

    def _share(self, jobs: list[Any]) -> None:
        """Run ``jobs`` (independent, each with its own generator) here, and on the plan's second
        thread once its class order is drawn."""
        if self._ahead is None:
            for job in jobs:
                job()
        else:
            self._ahead.share(jobs)

    def _class_stream(self, stream: np.ndarray, c: int, at: int, k: int, rng: np.random.Generator) -> None:
        """Class ``c``'s ``k`` draws into ``stream[at:at + k]``, from ``rng``."""
        offsets = self.offsets_
        members = self.order_[offsets[c] : offsets[c + 1]]
        nc = members.size
        full, rem = divmod(k, nc)
        if full:
            cycles = stream[at : at + full * nc].reshape(full, nc)
            if nc >= 1 << 16:  # few large cycles: an int64 permutation and a gather is fastest
                for cycle in cycles:
                    if nc <= _FIT_BLOCK:
                        cycle[:] = members[rng.permutation(nc)]
                    else:  # no scratch of the class's size
                        cycle[:] = members
                        rng.shuffle(cycle)
            elif nc > 1:  # many small cycles: shuffle rows in one call, on 8-byte items (fastest)
                rows = max(1, _FIT_BLOCK // nc)
                scratch = np.empty((min(rows, full), nc), dtype=np.int64)
                for lo in range(0, full, rows):
                    part = scratch[: min(rows, full - lo)]
                    part[:] = members
                    rng.permuted(part, axis=1, out=part)
                    cycles[lo : lo + part.shape[0]] = part
            else:
                cycles[:] = members
        if rem:
            _random_subset(members, stream[at + full * nc : at + k], rng)

    # ------------------------------------------------------------------ iteration
    def _fill(
        self,
        plan: _Plan,
        block: np.ndarray,
        consumed: np.ndarray,
        repeats: bool,
        dtype: Any = None,
        cnt: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Dataset index (as ``dtype``, default the stream's) and repeat number of the positions whose
        classes are ``block`` (``cnt`` per class, counted when None); advances ``consumed``."""
        o = np.argsort(block, kind="stable")  # positions grouped by class, ascending within a class
        if cnt is None:
            cnt = np.bincount(block, minlength=consumed.size)
        start = plan.stream_offsets[:-1] + consumed
        idx = np.empty(o.size, dtype=plan.stream.dtype if dtype is None else dtype)
        if cnt.size <= 32:  # few classes: the class runs copied whole, then one scatter
            grouped = np.empty_like(idx)  # (a scatter that also casts is ~2x slower)
            grouped_rep = np.empty(o.size, dtype=np.int64) if repeats else None
            at = 0
            for c, (m, s0) in enumerate(zip(cnt.tolist(), start.tolist())):
                if m:
                    grouped[at : at + m] = plan.stream[s0 : s0 + m]
                    if grouped_rep is not None:
                        self._run_repeats(plan, c, s0, grouped_rep[at : at + m])
                    at += m
            idx[o] = grouped
            consumed += cnt
            if grouped_rep is None:
                return idx, None
            rep = np.empty(o.size, dtype=np.int64)
            rep[o] = grouped_rep
            return idx, rep
        src = np.repeat(start - (np.cumsum(cnt) - cnt), cnt) + np.arange(o.size)
        idx[o] = plan.stream[src].astype(idx.dtype, copy=False)
        consumed += cnt
        if not repeats:
            return idx, None
        rep = np.empty(o.size, dtype=np.int64)
        if plan.repeats is not None:
            rep[o] = plan.repeats[src]
        else:
            within = src - np.repeat(plan.stream_offsets[:-1], cnt)
            r = within // np.repeat(self.class_counts_, cnt)
            if plan.pad_repeats is not None:  # entries past a class's own draws: padding
                base = np.repeat(plan.base, cnt)
                over = np.flatnonzero(within >= base)
                r[over] = plan.pad_repeats[np.repeat(plan.pad_offsets[:-1], cnt)[over] + within[over] - base[over]]
            rep[o] = r
        return idx, rep

    def _run_repeats(self, plan: _Plan, c: int, s0: int, out: np.ndarray) -> None:
        """Repeat numbers of class ``c``'s stream entries ``s0, s0 + 1, ...`` into ``out``: the cycle
        of each of the class's own draws, then the recorded numbers of its padding."""
        m = out.size
        if plan.repeats is not None:
            out[:] = plan.repeats[s0 : s0 + m]
            return
        a = s0 - int(plan.stream_offsets[c])  # position in the class's stream
        own = a + m if plan.pad_repeats is None else min(a + m, int(plan.base[c]))
        if own > a:  # cycle k of the class holds its entries k * n .. (k + 1) * n - 1
            n = int(self.class_counts_[c])
            first, last = a // n, (own - 1) // n
            if last - first > 8:
                out[: own - a] = np.arange(a, own) // n
            else:
                for k in range(first, last + 1):
                    out[max(a, k * n) - a : min(own, (k + 1) * n) - a] = k
        if own < a + m:  # padding: its repeat numbers were recorded when it was made
            p = int(plan.pad_offsets[c]) + max(a, own) - int(plan.base[c])
            out[max(own, a) - a :] = plan.pad_repeats[p : p + a + m - max(own, a)]

    def _shard_blocks(
        self, plan: _Plan, start_unit: int, repeats: bool = True, dtype: Any = None
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None, np.ndarray]]:
        """This replica's units from ``start_unit`` on, in blocks: (first unit, idx, rep, cls), each (units, unit).

        ``rep`` is None unless ``repeats``; ``idx`` is ``dtype`` (default: the stream's)."""
        R, r, u = self.num_replicas, self.rank, self._unit
        pick = (slice(None), r, slice(None))

        def shard(block: tuple[int, np.ndarray, np.ndarray, np.ndarray]) -> tuple[Any, ...]:
            ulo, cls, consumed, cnt = block
            idx, rep = self._fill(plan, cls, consumed, repeats, dtype, cnt)
            skip = max(0, start_unit - ulo)
            return (
                ulo + skip,
                idx.reshape(-1, R, u)[pick][skip:],
                None if rep is None else rep.reshape(-1, R, u)[pick][skip:],
                cls.reshape(-1, R, u)[pick][skip:],
            )

        blocks = self._class_blocks(plan, start_unit, max(1, _BLOCK // u))
        if plan.blocks is not None and _cpus() >= 2:  # drawn ahead: filled on two threads, in turns
            return _in_turns(shard, list(blocks))
        return map(shard, blocks)

    def _shard_arrays(self, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
        """This replica's whole shard as flat numpy arrays (index, dense class)."""
        parts = list(self._shard_blocks(plan, 0, repeats=False))
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate([p[1].ravel() for p in parts]), np.concatenate([p[3].ravel() for p in parts])

    def _items(self, idx: np.ndarray, rep: np.ndarray, epoch: int) -> list[Any]:
        """One block of units as Python objects (ints, or Draws)."""
        if not self.yield_draws:
            return idx.ravel().tolist()
        return list(map(Draw, idx.ravel().tolist(), rep.ravel().tolist(), itertools.repeat(epoch)))

    def _iterate(self, epoch: int, start_unit: int) -> Iterator[Any]:
        plan = self._plan(epoch)
        self._resume = 0
        cursor = self._cursor = [start_unit, iter(()), 0, 1]

        def chunks() -> Iterator[Iterator[Any]]:
            for ulo, idx, rep, _cls in self._shard_blocks(plan, start_unit, self.yield_draws):
                items = self._items(idx, rep, epoch)
                it = iter(items)
                cursor[:] = [ulo, it, len(items), 1]
                yield it
            cursor[:] = [plan.total // (self.num_replicas * self._unit), iter(()), 0, 1]

        return itertools.chain.from_iterable(chunks())

    def _iterate_batches(self, epoch: int, start_unit: int, size: int, drop_last: bool) -> Iterator[Any]:
        plan = self._plan(epoch)
        self._resume = 0
        cursor = self._cursor = [start_unit, iter(()), 0, 1]
        u, draws = self._unit, self.yield_draws
        per = size // u  # units per batch
        end = plan.total // (self.num_replicas * u)

        def chunks() -> Iterator[Iterator[Any]]:  # a block's whole batches: rows of one array, handed out in C
            done = start_unit
            held: tuple[np.ndarray, np.ndarray | None] | None = None  # items short of a batch, carried on
            for _ulo, idx, rep, _cls in self._shard_blocks(plan, start_unit, draws, np.int64):
                flat = idx.reshape(-1)
                reps = None if rep is None else rep.reshape(-1)
                if held is not None:
                    flat = np.concatenate([held[0], flat])
                    reps = None if reps is None else np.concatenate([held[1], reps])
                    held = None
                whole = flat.size - flat.size % size
                rows = flat[:whole].reshape(-1, size)
                if reps is None:
                    it = iter(rows)
                else:
                    it = iter(list(map(DrawBatch, rows, reps[:whole].reshape(-1, size), itertools.repeat(epoch))))
                cursor[:] = [done, it, rows.shape[0], per]
                yield it
                done += rows.shape[0] * per
                if whole < flat.size:
                    held = (flat[whole:], None if reps is None else reps[whole:])
            if held is not None and not drop_last:
                last = held[0] if held[1] is None else DrawBatch(held[0], held[1], epoch)
                it = iter([last])
                cursor[:] = [done, it, 1, end - done]
                yield it
            cursor[:] = [end, iter(()), 0, 1]

        def batches() -> Iterator[Any]:  # a generator, so the caller may close() it (the rows stay C-level)
            yield from itertools.chain.from_iterable(chunks())

        return batches()

    def _yielded(self) -> int:
        if self._cursor is None:
            return self._resume
        before, it, length, per = self._cursor
        return before + (length - it.__length_hint__()) * per

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_resume"] = self._yielded()
        state["_cursor"] = None
        state["_plan_cache"] = None
        state["_quota_cache"] = None
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, epoch={self.epoch}, rank={self.rank}/{self.num_replicas})"


class _Ahead:
    """A second thread for one epoch's plan: it draws the class order's blocks, then takes stream
    jobs handed to ``share``; the caller's thread runs the stream jobs and, in ``finish``, the
    blocks left. Jobs are claimed once each; the first error stops the rest and is raised in the
    caller's thread."""

    def __init__(self, sampler: ClassSampler, plan: _Plan):
        self.sampler, self.plan = sampler, plan
        self.counts: list[tuple[int, int, np.ndarray, np.ndarray]] = []
        self.blocks: list[Any] = []
        self.thread = threading.Thread(target=self._serve, name="augbal-plan", daemon=True)
        self._cv = threading.Condition()
        self._orders = collections.deque([self._count])  # the block counts first, then a job per block
        self._jobs: collections.deque[Any] = collections.deque()
        self._running = 0  # jobs the thread is running
        self._stop = False
        self._error: list[BaseException] = []

    def share(self, jobs: list[Any]) -> None:
        """Run ``jobs`` here and on the thread once its blocks are drawn; return when all are done."""
        with self._cv:
            self._jobs.extend(jobs)
        self._drain(self._jobs)

    def finish(self) -> list[Any]:
        """Draw the blocks left here, wait for the thread, and return every block."""
        try:
            self._drain(self._jobs, self._orders)
        finally:
            self.thread.join()
        return self.blocks

    def abandon(self) -> None:
        """Stop (the caller failed) and wait for the thread."""
        with self._cv:
            self._stop = True
        self.thread.join()

    def _claim(self, *queues: collections.deque[Any]) -> Any:
        """The next job of the first non-empty queue, or None (none left, or stopped)."""
        with self._cv:
            if self._stop or self._error:
                return None
            return next((queue.popleft() for queue in queues if queue), None)

    def _count(self) -> None:
        counts = list(self.sampler._block_counts(self.plan, _BLOCK))  # in sequence: one generator
        with self._cv:
            self.counts, self.blocks = counts, [None] * len(counts)
            self._orders.extend(functools.partial(self._block, b) for b in range(len(counts)))

    def _block(self, b: int) -> None:
        _, lo, counts, before = self.counts[b]
        block = self.sampler._order_block(self.plan, b, counts)
        block.flags.writeable = False
        self.blocks[b] = (lo, block, before, counts.sum(axis=1))

    def _serve(self) -> None:  # the thread: blocks first, then stream jobs, until none is left
        while True:
            with self._cv:
                job = self._claim(self._orders, self._jobs)
                if job is None:
                    return
                self._running += 1
            try:
                job()
            except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
                with self._cv:
                    self._error.append(error)
            finally:
                with self._cv:
                    self._running -= 1
                    self._cv.notify_all()

    def _drain(self, *queues: collections.deque[Any]) -> None:
        """Run jobs of ``queues`` here until none is left, the thread's included (its job may add
        some: the block counts add the blocks)."""
        while True:
            while (job := self._claim(*queues)) is not None:
                try:
                    job()
                except BaseException as error:  # noqa: BLE001 - raised below, once the thread's job is done
                    with self._cv:
                        self._error.append(error)
            with self._cv:
                while self._running and not any(queues):
                    self._cv.wait()
                if self._error:
                    self._stop = True
                    raise self._error[0]
                if not self._running and not any(queues):
                    return


class SamplerBatches:
    """A sampler's epoch in whole index arrays (``sampler.batches(batch_size)``), a DataLoader ``batch_sampler``.

    Holds no state of its own: epoch, position and ``state_dict`` are the sampler's, and
    ``set_epoch``, ``state_dict`` and ``load_state_dict`` here forward to it, so a loop
    may keep only ``loader.batch_sampler``. ``len`` is the number of batches in the
    sampler's current epoch.
    """

    def __init__(self, sampler: ClassSampler, batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __len__(self) -> int:
        items = len(self.sampler) * self.sampler._unit
        return items // self.batch_size if self.drop_last else -(-items // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        s = self.sampler
        s._fit()
        return s._iterate_batches(s.epoch, s._resume, self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """The sampler's ``set_epoch``."""
        self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's ``state_dict`` (epoch and position, counted in the sampler's units: samples, or its
        own batches for a batch sampler such as ``BalancedBatchSampler``)."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The sampler's ``load_state_dict``."""
        self.sampler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"SamplerBatches({self.sampler!r}, batch_size={self.batch_size}, drop_last={self.drop_last})"


def _in_turns(work: Any, items: list[Any]) -> Iterator[Any]:
    """``work(item)`` for each item, in order: the odd ones on a second thread, at most two ahead of
    the caller (so a block or two is held, not the epoch); its error is raised here. Abandoning the
    iterator stops the thread."""
    if len(items) < 2:
        return map(work, items)
    cv = threading.Condition()
    done: list[Any] = [None] * len(items)
    state: dict[str, Any] = {"at": 0, "stop": False, "error": None}

    def ahead() -> None:
        for i in range(1, len(items), 2):
            with cv:
                while i > state["at"] + 2 and not state["stop"]:
                    cv.wait()
                if state["stop"]:
                    return
            try:
                result = (work(items[i]),)
            except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
                with cv:
                    state["error"] = error
                    cv.notify_all()
                return
            with cv:
                done[i] = result
                cv.notify_all()

    def results() -> Iterator[Any]:
        thread = threading.Thread(target=ahead, name="augbal-sampler", daemon=True)
        try:  # started here, at the first item: an iterator never advanced holds no thread
            thread.start()
        except RuntimeError:  # no thread to spare: all here, the same results
            yield from map(work, items)
            return
        try:
            for i, item in enumerate(items):
                with cv:
                    state["at"] = i
                    cv.notify_all()
                if i % 2 == 0:
                    yield work(item)
                    continue
                with cv:
                    while done[i] is None and state["error"] is None:
                        cv.wait()
                    if done[i] is None:
                        raise state["error"]
                    result, done[i] = done[i][0], None
                yield result
        finally:
            with cv:
                state["stop"] = True
                cv.notify_all()
            if thread is not threading.current_thread():  # (a cycle collected on the helper itself)
                thread.join()

    return results()


def _index_labels(labels: np.ndarray, parts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes, samples per class, the stable class-sorted index) of any non-negative integer labels.

    Counts, then a stable counting sort by dense class, block by block; with ``parts`` 2
    each half of the labels is counted and sorted on its own thread (either half may be
    sorted first: the stable order is unique)."""
    n = int(labels.size)
    halves = [(0, n // 2), (n // 2, n)] if parts == 2 else [(0, n)]
    span = max(1 << 20, 2 * n)  # label values up to this are counted by value
    seen: list[Any] = [None] * len(halves)

    def count(k: int) -> None:
        part = labels[halves[k][0] : halves[k][1]]
        low, high = int(part.min()), int(part.max())
        seen[k] = (low, high, _count(part, high + 1) if 0 <= low and high < span else None)

    list(_in_turns(count, list(range(len(halves)))))  # each half on its own thread
    low, high = min(s[0] for s in seen), max(s[1] for s in seen)
    if low < 0:
        raise ValueError(f"labels must be non-negative class indices; got {low}")
    if high < span:
        per_half = np.zeros((len(halves), high + 1), dtype=np.int64)
        for k, (_, _, c) in enumerate(seen):
            per_half[k, : c.size] = c
        full = per_half.sum(axis=0)
        classes = np.flatnonzero(full)
        counts = full[classes]
        head = per_half[0, classes]
        dtype = _small_uint(classes.size)
        if classes.size == high + 1:  # labels are already 0 .. C-1
            dense_of = lambda block: block.astype(dtype)  # noqa: E731
        else:
            lut = np.zeros(high + 1, dtype=dtype)
            lut[classes] = np.arange(classes.size)
            dense_of = lut.__getitem__
    else:
        classes, counts = np.unique(labels, return_counts=True)
        dtype = _small_uint(classes.size)
        dense_of = lambda block: np.searchsorted(classes, block).astype(dtype)  # noqa: E731
        halves, head = [(0, n)], counts
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    order = np.empty(n, dtype=np.int32 if n < 1 << 31 else np.int64)
    at = [starts, starts + head]

    def sort(k: int) -> None:
        _sort_into(order, labels, halves[k][0], halves[k][1], dense_of, at[k].copy())

    list(_in_turns(sort, list(range(len(halves)))))
    return classes, counts, order


def _sort_into(order: np.ndarray, labels: np.ndarray, lo: int, hi: int, dense_of: Any, pos: np.ndarray) -> None:
    """Stable counting sort of ``labels[lo:hi]`` by dense class, written at ``pos[c]`` on in ``order``."""
    for start in range(lo, hi, _SORT_BLOCK):  # block by block: radix argsorts on small keys, in cache
        dense = dense_of(labels[start : min(hi, start + _SORT_BLOCK)])
        o = np.argsort(dense, kind="stable")
        cnt = _run_lengths(dense[o], pos.size)
        o += start
        if pos.size <= 64:  # few classes: one slice copy per class
            at = 0
            for c, m in enumerate(cnt.tolist()):
                if m:
                    order[pos[c] : pos[c] + m] = o[at : at + m]
                    at += m
        else:
            first = np.repeat(pos - (np.cumsum(cnt) - cnt), cnt)
            order[first + np.arange(o.size)] = o
        pos += cnt


def _run_lengths(ordered: np.ndarray, classes: int) -> np.ndarray:
    """Count of each value ``0 .. classes-1`` in a sorted array (faster than ``bincount`` on few classes,
    where its counters form one long dependency chain, and with no ``intp`` copy)."""
    edges = np.empty(classes + 1, dtype=np.int64)
    edges[:classes] = np.searchsorted(ordered, np.arange(classes, dtype=ordered.dtype))
    edges[classes] = ordered.size
    return np.diff(edges)


def _arrangement(counts: np.ndarray, rng: np.random.Generator, dtype: Any) -> np.ndarray:
    """A uniformly random sequence holding ``counts[c]`` of each class ``c``, as ``dtype``.

    Each position draws its class independently, with probability ``counts[c] / S`` (a table
    lookup per 16 random bits), then the counts are made exact: positions drawn uniformly
    (distinct, in draw order) are freed from each class drawn too often, and the freed
    positions take the missing classes in a random order. Independent draws are exchangeable
    and each correction is uniform, so every arrangement with these counts is equally likely,
    as with a shuffle, for about a tenth of a shuffle's random draws (a few hundred positions
    change in a block of 65,536). Over ``_ARRANGE_MAX_CLASSES`` classes, a shuffle.
    """
    C, S = counts.size, int(counts.sum())
    if C > _ARRANGE_MAX_CLASSES:  # many classes: the corrections cost more than a shuffle of int64 ids
        ids = np.repeat(np.arange(C, dtype=np.int64), counts)  # numpy shuffles 8-byte items fastest
        rng.shuffle(ids)
        return ids.astype(dtype)
    table = np.repeat(np.arange(C, dtype=dtype), counts)
    if S == 1 << 16:  # a full block: 16 raw bits per position, no bounded draws
        x = np.take(table, rng.bit_generator.random_raw(S // 4).astype("<u8", copy=False).view("<u2"))
    else:
        x = np.take(table, rng.integers(0, S, S))
    excess = np.bincount(x, minlength=C) - counts
    if not excess.any():
        return x
    need = np.maximum(excess, 0)
    drawn = counts + need
    taken = np.zeros(S, dtype=bool)
    freed = []
    while need.any():
        # draws enough that each class with positions to free expects twice what it needs
        draws = int(min(4 * S, 64 + 2 * (need * S / np.maximum(drawn, 1)).max()))
        pos = rng.integers(0, S, draws)
        pos = pos[(need[x[pos]] > 0) & ~taken[pos]]
        _, first = np.unique(pos, return_index=True)  # distinct, in draw order
        pos = pos[np.sort(first)]
        cls = x[pos]
        pos = pos[_occurrence(cls) < need[cls]]  # each class's first draws, as many as it frees
        need -= np.bincount(x[pos], minlength=C)
        taken[pos] = True
        freed.append(pos)
    missing = np.repeat(np.arange(C, dtype=dtype), np.maximum(-excess, 0))
    rng.shuffle(missing)
    x[np.concatenate(freed)] = missing
    return x


def _random_subset(members: np.ndarray, out: np.ndarray, rng: np.random.Generator) -> None:
    """Fill ``out`` with a uniformly random subset of ``members`` in random order (no repeats).

    Costs about ``2 * out.size`` random draws and no scratch of ``members``' size: block
    counts are multivariate hypergeometric, then each block is sampled without replacement.
    """
    k, n = out.size, members.size
    if n <= _SUBSET_WHOLE:
        out[:] = members[rng.choice(n, k, replace=False)]
        return
    sizes = np.diff(np.r_[np.arange(0, n, _SUBSET_BLOCK), n])
    take = rng.multivariate_hypergeometric(sizes, k, method="marginals")
    if k <= _SUBSET_SCRATCH:  # positions in members on int64 scratch (numpy shuffles 8-byte items fastest)
        pick = np.empty(k, dtype=np.int64)
        at = 0
        for b, m in enumerate(take.tolist()):
            pick[at : at + m] = rng.choice(int(sizes[b]), m, replace=False) + b * _SUBSET_BLOCK
            at += m
        rng.shuffle(pick)
        out[:] = members[pick]
        return
    at = 0  # no scratch of the subset's size
    for b, m in enumerate(take.tolist()):
        lo = b * _SUBSET_BLOCK
        out[at : at + m] = members[lo + rng.choice(int(sizes[b]), m, replace=False)]
        at += m
    rng.shuffle(out)


def _occurrence(values: np.ndarray) -> np.ndarray:
    """For each entry, how many equal entries precede it (0 for the first of each value)."""
    o = np.argsort(values, kind="stable")
    s = values[o]
    start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, dtype=np.int64)
    out = np.empty(values.size, dtype=np.int64)
    out[o] = np.arange(s.size) - np.repeat(start, np.diff(np.r_[start, s.size]))
    return out


def _count(values: np.ndarray, classes: int) -> np.ndarray:
    """``np.bincount`` in blocks (it would otherwise copy small-int arrays to int64 whole)."""
    out = np.zeros(classes, dtype=np.int64)
    for lo in range(0, values.size, _FIT_BLOCK):
        out += np.bincount(values[lo : lo + _FIT_BLOCK], minlength=classes)
    return out


def _cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _dist_world() -> tuple[int, int]:
    """(world size, rank) of an initialised ``torch.distributed`` group, else (1, 0)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0
