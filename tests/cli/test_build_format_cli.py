"""``augbal build-dataset``: --format webdataset, --shard-size, --jpeg-quality, --skew, --splits existing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augbal.cli import cli


def _folder(root: Path, counts: dict[str, int], *, suffix: str = "jpg", seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(root / name / f"{i}.{suffix}")
    return root


def _run(*args: str):
    return CliRunner().invoke(cli, ["build-dataset", *args])


def test_webdataset_format_writes_shards_and_says_so(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"a": 10, "b": 4})
    out = tmp_path / "out"
    result = _run(str(src), str(out), "--split", "1,0,0", "--workers", "1", "--format", "webdataset",
                  "--shard-size", "8", "--jpeg-quality", "70")
    assert result.exit_code == 0, result.output
    assert "webdataset: 3 tar files (train-000000.tar ... train-000002.tar)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["format"] == "webdataset" and summary["config"]["jpeg_quality"] == 70
    assert summary["tar_shards"] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert not (out / "train").exists()


def test_shard_size_without_webdataset_and_bad_quality_exit_2(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src", {"a": 3, "b": 2})
    result = _run(str(src), str(tmp_path / "out"), "--shard-size", "8", "--dry-run")
    assert result.exit_code == 2
    assert "Invalid value for '--shard-size': --shard-size only applies with --format webdataset; got --format files" in result.output
    result = _run(str(src), str(tmp_path / "out"), "--jpeg-quality", "101", "--dry-run")
    assert result.exit_code == 2 and "--jpeg-quality" in result.output


def test_skew_and_existing_splits_from_the_command_line(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _folder(src / "train", {"a": 20, "b": 20}, seed=1)
    _folder(src / "test", {"a": 2, "b": 2}, seed=2)
    result = _run(str(src), str(tmp_path / "out"), "--splits", "existing", "--skew", "ratio=10", "--dry-run")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "│ b " in x and "train" in x)
    assert [c.strip() for c in line.split("│")[3:7]] == ["2", "20", "10", "18"]
    assert "skewed: 18 training originals left out by --skew" in result.output


@pytest.mark.parametrize(("args", "flag"), [
    (("--skew", "ratio"), "'--skew'"),
    (("--splits", "existing"), "'--split' / '--splits'"),
])
def test_bad_skew_or_split_exit_2_naming_the_option(tmp_path: Path, args, flag: str) -> None:
    src = _folder(tmp_path / "src", {"a": 3, "b": 2})
    result = _run(str(src), str(tmp_path / "out"), *args, "--dry-run")
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}" in result.output
