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
                 "--overwrite", "--dry-run", "--resume", "--undersample", "--progress / --no-progress"):
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


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _interrupted(source: Path, out: Path, monkeypatch, *args: str) -> None:
    """Leave ``OUT.incomplete`` as a build that failed after its first 35 files (30 originals, 5 copies)."""
    import errno

    import augbal.build._build as build_module
    from augbal.build._execute import run_local

    def crash(items, root, **kwargs):
        run_local(items[:35], root, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device", root)

    monkeypatch.setattr(build_module, "run_local", crash)
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", *args)
    assert result.exit_code == 1 and "No space left on device" in result.output
    monkeypatch.setattr(build_module, "run_local", run_local)


def test_resume_continues_and_a_leftover_without_it_is_refused(source: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    _interrupted(source, out, monkeypatch, "--seed", "0")
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1")
    assert result.exit_code == 2
    assert f"an interrupted build left {out}.incomplete; --resume (resume=True) continues it" in result.output
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", "--seed", "1", "--resume")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --resume refused: {out}.incomplete was started with --seed 0, this run has --seed 1"
    )
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", "--resume")
    assert result.exit_code == 0, result.output
    assert "resumed: kept 5 augmented copies already written" in result.output
    whole = _run(str(source), str(tmp_path / "whole"), "--split", "1,0,0", "--workers", "1")
    assert whole.exit_code == 0 and "resumed" not in whole.output
    assert _tree(out) == _tree(tmp_path / "whole")


def test_undersample_drops_originals_before_oversampling(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", "--undersample", '{"a": 15}')
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "│ a " in x and "train" in x)
    assert [c.strip() for c in line.split("│")[3:7]] == ["20", "15", "1", "0"]
    assert "undersampled: 5 training originals dropped (listed in summary.json)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["after"]["train"] == {"a": 15, "b": 15} and len(summary["dropped"]) == 5
    bad = _run(str(source), str(tmp_path / "o2"), "--dry-run", "--undersample", '{"a": 99}')
    assert bad.exit_code == 2 and "--undersample" in bad.output and "got 99 for class 'a'" in bad.output


def test_progress_is_off_under_clirunner_and_changes_no_output_file(source: Path, tmp_path: Path) -> None:
    args = ("--split", "0.6,0.2,0.2", "--workers", "1")
    plain = _run(str(source), str(tmp_path / "plain"), *args)
    assert plain.exit_code == 0 and "images/s" not in plain.stderr and "images/s" not in plain.output
    shown = _run(str(source), str(tmp_path / "shown"), *args, "--progress")
    assert shown.exit_code == 0, shown.output
    assert "images/s" in shown.stderr and "ETA" in shown.stderr and "images/s" not in shown.stdout
    assert _tree(tmp_path / "shown") == _tree(tmp_path / "plain")
    dry = _run(str(source), str(tmp_path / "dry"), *args, "--progress", "--dry-run")
    assert dry.exit_code == 0 and "images/s" not in dry.stderr
