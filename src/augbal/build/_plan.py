"""The build plan: per training class, a target count, and how many augmented copies each original gets."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
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

    Raises:
        ValueError: two outputs would share a path (named).
    """
    classes = index.classes
    paths, labels = index.paths.tolist(), index.labels.tolist()
    items: list[Item] = []
    before = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    short: dict[str, tuple[int, int]] = {}
    augmented: list[Item] = []
    for split_name in SPLITS:
        positions = sorted(sides[split_name].tolist(), key=lambda i: (labels[i], paths[i]))
        for i in positions:
            before[split_name][classes[labels[i]]] += 1
            rel = _relative_name(paths[i], (roots or {}).get(split_name, index.root), classes[labels[i]])
            items.append(Item(split_name, labels[i], paths[i], str(index.hashes[i]), _group_of(index, i),
                              f"{split_name}/{classes[labels[i]]}/{rel}", 0))
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
                rel = _relative_name(paths[i], (roots or {}).get("train", index.root), classes[c])
                stem = rel.rsplit(".", 1)[0] if "." in os.path.basename(rel) else rel
                jpeg = is_jpeg(paths[i])
                quality = jpeg_quality if jpeg else None
                for k in range(1, k_max + 1):
                    augmented.append(Item("train", c, paths[i], str(index.hashes[i]), _group_of(index, i),
                                          f"train/{classes[c]}/{augmented_name(stem, k, jpeg=jpeg)}", k, quality))
    items.extend(augmented)
    seen: dict[str, str] = {}
    for item in items:
        key = item.out
        if key in seen:
            raise ValueError(f"two outputs would be written to one path {item.out!r}; from {seen[key]} and {item.source}")
        seen[key] = item.source
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
