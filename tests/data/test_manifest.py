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


def test_one_error_lists_every_bad_line(files):
    (files / "m.csv").write_text(
        "path,label\n"
        "img/0.png,cat\n"  # 2 ok
        "img/missing.png,cat\n"  # 3 missing
        "img/1.png,horse\n"  # 4 unknown label
        "img/2.png\n"  # 5 too few fields
        "img/3.png,cat,extra\n"  # 6 too many fields
        ",dog\n"  # 7 empty path
        "img/gone.png,dog\n"  # 8 missing
    )
    with pytest.raises(ValueError) as info:
        scan(files / "m.csv", classes=["cat", "dog"])
    message = str(info.value)
    assert "missing files on lines 3, 8" in message
    assert "unknown label 'horse' (not in classes) on lines 4" in message
    assert "line 5: expected 2 fields" in message and "line 6: expected 2 fields" in message
    assert "line 7: empty or non-text path" in message


def test_jsonl_bad_rows(files):
    (files / "m.jsonl").write_text('{"path": "img/0.png", "label": "a"}\nnot json\n[1, 2]\n{"path": "img/1.png"}\n')
    with pytest.raises(ValueError, match=r"line 2: invalid JSON.*line 3: expected an object.*line 4: expected an object"):
        read_manifest(files / "m.jsonl")


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
