"""Repeat-aware seeding: every random augmentation draw comes from (seed, index, repeat, epoch).

A policy called with a :class:`augbal._draw.Draw` derives its generators from
``np.random.SeedSequence([seed, draw.index, draw.repeat, draw.epoch])``, so the same
draw always gives the same bytes (in any process) and the k-th repeat of a minority
image gets its own augmentation. Called without a draw, a policy uses a
:class:`SeedStream`: the n-th call in a process uses
``SeedSequence([seed, n], spawn_key=(1,))`` in the main process and
``SeedSequence([seed, n, worker_seed], spawn_key=(1,))`` inside a DataLoader worker
(``worker_seed`` from ``torch.utils.data.get_worker_info()``, which differs per worker
and per epoch). The global RNGs of numpy, ``random`` and torch are never consumed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from augbal._draw import Draw
from augbal._validation import check_seed, is_int

_STREAM_KEY = (1,)  # keeps draw-less streams apart from the Draw-derived sequences


def as_draw(draw: Any) -> Draw:
    """Validate ``draw`` (a ``Draw``, an ``(index, repeat, epoch)`` tuple or an int index).

    Example:
        >>> as_draw(3), as_draw((3, 1, 2))
        (Draw(index=3, repeat=0, epoch=0), Draw(index=3, repeat=1, epoch=2))
    """
    if type(draw) is Draw and all(type(p) is int and p >= 0 for p in draw):  # already valid: the usual case
        return draw
    if isinstance(draw, Draw):
        parts = tuple(draw)
    elif is_int(draw):
        parts = (int(draw), 0, 0)
    elif isinstance(draw, tuple) and len(draw) == 3:
        parts = draw
    else:
        raise TypeError(f"draw must be an augbal Draw(index, repeat, epoch), a 3-tuple or an int; got {draw!r}")
    if not all(is_int(p) and p >= 0 for p in parts):
        raise ValueError(f"draw index, repeat and epoch must be non-negative integers; got {draw!r}")
    return Draw(*(int(p) for p in parts))


def draw_seed_sequence(seed: int, draw: Draw) -> np.random.SeedSequence:
    """The seed sequence of one draw: ``SeedSequence([seed, index, repeat, epoch])``.

    Example:
        >>> a = draw_seed_sequence(0, Draw(5, repeat=0)).generate_state(1)
        >>> b = draw_seed_sequence(0, Draw(5, repeat=1)).generate_state(1)
        >>> bool(a[0] != b[0]), bool(draw_seed_sequence(0, Draw(5)).generate_state(1)[0] == a[0])
        (True, True)
    """
    return np.random.SeedSequence(_uint32_words((seed, draw.index, draw.repeat, draw.epoch)))


def _uint32_words(values: tuple[int, ...]) -> np.ndarray:
    """Non-negative ints as the uint32 words ``SeedSequence`` reads a list of them as (each one
    little-endian, 0 as one word): the same pool, without numpy's Python loop over the words of
    a big int (a build's index is a 256-bit content hash: 10 -> 5 us per copy)."""
    data = b"".join(v.to_bytes(4 * max(1, -(-v.bit_length() // 32)), "little") for v in values)
    return np.frombuffer(data, dtype="<u4")


class SeedStream:
    """Per-instance seed sequences for calls that come without a draw.

    The n-th call to :meth:`next` in a process returns ``SeedSequence([seed, n], spawn_key=(1,))``,
    or ``SeedSequence([seed, n, worker_seed], spawn_key=(1,))`` in a DataLoader worker; the
    counter restarts whenever the worker seed changes (a new worker or a new epoch).

    Example:
        >>> s = SeedStream(7)
        >>> first, second = s.next().generate_state(1)[0], s.next().generate_state(1)[0]
        >>> bool(first != second), bool(SeedStream(7).next().generate_state(1)[0] == first)
        (True, True)
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._worker_seed: int | None = None
        self._count = 0

    def next(self) -> np.random.SeedSequence:
        """The next seed sequence of this stream."""
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker_seed = None if info is None else int(info.seed)
        if worker_seed != self._worker_seed:
            self._worker_seed, self._count = worker_seed, 0
        entropy = [self.seed, self._count] + ([] if worker_seed is None else [worker_seed])
        self._count += 1
        return np.random.SeedSequence(entropy, spawn_key=_STREAM_KEY)


_PCG64_MULTIPLIER = 0x2360ED051FC65DA44385DF649FCCF645  # numpy's PCG64 (pcg64.h, PCG_DEFAULT_MULTIPLIER_128)
_MASK128 = (1 << 128) - 1


def numpy_python_rngs(
    seeds: np.random.SeedSequence, *, out: tuple[np.random.Generator, random.Random] | None = None
) -> tuple[np.random.Generator, random.Random]:
    """A numpy ``Generator`` (PCG64) and a ``random.Random`` derived from ``seeds`` (what albumentations draws from).

    With ``out``, a pair an earlier call returned, that pair is re-seeded in place and
    returned: the same draws as a new pair, without building two generators per call (a
    policy re-seeds its own pair for every image).

    Example:
        >>> g, r = numpy_python_rngs(np.random.SeedSequence(1))
        >>> isinstance(g.random(), float) and 0 <= r.random() < 1
        True
        >>> pair = numpy_python_rngs(np.random.SeedSequence(2), out=(g, r))
        >>> pair[0] is g, pair[0].random() == numpy_python_rngs(np.random.SeedSequence(2))[0].random()
        (True, True)
    """
    words = seeds.generate_state(4, np.uint64).tolist()  # PCG64(seeds) seeds itself from these four words
    python_seed = words[2] << 64 | words[3]
    if out is None:
        return np.random.Generator(np.random.PCG64(seeds)), random.Random(python_seed)
    generator, python = out
    if not (isinstance(generator, np.random.Generator) and isinstance(generator.bit_generator, np.random.PCG64)
            and isinstance(python, random.Random)):
        raise ValueError(f"out must be a (Generator(PCG64), random.Random) pair from numpy_python_rngs; got {out!r}")
    # PCG64(seeds): pcg64_set_seed(state=(w0, w1), inc=(w2, w3)), i.e. two steps of its LCG from 0
    inc = ((words[2] << 64 | words[3]) << 1 | 1) & _MASK128
    state = ((inc + (words[0] << 64 | words[1])) * _PCG64_MULTIPLIER + inc) & _MASK128
    generator.bit_generator.state = {
        "bit_generator": "PCG64", "state": {"state": state, "inc": inc}, "has_uint32": 0, "uinteger": 0,
    }
    python.seed(python_seed)
    return out


def torch_seed(seeds: np.random.SeedSequence) -> int:
    """A 63-bit torch seed derived from ``seeds``.

    Example:
        >>> torch_seed(np.random.SeedSequence(1)) == torch_seed(np.random.SeedSequence(1))
        True
    """
    return int(seeds.generate_state(1, np.uint64)[0] >> np.uint64(1))


@contextmanager
def forked_rngs(seeds: np.random.SeedSequence, *, numpy_and_python: bool = False) -> Iterator[None]:
    """Run a block with torch's CPU RNG (and optionally numpy's and ``random``'s global RNGs)
    seeded from ``seeds``, restoring their previous states afterwards.

    For third-party transforms that draw from the global RNGs (torchvision v2 uses
    ``torch.rand``): their draws become reproducible and the caller's RNG state is untouched.

    Example:
        >>> import torch
        >>> before = torch.get_rng_state()
        >>> with forked_rngs(np.random.SeedSequence(3)):
        ...     x = torch.rand(2)
        >>> with forked_rngs(np.random.SeedSequence(3)):
        ...     y = torch.rand(2)
        >>> bool(torch.equal(x, y)), bool(torch.equal(before, torch.get_rng_state()))
        (True, True)
    """
    import torch

    np_state = np.random.get_state() if numpy_and_python else None
    py_state = random.getstate() if numpy_and_python else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed(seeds))
        if numpy_and_python:
            words = seeds.generate_state(8)
            np.random.seed(words[:4])
            random.seed(int(words[4]) << 96 | int(words[5]) << 64 | int(words[6]) << 32 | int(words[7]))
        try:
            yield
        finally:
            if numpy_and_python:
                np.random.set_state(np_state)
                random.setstate(py_state)


class RepeatAware:
    """Make any image transform repeat-aware: run it with RNGs seeded from the draw.

    ``transform`` is any picklable callable (a torchvision or albumentations pipeline, a
    function) that draws from the global RNGs of torch, numpy or ``random``. Calls follow
    the augbal policy protocol; with a ``draw`` the output depends only on
    ``(seed, index, repeat, epoch)``, without one on a :class:`SeedStream`. The global RNG
    states are restored after each call.

    Example:
        >>> import torch
        >>> jitter = RepeatAware(lambda x: x + torch.rand(()), seed=0)
        >>> a = jitter(torch.zeros(1), draw=Draw(4, repeat=0))
        >>> b = jitter(torch.zeros(1), draw=Draw(4, repeat=1))
        >>> bool(torch.equal(a, jitter(torch.zeros(1), draw=Draw(4, repeat=0)))), bool(torch.equal(a, b))
        (True, False)
    """

    wants_context = True

    def __init__(self, transform: Callable[[Any], Any], *, seed: int = 0) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable; got {type(transform).__name__}")
        check_seed("seed", seed)
        self.transform = transform
        self.seed = seed
        self._stream = SeedStream(seed)

    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        seeds = self._stream.next() if draw is None else draw_seed_sequence(self.seed, as_draw(draw))
        with forked_rngs(seeds, numpy_and_python=True):
            return self.transform(image)

    def __repr__(self) -> str:
        return f"RepeatAware({self.transform!r}, seed={self.seed})"
