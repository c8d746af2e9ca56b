"""Atomic file writes: write a unique temporary file beside the target, then ``os.replace`` it.

A reader sees the old file or the new one, never half of either; two writers of the
same target each write their own temporary file, so the target ends as one complete
version (the last to be replaced), never a mixture. No torch import here.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Linux reports it in /proc; elsewhere ``os.umask`` must set it to read it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _mode_for(target: Path) -> int:
    """Permission bits for the new version of ``target``: its own if it exists, else a new file's."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows a folder to be fsynced."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:  # Windows: folders cannot be opened for fsync
        return
    try:
        fd = os.open(folder, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    fsync: bool = True,
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on success move it onto ``path``.

    The temporary file is ``.<name>.<random>.part`` in the target's folder (created
    if missing), so ``os.replace`` is a rename on one file system. On leaving the
    block the file is flushed, fsynced (``fsync=True``), given the permission bits of
    the file it replaces (a new file gets ``0o666 & ~umask``), and moved into place;
    the folder is then fsynced where supported. If the block raises, the temporary
    file is removed and ``path`` is untouched. A ``path`` that is a symlink stays one:
    the file it points to is the one replaced.

    Args:
        path: the file to (re)place.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding, errors, newline: as for ``open`` in text mode (``encoding``
            defaults to UTF-8).
        fsync: flush the data to disk before the rename.

    Raises:
        ValueError: ``mode`` is not ``"w"`` or ``"wb"``.

    Example:
        >>> import tempfile, os
        >>> target = os.path.join(tempfile.mkdtemp(), "sub", "a.txt")
        >>> with atomic_write(target) as fh:
        ...     _ = fh.write("hello")
        >>> open(target).read(), os.listdir(os.path.dirname(target))
        ('hello', ['a.txt'])
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb'; got {mode!r}")
    target = Path(path)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:  # name the file the caller asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, os.fspath(target)) from exc
    try:
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", errors=errors, newline=newline)
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(folder)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``); return the path.

    Example:
        >>> import tempfile, os
        >>> p = atomic_write_bytes(os.path.join(tempfile.mkdtemp(), "b.bin"), b"\\x00\\x01")
        >>> p.read_bytes()
        b'\\x00\\x01'
    """
    with atomic_write(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    errors: str | None = None,
    newline: str | None = None,
    fsync: bool = True,
) -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_write``); return the path.

    Example:
        >>> import tempfile, os
        >>> p = atomic_write_text(os.path.join(tempfile.mkdtemp(), "t.txt"), "x\\n")
        >>> p.read_text()
        'x\\n'
    """
    with atomic_write(path, "w", encoding=encoding, errors=errors, newline=newline, fsync=fsync) as fh:
        fh.write(text)
    return Path(path)
