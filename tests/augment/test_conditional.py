"""Class-conditional policies: routing by label, rarity-scaled magnitude, serialisation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from augbal._draw import Draw
from augbal.augment import ClassConditional, HeavyPolicy, NonePolicy, RarityScaled, build_policy


def smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    import cv2

    small = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_class_conditional_routes_by_label() -> None:
    policy = ClassConditional({2: "heavy", 1: {"name": "flip"}}, default="light", size=24, seed=4)
    image, draw = smooth(30, 28), Draw(5, repeat=1)
    for label, name in [(2, "heavy"), (1, "flip"), (0, "light"), (7, "light"), (None, "light")]:
        expected = build_policy(name, size=24, seed=4)(image, label=label, draw=draw)
        assert torch.equal(policy(image, label=label, draw=draw), expected), label
    assert policy.policy_for(np.int64(2)).name == "heavy"


def test_class_conditional_inheritance_and_instances() -> None:
    own = HeavyPolicy(size=32, seed=9, magnitude=2.0)
    policy = ClassConditional({"3": own, 0: {"name": "medium", "magnitude": 0.5}}, size=32, seed=1)
    assert policy.policies[3] is own  # instances are used as is; JSON-style "3" keys accepted
    assert policy.policies[0].to_dict() == build_policy("medium", size=32, seed=1, magnitude=0.5).to_dict()
    assert policy.default == NonePolicy(size=32, seed=1)
    data = policy.to_dict()
    assert data["policies"][0] == {"name": "medium", "magnitude": 0.5}  # shared params are not repeated
    assert data["policies"][3] == {"name": "heavy", "magnitude": 2.0, "seed": 9}
    assert build_policy(data) == policy
    import json

    assert build_policy(json.loads(json.dumps(data))) == policy  # JSON turns class keys into "0", "3"
    bigger = build_policy(data, size=48)
    assert {p.size for p in (*bigger.policies.values(), bigger.default)} == {48}


def test_class_conditional_errors() -> None:
    with pytest.raises(ValueError, match="wrapper's size \\(64\\).*got heavy with size 32"):
        ClassConditional({1: HeavyPolicy(size=32)}, size=64)
    with pytest.raises(ValueError, match="class key must be a class label >= 0; got -1"):
        ClassConditional({-1: "light"})
    with pytest.raises(ValueError, match=r"class keys that are class names need the class names \(classes=\); got 'cat'"):
        ClassConditional({"cat": "light"})
    with pytest.raises(KeyError, match="unknown policy"):
        ClassConditional({0: "lite"})


def test_rarity_scaled_magnitudes_follow_the_formula() -> None:
    policy = RarityScaled(base="medium", counts=[400, 100, 4, 0], max_magnitude=3.0, magnitude=1.0)
    assert policy.magnitudes_ == pytest.approx([1.0, 2.0, 3.0, 3.0])  # 1*sqrt(100)=10 capped; empty -> cap
    linear = RarityScaled(base={"name": "light", "magnitude": 0.5}, counts={0: 90, 2: 30}, power=1.0, max_magnitude=10)
    assert linear.counts == [90, 0, 30]
    assert linear.magnitudes_ == pytest.approx([0.5, 10.0, 1.5])
    assert [linear.policy_for(c).magnitude for c in (0, 2)] == pytest.approx([0.5, 1.5])
    assert linear.policy_for(None) is linear.base and RarityScaled().magnitudes_ == []


def test_rarity_scaled_majority_is_the_base_policy() -> None:
    policy = RarityScaled(base="heavy", counts=[50, 5], size=24, seed=2)
    image, draw = smooth(24, 24), Draw(3, epoch=2)
    base = HeavyPolicy(size=24, seed=2)
    assert torch.equal(policy(image, label=0, draw=draw), base(image, label=0, draw=draw))
    minority = base.with_params(magnitude=policy.magnitudes_[1])
    assert torch.equal(policy(image, label=1, draw=draw), minority(image, label=1, draw=draw))


@pytest.mark.parametrize("base", ["medium", "heavy", "randaugment"])
def test_minority_classes_get_measurably_stronger_augmentation(base: str) -> None:
    policy = RarityScaled(base=base, counts=[1000, 250, 10], size=32, seed=0, max_magnitude=3.0)
    plain = NonePolicy(size=32)

    def change(label: int) -> float:
        diffs = []
        for i in range(40):
            image = smooth(32, 32, seed=i)
            diffs.append((policy(image, label=label, draw=Draw(i)) - plain(image)).abs().mean().item())
        return float(np.mean(diffs))

    assert policy.magnitudes_ == pytest.approx([1.0, 2.0, 3.0])
    majority, middle, minority = change(0), change(1), change(2)
    assert majority < middle < minority
    assert minority > 1.15 * majority, (majority, minority)


def test_rarity_scaled_errors() -> None:
    with pytest.raises(ValueError, match="not all zero"):
        RarityScaled(counts=[0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        RarityScaled(counts=[5, -1])
    with pytest.raises(ValueError, match="power must be a number >= 0; got -1"):
        RarityScaled(counts=[5, 1], power=-1)
    policy = RarityScaled(counts=[5, 1], size=8)
    with pytest.raises(ValueError, match=r"covered by counts \(0..1\); got 2"):
        policy(np.zeros((8, 8, 3), np.uint8), label=2)


def test_rarity_scaled_round_trip_and_pickle() -> None:
    policy = RarityScaled(base="randaugment", counts=[300, 30, 3], size=16, seed=6, power=0.75)
    image, draw = smooth(20, 20), Draw(1, repeat=3)
    expected = policy(image, label=2, draw=draw)  # builds the per-class cache first
    data = policy.to_dict()
    assert data["base"] == {"name": "randaugment", "num_ops": 2}
    for clone in (build_policy(data), pickle.loads(pickle.dumps(policy))):
        assert clone == policy
        assert torch.equal(clone(image, label=2, draw=draw), expected)
    assert "_built_per_class" not in pickle.loads(pickle.dumps(policy)).__dict__
