"""DataLoader hygiene in one place: per-worker seeding, one thread per worker, a documented factory."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from augbal._validation import check_int, check_seed, is_int

__all__ = ["default_num_workers", "make_loader", "seed_worker"]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed ``random``, numpy and torch, and use one thread.

    Every generator is seeded from this worker's seed, ``get_worker_info().seed``
    (the loader's base seed, drawn from the loader's ``generator``, plus ``worker_id``),
    so a loader with a seeded generator repeats its random draws (augmentations, numpy
    draws in ``__getitem__``) exactly, and no two workers share a stream. Recent torch
    already seeds ``random`` and torch this way; doing it here makes numpy explicit and
    the behaviour independent of the torch version. Inside workers, torch and OpenCV
    (used by albumentations) are limited to one thread each: parallelism comes from
    the workers, and nested thread pools only oversubscribe the cores (OpenCV is set
    with ``cv2.setNumThreads(0)``, "run sequentially", which unlike ``setNumThreads(1)``
    is safe in a forked worker). Outside a worker it does nothing.

    Example:
        >>> seed_worker(0)  # in the main process: a no-op
    """
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    seed = int(info.seed)
    random.seed(seed)
    np.random.seed(np.random.SeedSequence(seed).generate_state(4))
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    try:
        import cv2
    except ImportError:  # pragma: no cover - albumentations installs opencv
        return
    # 0 = run sequentially (cv2.getNumThreads() then reports 1). setNumThreads(1) would
    # stop and restart OpenCV's pthreads pool, and in a forked worker whose parent had
    # already used that pool it waits forever on threads that do not exist after fork.
    cv2.setNumThreads(0)


def _init_worker(user_init: Callable[[int], None] | None, worker_id: int) -> None:
    seed_worker(worker_id)
    if user_init is not None:
        user_init(worker_id)


def default_num_workers() -> int:
    """Workers used when ``make_loader(num_workers=None)``: the usable CPUs minus one, at most 8.

    Example:
        >>> 0 <= default_num_workers() <= 8
        True
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus - 1))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int | None,
    sampler: Sampler | Iterable | None = None,
    batch_sampler: Sampler[Sequence[int]] | Iterable[Sequence[int]] | None = None,
    shuffle: bool = False,
    num_workers: int | None = None,
    seed: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
    pin_memory: bool | Literal["auto"] = "auto",
    persistent_workers: bool | Literal["auto"] = "auto",
    prefetch_factor: int | None = None,
    worker_init_fn: Callable[[int], None] | None = None,
) -> DataLoader:
    """Build a reproducible ``DataLoader`` with sensible worker settings.

    - The loader gets a ``torch.Generator`` seeded with ``seed``: it drives
      ``shuffle=True`` and the per-worker base seeds, so the same seed gives the same
      batches run after run (given a deterministic dataset/sampler), and a different
      seed gives different ones. Two epochs differ from each other, reproducibly.
    - Workers run ``seed_worker`` (seeded numpy/random/torch, one torch and OpenCV
      thread), then your ``worker_init_fn`` if given.
    - ``num_workers=None`` uses ``default_num_workers()``; ``persistent_workers="auto"``
      keeps workers alive across epochs whenever there are workers;
      ``pin_memory="auto"`` pins batches when CUDA is available.

    A sampler with ``set_epoch`` (augbal's samplers, ``DistributedSampler``) is not
    advanced by the loader: your training loop calls ``sampler.set_epoch(epoch)``
    before iterating each epoch, on the sampler (or batch sampler) you passed here.
    A sampler draws from its own seed, not from ``seed``.

    Args:
        dataset: any map-style dataset.
        batch_size: samples per batch; must be ``None`` with ``batch_sampler``.
        sampler: an index sampler (excludes ``shuffle`` and ``batch_sampler``).
        batch_sampler: yields lists of indices (excludes ``batch_size``, ``shuffle``,
            ``sampler`` and ``drop_last``).
        shuffle: draw a random permutation each epoch from the seeded generator.
        num_workers: worker processes (0 loads in the main process).
        seed: seed of the loader's generator.
        collate_fn: e.g. ``MixCollate(mixer)``; default: torch's ``default_collate``.
        drop_last: drop the last incomplete batch.
        pin_memory: ``True``, ``False`` or ``"auto"``.
        persistent_workers: ``True``, ``False`` or ``"auto"`` (needs workers).
        prefetch_factor: batches loaded ahead per worker (needs workers; default 2).
        worker_init_fn: extra worker initialisation, run after ``seed_worker``.

    Example:
        >>> loader = make_loader(list(range(10)), batch_size=4, shuffle=True, num_workers=0, seed=1)
        >>> [len(b) for b in loader]
        [4, 4, 2]
    """
    check_seed("seed", seed)
    if batch_sampler is not None:
        clashes = [
            name
            for name, given in (
                ("batch_size", batch_size is not None),
                ("shuffle", shuffle),
                ("sampler", sampler is not None),
                ("drop_last", drop_last),
            )
            if given
        ]
        if clashes:
            raise ValueError(
                f"a batch_sampler defines the batches, so batch_size must be None and shuffle, sampler and "
                f"drop_last unset; got {', '.join(clashes)}"
            )
    elif not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int (or None with a batch_sampler); got {batch_size!r}")
    if shuffle and sampler is not None:
        raise ValueError("shuffle=True draws its own order; pass shuffle=True or a sampler, not both")
    if num_workers is None:
        num_workers = default_num_workers()
    check_int("num_workers", num_workers)
    if persistent_workers == "auto":
        persistent_workers = num_workers > 0
    elif persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers=True needs num_workers > 0; got num_workers=0")
    if prefetch_factor is not None and num_workers == 0:
        raise ValueError(
            f"prefetch_factor needs num_workers > 0; got prefetch_factor={prefetch_factor} with num_workers=0"
        )
    if pin_memory == "auto":
        pin_memory = torch.cuda.is_available()

    generator = torch.Generator()
    generator.manual_seed(seed)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["worker_init_fn"] = functools.partial(_init_worker, worker_init_fn)
        extra["persistent_workers"] = bool(persistent_workers)
        if prefetch_factor is not None:
            extra["prefetch_factor"] = prefetch_factor
    if batch_sampler is not None:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=bool(pin_memory),
            generator=generator,
            **extra,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=bool(pin_memory),
        generator=generator,
        **extra,
    )
