"""The shared checks (augbal._validation) and the one class-key resolver, and the places that use them."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from augbal._validation import (
    check_bool,
    check_choice,
    check_int,
    check_probability,
    check_real,
    check_seed,
    resolve_class_key,
    resolve_class_mapping,
)
from augbal.augment import ClassConditional, RarityScaled, build_policy
from augbal.cli import cli
from augbal.data import ImageIndex, skew, split
from augbal.sampling import (
    BalancedBatchSampler,
    ClassAwareSampler,
    Explicit,
    ResampledSampler,
    check_sampling_strategy,
    resolve_weighting,
)

NAMES = ["deer", "dog", "cat"]


# ----------------------------------------------------------------------------- the checks


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int("n", -1), "n must be an int >= 0; got -1"),
        (lambda: check_int("n", True), "n must be an int >= 0; got True"),
        (lambda: check_int("n", 2.0, low=1), "n must be an int >= 1; got 2.0"),
        (lambda: check_int("n", 0, low=1, allow_none=True), "n must be an int >= 1 or None; got 0"),
        (lambda: check_int("d", 64, low=0, high=63), "d must be an int in [0, 63]; got 64"),
        (lambda: check_real("q", "x"), "q must be a finite number; got 'x'"),
        (lambda: check_real("q", float("nan")), "q must be a finite number; got nan"),
        (lambda: check_real("b", 1.0, low=0, high=1, high_open=True), "b must be a number in [0, 1); got 1.0"),
        (lambda: check_real("t", 0, low=0, high=1, low_open=True), "t must be a number in (0, 1]; got 0"),
        (lambda: check_real("a", False, low=0), "a must be a number >= 0; got False"),
        (lambda: check_probability("p", 1.5), "p must be a number in [0, 1]; got 1.5"),
        (lambda: check_seed("seed", -1), "seed must be an int >= 0; got -1"),
        (lambda: check_seed("seed", "a"), "seed must be an int >= 0; got 'a'"),
        (lambda: check_seed("seed", None), "seed must be an int >= 0; got None"),
        (lambda: check_seed("seed", np.random.SeedSequence(1)), "seed must be an int >= 0; got SeedSequence("),
        (lambda: check_bool("flag", 1), "flag must be True or False; got 1"),
        (lambda: check_choice("m", "both", ("over", "under")), "m must be one of 'over', 'under'; got 'both'"),
        (lambda: check_choice("m", ["x"], ("over",)), "m must be one of 'over'; got ['x']"),
    ],
)
def test_checks_raise_value_error_with_rule_then_got(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value).startswith(message)


def test_checks_return_plain_python_values():
    assert type(check_int("n", np.int32(3))) is int
    assert type(check_seed("seed", np.uint64(2**40))) is int
    assert type(check_real("q", np.float32(0.5))) is float
    assert check_real("q", None, allow_none=True) is None
    assert check_bool("b", np.bool_(True)) is True


# ----------------------------------------------------------------------------- class keys


def test_class_key_resolution_names_labels_and_dense_indices():
    assert resolve_class_key("cat", classes=NAMES) == 2
    assert resolve_class_key(1, classes=NAMES) == 1
    assert resolve_class_key(np.int64(0), classes=NAMES) == 0
    assert resolve_class_key("2", classes=NAMES) == 2  # JSON turns int keys into strings
    assert resolve_class_key(7, labels=[3, 7, 9]) == 1  # a label value, not a dense index
    assert resolve_class_key("dog", classes=NAMES, labels=[3, 7, 9]) == 1
    # a class literally named "1": the name wins over the label value
    assert resolve_class_key("1", classes=["0", "2", "1"]) == 2
    assert resolve_class_key(1, classes=["0", "2", "1"]) == 1


@pytest.mark.parametrize(
    ("kwargs", "key", "message"),
    [
        ({"classes": NAMES}, "cow", "unknown class 'cow'; the classes are: deer, dog, cat"),
        ({}, "cat", "class keys that are class names need the class names (classes=); got 'cat'"),
        ({"classes": NAMES}, 3, "class key must be a class label in [0, 3) or a class name; got 3"),
        ({"num_classes": 3}, -1, "class key must be a class label in [0, 3); got -1"),
        ({}, True, "class key must be an integer class label; got True"),
        ({"classes": NAMES}, 1.0, "class key must be a class name or an integer label; got 1.0"),
        ({"labels": [3, 7]}, 4, "unknown class label 4; the labels are: 3, 7"),
    ],
)
def test_class_key_errors(kwargs, key, message):
    with pytest.raises(ValueError) as err:
        resolve_class_key(key, **kwargs)
    assert str(err.value) == message


def test_class_mapping_rejects_one_class_given_twice():
    assert resolve_class_mapping({"cat": 5, 0: 1}, classes=NAMES) == {2: 5, 0: 1}
    with pytest.raises(ValueError, match="each class may be given once; got class 'cat' as 'cat' and 2"):
        resolve_class_mapping({"cat": 5, 2: 1}, classes=NAMES)


# ----------------------------------------------------------------------------- every user of the resolver


def test_class_conditional_takes_class_names_like_explicit():
    # issue 8: ClassConditional({"cat": "heavy"}, classes=...) was a TypeError
    w = Explicit(weights={"cat": 2.0}, classes=NAMES)
    assert w.class_weights([10, 10, 10]).tolist() == [0.75, 0.75, 1.5]
    policy = ClassConditional({"cat": "heavy", 0: "light"}, classes=NAMES, size=32)
    assert policy.policy_for(2).name == "heavy" and policy.policy_for(0).name == "light"
    assert policy.policy_for(1).name == "none"
    assert build_policy(policy.to_dict()) == policy
    assert list(policy.to_dict()["policies"]) == ["deer", "cat"]
    # numeric class names in another order survive a JSON round trip
    import json

    odd = ClassConditional({1: "heavy"}, classes=["0", "2", "1"], size=32)
    back = build_policy(json.loads(json.dumps(odd.to_dict())))
    assert back == odd and back.policy_for(1).name == "heavy" and back.policy_for(2).name == "none"
    with pytest.raises(ValueError, match="unknown class 'cow'; the classes are: deer, dog, cat"):
        ClassConditional({"cow": "heavy"}, classes=NAMES, size=32)


def test_rarity_scaled_counts_by_class_name():
    policy = RarityScaled(base="medium", counts={"cat": 4, "deer": 400, "dog": 100}, classes=NAMES)
    assert policy.counts == [400, 100, 4]
    assert [round(m, 2) for m in policy.magnitudes_] == [1.0, 2.0, 3.0]
    assert build_policy(policy.to_dict()) == policy
    with pytest.raises(ValueError, match="unknown class 'cow'"):
        RarityScaled(counts={"cow": 4}, classes=NAMES)
    with pytest.raises(ValueError, match=r"counts must give one count per class \(3\); got 2"):
        RarityScaled(counts=[4, 1], classes=NAMES)
    for bad in ([5, -1], [5, 2.5], [5, True], [0, 0], "54"):
        with pytest.raises(ValueError, match="counts must be non-negative per-class sample counts, not all zero"):
            RarityScaled(counts=bad)
    import torch

    same = [RarityScaled(counts=c).counts for c in (np.array([400, 100]), torch.tensor([400, 100]), [400.0, 100.0])]
    assert same == [[400, 100]] * 3


def test_sampling_strategy_keys_by_name_label_or_json_string():
    counts = [4500, 450, 45]
    expected = {0: 4500, 1: 450, 2: 90}
    assert check_sampling_strategy({"cat": 90}, counts, classes=NAMES) == expected
    assert check_sampling_strategy({2: 90}, counts) == expected
    assert check_sampling_strategy({"2": 90}, counts) == expected
    with pytest.raises(ValueError, match="unknown class 'cow'; the classes are: deer, dog, cat"):
        check_sampling_strategy({"cow": 90}, counts, classes=NAMES)


def test_resampled_sampler_keys_by_label_value_or_name():
    labels = np.repeat([3, 7, 9], [40, 10, 5])
    names = [f"c{i}" for i in range(10)]
    by_label = ResampledSampler(labels, sampling_strategy={9: 20}, method="over", seed=0)
    by_name = ResampledSampler(labels, sampling_strategy={"c9": 20}, classes=names, method="over", seed=0)
    assert by_label.quotas() == by_name.quotas() == {3: 40, 7: 10, 9: 20}
    assert list(by_label) == list(by_name)
    with pytest.raises(ValueError, match="unknown class label 4; the labels are: 3, 7, 9"):
        ResampledSampler(labels, sampling_strategy={4: 20}, method="over").quotas()
    # a named class without samples may be kept at 0, not resampled
    keep_empty = ResampledSampler(labels, sampling_strategy={"c9": 20, "c5": 0}, classes=names, method="over")
    assert keep_empty.quotas() == {3: 40, 7: 10, 9: 20}
    with pytest.raises(ValueError, match="an empty class cannot be resampled, its target must be 0; got 4 for class 'c5'"):
        ResampledSampler(labels, sampling_strategy={"c5": 4}, classes=names, method="over").quotas()
    with pytest.raises(ValueError, match="each class may be given once; got class 'c9' as 'c9' and 9"):
        ResampledSampler(labels, sampling_strategy={"c9": 20, 9: 20}, classes=names, method="over").quotas()
    # a callable sees label values and may answer by label
    by_callable = ResampledSampler(labels, sampling_strategy=lambda y: {9: int((y == 9).sum()) * 4}, method="over")
    assert by_callable.quotas() == {3: 40, 7: 10, 9: 20}


# ----------------------------------------------------------------------------- validation at construction


def test_weighting_specs_are_checked_when_built():
    # issue 8: these raised only at a sampler's first len()
    with pytest.raises(ValueError, match="q must be a finite number; got 'x'"):
        resolve_weighting({"power": "x"})
    with pytest.raises(ValueError, match=r"beta must be a number in \[0, 1\); got 1.0"):
        resolve_weighting({"effective_number": 1.0})
    with pytest.raises(ValueError, match="explicit weights must give one weight per class \\(3\\); got 2"):
        resolve_weighting([1.0, 2.0], classes=NAMES)
    with pytest.raises(ValueError, match="explicit weights must be finite non-negative numbers; got -1.0"):
        resolve_weighting([1.0, -1.0])
    with pytest.raises(ValueError, match="unknown class 'cow'"):
        resolve_weighting({"cow": 2.0}, classes=NAMES)
    with pytest.raises(ValueError, match="epochs must be an int >= 1; got 0"):
        resolve_weighting({"progressive": {"epochs": 0}})


def test_sampler_with_a_short_weight_list_fails_when_built():
    labels = np.repeat([0, 1, 2], 10)
    for make in (
        lambda: ClassAwareSampler(labels, weighting=[1.0, 2.0]),
        lambda: BalancedBatchSampler(labels, weighting=[1.0, 2.0]),
        lambda: ClassAwareSampler(labels, weighting={"deferred": {"switch_epoch": 1, "after": [1.0, 2.0]}}),
    ):
        with pytest.raises(ValueError, match="explicit weights must give one weight per class \\(3\\); got 2"):
            make()


# ----------------------------------------------------------------------------- seeds everywhere


def _index() -> ImageIndex:
    return ImageIndex.from_arrays([f"{i}.jpg" for i in range(60)], [i % 3 for i in range(60)], NAMES)


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True, None])
def test_split_and_skew_check_their_seed(seed):
    with pytest.raises(ValueError, match=f"seed must be an int >= 0; got {seed!r}"):
        split(_index(), seed=seed)
    with pytest.raises(ValueError, match=f"seed must be an int >= 0; got {seed!r}"):
        skew(_index(), ratio=2, seed=seed)


def test_seeds_accept_numpy_integers_the_same_as_ints():
    assert split(_index(), seed=np.int64(3)).counts() == split(_index(), seed=3).counts()
    a, b = skew(_index(), ratio=2, seed=np.uint32(3)), skew(_index(), ratio=2, seed=3)
    assert a.paths.tolist() == b.paths.tolist()


def test_demo_negative_seed_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--seed': -1 is not in the range x>=0." in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "d").exists()


def _every_seeded_component():
    """One constructor per seed-taking component: registries are iterated, so new names are covered."""
    from augbal._tour import run_demo
    from augbal.augment import (
        MIXERS,
        POLICIES,
        BatchCompose,
        BatchHorizontalFlip,
        BatchPadCrop,
        RepeatAware,
        make_loader,
    )
    from augbal.sampling import SAMPLERS, resample_indices

    labels = np.repeat([0, 1], [8, 4])
    makers = {f"policy {name}": (lambda s, n=name: POLICIES.build(n, seed=s)) for name in POLICIES.names()}
    for name in MIXERS.names():
        extra = {"class_counts": [8, 4]} if name == "remix" else {}
        makers[f"mixer {name}"] = lambda s, n=name, e=extra: MIXERS.build(n, num_classes=2, seed=s, **e)
    for name in SAMPLERS.names():
        makers[f"sampler {name}"] = lambda s, n=name: SAMPLERS.build(n, labels=labels, seed=s)
    makers.update(
        {
            "BatchHorizontalFlip": lambda s: BatchHorizontalFlip(seed=s),
            "BatchPadCrop": lambda s: BatchPadCrop(seed=s),
            "BatchCompose": lambda s: BatchCompose([], seed=s),
            "RepeatAware": lambda s: RepeatAware(lambda x: x, seed=s),
            "make_loader": lambda s: make_loader(list(range(4)), batch_size=2, num_workers=0, seed=s),
            "split": lambda s: split(_index(), seed=s),
            "skew": lambda s: skew(_index(), ratio=2, seed=s),
            "run_demo": lambda s: run_demo("/nonexistent/never-written", seed=s),
        }
    )
    makers["resample_indices"] = lambda s: resample_indices(labels, seed=s)
    return makers


@pytest.mark.parametrize("name", sorted(_every_seeded_component()))
def test_every_seed_gets_the_same_check(name):
    make = _every_seeded_component()[name]
    for bad in (-1, "a", 1.5, True):
        with pytest.raises(ValueError) as err:
            make(bad)
        assert f"got {bad!r}" in str(err.value) and str(err.value).startswith("seed must be an int"), (name, bad)
