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
    assert f"an interrupted build left {out}.incomplete; --resume continues it, --overwrite discards it" in result.output
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


def test_overwrite_never_deletes_the_images_a_manifest_lists(source: Path, tmp_path: Path) -> None:
    """A manifest's images inside OUT: replacing OUT would delete them (a user lost a dataset this way)."""
    manifest = tmp_path / "m.csv"
    rows = [f"{p},{p.parent.name}" for p in sorted(source.rglob("*.png"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    before = _tree(source)
    for out in (source, source / "a"):
        result = _run(str(manifest), str(out), "--overwrite", "--workers", "1")
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: OUT must not hold SOURCE's images; got ")
        assert f"inside OUT {out} ({30 if out == source else 20} images)" in result.output
    result = _run(str(manifest), str(tmp_path), "--overwrite", "--workers", "1")  # OUT holds the manifest itself
    assert result.exit_code == 2 and "SOURCE must not be inside OUT" in result.output
    assert _tree(source) == before


def test_out_a_symlink_to_a_folder_is_written_through(source: Path, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    result = _run(str(source), str(tmp_path / "link"), "--split", "1,0,0", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "summary.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real", "src"]


@pytest.mark.parametrize(
    ("make", "text"),
    [
        (lambda t: t / "file.txt", "Invalid value for 'SOURCE': must be an image folder or a .csv or .jsonl manifest"),
        (lambda t: t / "empty", "Invalid value for 'SOURCE': no class folders in"),
        (lambda t: t / "header.csv", "Invalid value for 'SOURCE': manifest"),
    ],
)
def test_a_source_that_is_no_dataset_exits_2_naming_source(tmp_path: Path, make, text: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "header.csv").write_text("path,label\n")
    result = _run(str(make(tmp_path)), str(tmp_path / "out"))
    assert result.exit_code == 2 and text in result.output, result.output


def test_out_under_a_file_exits_2_before_any_work(source: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    result = _run(str(source), str(tmp_path / "file.txt" / "out"))
    assert result.exit_code == 2
    assert "Invalid value for 'OUT'" in result.output and "is a file, not a folder" in result.output


@pytest.mark.parametrize(
    ("args", "flag", "text"),
    [
        ([], "SOURCE", "the training split of SOURCE must hold at least 2 classes to balance; got 1 (a 20)"),
        (["--skew", '{"counts": {"a": 5, "b": 0}}'], "--skew",
         "the skewed training split must keep an image of every class to balance; got 0 of b (counts a 5, b 0)"),
        (["--undersample", '{"b": 0}'], "--undersample",
         "the undersampled training split must keep an image of every class to balance; got 0 of b"),
    ],
)
def test_data_a_build_cannot_balance_blames_the_option_that_made_it(source: Path, tmp_path: Path, args, flag, text):
    if not args:  # one class only
        import shutil

        shutil.rmtree(source / "b")
    result = _run(str(source), str(tmp_path / "out"), "--split", "1,0,0", "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}': {text}" in " ".join(result.output.split())
    assert "--target" not in result.output


def test_the_manifest_records_the_policy_as_applied_and_reproduces_the_copy(source: Path, tmp_path: Path) -> None:
    from augbal.build._execute import Augmenter, output_format
    from augbal.data import load_rgb

    for name, args in {"size": ["--size", "6"], "spec": ["--policy", '{"name": "light", "size": 6}']}.items():
        out = tmp_path / name
        result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", *args)
        assert result.exit_code == 0, result.output
        row = next(r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines()) if r["repeat"])
        spec = json.loads(row["policy"])
        assert spec == {"name": "light", "magnitude": 1.0, "seed": 0, "size": 6}  # no unapplied size, mean, std
        assert json.loads((out / "summary.json").read_text())["config"]["size"] == 6
        made = Augmenter(spec, size=None).encode(load_rgb(row["source_path"]), label=0, source_hash=row["source_hash"],
                                                 repeat=row["repeat"], fmt=output_format(row["path"]))
        assert made == (out / row["path"]).read_bytes()
    assert _tree(tmp_path / "size") == _tree(tmp_path / "spec")
    clash = _run(str(source), str(tmp_path / "x"), "--dry-run", "--size", "8", "--policy", '{"name": "light", "size": 6}')
    assert clash.exit_code == 2 and "the policy's size 6 and --size 8 differ" in clash.output


def test_resume_of_a_finished_build_says_so(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(str(source), str(out), "--split", "1,0,0", "--workers", "1").exit_code == 0
    result = _run(str(source), str(out), "--split", "1,0,0", "--workers", "1", "--resume")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        f"Error: --resume needs an interrupted build; got {out}, a finished build (nothing to resume; "
        "--overwrite rebuilds it)")
