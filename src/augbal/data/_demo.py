"""The small embedded demo image set (840 CIFAR-10 images, deer/dog/cat, 10:1 skew)."""

from __future__ import annotations

import os
import zipfile
import zlib
from importlib import resources
from pathlib import Path

from .._atomic import atomic_write_bytes

DEMO_COUNTS = {"deer": 600, "dog": 180, "cat": 60}


def demo_dataset(dest: str | os.PathLike[str]) -> Path:
    """Write the embedded demo set to ``dest`` as ``dest/<class>/<file>.jpg`` and return ``dest``.

    The set holds 840 CIFAR-10 training images (Krizhevsky, 2009), 32x32 JPEG:
    deer 600, dog 180, cat 60. Files already present with the same content are left as
    they are, so calling it twice is cheap.

    Example:
        >>> import tempfile
        >>> root = demo_dataset(tempfile.mkdtemp())
        >>> sorted(p.name for p in root.iterdir())
        ['cat', 'deer', 'dog']
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    archive = resources.files("augbal") / "_resources" / "demo_images.zip"
    with archive.open("rb") as fh, zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            target = root / info.filename
            if (
                target.is_file()
                and target.stat().st_size == info.file_size
                and zlib.crc32(target.read_bytes()) == info.CRC
            ):
                continue
            atomic_write_bytes(target, zf.read(info), fsync=False)
    return root
