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
    assert sorted(sampler.quotas(2).values()) == [33, 33, 34]  # balanced from the switch epoch on (a tie drawn)
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
    assert len(val_views) == 1 and len(val_views[0]) == len(data.val.labels)  # one view without tta
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


def test_posthoc_per_epoch_chooses_the_epoch_on_adjusted_validation_logits(folder, tmp_path):
    from augbal.train import read_history, train

    result = train(_helpers.tiny_recipe(folder, epochs=4, **{
        "optim.lr": 3e-2, "strategy.posthoc": {"prior": "uniform", "per_epoch": True}}), out=tmp_path / "run")  # fmt: skip
    history = read_history(result.run_dir / "metrics.jsonl")
    assert all("val_posthoc" in row for row in history)
    adjusted = [row["val_posthoc"]["balanced_accuracy"] for row in history]
    assert [row["val"]["loss"] for row in history] != [row["val_posthoc"]["loss"] for row in history]
    epoch = int(np.argmax(adjusted))  # the first best: a later tie does not win
    best = torch.load(result.run_dir / "best.pt", weights_only=True)
    assert best["epoch"] == epoch
    selection = json.loads((result.run_dir / "selection.json").read_text())
    assert selection["candidates"]["best+posthoc"] == {"epoch": epoch, "balanced_accuracy": adjusted[epoch]}
    if result.candidate == "best+posthoc":  # the adjusted model of that epoch won on validation
        assert result.val["balanced_accuracy"] == adjusted[epoch]
        assert selection["posthoc"]["prior"] == "uniform" and selection["posthoc"]["target_prior"] == [1 / 3] * 3


def test_posthoc_per_epoch_with_a_loss_metric_chooses_the_lowest_adjusted_uniform_prior_loss(folder, tmp_path):
    # the select-loss strategy: the epoch of lowest validation loss corrected to the uniform prior,
    # read from the adjusted logits' metrics
    from augbal.train import read_history, train

    result = train(_helpers.tiny_recipe(folder, epochs=4, **{
        "optim.lr": 3e-2, "strategy.posthoc": {"prior": "uniform", "per_epoch": True},
        "selection": {"name": "best", "metric": "loss_uniform_prior"}}), out=tmp_path / "run")  # fmt: skip
    history = read_history(result.run_dir / "metrics.jsonl")
    adjusted = [row["val_posthoc"]["loss_uniform_prior"] for row in history]
    raw = [row["val"]["loss_uniform_prior"] for row in history]
    assert adjusted != raw
    epoch = int(np.argmin(adjusted))
    assert torch.load(result.run_dir / "best.pt", weights_only=True)["epoch"] == epoch
    selection = json.loads((result.run_dir / "selection.json").read_text())
    assert (selection["metric"], selection["mode"]) == ("loss_uniform_prior", "min")
    assert selection["candidates"]["best+posthoc"] == {"epoch": epoch, "loss_uniform_prior": pytest.approx(adjusted[epoch])}


def test_posthoc_without_per_epoch_leaves_the_rows_and_the_raw_choice_alone(folder, tmp_path):
    from augbal.train import read_history, train

    result = train(_helpers.tiny_recipe(folder, epochs=3, **{
        "optim.lr": 3e-2, "strategy.posthoc": {"prior": "uniform"}}), out=tmp_path / "run")  # fmt: skip
    history = read_history(result.run_dir / "metrics.jsonl")
    assert not any("val_posthoc" in row for row in history)
    raw = [row["val"]["balanced_accuracy"] for row in history]
    assert torch.load(result.run_dir / "best.pt", weights_only=True)["epoch"] == int(np.argmax(raw))


@pytest.mark.parametrize("cache", [True, False])
def test_a_weight_average_is_a_candidate_with_the_trained_stages_batchnorm_recomputed(folder, tmp_path, cache):
    from augbal.train import train

    result = train(_helpers.tiny_recipe(folder, epochs=3, freeze={"name": "layer4"}, selection={"name": "swa", "last_k": 2},
                                        **{"optim.lr": 1e-2, "cache.enabled": cache}), out=tmp_path / "run")  # fmt: skip
    assert result.candidate == "swa" and not (result.run_dir / "best.pt").exists()
    averaged = torch.load(result.run_dir / "selected.pt", weights_only=True)["model"]
    last = torch.load(result.run_dir / "last.pt", weights_only=False)["model"]
    assert averaged.keys() == last.keys()
    assert torch.equal(averaged["layer1.0.bn1.running_mean"], last["layer1.0.bn1.running_mean"])  # frozen: kept
    assert not torch.equal(averaged["layer4.1.bn2.running_mean"], last["layer4.1.bn2.running_mean"])  # recomputed
    assert not torch.equal(averaged["fc.weight"], last["fc.weight"])  # epochs 1 and 2 averaged
    assert torch.equal(averaged["conv1.weight"], last["conv1.weight"])


@pytest.mark.parametrize("mixer", ["mixup", "remix", "balanced_mixup"])
def test_mixers_train_on_images_with_soft_targets(folder, tmp_path, mixer):
    from augbal.train import train

    recipe = _helpers.tiny_recipe(folder, epochs=1, mixer={"name": mixer})
    result = train(recipe, out=tmp_path / mixer)
    row = _helpers.without_timing(result.run_dir / "metrics.jsonl")[0]
    assert not (result.run_dir / "cache").exists()  # mixers mix images: no feature cache
    assert np.isfinite(row["train"]["loss"]) and row["train"]["loss"] == pytest.approx(row["train"]["loss_unweighted"])
    again = train(recipe, out=tmp_path / f"{mixer}-again")
    assert _helpers.without_timing(again.run_dir / "metrics.jsonl")[0] == row  # the mixing draws are seeded


def test_a_rarity_scaled_augmentation_is_given_the_training_counts_and_class_names(folder, tmp_path):
    from augbal.recipes import load_recipe
    from augbal.train._distributed import DistContext
    from augbal.train._loop import _setup

    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    spec = {"name": "rarity_scaled", "base": "medium"}
    s = _setup(load_recipe(_helpers.tiny_recipe(folder, augmentation=spec, freeze={"name": "all"})), tmp_path, ctx)
    policy = s.train_policy
    assert policy.counts == s.train_counts.tolist() and list(policy.classes) == s.classes
    m = policy.magnitudes_
    assert m[0] < m[1] < m[2]  # cat is the most frequent class, dog the rarest
    # nested in a class-conditional policy, with a class name as key, too
    nested = {"name": "class_conditional", "policies": {"deer": "flip"}, "default": spec}
    s = _setup(load_recipe(_helpers.tiny_recipe(folder, augmentation=nested, freeze={"name": "all"})), tmp_path, ctx)
    inner = s.train_policy.policy_for(2)
    assert inner.counts == s.train_counts.tolist() and inner.magnitudes_[2] > inner.magnitudes_[0]
