"""The CLI speaks CLI: bad arguments exit 2, failures while working exit 1, each one line naming the flag."""

import ast
import re
import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import augbal.cli
from augbal.cli import cli


def _tree(root: Path) -> Path:
    for k, c in enumerate(("a", "b")):
        (root / c).mkdir(parents=True)
        for i in range(3):
            pixels = np.random.default_rng(10 * k + i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def _one_error(result, code: int) -> str:
    """The single 'Error: ...' line of a clean failure with exit status ``code``."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def places(tmp_path):
    root = _tree(tmp_path / "data")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    return tmp_path, root


NFD = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(
    "args, line",
    [
        (["--classes", "a,a"], "Invalid value for '--classes': class names must be distinct; a is given more than once; got 'a,a'"),
        (["--classes", f"café,{NFD}"], f"Invalid value for '--classes': class names must be distinct; café is given more than once; got 'café,{NFD}'"),
        (["--classes", " , "], "Invalid value for '--classes': must name at least one class; got ' , '"),
        (["--formats", "png,jepg"], "Invalid value for '--formats': must be image formats Pillow can open (JPEG, PNG, BMP, GIF, TIFF, WEBP, ...); unknown: JEPG; got 'png,jepg'"),
        (["--formats", ","], "Invalid value for '--formats': must name at least one format; got ','"),
        (["--max-pixels", "0"], "Invalid value for '--max-pixels': 0 is not in the range x>=1."),
        (["--max-pixels", "lots"], "Invalid value for '--max-pixels': 'lots' is not a valid integer range."),
        (["--workers", "0"], "Invalid value for '--workers': 0 is not in the range x>=1."),
        (["--workers", "two"], "Invalid value for '--workers': 'two' is not a valid integer range."),
        (["--max-distance", "64"], "Invalid value for '--max-distance': 64 is not in the range 0<=x<=63."),
        (["--problems-csv", "{tmp}/file.txt/p.csv"], "Invalid value for '--problems-csv': cannot create {tmp}/file.txt/p.csv: {tmp}/file.txt is a file, not a folder"),
        (["--problems-csv", "{tmp}/empty"], "Invalid value for '--problems-csv': {tmp}/empty is a folder, not a file"),
        (["--frobnicate"], "No such option '--frobnicate'."),
    ],
)
def test_scan_bad_arguments_exit_2_with_one_line_naming_flag_and_value(places, args, line):
    tmp, root = places
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    result = CliRunner().invoke(cli, ["scan", str(root), *args])
    assert _one_error(result, 2) == "Error: " + line.replace("{tmp}", str(tmp))
    assert "scan [OPTIONS] PATH" in result.output.splitlines()[0]  # click's usage line, then the one error


@pytest.mark.parametrize(
    "path, line",
    [
        ("{tmp}/nope", "Invalid value for 'PATH': Path '{tmp}/nope' does not exist."),
        ("{tmp}/file.txt", "Invalid value for 'PATH': must be an image folder or a .csv or .jsonl manifest; got {tmp}/file.txt"),
        ("{tmp}/empty", "Invalid value for 'PATH': no class folders in {tmp}/empty (expected PATH/<class>/<image>, or a .csv or .jsonl manifest)"),
    ],
)
def test_scan_bad_path_exits_2(places, path, line):
    tmp, _ = places
    result = CliRunner().invoke(cli, ["scan", path.replace("{tmp}", str(tmp))])
    assert _one_error(result, 2) == "Error: " + line.replace("{tmp}", str(tmp))


def test_scan_missing_path_argument_exits_2():
    assert _one_error(CliRunner().invoke(cli, ["scan"]), 2) == "Error: Missing argument 'PATH'."


def test_empty_classes_with_no_allow_empty_exit_1_naming_the_flag_not_the_keyword(places):
    _, root = places
    (root / "c").mkdir()
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-allow-empty", "--no-near-duplicates"])
    assert _one_error(result, 1) == (
        f"Error: empty classes in {root}: c (--no-allow-empty fails on them; by default they are reported)"
    )
    assert "allow_empty" not in result.output
    # --classes names a class without a folder: the same rule
    result = CliRunner().invoke(cli, ["scan", str(root), "--classes", "a,zzz,b", "--no-allow-empty"])
    assert _one_error(result, 1) == (
        f"Error: empty classes in {root}: zzz (--no-allow-empty fails on them; by default they are reported)"
    )


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_external_symlink_hint_names_the_flag(places):
    tmp, root = places
    outside = _tree(tmp / "outside")
    os.symlink(outside / "a" / "0.png", root / "a" / "link.png")
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    assert "  external-symlink: 1   (--follow-external-symlinks accepts them)" in result.output
    assert f"    {root}/a/link.png: symlink leaves the scanned folder (-> {outside}/a/0.png); not followed" in result.output
    assert "follow_external_symlinks" not in result.output and "=True" not in result.output
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates", "--follow-external-symlinks"])
    assert result.exit_code == 0 and "problems: 0" in result.output


def test_format_and_size_refusals_name_their_flags(places):
    _, root = places
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates", "--formats", "jpeg"])
    assert result.exit_code == 0, result.output
    assert "  format: 6   (--formats sets the allowed formats)" in result.output
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates", "--max-pixels", "10"])
    assert result.exit_code == 0, result.output
    assert "  too-large: 6   (--max-pixels sets the limit)" in result.output


def test_problems_report_write_failure_exits_1(places, monkeypatch):
    import augbal.data

    tmp, root = places

    def refuse(index, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(augbal.data, "write_problems", refuse)
    report = tmp / "p.csv"
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates", "--problems-csv", str(report)])
    assert _one_error(result, 1) == f"Error: cannot write the problems report {report}: Permission denied: {report}"


def test_unwritable_outputs_exit_2_before_any_work(places, monkeypatch):
    tmp, root = places
    # permission bits do not stop root: make every folder read-only as os.access sees it
    monkeypatch.setattr(augbal.cli._params.os, "access", lambda path, mode: False)
    result = CliRunner().invoke(cli, ["scan", str(root), "--problems-csv", str(tmp / "new" / "p.csv")])
    assert _one_error(result, 2) == f"Error: Invalid value for '--problems-csv': cannot create {tmp}/new/p.csv: {tmp} is not writable"
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp / "empty")])
    assert _one_error(result, 2) == f"Error: Invalid value for '--out': {tmp}/empty is not writable"
    assert list((tmp / "empty").iterdir()) == []


@pytest.mark.parametrize(
    "out, line",
    [
        ("{tmp}/file.txt", "Invalid value for '--out': {tmp}/file.txt is a file, not a folder"),
        ("{tmp}/file.txt/demo", "Invalid value for '--out': cannot create {tmp}/file.txt/demo: {tmp}/file.txt is a file, not a folder"),
        ("{tmp}/file.txt/a/b", "Invalid value for '--out': cannot create {tmp}/file.txt/a/b: {tmp}/file.txt is a file, not a folder"),
    ],
)
def test_demo_out_over_a_file_exits_2(places, out, line):
    tmp, _ = places
    result = CliRunner().invoke(cli, ["demo", "--out", out.replace("{tmp}", str(tmp))])
    assert _one_error(result, 2) == "Error: " + line.replace("{tmp}", str(tmp))
    assert (tmp / "file.txt").read_text() == "x"


def test_demo_write_failures_exit_1_with_one_line(places, monkeypatch):
    tmp, _ = places
    out = tmp / "out"
    out.mkdir()
    (out / "images").write_text("in the way")  # a file where the demo puts its images folder
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
    assert _one_error(result, 1) == f"Error: cannot write the demo to {out}: File exists: {out}/images"

    import augbal._tour

    def refuse(out_dir, *, seed, **options):
        raise PermissionError(13, "Permission denied", str(Path(out_dir) / "images" / "cat"))

    monkeypatch.setattr(augbal._tour, "run_demo", refuse)
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp / "new")])
    assert _one_error(result, 1) == f"Error: cannot write the demo to {tmp}/new: Permission denied: {tmp}/new/images/cat"


def _help(*args) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_help_states_defaults_that_differ_from_the_library():
    text = _help("scan")
    assert "Defaults that differ from augbal.data.scan():" in text
    assert "near duplicates are grouped (scan() does not by default)" in text
    assert "empty classes are reported (scan() raises EmptyClassError by default)" in text
    assert "On by default here; off in augbal.data.scan()." in text  # --near-duplicates
    assert "Report empty classes (the default here) or fail on them (--no-allow-empty: augbal.data.scan()'s default)." in text
    assert "Refuse larger images (default: 89478485, Pillow's limit)." in text
    top = _help()
    assert "Exit status: 0 done, 1 the work failed (an I/O error, data failing a check you asked for), 2 bad arguments." in top


def _cli_imports():
    for path in sorted(Path(augbal.cli.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("augbal"):
                yield path.name, node.module, [a.name for a in node.names]


def test_cli_uses_only_public_names_of_other_subpackages():
    seen = list(_cli_imports())
    assert any(module == "augbal.data" for _, module, _ in seen)
    for name, module, names in seen:
        parts = module.split(".")
        if parts[:2] == ["augbal", "cli"] or module == "augbal._tour":  # its own modules; the demo pipeline
            continue
        assert not any(p.startswith("_") for p in parts[1:]), (name, module)
        assert not any(n.startswith("_") and not n.endswith("__") for n in names), (name, module, names)


def test_cli_does_not_classify_errors_by_message_text():
    for path in Path(augbal.cli.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert not re.search(r"in (str|repr)\(\s*(exc|err|error|e)\b|\.args\[0\]", source), path.name


def test_a_manifest_without_rows_is_a_bad_path_like_an_empty_folder(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    line = _one_error(CliRunner().invoke(cli, ["scan", str(empty)]), 2)
    assert "PATH" in line and "empty.csv" in line and "no rows" in line
    # rows that all fail are a failure of the work (exit 1), listed by line, not a bad argument
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nnope.png,cat\n")
    line = _one_error(CliRunner().invoke(cli, ["scan", str(bad)]), 1)
    assert "bad.csv:2" in line and "no such file" in line


def test_an_empty_output_path_is_named_as_empty() -> None:
    from click.testing import CliRunner

    from augbal.cli import cli

    result = CliRunner().invoke(cli, ["scan", ".", "--problems-csv", ""])
    assert result.exit_code == 2 and "Invalid value for '--problems-csv': must be a file path; got ''" in result.output
