"""The data layer's typed errors: ValueErrors that carry what they name (the CLI reads them)."""

import unicodedata

import numpy as np
import pytest
from PIL import Image

from augbal.data import (
    DuplicateClassError,
    EmptyClassError,
    ImageLoadError,
    NoClassFoldersError,
    ScanSourceError,
    UnknownFormatError,
    check_formats,
    load_rgb,
    scan,
)


def _tree(root, names=("a", "b")):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        pixels = np.random.default_rng(k).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        for i in range(3):
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_empty_class_error_names_root_and_classes(tmp_path):
    root = _tree(tmp_path)
    (root / "c").mkdir()
    (root / "d").mkdir()
    with pytest.raises(EmptyClassError) as info:
        scan(root)
    assert info.value.root == str(root) and info.value.classes == ("c", "d")
    assert str(info.value) == (
        f"every class needs at least one image (pass allow_empty=True to keep empty classes); empty classes in {root}: c, d"
    )
    assert isinstance(info.value, ValueError)


def test_no_class_folders_and_bad_source(tmp_path):
    with pytest.raises(NoClassFoldersError) as info:
        scan(tmp_path)
    assert info.value.root == str(tmp_path)
    assert str(info.value) == f"no class folders found in {tmp_path} (expected root/<class>/<image>)"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ScanSourceError) as info:
        scan(tmp_path / "notes.txt")
    assert info.value.path == str(tmp_path / "notes.txt")
    assert str(info.value) == f"scan needs an image folder or a .csv/.jsonl manifest; got {tmp_path / 'notes.txt'}"


def test_duplicate_classes_after_nfc(tmp_path):
    root = _tree(tmp_path)
    nfd = unicodedata.normalize("NFD", "café")
    with pytest.raises(DuplicateClassError) as info:
        scan(root, classes=["a", "café", "b", "a", nfd, "a"])
    assert info.value.duplicates == ("a", "café")
    assert info.value.classes == ("a", "café", "b", "a", "café", "a")
    assert str(info.value) == "classes must be distinct names; got ['a', 'café', 'b', 'a', 'café', 'a']"


def test_unknown_formats_from_check_formats_scan_and_load_rgb(tmp_path):
    assert check_formats(["jpg", " png ", "Tif"]) == ["JPEG", "PNG", "TIFF"]
    assert check_formats(None) is None
    with pytest.raises(UnknownFormatError) as info:
        check_formats(["png", "jepg", "gifff"])
    assert info.value.unknown == ("JEPG", "GIFFF") and info.value.formats == ("png", "jepg", "gifff")
    assert str(info.value) == (
        "formats must be image formats Pillow can open (JPEG, PNG, BMP, GIF, TIFF, WEBP, ...); "
        "unknown: JEPG, GIFFF; got ['png', 'jepg', 'gifff']"
    )
    root = _tree(tmp_path)
    with pytest.raises(UnknownFormatError):
        scan(root, formats=["jepg"])
    with pytest.raises(UnknownFormatError):
        load_rgb(root / "a" / "0.png", formats="webpp")


@pytest.mark.parametrize(
    "error",
    [
        EmptyClassError("data", ["bird", "cow"]),
        NoClassFoldersError("data"),
        DuplicateClassError(["cat", "cat"]),
        UnknownFormatError(["JPGG"], ["jpgg", "png"]),
        ScanSourceError("notes.txt"),
        ImageLoadError("data/cat/0001.jpg", "truncated", "cannot decode image: image file is truncated"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling_as_worker_processes_send_them(error):
    # multiprocessing / ProcessPoolExecutor pickle a worker's exception; unpickling called
    # __init__(message) and raised TypeError (missing arguments) or doubled the message
    import pickle

    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)
    assert clone.args == error.args
