"""The sample key shared by samplers, datasets and repeat-aware augmentation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, NamedTuple


class Draw(NamedTuple):
    """One draw of a sample in an epoch: the dataset ``index``, and this is its ``repeat``-th
    draw (0 for the first) in ``epoch``.

    Samplers built with ``yield_draws=True`` yield ``Draw`` items instead of plain ints;
    ``augbal.data.ImageDataset`` accepts both and passes the ``Draw`` to augbal transforms,
    so the k-th repeat of a minority image gets its own reproducible augmentation.

    Example:
        >>> d = Draw(index=7, repeat=2, epoch=1)
        >>> index, repeat, epoch = d
        >>> (index, repeat, epoch)
        (7, 2, 1)
    """

    index: int
    repeat: int = 0
    epoch: int = 0


class DrawBatch:
    """A batch of draws as arrays: what ``sampler.batches(...)`` yields with ``yield_draws=True``.

    ``index`` and ``repeat`` are equally long ``int64`` numpy arrays; all draws share
    ``epoch``. Iterating (or indexing) gives the ``Draw`` items, so a dataset without
    ``__getitems__`` receives one ``Draw`` per sample, as in item mode;
    ``augbal.data.ImageDataset.__getitems__`` takes the batch whole.

    Example:
        >>> import numpy as np
        >>> batch = DrawBatch(np.array([7, 3]), np.array([0, 2]), epoch=1)
        >>> len(batch), list(batch)
        (2, [Draw(index=7, repeat=0, epoch=1), Draw(index=3, repeat=2, epoch=1)])
    """

    __slots__ = ("index", "repeat", "epoch")

    def __init__(self, index: Any, repeat: Any, epoch: int = 0) -> None:
        if len(index) != len(repeat):
            raise ValueError(f"index and repeat must be equally long; got {len(index)} and {len(repeat)}")
        self.index = index
        self.repeat = repeat
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[Draw]:
        return map(Draw, self.index.tolist(), self.repeat.tolist(), itertools.repeat(self.epoch))

    def __getitem__(self, i: int | slice) -> Draw | DrawBatch:
        """One ``Draw`` for an integer position; a ``DrawBatch`` for a slice."""
        if isinstance(i, slice):
            return DrawBatch(self.index[i], self.repeat[i], self.epoch)
        return Draw(int(self.index[i]), int(self.repeat[i]), self.epoch)

    def __getstate__(self) -> tuple[Any, Any, int]:
        return self.index, self.repeat, self.epoch

    def __setstate__(self, state: tuple[Any, Any, int]) -> None:
        self.index, self.repeat, self.epoch = state

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DrawBatch):
            return NotImplemented
        return self.epoch == other.epoch and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def __repr__(self) -> str:
        return f"DrawBatch(index={self.index!r}, repeat={self.repeat!r}, epoch={self.epoch})"
