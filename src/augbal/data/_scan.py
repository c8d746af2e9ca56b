"""Scan an image folder into an ImageIndex."""

from __future__ import annotations

import hashlib
import io
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ._index import ImageIndex, Problem

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


def scan(source: str | os.PathLike[str], *, workers: int | None = None) -> ImageIndex:
    """Index an image-folder tree ``source/<class>/**/<image>``.

    Each file is read once: its bytes are hashed (BLAKE2b-128) and its header is
    parsed for size and mode. Hidden files and folders are skipped; files that are
    not images or cannot be read become ``problems``, never samples. The result is
    sorted by class then path, so it does not depend on the filesystem's order.

    Example:
        >>> import tempfile
        >>> from augbal.data import demo_dataset
        >>> index = scan(demo_dataset(tempfile.mkdtemp()))
        >>> dict(zip(index.classes, index.class_counts().tolist()))
        {'cat': 60, 'deer': 600, 'dog': 180}
    """
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"scan needs an image folder (root/<class>/<image>); no such folder: {root}")
    return _scan_folder(root, workers=workers or min(32, (os.cpu_count() or 1) * 4))


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__")


def _scan_folder(root: Path, *, workers: int) -> ImageIndex:
    class_dirs = sorted(
        (entry for entry in os.scandir(root) if entry.is_dir() and not _is_hidden(entry.name)),
        key=lambda e: unicodedata.normalize("NFC", e.name),
    )
    classes = [unicodedata.normalize("NFC", e.name) for e in class_dirs]
    candidates: list[tuple[str, int]] = []
    problems: list[Problem] = []
    skipped_hidden = 0
    for label, entry in enumerate(class_dirs):
        for dirpath, dirnames, filenames in os.walk(entry.path):
            skipped_hidden += sum(_is_hidden(d) for d in dirnames)
            dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if _is_hidden(name):
                    skipped_hidden += 1
                elif os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                    problems.append(Problem(path, "not-image", "not an image file (extension not allowed)"))
                else:
                    candidates.append((path, label))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_probe, (path for path, _ in candidates), chunksize=64))

    keep = [i for i, r in enumerate(results) if isinstance(r, tuple)]
    problems.extend(r for r in results if isinstance(r, Problem))
    probes = [results[i] for i in keep]
    return ImageIndex.from_arrays(
        [candidates[i][0] for i in keep],
        [candidates[i][1] for i in keep],
        classes,
        nbytes=[p[0] for p in probes],
        hashes=[p[1] for p in probes],
        widths=[p[2] for p in probes],
        heights=[p[3] for p in probes],
        modes=[p[4] for p in probes],
        root=str(root),
        problems=sorted(problems, key=lambda p: p.path),
        meta={"skipped_hidden": skipped_hidden},
    )


def _probe(path: str) -> tuple[int, str, int, int, str] | Problem:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            mode = im.mode
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return Problem(path, "unreadable", f"cannot read image: {exc}")
    return len(data), digest, width, height, mode
