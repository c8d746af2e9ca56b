"""Exact (content hash) and near (perceptual hash) duplicate groups of an ImageIndex."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from augbal._validation import check_int

from ._index import ImageIndex
from ._io import open_image, to_rgb

#: Default largest Hamming distance (of 64 bits) between two near-duplicate perceptual hashes.
DEFAULT_MAX_DISTANCE = 4


@dataclass(frozen=True)
class DuplicateReport:
    """Duplicate groups of an index.

    Attributes:
        groups: group id per sample (``int64``, ``-1`` for a sample without duplicate);
            ids are ``0..n_groups-1``, numbered by each group's first sample.
        kinds: per group, ``"exact"`` (all members byte-identical) or ``"near"``.
        cross_class: per group, whether its members carry more than one label.
    """

    groups: np.ndarray
    kinds: tuple[str, ...]
    cross_class: tuple[bool, ...]

    @property
    def n_groups(self) -> int:
        """Number of duplicate groups."""
        return len(self.kinds)

    @property
    def exact_groups(self) -> int:
        """Groups whose members are all byte-identical."""
        return self.kinds.count("exact")

    @property
    def near_groups(self) -> int:
        """Groups joined (at least partly) by perceptual similarity."""
        return self.kinds.count("near")

    @property
    def cross_class_groups(self) -> int:
        """Groups whose members have different labels (likely label noise)."""
        return sum(self.cross_class)

    @property
    def redundant(self) -> int:
        """Samples beyond the first of each group (what deduplication would drop)."""
        return int((self.groups >= 0).sum()) - self.n_groups

    def members(self, group: int) -> np.ndarray:
        """Sample indices of one group, ascending."""
        return np.flatnonzero(self.groups == group)

    def summary(self) -> dict[str, int]:
        """The counts as a plain dict (for reports and ``ImageIndex.meta``)."""
        return {
            "groups": self.n_groups,
            "exact_groups": self.exact_groups,
            "near_groups": self.near_groups,
            "cross_class_groups": self.cross_class_groups,
            "duplicated_samples": int((self.groups >= 0).sum()),
        }


def find_duplicates(
    index: ImageIndex,
    *,
    near: bool = True,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int | None = None,
) -> DuplicateReport:
    """Group samples that are byte-identical or, with ``near``, perceptually alike.

    Exact duplicates share ``index.hashes``. Near duplicates have 64-bit perceptual
    hashes (``imagehash.phash``) at most ``max_distance`` bits apart; the hashes come
    from ``index.phashes`` when ``scan(..., near_duplicates=True)`` filled them, else
    the files are decoded here (in threads). Groups are connected components, so
    ``a~b`` and ``b~c`` put ``a, b, c`` in one group.

    Example:
        >>> import numpy as np
        >>> index = ImageIndex.from_arrays(["a", "b", "c"], [0, 1, 1], ["x", "y"], hashes=["h1", "h2", "h1"])
        >>> report = find_duplicates(index, near=False)
        >>> report.groups.tolist(), report.kinds, report.cross_class_groups
        ([0, -1, 0], ('exact',), 1)
    """
    check_int("max_distance", max_distance, low=0, high=63)
    n = len(index)
    parent = np.arange(n, dtype=np.int64)
    if n and (index.hashes == "").any():
        raise ValueError("find_duplicates needs content hashes; index.hashes has empty entries (scan fills them)")
    _union_equal(parent, index.hashes)
    if near and n:
        phashes = index.phashes
        if (phashes == "").any():
            phashes = perceptual_hashes(index.paths, workers=workers)
        values = np.array([int(h, 16) if h else 0 for h in phashes.tolist()], dtype=np.uint64)
        valid = phashes != ""
        _union_near(parent, values, valid, max_distance)
    return _report(parent, index.hashes, index.labels)


def perceptual_hashes(paths: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """``imagehash.phash`` of every file as 16-hex-digit strings (``""`` when unreadable)."""
    paths = list(paths.tolist()) if isinstance(paths, np.ndarray) else list(paths)
    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [paths[i : i + 256] for i in range(0, len(paths), 256)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_phash_chunk, chunks))
    return np.asarray([h for part in parts for h in part], dtype="<U16").reshape(len(paths))


def _phash_chunk(paths: list[str]) -> list[str]:
    out = []
    for path in paths:
        try:
            with open(path, "rb") as fh, open_image(io.BytesIO(fh.read()), path, formats=None) as im:
                out.append(phash_hex(im))
        except Exception:  # noqa: BLE001 - unreadable files simply get no perceptual hash
            out.append("")
    return out


#: Modes whose values go above 255: Pillow's ``convert("L")`` (inside phash) clips them.
_DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


def phash_hex(im) -> str:
    """The 64-bit ``imagehash.phash`` of a Pillow image as 16 hex digits.

    16-bit and float images are first scaled to 8 bits as ``load_rgb`` does; clipped at
    255, most of them would become one white image and all hash alike.
    """
    import imagehash
    from PIL import Image

    if im.mode in _DEEP_MODES:
        im = Image.fromarray(to_rgb(im))
    return str(imagehash.phash(im))


def merge_groups(*labelings: np.ndarray) -> np.ndarray:
    """Connected components of several group labelings (``-1`` = no group), renumbered.

    Example:
        >>> merge_groups(np.array([0, 0, -1, -1]), np.array([-1, 5, 5, -1])).tolist()
        [0, 0, 0, -1]
    """
    n = len(labelings[0])
    parent = np.arange(n, dtype=np.int64)
    for groups in labelings:
        keys = np.where(groups >= 0, groups.astype(str), "")
        _union_equal(parent, keys, skip="")
    roots = _roots(parent)
    return _number(roots)


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def _union_equal(parent: np.ndarray, keys: np.ndarray, skip: str | None = None) -> None:
    """Union every run of equal keys (vectorised grouping, Python loop over groups only)."""
    if len(keys) < 2:
        return
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    if skip is not None:
        same &= sorted_keys[1:] != skip
    for k in np.flatnonzero(same).tolist():
        _union(parent, int(order[k]), int(order[k + 1]))


def _union_near(parent: np.ndarray, values: np.ndarray, valid: np.ndarray, max_distance: int) -> None:
    """Union pairs within ``max_distance`` bits, by multi-index hashing.

    Two 64-bit hashes at most ``t`` bits apart agree exactly on at least one of
    ``t + 1`` disjoint bit bands (pigeonhole), so only pairs sharing a band value are
    compared. Identical hashes are collapsed first, so constant images cost nothing.
    """
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return
    uniq, first, inverse = np.unique(values[idx], return_index=True, return_inverse=True)
    for k in np.flatnonzero(np.bincount(inverse) > 1).tolist():  # identical perceptual hashes
        members = idx[inverse == k]
        for m in members[1:].tolist():
            _union(parent, int(members[0]), m)
    if max_distance == 0 or uniq.size < 2:
        return
    reps = idx[first]  # one sample per distinct hash
    bands = max_distance + 1
    edges = np.linspace(0, 64, bands + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = np.uint64((1 << (hi - lo)) - 1)
        keys = (uniq >> np.uint64(lo)) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        stops = np.r_[starts[1:], len(order)]
        for s, e in zip(starts.tolist(), stops.tolist()):
            if e - s < 2:
                continue
            bucket = order[s:e]
            h = uniq[bucket]
            dist = _popcount(h[:, None] ^ h[None, :])
            ii, jj = np.nonzero(np.triu(dist <= max_distance, k=1))
            for i, j in zip(ii.tolist(), jj.tolist()):
                _union(parent, int(reps[bucket[i]]), int(reps[bucket[j]]))


_BYTE_BITS = np.array([bin(b).count("1") for b in range(256)], dtype=np.uint8)


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint64`` (``np.bitwise_count`` is numpy >= 2 only; numpy 1.x is supported)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values)
    as_bytes = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8).reshape(*values.shape, 8)
    return _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.uint8)


def _roots(parent: np.ndarray) -> np.ndarray:
    return np.array([_find(parent, i) for i in range(len(parent))], dtype=np.int64)


def _number(roots: np.ndarray) -> np.ndarray:
    """Renumber components of size >= 2 as 0, 1, ... by first member; singletons -> -1."""
    n = len(roots)
    groups = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return groups
    sizes = np.bincount(roots, minlength=n)
    multi = sizes[roots] >= 2
    # roots are the smallest member of each component, so ordering by root = by first member
    _, new_ids = np.unique(roots[multi], return_inverse=True)
    groups[multi] = new_ids
    return groups


def _report(parent: np.ndarray, hashes: np.ndarray, labels: np.ndarray) -> DuplicateReport:
    groups = _number(_roots(parent))
    kinds: list[str] = []
    cross: list[bool] = []
    if groups.size and groups.max() >= 0:
        order = np.argsort(groups, kind="stable")
        sorted_groups = groups[order]
        start = np.searchsorted(sorted_groups, 0)
        bounds = np.flatnonzero(np.r_[True, sorted_groups[start + 1 :] != sorted_groups[start:-1]]) + start
        ends = np.r_[bounds[1:], len(order)]
        for s, e in zip(bounds.tolist(), ends.tolist()):
            members = order[s:e]
            kinds.append("exact" if len(set(hashes[members].tolist())) == 1 else "near")
            cross.append(len(set(labels[members].tolist())) > 1)
    return DuplicateReport(groups=groups, kinds=tuple(kinds), cross_class=tuple(cross))
