import numpy as np
import pytest

from augbal.data import scan, split, write_manifest


def test_split_sides_round_trip_through_manifests(demo_root, tmp_path):
    index = scan(demo_root)
    sides = split(index, counts={"cat": (None, 10, 10), "deer": (None, 30, 10), "dog": (None, 20, 10)}, seed=3)
    for name, side in zip(("train", "val", "test"), sides):
        manifest = write_manifest(side, tmp_path / "splits" / f"{name}.csv")
        back = scan(manifest, classes=index.classes)
        order = np.argsort(side.paths)
        assert back.paths.tolist() == [str(p) for p in side.paths[order]]
        assert back.labels.tolist() == side.labels[order].tolist()
        assert back.hashes.tolist() == side.hashes[order].tolist()
    assert (tmp_path / "splits" / "test.csv").read_text().count("\n") == 1 + 30


def test_relative_paths_move_with_the_images(demo_root, tmp_path):
    index = scan(demo_root).subset([0, 1])
    text = write_manifest(index, demo_root.parent / "m.csv").read_text().splitlines()
    assert text == ["path,label,group", f"images/cat/{index.paths[0].rsplit('/', 1)[1]},cat,",
                    f"images/cat/{index.paths[1].rsplit('/', 1)[1]},cat,"]
    (demo_root.parent / "m.csv").unlink()


def test_rejects_other_suffix(tmp_path, demo_root):
    with pytest.raises(ValueError, match="writes a .csv file; got 'm.jsonl'"):
        write_manifest(scan(demo_root), tmp_path / "m.jsonl")


def test_file_names_that_are_not_utf8_are_problems_and_the_outputs_utf8(tmp_path):
    import csv
    import os
    import sys

    from PIL import Image

    from augbal.data import write_problems

    if sys.platform != "linux" or sys.getfilesystemencoding().lower() != "utf-8":
        pytest.skip("needs byte file names (Linux, UTF-8 file-system encoding)")
    for k, raw in enumerate((b"a", b"b") * 3):
        os.makedirs(tmp_path / "data" / raw.decode(), exist_ok=True)
        Image.new("RGB", (4, 4), (k * 40, 0, 0)).save(tmp_path / "data" / raw.decode() / f"ok-{k}.png", format="PNG")
        name = os.fsdecode(b"caf\xe9-%d.png" % k)  # Latin-1 bytes: '\udce9' after decoding
        Image.new("RGB", (4, 4), (k * 40, 9, 0)).save(tmp_path / "data" / raw.decode() / name, format="PNG")
    (tmp_path / "data" / "a" / os.fsdecode(b"n\xe9.txt")).write_text("x")
    index = scan(tmp_path / "data")
    assert len(index) == 6 and index.problem_counts() == {"name": 6, "not-image": 1}
    report = write_problems(index, tmp_path / "problems.csv")
    rows = list(csv.DictReader(report.read_bytes().decode("utf-8").splitlines()))  # strict UTF-8
    assert sorted(os.path.basename(r["path"]) for r in rows) == [f"caf\\xe9-{k}.png" for k in range(6)] + ["n\\xe9.txt"]
    manifest = write_manifest(index, tmp_path / "m.csv")
    manifest.read_bytes().decode("utf-8")
    back = scan(manifest)
    assert back.paths.tolist() == index.paths.tolist() and back.hashes.tolist() == index.hashes.tolist()
