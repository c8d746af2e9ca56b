"""Execute a plan: copy originals, make augmented copies (uint8 in, JPEG or PNG out), locally in processes.

The executor seam: ``pending_items`` yields the items still to do (copying the originals
itself unless the executor's workers copy them); an executor (``run_local`` here,
``run_ray`` in ``_ray.py``) sends them in chunks through the one per-chunk function
``_augment_chunk``, so every executor writes the same bytes by construction.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice
from typing import Any

import numpy as np

from augbal._draw import Draw

from ._plan import Item

_RAW = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
_CHUNK = 16
_MAX_CHUNK = 256


def chunk_size(n_items: int, workers: int) -> int:
    """Items per task for ``n_items`` on ``workers`` processes: ``_CHUNK`` to ``_MAX_CHUNK``, about 64 tasks a worker.

    Every task costs the main process a pickling and two thread hand-offs (about 0.2 ms of
    its CPU, which it takes from the workers on as many cores); 64 tasks a worker keep the
    last ones short.

    Example:
        >>> chunk_size(100, 2), chunk_size(10_000, 2), chunk_size(1_000_000, 8)
        (16, 78, 256)
    """
    return max(_CHUNK, min(_MAX_CHUNK, n_items // (64 * max(1, workers))))


class BuildTaskError(OSError):
    """An output could not be written: ``out`` (relative to OUT) from ``source``, and why.

    Every executor raises this for a failed augmentation task (a worker process or a Ray task),
    so the message names the file whichever executor ran it. It is an ``OSError`` (the build
    failed, resumable) and keeps the ``errno`` of an ``OSError`` cause (``ENOSPC``: disk full).

    Example:
        >>> str(BuildTaskError("train/a/x.aug1.png", "/src/a/x.png", "OSError: disk full"))
        'cannot write train/a/x.aug1.png from /src/a/x.png: OSError: disk full'
    """

    def __init__(self, out: str, source: str, reason: str, code: int | None = None) -> None:
        super().__init__(f"cannot write {out} from {source}: {reason}")
        self.out, self.source, self.reason = out, source, reason
        self.errno = code

    def __reduce__(self) -> tuple[Any, ...]:  # survive pickling across processes and Ray
        return (type(self), (self.out, self.source, self.reason, self.errno))


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def chunk_failed(items: Sequence[Item], exc: BaseException) -> BuildTaskError:
    """The error for a chunk whose worker died (no item-level error came back): names its files."""
    if isinstance(exc, BuildTaskError):
        return exc
    first, last = items[0], items[-1]
    where = first.out if len(items) == 1 else f"{first.out} .. {last.out} ({len(items)} files)"
    return BuildTaskError(where, first.source if len(items) == 1 else "their sources",
                          f"the worker failed: {_reason(exc)}")


def augment_draw(source_hash: str, repeat: int) -> Draw:
    """The draw of augmented copy ``repeat`` of a file with content hash ``source_hash``.

    The policy's seed plus this draw fix the image: it depends only on (seed, hash, k).

    Example:
        >>> augment_draw("0f", 2)
        Draw(index=15, repeat=2, epoch=0)
    """
    return Draw(index=int(source_hash, 16), repeat=int(repeat), epoch=0)


#: Suffixes of augmented copies written as JPEG (every other copy is PNG).
JPEG_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")


def output_format(path: str) -> str:
    """The Pillow format an augmented copy at ``path`` is encoded in: ``"JPEG"`` or ``"PNG"``.

    Example:
        >>> output_format("train/cat/001.aug2.jpg"), output_format("train/cat/001.aug2.png")
        ('JPEG', 'PNG')
    """
    return "JPEG" if os.path.splitext(path)[1].lower() in JPEG_SUFFIXES else "PNG"


class Augmenter:
    """Make one augmented copy as PNG or JPEG bytes: ``policy`` run on the source's uint8 pixels.

    The policy is rebuilt with ``mean=0, std=1`` and ``size`` (when ``size`` is None, the spec's
    own ``size``, as a build's manifest records it; if that is None too, the shorter side of each
    source image), and its uint8 output (``Policy.pixels``) is encoded
    by OpenCV with fixed settings and no metadata, so the same pixels give the same bytes
    in any process: JPEG at ``jpeg_quality`` (baseline, not optimised, 4:2:0 chroma
    subsampling), PNG at zlib level 6. (OpenCV's encoders cost a fifth of Pillow's per
    small image, most of which was Pillow's Python around the same libjpeg / zlib.)

    Example:
        >>> import numpy as np
        >>> aug = Augmenter({"name": "light", "seed": 3}, size=8)
        >>> png = aug.png(np.zeros((10, 12, 3), np.uint8), label=0, source_hash="ab", repeat=1)
        >>> png[:4], aug.encode(np.zeros((8, 8, 3), np.uint8), label=0, source_hash="ab", repeat=1, fmt="JPEG")[:2]
        (b'\\x89PNG', b'\\xff\\xd8')
    """

    def __init__(self, spec: Any, *, size: int | None, jpeg_quality: int = 95) -> None:
        self.spec = spec
        # a manifest row's spec carries the size its build applied: it alone reproduces the image
        self.size = size if size is not None or not isinstance(spec, Mapping) else spec.get("size")
        self.jpeg_quality = jpeg_quality
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
        return self.policy(side).pixels(image, label=label, draw=augment_draw(source_hash, repeat))

    def encode(self, image: np.ndarray, *, label: int, source_hash: str, repeat: int, fmt: str = "PNG") -> bytes:
        """The augmented image as ``fmt`` (``"PNG"`` or ``"JPEG"``) bytes, without metadata."""
        import cv2

        bgr = cv2.cvtColor(self.pixels(image, label=label, source_hash=source_hash, repeat=repeat),
                           cv2.COLOR_RGB2BGR)
        if fmt == "JPEG":
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality,
                                                  cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                                                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
        else:
            ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
        if not ok:
            raise OSError(f"OpenCV could not encode a {bgr.shape[1]}x{bgr.shape[0]} image as {fmt}")
        return data.tobytes()

    def png(self, image: np.ndarray, *, label: int, source_hash: str, repeat: int) -> bytes:
        """The augmented image as PNG bytes (no metadata: the same pixels give the same bytes)."""
        return self.encode(image, label=label, source_hash=source_hash, repeat=repeat, fmt="PNG")


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_MADE_FOLDERS: set[str] = set()


def _folder_for(path: str) -> None:
    """Make the folder of ``path`` unless this process already made it (one ``makedirs`` per folder)."""
    folder = os.path.dirname(path)
    if folder not in _MADE_FOLDERS:
        os.makedirs(folder, exist_ok=True)
        _MADE_FOLDERS.add(folder)


def _written(path: str, write: Callable[[], None]) -> None:
    """Run ``write`` (which creates ``path``); if it fails, remove what it left, so no torn file stays.

    The folder is made once per process; if it went away (a new build in the same process),
    it is made again.
    """
    _folder_for(path)
    try:
        write()
    except FileNotFoundError:
        folder = os.path.dirname(path)
        if os.path.isdir(folder):
            raise
        _MADE_FOLDERS.discard(folder)
        _folder_for(path)
        _written(path, write)
    except BaseException:
        try:
            os.remove(path)
        except OSError:
            pass
        raise


def _write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` directly (no temporary file and rename: 2 syscalls less per image).

    A failed write removes the part it wrote; only a killed process can leave a file cut
    short, and ``is_done`` tells one from a whole file (an augmented copy ends with its
    format's end marker), so ``resume`` redoes it. The whole build is still atomic: it is
    written under ``OUT.incomplete`` and renamed at the end. The file gets the permission
    bits a new file gets under the umask.
    """

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    _written(path, write)


def is_done(item: Item, root: str) -> bool:
    """Whether ``root/item.out`` is already written completely (checked cheaply, for ``resume``).

    Outputs are written in place (a failed write removes its part, but a killed process can
    leave a file cut short), so this checks that an original has its source's size and that
    an augmented PNG ends with its ``IEND`` chunk (a JPEG with its end-of-image marker; the
    encoders write no metadata, so that marker appears nowhere else).
    """
    target = os.path.join(root, item.out)
    try:
        size = os.path.getsize(target)
    except OSError:
        return False
    if item.repeat == 0:
        try:
            return size == os.path.getsize(item.source)
        except OSError:
            return False
    end = _JPEG_END if output_format(item.out) == "JPEG" else _PNG_END
    if size < len(end):
        return False
    with open(target, "rb") as fh:
        fh.seek(-len(end), os.SEEK_END)
        return fh.read() == end


def remove_partial_files(root: str) -> int:
    """Delete the temporary ``.<name>.<random>.part`` files an interrupted build left under ``root``
    (originals copied atomically by an older augbal, or any other ``atomic_write`` of the build)."""
    removed = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".part"):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


_WHOLE_COPY = 16 << 20  # originals up to this size are copied through memory in one read (larger: shutil)


def copy_original(item: Item, root: str, *, link: bool) -> None:
    """Copy (or hard-link) an original to ``root/item.out`` unchanged, in place like ``_write_bytes``
    (a copy cut short has another size than its source: ``is_done`` tells)."""
    target = os.path.join(root, item.out)
    if link:
        _folder_for(target)
        try:
            if os.path.lexists(target):
                os.remove(target)
            os.link(item.source, target)  # a link is whole or absent
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    with open(item.source, "rb") as fh:  # small files (most images) in one read and one write: half
        data = fh.read() if os.fstat(fh.fileno()).st_size <= _WHOLE_COPY else None  # shutil's time
    if data is not None:
        _write_bytes(target, data)
    else:
        _written(target, lambda: shutil.copyfile(item.source, target))


def _augment_chunk(items: Sequence[Item], root: str, spec: Any, size: int | None, link: bool = False) -> int:
    """Worker task: write ``items``: augmented copies (grouped by source, decoded once each) and
    any originals among them (copied, or hard-linked with ``link``). Returns the augmented copies written.

    Raises:
        BuildTaskError: naming the output and the source that failed (its reason attached).
    """
    from augbal.data import load_rgb

    image, loaded = None, None
    spec_key = repr(spec)  # once per chunk, not per item
    augmented = 0
    for item in items:
        try:
            if item.repeat == 0:
                copy_original(item, root, link=link)
                continue
            key = (spec_key, size, item.jpeg_quality)
            augmenter = _WORKER_CACHE.get(key)
            if augmenter is None:
                augmenter = _WORKER_CACHE[key] = Augmenter(spec, size=size, jpeg_quality=item.jpeg_quality or 95)
            if loaded != item.source:
                image, loaded = load_rgb(item.source, max_pixels=None, formats=None), item.source
            data = augmenter.encode(image, label=item.label, source_hash=item.source_hash, repeat=item.repeat,
                                    fmt=output_format(item.out))
            _write_bytes(os.path.join(root, item.out), data)
            augmented += 1
        except Exception as exc:
            raise BuildTaskError(item.out, item.source, _reason(exc),
                                 exc.errno if isinstance(exc, OSError) else None) from exc
    return augmented


_WORKER_CACHE: dict[tuple[str, int | None, int | None], Augmenter] = {}


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """Consecutive lists of ``size`` items (the last may be shorter), drawn lazily from ``items``."""
    stream = iter(items)
    while chunk := list(islice(stream, size)):
        yield chunk


def pending_items(
    items: Iterable[Item], root: str, *, link: bool, resume: bool, step: Callable[[int], None],
    copy_originals: bool = True,
) -> Iterator[Item]:
    """Copy the originals under ``root`` and yield the augmented items still to write, lazily.

    With ``resume``, temporary files an interrupted build left are removed first and items
    already complete (``is_done``) are kept and skipped. ``step(1)`` counts each item done
    here. With ``copy_originals=False`` the originals still to copy are yielded too (for
    ``_augment_chunk`` to copy in a worker). Nothing is collected: executors draw from this
    as they submit work.
    """
    if resume:
        remove_partial_files(root)
    for item in _interleaved(items):
        if resume and is_done(item, root):
            step(1)
        elif item.repeat == 0 and copy_originals:
            try:
                copy_original(item, root, link=link)
            except Exception as exc:  # named as a worker's failure is: the file, its source, why
                raise BuildTaskError(item.out, item.source, _reason(exc),
                                     exc.errno if isinstance(exc, OSError) else None) from exc
            step(1)
        else:
            yield item


#: What the fork server imports once, so that each worker forks from a process that has
#: torch, albumentations and the policies loaded (importing them took a worker seconds) and
#: warmed (``_warm`` runs each albumentations policy once: a first call cost 0.5 s of CPU).
_PRELOAD = ["augbal.build._execute", "augbal.data", "augbal.augment", "augbal.build._warm"]


def _context() -> Any:
    """The start method of worker processes: a fork server preloading ``_PRELOAD`` (spawn where none)."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def prestart_workers() -> None:
    """Start the fork server now (it imports ``_PRELOAD`` while the caller scans and plans).

    Called by ``build_dataset`` before it scans SOURCE, when it will run local workers;
    the first worker then forks from a loaded process instead of importing torch itself.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        _context()
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _interleaved(items: Iterable[Item]) -> Iterator[Item]:
    """``items`` with the originals spread evenly among the augmented copies (same items, another order).

    A plan lists every original before the first copy; executed in that order, the main
    process would copy all originals while the workers wait. Interleaved, it copies a few
    between two chunks it hands out, while the workers augment.
    """
    items = list(items)
    originals = [item for item in items if item.repeat == 0]
    copies = [item for item in items if item.repeat > 0]
    if not copies:
        yield from originals
        return
    per_copy = len(originals) / len(copies)
    given = 0
    for i, item in enumerate(copies):
        upto = int((i + 1) * per_copy)
        yield from originals[given:upto]
        given = upto
        yield item
    yield from originals[given:]


def _start_workers(pool: ProcessPoolExecutor, grace: float = 0.2) -> threading.Event:
    """Start ``pool``'s processes on a thread; the event is set once they run (or starting them failed).

    A pool forks its workers from the fork server at its first ``submit``, which blocks until
    the server has loaded ``_PRELOAD`` (about 2 s of CPU: albumentations imports torch). The
    server starts while SOURCE is scanned, so for a large SOURCE it is ready by now; for a
    small one, ``run_local`` writes chunks itself instead of waiting. Waits up to ``grace``
    seconds here, so that a server already loaded is not raced by this process's own first
    chunk (which pays albumentations' first calls).
    """
    started = threading.Event()

    def start() -> None:
        try:
            pool.submit(int).result()
        except BaseException:  # noqa: BLE001 - a broken pool fails the first chunk's submit or result
            pass
        finally:
            started.set()

    try:
        threading.Thread(target=start, name="augbal-start-workers", daemon=True).start()
    except RuntimeError:  # no thread to spare (a process at its thread limit): the first submit starts them
        started.set()
    started.wait(grace)
    return started


def run_local(
    items: Sequence[Item],
    root: str,
    *,
    spec: Any,
    size: int | None,
    link: bool,
    workers: int,
    resume: bool = False,
    advance: Callable[[int], None] | None = None,
) -> int:
    """Write every item of a plan under ``root``: originals here, augmented copies in ``workers`` processes.

    Items go to the workers in chunks of ``chunk_size(len(items), workers)``; at most ``2 * workers`` chunks are in flight (a bounded queue), so memory does not grow
    with the number of images. Every output depends only on its item, so the files are the
    same for any ``workers``. With ``workers > 1`` the worker processes copy the originals
    too, so the main process (on as many cores as workers) only hands out chunks, once the
    workers run: until then (a fork server still loading, see ``_start_workers``) it writes
    the chunks itself. With
    ``resume``, items already complete under ``root`` (see ``is_done``) are kept and not
    redone. ``advance(n)`` is called as ``n`` more items are done (kept ones included).
    Returns the number of augmented copies written by this call.
    """
    step = advance or (lambda n: None)
    pending = pending_items(items, root, link=link, resume=resume, step=step, copy_originals=workers <= 1)
    chunks = _chunks(pending, chunk_size(len(items), workers))
    head = list(islice(chunks, 2))
    done = 0

    def write_here(chunk: list[Item]) -> None:
        nonlocal done
        done += _augment_chunk(chunk, root, spec, size, link)
        step(len(chunk))

    if workers <= 1 or len(head) < 2:  # one chunk at most: no pool to start
        for chunk in chain(head, chunks):
            write_here(chunk)
        return done
    in_flight: dict[Future[int], list[Item]] = {}

    def collect(futures: Iterable[Future[int]]) -> None:
        nonlocal done
        for future in futures:
            chunk = in_flight.pop(future)
            try:
                n = future.result()
            except (BuildTaskError, BrokenProcessPool) as exc:
                raise chunk_failed(chunk, exc) from exc
            done += n
            step(len(chunk))

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    try:
        started = _start_workers(pool)
        for chunk in chain(head, chunks):
            if not started.is_set():  # the fork server is still loading: write this chunk here meanwhile
                write_here(chunk)
                continue
            if len(in_flight) >= 2 * workers:  # bounded: at most 2 * workers chunks in flight
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                collect(finished)
            in_flight[pool.submit(_augment_chunk, chunk, root, spec, size, link)] = chunk
        collect(list(in_flight))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # drop queued chunks; running ones finish their files
        raise
    pool.shutdown(wait=True)
    return done


