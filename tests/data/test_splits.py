import pickle

import numpy as np
import pytest

from augbal.data import ImageIndex, Split, scan, split


def synthetic(counts, groups=None, names=None):
    labels = np.repeat(np.arange(len(counts)), counts)
    names = names or [f"c{k}" for k in range(len(counts))]
    paths = [f"/fake/{names[k]}/{i:05d}.jpg" for i, k in enumerate(labels)]
    return ImageIndex.from_arrays(paths, labels, names, groups=groups)


def sides(s):
    return s.train_indices, s.val_indices, s.test_indices


def assert_partition(s, n, *, complete=True):
    tr, va, te = sides(s)
    for idx in (tr, va, te):
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert not set(tr.tolist()) & set(va.tolist())
    assert not set(tr.tolist()) & set(te.tolist())
    assert not set(va.tolist()) & set(te.tolist())
    used = len(tr) + len(va) + len(te)
    assert used + len(s.unused_indices) == n
    if complete:
        assert used == n


def side_of(s, n):
    out = np.full(n, -1)
    for k, idx in enumerate(sides(s)):
        out[idx] = k
    return out


def test_ratios_exact_sizes_and_stratified():
    index = synthetic([500, 300, 200])
    s = split(index, ratios=(0.8, 0.1, 0.1), seed=3)
    assert_partition(s, 1000)
    assert s.counts() == {
        "train": {"c0": 400, "c1": 240, "c2": 160},
        "val": {"c0": 50, "c1": 30, "c2": 20},
        "test": {"c0": 50, "c1": 30, "c2": 20},
    }
    train, val, test = s
    assert len(train) == 800 and len(val) == 100 and len(test) == 100
    assert train.paths.tolist() == index.paths[s.train_indices].tolist()
    assert test.classes == index.classes


def test_default_ratios_and_zero_sides():
    index = synthetic([50, 50])
    assert [len(x) for x in sides(split(index))] == [80, 10, 10]
    s = split(index, ratios=(0.75, 0.25, 0.0), seed=0)
    assert [len(x) for x in sides(s)] == [75, 25, 0]
    s = split(index, ratios=(1, 0, 0))
    assert s.train_indices.tolist() == list(range(100))


def test_seeded_and_deterministic():
    index = synthetic([120, 40, 9])
    a, b = split(index, seed=7), split(index, seed=7)
    for x, y in zip(sides(a), sides(b)):
        assert np.array_equal(x, y)
    c = split(index, seed=8)
    assert not np.array_equal(a.test_indices, c.test_indices)
    counted = split(index, counts=(5, 2, 2), seed=7)
    again = split(index, counts=(5, 2, 2), seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(sides(counted), sides(again)))


def test_one_and_two_image_classes_stay_in_train():
    index = synthetic([200, 1, 2, 3])
    for seed in range(10):
        s = split(index, ratios=(0.4, 0.3, 0.3), seed=seed)
        assert_partition(s, 206)
        assert s.counts()["train"]["c1"] == 1 and s.counts()["train"]["c2"] == 2
        assert all(n >= 1 for n in s.counts()["train"].values())


def test_every_class_keeps_a_train_image():
    index = synthetic([100, 3, 3, 4])
    for seed in range(20):
        s = split(index, ratios=(0.2, 0.4, 0.4), seed=seed)
        assert_partition(s, 110)
        assert min(s.counts()["train"].values()) >= 1


def test_groups_never_cross_sides():
    rng = np.random.default_rng(0)
    n = 600
    groups = np.full(n, -1)
    # 60 duplicate groups of 2-4 images inside a class, plus 5 groups spanning two classes
    start = 0
    for g in range(60):
        size = int(rng.integers(2, 5))
        groups[start : start + size] = g
        start += size + 3
    for g, (a, b) in enumerate([(10, 350), (20, 560), (300, 590), (5, 420), (210, 480)], start=100):
        groups[[a, b]] = g
    index = synthetic([300, 200, 100], groups=groups)
    for seed in range(5):
        s = split(index, seed=seed)
        assert_partition(s, n)
        where = side_of(s, n)
        for g in np.unique(groups[groups >= 0]):
            assert len(set(where[groups == g].tolist())) == 1, f"group {g} leaks (seed {seed})"
        assert sum(s.counts()["test"].values()) in range(50, 71)


def test_explicit_groups_override_index_groups():
    index = synthetic([40, 40], groups=[-1] * 80)
    groups = np.arange(80) // 10  # 8 groups of 10
    s = split(index, ratios=(0.5, 0.25, 0.25), seed=1, groups=groups)
    where = side_of(s, 80)
    for g in range(8):
        assert len(set(where[groups == g].tolist())) == 1
    assert [len(x) for x in sides(s)] == [40, 20, 20]
    with pytest.raises(ValueError, match=r"one id per sample \(80\); got shape \(3,\)"):
        split(index, groups=[1, 2, 3])


def test_string_groups():
    index = synthetic([20, 20])
    groups = np.array([f"h{i // 2}" for i in range(40)])
    s = split(index, ratios=(0.5, 0.25, 0.25), seed=0, groups=groups)
    where = side_of(s, 40)
    assert all(where[2 * i] == where[2 * i + 1] for i in range(20))


def test_counts_exact_with_rest_and_unused():
    index = synthetic([100, 50, 20], names=["cat", "deer", "dog"])
    s = split(index, counts={"cat": (60, 10, 10), "deer": (None, 5, 5), "dog": (5, 5, 5)}, seed=0)
    assert_partition(s, 170, complete=False)
    assert s.counts() == {
        "train": {"cat": 60, "deer": 40, "dog": 5},
        "val": {"cat": 10, "deer": 5, "dog": 5},
        "test": {"cat": 10, "deer": 5, "dog": 5},
    }
    assert len(s.unused_indices) == 20 + 5
    assert repr(s) == "Split(train=105, val=20, test=20, unused=25)"
    # integer labels work as keys too
    by_label = split(index, counts={0: (60, 10, 10), 1: (None, 5, 5), 2: (5, 5, 5)}, seed=0)
    assert np.array_equal(by_label.test_indices, s.test_indices)


def test_counts_with_groups_exact_and_leak_free():
    groups = np.full(300, -1)
    groups[:30] = np.arange(30) // 3  # ten triples in class 0
    groups[[0, 150]] = 99  # and one group across classes 0 and 1 (overrides one triple member)
    index = synthetic([150, 150], groups=groups)
    s = split(index, counts=(100, 20, 20), seed=4)
    assert s.counts()["val"] == {"c0": 20, "c1": 20} and s.counts()["test"] == {"c0": 20, "c1": 20}
    assert s.counts()["train"] == {"c0": 100, "c1": 100}
    where = side_of(s, 300)
    for g in np.unique(groups[groups >= 0]):
        assert len(set(where[groups == g].tolist())) == 1


def test_counts_impossible_with_groups_is_an_error():
    index = synthetic([10, 10], groups=[0] * 5 + [1] * 5 + list(range(2, 12)))
    with pytest.raises(ValueError, match="cannot be met with duplicate groups kept on one side"):
        split(index, counts={"c0": (2, 3, 3), "c1": (4, 3, 3)}, seed=0)


def test_clear_errors():
    index = synthetic([12, 80, 2], names=["cat", "dog", "owl"])
    with pytest.raises(ValueError, match="counts for class 'cat' need 60 images; it has 12"):
        split(index, counts={"cat": (40, 10, 10), "dog": (10, 10, 10), "owl": (2, 0, 0)})
    with pytest.raises(ValueError, match="missing: owl"):
        split(index, counts={"cat": (4, 1, 1), "dog": (10, 10, 10)})
    with pytest.raises(ValueError, match="class 'owl' has 2 and counts ask for 1 val"):
        split(index, counts={"cat": (4, 1, 1), "dog": (10, 10, 10), "owl": (1, 1, 0)})
    with pytest.raises(ValueError, match=r"n_train >= 1 .* got \(0, 1, 1\) for 'cat'"):
        split(index, counts={"cat": (0, 1, 1), "dog": (1, 1, 1), "owl": (1, 0, 0)})
    with pytest.raises(ValueError, match="unknown class 'emu'; the classes are: cat, dog, owl"):
        split(index, counts={"emu": (1, 1, 1)})
    with pytest.raises(ValueError, match="summing to 1"):
        split(index, ratios=(0.8, 0.1))
    with pytest.raises(ValueError, match="summing to 1"):
        split(index, ratios=(0.9, 0.1, 0.1))
    with pytest.raises(ValueError, match="train > 0"):
        split(index, ratios=(0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="ratios= or counts=, not both"):
        split(index, ratios=(0.8, 0.1, 0.1), counts=(1, 0, 0))
    tiny = synthetic([4, 4, 4])
    with pytest.raises(ValueError, match="cannot give the test side a stratified share of 12 images in 3 classes"):
        split(tiny, ratios=(0.8, 0.1, 0.1))


def test_split_is_picklable_and_sides_are_indices():
    s = split(synthetic([30, 30]), seed=2)
    t = pickle.loads(pickle.dumps(s))
    assert isinstance(t, Split) and np.array_equal(t.val_indices, s.val_indices)


def test_split_demo_set(demo_root):
    index = scan(demo_root)
    s = split(index, seed=0)
    assert_partition(s, 840)
    assert s.counts()["test"] == {"cat": 6, "deer": 60, "dog": 18}
    assert not set(s.train.paths.tolist()) & set(s.test.paths.tolist())


def test_side_sizes_are_rounded_ratios():
    index = synthetic([501, 301, 195])  # 997 images
    s = split(index, ratios=(0.7, 0.15, 0.15), seed=11)
    assert [len(x) for x in sides(s)] == [697, 150, 150]
    for side in ("val", "test"):  # stratified: each class within one image of its share
        got = s.counts()[side]
        assert all(abs(got[f"c{k}"] - 0.15 * n) <= 1 for k, n in enumerate([501, 301, 195]))


def test_empty_class_in_counts_and_ratios():
    index = ImageIndex.from_arrays([f"{i}.jpg" for i in range(40)], [0] * 20 + [2] * 20, ["a", "empty", "c"])
    s = split(index, counts={"a": (None, 5, 5), "empty": (None, 0, 0), "c": (10, 5, 5)}, seed=0)
    assert s.counts()["train"] == {"a": 10, "empty": 0, "c": 10}
    with pytest.raises(ValueError, match="counts for class 'empty' need 1 images; it has 0"):
        split(index, counts={"a": (1, 0, 0), "empty": (1, 0, 0), "c": (1, 0, 0)})
    # an empty class is not "a class with 1 or 2 images"
    with pytest.raises(ValueError, match="counts for class 'empty' need 2 images; it has 0"):
        split(index, counts={"a": (1, 0, 0), "empty": (None, 1, 1), "c": (1, 0, 0)})
    r = split(index, ratios=(0.5, 0.25, 0.25), seed=0)
    assert r.counts()["val"] == {"a": 5, "empty": 0, "c": 5}


def test_scanned_duplicates_never_leak(demo_root, tmp_path):
    """Byte-identical copies (within and across classes) found by scan stay on one side."""
    import shutil

    root = tmp_path / "tree"
    shutil.copytree(demo_root, root)
    for i in range(12):  # each cat image copied into dog (cross-class) and twice within cat
        src = root / "cat" / f"{i:04d}.jpg"
        shutil.copy(src, root / "dog" / f"copy-of-cat-{i}.jpg")
        shutil.copy(src, root / "cat" / f"again-{i}.jpg")
        shutil.copy(src, root / "cat" / f"again2-{i}.jpg")
    index = scan(root)
    assert len(index) == 840 + 36 and (index.groups >= 0).sum() == 48
    for seed in range(4):
        for s in (split(index, ratios=(0.5, 0.25, 0.25), seed=seed), split(index, counts=(20, 10, 10), seed=seed)):
            train, val, test = s
            hashes = [set(side.hashes.tolist()) for side in (train, val, test)]
            assert not hashes[0] & hashes[1] and not hashes[0] & hashes[2] and not hashes[1] & hashes[2]


def test_seed_and_ratio_types_are_value_errors():
    # issue 8: split(seed=-1) ended in a numpy traceback, split(seed="a") in a TypeError
    index = synthetic([12, 80, 2], names=["cat", "dog", "owl"])
    for seed in (-1, "a", 2.0, None):
        with pytest.raises(ValueError, match=f"seed must be an int >= 0; got {seed!r}"):
            split(index, seed=seed)
    with pytest.raises(ValueError, match="summing to 1, train > 0; got 0.8"):
        split(index, ratios=0.8)
    with pytest.raises(ValueError, match=r"summing to 1, train > 0; got \('a', 'b', 'c'\)"):
        split(index, ratios=("a", "b", "c"))


def test_counts_keyed_by_label_or_name_each_class_once():
    index = synthetic([12, 80, 2], names=["cat", "dog", "owl"])
    by_label = split(index, counts={0: (4, 1, 1), "dog": (10, 10, 10), "2": (2, 0, 0)}, seed=1)
    by_name = split(index, counts={"cat": (4, 1, 1), "dog": (10, 10, 10), "owl": (2, 0, 0)}, seed=1)
    assert by_label.counts() == by_name.counts()
    assert by_label.counts()["val"] == {"cat": 1, "dog": 10, "owl": 0}
    with pytest.raises(ValueError, match="each class may be given once; got class 'cat' as 'cat' and 0"):
        split(index, counts={"cat": (4, 1, 1), 0: (4, 1, 1), "dog": (10, 10, 10), "owl": (2, 0, 0)})
