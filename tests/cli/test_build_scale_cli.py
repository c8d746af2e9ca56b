"""Issue 9, item 6 on the command line: --executor, --ray-address, --num-shards/--shard-index, merge."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augbal.cli import cli


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, n in {"a": 8, "b": 3}.items():
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "src" / name / f"{i}.png")
    return tmp_path / "src"


def _run(*args: str):
    return CliRunner().invoke(cli, ["build-dataset", *args], prog_name="augbal")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


ARGS = ("--split", "0.5,0.25,0.25", "--workers", "1", "--seed", "3")


def test_shards_then_merge_give_the_single_build(source: Path, tmp_path: Path) -> None:
    whole = _run(str(source), str(tmp_path / "whole"), *ARGS)
    assert whole.exit_code == 0, whole.output
    after = json.loads((tmp_path / "whole" / "summary.json").read_text())["counts"]["after"]
    total = sum(n for split in after.values() for n in split.values())
    assert total == 14
    parts = []
    for i in range(2):
        part = _run(str(source), str(tmp_path / f"part{i}"), *ARGS, "--num-shards", "2", "--shard-index", str(i))
        assert part.exit_code == 0, part.output
        files = json.loads((tmp_path / f"part{i}" / "summary.json").read_text())["shard"]["files"]
        assert f"shard {i} of 2: wrote {files} of the {total} files (the table is the whole build)" in part.output
        parts.append(str(tmp_path / f"part{i}"))
    merged = _run("merge", str(tmp_path / "merged"), *parts)
    assert merged.exit_code == 0, merged.output
    assert merged.output.startswith(f"merged 2 shards into {tmp_path / 'merged'}\n")
    assert merged.output.splitlines()[-1] == whole.output.splitlines()[-1]  # the config hash
    got, want = _tree(tmp_path / "merged"), _tree(tmp_path / "whole")
    assert sorted(got) == sorted(want) and [k for k in want if k != "summary.json" and got[k] != want[k]] == []


def test_merge_refusals_exit_2_naming_the_folders(source: Path, tmp_path: Path) -> None:
    part = tmp_path / "part0"
    assert _run(str(source), str(part), *ARGS, "--num-shards", "2", "--shard-index", "0").exit_code == 0
    twice = _run("merge", str(tmp_path / "out"), str(part), str(part))
    assert twice.exit_code == 2
    assert twice.output.splitlines()[0] == "Usage: augbal build-dataset merge [OPTIONS] OUT SHARD_DIRS..."
    assert twice.output.strip().splitlines()[-1] == (
        f"Error: each shard index must be given once; shard 0 of 2 is both {part} and {part}")
    missing = _run("merge", str(tmp_path / "out"), str(part))
    assert missing.exit_code == 2 and "Error: every shard index 0..1 must be given; missing shard 1 of 2" in missing.output
    none = _run("merge", str(tmp_path / "out"))
    assert none.exit_code == 2 and "Missing argument 'SHARD_DIRS...'" in none.output
    assert not (tmp_path / "out").exists()


WDS = ("--format", "webdataset", "--shard-size", "4")


def test_webdataset_shards_then_merge_give_the_single_builds_tar_files(source: Path, tmp_path: Path) -> None:
    whole = _run(str(source), str(tmp_path / "whole"), *ARGS, *WDS)
    assert whole.exit_code == 0, whole.output
    assert "webdataset: 4 tar files (test-000000.tar ... val-000000.tar)" in whole.output
    parts = []
    for i in range(2):
        part = _run(str(source), str(tmp_path / f"part{i}"), *ARGS, *WDS, "--num-shards", "2", "--shard-index", str(i))
        assert part.exit_code == 0, part.output
        assert "webdataset: the merge packs 4 tar files (test-000000.tar ... val-000000.tar)" in part.output
        assert not list((tmp_path / f"part{i}").glob("*.tar")) and (tmp_path / f"part{i}" / "train").is_dir()
        parts.append(str(tmp_path / f"part{i}"))
    merged = _run("merge", str(tmp_path / "merged"), *parts)
    assert merged.exit_code == 0, merged.output
    assert "webdataset: 4 tar files (test-000000.tar ... val-000000.tar)" in merged.output
    assert merged.output.splitlines()[-1] == whole.output.splitlines()[-1]  # the config hash
    got, want = _tree(tmp_path / "merged"), _tree(tmp_path / "whole")
    assert sorted(got) == sorted(want) and sum(name.endswith(".tar") for name in want) == 4
    assert [k for k in want if k != "summary.json" and got[k] != want[k]] == []


def test_merge_of_a_files_shard_and_a_webdataset_shard_exits_2_naming_format(source: Path, tmp_path: Path) -> None:
    files, tars = tmp_path / "files0", tmp_path / "wds1"
    assert _run(str(source), str(files), *ARGS, "--num-shards", "2", "--shard-index", "0").exit_code == 0
    assert _run(str(source), str(tars), *ARGS, *WDS, "--num-shards", "2", "--shard-index", "1").exit_code == 0
    result = _run("merge", str(tmp_path / "out"), str(files), str(tars))
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: shards must come from one configuration; {files} and {tars} differ: --format files and "
        f"--format webdataset")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


@pytest.mark.parametrize(
    ("args", "flag", "text"),
    [
        (["--shard-index", "1"], "--num-shards", "--shard-index needs --num-shards too"),
        (["--num-shards", "2"], "--shard-index", "--num-shards needs --shard-index too"),
        (["--num-shards", "2", "--shard-index", "2"], "--shard-index", "got 2 (num_shards 2)"),
        (["--num-shards", "0", "--shard-index", "0"], "--num-shards", "0 is not in the range x>=1"),
        (["--executor", "dask"], "--executor", "'dask' is not one of 'local', 'ray'"),
        (["--ray-address", "auto"], "--ray-address", "--ray-address needs --executor ray; got --executor local"),
    ],
)
def test_bad_scale_options_exit_2_naming_the_flag(source: Path, tmp_path: Path, args, flag: str, text: str) -> None:
    result = _run(str(source), str(tmp_path / "out"), "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert flag in result.output and text in result.output


def test_executor_ray_without_ray_installed_exits_2(source: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    result = _run(str(source), str(tmp_path / "out"), "--executor", "ray")
    assert result.exit_code == 2
    assert "Invalid value for '--executor'" in result.output and "pip install augbal[ray]" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


def test_help_documents_the_scale_options_and_merge() -> None:
    result = CliRunner().invoke(cli, ["build-dataset", "--help"])
    assert result.exit_code == 0
    for flag in ("--executor [local|ray]", "--ray-address ADDR", "--num-shards K", "--shard-index I",
                 "$RAY_ADDRESS", "pip install augbal[ray]", "augbal build-dataset merge OUT SHARD_DIRS...",
                 "With --format webdataset a shard is written as files; merge packs the tar files."):
        assert flag in " ".join(result.output.split()), flag
    merge = _run("merge", "--help")
    assert merge.exit_code == 0
    assert merge.output.startswith("Usage: augbal build-dataset merge [OPTIONS] OUT SHARD_DIRS...")
    assert "--overwrite" in merge.output and "byte for byte" in merge.output
    assert "packed into the same <split>-NNNNNN.tar files as one build" in " ".join(merge.output.split())


def _disk_full_at(monkeypatch, *, augmented: bool, nth: int) -> list[str]:
    """Make the image writer fail with ENOSPC at its ``nth`` augmented copy (or original);
    returns the paths of that kind it was given, the failing one last."""
    import errno

    import augbal.build._execute as execute

    real, seen = execute._write_bytes, []

    def full(path, data):
        if (".aug" in path) == augmented and len(seen) < nth:
            seen.append(path)
            if len(seen) == nth:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(execute, "_write_bytes", full)
    return seen


def test_a_full_disk_in_the_writer_exits_1_naming_the_file_and_resumes(source: Path, tmp_path: Path, monkeypatch) -> None:
    """Issue 9, item 8: an OSError(ENOSPC) from the image writer leaves a resumable OUT.incomplete."""
    import errno
    import pickle

    from augbal.build import BuildTaskError

    calls = _disk_full_at(monkeypatch, augmented=True, nth=3)  # originals go through the same writer
    out = tmp_path / "out"
    result = _run(str(source), str(out), *ARGS)
    assert result.exit_code == 1
    third = Path(calls[2]).relative_to(f"{out}.incomplete").as_posix()
    assert result.output.strip().splitlines()[-1].startswith(
        f"Error: cannot build {out}: cannot write {third} from {source}/b/")
    assert result.output.strip().endswith(": OSError: [Errno 28] No space left on device")
    monkeypatch.undo()
    resumed = _run(str(source), str(out), *ARGS, "--resume")
    assert resumed.exit_code == 0 and "resumed: kept 2 augmented copies already written" in resumed.output
    assert _run(str(source), str(tmp_path / "whole"), *ARGS).exit_code == 0
    assert _tree(out) == _tree(tmp_path / "whole")
    error = pickle.loads(pickle.dumps(BuildTaskError("train/a/x.aug1.png", "/s/x.png", "OSError: full", errno.ENOSPC)))
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC and error.out == "train/a/x.aug1.png"


def test_a_source_folder_named_merge_is_built_as_dot_slash_merge(source: Path, tmp_path: Path, monkeypatch) -> None:
    source.rename(tmp_path / "merge")
    monkeypatch.chdir(tmp_path)
    result = _run("./merge", "out", "--dry-run", *ARGS)
    assert result.exit_code == 0 and result.output.startswith("plan for out (dry run: nothing written)")
    assert "./merge" in " ".join(_run("--help").output.split())


def test_a_full_disk_while_copying_an_original_names_the_original(source: Path, tmp_path: Path, monkeypatch) -> None:
    failed = _disk_full_at(monkeypatch, augmented=False, nth=1)
    out = tmp_path / "out"
    result = _run(str(source), str(out), *ARGS)
    assert result.exit_code == 1
    rel = Path(failed[0]).relative_to(f"{out}.incomplete")
    assert result.output.strip().splitlines()[-1] == (
        f"Error: cannot build {out}: cannot write {rel.as_posix()} from {source}/{rel.parent.name}/{rel.name}: "
        "OSError: [Errno 28] No space left on device")
