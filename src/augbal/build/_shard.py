"""Shards of a build: which shard writes each output, and ``merge_shards`` joining shard outputs.

A shard build (``build_dataset(..., num_shards=K, shard_index=i)``) plans the whole dataset,
writes only the items ``shard_of(item, K) == i`` into its own OUT, and leaves there its part
of the manifest, the whole build's ``summary.json`` (with a ``"shard"`` entry) and
``problems.csv``, and ``shard.json`` (the plan positions of its rows, read by the merge).
A ``format="webdataset"`` shard is such a files tree too (its manifest's paths are the
files'); the merge joins the trees and packs them into the single build's tar files.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._plan import Item
from ._webdataset import drop_loose, pack, shard_layout

if TYPE_CHECKING:
    from ._build import BuildSummary

SHARD_FILE = "shard.json"


class MergeRefusedError(ValueError):
    """``merge_shards`` cannot join these folders (``shards`` names the ones at fault)."""

    def __init__(self, message: str, shards: Sequence[str | os.PathLike[str]] = ()) -> None:
        super().__init__(message)
        self.shards = tuple(str(s) for s in shards)


def shard_of(item: Item, num_shards: int) -> int:
    """The shard (``0 .. num_shards - 1``) that writes ``item``: fixed by (source content hash, repeat k).

    Keyed on each output rather than on its source, so a minority original with 99 copies
    spreads its work over the shards instead of loading one; paths, splits, workers and the
    executor play no part.

    Example:
        >>> item = Item("train", 0, "/src/a/1.png", "0f3a", "g0", "train/a/1.png", 0)
        >>> shard_of(item, 1), shard_of(item, 4)
        (0, 2)
    """
    key = f"{item.source_hash}:{item.repeat}".encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % num_shards


def shard_positions(items: Sequence[Item], num_shards: int, index: int) -> list[int]:
    """Positions in ``items`` (the plan's order) of the items shard ``index`` of ``num_shards`` writes.

    Example:
        >>> items = [Item("train", 0, f"/s/{h}.png", h, "g", f"train/a/{h}.png", 0) for h in ("0a", "0b", "0c", "0d")]
        >>> shard_positions(items, 2, 0), shard_positions(items, 2, 1)
        ([0, 1], [2, 3])
    """
    return [p for p, item in enumerate(items) if shard_of(item, num_shards) == index]


def _read_json(path: Path, what: str, shard: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeRefusedError(f"SHARD_DIRS must be finished shard builds; {shard} has no {what}", [shard]) from None
    except (OSError, ValueError) as exc:
        raise MergeRefusedError(f"SHARD_DIRS must be finished shard builds; {path} cannot be read ({exc})",
                                [shard]) from None


def _records(shard: Path, positions: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(plan position, manifest row)`` of one shard, in plan order (its manifest.jsonl is)."""
    with open(shard / "manifest.jsonl", encoding="utf-8", errors="surrogateescape") as fh:
        for position, line in zip(positions, fh, strict=True):
            yield position, json.loads(line)


def _check_out(out: Path, shards: Sequence[Path], *, overwrite: bool) -> None:
    from ._build import OutputPathError, _incomplete, worded

    dst = Path(os.path.realpath(out))
    for shard in shards:
        src = Path(os.path.realpath(shard))
        if dst == src or src in dst.parents or dst in src.parents:
            raise OutputPathError(f"OUT must be outside every shard folder and hold none; got OUT {out} and "
                                  f"shard {shard}")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"OUT must be a folder; got a file {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputPathError(worded("OUT must be empty or missing ([[overwrite!]] replaces it); got non-empty {}", out))
    partial = _incomplete(out)
    if partial.exists() and not overwrite:
        raise OutputPathError(worded("an interrupted merge or build left {}; [[overwrite!]] discards it; got {} "
                                     "present", partial, partial))


def _differing(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The first setting two summary documents differ in, as the flag that sets it."""
    from ._build import _setting_text

    if a.get("config") != b.get("config"):
        ca, cb = a.get("config") or {}, b.get("config") or {}
        key = next(k for k in sorted(set(ca) | set(cb), key=lambda k: (k == "policy", k)) if ca.get(k) != cb.get(k))
        return f"{_setting_text(key, ca.get(key))} and {_setting_text(key, cb.get(key))}"
    key = next(k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"different {key!r} (was SOURCE or a library changed between the shard builds?)"


def merge_shards(
    out: str | os.PathLike[str],
    shards: Sequence[str | os.PathLike[str]],
    *,
    overwrite: bool = False,
) -> BuildSummary:
    """Join the outputs of the shard builds ``shards`` into one dataset in ``out``.

    Every shard index ``0 .. K-1`` of one configuration must be given once. Files are
    hard-linked from the shards (copied where links fail), so the shards stay as they are;
    ``manifest.csv``, ``manifest.jsonl``, ``problems.csv`` are byte-identical to those of a
    single build of that configuration, and ``summary.json`` is too but for a last
    ``"merged": {"shards": K}`` entry. Shards of a ``format="webdataset"`` build are then
    packed as a single build packs its files: the same ``<split>-NNNNNN.tar`` bytes. The
    merge is written into ``<out>.incomplete`` and renamed at the end, like a build.

    Returns:
        The ``BuildSummary`` of the merged dataset (``merged`` = K).

    Raises:
        MergeRefusedError: a folder that is not a finished shard build, shards of different
            configurations (``--format``, ``--shard-size``, ``--seed``, ... named) or shard counts, a shard index missing or given twice (each named).
        OutputPathError: ``out`` inside a shard (or the reverse), or not empty.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from augbal.build import build_dataset
        >>> from augbal.data import write_image_folder
        >>> class Images(list):
        ...     classes = ["a", "b"]
        >>> rng, tmp = np.random.default_rng(0), tempfile.mkdtemp()
        >>> src = write_image_folder(Images((rng.integers(0, 256, (8, 8, 3), np.uint8), int(i % 3 == 0))
        ...                                 for i in range(9)), os.path.join(tmp, "src"))
        >>> parts = [os.path.join(tmp, f"part{i}") for i in range(2)]
        >>> for i, part in enumerate(parts):
        ...     _ = build_dataset(src, part, split=(1, 0, 0), workers=1, num_shards=2, shard_index=i)
        >>> merged = merge_shards(os.path.join(tmp, "out"), parts)
        >>> merged.merged, merged.written
        (2, 12)
    """
    out, dirs = Path(out), [Path(s) for s in shards]
    document, positions, problems = _check_shards(out, dirs, overwrite=overwrite)
    return _join(out, dirs, document, positions, problems)


def _check_shards(out: Path, dirs: list[Path], *, overwrite: bool) -> tuple[dict[str, Any], list[list[int]], bytes]:
    """Validate a merge: the whole build's summary document, each shard's plan positions, problems.csv."""
    if not dirs:
        raise MergeRefusedError("SHARD_DIRS must name at least one shard folder; got none")
    for shard in dirs:
        if not shard.is_dir():
            raise MergeRefusedError(f"SHARD_DIRS must be shard build folders; got {shard} (not a folder)", [shard])
    _check_out(out, dirs, overwrite=overwrite)
    documents, orders = [], []
    for shard in dirs:
        doc = _read_json(shard / "summary.json", "summary.json", shard)
        if not isinstance(doc, dict) or not isinstance(doc.get("shard"), dict):
            raise MergeRefusedError(f"SHARD_DIRS must be shard builds (--num-shards, --shard-index); {shard} is a "
                                    f"whole build", [shard])
        order = _read_json(shard / SHARD_FILE, SHARD_FILE, shard)
        if not isinstance(order, dict) or not isinstance(order.get("positions"), list):
            raise MergeRefusedError(f"SHARD_DIRS must be finished shard builds; {shard / SHARD_FILE} has no "
                                    f"positions", [shard])
        documents.append(doc)
        orders.append(order)
    counts = {int(d["shard"]["count"]) for d in documents}
    if len(counts) > 1:
        by = {}
        for shard, d in zip(dirs, documents):
            by.setdefault(int(d["shard"]["count"]), shard)
        (ka, sa), (kb, sb) = sorted(by.items())[:2]
        raise MergeRefusedError(f"shards must come from one --num-shards; got {sa} of {ka} shards and {sb} of {kb}",
                                [sa, sb])
    (k,) = counts
    wholes = [{key: v for key, v in d.items() if key != "shard"} for d in documents]
    for shard, whole in zip(dirs[1:], wholes[1:]):
        if whole != wholes[0]:
            raise MergeRefusedError(f"shards must come from one configuration; {dirs[0]} and {shard} differ: "
                                    f"{_differing(wholes[0], whole)}", [dirs[0], shard])
    seen: dict[int, Path] = {}
    for shard, d in zip(dirs, documents):
        i = int(d["shard"]["index"])
        if i in seen:
            raise MergeRefusedError(f"each shard index must be given once; shard {i} of {k} is both {seen[i]} and "
                                    f"{shard}", [seen[i], shard])
        seen[i] = shard
    missing = [i for i in range(k) if i not in seen]
    if missing:
        raise MergeRefusedError(f"every shard index 0..{k - 1} must be given; missing shard "
                                f"{', '.join(map(str, missing))} of {k}", [])
    total = sum(sum(c.values()) for c in wholes[0]["counts"]["after"].values())
    positions = [list(map(int, o["positions"])) for o in orders]
    if sorted(p for ps in positions for p in ps) != list(range(total)):
        raise MergeRefusedError(f"shards must together hold each of the {total} planned files once; got "
                                f"{sum(map(len, positions))} positions in {', '.join(map(str, dirs))}", dirs)
    problems = {(shard / "problems.csv").read_bytes() for shard in dirs}
    if len(problems) > 1:
        raise MergeRefusedError(f"shards must come from one scan; their problems.csv differ ({', '.join(map(str, dirs))})",
                                dirs)
    for shard, ps in zip(dirs, positions):
        try:
            with open(shard / "manifest.jsonl", "rb") as fh:
                rows_there = sum(1 for _ in fh)
        except OSError:
            rows_there = -1
        if rows_there != len(ps):
            raise MergeRefusedError(f"SHARD_DIRS must be finished shard builds; {shard / 'manifest.jsonl'} must hold "
                                    f"the {len(ps)} rows {shard / SHARD_FILE} lists; got {rows_there}", [shard])
    return {**wholes[0], "merged": {"shards": k}}, positions, problems.pop()


def _join(out: Path, dirs: list[Path], document: dict[str, Any], positions: list[list[int]],
          problems: bytes) -> BuildSummary:
    """Link every shard's files into ``<out>.incomplete`` (packed for webdataset), write the whole build's
    outputs, rename it to ``out``."""
    from augbal._atomic import atomic_write_bytes

    from ._build import _incomplete, _summary_from_document, write_manifests, write_summary

    def rows() -> Iterator[dict[str, Any]]:
        streams = [_records(shard, ps) for shard, ps in zip(dirs, positions)]
        for _, record in heapq.merge(*streams, key=lambda pr: pr[0]):
            yield record

    staging = _incomplete(out)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for shard, ps in zip(dirs, positions):
        for _, record in _records(shard, ps):
            _link_or_copy(shard / record["path"], staging / record["path"])
    packed = document["config"].get("format") == "webdataset"
    write_manifests(staging, _pack_joined(staging, document, rows) if packed else rows)
    atomic_write_bytes(staging / "problems.csv", problems)
    write_summary(staging, document)
    if packed:
        drop_loose(str(staging))
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    return _summary_from_document(out, document)


def _pack_joined(staging: Path, document: dict[str, Any],
                 rows: Callable[[], Iterable[dict[str, Any]]]) -> Callable[[], Iterator[dict[str, Any]]]:
    """Pack the joined files tree as the single build packs its plan; returns the rows with their tar paths."""
    config = document["config"]
    labels = {c: i for i, c in enumerate(document["counts"]["after"]["train"])}  # the classes in label order
    items = [Item(r["split"], labels[r["label"]], r["source_path"], r["source_hash"], r["group"], r["path"],
                  int(r["repeat"])) for r in rows()]
    layout = shard_layout(items, seed=int(config["seed"]), shard_size=int(config["shard_size"]))

    def packed() -> Iterator[dict[str, Any]]:  # "path" keeps its place: the same manifest.jsonl text
        return ({**r, "path": layout[r["path"]].path} for r in rows())

    pack(str(staging), items, layout, packed())
    return packed


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target`` (a link is whole or absent); copy atomically where links fail."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or links not allowed
        pass
    temp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(source, temp)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
