from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augbal.cli import cli


@pytest.fixture
def source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, n in {"a": 20, "b": 10}.items():
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "src" / name / f"{i}.png")
    return tmp_path / "src"


def _run(*args: str):
    return CliRunner().invoke(cli, ["build-dataset", *args])


def test_build_prints_the_summary_table_and_writes_the_tree(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "built" in result.output and "max reuse" in result.output and "augmented" in result.output
    line = next(x for x in result.output.splitlines() if "│ b " in x and "train" in x)
    assert [c.strip() for c in line.split("│")[3:7]] == ["10", "20", "2", "10"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["after"]["train"] == {"a": 20, "b": 20} and summary["config"]["seed"] == 2
    assert len(list((out / "train" / "b").glob("*.aug*.png"))) == 10


def test_max_multiplier_short_class_is_reported(source: Path, tmp_path: Path) -> None:
    result = _run(str(source), str(tmp_path / "out"), "--split", "1,0,0", "--max-multiplier", "1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "short: b reaches 10 of its target 20 (--max-multiplier caps it)" in result.output


def test_dry_run_writes_nothing(source: Path, tmp_path: Path) -> None:
    result = _run(str(source), str(tmp_path / "out"), "--dry-run", "--target", '{"b": 12}')
    assert result.exit_code == 0, result.output
    assert "dry run: nothing written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize("where", ["inside", "same", "parent"])
def test_out_and_source_nested_exit_2_naming_both(source: Path, tmp_path: Path, where: str) -> None:
    out = {"inside": source / "a" / "out", "same": source, "parent": tmp_path}[where]
    result = _run(str(source), str(out))
    assert result.exit_code == 2
    error = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert len(error) == 1 and str(source) in error[0] and str(out) in error[0]


def test_non_empty_out_needs_overwrite(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    result = _run(str(source), str(out))
    assert result.exit_code == 2 and f"got non-empty {out}" in result.output
    assert (out / "keep.txt").exists()
    result = _run(str(source), str(out), "--overwrite", "--workers", "1", "--target", '{"b": 12}')
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists()


@pytest.mark.parametrize(
    ("args", "flag", "text"),
    [
        (["--split", "0.8,0.2"], "--split", "got '0.8,0.2'"),
        (["--split", "0.5,0.1,0.1"], "--split", "summing to 1"),
        (["--target", "bogus"], "--target", "bogus"),
        (["--target", "{oops"], "--target", "{oops"),
        (["--policy", "nosuch"], "--policy", "nosuch"),
        (["--max-multiplier", "0"], "--max-multiplier", "0"),
    ],
)
def test_bad_options_exit_2_naming_the_flag(source: Path, tmp_path: Path, args, flag: str, text: str) -> None:
    result = _run(str(source), str(tmp_path / "out"), "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert flag in result.output and text in result.output


def test_help_documents_every_option() -> None:
    result = CliRunner().invoke(cli, ["build-dataset", "--help"])
    assert result.exit_code == 0
    for flag in ("--target", "--split", "--policy", "--size", "--max-multiplier", "--seed", "--link", "--workers",
                 "--overwrite", "--dry-run"):
        assert flag in result.output


def test_an_empty_class_stops_the_build_naming_it(source: Path, tmp_path: Path) -> None:
    """Issue 9: an empty class stops the build with a message naming the class (it was built as 0 rows)."""
    (source / "bird").mkdir()
    out = tmp_path / "out"
    result = _run(str(source), str(out), "--workers", "1")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"Error: empty classes in {source}: bird (a build needs at least one image per class)"
    )
    assert not out.exists() and not Path(f"{out}.incomplete").exists()
