"""resample_indices: imbalanced-learn's random over/under-samplers on an index column."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import RandomOverSampler
from imblearn.under_sampling import RandomUnderSampler
from torch.utils.data import Dataset, Subset

from augbal.data import ImageIndex
from augbal.sampling import check_sampling_strategy, resample_indices


def seedlike_labels(seed: int = 0) -> np.ndarray:
    """4500 / 450 / 45 labels in a shuffled order."""
    labels = np.repeat(np.arange(3), [4500, 450, 45])
    return np.random.default_rng(seed).permutation(labels)


class LabelsOnly(Dataset):
    """A dataset that fails if anything loads a sample."""

    def __init__(self, labels):
        self.targets = list(labels)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        raise AssertionError("resample_indices must not load samples")


@pytest.mark.parametrize(
    ("strategy", "method", "expected"),
    [
        ("auto", "over", [4500, 4500, 4500]),
        ("minority", "over", [4500, 450, 4500]),
        ({1: 1000, 2: 1000}, "over", [4500, 1000, 1000]),
        ("auto", "under", [45, 45, 45]),
        ("majority", "under", [45, 450, 45]),
        ({0: 450}, "under", [450, 450, 45]),
    ],
)
def test_exact_class_counts(strategy, method, expected):
    labels = seedlike_labels()
    idx = resample_indices(labels, sampling_strategy=strategy, method=method, seed=3)
    assert idx.dtype == np.int64 and idx.ndim == 1
    assert np.bincount(labels[idx], minlength=3).tolist() == expected
    assert idx.min() >= 0 and idx.max() < labels.size
    if method == "over":
        # every original sample kept once, in order, then the added draws from targeted classes
        assert idx[: labels.size].tolist() == list(range(labels.size))
    else:
        assert np.unique(idx).size == idx.size  # no repeats without replacement
    # and the counts are the ones the single strategy checker promises
    targets = check_sampling_strategy(strategy, labels, kind=method, of="labels")
    assert list(targets.values()) == expected


@pytest.mark.parametrize("strategy", ["auto", "not minority", "all", {0: 100, 2: 45}, 0.5])
@pytest.mark.parametrize("method", ["over", "under"])
def test_identical_to_calling_imbalanced_learn_directly(strategy, method):
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1], [300, 60]))
    if isinstance(strategy, dict):
        labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], [300, 60, 45]))
        if method == "over":
            strategy = {1: 300, 2: 100}
    if strategy == 0.5 and method == "under":
        strategy = 0.25
    cls = RandomOverSampler if method == "over" else RandomUnderSampler
    column = np.arange(labels.size)[:, None]
    theirs, _ = cls(sampling_strategy=strategy, random_state=11).fit_resample(column, labels)
    ours = resample_indices(labels, sampling_strategy=strategy, method=method, seed=11)
    np.testing.assert_array_equal(ours, theirs[:, 0])


def test_deterministic_per_seed_and_seed_changes_draw():
    labels = seedlike_labels()
    a = resample_indices(labels, method="over", seed=5)
    b = resample_indices(labels, method="over", seed=5)
    c = resample_indices(labels, method="over", seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # (seed, epoch) sequences: deterministic, and the epoch matters
    e0 = resample_indices(labels, method="under", seed=(5, 0))
    np.testing.assert_array_equal(e0, resample_indices(labels, method="under", seed=[5, 0]))
    assert not np.array_equal(e0, resample_indices(labels, method="under", seed=(5, 1)))
    assert np.bincount(labels[e0]).tolist() == [45, 45, 45]


def test_datasets_are_read_without_loading_samples():
    labels = seedlike_labels()
    ds = LabelsOnly(labels)
    idx = resample_indices(ds, method="under", seed=0)
    np.testing.assert_array_equal(idx, resample_indices(labels, method="under", seed=0))
    # a Subset: indices are into the subset, labels read through it
    sub = Subset(ds, np.flatnonzero(labels != 0))
    idx = resample_indices(sub, method="over", seed=0)
    assert np.bincount(labels[np.flatnonzero(labels != 0)][idx]).tolist() == [0, 450, 450]


def test_image_index_with_class_names_and_empty_class():
    labels = [0] * 5 + [2] * 2  # class "b" is empty
    index = ImageIndex.from_arrays([f"{i}.jpg" for i in range(7)], labels, ("a", "b", "c"))
    idx = resample_indices(index, sampling_strategy={"c": 4}, method="over", seed=0, classes=index.classes)
    assert np.bincount(np.asarray(labels)[idx], minlength=3).tolist() == [5, 0, 4]
    idx = resample_indices(index, sampling_strategy="all", method="under", seed=0, classes=index.classes)
    assert sorted(np.asarray(labels)[idx].tolist()) == [0, 0, 2, 2]


def test_under_sampling_with_replacement():
    labels = seedlike_labels()
    idx = resample_indices(labels, sampling_strategy={0: 4000}, method="under", seed=2, replacement=True)
    assert np.bincount(labels[idx]).tolist() == [4000, 450, 45]
    assert np.unique(idx[labels[idx] == 0]).size < 4000  # some repeats among 4000 of 4500


def test_callable_strategy_gets_the_labels():
    labels = seedlike_labels()
    idx = resample_indices(
        labels, sampling_strategy=lambda y: {2: int(np.sum(y == 1))}, method="over", seed=0
    )
    assert np.bincount(labels[idx]).tolist() == [4500, 450, 450]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "smote"}, "method must be one of 'over', 'under'; got 'smote'"),
        ({"seed": -1}, "seed must be an integer in [0, 2**32) or a sequence of non-negative integers; got -1"),
        ({"seed": 2**32}, "got 4294967296"),
        ({"seed": None}, "got None"),
        ({"seed": (1, -2)}, "got (1, -2)"),
        ({"seed": "7"}, "got '7'"),
        ({"sampling_strategy": "majority"}, "over-sampling can target any strategy but 'majority'; got 'majority'"),
        ({"sampling_strategy": {0: 1}}, "must be at least its count (4500); got 1 for class 0"),
        ({"replacement": True}, "replacement applies to under-sampling only"),
    ],
)
def test_errors(kwargs, message):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(ValueError) as err:
        resample_indices(seedlike_labels(), **kwargs)
    assert message in str(err.value)


def test_seed_is_required():
    with pytest.raises(TypeError):
        resample_indices([0, 1, 1])  # randomness is always explicit


def test_many_classes_keep_exact_counts_and_imblearn_parity():
    # 300 classes: class indices do not fit int8, the bridge must still be exact
    counts = np.arange(1, 301)
    labels = np.random.default_rng(4).permutation(np.repeat(np.arange(300), counts))
    idx = resample_indices(labels, method="under", seed=9)
    assert np.bincount(labels[idx], minlength=300).tolist() == [1] * 300
    theirs, _ = RandomUnderSampler(random_state=9).fit_resample(np.arange(labels.size)[:, None], labels)
    np.testing.assert_array_equal(idx, theirs[:, 0])
    idx = resample_indices(labels, sampling_strategy={299: 310, 0: 5}, method="over", seed=9)
    got = np.bincount(labels[idx], minlength=300)
    assert got[299] == 310 and got[0] == 5 and got[1:299].tolist() == counts[1:299].tolist()
