"""``--format webdataset``: pack a build's files into tar shards with the ``webdataset`` library's writer.

A build writes its files as usual (``OUT.incomplete/<split>/<class>/<file>``, by any executor),
then this module packs each split into ``OUT/<split>-000000.tar, ...`` in one process, in a
seeded order, and the loose files are removed. So the shards hold the same image bytes as a
``--format files`` build, whatever ``--workers``, and an interrupted build resumes like any other.

Each sample is ``<key>.<ext>`` (the image bytes, unchanged), ``<key>.cls`` (the label index as
ASCII digits) and ``<key>.json`` (the manifest row); the key is the file's path without its
extension, dots in the file name turned into ``_`` (webdataset splits a name at its first dot):
``train/cat/0001.aug2.jpg`` -> key ``train/cat/0001_aug2``. Tar members have mtime 0,
uid/gid 0, user/group ``augbal`` and mode 0444, so the same build gives the same tar bytes.

A build in shards (``--num-shards``) leaves each shard a files tree; ``merge_shards`` joins the
trees and packs them with the same ``shard_layout`` and ``pack`` as a single build, so the
merged tar files are those of a single build, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._plan import SPLITS, Item

#: Samples per shard when ``--shard-size`` is not given.
DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Sample:
    """Where one plan item goes: ``shard`` (file name under OUT), ``key`` and extension ``ext``."""

    shard: str
    key: str
    ext: str
    position: int  # place in the split's seeded order

    @property
    def path(self) -> str:
        """The manifest's ``path``: ``<shard>#<key>.<ext>``, e.g. ``train-000000.tar#train/cat/0001.jpg``."""
        return f"{self.shard}#{self.key}.{self.ext}"


def sample_key(out: str) -> tuple[str, str]:
    """``(key, ext)`` of the file ``out`` (relative to OUT) inside a shard.

    Example:
        >>> sample_key("train/cat/0001.aug2.JPG")
        ('train/cat/0001_aug2', 'jpg')
    """
    folder, name = out.rsplit("/", 1) if "/" in out else ("", out)
    stem, _, ext = name.rpartition(".")
    if not stem:
        stem, ext = name, "bin"
    key = stem.replace(".", "_")
    return (f"{folder}/{key}" if folder else key), ext.lower()


def shard_layout(items: Sequence[Item], *, seed: int, shard_size: int) -> dict[str, Sample]:
    """``{item.out: Sample}``: each split's items in a seeded order, ``shard_size`` per shard.

    The order is that of ``sha256(f"{seed}:{key}")``, so classes and augmented copies are
    mixed across shards (a reader's shard shuffle then mixes classes) and an item's place does
    not depend on the executor.

    Files whose names differ only in the extension (``x.bmp``, ``x.tif``) get it in the key
    (``x_bmp``, ``x_tif``).

    Raises:
        ValueError: two files of one split would still get one key (``x.a.png``, ``x_a.png``; both named).

    Example:
        >>> from augbal.build import Item
        >>> items = [Item("train", 0, f"/s/{i}.png", "ab", "g0", f"train/a/{i}.png", 0) for i in range(3)]
        >>> sorted((s.shard, s.key) for s in shard_layout(items, seed=0, shard_size=2).values())
        [('train-000000.tar', 'train/a/0'), ('train-000000.tar', 'train/a/2'), ('train-000001.tar', 'train/a/1')]
    """
    layout: dict[str, Sample] = {}
    for split_name in SPLITS:
        named = [(item.out, *sample_key(item.out)) for item in items if item.split == split_name]
        claims = Counter(key for _, key, _ in named)
        keyed: dict[str, tuple[str, str]] = {}
        for out, key, ext in named:
            if claims[key] > 1:  # x.bmp and x.tif: the extension joins the key (x_bmp, x_tif)
                key = f"{key}_{ext}"
            if key in keyed:
                raise ValueError(f"--format webdataset needs one key per file; {keyed[key][0]!r} and "
                                 f"{out!r} would both be key {key!r} (rename one)")
            keyed[key] = (out, ext)
        order = sorted(keyed, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
        for position, key in enumerate(order):
            out, ext = keyed[key]
            layout[out] = Sample(f"{split_name}-{position // shard_size:06d}.tar", key, ext, position)
    return layout


def pack(root: str, items: Iterable[Item], layout: Mapping[str, Sample],
         records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Pack the loose files of ``items`` under ``root`` into ``layout``'s tar files; returns their names.

    ``records`` are the items' manifest rows (``path`` into the tar files), in the items' order:
    a build passes its plan's items, ``merge_shards`` those it reads back from the shards.
    """
    return write_shards(root, ((layout[item.out], item.out, item.label, record)
                               for item, record in zip(items, records, strict=True)))


def drop_loose(root: str) -> None:
    """Remove the loose files (``root/<split>/``) once packed and the manifests written."""
    for split_name in SPLITS:
        shutil.rmtree(os.path.join(root, split_name), ignore_errors=True)


def write_shards(root: str, entries: Iterable[tuple[Sample, str, int, Mapping[str, Any]]]) -> list[str]:
    """Pack loose files into shards under ``root``; returns the shard names written, in order.

    ``entries`` are ``(sample, loose, label, record)``: where the file goes, its path under
    ``root``, its label index and its manifest row. Samples are written in ``position``
    order; each shard goes to ``.<name>.<pid>.part`` and is renamed when complete.
    """
    try:
        import webdataset
    except ImportError:  # pragma: no cover - the test extra installs it
        raise ImportError("--format webdataset needs the webdataset package: pip install 'augbal[webdataset]'") from None
    by_shard: dict[str, list[tuple[Sample, str, int, Mapping[str, Any]]]] = {}
    for entry in entries:
        by_shard.setdefault(entry[0].shard, []).append(entry)
    for shard in sorted(by_shard):
        final = os.path.join(root, shard)
        temp = os.path.join(root, f".{shard}.{os.getpid()}.part")
        try:
            with open(temp, "wb") as fh:
                writer = webdataset.TarWriter(fh, user="augbal", group="augbal", mode=0o444, mtime=0, encoder=False)
                for sample, loose, label, record in sorted(by_shard[shard], key=lambda e: e[0].position):
                    with open(os.path.join(root, loose), "rb") as image:
                        data = image.read()
                    writer.write({
                        "__key__": sample.key,
                        sample.ext: data,
                        "cls": str(label).encode("ascii"),
                        "json": json.dumps(dict(record), ensure_ascii=False, sort_keys=True).encode("utf-8"),
                    })
                writer.close()
            os.replace(temp, final)
        except BaseException:
            if os.path.exists(temp):
                os.remove(temp)
            raise
    return sorted(by_shard)
