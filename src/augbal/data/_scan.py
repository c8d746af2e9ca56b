"""Scan an image folder or a manifest into an ImageIndex."""

from __future__ import annotations

import errno
import hashlib
import io
import multiprocessing
import os
import sys
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._errors import DuplicateClassError, EmptyClassError, EmptyManifestError, NoClassFoldersError, ScanSourceError
from augbal._validation import check_int

from ._duplicates import DEFAULT_MAX_DISTANCE, find_duplicates, merge_groups, phash_hex
from ._index import ImageIndex, Problem
from ._io import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS, ImageLoadError, check_formats, decode, open_image, plain_jpeg
from ._manifest import MANIFEST_SUFFIXES, parse_manifest
from ._names import is_utf8, printable, printable_problem, shown

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_CHUNK = 128
_MAX_CHUNK = 4096


class FewImagesWarning(UserWarning):
    """Some classes hold only 1 or 2 images (splits keep such images in train)."""


def scan(
    source: str | os.PathLike[str],
    *,
    classes: Iterable[str] | None = None,
    workers: int | None = None,
    verify: bool = True,
    near_duplicates: bool = False,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    allow_empty: bool = False,
    follow_external_symlinks: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
    progress: Callable[[int, int], None] | None = None,
) -> ImageIndex:
    """Index an image-folder tree ``source/<class>/**/<image>`` or a CSV/JSONL manifest.

    Every file is read once, by ``workers`` readers: its bytes are hashed (BLAKE2b-128), its header
    parsed (format allow-list, ``max_pixels`` bomb guard) and, with ``verify``, the
    image fully decoded: a header parse does not see a truncated JPEG, a decode does
    (about 0.1 ms per CIFAR-sized JPEG; ``verify=False`` skips it for large photos,
    and truncated files then surface only when loaded). Pillow's global
    ``ImageFile.LOAD_TRUNCATED_IMAGES = True``, if some code sets it, hides truncation.
    Files that fail become ``problems`` with a reason, never samples, and the rest
    goes on; hidden entries (``.*``, ``__MACOSX``, ``__pycache__``) and non-image
    files are counted there too, as are a manifest's bad rows (missing files,
    folders, malformed rows, unknown labels: ``manifest.csv:LINE: PATH: reason``).
    A file or folder name that is not valid UTF-8 (Linux bytes such as Latin-1
    ``b'b\\xe9te'``) is a ``"name"`` problem, its path shown escaped (``b\\xe9te/0.jpg``);
    so is each file of such a class folder, which is then no class; a manifest row
    whose path or label is not valid UTF-8 is a ``"bad-row"``. Samples are sorted by
    class then NFC path, so the index does not depend on the listing order or
    ``workers``; class names are NFC-normalised.

    ``index.groups`` joins byte-identical files (and, with ``near_duplicates``,
    perceptually alike ones, see ``find_duplicates``) and, for a manifest, rows that
    share a ``group`` value.

    Args:
        source: an image folder, or a ``.csv`` / ``.jsonl`` manifest of
            ``path,label[,group]`` rows (relative paths are taken from the manifest's folder).
        classes: class names in label order. Classes without images are then empty
            classes; a manifest row with a label outside them is an ``"unknown-class"`` problem.
        workers: reader processes (default ``min(8, cpu_count)``). On Linux they are
            forked processes: the header parse is Python code that holds the GIL, so
            threads run slower than one reader (see benchmarks/RESULTS.md); elsewhere,
            inside a daemonic process such as a DataLoader worker, or when the calling
            process runs other threads (forking it could hang the readers), threads.
        verify: fully decode each image to find truncated and corrupt files.
        near_duplicates: also compute perceptual hashes (about 0.25 ms per image).
        max_distance: Hamming distance for near duplicates (of 64 bits).
        allow_empty: keep empty classes (stable label indices) instead of raising.
        follow_external_symlinks: accept symlinks that point outside ``source``.
        max_pixels: images with more pixels are refused (``"too-large"``).
        formats: allowed Pillow formats (``None``: all). Files are opened when their
            extension is in ``IMAGE_EXTENSIONS`` or registered by Pillow for an allowed
            format; other files are ``"not-image"`` problems.
        progress: called as ``progress(done, total)`` (files read so far, files to
            read) from the calling thread, e.g. to drive a progress bar.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: no class folders; empty classes (named) without ``allow_empty``;
            a manifest without usable rows or with a header lacking a path or label
            column; a format name Pillow does not know; a ``source`` path or a class
            name that is not valid UTF-8.

    Warns:
        FewImagesWarning: classes with only 1 or 2 images (named).
        LabelCaseWarning: manifest labels that differ only by case (kept distinct).

    Example:
        >>> import tempfile
        >>> from augbal.data import demo_dataset
        >>> index = scan(demo_dataset(tempfile.mkdtemp()))
        >>> dict(zip(index.classes, index.class_counts().tolist()))
        {'cat': 60, 'deer': 600, 'dog': 180}
    """
    root = Path(source)
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of class names, not one string; got {classes!r}")
    wanted = None if classes is None else tuple(unicodedata.normalize("NFC", str(c)) for c in classes)
    if wanted is not None and len(set(wanted)) != len(wanted):
        raise DuplicateClassError(wanted)
    if wanted is not None and not all(is_utf8(name) for name in wanted):
        raise ValueError(f"class names must be valid UTF-8; got {list(wanted)}")
    if not is_utf8(str(root)):
        # every path under it would be refused (and no UTF-8 report could name them)
        raise ValueError(
            f"scan needs a source path that is valid UTF-8 (rename it, or scan it by a relative path); "
            f"got {shown(str(root))}"
        )
    check_int("workers", workers, low=1, allow_none=True)
    check_int("max_distance", max_distance, low=0, high=63)
    check_int("max_pixels", max_pixels, low=1, allow_none=True)
    allowed = check_formats(formats)
    formats = None if allowed is None else tuple(allowed)
    if root.is_file() and root.suffix.lower() in MANIFEST_SUFFIXES:
        candidates, class_names, problems, user_groups = _list_manifest(root, wanted)
    elif root.is_dir():
        extensions = _extensions(formats)
        candidates, class_names, problems = _list_folder(root, wanted, follow_external_symlinks, extensions)
        user_groups = None
    elif root.exists():
        raise ScanSourceError(root)
    else:
        raise FileNotFoundError(f"scan needs an image folder or a manifest; no such file or folder: {root}")
    options = dict(verify=verify, phash=near_duplicates, max_pixels=max_pixels, formats=formats)
    return _build(
        root,
        candidates,
        class_names,
        problems,
        user_groups,
        probe_options=options,
        progress=progress,
        workers=workers or min(8, os.cpu_count() or 1),
        near_duplicates=near_duplicates,
        max_distance=max_distance,
        allow_empty=allow_empty,
    )


def _build(
    root,
    candidates,
    class_names,
    problems,
    user_groups,
    *,
    probe_options,
    progress,
    workers,
    near_duplicates,
    max_distance,
    allow_empty,
) -> ImageIndex:
    paths = [c[0] for c in candidates]
    # chunks big enough to amortise inter-process transfer, small enough for progress
    size = min(_MAX_CHUNK, max(_CHUNK, len(paths) // (4 * workers) + 1))
    chunks = [paths[i : i + size] for i in range(0, len(paths), size)]
    results: list = []
    if progress is not None:
        progress(0, len(paths))
    with _executor(workers if len(chunks) > 1 else 1) as pool:
        for part in pool.map(_probe_chunk, chunks, [probe_options] * len(chunks)):
            results.extend(part)
            if progress is not None:
                progress(len(results), len(paths))

    keep = [i for i, r in enumerate(results) if isinstance(r, tuple)]
    # printable: a report (problems.csv, summary.json) is UTF-8 and must not fail on a name
    problems = [printable_problem(p) for p in list(problems) + [r for r in results if isinstance(r, Problem)]]
    probes = [results[i] for i in keep]
    labels = [candidates[i][1] for i in keep]
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
    empty = [name for name, n in zip(class_names, counts.tolist()) if n == 0]
    if empty and not allow_empty:
        raise EmptyClassError(root, empty)
    few = [f"{name} ({n})" for name, n in zip(class_names, counts.tolist()) if 0 < n < 3]
    if few:
        warnings.warn(FewImagesWarning(f"classes with only 1 or 2 images in {root}: {', '.join(few)}"), stacklevel=3)

    index = ImageIndex.from_arrays(
        [paths[i] for i in keep],
        labels,
        class_names,
        nbytes=[p[0] for p in probes],
        hashes=[p[1] for p in probes],
        widths=[p[2] for p in probes],
        heights=[p[3] for p in probes],
        modes=[p[4] for p in probes],
        phashes=[p[5] for p in probes],
        root=str(root),
        problems=sorted(problems, key=lambda p: (p.path, p.kind)),
    )
    report = find_duplicates(index, near=near_duplicates, max_distance=max_distance)
    groups = report.groups
    if user_groups is not None:
        kept = np.asarray([user_groups[i] for i in keep], dtype=object)
        _, ids = np.unique(np.where(kept == None, "", kept).astype(str), return_inverse=True)  # noqa: E711
        ids = np.where(kept == None, -1, ids)  # noqa: E711
        groups = merge_groups(groups, ids.astype(np.int64))
    meta = {
        "source": "manifest" if user_groups is not None else "folder",
        "verified": bool(probe_options["verify"]),
        "near_duplicates": bool(near_duplicates),
        "duplicates": report.summary(),
        "skipped_hidden": sum(p.kind == "hidden" for p in problems),
    }
    return replace(index, groups=groups, meta=meta)


def _executor(workers: int):
    """Forked processes on Linux, threads elsewhere, or serial.

    Forking is safe only while this process runs one thread: a lock that another
    thread holds at the fork (a stream's buffer lock, a progress bar's console lock)
    stays locked forever in the child, which then hangs, and Python 3.12+ warns about
    such forks. So a multi-threaded caller, or a daemonic process such as a DataLoader
    worker (which cannot have children), gets threads.
    """
    if workers <= 1:
        return _Serial()
    if (
        sys.platform == "linux"
        and not multiprocessing.current_process().daemon
        and threading.active_count() == 1
    ):
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(max_workers=workers)


class _Serial:
    """A stand-in for a one-thread executor: ``map`` runs in the calling thread, lazily."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, *iterables):
        return map(fn, *iterables)


def _probe_chunk(paths: list[str], options: dict) -> list:
    return [_probe(path, **options) for path in paths]


def _probe(path: str, *, verify: bool, phash: bool, max_pixels, formats) -> tuple | Problem:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return Problem(path, "unreadable", f"cannot read file: {exc.strerror or exc}")
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        # a plain JPEG decodes (verified) without Pillow's header parse; everything else, the full path
        plain = plain_jpeg(data, max_pixels=max_pixels, formats=formats) if verify or phash else None
        if plain is None:
            plain_or_full = open_image(io.BytesIO(data), path, max_pixels=max_pixels, formats=formats)
        else:
            plain_or_full = plain
        with plain_or_full as im:
            width, height = im.size
            mode = im.mode
            if plain is None and (verify or phash):
                decode(im, path)
            phex = phash_hex(im) if phash else ""
    except ImageLoadError as exc:
        return Problem(path, exc.kind, exc.reason)
    except Exception as exc:  # noqa: BLE001 - decoding failures are ImageLoadErrors; this catches phash's
        return Problem(path, "corrupt", f"cannot read image: {type(exc).__name__}: {exc}")
    return len(data), digest, width, height, mode, phex


#: Folder names that archivers and tools leave behind; skipped like dot-files.
_JUNK_NAMES = frozenset({"__MACOSX", "__pycache__"})


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in _JUNK_NAMES


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _extensions(formats: tuple[str, ...] | None) -> frozenset[str]:
    """File extensions worth opening: the default ones plus those of any allowed format."""
    from PIL import Image

    allowed = None if formats is None else {f.upper() for f in formats}
    extra = {ext.lower() for ext, fmt in Image.registered_extensions().items() if allowed is None or fmt in allowed}
    return IMAGE_EXTENSIONS | extra


def _list_folder(root: Path, wanted, follow_external: bool, extensions: frozenset[str]):
    """Walk the tree (no I/O on file contents): candidates, class names, problems."""
    root_real = os.path.realpath(root)
    problems: list[Problem] = []
    class_dirs: dict[str, str] = {}
    unnamed: list[str] = []  # class folders whose names are not valid UTF-8
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: _nfc(e.name))
    for entry in entries:
        if _is_hidden(entry.name):
            problems.append(Problem(entry.path, "hidden", "hidden entry skipped"))
            continue
        refused = _check_link(entry, root_real, follow_external)
        if refused:
            problems.append(refused)
            continue
        if entry.is_dir():
            name = _nfc(entry.name)
            if not is_utf8(name):
                unnamed.append(entry.path)
                continue
            if name in class_dirs:
                problems.append(Problem(entry.path, "duplicate-class", f"another folder is also class {name!r} (NFC)"))
                continue
            class_dirs[name] = entry.path
        else:
            problems.append(Problem(entry.path, "not-in-class", "file at the top level is not in a class folder"))

    if wanted is None:
        class_names = tuple(sorted(class_dirs))
        if not class_names:
            raise NoClassFoldersError(root, [shown(os.path.basename(f)) for f in unnamed])
    else:
        class_names = wanted
        for name in sorted(set(class_dirs) - set(wanted)):
            problems.append(Problem(class_dirs[name], "not-in-class", f"folder {name!r} is not one of the classes"))

    candidates: list[tuple[str, int, str]] = []
    root_key = _dir_key(root_real)
    walk = dict(root=str(root), root_real=root_real, follow_external=follow_external, extensions=extensions)
    for label, name in enumerate(class_names):
        if name not in class_dirs:
            continue
        found: list[tuple[str, str]] = []
        _walk(class_dirs[name], found=found, problems=problems, active={root_key, _dir_key(class_dirs[name])}, **walk)
        candidates.extend((path, label, key) for key, path in sorted(found))
    for folder in unnamed:  # each image in it becomes a "name" problem: nothing is found
        _walk(folder, found=[], problems=problems, active={root_key, _dir_key(folder)}, **walk)
    return candidates, class_names, problems


def _dir_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _walk(
    folder: str,
    *,
    root: str,
    root_real: str,
    follow_external: bool,
    extensions: frozenset[str],
    found: list[tuple[str, str]],
    problems: list[Problem],
    active: set[tuple[int, int]],
) -> None:
    """Depth-first walk of a class folder; ``active`` holds the folders on the current path.

    Images go to ``found`` as ``(NFC path, path)``, unless a name on their path under
    ``root`` is not valid UTF-8 (a ``"name"`` problem); everything else to ``problems``.
    """
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: _nfc(e.name))
    except OSError as exc:
        problems.append(Problem(folder, "unreadable", f"cannot list folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        path = entry.path
        if _is_hidden(entry.name):
            problems.append(Problem(path, "hidden", "hidden entry skipped"))
            continue
        refused = _check_link(entry, root_real, follow_external)
        if refused:
            problems.append(refused)
            continue
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()  # False for FIFOs, sockets, devices
        except OSError as exc:
            problems.append(Problem(path, "unreadable", f"cannot stat: {exc.strerror or exc}"))
            continue
        if is_dir:
            key = _dir_key(path)
            if key in active:
                problems.append(Problem(path, "symlink-loop", "symlink loops back to a parent folder; not followed"))
                continue
            _walk(
                path,
                root=root,
                root_real=root_real,
                follow_external=follow_external,
                extensions=extensions,
                found=found,
                problems=problems,
                active=active | {key},
            )
        elif not is_file:
            problems.append(Problem(path, "not-image", "not a regular file"))
        elif os.path.splitext(entry.name)[1].lower() not in extensions:
            problems.append(Problem(path, "not-image", "not an image file (extension not allowed)"))
        elif not is_utf8(path):
            problems.append(_name_problem(path, root))
        else:
            found.append((_nfc(path), path))


def _name_problem(path: str, root: str) -> Problem:
    """The ``"name"`` problem of an image whose path under ``root`` has a name that is not valid UTF-8.

    >>> p = _name_problem("data/b\\udce9te/0.jpg", "data")
    >>> print(p.path, p.kind, p.reason, sep=" | ")
    data/b\\xe9te/0.jpg | name | class folder name must be valid UTF-8 (rename it); got b'b\\xe9te'
    """
    parts = os.path.relpath(path, root).split(os.sep)
    at = next((i for i, part in enumerate(parts) if not is_utf8(part)), len(parts) - 1)
    what = "file" if at == len(parts) - 1 else "class folder" if at == 0 else "folder"
    return Problem(printable(path), "name", f"{what} name must be valid UTF-8 (rename it); got {shown(parts[at])}")


def _check_link(entry: os.DirEntry, root_real: str, follow_external: bool) -> Problem | None:
    if not entry.is_symlink():
        return None
    path = entry.path
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Problem(path, "symlink-loop", "symlink loop; not followed")
        return Problem(path, "broken-symlink", "symlink target does not exist")
    if not follow_external and os.path.commonpath([root_real, target]) != root_real:
        return Problem(
            path,
            "external-symlink",
            f"symlink leaves the scanned folder (-> {target}); not followed (external symlinks are refused by default)",
        )
    return None


def _list_manifest(manifest: Path, wanted):
    """Good rows as candidates; bad rows (missing files, bad fields, unknown labels) as problems."""
    rows, problems = parse_manifest(manifest, classes=wanted)
    if not rows and not problems:
        raise EmptyManifestError(manifest)
    if not rows and wanted is None:
        n = len(problems)
        found = f" ({n} bad row{'s' * (n != 1)}: {problems[0].reason}{'; ...' if n > 1 else ''})" if problems else ""
        raise ValueError(f"manifest {manifest} lists no images{found}")
    class_names = wanted if wanted is not None else tuple(sorted({row.label for row in rows}))
    label_of = {name: i for i, name in enumerate(class_names)}
    ordered = sorted(rows, key=lambda r: (label_of[r.label], _nfc(r.path), r.line))
    candidates = [(row.path, label_of[row.label], _nfc(row.path)) for row in ordered]
    user_groups = [row.group for row in ordered]
    return candidates, class_names, problems, user_groups
