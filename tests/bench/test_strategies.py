"""Strategies: every registered name applies to a recipe; combinations merge or refuse."""

from pathlib import Path

import pytest

from augbal.bench import STRATEGIES, apply_strategy, register_strategy, resolve_strategy

ISSUE_NAMES = ["ce", "wce:inverse", "wce:sqrt", "wce:effective", "focal", "ldam-drw", "logit-adjust",
               "balanced-softmax", "posthoc-la", "oversample", "oversample-augment", "undersample",
               "sqrt-sampling", "progressive", "drs", "crt", "tau-norm", "smote-features", "mixup", "remix"]
BASE = {"epochs": 20, "loss": "ce", "optim": {"name": "adamw", "lr": 1e-3}, "strategy": {}}


def test_the_issue_s_strategies_are_registered():
    assert set(ISSUE_NAMES) <= set(STRATEGIES.names())


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_each_strategy_changes_only_its_keys_and_names_itself(name):
    s = resolve_strategy(name)
    assert s.name == name and s.to_dict() == {"name": name} and s.description
    out = apply_strategy(BASE, name)
    assert out["optim"] == BASE["optim"] and out["epochs"] == 20
    assert resolve_strategy({"name": name}).overrides(BASE) == s.overrides(BASE)


@pytest.mark.parametrize("name", ["posthoc-uniform", "ema", "swa", "select-loss", "tta", "layer4"])
def test_the_strategies_beyond_the_issue_s_list_apply_too(name):
    s = resolve_strategy(name)
    assert s.name == name and s.description
    out = apply_strategy(BASE, name)
    assert out["optim"] == BASE["optim"] and out["epochs"] == 20 and out != BASE


def test_swa_and_posthoc_uniform_set_what_they_say():
    out = apply_strategy({**BASE, "selection": {"name": "best", "metric": "balanced_accuracy"}}, "swa+posthoc-uniform+tta")
    assert out["selection"] == {"name": "swa", "last_k": 5}  # replaced whole: SWA takes no metric
    assert out["strategy"] == {"posthoc": {"prior": "uniform", "per_epoch": True}} and out["tta"] == "flip"


def test_select_loss_chooses_the_epoch_on_the_uniform_prior_loss():
    out = apply_strategy({**BASE, "selection": {"name": "best", "metric": "balanced_accuracy"}}, "posthoc-uniform+select-loss")
    assert out["selection"] == {"name": "best", "metric": "loss_uniform_prior"}
    assert out["strategy"] == {"posthoc": {"prior": "uniform", "per_epoch": True}}


def test_run_dependent_fragments_follow_the_base_recipe():
    ldam = resolve_strategy("ldam-drw")
    assert ldam.overrides({"epochs": 200})["loss"]["weighting"]["switch_epoch"] == 160
    assert ldam.overrides({"epochs": 20})["loss"]["weighting"]["switch_epoch"] == 16
    assert resolve_strategy("drs").overrides({"epochs": 5})["sampler"]["weighting"]["switch_epoch"] == 4


def test_combinations_merge_disjoint_fragments_and_refuse_clashes():
    both = resolve_strategy("ldam-drw+oversample-augment")
    assert both.name == "ldam-drw+oversample-augment"
    frag = both.overrides(BASE)
    assert frag["loss"]["name"] == "ldam" and frag["sampler"]["yield_draws"] is True
    assert frag["augmentation"]["name"] == "rarity_scaled"
    with pytest.raises(ValueError, match=r"'focal' and 'wce:inverse' cannot be combined: both set recipe key loss"):
        resolve_strategy("focal+wce:inverse").overrides(BASE)
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        resolve_strategy("ce+nope")


def test_layer4_fine_tunes_a_block_and_combines_with_a_loss():
    out = apply_strategy({**BASE, "freeze": "head", "augmentation": "none"}, "logit-adjust+layer4")
    assert out["freeze"] == {"name": "layer4"} and out["augmentation"] == "light"
    assert out["loss"] == {"name": "logit_adjusted", "tau": 1.0} and out["optim"] == BASE["optim"]
    assert apply_strategy(BASE, "layer4+ema")["averaging"] == {"name": "ema", "decay": 0.99}
    with pytest.raises(ValueError, match=r"'oversample-augment' and 'layer4' cannot be combined: both set recipe key augmentation"):
        resolve_strategy("oversample-augment+layer4").overrides(BASE)


def test_apply_replaces_a_component_spec_whole_but_merges_plain_sections():
    base = {"loss": {"name": "focal", "gamma": 1.0}, "strategy": {"crt": None, "posthoc": None}}
    out = apply_strategy(base, "wce:inverse")
    assert out["loss"] == {"name": "wce", "weighting": "balanced"}  # no stale gamma
    out = apply_strategy(base, "posthoc-la")
    assert out["strategy"] == {"crt": None, "posthoc": {"prior": "em"}}
    assert base == {"loss": {"name": "focal", "gamma": 1.0}, "strategy": {"crt": None, "posthoc": None}}


def test_user_registration_and_bad_names():
    register_strategy("test:lr-3e-4", {"optim": {"lr": 3e-4}}, "lower lr")
    assert apply_strategy(BASE, "test:lr-3e-4")["optim"] == {"name": "adamw", "lr": 3e-4}
    for bad in ("", "a+b", 3):
        with pytest.raises(ValueError, match="strategy names must be"):
            register_strategy(bad, {})
    with pytest.raises(ValueError, match="names must be unique"):
        register_strategy("ce", {"loss": "ce"})


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*-bench.yaml")), ids=lambda p: p.name)
def test_every_ready_bench_recipe_expands_into_valid_runs(path):
    from augbal.bench import expand_grid, load_bench

    spec = load_bench(path)
    runs = expand_grid(spec)  # every run's recipe validated; nothing is read from ../shared
    assert len(runs) == len(spec.strategies) * len(spec.seeds) * len(spec.splits) and len(spec.strategies) >= 5
    assert len({r.key for r in runs}) == len(runs)
