"""Freeze policies: trainable stages per epoch, requires_grad, frozen BatchNorm, param groups, reinit."""

from __future__ import annotations

import json
import pickle
import re

import pytest
import torch
from torch import nn

from augbal.train._freeze import FREEZE_POLICIES, FreezePolicy, Progressive, TwoStage
from augbal.train._model import STAGES, build_model, stage_modules

torch.set_num_threads(1)
HEAD, L4, L3 = ("head",), ("layer4", "head"), ("layer3", "layer4", "head")


@pytest.fixture()
def model() -> nn.Module:
    return build_model(3, cifar_stem=True, seed=0)[0]


def _stage_of(model: nn.Module) -> dict[int, str]:
    return {id(p): s for s, mods in stage_modules(model).items() for m in mods for p in m.parameters()}


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 3 + 1


def test_registered_names() -> None:
    assert FREEZE_POLICIES.names() == ["all", "head", "layer3", "layer4", "progressive", "two_stage"]
    assert all(isinstance(FREEZE_POLICIES.from_spec(n), FreezePolicy) for n in FREEZE_POLICIES)


@pytest.mark.parametrize(
    ("name", "stages", "through"),
    [("head", HEAD, "layer4"), ("layer4", L4, "layer3"), ("layer3", L3, "layer2"), ("all", STAGES, None)],
)
def test_fixed_policies(name: str, stages: tuple[str, ...], through: str | None) -> None:
    policy = FREEZE_POLICIES.from_spec(name)
    assert [policy.trainable(e) for e in (0, 7)] == [stages, stages]
    assert policy.changes(20) == []
    assert policy.frozen_through(20) == through


def test_two_stage() -> None:
    policy = FREEZE_POLICIES.from_spec({"name": "two_stage", "head_epochs": 3, "then": "layer3"})
    assert [policy.trainable(e) for e in range(5)] == [HEAD, HEAD, HEAD, L3, L3]
    assert policy.changes(10) == [3] and policy.changes(3) == []
    assert policy.frozen_through(3) == "layer4"  # a 3-epoch run never unfreezes: features can be cached
    assert policy.frozen_through(4) == "layer2"
    assert TwoStage(head_epochs=1, then="all").frozen_through(2) is None


def test_progressive_default_and_json_keys() -> None:
    policy = FREEZE_POLICIES.from_spec("progressive")
    assert [policy.trainable(e) for e in (0, 2, 3, 5, 6, 30)] == [HEAD, HEAD, L4, L4, L3, L3]
    assert policy.changes(10) == [3, 6] and policy.frozen_through(5) == "layer3"
    spec = json.loads(json.dumps(Progressive(schedule={0: "head", 1: "layer4", 4: "all"}).to_dict()))
    assert spec["schedule"] == {"0": "head", "1": "layer4", "4": "all"}
    rebuilt = FREEZE_POLICIES.from_spec(spec)
    assert rebuilt.schedule == {0: "head", 1: "layer4", 4: "all"} and rebuilt.trainable(4) == STAGES


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({0: "head", 3: "layer4", 2: "layer3"}, "schedule epochs must increase; got 2 after 3"),
        ({0: "layer4", 3: "head"}, "schedule stages must deepen (head, layer4, layer3, layer2, layer1, all); got 'head' at epoch 3 after 'layer4'"),
        ({2: "head", 3: "layer4"}, "schedule must say what trains from epoch 0"),
        ({0: "head", 1: "layer9"}, "schedule[1] must be one of 'head', 'layer4', 'layer3', 'layer2', 'layer1', 'all'; got 'layer9'"),
        ({0: "head", -1: "layer4"}, "schedule epochs must be ints >= 0; got -1"),
        ({}, "schedule must be a non-empty {epoch: stage} dict; got {}"),
    ],
)
def test_progressive_schedule_is_validated(schedule: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Progressive(schedule=schedule)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "head", "lr_mult": {"layer4": 0.1}}, "lr_mult must name stages this head policy trains (head); got layer4"),
        ({"name": "layer4", "lr_mult": {"layer5": 0.1}}, "lr_mult stage must be one of 'stem', 'layer1'"),
        ({"name": "layer4", "lr_mult": {"layer4": 0}}, "lr_mult['layer4'] must be a number > 0; got 0"),
        ({"name": "all", "bn": "eval"}, "bn must be one of 'frozen', 'train'; got 'eval'"),
        ({"name": "two_stage", "then": "head"}, "then must be one of 'layer4', 'layer3', 'layer2', 'layer1', 'all'; got 'head'"),
        ({"name": "two_stage", "head_epochs": 0}, "head_epochs must be an int >= 1; got 0"),
        ({"name": "layer3", "reinit": 1}, "reinit must be True or False; got 1"),
    ],
)
def test_bad_parameters(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        FREEZE_POLICIES.from_spec(spec)


def test_bad_epoch() -> None:
    with pytest.raises(ValueError, match=re.escape("epoch must be an int >= 0; got -1")):
        FREEZE_POLICIES.from_spec("head").trainable(-1)


@pytest.mark.parametrize("name", FREEZE_POLICIES.names())
def test_spec_round_trip_and_pickling(name: str) -> None:
    policy = FREEZE_POLICIES.from_spec(name, seed=3, bn="train")
    spec = policy.to_dict()
    assert spec["name"] == name and spec["seed"] == 3 and spec["bn"] == "train"
    assert FREEZE_POLICIES.from_spec(json.loads(json.dumps(spec))).to_dict() == spec
    again = pickle.loads(pickle.dumps(policy))
    assert again.to_dict() == spec and [again.trainable(e) for e in range(8)] == [policy.trainable(e) for e in range(8)]


# ----------------------------------------------------------------------------- on a model


def test_apply_sets_requires_grad_by_stage(model: nn.Module) -> None:
    policy = FREEZE_POLICIES.from_spec({"name": "two_stage", "head_epochs": 1, "then": "layer3"})
    stage_of = _stage_of(model)
    for epoch, expected in ((0, HEAD), (1, L3)):
        assert policy.apply(model, epoch) == expected
        flags = {stage_of[id(p)]: p.requires_grad for p in model.parameters()}
        assert flags == {s: s in expected for s in STAGES}


def test_frozen_batchnorm_keeps_its_running_stats(model: nn.Module) -> None:
    policy = FREEZE_POLICIES.from_spec("layer4")
    policy.train_mode(model, 0)
    frozen_bn, trained_bn = model.layer3[1].bn2, model.layer4[1].bn2
    assert model.training and not frozen_bn.training and not model.bn1.training and trained_bn.training
    before_frozen, before_trained = frozen_bn.running_mean.clone(), trained_bn.running_mean.clone()
    model(_batch())
    assert torch.equal(frozen_bn.running_mean, before_frozen)
    assert not torch.equal(trained_bn.running_mean, before_trained)
    # bn="train": the frozen stages' statistics follow the batches
    train_bn = FREEZE_POLICIES.from_spec("layer4", bn="train")
    assert train_bn.frozen_through(10) is None
    train_bn.train_mode(model, 0)
    assert frozen_bn.training
    model(_batch(1))
    assert not torch.equal(frozen_bn.running_mean, before_frozen)


def test_param_groups_and_one_optimizer_for_a_two_stage_run(model: nn.Module) -> None:
    policy = TwoStage(head_epochs=1, then="layer4", lr_mult={"layer4": 0.1, "head": 2.0})
    groups = policy.param_groups(model, lr=0.01)
    assert [(g["stage"], g["lr"]) for g in groups] == [("layer4", 0.01 * 0.1), ("head", 0.02)]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in model.layer4.parameters()]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in model.fc.parameters()]
    optimizer = torch.optim.SGD(groups, lr=0.01)
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.02]
    layer3, layer4, fc = (model.layer3[0].conv1.weight, model.layer4[0].conv1.weight, model.fc.weight)
    for epoch in (0, 1):
        policy.apply(model, epoch)
        policy.train_mode(model, epoch)
        before = [t.detach().clone() for t in (layer3, layer4, fc)]
        optimizer.zero_grad(set_to_none=True)
        model(_batch(epoch)).logsumexp(1).mean().backward()
        optimizer.step()
        moved = [not torch.equal(t, b) for t, b in zip((layer3, layer4, fc), before)]
        assert moved == [False, epoch == 1, True]
    assert layer3.grad is None


def test_param_groups_lr_is_checked(model: nn.Module) -> None:
    with pytest.raises(ValueError, match=re.escape("lr must be a number > 0; got 0")):
        FREEZE_POLICIES.from_spec("head").param_groups(model, lr=0)


def test_reinit_at_the_first_epoch_a_stage_trains(model: nn.Module) -> None:
    policy = TwoStage(head_epochs=2, then="layer4", reinit=True, seed=7)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    policy.apply(model, 0)
    policy.apply(model, 1)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())  # head-only epochs: nothing re-drawn
    with torch.no_grad():
        model.layer4[0].bn1.running_mean.fill_(3.0)
    policy.apply(model, 2)
    after = {k: v.clone() for k, v in model.state_dict().items()}
    changed = {k.split(".")[0] for k in after if not torch.equal(after[k], start[k])}
    assert changed == {"layer4"}
    assert torch.equal(model.layer4[0].bn1.running_mean, torch.zeros(512))
    assert torch.equal(model.layer4[0].bn1.weight, torch.ones(512))
    w = model.layer4[0].conv1.weight
    assert abs(float(w.detach().std()) - (2.0 / (512 * 9)) ** 0.5) < 0.0005  # kaiming normal, fan_out
    # the same (seed, stage) draw again: a resumed run applying epoch 2 gets the same weights
    other = build_model(3, cifar_stem=True, seed=1)[0]
    TwoStage(head_epochs=2, then="layer4", reinit=True, seed=7).apply(other, 2)
    assert torch.equal(other.layer4[1].conv2.weight, model.layer4[1].conv2.weight)
    # a later epoch leaves the trained weights alone
    with torch.no_grad():
        model.layer4[0].conv1.weight.add_(1.0)
    trained = model.layer4[0].conv1.weight.clone()
    policy.apply(model, 3)
    assert torch.equal(model.layer4[0].conv1.weight, trained)
    # another seed draws other weights
    third = build_model(3, cifar_stem=True, seed=1)[0]
    TwoStage(head_epochs=2, then="layer4", reinit=True, seed=8).apply(third, 2)
    assert not torch.equal(third.layer4[1].conv2.weight, other.layer4[1].conv2.weight)
