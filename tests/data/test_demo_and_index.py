import hashlib

import numpy as np
import pytest

from augbal.data import DEMO_COUNTS, ImageIndex, demo_dataset, scan


def test_demo_dataset_tree_and_counts(tmp_path):
    root = demo_dataset(tmp_path / "d")
    for name, n in DEMO_COUNTS.items():
        assert len(list((root / name).glob("*.jpg"))) == n
    assert sorted(p.name for p in root.iterdir()) == ["cat", "deer", "dog"]


def test_demo_dataset_is_idempotent_and_repairs(tmp_path):
    root = demo_dataset(tmp_path)
    victim = root / "cat" / "0000.jpg"
    original = victim.read_bytes()
    victim.write_bytes(b"x")
    demo_dataset(tmp_path)
    assert victim.read_bytes() == original
    victim.write_bytes(bytes(len(original)))  # same size, other content
    demo_dataset(tmp_path)
    assert victim.read_bytes() == original


def test_scan_demo_exact(demo_root):
    index = scan(demo_root)
    assert index.classes == ("cat", "deer", "dog")
    assert index.class_counts().tolist() == [60, 600, 180]
    assert len(index) == 840 and index.problems == ()
    assert index.paths.dtype.kind == "U" and index.labels.dtype == np.int64
    first = index.paths[0]
    assert index.hashes[0] == hashlib.blake2b(open(first, "rb").read(), digest_size=16).hexdigest()
    assert set(index.widths.tolist()) == {32} and set(index.modes.tolist()) == {"RGB"}


def test_scan_order_is_sorted_and_stable(demo_root):
    a, b = scan(demo_root, workers=1), scan(demo_root, workers=8)
    assert a.paths.tolist() == b.paths.tolist() == sorted(a.paths.tolist())


def test_subset_keeps_classes_and_order(demo_root):
    index = scan(demo_root)
    sub = index.subset([5, 700, 3])
    assert sub.classes == index.classes
    assert sub.paths.tolist() == [index.paths[5], index.paths[700], index.paths[3]]
    assert sub.labels.tolist() == [0, 2, 0]


def test_from_arrays_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ImageIndex.from_arrays(["a", "b"], [0, 2], ["x", "y"])
    with pytest.raises(ValueError, match="one entry per path"):
        ImageIndex.from_arrays(["a", "b"], [0], ["x", "y"])


def test_subset_takes_a_boolean_mask():
    index = ImageIndex.from_arrays(["a", "b", "c", "d"], [0, 1, 0, 1], ["x", "y"])
    assert index.subset(index.labels == 0).paths.tolist() == ["a", "c"]  # not positions 1, 0, 1, 0
    assert len(index.subset(np.zeros(4, dtype=bool))) == 0
    with pytest.raises(ValueError, match=r"one entry per sample \(4\); got shape \(3,\)"):
        index.subset([True, False, True])
