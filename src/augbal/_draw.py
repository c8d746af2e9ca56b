"""The sample key shared by samplers, datasets and repeat-aware augmentation."""

from __future__ import annotations

from typing import NamedTuple


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
