"""Issue 9, items 1 and 3: output formats (JPEG kept, PNG otherwise, webdataset shards), --skew, --splits existing."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from augbal.build import Augmenter, BuildOptionError, build_dataset
from augbal.build._execute import is_done
from augbal.build._plan import Item
from augbal.data import load_rgb

ALL_TRAIN = (1.0, 0.0, 0.0)


def make_jpeg_folder(root: Path, counts: dict[str, int], *, seed: int = 0, side: int = 16) -> Path:
    """``root/<class>/<i>.jpg``: random smooth pixels saved as JPEG (quality 90)."""
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, size=(side, side + 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.jpg", quality=90)
    return root


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_jpeg_sources_give_jpeg_copies_at_the_stated_quality_and_png_sources_png(make_folder, tmp_path: Path) -> None:
    src = make_jpeg_folder(tmp_path / "src", {"a": 6, "b": 2})
    make_folder(tmp_path / "png", {"b": 1}, seed=7)
    os.replace(tmp_path / "png" / "b" / "000.png", src / "b" / "p.png")  # one PNG source among JPEGs
    out = tmp_path / "out"
    s = build_dataset(src, out, split=ALL_TRAIN, workers=1, jpeg_quality=80)
    assert s.config["jpeg_quality"] == 80 and s.config["format"] == "files"
    assert sorted(os.listdir(out / "train" / "b")) == [
        "000.aug1.jpg", "000.jpg", "001.aug1.jpg", "001.jpg", "p.aug1.png", "p.png"]
    for name in ("000.aug1.jpg", "001.aug1.jpg"):
        data = (out / "train" / "b" / name).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.size, im.mode) == ("JPEG", (16, 16), "RGB")
    with Image.open(out / "train" / "b" / "p.aug1.png") as im:
        assert im.format == "PNG"
    # originals are copied as they are
    assert (out / "train" / "a" / "003.jpg").read_bytes() == (src / "a" / "003.jpg").read_bytes()
    # the manifest's row reproduces the JPEG copy byte for byte, at the configured quality only
    row = next(r for r in _rows(out) if r["path"] == "train/b/001.aug1.jpg")
    pixels = load_rgb(row["source_path"])
    make = lambda q: Augmenter(json.loads(row["policy"]), size=None, jpeg_quality=q).encode(  # noqa: E731
        pixels, label=1, source_hash=row["source_hash"], repeat=1, fmt="JPEG")
    assert make(80) == (out / row["path"]).read_bytes() != make(95)


def test_jpeg_quality_is_part_of_the_configuration(tmp_path: Path) -> None:
    src = make_jpeg_folder(tmp_path / "src", {"a": 3, "b": 1})
    a = build_dataset(src, tmp_path / "o1", split=ALL_TRAIN, dry_run=True)
    b = build_dataset(src, tmp_path / "o2", split=ALL_TRAIN, dry_run=True, jpeg_quality=90)
    assert a.config["jpeg_quality"] == 95 and b.config["jpeg_quality"] == 90 and a.config_hash != b.config_hash
    with pytest.raises(ValueError, match="jpeg_quality must be an int in \\[1, 100\\]; got 0"):
        build_dataset(src, tmp_path / "o3", jpeg_quality=0, dry_run=True)


def test_jpeg_copies_are_byte_identical_across_workers(tmp_path: Path, tree_bytes) -> None:
    src = make_jpeg_folder(tmp_path / "src", {"a": 12, "b": 3, "c": 2})
    options = dict(split=ALL_TRAIN, policy="medium", seed=4)
    build_dataset(src, tmp_path / "w1", workers=1, **options)
    build_dataset(src, tmp_path / "w2", workers=2, **options)
    one, two = tree_bytes(tmp_path / "w1"), tree_bytes(tmp_path / "w2")
    assert sum(k.endswith(".jpg") and ".aug" in k for k in one) == 19  # more than one chunk of 16
    assert one == two


def test_resume_redoes_a_jpeg_cut_short(tmp_path: Path) -> None:
    src = make_jpeg_folder(tmp_path / "src", {"a": 1})
    data = Augmenter({"name": "light", "seed": 0}, size=None).encode(
        load_rgb(src / "a" / "000.jpg"), label=0, source_hash="ab", repeat=1, fmt="JPEG")
    item = Item("train", 0, str(src / "a" / "000.jpg"), "ab", "g0", "train/a/000.aug1.jpg", 1, 95)
    (tmp_path / "r" / "train" / "a").mkdir(parents=True)
    (tmp_path / "r" / item.out).write_bytes(data)
    assert is_done(item, str(tmp_path / "r"))
    (tmp_path / "r" / item.out).write_bytes(data[:-7])
    assert not is_done(item, str(tmp_path / "r"))


# -- webdataset ---------------------------------------------------------------------------------------------


def _read_shards(out: Path) -> list[dict]:
    import webdataset as wds

    shards = sorted(str(p) for p in out.glob("*.tar"))
    return list(wds.WebDataset(shards, shardshuffle=False, empty_check=False))


def test_webdataset_shards_are_deterministic_and_read_back_with_every_sample(small_source: Path, tmp_path: Path) -> None:
    options = dict(split=(0.6, 0.2, 0.2), format="webdataset", shard_size=7, seed=2)
    s = build_dataset(small_source, tmp_path / "w1", workers=1, **options)
    build_dataset(small_source, tmp_path / "w2", workers=2, **options)
    out = tmp_path / "w1"
    tars = sorted(p.name for p in out.glob("*.tar"))
    assert sorted(os.listdir(out)) == sorted(tars + ["manifest.csv", "manifest.jsonl", "problems.csv", "summary.json"])
    after = s.counts["after"]
    n = {split: sum(after[split].values()) for split in after}
    assert tars == sorted(f"{split}-{i:06d}.tar" for split in ("train", "val", "test") for i in range(-(-n[split] // 7)))
    assert s.tar_shards == sorted(tars) and s.config["shard_size"] == 7
    for name in tars:  # same tar bytes with 1 and 2 workers (fixed mtime, owner, mode)
        assert (out / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    samples = _read_shards(out)
    rows = {r["path"]: r for r in _rows(out)}
    assert len(samples) == len(rows) == sum(n.values())
    got: dict[str, dict[str, int]] = {split: {} for split in after}
    for sample in samples:
        image_ext = next(k for k in sample if k in ("png", "jpg"))
        row = json.loads(sample["json"])
        assert row == rows[f"{Path(sample['__url__']).name}#{sample['__key__']}.{image_ext}"]
        assert int(sample["cls"]) == ["a", "b", "c"].index(row["label"])
        with Image.open(io.BytesIO(sample[image_ext])) as im:
            im.load()
        if row["repeat"] == 0:
            assert sample[image_ext] == Path(row["source_path"]).read_bytes()
        got[row["split"]][row["label"]] = got[row["split"]].get(row["label"], 0) + 1
    assert got == {split: {c: k for c, k in counts.items() if k} for split, counts in after.items()}
    with __import__("tarfile").open(out / tars[0]) as tar:
        members = tar.getmembers()
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "augbal", 0o444)}
    assert members[0].name.count(".") == 1  # key + one extension: augmented keys carry no dot


def test_webdataset_manifest_paths_point_into_the_shards(small_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, split=ALL_TRAIN, format="webdataset", workers=1)
    rows = _rows(out)
    assert {r["path"].split("#")[0] for r in rows} == {"train-000000.tar"}
    copy = next(r for r in rows if r["repeat"] == 2 and r["label"] == "c")
    assert copy["path"] == f"train-000000.tar#train/c/{Path(copy['source_path']).stem}_aug2.png"
    header = (out / "manifest.csv").read_text().splitlines()[0]
    assert header.startswith("path,label,split,group")


def test_webdataset_build_stopped_while_packing_resumes_to_the_same_tar_bytes(small_source: Path, tmp_path: Path,
                                                                             monkeypatch, tree_bytes) -> None:
    import augbal.build._webdataset as webdataset_module

    def fail(root, entries):
        raise OSError(28, "No space left on device", root)

    options = dict(split=(0.6, 0.2, 0.2), format="webdataset", shard_size=5, workers=1)
    monkeypatch.setattr(webdataset_module, "write_shards", fail)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(small_source, tmp_path / "out", **options)
    monkeypatch.undo()
    assert (tmp_path / "out.incomplete" / "train").is_dir()  # the loose files are kept until packed
    s = build_dataset(small_source, tmp_path / "out", resume=True, **options)
    assert s.resumed == sum(r["augmented"] for r in s.rows) == 11  # every copy kept, none redone
    build_dataset(small_source, tmp_path / "whole", **options)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "whole")


def test_webdataset_refuses_two_files_with_one_key(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 3, "b": 1})
    os.replace(src / "a" / "001.png", src / "a" / "x.y.png")
    os.replace(src / "a" / "002.png", src / "a" / "x_y.png")
    with pytest.raises(BuildOptionError, match=r"'train/a/x.y.png' and 'train/a/x_y.png' would both be key "
                                               r"'train/a/x_y_png'"):
        build_dataset(src, tmp_path / "out", split=ALL_TRAIN, format="webdataset", dry_run=True)
    with pytest.raises(BuildOptionError, match="shard_size only applies with format='webdataset'"):
        build_dataset(src, tmp_path / "out", shard_size=10, dry_run=True)
    with pytest.raises(ValueError, match="format must be one of"):
        build_dataset(src, tmp_path / "out", format="tar", dry_run=True)


def test_webdataset_keys_of_names_that_differ_in_the_extension_take_it(make_folder, tmp_path: Path) -> None:
    from PIL import Image

    src = make_folder(tmp_path / "src", {"a": 3, "b": 1})
    Image.open(src / "a" / "001.png").save(src / "a" / "x.bmp")
    Image.open(src / "a" / "002.png").save(src / "a" / "x.tif")
    s = build_dataset(src, tmp_path / "out", split=ALL_TRAIN, format="webdataset", target={"a": 5, "b": 3},
                      workers=1)
    rows = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    paths = {(r["source_path"], r["repeat"]): r["path"].split("#")[1] for r in rows}
    assert paths[str(src / "a" / "x.bmp"), 0] == "train/a/x_bmp.bmp"
    assert paths[str(src / "a" / "x.tif"), 0] == "train/a/x_tif.tif"
    assert len(set(paths.values())) == len(rows) == s.written


# -- skew and existing splits -------------------------------------------------------------------------------


def test_skew_applies_a_long_tail_to_the_training_split_before_balancing(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 20, "b": 20, "c": 20})
    s = build_dataset(src, tmp_path / "o", split=ALL_TRAIN, skew="ratio=4", dry_run=True)
    train = {r["class"]: (r["before"], r["after"], r["augmented"]) for r in s.rows if r["split"] == "train"}
    assert train == {"a": (20, 20, 0), "b": (10, 20, 10), "c": (5, 20, 15)}  # 20 * 4^(-i/2)
    assert s.skewed_out == {"a": 0, "b": 10, "c": 15} and s.config["skew"] == {"ratio": 4, "order": "count"}
    step = build_dataset(src, tmp_path / "o", split=ALL_TRAIN, skew={"ratio": 5, "profile": "step", "mu": 0.34},
                         target={"a": 20}, dry_run=True)
    assert {r["class"]: r["before"] for r in step.rows if r["split"] == "train"} == {"a": 20, "b": 20, "c": 4}
    other = build_dataset(src, tmp_path / "o", split=ALL_TRAIN, skew="ratio=4", seed=1, dry_run=True)
    assert other.config_hash != s.config_hash


def test_skew_ratio_makes_the_largest_class_the_head_not_the_first_name(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 5, "b": 20, "c": 10})
    s = build_dataset(src, tmp_path / "o", split=ALL_TRAIN, skew="ratio=16", dry_run=True)
    assert {r["class"]: r["before"] for r in s.rows if r["split"] == "train"} == {"a": 1, "b": 20, "c": 5}
    given = build_dataset(src, tmp_path / "o", split=ALL_TRAIN, skew="ratio=4,order=given", dry_run=True)
    assert {r["class"]: r["before"] for r in given.rows if r["split"] == "train"} == {"a": 5, "b": 2, "c": 1}


def test_skew_keeps_val_and_test_and_writes_only_the_kept_originals(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 20, "b": 20})
    out = tmp_path / "out"
    s = build_dataset(src, out, split=(0.5, 0.25, 0.25), skew="ratio=5", target={"a": 10}, workers=1)
    assert s.counts["after"] == {"train": {"a": 10, "b": 2}, "val": {"a": 5, "b": 5}, "test": {"a": 5, "b": 5}}
    assert len(os.listdir(out / "train" / "b")) == 2
    assert json.loads((out / "summary.json").read_text())["skewed_out"] == {"a": 0, "b": 8}


@pytest.mark.parametrize(("skew", "message"), [
    ("ratio", "skew must be key=value pairs"),
    ("ratio=100,colour=red", "skew keys must be among .*; got colour"),
    ("ratio=10,ratio=20", "skew must give each key once; got ratio twice"),
    ("ratio=0.5", "ratio .* must be"),
    ("{bad", "skew must be .* JSON dict; got '{bad' \\(Expecting property name"),
])
def test_bad_skew_names_the_option(small_source: Path, tmp_path: Path, skew: str, message: str) -> None:
    with pytest.raises(BuildOptionError, match=message) as info:
        build_dataset(small_source, tmp_path / "o", skew=skew, dry_run=True)
    assert info.value.option == "skew"


def _existing(make_folder, root: Path) -> Path:
    make_folder(root / "train", {"a": 6, "b": 2}, seed=1)
    make_folder(root / "val", {"a": 2, "b": 1}, seed=2)
    make_folder(root / "test", {"a": 3, "b": 3}, seed=3)
    return root


def test_existing_splits_keep_the_source_folders_and_copy_val_test_untouched(make_folder, tmp_path: Path) -> None:
    src = _existing(make_folder, tmp_path / "src")
    out = tmp_path / "out"
    s = build_dataset(src, out, split="existing", workers=1)
    assert s.counts["after"] == {"train": {"a": 6, "b": 6}, "val": {"a": 2, "b": 1}, "test": {"a": 3, "b": 3}}
    assert s.config["split"] == "existing"
    for split in ("val", "test"):
        for p in sorted((src / split).rglob("*.png")):
            assert (out / split / p.relative_to(src / split)).read_bytes() == p.read_bytes()
    names = sorted(os.listdir(out / "train" / "b"))
    assert names == ["000.aug1.png", "000.aug2.png", "000.png", "001.aug1.png", "001.aug2.png", "001.png"]
    assert all(r["split"] == "train" for r in _rows(out) if r["repeat"])


def test_existing_splits_without_val_and_with_a_leaked_duplicate(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src" / "train", {"a": 4, "b": 2}, seed=1).parent
    make_folder(src / "test", {"a": 2, "b": 2}, seed=5)
    (src / "test" / "b" / "dup.png").write_bytes((src / "train" / "a" / "000.png").read_bytes())
    s = build_dataset(src, tmp_path / "out", split="existing", dry_run=True)
    assert s.counts["after"]["val"] == {"a": 0, "b": 0} and s.counts["after"]["test"] == {"a": 2, "b": 3}
    assert any("1 val/test images" in w and "byte-identical to training images" in w for w in s.warnings)


def test_existing_splits_need_the_same_classes_naming_the_split(make_folder, tmp_path: Path) -> None:
    src = _existing(make_folder, tmp_path / "src")
    make_folder(src / "val", {"z": 1})
    with pytest.raises(BuildOptionError, match=r"val \(.*src/val\) has extra z \(train has a, b\)") as info:
        build_dataset(src, tmp_path / "out", split="existing", dry_run=True)
    assert info.value.option == "split"
    with pytest.raises(BuildOptionError, match="needs a SOURCE/train folder"):
        build_dataset(src / "val", tmp_path / "out", split="existing", dry_run=True)


# -- the writer path ----------------------------------------------------------------------------------------


def test_originals_are_spread_among_the_copies_same_items() -> None:
    from augbal.build._execute import _interleaved

    originals = [Item("train", 0, f"/s/{i}.png", "ab", "g", f"train/a/{i}.png", 0) for i in range(3)]
    copies = [Item("train", 0, "/s/0.png", "ab", "g", f"train/a/0.aug{k}.png", k) for k in range(1, 7)]
    order = [item.out for item in _interleaved(originals + copies)]
    assert order == ["train/a/0.aug1.png", "train/a/0.png", "train/a/0.aug2.png", "train/a/0.aug3.png",
                     "train/a/1.png", "train/a/0.aug4.png", "train/a/0.aug5.png", "train/a/2.png",
                     "train/a/0.aug6.png"]
    assert [i.out for i in _interleaved(originals)] == [i.out for i in originals]


def test_written_copies_have_the_umask_permissions_and_no_temporary_file_is_left(small_source: Path, tmp_path) -> None:
    out = tmp_path / "out"
    build_dataset(small_source, out, split=ALL_TRAIN, workers=1)
    mask = os.umask(0o022)
    os.umask(mask)
    copies = sorted(out.glob("train/*/*.aug*.png"))
    assert len(copies) == 17 and {p.stat().st_mode & 0o777 for p in copies} == {0o666 & ~mask}
    assert [p for p in out.rglob("*") if p.name.endswith(".part")] == []


def test_a_write_that_fails_midway_leaves_no_torn_file_and_a_copy_cut_short_is_not_done(
    make_folder, tmp_path: Path, monkeypatch
) -> None:
    import errno

    import augbal.build._execute as execute

    root = tmp_path / "r"
    real_write, calls = os.write, []

    def full(fd, data):  # the second os.write of a file fails, as a full disk does
        calls.append(len(data))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[:10])

    monkeypatch.setattr(execute.os, "write", full)
    with pytest.raises(OSError, match="No space left"):
        execute._write_bytes(str(root / "train" / "a" / "x.aug1.jpg"), b"\xff\xd8" + b"x" * 100 + b"\xff\xd9")
    monkeypatch.undo()
    assert list((root / "train" / "a").iterdir()) == []

    src = make_folder(tmp_path / "src", {"a": 1})
    original = Item("train", 0, str(src / "a" / "000.png"), "ab", "g0", "train/a/000.png", 0)
    execute.copy_original(original, str(root), link=False)
    assert is_done(original, str(root)) and (root / original.out).read_bytes() == (src / "a" / "000.png").read_bytes()
    (root / original.out).write_bytes((src / "a" / "000.png").read_bytes()[:-3])  # a copy a kill cut short
    assert not is_done(original, str(root))


@pytest.mark.parametrize("whole", [1 << 20, 10])  # through memory in one read; past the size, through shutil
def test_originals_are_copied_byte_for_byte_whichever_way(make_folder, tmp_path: Path, monkeypatch, whole) -> None:
    import augbal.build._execute as execute

    monkeypatch.setattr(execute, "_WHOLE_COPY", whole)
    calls = []
    real = execute.shutil.copyfile
    monkeypatch.setattr(execute.shutil, "copyfile", lambda a, b: calls.append(a) or real(a, b))
    src = make_folder(tmp_path / "src", {"a": 2})
    root = tmp_path / "r"
    for i, name in enumerate(sorted(os.listdir(src / "a"))):
        item = Item("train", 0, str(src / "a" / name), "ab", f"g{i}", f"train/a/{name}", 0)
        execute.copy_original(item, str(root), link=False)
        assert (root / item.out).read_bytes() == (src / "a" / name).read_bytes() and is_done(item, str(root))
    assert len(calls) == (0 if whole > 10 else 2)
