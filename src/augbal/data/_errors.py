"""Typed errors of the data layer: each a ``ValueError`` carrying what it names.

Callers (the CLI, a build worker) catch the type and read the attributes to write
their own message, instead of matching message text. The message itself speaks the
library's vocabulary (keyword arguments).

>>> from augbal.data import EmptyClassError
>>> err = EmptyClassError("data", ["bird"])
>>> isinstance(err, ValueError), err.classes
(True, ('bird',))
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


class NoClassFoldersError(ValueError):
    """An image folder without any class folder (``root/<class>/<image>`` expected).

    Attributes:
        root: the folder scanned.
        unnamed: folders that would be classes but for their names (not valid UTF-8), shown
            as their bytes (``b'b\\xe9te'``).
    """

    def __init__(self, root: str | os.PathLike[str], unnamed: Iterable[str] = ()) -> None:
        self.root = os.fspath(root)
        self.unnamed = tuple(unnamed)
        super().__init__(f"no class folders found in {self.root} (expected root/<class>/<image>){self.note}")

    @property
    def note(self) -> str:
        """``"; folders whose names are not valid UTF-8 (rename them): ..."`` when there are any."""
        if not self.unnamed:
            return ""
        return f"; folders whose names are not valid UTF-8 (rename them): {', '.join(self.unnamed)}"

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.root, self.unnamed), self.__dict__


class EmptyClassError(ValueError):
    """Classes without any usable image, where every class needs one.

    Attributes:
        root: the folder or manifest scanned.
        classes: the empty classes' names, in label order.
    """

    def __init__(self, root: str | os.PathLike[str], classes: Iterable[str]) -> None:
        self.root = os.fspath(root)
        self.classes = tuple(classes)
        super().__init__(
            f"every class needs at least one image (pass allow_empty=True to keep empty classes); "
            f"empty classes in {self.root}: {', '.join(self.classes)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.root, self.classes), self.__dict__


class DuplicateClassError(ValueError):
    """Class names given more than once (after NFC normalisation).

    Attributes:
        duplicates: each repeated name once, in order of first repeat.
        classes: every name as given (normalised).
    """

    def __init__(self, classes: Iterable[str]) -> None:
        self.classes = tuple(classes)
        seen: set[str] = set()
        repeated: list[str] = []
        for name in self.classes:
            if name in seen and name not in repeated:
                repeated.append(name)
            seen.add(name)
        self.duplicates = tuple(repeated)
        super().__init__(f"classes must be distinct names; got {list(self.classes)}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.classes,), self.__dict__


class UnknownFormatError(ValueError):
    """Image format names that Pillow cannot open (a typo would otherwise refuse every file).

    Attributes:
        unknown: the unknown names (upper-cased).
        formats: every name as given.
    """

    def __init__(self, unknown: Iterable[str], formats: Iterable[str]) -> None:
        self.unknown = tuple(unknown)
        self.formats = tuple(formats)
        super().__init__(
            f"formats must be image formats Pillow can open (JPEG, PNG, BMP, GIF, TIFF, WEBP, ...); "
            f"unknown: {', '.join(self.unknown)}; got {list(self.formats)}"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.unknown, self.formats), self.__dict__


class ScanSourceError(ValueError):
    """A path that is neither an image folder nor a ``.csv`` / ``.jsonl`` manifest.

    Attributes:
        path: the path given.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(f"scan needs an image folder or a .csv/.jsonl manifest; got {self.path}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.path,), self.__dict__


class EmptyManifestError(ValueError):
    """A manifest with a header (or nothing) but no rows: like a folder without class folders.

    A manifest whose rows all fail (missing files, bad labels) is not empty: that is a
    ``ValueError`` listing the bad rows.

    Attributes:
        path: the manifest.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        super().__init__(f"manifest {self.path} lists no images (no rows)")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.path,), self.__dict__


__all__ = [
    "DuplicateClassError",
    "EmptyClassError",
    "EmptyManifestError",
    "NoClassFoldersError",
    "ScanSourceError",
    "UnknownFormatError",
]
