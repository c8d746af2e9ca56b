"""Execute a plan: copy originals, make augmented copies (uint8 in, PNG out), locally in processes."""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import numpy as np

from augbal._draw import Draw

from ._plan import Item

_RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
_CHUNK = 16


def augment_draw(source_hash: str, repeat: int) -> Draw:
    """The draw of augmented copy ``repeat`` of a file with content hash ``source_hash``.

    The policy's seed plus this draw fix the image: it depends only on (seed, hash, k).

    Example:
        >>> augment_draw("0f", 2)
        Draw(index=15, repeat=2, epoch=0)
    """
    return Draw(index=int(source_hash, 16), repeat=int(repeat), epoch=0)


class Augmenter:
    """Make one augmented copy as PNG bytes: ``policy`` run on the source's uint8 pixels.

    The policy is rebuilt with ``mean=0, std=1`` (its output is then ``v / 255`` in float32,
    which rounds back to the exact uint8 value) and ``size`` (or, when ``size`` is None,
    the shorter side of each source image).

    Example:
        >>> import numpy as np
        >>> aug = Augmenter({"name": "light", "seed": 3}, size=8)
        >>> png = aug.png(np.zeros((10, 12, 3), np.uint8), label=0, source_hash="ab", repeat=1)
        >>> png[:4]
        b'\\x89PNG'
    """

    def __init__(self, spec: Any, *, size: int | None) -> None:
        self.spec = spec
        self.size = size
        self._policies: dict[int, Any] = {}

    def policy(self, side: int) -> Any:
        """The un-normalised policy producing ``side`` x ``side`` images."""
        if side not in self._policies:
            from augbal.augment import build_policy

            self._policies[side] = build_policy(self.spec, size=side, **_RAW)
        return self._policies[side]

    def pixels(self, image: np.ndarray, *, label: int, source_hash: str, repeat: int) -> np.ndarray:
        """The augmented ``(H, W, 3)`` uint8 array."""
        side = self.size or int(min(image.shape[0], image.shape[1]))
        out = self.policy(side)(image, label=label, draw=augment_draw(source_hash, repeat))
        array = out.numpy() if hasattr(out, "numpy") else np.asarray(out)
        return np.rint(array.transpose(1, 2, 0) * 255.0).clip(0, 255).astype(np.uint8)

    def png(self, image: np.ndarray, *, label: int, source_hash: str, repeat: int) -> bytes:
        """The augmented image as PNG bytes (no metadata: the same pixels give the same bytes)."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.pixels(image, label=label, source_hash=source_hash, repeat=repeat)).save(buf, format="PNG")
        return buf.getvalue()


def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def copy_original(item: Item, root: str, *, link: bool) -> None:
    """Copy (or hard-link) an original to ``root/item.out`` unchanged."""
    target = os.path.join(root, item.out)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if link:
        try:
            os.link(item.source, target)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    shutil.copyfile(item.source, target)


def _augment_chunk(items: Sequence[Item], root: str, spec: Any, size: int | None) -> int:
    """Worker task: write the augmented copies of ``items`` (grouped by source, decoded once each)."""
    from augbal.data import load_rgb

    augmenter = _WORKER_CACHE.get((repr(spec), size))
    if augmenter is None:
        augmenter = _WORKER_CACHE[(repr(spec), size)] = Augmenter(spec, size=size)
    image, loaded = None, None
    for item in items:
        if loaded != item.source:
            image, loaded = load_rgb(item.source, max_pixels=None, formats=None), item.source
        data = augmenter.png(image, label=item.label, source_hash=item.source_hash, repeat=item.repeat)
        _write_bytes(os.path.join(root, item.out), data)
    return len(items)


_WORKER_CACHE: dict[tuple[str, int | None], Augmenter] = {}


def _chunks(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_local(
    items: Sequence[Item], root: str, *, spec: Any, size: int | None, link: bool, workers: int
) -> int:
    """Write every item of a plan under ``root``: originals here, augmented copies in ``workers`` processes.

    At most ``2 * workers`` chunks are in flight (a bounded queue), so memory does not grow
    with the number of images. Every output depends only on its item, so the files are the
    same for any ``workers``.
    """
    for item in items:
        if item.repeat == 0:
            copy_original(item, root, link=link)
    augmented = [item for item in items if item.repeat > 0]
    if workers <= 1 or len(augmented) <= _CHUNK:
        for chunk in _chunks(augmented, _CHUNK):
            _augment_chunk(chunk, root, spec, size)
        return len(augmented)
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        pending: set[Future[int]] = set()
        for chunk in _chunks(augmented, _CHUNK):
            if len(pending) >= 2 * workers:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                done += sum(f.result() for f in finished)
            pending.add(pool.submit(_augment_chunk, chunk, root, spec, size))
        for future in pending:
            done += future.result()
    return done


