import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from augbal.data import read_manifest, scan

pytestmark = pytest.mark.filterwarnings("ignore::augbal.data.FewImagesWarning")


def _img(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def files(tmp_path):
    for i in range(6):
        _img(tmp_path / "img" / f"{i}.png", i)
    return tmp_path


def test_csv_with_header_relative_and_absolute_paths(files):
    absolute = files / "img" / "5.png"
    (files / "m.csv").write_text(
        f"label,path,group\ndog,img/0.png,p1\ncat,img/1.png,\ndog,img/2.png,p1\ncat,{absolute},\n", encoding="utf-8"
    )
    index = scan(files / "m.csv")
    assert index.classes == ("cat", "dog")
    assert [os.path.basename(p) for p in index.paths.tolist()] == ["1.png", "5.png", "0.png", "2.png"]
    assert index.labels.tolist() == [0, 0, 1, 1]
    assert all(os.path.isfile(p) for p in index.paths.tolist())
    # rows sharing a manifest group share a group id; others have none
    assert index.groups.tolist() == [-1, -1, 0, 0]
    assert index.meta["source"] == "manifest" and index.root == str(files / "m.csv")


def test_headerless_csv_and_jsonl_give_the_same_index(files):
    (files / "a.csv").write_text("img/0.png,x\nimg/1.png,y,g\n\nimg/2.png,x,g\n")
    lines = [{"path": "img/0.png", "label": "x"}, {"path": "img/1.png", "label": "y", "group": "g"}, {},
             {"path": "img/2.png", "label": "x", "group": "g"}]
    (files / "b.jsonl").write_text("\n".join("" if not d else json.dumps(d) for d in lines) + "\n")
    a, b = scan(files / "a.csv"), scan(files / "b.jsonl")
    assert a.paths.tolist() == b.paths.tolist() and a.labels.tolist() == b.labels.tolist() == [0, 0, 1]
    assert a.groups.tolist() == b.groups.tolist() == [-1, 0, 0]


def _bad_manifest(files):
    (files / "img" / "sub").mkdir()
    (files / "m.csv").write_text(
        "path,label\n"
        "img/0.png,cat\n"  # 2 ok
        "img/missing.png,cat\n"  # 3 missing
        "img/1.png,horse\n"  # 4 unknown label
        "img/2.png\n"  # 5 too few fields
        "img/3.png,cat,extra\n"  # 6 too many fields
        ",dog\n"  # 7 empty path
        "img/gone.png,dog\n"  # 8 missing
        "img/sub,dog\n"  # 9 a folder
        "img/4.png,  \n"  # 10 empty label
        "img/5.png,dog\n"  # 11 ok
    )
    return files / "m.csv"


_EXPECTED = [
    ("img/missing.png", "missing", "m.csv:3: img/missing.png: no such file"),
    ("img/1.png", "unknown-class", "m.csv:4: img/1.png: label 'horse' is not one of the classes"),
    ("img/2.png", "bad-row", "m.csv:5: img/2.png: expected 2 fields (as the header: path,label); got 1"),
    ("img/3.png", "bad-row", "m.csv:6: img/3.png: expected 2 fields (as the header: path,label); got 3"),
    ("m.csv", "bad-row", "m.csv:7: empty or non-text path"),
    ("img/gone.png", "missing", "m.csv:8: img/gone.png: no such file"),
    ("img/sub", "not-a-file", "m.csv:9: img/sub: not an image file (a folder)"),
    ("img/4.png", "bad-row", "m.csv:10: img/4.png: empty or non-text label"),
]


def test_bad_rows_are_quarantined_like_bad_files(files):
    index = scan(_bad_manifest(files), classes=["cat", "dog"])
    assert [os.path.basename(p) for p in index.paths.tolist()] == ["0.png", "5.png"]
    assert index.labels.tolist() == [0, 1]
    got = sorted((os.path.relpath(p.path, files), p.kind, p.reason) for p in index.problems)
    assert got == sorted(_EXPECTED)


def test_read_manifest_is_strict_and_names_every_bad_row(files):
    with pytest.raises(ValueError) as info:
        read_manifest(_bad_manifest(files), classes=("cat", "dog"))
    message = str(info.value)
    assert message.startswith(f"manifest {files / 'm.csv'} has 8 bad rows: m.csv:3: img/missing.png: no such file; ")
    assert all(reason in message for _, _, reason in _EXPECTED)


def test_cli_scan_manifest_writes_the_bad_rows_to_the_problems_report(files):
    from click.testing import CliRunner

    from augbal.cli import cli

    out = files / "problems.csv"
    result = CliRunner().invoke(
        cli, ["scan", str(_bad_manifest(files)), "--classes", "cat,dog", "--problems-csv", str(out)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "m.csv:3: img/missing.png: no such file" in result.output
    # each bad row is printed once, as its manifest line names it (not its path, then the line again)
    lines = [line.strip() for line in result.output.splitlines()]
    assert "m.csv:3: img/missing.png: no such file" in lines
    assert not any(line.endswith("m.csv:3: img/missing.png: no such file") and line != "m.csv:3: img/missing.png: no such file"
                   for line in lines)
    with open(out, newline="") as fh:
        rows = sorted((os.path.relpath(r["path"], files), r["kind"], r["reason"]) for r in csv.DictReader(fh))
    assert rows == sorted(_EXPECTED)


def test_a_file_listed_twice_is_a_duplicate_row_not_two_images(files):
    (files / "d.csv").write_text("path,label\nimg/0.png,cat\nimg/5.png,dog\n./img/0.png,cat\nimg/5.png,cat\n")
    index = scan(files / "d.csv")
    assert [os.path.basename(p) for p in index.paths.tolist()] == ["0.png", "5.png"]
    assert index.class_counts().tolist() == [1, 1]
    got = sorted((os.path.relpath(p.path, files), p.kind, p.reason) for p in index.problems)
    assert got == [
        ("img/0.png", "duplicate-row", "d.csv:4: ./img/0.png: the same file as line 2"),
        ("img/5.png", "duplicate-row", "d.csv:5: img/5.png: the same file as line 3 (labelled 'dog' there)"),
    ]
    with pytest.raises(ValueError, match=r"has 2 bad rows: d\.csv:4: \./img/0\.png: the same file as line 2; "):
        read_manifest(files / "d.csv")


def test_jsonl_bad_rows_are_problems(files):
    (files / "m.jsonl").write_text(
        '{"path": "img/0.png", "label": "a"}\nnot json\n[1, 2]\n{"path": "img/1.png"}\n'
        '{"file": "img/2.png", "class": "b"}\n{"path": "img/nope.png", "label": "b"}\n'
    )
    index = scan(files / "m.jsonl")
    assert [os.path.basename(p) for p in index.paths.tolist()] == ["0.png", "2.png"] and index.classes == ("a", "b")
    assert sorted(p.reason for p in index.problems) == [
        "m.jsonl:2: invalid JSON (Expecting value)",
        "m.jsonl:3: expected an object with 'path' and 'label'",
        "m.jsonl:4: img/1.png: expected an object with 'path' and 'label'",
        "m.jsonl:6: img/nope.png: no such file",
    ]
    with pytest.raises(ValueError, match=r"has 4 bad rows: m\.jsonl:2: invalid JSON"):
        read_manifest(files / "m.jsonl")


@pytest.mark.parametrize("header", ["path,label", "file,class", "Filename,Category", "image,target,group", "label,filepath"])
def test_header_spellings_are_recognised(files, header):
    names = [h.strip().lower() for h in header.split(",")]
    row = {"path": "img/0.png", "label": "cat", "group": "g"}
    values = [row["label"] if n in ("label", "class", "category", "target") else row["group"] if n == "group" else row["path"]
              for n in names]
    (files / "m.csv").write_text(header + "\n" + ",".join(values) + "\n")
    rows = read_manifest(files / "m.csv")
    assert [(os.path.basename(r.path), r.label, r.line) for r in rows] == [("0.png", "cat", 2)]


def test_a_first_row_naming_an_existing_file_is_data_not_a_header(files):
    (files / "image").write_bytes((files / "img" / "0.png").read_bytes())
    (files / "m.csv").write_text("image,class\nimg/1.png,class\n")
    rows = read_manifest(files / "m.csv")
    assert [(os.path.basename(r.path), r.label, r.line) for r in rows] == [("image", "class", 1), ("1.png", "class", 2)]


def test_header_without_a_label_column(files):
    (files / "m.csv").write_text("path,group\nimg/0.png,g\n")
    with pytest.raises(ValueError, match=r"header needs a path column .* and a label column .*; got \['path', 'group'\]"):
        scan(files / "m.csv")


def test_labels_differing_only_by_case_warn_and_stay_distinct(files):
    from augbal.data import LabelCaseWarning

    (files / "m.csv").write_text("img/0.png,Deer\nimg/1.png,deer\nimg/2.png,Deer\nimg/3.png,cat\n")
    with pytest.warns(LabelCaseWarning) as record:
        index = scan(files / "m.csv")
    assert [str(w.message) for w in record if w.category is LabelCaseWarning] == [
        "manifest m.csv has labels that differ only by case, kept as distinct classes: 'Deer' (line 1) and 'deer' (line 2)"
    ]
    assert index.classes == ("Deer", "cat", "deer") and index.class_counts().tolist() == [2, 1, 1]


def test_cli_prints_the_case_warning_once(files):
    from click.testing import CliRunner

    from augbal.cli import cli

    (files / "m.csv").write_text("img/0.png,Deer\nimg/1.png,deer\nimg/2.png,Deer\nimg/3.png,deer\nimg/4.png,Deer\nimg/5.png,deer\n")
    result = CliRunner().invoke(cli, ["scan", str(files / "m.csv")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "differ only by case" in line]
    assert lines == ["warning: manifest m.csv has labels that differ only by case, kept as distinct classes: "
                     "'Deer' (line 1) and 'deer' (line 2)"]


def test_labels_are_nfc_and_classes_keep_order_with_empty(files):
    (files / "m.csv").write_text("img/0.png,cafe\u0301\nimg/1.png,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty classes in .*: zzz"):
        scan(files / "m.csv", classes=["b", "café", "zzz"])
    index = scan(files / "m.csv", classes=["b", "café", "zzz"], allow_empty=True)
    assert index.classes == ("b", "café", "zzz") and index.class_counts().tolist() == [1, 1, 0]


def test_corrupt_listed_file_is_quarantined_not_fatal(files):
    (files / "img" / "bad.png").write_bytes(b"not a png")
    (files / "m.csv").write_text("img/0.png,a\nimg/bad.png,a\nimg/1.png,b\n")
    index = scan(files / "m.csv")
    assert len(index) == 2 and [(os.path.basename(p.path), p.kind) for p in index.problems] == [("bad.png", "corrupt")]


def test_not_a_manifest(files):
    (files / "m.txt").write_text("x")
    with pytest.raises(ValueError, match="must be a .csv or .jsonl"):
        read_manifest(files / "m.txt")
    (files / "empty.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="lists no images"):
        read_manifest(files / "empty.csv")
    with pytest.raises(ValueError, match="lists no images"):
        scan(files / "empty.csv")
    (files / "gone.csv").write_text("img/a.png,x\nimg/b.png,x\n")
    with pytest.raises(ValueError, match=r"lists no images \(2 bad rows: gone\.csv:1: img/a\.png: no such file; \.\.\.\)"):
        scan(files / "gone.csv")


def test_a_field_count_error_says_which_columns_count(files):
    (files / "plain.csv").write_text("img/0.png,cat,g1,extra\nimg/5.png,dog\n")
    (files / "header.csv").write_text("file,class,group\nimg/0.png,cat\nimg/5.png,dog,g1\n")
    plain = scan(files / "plain.csv", allow_empty=True)
    headed = scan(files / "header.csv", allow_empty=True)
    assert [p.reason for p in plain.problems] == ["plain.csv:1: img/0.png: expected 2 or 3 fields (path,label[,group]); got 4"]
    assert [p.reason for p in headed.problems] == [
        "header.csv:2: img/0.png: expected 3 fields (as the header: file,class,group); got 2"]
