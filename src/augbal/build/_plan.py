"""The build plan: per training class, a target count, and how many augmented copies each original gets."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from augbal.data import ImageIndex

SPLITS: tuple[str, str, str] = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One output file: an original copied (``repeat == 0``) or its ``repeat``-th augmented copy."""

    split: str
    label: int
    source: str
    source_hash: str
    group: str
    out: str  # path relative to OUT, with "/" separators
    repeat: int
    jpeg_quality: int | None = None  # the quality of an augmented copy written as JPEG


@dataclass(frozen=True)
class Plan:
    """What a build writes: every output ``Item``, and the per-class targets of the training split.

    Attributes:
        classes: class names in label order.
        items: originals of every split (``repeat == 0``) followed by the augmented copies, in a
            fixed order (class, then source path, then repeat).
        before: ``{split: {class: images}}`` after the split, before augmentation.
        targets: ``{class: count asked for}`` on the training split.
        short: ``{class: (target, reachable)}`` for classes the multiplier cap keeps below target.
    """

    classes: tuple[str, ...]
    items: tuple[Item, ...]
    before: dict[str, dict[str, int]]
    targets: dict[str, int]
    short: dict[str, tuple[int, int]]

    def after(self) -> dict[str, dict[str, int]]:
        """``{split: {class: images written}}``."""
        out = {s: dict.fromkeys(self.classes, 0) for s in SPLITS}
        for item in self.items:
            out[item.split][self.classes[item.label]] += 1
        return out

    def augmented(self) -> dict[str, int]:
        """Augmented copies per training class."""
        out = dict.fromkeys(self.classes, 0)
        for item in self.items:
            if item.repeat > 0:
                out[self.classes[item.label]] += 1
        return out

    def max_reuse(self) -> dict[str, int]:
        """Per training class, the most times one original is used (itself plus its copies)."""
        uses: dict[tuple[int, str], int] = {}
        for item in self.items:
            if item.split == "train":
                key = (item.label, item.source)
                uses[key] = uses.get(key, 0) + 1
        out = dict.fromkeys(self.classes, 0)
        for (label, _), n in uses.items():
            out[self.classes[label]] = max(out[self.classes[label]], n)
        return out


def copies_per_original(hashes: list[str], paths: list[str], target: int, *, seed: int, max_multiplier: int | None) -> list[int]:
    """Augmented copies for each of ``n`` originals so the class reaches ``target`` (capped).

    Copies are spread evenly: each original gets ``(target - n) // n`` and the remainder goes
    one each to the originals first in a seeded order keyed on ``(seed, content hash, path)``,
    so adding another file moves at most the cut-off. ``max_multiplier`` caps every original's
    uses (itself plus copies).

    Example:
        >>> copies_per_original(["a", "b", "c"], ["1", "2", "3"], 8, seed=0, max_multiplier=None)
        [2, 1, 2]
        >>> copies_per_original(["a", "b"], ["1", "2"], 9, seed=0, max_multiplier=3)
        [2, 2]
    """
    n = len(hashes)
    if n == 0 or target <= n:
        return [0] * n
    final = target if max_multiplier is None else min(target, n * max_multiplier)
    base, extra = divmod(final - n, n)
    order = sorted(
        range(n), key=lambda i: (hashlib.sha256(f"{seed}:{hashes[i]}".encode()).hexdigest(), paths[i])
    )
    copies = [base] * n
    for i in order[:extra]:
        copies[i] += 1
    return copies


def _relative_name(path: str, root: str | None, class_name: str) -> str:
    """The file's path under its class folder (subfolders kept); its base name for a manifest source."""
    if root is not None and os.path.isdir(root):
        rel = os.path.relpath(path, os.path.join(root, class_name))
        if not rel.startswith(os.pardir):
            return rel.replace(os.sep, "/")
    return os.path.basename(path)


_JPEG_MAGIC = b"\xff\xd8\xff"


def is_jpeg(path: str) -> bool:
    """Whether the file at ``path`` holds a JPEG image (its first bytes, not its name).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
        >>> _ = open(p, "wb").write(bytes([0xFF, 0xD8, 0xFF, 0xE0]) + b"rest")
        >>> is_jpeg(p)
        True
    """
    with open(path, "rb") as fh:
        return fh.read(3) == _JPEG_MAGIC


def augmented_name(stem: str, k: int, *, jpeg: bool) -> str:
    """The file name of augmented copy ``k`` of a source with ``stem``: JPEG for a JPEG source, else PNG.

    A JPEG source keeps its format (``<stem>.aug<k>.jpg``); every other source (PNG, with
    or without alpha, palette, 16-bit, TIFF, WebP, BMP, GIF, ...) gives ``<stem>.aug<k>.png``.
    Augmented pixels are RGB either way (``load_rgb`` composites alpha onto white).

    Example:
        >>> augmented_name("cat/001", 2, jpeg=True), augmented_name("001", 1, jpeg=False)
        ('cat/001.aug2.jpg', '001.aug1.png')
    """
    return f"{stem}.aug{k}.{'jpg' if jpeg else 'png'}"


def _split_ext(rel: str) -> tuple[str, str]:
    """``rel`` as ``(stem, extension)``: ``"sub/000.jpg"`` -> ``("sub/000", ".jpg")``; no dot: no extension."""
    stem = rel.rsplit(".", 1)[0] if "." in os.path.basename(rel) else rel
    return stem, rel[len(stem):]


def _short_hash(source_hash: str, source: str) -> str:
    """The first 8 characters of a source's content hash (of its path's SHA-256 where it has none)."""
    tag = "".join(ch for ch in source_hash.lower() if ch.isascii() and ch.isalnum())[:8]
    return tag or hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _unique_paths(items: list[Item], names: list[tuple[str, str]], sources: list[tuple[str, int]]) -> list[str]:
    """One distinct path per item: its ``out`` where no other item claims it, else a marked one.

    ``names[j]`` splits ``items[j].out`` as ``(head, tail)`` (``"train/cat/000"``, ``".aug1.jpg"``),
    marked as ``head.<mark>tail``; ``sources[j]`` says whose output it is (an original and its
    copies share one). A source's outputs to mark: all of them when its original's path is claimed
    twice, else its copies when one of theirs is. They get the source's short hash
    (``000.<h>.jpg``, ``000.<h>.aug1.jpg``); where any of those is taken too, ``<h>-<n>`` instead,
    ``n`` the smallest free counter, sources taken in order of path (then content hash, split,
    label, group, outputs): the result depends only on the inputs.
    """
    default = [item.out for item in items]
    claims = Counter(default)
    if len(claims) == len(default):
        return default
    members: dict[tuple[str, int], list[int]] = {}
    for j, source in enumerate(sources):
        members.setdefault(source, []).append(j)
    marked: dict[tuple[str, int], list[int]] = {}
    for source, js in members.items():
        if any(claims[default[j]] > 1 and items[j].repeat == 0 for j in js):
            marked[source] = js
        elif any(claims[default[j]] > 1 for j in js):
            marked[source] = [j for j in js if items[j].repeat > 0]

    def path(j: int, mark: str) -> str:
        return f"{names[j][0]}.{mark}{names[j][1]}"

    tags = {source: _short_hash(items[js[0]].source_hash, items[js[0]].source) for source, js in marked.items()}
    paths = list(default)
    taken = set(default).difference(default[j] for js in marked.values() for j in js)
    tagged = Counter(path(j, tags[source]) for source, js in marked.items() for j in js)
    pending: list[tuple[str, int]] = []
    accepted: list[str] = []
    for source, js in marked.items():
        candidates = [path(j, tags[source]) for j in js]
        if all(tagged[c] == 1 and c not in taken for c in candidates):
            for j, c in zip(js, candidates):
                paths[j] = c
            accepted.extend(candidates)
        else:
            pending.append(source)
    taken.update(accepted)

    def order(source: tuple[str, int]) -> tuple[Any, ...]:
        first = items[members[source][0]]
        return (first.source, first.source_hash, first.split, first.label, first.group, len(marked[source]))

    for source in sorted(pending, key=order):
        js, n = marked[source], 1
        while any(path(j, f"{tags[source]}-{n}") in taken for j in js):
            n += 1
        for j in js:
            paths[j] = path(j, f"{tags[source]}-{n}")
            taken.add(paths[j])
    return paths


def _group_of(index: ImageIndex, i: int) -> str:
    g = int(index.groups[i])
    return f"g{g}" if g >= 0 else f"h{index.hashes[i]}"


def make_plan(
    index: ImageIndex,
    sides: Mapping[str, np.ndarray],
    targets: Mapping[int, int],
    *,
    seed: int,
    max_multiplier: int | None,
    jpeg_quality: int = 95,
    roots: Mapping[str, str] | None = None,
) -> Plan:
    """Plan a build of ``index`` split into ``sides`` (positions per split) with training ``targets``.

    Augmented copies of JPEG sources are JPEG at ``jpeg_quality``, the others PNG (see
    ``augmented_name``). ``roots`` gives each split's source folder (``--splits existing``:
    ``SOURCE/train``, ...), under which class subfolders are kept; default ``index.root``.

    Every output gets its own path ``<split>/<class>/<name>``: the source's name (its base name
    for a manifest source), ``<stem>.aug<k>.<ext>`` for its copies, unless another output claims it
    too (same-named files from two folders of a manifest; ``x.bmp`` and ``x.tif``; ``y.aug1.jpg``
    beside ``y.jpg``). Then the first 8 characters of the source's content hash go before the
    extension: ``000.<h>.jpg`` for a claimed original and all its copies (``000.<h>.aug1.jpg``),
    ``x.<h>.aug1.png`` for all the copies of a source one of whose copies is claimed; where that is
    taken too (the same file twice), ``<h>-<n>``, the smallest free counter, sources in order of
    path. Names depend only on the inputs, never on their order.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> paths = [os.path.join(d, f, "000.png") for f in ("d1", "d2", "d3")]
        >>> for i, p in enumerate(paths): os.mkdir(os.path.dirname(p)); _ = open(p, "wb").write(b"%d" % i)
        >>> hashes = ["1f" * 16, "2e" * 16, "3d" * 16]
        >>> index = ImageIndex.from_arrays(paths, [0, 0, 1], ["cat", "dog"], hashes=hashes)
        >>> sides = {"train": np.arange(3), "val": np.arange(0), "test": np.arange(0)}
        >>> plan = make_plan(index, sides, {0: 3, 1: 2}, seed=0, max_multiplier=None)
        >>> for item in plan.items: print(item.out)
        train/cat/000.1f1f1f1f.png
        train/cat/000.2e2e2e2e.png
        train/dog/000.png
        train/cat/000.1f1f1f1f.aug1.png
        train/dog/000.aug1.png

    Raises:
        ValueError: two outputs on one path after all: a bug (named).
    """
    classes = index.classes
    paths, labels = index.paths.tolist(), index.labels.tolist()
    before = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    short: dict[str, tuple[int, int]] = {}
    originals: list[tuple[Item, tuple[str, str], tuple[str, int]]] = []  # item, (head, tail), whose
    augmented: list[tuple[Item, tuple[str, str], tuple[str, int]]] = []
    for split_name in SPLITS:
        root = (roots or {}).get(split_name, index.root)
        positions = sorted(sides[split_name].tolist(), key=lambda i: (labels[i], paths[i]))
        stems: dict[int, tuple[str, str]] = {}
        for i in positions:
            before[split_name][classes[labels[i]]] += 1
            stem, ext = stems[i] = _split_ext(_relative_name(paths[i], root, classes[labels[i]]))
            head = f"{split_name}/{classes[labels[i]]}/{stem}"
            originals.append((Item(split_name, labels[i], paths[i], str(index.hashes[i]), _group_of(index, i),
                                   head + ext, 0), (head, ext), (split_name, i)))
        if split_name != "train":
            continue
        for c in range(len(classes)):
            members = [i for i in positions if labels[i] == c]
            target = int(targets.get(c, len(members)))
            copies = copies_per_original([str(index.hashes[i]) for i in members], [paths[i] for i in members],
                                         target, seed=seed, max_multiplier=max_multiplier)
            reached = len(members) + sum(copies)
            if reached < target:
                short[classes[c]] = (target, reached)
            for i, k_max in zip(members, copies):
                if k_max == 0:
                    continue
                jpeg = is_jpeg(paths[i])
                quality = jpeg_quality if jpeg else None
                head = f"train/{classes[c]}/{stems[i][0]}"
                for k in range(1, k_max + 1):
                    tail = augmented_name("", k, jpeg=jpeg)  # ".aug<k>.<ext>"
                    augmented.append((Item("train", c, paths[i], str(index.hashes[i]), _group_of(index, i),
                                           head + tail, k, quality), (head, tail), ("train", i)))
    rows = originals + augmented
    outs = _unique_paths([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    items = [item if item.out == out else replace(item, out=out) for (item, _, _), out in zip(rows, outs)]
    if len(set(outs)) != len(outs):  # a safety net: _unique_paths gives distinct paths
        seen: dict[str, str] = {}
        for item in items:
            if item.out in seen:
                raise ValueError(f"two outputs would be written to one path {item.out!r}; from {seen[item.out]} "
                                 f"and {item.source} (a bug: please report it)")
            seen[item.out] = item.source
    train_counts = before["train"]
    return Plan(
        classes=classes,
        items=tuple(items),
        before=before,
        targets={classes[c]: int(targets.get(c, train_counts[classes[c]])) for c in range(len(classes))},
        short=short,
    )


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """The plan as table rows: per class and split, before, after, max reuse, augmented."""
    after, aug, reuse = plan.after(), plan.augmented(), plan.max_reuse()
    rows = []
    for c in plan.classes:
        for s in SPLITS:
            rows.append({
                "class": c, "split": s, "before": plan.before[s][c], "after": after[s][c],
                "max_reuse": reuse[c] if s == "train" else (1 if plan.before[s][c] else 0),
                "augmented": aug[c] if s == "train" else 0,
            })
    return rows
