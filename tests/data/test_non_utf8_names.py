"""File names, folder names and manifest text that are not valid UTF-8 (Linux bytes, e.g. Latin-1).

Python decodes such bytes with surrogateescape (``b"b\\xe9te"`` -> ``"b\\udce9te"``); no UTF-8
report can hold them, so scan refuses them where it meets them, as problems that name the
file printably, and never indexes them.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from augbal.data import Problem, parse_manifest, read_manifest, scan, write_manifest, write_problems

pytestmark = pytest.mark.filterwarnings("ignore::augbal.data.FewImagesWarning")

BETE = os.fsdecode(b"b\xe9te")  # "b\udce9te": Latin-1 "bête"
CAFE = os.fsdecode(b"caf\xe9.png")
SUB = os.fsdecode(b"sub\xe9")
FILE_RULE = "file name must be valid UTF-8 (rename it); got "
LABEL_RULE = "label must be valid UTF-8 (save the manifest as UTF-8); got "
PATH_RULE = "path must be valid UTF-8 (save the manifest as UTF-8; rename a file whose name is not); got "


@pytest.fixture
def bytes_names(tmp_path: Path) -> None:
    """Skip unless the platform and file system take names that are not UTF-8."""
    if sys.platform != "linux" or sys.getfilesystemencoding().lower() != "utf-8":
        pytest.skip("needs byte file names (Linux, UTF-8 file-system encoding)")
    try:
        os.mkdir(tmp_path / BETE)
        os.rmdir(tmp_path / BETE)
    except (OSError, UnicodeEncodeError):
        pytest.skip("the file system refuses names that are not UTF-8")


def _img(path: Path, seed: int) -> Path:
    """A real PNG with random pixels (distinct seeds: distinct, non-similar images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def _tree(root: Path, counts: dict[str, int], start: int = 0) -> Path:
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            _img(root / name / f"{i:03d}.png", start + 10 * k + i)
    return root


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _report_is_utf8(index, path: Path) -> list[dict[str, str]]:
    """Write the problems report, check it is strict UTF-8 and return its rows."""
    write_problems(index, path)
    text = path.read_bytes().decode("utf-8")  # raises on bytes that are not UTF-8
    return list(csv.DictReader(text.splitlines()))


def test_file_name_not_utf8_is_a_name_problem(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"a": 3, "b": 3})
    _img(root / "a" / CAFE, 99)
    index = scan(root, workers=1)
    assert index.class_counts().tolist() == [3, 3]
    assert index.paths.tolist() == [str(root / c / f"{i:03d}.png") for c in "ab" for i in range(3)]
    assert index.problems == (Problem(f"{root}/a/caf\\xe9.png", "name", FILE_RULE + "b'caf\\xe9.png'"),)
    rows = _report_is_utf8(index, tmp_path / "problems.csv")
    assert rows == [{"path": f"{root}/a/caf\\xe9.png", "kind": "name", "reason": FILE_RULE + "b'caf\\xe9.png'"}]


def test_class_folder_not_utf8_quarantines_each_file_and_is_no_class(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"cat": 3, "dog": 3, BETE: 2})
    (root / BETE / ".DS_Store").write_bytes(b"x")
    for workers in (1, 2):
        index = scan(root, workers=workers)
        assert index.classes == ("cat", "dog") and index.class_counts().tolist() == [3, 3]
        reason = "class folder name must be valid UTF-8 (rename it); got b'b\\xe9te'"
        assert index.problems == (
            Problem(f"{root}/b\\xe9te/.DS_Store", "hidden", "hidden entry skipped"),
            Problem(f"{root}/b\\xe9te/000.png", "name", reason),
            Problem(f"{root}/b\\xe9te/001.png", "name", reason),
        )
    assert [r["kind"] for r in _report_is_utf8(index, tmp_path / "problems.csv")] == ["hidden", "name", "name"]


def test_class_named_in_classes_but_folder_not_utf8_is_empty(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"cat": 3, BETE: 2})
    index = scan(root, classes=("bête", "cat"), allow_empty=True, workers=1)
    assert index.classes == ("bête", "cat") and index.class_counts().tolist() == [0, 3]
    assert index.problem_counts() == {"name": 2}
    with pytest.raises(ValueError, match="empty classes in .*: bête"):
        scan(root, classes=("bête", "cat"), workers=1)


def test_folder_inside_a_class_not_utf8(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"a": 3, "b": 3})
    _img(root / "a" / SUB / "x.png", 50)
    index = scan(root, workers=1)
    assert index.class_counts().tolist() == [3, 3]
    assert index.problems == (
        Problem(f"{root}/a/sub\\xe9/x.png", "name", "folder name must be valid UTF-8 (rename it); got b'sub\\xe9'"),
    )


def test_other_problems_with_such_names_are_printable(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"a": 3, "b": 3})
    (root / "a" / os.fsdecode(b".h\xe9")).write_bytes(b"x")
    (root / "a" / os.fsdecode(b"n\xe9.txt")).write_text("x")
    (root / os.fsdecode(b"top\xe9.png")).write_bytes(b"x")
    (root / "b" / os.fsdecode(b"zero\xe9.png")).write_bytes(b"")  # refused for its name, never opened
    index = scan(root, workers=1)
    assert index.class_counts().tolist() == [3, 3]
    assert sorted((os.path.relpath(p.path, root), p.kind) for p in index.problems) == [
        ("a/.h\\xe9", "hidden"),
        ("a/n\\xe9.txt", "not-image"),
        ("b/zero\\xe9.png", "name"),
        ("top\\xe9.png", "not-in-class"),
    ]
    assert all(_utf8(p.path) and _utf8(p.reason) for p in index.problems)
    assert len(_report_is_utf8(index, tmp_path / "problems.csv")) == 4


def test_source_path_not_utf8_is_refused_but_a_relative_path_scans(bytes_names, tmp_path, monkeypatch):
    root = _tree(tmp_path / BETE, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match=r"source path that is valid UTF-8 .*; got b'.*/b\\xe9te'$"):
        scan(root, workers=1)
    monkeypatch.chdir(root)
    assert scan(".", workers=1).class_counts().tolist() == [3, 3]


def test_class_names_not_utf8_are_refused():
    with pytest.raises(ValueError, match="class names must be valid UTF-8; got"):
        scan(".", classes=("cat", BETE))


def _manifest_images(tmp_path: Path) -> Path:
    for k, rel in enumerate(("d1/cat/000.png", "d1/cat/001.png", "d1/dog/000.png", "d1/dog/001.png")):
        _img(tmp_path / rel, k)
    return tmp_path


def test_csv_manifest_with_latin1_label_and_path(bytes_names, tmp_path):
    _manifest_images(tmp_path)
    _img(tmp_path / "d1" / CAFE, 77)  # a file whose name really is these bytes
    manifest = tmp_path / "latin.csv"
    manifest.write_bytes(
        b"path,label\n"
        b"d1/cat/000.png,c\xe9t\n"
        b"d1/dog/000.png,dog\n"
        b"d1/caf\xe9.png,cat\n"
        b"d1/cat/001.png,cat\n"
        b"d1/dog/001.png,dog\n"
    )
    index = scan(manifest, workers=1)
    assert index.classes == ("cat", "dog")
    assert index.paths.tolist() == [str(tmp_path / p) for p in ("d1/cat/001.png", "d1/dog/000.png", "d1/dog/001.png")]
    assert index.problems == (
        Problem(f"{tmp_path}/d1/caf\\xe9.png", "bad-row", "latin.csv:4: d1/caf\\xe9.png: " + PATH_RULE + "b'd1/caf\\xe9.png'"),
        Problem(f"{tmp_path}/d1/cat/000.png", "bad-row", "latin.csv:2: d1/cat/000.png: " + LABEL_RULE + "b'c\\xe9t'"),
    )
    assert [r["reason"][:12] for r in _report_is_utf8(index, tmp_path / "problems.csv")] == ["latin.csv:4:", "latin.csv:2:"]
    with pytest.raises(ValueError, match=r"has 2 bad rows: latin.csv:2: .*; latin.csv:4: ") as info:
        read_manifest(manifest)
    assert _utf8(str(info.value))


def test_jsonl_manifest_with_latin1_bytes_and_surrogate_escapes(bytes_names, tmp_path):
    _manifest_images(tmp_path)
    manifest = tmp_path / "latin.jsonl"
    manifest.write_bytes(
        b'{"path": "d1/cat/000.png", "label": "c\xe9t"}\n'
        b'{"path": "d1/dog/000.png", "label": "dog"}\n'
        b'{"path": "d1/cat/001.png", "label": "\\udce9"}\n'  # a JSON escape that decodes to a lone surrogate
        b'{"path": "d1/c\xe9t/001.png", "label": "cat"}\n'
        b'{"path": "d1/cat/001.png", "label": "cat"}\n'
    )
    rows, problems = parse_manifest(manifest)
    assert [(os.path.relpath(r.path, tmp_path), r.label, r.line) for r in rows] == [
        ("d1/dog/000.png", "dog", 2),
        ("d1/cat/001.png", "cat", 5),
    ]
    assert [(p.kind, p.reason) for p in problems] == [
        ("bad-row", "latin.jsonl:1: d1/cat/000.png: " + LABEL_RULE + "b'c\\xe9t'"),
        ("bad-row", "latin.jsonl:3: d1/cat/001.png: " + LABEL_RULE + "b'\\xe9'"),
        ("bad-row", "latin.jsonl:4: d1/c\\xe9t/001.png: " + PATH_RULE + "b'd1/c\\xe9t/001.png'"),
    ]
    assert problems[2].path == f"{tmp_path}/d1/c\\xe9t/001.png"
    index = scan(manifest, workers=1)
    assert index.class_counts().tolist() == [1, 1] and index.problem_counts() == {"bad-row": 3}
    assert len(_report_is_utf8(index, tmp_path / "problems.csv")) == 3


def test_a_scans_manifest_and_report_are_utf8_and_round_trip(bytes_names, tmp_path):
    root = _tree(tmp_path / "data", {"a": 3, "b": 3})
    _img(root / "a" / CAFE, 99)
    _img(root / BETE / "000.png", 98)
    index = scan(root, workers=1)
    manifest = write_manifest(index, tmp_path / "m.csv")
    manifest.read_bytes().decode("utf-8")
    back = scan(manifest, workers=1)
    assert back.paths.tolist() == index.paths.tolist() and back.hashes.tolist() == index.hashes.tolist()
    assert back.problems == ()


def test_cli_scan_prints_and_writes_the_report(bytes_names, tmp_path):
    from augbal.cli import cli

    root = _tree(tmp_path / "data", {"cat": 3, "dog": 3, BETE: 2})
    _img(root / "cat" / CAFE, 99)
    result = CliRunner().invoke(cli, ["scan", str(root), "--workers", "1", "--problems-csv", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert f"{root}/b\\xe9te/000.png: class folder name must be valid UTF-8 (rename it); got b'b\\xe9te'" in result.output
    assert f"{root}/cat/caf\\xe9.png: {FILE_RULE}b'caf\\xe9.png'" in result.output
    rows = list(csv.DictReader((tmp_path / "p.csv").read_bytes().decode("utf-8").splitlines()))
    assert [(os.path.relpath(r["path"], root), r["kind"]) for r in rows] == [
        ("b\\xe9te/000.png", "name"),
        ("b\\xe9te/001.png", "name"),
        ("cat/caf\\xe9.png", "name"),
    ]


def test_build_dataset_quarantines_the_file_and_writes_utf8(bytes_names, tmp_path):
    from augbal.build import build_dataset

    root = _tree(tmp_path / "data", {"cat": 3, "dog": 3})
    _img(root / "cat" / CAFE, 99)
    out = tmp_path / "out"
    build_dataset(root, out, workers=1, split=(1.0, 0.0, 0.0))
    assert out.is_dir() and not (tmp_path / "out.incomplete").exists()
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_bytes().decode("utf-8").splitlines()]
    assert sorted(os.path.relpath(r["source_path"], root) for r in records) == [
        f"{c}/{i:03d}.png" for c in ("cat", "dog") for i in range(3)
    ]
    (out / "manifest.csv").read_bytes().decode("utf-8")
    problems = list(csv.DictReader((out / "problems.csv").read_bytes().decode("utf-8").splitlines()))
    assert [(r["path"], r["kind"]) for r in problems] == [(f"{root}/cat/caf\\xe9.png", "name")]
    summary = json.loads((out / "summary.json").read_bytes().decode("utf-8"))
    assert [p["kind"] for p in summary["problems"]] == ["name"]


def test_a_folder_whose_only_class_folders_are_not_utf8_says_so(bytes_names, tmp_path):
    from click.testing import CliRunner

    from augbal.cli import cli
    from augbal.data import NoClassFoldersError

    root = _tree(tmp_path / "data", {BETE: 2})
    with pytest.raises(NoClassFoldersError) as info:
        scan(root)
    assert info.value.unnamed == ("b'b\\xe9te'",)
    assert str(info.value).endswith("; folders whose names are not valid UTF-8 (rename them): b'b\\xe9te'")
    result = CliRunner().invoke(cli, ["scan", str(root)])
    assert result.exit_code == 2 and "folders whose names are not valid UTF-8 (rename them): b'b\\xe9te'" in result.output
