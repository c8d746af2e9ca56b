"""ImageIndex: the table of samples every augbal stage reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Problem:
    """One file that is not a usable sample, and why.

    ``kind`` is a short machine-readable tag; ``reason`` is the human sentence shown
    in reports. Kinds set by ``scan``: ``"corrupt"``, ``"truncated"``, ``"format"``
    (not an allowed image format), ``"too-large"`` (decompression bomb), ``"unreadable"``
    (I/O error), ``"not-image"`` (extension not an image's), ``"hidden"`` (``.DS_Store``,
    ``.ipynb_checkpoints``, ``__MACOSX``, ...), ``"not-in-class"`` (a file at the top
    level, or a folder outside ``classes=``), ``"duplicate-class"`` (two folders with
    the same NFC name), ``"external-symlink"``, ``"broken-symlink"``, ``"symlink-loop"``,
    ``"name"`` (a file or folder name that is not valid UTF-8; ``path`` then shows its
    bytes escaped, ``b\\xe9te/0.jpg``, as do all paths and reasons ``scan`` reports);
    for a manifest's rows ``"missing"``, ``"not-a-file"``, ``"bad-row"``, ``"unknown-class"``,
    ``"duplicate-row"`` (``MANIFEST_PROBLEM_KINDS``).
    """

    path: str
    kind: str
    reason: str


@dataclass(frozen=True, eq=False)
class ImageIndex:
    """Per-sample fields of an image collection, held in numpy arrays.

    Every per-sample field is a numpy array of length ``N`` (fixed-width unicode for
    strings), so DataLoader workers share it without copy-on-read of Python objects.

    Attributes:
        paths: file paths, ``<U`` array.
        labels: integer class indices into ``classes``, ``int64``.
        classes: class names; ``classes[labels[i]]`` is sample ``i``'s class.
        nbytes: file sizes in bytes, ``int64``.
        hashes: content hashes (hex digests), ``<U`` array; empty strings when not computed.
        widths, heights: image size in pixels, ``int32`` (``-1`` when unknown).
        modes: Pillow modes as stored in the file (``"RGB"``, ``"L"``, ``"P"``, ...).
        groups: duplicate-group id per sample (``-1`` when the sample has no duplicate);
            ``scan`` also joins samples sharing a manifest ``group`` into one group.
        phashes: 64-bit perceptual hashes as 16 hex digits, ``<U16`` array; empty
            strings when not computed (``scan(..., near_duplicates=True)`` fills them).
        root: the scanned folder or manifest, when there is one.
        problems: files that were seen but are not samples, with their reasons.

    Example:
        >>> import numpy as np
        >>> index = ImageIndex.from_arrays(["a.jpg", "b.jpg", "c.jpg"], [0, 1, 1], ("cat", "dog"))
        >>> index.class_counts().tolist()
        [1, 2]
        >>> len(index.subset([2]))
        1
    """

    paths: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    nbytes: np.ndarray
    hashes: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    modes: np.ndarray
    groups: np.ndarray
    root: str | None = None
    problems: tuple[Problem, ...] = field(default=())
    meta: dict[str, Any] = field(default_factory=dict)
    phashes: np.ndarray | None = None

    _PER_SAMPLE = ("paths", "labels", "nbytes", "hashes", "widths", "heights", "modes", "groups", "phashes")

    def __post_init__(self) -> None:
        if self.phashes is None:
            object.__setattr__(self, "phashes", np.full(len(self.labels), "", dtype="<U16"))

    @classmethod
    def from_arrays(
        cls,
        paths: Sequence[str],
        labels: Sequence[int],
        classes: Sequence[str],
        *,
        nbytes: Sequence[int] | None = None,
        hashes: Sequence[str] | None = None,
        widths: Sequence[int] | None = None,
        heights: Sequence[int] | None = None,
        modes: Sequence[str] | None = None,
        groups: Sequence[int] | None = None,
        phashes: Sequence[str] | None = None,
        root: str | None = None,
        problems: Sequence[Problem] = (),
        meta: dict[str, Any] | None = None,
    ) -> ImageIndex:
        """Build an index from plain sequences, filling unknown fields with defaults."""
        n = len(paths)
        labels_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
        classes = tuple(str(c) for c in classes)
        if labels_arr.shape[0] != n:
            raise ValueError(f"labels must have one entry per path ({n}); got {labels_arr.shape[0]}")
        if n and (labels_arr.min() < 0 or labels_arr.max() >= len(classes)):
            raise ValueError(
                f"labels must lie in [0, {len(classes)}) for {len(classes)} classes; "
                f"got range [{labels_arr.min()}, {labels_arr.max()}]"
            )

        def column(values, dtype, fill):
            if values is None:
                return np.full(n, fill, dtype=dtype)
            arr = np.asarray(values, dtype=dtype).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"every per-sample field needs {n} entries; got {arr.shape[0]}")
            return arr

        return cls(
            paths=np.asarray(list(paths), dtype=np.str_).reshape(n),
            labels=labels_arr,
            classes=classes,
            nbytes=column(nbytes, np.int64, -1),
            hashes=column(hashes, np.str_, ""),
            widths=column(widths, np.int32, -1),
            heights=column(heights, np.int32, -1),
            modes=column(modes, np.str_, ""),
            groups=column(groups, np.int64, -1),
            phashes=column(phashes, "<U16", ""),
            root=root,
            problems=tuple(problems),
            meta=dict(meta or {}),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def targets(self) -> np.ndarray:
        """Integer labels (the name torchvision datasets use)."""
        return self.labels

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, in ``classes`` order (``int64``)."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def imbalance_ratio(self) -> float:
        """Largest class count over smallest non-empty class count (``inf`` for no samples)."""
        counts = self.class_counts()
        counts = counts[counts > 0]
        return float(counts.max() / counts.min()) if counts.size else float("inf")

    def problem_counts(self) -> dict[str, int]:
        """Number of ``problems`` per kind, sorted by kind."""
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        return dict(sorted(counts.items()))

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageIndex:
        """A new index holding the given samples, in the given order; classes are kept.

        ``indices`` are positions, or a boolean mask of length ``len(self)``
        (``index.subset(index.labels == 0)``).
        """
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask needs one entry per sample ({len(self)}); got shape {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        columns = {name: getattr(self, name)[idx] for name in self._PER_SAMPLE}
        return replace(self, **columns)
