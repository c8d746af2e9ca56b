"""Strategies: the input path decision, DRS, feature-space resampling, and the after-training
candidates (cRT, tau-norm, post-hoc adjustment) chosen on validation only."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from augbal.train._strategies import Candidate, cache_level, choose, drs_weighting, sampler_spec, selection_metric

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location("_loop_helpers", Path(__file__).with_name("test_loop.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)


def recipe(**overrides):
    from augbal.recipes import load_recipe

    return load_recipe(_helpers.tiny_recipe(Path("/nonexistent-but-unread"), **overrides))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _helpers.make_folder(tmp_path_factory.mktemp("images") / "data")


def freeze(name: str):
    from augbal.train import FREEZE_POLICIES

    return FREEZE_POLICIES.from_spec(name)


def test_the_input_path_follows_how_far_the_trunk_stays_frozen():
    r = recipe()
    assert cache_level(r, freeze("head"), 2) == "features"
    assert cache_level(r, freeze("layer4"), 2) == "layer3"
    assert cache_level(r, freeze("all"), 2) is None
    assert cache_level(recipe(**{"cache.enabled": False}), freeze("head"), 2) is None
    assert cache_level(recipe(mixer={"name": "mixup"}), freeze("head"), 2) is None  # mixers mix images
    with pytest.raises(ValueError, match="cache.enabled: true needs a trunk frozen for the whole run"):
        cache_level(recipe(**{"cache.enabled": True}), freeze("all"), 2)
    with pytest.raises(ValueError, match="a mixer mixes images, so it cannot run on cached features"):
        cache_level(recipe(mixer={"name": "mixup"}, **{"cache.enabled": True}), freeze("head"), 2)
    with pytest.raises(ValueError, match="feature_resampler needs the 512-d features cached: use freeze: head"):
        cache_level(recipe(**{"strategy.feature_resampler": {"name": "smote"}}), freeze("layer4"), 2)


def test_drs_switches_the_sampler_from_instance_to_its_own_weighting_at_the_switch_epoch():
    from augbal.sampling import SAMPLERS

    r = recipe(sampler={"name": "class_aware"}, epochs=3, **{"strategy.drs": {"switch_epoch": 2}})
    spec = sampler_spec(r)
    assert spec["weighting"] == drs_weighting(2) == {
        "name": "deferred", "switch_epoch": 2, "before": "instance", "after": "balanced"}  # fmt: skip
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    sampler = SAMPLERS.from_spec(spec, labels=labels, seed=0, num_replicas=1, rank=0)
    assert list(sampler.quotas(1).values()) == [60, 30, 10]  # instance-balanced: the data as it is
    assert list(sampler.quotas(2).values()) == [34, 33, 33]  # balanced from the switch epoch on
    sqrt = sampler_spec(recipe(sampler={"name": "class_aware", "weighting": "sqrt"}, epochs=3,
                               **{"strategy.drs": {"switch_epoch": 2}}))  # fmt: skip
    assert sqrt["weighting"]["after"] == "sqrt"
    assert sampler_spec(recipe(sampler={"name": "class_aware"})) == {"name": "class_aware"}


def test_candidates_are_chosen_by_the_selection_metric_ties_keep_the_first():
    def c(name, **metrics):
        return Candidate(name, 0, name, torch.zeros(1, 2), metrics, {})

    assert choose([c("a", balanced_accuracy=0.5), c("b", balanced_accuracy=0.5)], "balanced_accuracy", "max").name == "a"
    assert choose([c("a", loss=0.5), c("b", loss=0.4)], "loss", "min").name == "b"
    assert selection_metric(SimpleNamespace(metric="loss", mode=None)) == ("loss", "min")
    assert selection_metric(SimpleNamespace()) == ("balanced_accuracy", "max")
    with pytest.raises(ValueError, match="at least one candidate"):
        choose([], "loss", "min")


def test_feature_resampling_balances_the_cached_training_features(folder, tmp_path):
    from augbal.train import build_model
    from augbal.train._data import resolve_data
    from augbal.train._distributed import DistContext
    from augbal.train._loop import trunk_hash
    from augbal.train._strategies import cached_inputs, policies

    r = recipe(**{"strategy.feature_resampler": {"name": "smote", "k_neighbors": 2}, "data.source": str(folder)})
    data = resolve_data(r.data, seed=0)
    model, info = build_model(3, weights="none", input_size=32, seed=0)
    train_policy, eval_policy = policies(r, info, seed=0)
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    kwargs = dict(upto="features", train_policy=train_policy, eval_policy=eval_policy, device=torch.device("cpu"),
                  ctx=ctx, seed=0, root=tmp_path / "cache")  # fmt: skip
    train_views, val_views, net = cached_inputs(r, model, trunk_hash(model, "features"), data, **kwargs)
    counts = np.bincount(np.asarray(data.train.labels), minlength=3)
    assert np.bincount(train_views.labels, minlength=3).tolist() == [counts.max()] * 3
    assert len(val_views) == len(data.val.labels)
    x, y = train_views.__getitems__(np.arange(4))
    assert x.shape == (4, 512) and y.dtype == torch.int64
    assert isinstance(net[0], torch.nn.Linear)  # the head is all that trains
    again, _, _ = cached_inputs(r, model, trunk_hash(model, "features"), data, **kwargs)
    assert torch.equal(again.inputs, train_views.inputs)  # seeded by the run seed


def test_crt_tau_norm_and_posthoc_are_candidates_chosen_on_validation(folder, tmp_path):
    from augbal.train import train

    result = train(_helpers.tiny_recipe(folder, epochs=2, **{
        "optim.lr": 1e-2, "strategy.crt": {"epochs": 2}, "strategy.tau_norm": {"tau": 0.5},
        "strategy.posthoc": {"prior": "uniform"}}), out=tmp_path / "run")  # fmt: skip
    selection = json.loads((result.run_dir / "selection.json").read_text())
    names = set(selection["candidates"])
    assert {"best", "crt", "tau_norm"} <= names
    assert any(name.endswith("+posthoc") for name in names)
    values = {name: c["balanced_accuracy"] for name, c in selection["candidates"].items()}
    assert selection["val"]["balanced_accuracy"] == max(values.values())
    assert result.candidate in names and values[result.candidate] == max(values.values())
    saved = torch.load(result.run_dir / "selected.pt", weights_only=True)
    if result.candidate.endswith("+posthoc"):
        assert saved["posthoc"]["prior"] == "uniform" and len(saved["posthoc"]["target_prior"]) == 3
    else:
        assert saved.get("posthoc") is None
    best = torch.load(result.run_dir / "best.pt", weights_only=True)
    if result.candidate.startswith(("crt", "tau_norm")):
        assert not torch.equal(saved["model"]["fc.weight"], best["model"]["fc.weight"])
    else:
        assert torch.equal(saved["model"]["fc.weight"], best["model"]["fc.weight"])
