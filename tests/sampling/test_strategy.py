"""check_sampling_strategy: exact targets, imbalanced-learn parity, messages."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from imblearn.utils import check_sampling_strategy as imblearn_check

from augbal.sampling import SAMPLING_STRATEGIES, check_sampling_strategy, class_counts

SEEDLIKE = [4500, 450, 45]


# ----------------------------------------------------------------------------- exact values


@pytest.mark.parametrize(
    ("strategy", "kind", "expected"),
    [
        ("auto", "over", [4500, 4500, 4500]),
        ("not majority", "over", [4500, 4500, 4500]),
        ("all", "over", [4500, 4500, 4500]),
        ("minority", "over", [4500, 450, 4500]),
        ("not minority", "over", [4500, 4500, 45]),
        ("auto", "under", [45, 45, 45]),
        ("not minority", "under", [45, 45, 45]),
        ("all", "under", [45, 45, 45]),
        ("majority", "under", [45, 450, 45]),
        ("not majority", "under", [4500, 45, 45]),
        ({1: 900, 2: 900}, "over", [4500, 900, 900]),
        ({0: 450}, "under", [450, 450, 45]),
        ({0: 0}, "under", [0, 450, 45]),
        (lambda y: {int(c): 500 for c in np.unique(y) if np.sum(y == c) < 500}, "over", [4500, 500, 500]),
    ],
)
def test_targets_on_seedlike_counts(strategy, kind, expected):
    got = check_sampling_strategy(strategy, SEEDLIKE, kind=kind)
    assert got == dict(enumerate(expected))
    assert all(type(k) is int and type(v) is int for k, v in got.items())


def test_float_ratio_binary():
    assert check_sampling_strategy(0.5, [1000, 100], kind="over") == {0: 1000, 1: 500}
    assert check_sampling_strategy(1.0, [1000, 100], kind="over") == {0: 1000, 1: 1000}
    assert check_sampling_strategy(0.5, [1000, 100], kind="under") == {0: 200, 1: 100}
    # int() truncation, as imbalanced-learn: 100 / 0.3 = 333.33 -> 333; 1000 * 0.333 = 333
    assert check_sampling_strategy(0.3, [1000, 100], kind="under") == {0: 333, 1: 100}
    assert check_sampling_strategy(0.333, [100, 1000], kind="over") == {0: 333, 1: 1000}


def test_empty_classes_stay_zero_and_are_ignored():
    counts = [0, 30, 0, 10, 5]
    assert check_sampling_strategy("auto", counts, kind="over") == {0: 0, 1: 30, 2: 0, 3: 30, 4: 30}
    assert check_sampling_strategy("auto", counts, kind="under") == {0: 0, 1: 5, 2: 0, 3: 5, 4: 5}
    assert check_sampling_strategy({0: 0, 3: 12}, counts) == {0: 0, 1: 30, 2: 0, 3: 12, 4: 5}
    # two non-empty classes among four: the float form applies
    assert check_sampling_strategy(0.5, [0, 40, 0, 10], kind="over") == {0: 0, 1: 40, 2: 0, 3: 20}


def test_labels_names_and_callables():
    labels = [0] * 6 + [1] * 3 + [3] * 1  # class 2 is empty
    classes = ["a", "b", "c", "d"]
    got = check_sampling_strategy({"d": 3, "b": 5}, labels, of="labels", classes=classes)
    assert got == {0: 6, 1: 5, 2: 0, 3: 3}
    seen = []

    def half_of_majority(y):
        seen.append(np.asarray(y).tolist())
        return {"d": 3}

    got = check_sampling_strategy(half_of_majority, labels, of="labels", classes=classes, kind="over")
    assert got == {0: 6, 1: 3, 2: 0, 3: 3}
    assert seen == [labels]  # the callable gets the real labels, as in imbalanced-learn
    # from counts, the callable gets the equivalent sorted label array
    check_sampling_strategy(half_of_majority, [6, 3, 0, 1], classes=classes)
    assert seen[-1] == [0] * 6 + [1] * 3 + [3]


def test_class_counts():
    assert class_counts([2, 0, 2]).tolist() == [1, 0, 2]
    assert class_counts(np.array([1, 1]), n_classes=3).tolist() == [0, 2, 0]
    with pytest.raises(ValueError, match="labels must be below n_classes=2; got 2"):
        class_counts([0, 2], n_classes=2)
    with pytest.raises(ValueError, match="non-negative integers\\); got -1"):
        class_counts([0, -1])


def test_string_forms_constant_is_imblearns():
    from imblearn.utils._validation import SAMPLING_TARGET_KIND

    assert set(SAMPLING_STRATEGIES) == set(SAMPLING_TARGET_KIND)


# ----------------------------------------------------------------------------- parity


def _imblearn_final(strategy, counts, kind):
    """imbalanced-learn's answer for the same labels, as final per-class counts."""
    y = np.repeat(np.arange(len(counts)), counts)
    out = imblearn_check(strategy, y, "over-sampling" if kind == "over" else "under-sampling")
    final = {c: int(n) for c, n in enumerate(counts)}
    for c, n in out.items():
        final[int(c)] = int(counts[c] + n) if kind == "over" else int(n)
    return final


COUNT_CASES = [
    [4500, 450, 45],
    [10, 10, 3],  # tied majority
    [3, 10, 3, 7],  # tied minority
    [5, 5],  # all tied, binary
    [1000, 100],
    [100, 1000],
    [7, 1, 1, 1, 50],
    [1, 2],
]


def _strategies(counts):
    yield from SAMPLING_STRATEGIES
    yield from (0.1, 0.3, 0.5, 0.8, 1.0)
    n = len(counts)
    yield {0: counts[0]}
    yield {n - 1: max(counts)}
    yield {n - 1: 0}
    yield {c: counts[c] + 1 for c in range(n)}
    yield {c: counts[c] // 2 for c in range(n)}
    yield lambda y: {int(np.argmin(np.bincount(y))): int(np.bincount(y).max())}


@pytest.mark.parametrize("counts", COUNT_CASES, ids=str)
@pytest.mark.parametrize("kind", ["over", "under"])
def test_parity_with_imbalanced_learn(counts, kind):
    checked = 0
    for strategy in _strategies(counts):
        try:
            theirs = _imblearn_final(strategy, counts, kind)
        except ValueError:
            with pytest.raises(ValueError):
                check_sampling_strategy(strategy, counts, kind=kind)
            continue
        assert check_sampling_strategy(strategy, counts, kind=kind) == theirs, strategy
        checked += 1
    assert checked >= 8  # the sweep really compares values, not only errors


def test_parity_covers_both_outcomes():
    """The sweep above is only meaningful if both branches happen."""
    outcomes = set()
    for counts, kind in itertools.product(COUNT_CASES, ["over", "under"]):
        for strategy in _strategies(counts):
            try:
                _imblearn_final(strategy, counts, kind)
                outcomes.add("ok")
            except ValueError:
                outcomes.add("error")
    assert outcomes == {"ok", "error"}


# ----------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("strategy", "counts", "kind", "message"),
    [
        ("balanced", SEEDLIKE, "over", "sampling_strategy must be one of 'auto', 'all', 'majority'"),
        ("majority", SEEDLIKE, "over", "over-sampling can target any strategy but 'majority'; got 'majority'"),
        ("minority", SEEDLIKE, "under", "under-sampling can target any strategy but 'minority'; got 'minority'"),
        ([0, 1], SEEDLIKE, "over", "; got [0, 1]"),
        (None, SEEDLIKE, "over", "; got None"),
        (True, [10, 5], "over", "; got True"),
        (0.5, SEEDLIKE, "over", "needs exactly 2 non-empty classes (use a dict for more); got 3 classes"),
        (0.0, [10, 5], "over", "must be in (0, 1]; got 0.0"),
        (1.5, [10, 5], "under", "must be in (0, 1]; got 1.5"),
        (0.4, [10, 5], "over", "must give the minority more than its 5 samples (target = int(ratio * 10)); got 0.4"),
        (0.4, [10, 5], "under", "must leave the majority at most its 10 samples (target = int(5 / ratio)); got 0.4"),
        ({1: 400}, SEEDLIKE, "over", "must be at least its count (450); got 400 for class 1"),
        ({1: 500}, SEEDLIKE, "under", "must be at most its count (450); got 500 for class 1"),
        ({3: 10}, SEEDLIKE, "over", "sampling_strategy key must be a class label in [0, 3); got 3"),
        ({"cat": 10}, SEEDLIKE, "over", "sampling_strategy keys that are class names need the class names (classes=); got 'cat'"),
        ({1: -2}, SEEDLIKE, "under", "the sampling_strategy target of class 1 must be an int >= 0; got -2"),
        ({1: 2.5}, SEEDLIKE, "over", "the sampling_strategy target of class 1 must be an int >= 0; got 2.5"),
        ({1: 9}, [5, 0, 3], "over", "an empty class cannot be resampled, its target must be 0; got 9 for class 1"),
        (lambda y: [1, 2], SEEDLIKE, "over", "must return a {class: target count} dict; got [1, 2]"),
        ("auto", [0, 5, 0], "over", "needs at least 2 non-empty classes; got 1 (counts [0, 5, 0])"),
        ("auto", SEEDLIKE, "both", "kind must be one of 'over', 'under'; got 'both'"),
        ({1: 450, "1": 450}, SEEDLIKE, "over", "each class may be given once; got class 1 as 1 and '1'"),
        ("auto", [3, -1], "over", "non-negative integers; got [3, -1]"),
    ],
)
def test_messages_state_rule_then_value(strategy, counts, kind, message):
    with pytest.raises(ValueError) as err:
        check_sampling_strategy(strategy, counts, kind=kind)
    assert message in str(err.value)
    assert "got " in str(err.value)


def test_bad_of_and_classes():
    with pytest.raises(ValueError, match="of must be one of 'counts', 'labels'; got 'y'"):
        check_sampling_strategy("auto", [1, 2], of="y")
    with pytest.raises(ValueError, match=r"classes must name every class \(3\); got 2 names"):
        check_sampling_strategy("auto", [1, 2, 3], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"unknown class 'c'; the classes are: a, b"):
        check_sampling_strategy({"c": 1}, [1, 2], classes=["a", "b"])
