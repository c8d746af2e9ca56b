"""Issue 9, item 6: ``num_shards``/``shard_index`` builds and ``merge_shards`` equal a single build."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import augbal.build._build as build_module
from augbal.build import (
    BuildOptionError,
    MergeRefusedError,
    OutputPathError,
    ResumeRefusedError,
    build_dataset,
    merge_shards,
    run_local,
    shard_of,
)
from augbal.data import scan

OPTIONS = dict(policy="medium", target={"b": 20, "c": 14}, seed=5, split=(0.6, 0.2, 0.2), workers=1)


def _shards(source: Path, root: Path, k: int = 2, **options) -> list[Path]:
    dirs = []
    for i in range(k):
        build_dataset(source, root / f"part{i}", num_shards=k, shard_index=i, **{**OPTIONS, **options})
        dirs.append(root / f"part{i}")
    return dirs


def test_each_output_is_written_by_exactly_one_shard_chosen_by_content(small_source: Path, tmp_path: Path) -> None:
    plan = build_dataset(small_source, tmp_path / "o", dry_run=True, **OPTIONS)
    summaries = [build_dataset(small_source, tmp_path / "o", dry_run=True, num_shards=3, shard_index=i, **OPTIONS)
                 for i in range(3)]
    assert [s.shard["index"] for s in summaries] == [0, 1, 2]
    assert sum(s.written for s in summaries) == plan.written == 48
    assert all(0 < s.written < plan.written for s in summaries)
    assert all(s.rows == plan.rows and s.config_hash == plan.config_hash for s in summaries)  # the whole build
    from augbal.build._plan import Item

    a = Item("train", 0, "/x/1.png", "ab12", "g0", "train/a/1.png", 0)
    moved = Item("test", 2, "/elsewhere/renamed.png", "ab12", "g7", "test/c/renamed.png", 0)
    assert shard_of(a, 5) == shard_of(moved, 5)  # content hash and repeat alone decide: not path, split, label
    copies = [Item("train", 0, "/x/1.png", "ab12", "g0", f"train/a/1.aug{k}.png", k) for k in range(1, 41)]
    spread = [sum(shard_of(c, 2) == i for c in copies) for i in (0, 1)]
    assert spread == [18, 22]  # one original's copies spread over the shards, not all in one


def test_two_shards_and_merge_equal_a_single_build_byte_for_byte(small_source: Path, tmp_path: Path, tree_bytes) -> None:
    whole = build_dataset(small_source, tmp_path / "whole", **OPTIONS)
    dirs = _shards(small_source, tmp_path)
    want = tree_bytes(tmp_path / "whole")
    parts = [tree_bytes(d) for d in dirs]
    data = {k for k in want if "/" in k}  # the images
    assert {k for p in parts for k in p if "/" in k} == data and not set(parts[0]) & set(parts[1]) & data
    for d, p in zip(dirs, parts):
        assert all(p[k] == want[k] for k in p if "/" in k)
        doc = json.loads(p["summary.json"])
        assert doc["shard"] == {"index": dirs.index(d), "count": 2, "files": sum("/" in k for k in p)}
        assert doc["config_hash"] == whole.config_hash and doc["config"] == whole.config
        assert len(p["manifest.jsonl"].splitlines()) == doc["shard"]["files"]
        assert p["problems.csv"] == want["problems.csv"]
    merged = merge_shards(tmp_path / "merged", list(reversed(dirs)))
    got = tree_bytes(tmp_path / "merged")
    assert sorted(got) == sorted(want)
    assert [k for k in want if k != "summary.json" and got[k] != want[k]] == []  # images, manifest.csv/.jsonl
    doc = json.loads(got["summary.json"])
    assert doc.pop("merged") == {"shards": 2} and doc == json.loads(want["summary.json"])
    assert got["summary.json"].startswith(want["summary.json"][:-3])  # the same text, then the "merged" entry
    assert merged.merged == 2 and merged.written == whole.written == 48 and merged.rows == whole.rows
    assert all(d.is_dir() and tree_bytes(d) == p for d, p in zip(dirs, parts))  # the shards are left as they are
    assert not (tmp_path / "merged.incomplete").exists()
    index = scan(tmp_path / "merged" / "manifest.csv")
    assert dict(zip(index.classes, index.class_counts().tolist())) == {"a": 12, "b": 22, "c": 14}


WDS = dict(format="webdataset", shard_size=7)


@pytest.mark.parametrize("k", [2, 3])
def test_webdataset_shards_and_merge_equal_a_single_webdataset_build(small_source: Path, tmp_path: Path, tree_bytes,
                                                                     k: int) -> None:
    whole = build_dataset(small_source, tmp_path / "whole", **OPTIONS, **WDS)
    want = tree_bytes(tmp_path / "whole")
    tars = sorted(name for name in want if name.endswith(".tar"))
    assert tars == whole.tar_shards == ["test-000000.tar", *(f"train-{i:06d}.tar" for i in range(6)), "val-000000.tar"]
    dirs = _shards(small_source, tmp_path, k, **WDS)
    files = build_dataset(small_source, tmp_path / "files", dry_run=True, num_shards=k, shard_index=0, **OPTIONS)
    images: set[str] = set()
    for i, d in enumerate(dirs):  # each shard is a files tree of its part: no tar until the merge
        part = tree_bytes(d)
        doc = json.loads(part["summary.json"])
        assert doc["shard"] == {"index": i, "count": k, "files": sum("/" in name for name in part)}
        assert doc["config"] == whole.config and doc["config_hash"] == whole.config_hash != files.config_hash
        assert doc["config"]["format"] == "webdataset" and doc["config"]["shard_size"] == 7
        assert doc["tar_shards"] == tars and not any(name.endswith(".tar") for name in part)
        paths = [json.loads(line)["path"] for line in part["manifest.jsonl"].splitlines()]
        assert sorted(paths) == sorted(name for name in part if "/" in name)  # the tree's paths, not tar#key
        images |= {name for name in part if "/" in name}
    assert len(images) == whole.written == 48
    merged = merge_shards(tmp_path / "merged", dirs)
    got = tree_bytes(tmp_path / "merged")
    assert sorted(got) == sorted(want)  # the tar files and the four reports, no loose file
    assert [name for name in want if name != "summary.json" and got[name] != want[name]] == []  # tars, manifests
    doc = json.loads(got["summary.json"])
    assert doc.pop("merged") == {"shards": k} and doc == json.loads(want["summary.json"])
    assert merged.merged == k and merged.tar_shards == tars and merged.config_hash == whole.config_hash
    assert not (tmp_path / "merged.incomplete").exists()
    assert all(not any(name.endswith(".tar") for name in tree_bytes(d)) for d in dirs)  # the shards left as they are


def test_merge_refuses_shards_of_another_format_or_shard_size_naming_it(small_source: Path, tmp_path: Path) -> None:
    small = dict(target={"c": 4}, split=(1.0, 0.0, 0.0))
    files = _shards(small_source, tmp_path / "files", **small)
    tars = _shards(small_source, tmp_path / "wds", **small, **WDS)
    other = _shards(small_source, tmp_path / "wds5", **small, format="webdataset", shard_size=5)
    cases = [
        ([files[0], tars[1]], f"{files[0]} and {tars[1]} differ: --format files and --format webdataset"),
        ([tars[0], files[1]], f"{tars[0]} and {files[1]} differ: --format webdataset and --format files"),
        ([tars[0], other[1]], f"{tars[0]} and {other[1]} differ: --shard-size 7 and --shard-size 5"),
    ]
    for shards, message in cases:
        with pytest.raises(MergeRefusedError) as info:
            merge_shards(tmp_path / "out", shards)
        assert str(info.value) == f"shards must come from one configuration; {message}"
        assert info.value.shards == tuple(map(str, shards))
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


def test_merge_refuses_shards_that_do_not_make_one_build(small_source: Path, tmp_path: Path) -> None:
    small = dict(target={"c": 4}, split=(1.0, 0.0, 0.0))
    dirs = _shards(small_source, tmp_path, **small)
    other = _shards(small_source, tmp_path / "seed1", seed=1, **small)
    three = _shards(small_source, tmp_path / "three", k=3, **small)
    whole = tmp_path / "whole"
    build_dataset(small_source, whole, **{**OPTIONS, **small})
    cases = [
        ([dirs[0], other[1]], f"shards must come from one configuration; {dirs[0]} and {other[1]} differ: "
                              f"--seed 5 and --seed 1"),
        ([dirs[0], dirs[0]], f"each shard index must be given once; shard 0 of 2 is both {dirs[0]} and {dirs[0]}"),
        ([dirs[1]], "every shard index 0..1 must be given; missing shard 0 of 2"),
        ([dirs[0], three[1]], f"shards must come from one --num-shards; got {dirs[0]} of 2 shards and {three[1]} of 3"),
        ([dirs[0], whole], f"SHARD_DIRS must be shard builds (--num-shards, --shard-index); {whole} is a whole build"),
        ([dirs[0], tmp_path / "nothing"], f"SHARD_DIRS must be shard build folders; got {tmp_path / 'nothing'} "
                                          f"(not a folder)"),
    ]
    for shards, message in cases:
        with pytest.raises(MergeRefusedError) as info:
            merge_shards(tmp_path / "out", shards)
        assert str(info.value) == message
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(OutputPathError, match="got non-empty .*full"):
        merge_shards(tmp_path / "full", dirs)
    with pytest.raises(OutputPathError, match="OUT must be outside every shard folder"):
        merge_shards(dirs[0] / "inner", dirs)
    manifest = dirs[1] / "manifest.jsonl"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:-1]))  # a row lost
    with pytest.raises(MergeRefusedError) as info:
        merge_shards(tmp_path / "out", dirs)
    assert str(info.value).startswith(f"SHARD_DIRS must be finished shard builds; {manifest} must hold the ")
    assert str(info.value).endswith(f" rows {dirs[1] / 'shard.json'} lists; got {len(manifest.read_text().splitlines())}")
    assert info.value.shards == (str(dirs[1]),)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


def test_a_failed_merge_leaves_no_out_and_the_shards_whole(small_source: Path, tmp_path: Path, tree_bytes, monkeypatch) -> None:
    dirs = _shards(small_source, tmp_path, target={"c": 4}, split=(1.0, 0.0, 0.0))
    before = [tree_bytes(d) for d in dirs]

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build_module, "write_summary", fail)
    with pytest.raises(OSError, match="No space left"):
        merge_shards(tmp_path / "out", dirs)
    monkeypatch.undo()
    assert not (tmp_path / "out").exists() and (tmp_path / "out.incomplete" / "manifest.csv").is_file()
    assert [tree_bytes(d) for d in dirs] == before
    with pytest.raises(OutputPathError, match="an interrupted merge or build left .*out.incomplete"):
        merge_shards(tmp_path / "out", dirs)
    assert merge_shards(tmp_path / "out", dirs, overwrite=True).merged == 2
    assert not (tmp_path / "out.incomplete").exists()


def test_a_shard_resumes_only_as_the_same_shard(small_source: Path, tmp_path: Path, tree_bytes, monkeypatch) -> None:
    def crash(items, root, **kwargs):
        run_local(items[:3], root, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", root)

    monkeypatch.setattr(build_module, "run_local", crash)
    with pytest.raises(OSError):
        build_dataset(small_source, tmp_path / "out", num_shards=2, shard_index=0, **OPTIONS)
    monkeypatch.undo()
    with pytest.raises(ResumeRefusedError) as info:
        build_dataset(small_source, tmp_path / "out", num_shards=2, shard_index=1, resume=True, **OPTIONS)
    assert str(info.value) == (f"--resume refused: {tmp_path}/out.incomplete was started with --shard-index 0, "
                               f"this run has --shard-index 1")
    with pytest.raises(ResumeRefusedError, match="started with --num-shards 2, this run has no --num-shards$"):
        build_dataset(small_source, tmp_path / "out", resume=True, **OPTIONS)
    build_dataset(small_source, tmp_path / "out", num_shards=2, shard_index=0, resume=True, **OPTIONS)
    build_dataset(small_source, tmp_path / "again", num_shards=2, shard_index=0, **OPTIONS)
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "again")


def test_bad_shard_options_name_the_option(small_source: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildOptionError, match="^shard_index needs num_shards too") as info:
        build_dataset(small_source, tmp_path / "o", shard_index=0, dry_run=True)
    assert info.value.option == "num_shards"
    with pytest.raises(BuildOptionError, match="^num_shards needs shard_index too") as info:
        build_dataset(small_source, tmp_path / "o", num_shards=2, dry_run=True)
    assert info.value.option == "shard_index"
    with pytest.raises(BuildOptionError, match=r"^shard_index must be an int in \[0, 1\]; got 2 \(num_shards 2\)$"):
        build_dataset(small_source, tmp_path / "o", num_shards=2, shard_index=2, dry_run=True)
    with pytest.raises(ValueError, match="num_shards must be an int >= 1; got 0"):
        build_dataset(small_source, tmp_path / "o", num_shards=0, shard_index=0, dry_run=True)
