import csv
import hashlib
import os
import unicodedata
import warnings

import numpy as np
import pytest
from PIL import Image

from augbal.data import FewImagesWarning, scan, write_problems

pytestmark = pytest.mark.filterwarnings("ignore::augbal.data.FewImagesWarning")


def _img(path, seed, size=(16, 16), fmt=None):
    """A random RGB image file (distinct seeds give distinct, non-similar images)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def _tree(root, counts, start=0):
    seed = start
    for name, n in counts.items():
        for i in range(n):
            _img(root / name / f"{i:03d}.png", seed)
            seed += 1
    return root


def _kinds(index):
    return {(os.path.relpath(p.path, index.root), p.kind) for p in index.problems}


def test_counts_hashes_sizes_and_modes(tmp_path):
    _tree(tmp_path, {"b": 3, "a": 4})
    Image.new("L", (5, 7)).save(tmp_path / "a" / "gray.png")
    index = scan(tmp_path)
    assert index.classes == ("a", "b")
    assert index.class_counts().tolist() == [5, 3]
    i = index.paths.tolist().index(str(tmp_path / "a" / "gray.png"))
    assert (index.widths[i], index.heights[i], index.modes[i]) == (5, 7, "L")
    data = (tmp_path / "a" / "gray.png").read_bytes()
    assert index.nbytes[i] == len(data) and index.hashes[i] == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert index.groups.tolist() == [-1] * 8 and index.meta["source"] == "folder"


def test_corrupt_and_truncated_quarantined_rest_goes_on(tmp_path):
    _tree(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "a" / "zero.jpg").write_bytes(b"")
    (tmp_path / "a" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    good = _img(tmp_path / "b" / "cut.jpg", 99, size=(32, 32), fmt="JPEG")
    good.write_bytes(good.read_bytes()[:-50])
    index = scan(tmp_path)
    assert index.class_counts().tolist() == [3, 3]
    assert _kinds(index) == {("a/zero.jpg", "corrupt"), ("a/junk.png", "corrupt"), ("b/cut.jpg", "truncated")}
    assert all(p.reason for p in index.problems)
    # without the full decode, the truncated JPEG passes as a sample (the documented trade-off)
    fast = scan(tmp_path, verify=False)
    assert fast.class_counts().tolist() == [3, 4]
    assert _kinds(fast) == {("a/zero.jpg", "corrupt"), ("a/junk.png", "corrupt")}


def test_problems_csv_report(tmp_path):
    _tree(tmp_path / "data", {"a": 2})
    (tmp_path / "data" / "a" / "bad,name.jpg").write_bytes(b"nope")
    (tmp_path / "data" / "a" / "notes.txt").write_text("x")
    index = scan(tmp_path / "data")
    out = write_problems(index, tmp_path / "problems.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(os.path.basename(r["path"]), r["kind"]) for r in rows] == [("bad,name.jpg", "corrupt"), ("notes.txt", "not-image")]
    assert rows[1]["reason"] == "not an image file (extension not allowed)"
    assert sorted(os.listdir(tmp_path)) == ["data", "problems.csv"]  # no temporary file left
    # a report in a folder that does not exist yet (augbal scan --problems-csv out/p.csv)
    nested = write_problems(index, tmp_path / "out" / "run1" / "problems.csv")
    assert nested.read_text() == out.read_text()


def test_hidden_and_non_image_entries_are_never_classes_or_samples(tmp_path):
    _tree(tmp_path, {"a": 2, "b": 2})
    for hidden in (".DS_Store", "__MACOSX/a/x.png", ".ipynb_checkpoints/y.png", "a/.DS_Store", "a/._000.png",
                   "a/.ipynb_checkpoints/z.png", "b/__MACOSX/w.png"):
        _img(tmp_path / hidden, 7) if hidden.endswith(".png") else (tmp_path / hidden).write_bytes(b"\0")
    (tmp_path / "a" / "readme.md").write_text("x")
    (tmp_path / "a" / "Thumbs.db").write_bytes(b"\0")
    (tmp_path / "top.png").write_bytes(b"\0")
    index = scan(tmp_path)
    assert index.classes == ("a", "b") and len(index) == 4
    assert not any("MACOSX" in p or "ipynb" in p or "/." in p for p in index.paths.tolist())
    assert index.problem_counts() == {"hidden": 7, "not-image": 2, "not-in-class": 1}
    assert index.meta["skipped_hidden"] == 7


def test_empty_class_is_an_error_naming_it_unless_allowed(tmp_path):
    _tree(tmp_path, {"a": 3, "c": 3})
    (tmp_path / "b").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "broken.jpg").write_bytes(b"x")  # only a corrupt file: empty too
    with pytest.raises(ValueError, match="empty classes in .*: b, d"):
        scan(tmp_path)
    index = scan(tmp_path, allow_empty=True)
    assert index.classes == ("a", "b", "c", "d")
    assert index.class_counts().tolist() == [3, 0, 3, 0]
    with pytest.raises(ValueError, match="empty classes in .*: b, d, e$"):
        scan(tmp_path, classes=["a", "b", "c", "d", "e"], allow_empty=False)


def test_classes_argument_fixes_label_order(tmp_path):
    _tree(tmp_path, {"a": 3, "b": 4, "extra": 3})
    index = scan(tmp_path, classes=["b", "a", "zzz"], allow_empty=True)
    assert index.classes == ("b", "a", "zzz")
    assert index.class_counts().tolist() == [4, 3, 0]
    assert _kinds(index) == {("extra", "not-in-class")}


def test_one_or_two_images_warn_naming_the_classes(tmp_path):
    _tree(tmp_path, {"big": 5, "one": 1, "two": 2, "three": 3})
    with pytest.warns(FewImagesWarning, match=r"one \(1\), two \(2\)$") as record:
        index = scan(tmp_path)
    assert len(record) == 1 and issubclass(FewImagesWarning, UserWarning)
    assert index.class_counts().tolist() == [5, 1, 3, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan(tmp_path, classes=["big", "three"])


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_external_symlinks_refused_by_default_with_opt_in(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _tree(root, {"a": 3, "b": 3})
    _img(outside / "ext.png", 50)
    _tree(outside, {"c": 3}, start=60)
    os.symlink(outside / "ext.png", root / "a" / "link.png")
    os.symlink(outside / "c", root / "c")
    os.symlink(root / "a" / "000.png", root / "b" / "inside.png")  # stays inside: accepted
    index = scan(root)
    assert index.classes == ("a", "b") and index.class_counts().tolist() == [3, 4]
    assert _kinds(index) == {("a/link.png", "external-symlink"), ("c", "external-symlink")}
    assert index.problems[0].reason.endswith("; not followed (external symlinks are refused by default)")
    opened = scan(root, follow_external_symlinks=True)
    assert opened.classes == ("a", "b", "c") and opened.class_counts().tolist() == [4, 4, 3]
    assert opened.problems == ()
    # the in-root link is a byte-identical duplicate of its target
    assert opened.meta["duplicates"]["exact_groups"] == 1 and opened.meta["duplicates"]["cross_class_groups"] == 1


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
@pytest.mark.timeout(60)
def test_symlink_loops_and_broken_links_do_not_hang(tmp_path):
    _tree(tmp_path, {"a": 2, "b": 2})
    os.symlink(tmp_path / "a", tmp_path / "a" / "again")  # folder loop
    os.symlink(tmp_path, tmp_path / "b" / "up")  # loops through the root
    os.symlink(tmp_path / "a" / "self.png", tmp_path / "a" / "self.png")  # link to itself
    os.symlink(tmp_path / "nowhere.png", tmp_path / "b" / "dangling.png")
    index = scan(tmp_path, follow_external_symlinks=True)
    assert index.class_counts().tolist() == [2, 2]
    assert _kinds(index) == {
        ("a/again", "symlink-loop"),
        ("b/up", "symlink-loop"),
        ("a/self.png", "symlink-loop"),
        ("b/dangling.png", "broken-symlink"),
    }


def test_unicode_names_are_nfc_and_order_is_deterministic(tmp_path):
    nfd = unicodedata.normalize("NFD", "élan")
    _img(tmp_path / nfd / unicodedata.normalize("NFD", "café.png"), 1)
    _img(tmp_path / nfd / "b.png", 2)
    _img(tmp_path / "日本" / "猫.png", 3)
    _img(tmp_path / "Zebra" / "z.png", 4)
    index = scan(tmp_path)
    assert index.classes == ("Zebra", "élan", "日本")
    assert index.classes[1] == unicodedata.normalize("NFC", "élan")
    assert all(os.path.exists(p) for p in index.paths.tolist())  # paths are the real (on-disk) names
    assert index.class_counts().tolist() == [1, 2, 1]


def test_same_index_whatever_creation_order_or_workers(tmp_path):
    names = [f"{i:02d}.png" for i in range(40)]
    for k, order in enumerate((names, names[::-1])):
        for i, name in enumerate(order):
            _img(tmp_path / f"t{k}" / ("x" if i % 3 else "y") / "sub" / name, seed=int(name[:2]))
    a = scan(tmp_path / "t0", workers=1)
    b = scan(tmp_path / "t1", workers=4)
    rel = [os.path.relpath(p, tmp_path / "t0") for p in a.paths.tolist()]
    assert rel == [os.path.relpath(p, tmp_path / "t1") for p in b.paths.tolist()]
    assert a.hashes.tolist() == b.hashes.tolist() and a.labels.tolist() == b.labels.tolist()
    assert rel == sorted(rel, key=lambda r: (r.split(os.sep)[0], r))


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        scan(tmp_path / "missing")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="image folder or a .csv/.jsonl manifest"):
        scan(tmp_path / "f.txt")
    with pytest.raises(ValueError, match="no class folders"):
        scan(tmp_path)
    with pytest.raises(ValueError, match="workers must be an int >= 1 or None; got 0"):
        scan(tmp_path, workers=0)
    with pytest.raises(ValueError, match=r"max_distance must be an int in \[0, 63\]; got -1"):
        scan(tmp_path, max_distance=-1)
    with pytest.raises(ValueError, match="distinct"):
        scan(tmp_path, classes=["a", "a"])
    with pytest.raises(ValueError, match="not one string; got 'cat,dog'"):
        scan(tmp_path, classes="cat,dog")  # would be classes c, a, t, ",", d, o, g
    # a bad limit must not quarantine every file as "corrupt" (TypeError in each reader)
    _tree(tmp_path / "ok", {"a": 3})
    for bad in ("1e6", 0, 1.5):
        with pytest.raises(ValueError, match=f"max_pixels must be an int >= 1 or None; got {bad!r}"):
            scan(tmp_path / "ok", max_pixels=bad)


def test_bomb_and_format_limits_are_problems(tmp_path):
    _tree(tmp_path, {"a": 2})
    Image.new("1", (300, 300)).save(tmp_path / "a" / "bomb.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "x.tif")
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "y.ppm")
    index = scan(tmp_path, max_pixels=50_000, formats=("PNG", "JPEG"))
    assert _kinds(index) == {("a/bomb.png", "too-large"), ("a/x.tif", "format"), ("a/y.ppm", "not-image")}
    assert len(index) == 2
    # allowing a format also accepts its file extensions
    index = scan(tmp_path, formats=("PNG", "TIFF", "PPM"))
    assert len(index) == 5 and index.problems == ()
    assert len(scan(tmp_path, formats=None)) == 5


def test_two_folders_with_the_same_nfc_name_and_special_files(tmp_path):
    _img(tmp_path / unicodedata.normalize("NFC", "é") / "a.png", 1)
    _img(tmp_path / unicodedata.normalize("NFD", "é") / "b.png", 2)
    _img(tmp_path / "__background__" / "c.png", 3)  # only dot-names, __MACOSX, __pycache__ are hidden
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "__background__" / "pipe.png")  # opening it would block: never opened
    index = scan(tmp_path)
    assert index.classes == ("__background__", "é") and index.class_counts().tolist() == [1, 1]
    kinds = index.problem_counts()
    assert kinds["duplicate-class"] == 1 and kinds.get("not-image", 0) == (1 if hasattr(os, "mkfifo") else 0)


def test_progress_reports_every_file_in_order(tmp_path):
    _tree(tmp_path, {"a": 150, "b": 140})
    (tmp_path / "b" / "bad.png").write_bytes(b"x")
    for workers in (1, 3):
        calls = []
        index = scan(tmp_path, workers=workers, progress=lambda done, total: calls.append((done, total)))
        assert len(index) == 290
        assert calls[0] == (0, 291) and calls[-1] == (291, 291)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls) and len(calls) == 4  # 0 + 3 chunks of <= 128


def test_readers_are_not_forked_while_other_threads_run(tmp_path, monkeypatch):
    # forking a multi-threaded process can leave a lock held forever in the child
    import threading

    import augbal.data._scan as scan_module

    _tree(tmp_path, {"a": 150, "b": 140})
    forked = []
    real = scan_module.ProcessPoolExecutor
    monkeypatch.setattr(scan_module, "ProcessPoolExecutor", lambda *a, **k: forked.append(1) or real(*a, **k))
    alone = scan(tmp_path, workers=2)  # 3 chunks: parallel readers
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        index = scan(tmp_path, workers=2)
    finally:
        stop.set()
        other.join()
    assert len(forked) <= 1  # the first scan may fork; the one beside another thread must not
    assert index.hashes.tolist() == alone.hashes.tolist() and index.paths.tolist() == alone.paths.tolist()


def _huge_png(path, width, height):
    """A valid PNG header claiming ``width x height`` pixels, with a tiny data stream (no big allocation)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


_PILLOW_WORDS = ("DOS attack", "exceeds limit", "178956970", "DecompressionBomb")


def _bomb_tree(root, readers=1):
    """Class ``a``: normal images (enough for ``readers`` chunks of work), a 12000x12000 and a 30000x30000 header."""
    _tree(root, {"a": 3 if readers == 1 else 130 * readers})
    _huge_png(root / "a" / "big.png", 12000, 12000)
    _huge_png(root / "a" / "huge.png", 30000, 30000)
    return root


def test_scan_pixel_limit_one_message_naming_file_and_limit(tmp_path):
    root = _bomb_tree(tmp_path / "d")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = scan(root, max_pixels=1_000_000)
        default = scan(root)
        only_jpeg = scan(root, formats=["JPEG"], allow_empty=True)
    assert [str(w.message) for w in caught] == []
    reasons = {os.path.basename(p.path): (p.kind, p.reason) for p in index.problems}
    assert reasons == {
        "big.png": ("too-large", "image has 12000x12000 = 144000000 pixels, over the limit of max_pixels=1000000 (decompression-bomb guard)"),
        "huge.png": ("too-large", "image has 30000x30000 = 900000000 pixels, over the limit of max_pixels=1000000 (decompression-bomb guard)"),
    }
    assert {os.path.basename(p.path): p.reason.split(" over ")[1] for p in default.problems} == {
        "big.png": "the limit of max_pixels=89478485 (decompression-bomb guard)",
        "huge.png": "the limit of max_pixels=89478485 (decompression-bomb guard)",
    }
    assert {(os.path.basename(p.path), p.kind) for p in only_jpeg.problems} == {
        (f"{i:03d}.png", "format") for i in range(3)} | {("big.png", "format"), ("huge.png", "format")}
    assert all(p.reason == "image format PNG is not allowed (allowed: JPEG)" for p in only_jpeg.problems)


def _cli_env():
    import augbal

    src = os.path.dirname(os.path.dirname(augbal.__file__))
    return dict(os.environ, COLUMNS="400", PYTHONPATH=os.pathsep.join([src] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def test_cli_scan_pixel_limit_in_process(tmp_path):
    from click.testing import CliRunner

    from augbal.cli import cli

    root = _bomb_tree(tmp_path / "d")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, ["scan", str(root), "--max-pixels", "1000000", "--workers", "1"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert [str(w.message) for w in caught] == []
    assert f"{root / 'a' / 'huge.png'}: image has 30000x30000 = 900000000 pixels, over the limit of max_pixels=1000000" in result.output
    assert f"{root / 'a' / 'big.png'}: image has 12000x12000 = 144000000 pixels, over the limit of max_pixels=1000000" in result.output
    assert not any(word in result.output for word in _PILLOW_WORDS) and "warning" not in result.output
    jpeg = CliRunner().invoke(cli, ["scan", str(root), "--formats", "JPEG", "--workers", "1"], env={"COLUMNS": "400"})
    assert "  format: 5" in jpeg.output and "corrupt" not in jpeg.output, jpeg.output


def test_cli_scan_pixel_limit_with_reader_processes(tmp_path):
    import subprocess
    import sys

    root = _bomb_tree(tmp_path / "d", readers=2)  # > 1 chunk: forked reader processes
    run = subprocess.run(
        [sys.executable, "-m", "augbal", "scan", str(root), "--workers", "2", "--no-near-duplicates"],
        capture_output=True, text=True, env=_cli_env(), timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert not any(word in run.stderr + run.stdout for word in _PILLOW_WORDS), run.stderr
    assert run.stderr == ""
    assert "over the limit of max_pixels=89478485" in run.stdout and "  too-large: 2" in run.stdout
