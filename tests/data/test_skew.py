import math

import numpy as np
import pytest

from augbal.data import ImageIndex, long_tail_counts, scan, select_classes, skew, split

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def synthetic(counts, names, prefix="/fake"):
    labels = np.repeat(np.arange(len(counts)), counts)
    paths = [f"{prefix}/{names[k]}/{i:05d}.jpg" for i, k in enumerate(labels)]
    return ImageIndex.from_arrays(paths, labels, names)


def test_long_tail_counts_cifar10_lt():
    assert long_tail_counts(5000, 10, 100).tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert long_tail_counts(5000, 10, 10).tolist() == [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
    assert long_tail_counts(5000, 10, 50).tolist() == [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100]


@pytest.mark.parametrize("n_max,c,ratio", [(5000, 10, 100), (4500, 3, 100), (450, 3, 25), (1000, 100, 200), (7, 5, 3.5)])
def test_long_tail_counts_match_formula(n_max, c, ratio):
    got = long_tail_counts(n_max, c, ratio)
    exact = [n_max * ratio ** (-i / (c - 1)) for i in range(c)]
    # the formula, with float noise on exact integers (5000 * 100**-1) rounded to the integer
    assert got.tolist() == [round(v) if abs(v - round(v)) < 1e-9 else math.floor(v) for v in exact]
    assert got.dtype == np.int64 and got[0] == n_max and got[-1] == math.floor(n_max / ratio + 1e-9)


def test_step_profile_and_mu():
    assert long_tail_counts(1000, 10, 10, "step").tolist() == [1000] * 5 + [100] * 5
    assert long_tail_counts(1000, 3, 10, "step").tolist() == [1000, 1000, 100]
    assert long_tail_counts(1000, 10, 10, "step", mu=0.2).tolist() == [1000] * 8 + [100] * 2
    assert long_tail_counts(1000, 10, 10, "step", mu=0.9).tolist() == [1000] + [100] * 9
    assert long_tail_counts(1000, 1, 10, "step").tolist() == [1000]
    assert long_tail_counts(1000, 1, 10).tolist() == [1000]


def test_long_tail_counts_errors():
    with pytest.raises(ValueError, match="ratio .* >= 1; got 0.5"):
        long_tail_counts(100, 3, 0.5)
    with pytest.raises(ValueError, match="profile must be one of 'exp', 'step'; got 'linear'"):
        long_tail_counts(100, 3, 10, "linear")
    with pytest.raises(ValueError, match="n_max must be an int >= 1; got 0"):
        long_tail_counts(0, 3, 10)
    with pytest.raises(ValueError, match=r"mu .* \[0, 1\]"):
        long_tail_counts(100, 4, 10, "step", mu=1.5)


def test_skew_cifar10_lt_synthetic():
    index = synthetic([5000] * 10, CIFAR_CLASSES)
    lt = skew(index, ratio=100, seed=0)
    assert lt.class_counts().tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert lt.classes == index.classes
    assert np.all(np.diff([int(p.rsplit("/", 1)[1][:5]) for p in lt.paths]) > 0)  # source order kept
    assert len(set(lt.paths.tolist())) == len(lt)


def test_skew_order_by_name_and_by_count():
    index = synthetic([100, 100, 100], ["a", "b", "c"])
    assert skew(index, ratio=10, order=["c", "a", "b"], seed=0).class_counts().tolist() == [31, 10, 100]
    uneven = synthetic([50, 200, 100], ["a", "b", "c"])
    assert skew(uneven, ratio=4, order="count", seed=0).class_counts().tolist() == [50, 200, 100]
    assert skew(uneven, ratio=4, order="count", n_max=80, seed=0).class_counts().tolist() == [20, 80, 40]
    with pytest.raises(ValueError, match="order must name every class exactly once"):
        skew(index, ratio=10, order=["a", "b"])
    with pytest.raises(ValueError, match="unknown class 'z'"):
        skew(index, ratio=10, order=["a", "b", "z"])


def test_skew_step_profile():
    index = synthetic([100] * 4, ["a", "b", "c", "d"])
    assert skew(index, "step", ratio=10, seed=1).class_counts().tolist() == [100, 100, 10, 10]
    assert skew(index, "step", ratio=10, mu=0.25, seed=1).class_counts().tolist() == [100, 100, 100, 10]


def test_skew_is_seeded():
    index = synthetic([300, 300], ["a", "b"])
    a, b, c = (skew(index, ratio=10, seed=s) for s in (5, 5, 6))
    assert a.paths.tolist() == b.paths.tolist()
    assert a.paths.tolist() != c.paths.tolist()


def test_skew_explicit_counts_and_prior():
    index = synthetic([100, 60, 40], ["cat", "deer", "dog"])
    assert skew(index, counts={"cat": 7, "deer": 0, "dog": 3}).class_counts().tolist() == [7, 0, 3]
    with pytest.raises(ValueError, match=r"counts must name every class \(0 keeps none\); missing: deer"):
        skew(index, counts={"cat": 7, "dog": 3})
    assert skew(index, counts={0: 1, 1: 2, 2: 3}).class_counts().tolist() == [1, 2, 3]
    assert skew(index, prior="balanced").class_counts().tolist() == [40, 40, 40]
    assert skew(index, prior="balanced", size=10).class_counts().tolist() == [4, 3, 3]
    assert skew(index, prior={"cat": 2, "deer": 1, "dog": 1}).class_counts().tolist() == [80, 40, 40]
    assert skew(index, prior={"cat": 0.6, "deer": 0.3, "dog": 0.1}, size=100).class_counts().tolist() == [60, 30, 10]
    assert skew(index, prior={"cat": 1, "deer": 0, "dog": 0}).class_counts().tolist() == [100, 0, 0]


def test_skew_errors_name_the_class():
    index = synthetic([100, 60, 40], ["cat", "deer", "dog"])
    with pytest.raises(ValueError, match="skew needs 50 images of 'dog'; it has 40"):
        skew(index, counts={"cat": 0, "deer": 0, "dog": 50})
    with pytest.raises(ValueError, match="skew needs 100 images of 'deer'; it has 60"):
        skew(index, ratio=1)
    with pytest.raises(ValueError, match="skew needs 67 images of 'deer'; it has 60"):
        skew(index, prior="balanced", size=200)
    with pytest.raises(ValueError, match="exactly one of ratio=, counts= or prior=; got none of them"):
        skew(index)
    with pytest.raises(ValueError, match="exactly one of ratio=, counts= or prior=; got ratio= and prior="):
        skew(index, ratio=10, prior="balanced")
    with pytest.raises(ValueError, match="prior gives a share to classes without images: deer; give them 0"):
        skew(index.subset([0, 199]), prior="balanced")
    with pytest.raises(ValueError, match="prior must be 'balanced'"):
        skew(index, prior="uniform")
    with pytest.raises(ValueError, match="size= only applies with prior="):
        skew(index, ratio=10, size=5)
    with pytest.raises(ValueError, match="the count of class 'cat' must be an int >= 0; got -1"):
        skew(index, counts={"cat": -1, "deer": 0, "dog": 0})


def test_select_classes_relabels_in_given_order():
    index = synthetic([3, 4, 5], ["cat", "deer", "dog"])
    sub = select_classes(index, ["deer", "cat"])
    assert sub.classes == ("deer", "cat")
    assert sub.class_counts().tolist() == [4, 3]
    assert sub.paths.tolist() == index.paths[:7].tolist()
    assert sub.labels.tolist() == [1, 1, 1, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="distinct class names"):
        select_classes(index, ["cat", "cat"])


def test_select_classes_takes_one_class_name_as_one_class():
    # issue 8: select_classes(index, "cat") selected the three classes 'c', 'a', 't'
    index = synthetic([3, 4, 5], ["cat", "deer", "dog"])
    sub = select_classes(index, "cat")
    assert sub.classes == ("cat",) and sub.class_counts().tolist() == [3]
    assert select_classes(index, [2, "cat"]).classes == ("dog", "cat")  # labels work too
    with pytest.raises(ValueError, match="unknown class 'c'; the classes are: cat, deer, dog"):
        select_classes(index, ["c", "a", "t"])


def test_skew_profile_that_empties_a_class_is_an_error_naming_it():
    # issue 8: skew(ratio=100, n_max=50) silently gave [50, 5, 0]
    index = synthetic([60, 60, 60], ["deer", "dog", "cat"])
    with pytest.raises(ValueError) as err:
        skew(index, ratio=100, n_max=50)
    assert str(err.value) == (
        "skew(ratio=100) with n_max=50 leaves class 'cat' with 0 images (counts [50, 5, 0] in order "
        "['deer', 'dog', 'cat']); raise n_max or lower ratio, or pass counts= to drop a class on purpose"
    )
    with pytest.raises(ValueError, match="leaves class 'dog' with 0 images"):
        skew(index, "step", ratio=100, n_max=50, order=["cat", "deer", "dog"], mu=0.3)
    assert skew(index, ratio=10, n_max=50).class_counts().tolist() == [50, 15, 5]
    # dropping a class deliberately stays allowed
    assert skew(index, counts={"deer": 50, "dog": 5, "cat": 0}).class_counts().tolist() == [50, 5, 0]
    assert skew(index, prior={"deer": 1, "dog": 1, "cat": 0}, size=10).class_counts().tolist() == [5, 5, 0]


def test_skew_tables_are_keyed_by_name_or_label_each_class_once():
    index = synthetic([60, 60, 60], ["deer", "dog", "cat"])
    assert skew(index, counts={0: 3, "dog": 2, "2": 1}).class_counts().tolist() == [3, 2, 1]
    with pytest.raises(ValueError, match="each class may be given once; got class 'cat' as 'cat' and 2"):
        skew(index, counts={"deer": 1, "dog": 1, "cat": 1, 2: 1})
    with pytest.raises(ValueError, match="the prior of class 'dog' must be a number >= 0; got -0.5"):
        skew(index, prior={"deer": 1, "dog": -0.5, "cat": 0})
    with pytest.raises(ValueError, match="size must be an int >= 0; got 2.5"):
        skew(index, prior="balanced", size=2.5)


def test_seedlike_3_task():
    """DESIGN.md seedlike-3: train 4500/450/45, val 450/90/18 from the rest, test 1000/class."""
    cifar_train = synthetic([5000] * 10, CIFAR_CLASSES, prefix="/cifar/train")
    cifar_test = synthetic([1000] * 10, CIFAR_CLASSES, prefix="/cifar/test")
    seed = 3

    pool = select_classes(cifar_train, ["deer", "dog", "cat"])
    train = skew(pool, ratio=100, n_max=4500, seed=seed)
    val = skew(pool, ratio=25, n_max=450, seed=seed, exclude=train)
    test = select_classes(cifar_test, ["deer", "dog", "cat"])

    assert train.classes == val.classes == test.classes == ("deer", "dog", "cat")
    assert train.class_counts().tolist() == [4500, 450, 45]
    assert val.class_counts().tolist() == [450, 90, 18]
    assert test.class_counts().tolist() == [1000, 1000, 1000]
    assert not set(train.paths.tolist()) & set(val.paths.tolist())
    for part in (train, val):
        names = [p.split("/")[3] for p in part.paths]
        assert [part.classes[k] for k in part.labels] == names  # relabelled consistently
        assert all(p.startswith("/cifar/train/") for p in part.paths)
    again = skew(pool, ratio=25, n_max=450, seed=seed, exclude=skew(pool, ratio=100, n_max=4500, seed=seed))
    assert again.paths.tolist() == val.paths.tolist()
    # the same task by explicit counts
    train2 = skew(pool, counts={"deer": 4500, "dog": 450, "cat": 45}, seed=seed)
    assert train2.paths.tolist() == train.paths.tolist()


def test_prior_shift_on_a_split(demo_root):
    index = scan(demo_root)  # cat 60, deer 600, dog 180
    train, val, test = split(index, seed=0)
    balanced_val = skew(val, prior="balanced", seed=0)
    assert balanced_val.class_counts().tolist() == [6, 6, 6]
    assert set(balanced_val.paths.tolist()) <= set(val.paths.tolist())
    assert skew(train, ratio=20, order="count", seed=0).class_counts().tolist() == [24, 480, 107]


def test_profile_options_only_with_ratio():
    index = synthetic([10, 10], ["a", "b"])
    with pytest.raises(ValueError, match="n_max= and order= only apply with ratio="):
        skew(index, prior="balanced", order=["b", "a"])
    with pytest.raises(ValueError, match="n_max= and order= only apply with ratio="):
        skew(index, counts={"a": 1, "b": 1}, n_max=5)
    with pytest.raises(ValueError, match=r"skew needs 10 images of 'b'; it has 5 \(after exclude=\)"):
        skew(index, ratio=1, exclude=index.subset(range(15, 20)))


def test_exclude_also_drops_duplicates_of_excluded_images():
    # a1/a2 byte-identical (one exact group), a3/a4 near duplicates (one group)
    paths = [f"/d/a{i}.png" for i in range(6)] + [f"/d/b{i}.png" for i in range(6)]
    hashes = [f"h{i}" for i in range(12)]
    hashes[2] = hashes[1]
    groups = [-1, 0, 0, 1, 1, -1] + [-1] * 6
    index = ImageIndex.from_arrays(paths, [0] * 6 + [1] * 6, ("a", "b"), hashes=hashes, groups=groups)
    train = index.subset([1, 3])
    with pytest.raises(ValueError, match=r"skew needs 3 images of 'a'; it has 2 \(after exclude=\)"):
        skew(index, counts={"a": 3, "b": 6}, exclude=train)
    val = skew(index, counts={"a": 2, "b": 6}, exclude=train)
    assert sorted(val.paths.tolist())[:2] == ["/d/a0.png", "/d/a5.png"]
    # a copy of a5 in another index (no shared path or group id) is matched by content hash
    elsewhere = ImageIndex.from_arrays(["/other/copy.png"], [0], ("a", "b"), hashes=["h5"])
    kept = skew(index, counts={"a": 4, "b": 6}, exclude=elsewhere)
    assert "/d/a5.png" not in kept.paths.tolist()


def test_skew_without_or_with_two_targets_says_which_it_got() -> None:
    from augbal.data import ImageIndex, skew

    index = ImageIndex.from_arrays([f"{i}.png" for i in range(6)], [0, 0, 0, 1, 1, 1], ("a", "b"))
    with pytest.raises(ValueError, match="^skew needs exactly one of ratio=, counts= or prior=; got none of them$"):
        skew(index, n_max=2)
    with pytest.raises(ValueError, match="; got ratio= and counts=$"):
        skew(index, ratio=2, counts={"a": 1, "b": 1})
