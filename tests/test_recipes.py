"""Recipes: schema, overrides, error messages, paths, the files in recipes/ (augbal.recipes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pydantic
import pytest
import yaml

import augbal
from augbal import recipes as R
from augbal.recipes import Recipe, RecipeError, load_recipe, recipe_hash

REPO = Path(__file__).resolve().parents[1]
# train recipes; bench recipes (recipes/*-bench.yaml, a base recipe plus a grid) are augbal.bench's
RECIPE_FILES = sorted(p for p in (REPO / "recipes").glob("*.yaml") if not p.name.endswith("-bench.yaml"))
DEMO = {"data": {"source": "demo"}}


def _error(raw, overrides=()) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(raw, overrides)
    return str(info.value)


# --------------------------------------------------------------------------- the recipes/ folder


def test_the_ready_recipes_exist():
    names = {p.name for p in RECIPE_FILES}
    assert {"quick-demo.yaml", "seedlike-3.yaml", "cifar10-lt-100.yaml", "my-folder.yaml"} <= names


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.name)
def test_every_ready_recipe_loads_and_round_trips(path):
    recipe = load_recipe(path)  # validates every component; reads no data (paths are only resolved)
    again = load_recipe(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe and recipe_hash(again) == recipe_hash(recipe)


def test_seedlike3_and_cifar10_lt_recipes_say_what_design_md_says():
    seed = load_recipe(REPO / "recipes" / "seedlike-3.yaml")
    shared = REPO.parent / "shared"
    assert seed.data.task == "seedlike-3"
    assert seed.model.weights == str((shared / "weights" / "resnet18-cifar7-64px.pth").resolve())
    assert seed.data.root == str((shared / "datasets" / "cifar10-jpg.tar.gz").resolve())
    # the ready recipe is the benchmark grid's best strategy (RESULTS.md), not a recipe of its own
    from augbal.bench import load_bench
    from augbal.bench._strategies import apply_strategy

    bench = load_bench(REPO / "recipes" / "seedlike-3-bench.yaml")
    best = load_recipe(apply_strategy(bench.base, "posthoc-uniform+mixup+layer4+tta+select-loss"))
    for key in ("freeze", "loss", "sampler", "augmentation", "mixer", "tta", "selection", "optim", "schedule",
                "epochs", "batch_size", "strategy"):
        assert getattr(seed, key) == getattr(best, key), key
    lt = load_recipe(REPO / "recipes" / "cifar10-lt-100.yaml")
    assert (lt.data.task, lt.data.ratio, lt.model.cifar_stem, lt.epochs, lt.batch_size) == ("cifar10-lt", 100, True, 200, 128)
    assert lt.optim == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0002,
                        "no_decay_bn_bias": False}
    assert lt.schedule == {"name": "step", "milestones": [160, 180], "gamma": 0.1, "warmup_epochs": 5, "warmup_start": 0.01}
    demo = load_recipe(REPO / "recipes" / "quick-demo.yaml")
    assert (demo.data.source, demo.model.weights, demo.device) == ("demo", "none", "cpu")


# --------------------------------------------------------------------------- schema


def test_defaults_and_spec_normalisation():
    r = load_recipe({**DEMO, "loss": "focal", "sampler": "class_aware"})
    assert r.loss == {"name": "focal"} and r.sampler == {"name": "class_aware"}
    assert r.freeze == {"name": "head"} and r.mixer is None and r.averaging is None
    assert r.selection == {"name": "best", "metric": "balanced_accuracy"}
    assert r.optim == {"name": "adam", "lr": 0.001, "weight_decay": 0.0001, "no_decay_bn_bias": False, "betas": [0.9, 0.999], "eps": 1e-08}  # every hyper-parameter written out
    assert r.schedule == {"name": "constant", "warmup_epochs": 0.0, "warmup_start": 0.01}
    assert (r.epochs, r.batch_size, r.seed, r.device, r.amp) == (20, 128, 0, "auto", "auto")
    assert r.cache.enabled == "auto" and r.noise_floor.n_boot == 1000


def test_recipe_is_frozen():
    r = load_recipe(DEMO)
    with pytest.raises(pydantic.ValidationError):
        r.epochs = 3  # type: ignore[misc]


def test_to_yaml_and_to_dict_round_trip():
    r = load_recipe({**DEMO, "model": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}, "strategy": {"posthoc": {"prior": "em"}}})
    data = yaml.safe_load(r.to_yaml())
    assert data == r.to_dict() and data["model"]["mean"] == [0.5, 0.5, 0.5]
    assert load_recipe(data) == r
    assert r.strategy.posthoc.prior == "em" and r.strategy.crt is None


def test_recipe_hash_is_sha256_of_canonical_json():
    r = load_recipe(DEMO)
    canonical = json.dumps({k: v for k, v in r.to_dict().items() if k not in ("log", "tta")}, sort_keys=True,
                           separators=(",", ":"))  # fmt: skip
    assert recipe_hash(r) == hashlib.sha256(canonical.encode()).hexdigest()
    assert recipe_hash(load_recipe(DEMO, ["optim.lr=0.002"])) != recipe_hash(r)
    assert recipe_hash(load_recipe({**DEMO, "loss": "ce"})) == recipe_hash(load_recipe({**DEMO, "loss": {"name": "ce"}}))


def test_options_added_later_are_hashed_only_when_set():
    r = load_recipe(DEMO)
    assert r.tta == "none" and "tta" in r.to_dict()
    flip = load_recipe(DEMO, ["tta=flip"])
    assert recipe_hash(flip) != recipe_hash(r)
    posthoc = load_recipe(DEMO, ["strategy.posthoc.prior=uniform"])
    assert posthoc.to_dict()["strategy"]["posthoc"]["per_epoch"] is False
    per_epoch = load_recipe(DEMO, ["strategy.posthoc.prior=uniform", "strategy.posthoc.per_epoch=true"])
    without = json.loads(json.dumps(posthoc.to_dict()))
    del without["log"], without["tta"], without["strategy"]["posthoc"]["per_epoch"]
    canonical = json.dumps(without, sort_keys=True, separators=(",", ":"))
    assert recipe_hash(posthoc) == hashlib.sha256(canonical.encode()).hexdigest()  # the key before the option existed
    assert recipe_hash(per_epoch) != recipe_hash(posthoc)
    assert _error(DEMO, ["tta=mirror"]).startswith("recipe key tta: ")


def test_the_log_section_is_set_by_key_and_left_out_of_the_hash():
    r = load_recipe(DEMO)
    assert r.log.tensorboard is False and r.to_dict()["log"] == {"tensorboard": False, "epoch_checkpoints": False}
    on = load_recipe(DEMO, ["log.tensorboard=true", "log.epoch_checkpoints=true"])
    assert on.log.tensorboard is True and on.log.epoch_checkpoints is True and load_recipe(on.to_dict()) == on
    assert recipe_hash(on) == recipe_hash(r)  # how a run is logged and kept does not change what it computes
    assert _error(DEMO, ["log.tensorboard=maybe"]) == "recipe key log.tensorboard: must be true or false; got 'maybe'"
    assert _error(DEMO, ["log.tb=true"]) == "recipe key log.tb: unknown key; valid keys at log: tensorboard, epoch_checkpoints"


def test_recipes_is_a_lazy_subpackage():
    assert "recipes" in augbal.__all__ and augbal.recipes is R


# --------------------------------------------------------------------------- overrides


def test_overrides_parse_values_as_yaml():
    r = load_recipe(DEMO, ["optim.lr=3e-4", "loss={name: focal, gamma: 2}", "sampler=null", "epochs=5", "model.mean=[0.1, 0.2, 0.3]"])
    assert r.optim == {**{"name": "adam", "lr": 0.001, "weight_decay": 0.0001, "no_decay_bn_bias": False, "betas": [0.9, 0.999], "eps": 1e-08}, "lr": 0.0003}
    assert r.loss == {"name": "focal", "gamma": 2} and r.sampler is None and r.epochs == 5
    assert r.model.mean == (0.1, 0.2, 0.3)


def test_override_gives_a_bare_name_parameters_and_fills_sections():
    r = load_recipe({**DEMO, "sampler": "class_aware"}, ["sampler.weighting=sqrt", "strategy.posthoc.prior=em", "cache.views=4"])
    assert r.sampler == {"name": "class_aware", "weighting": "sqrt"}
    assert r.strategy.posthoc.prior == "em" and r.cache.views == 4
    r = load_recipe(DEMO, ["schedule.warmup_epochs=2"])
    assert r.schedule == {"name": "constant", "warmup_epochs": 2, "warmup_start": 0.01}
    # the default adam spec's betas and eps do not apply to sgd: a name change keeps lr and weight decay only
    r = load_recipe({**DEMO, "optim": {"name": "adam", "lr": 0.001, "weight_decay": 0.0001}}, ["optim.name=sgd"])
    assert r.optim == {"name": "sgd", "lr": 0.001, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0001,
                       "no_decay_bn_bias": False}


def test_override_unknown_keys_list_the_valid_ones():
    assert _error(DEMO, ["model.weight=none"]) == (
        "recipe key model.weight: unknown key; valid keys at model: weights, download, cifar_stem, dropout, "
        "head, input_size, mean, std, channels_last"
    )
    assert _error(DEMO, ["epoch=3"]).startswith("recipe key epoch: unknown key; valid keys at the top level: data, model, freeze,")
    assert _error(DEMO, ["strategy.dsr.switch_epoch=3"]).startswith(
        "recipe key strategy.dsr: unknown key; valid keys at strategy: posthoc, crt, tau_norm, feature_resampler, drs"
    )


def test_bad_override_strings():
    assert _error(DEMO, ["optim.lr"]) == "an override is KEY=VALUE (optim.lr=3e-4); got 'optim.lr'"
    assert _error(DEMO, ["optim..lr=1"]) == "an override key is dotted names (optim.lr); got 'optim..lr'"
    assert _error(DEMO, ["loss={name: [}"]).startswith("override loss: not valid YAML")


# --------------------------------------------------------------------------- error messages


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**DEMO, "optim": {"name": "adam", "lr": -1}}, "recipe key optim.lr: must be a number > 0; got -1"),
        ({**DEMO, "epochs": 0}, "recipe key epochs: must be >= 1; got 0"),
        ({**DEMO, "epochs": True}, "recipe key epochs: must be an int; got True"),
        ({**DEMO, "epochs": 2.5}, "recipe key epochs: must be an int; got 2.5"),
        ({**DEMO, "grad_clip": 0}, "recipe key grad_clip: must be > 0; got 0"),
        ({"data": {"source": "demo", "splits": "random"}}, "recipe key data.splits: must be 'split' or 'existing'; got 'random'"),
        ({**DEMO, "model": {"mean": [1, 2]}}, "recipe key model.mean: must be three numbers (one per RGB channel); got [1, 2]"),
        ({**DEMO, "model": {"std": [1, 0, 1]}}, "recipe key model.std: must be three numbers > 0; got [1.0, 0.0, 1.0]"),
        ({**DEMO, "model": {"dropout": False}}, "recipe key model.dropout: must be a number, not a boolean; got False"),
        ({**DEMO, "device": "gpu"}, "recipe key device: must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got 'gpu'"),
        ({**DEMO, "loss": 3}, "recipe key loss: must be a registered name or a mapping with a 'name' key; got 3"),
        ({**DEMO, "loss": {"gamma": 2}}, "recipe key loss: must be a registered name or a mapping with a 'name' key; got {'gamma': 2}"),
        ({}, "recipe key data: is required"),
    ],
)
def test_schema_errors_name_key_rule_and_value(raw, message):
    assert _error(raw) == message


def test_extra_keys_are_refused_at_every_level():
    assert _error({**DEMO, "lossx": 1}).startswith("recipe key lossx: unknown key; valid keys at the top level: data, model,")
    assert _error({"data": {"source": "demo", "sorce": "x"}}).startswith(
        "recipe key data.sorce: unknown key; valid keys at data: source, task, root, ratio,"
    )
    assert _error({**DEMO, "strategy": {"crt": {"epoch": 3}}}) == (
        "recipe key strategy.crt.epoch: unknown key; valid keys at strategy.crt: epochs, lr, sampler"
    )


def test_every_broken_rule_gets_its_line():
    message = _error({**DEMO, "epochs": 0, "batch_size": -1, "amp": "fp16"})
    assert message.splitlines() == [
        "recipe key epochs: must be >= 1; got 0",
        "recipe key batch_size: must be >= 1; got -1",
        "recipe key amp: must be 'auto', 'bf16' or 'off'; got 'fp16'",
    ]
    with pytest.raises(RecipeError) as info:
        load_recipe({**DEMO, "epochs": 0, "batch_size": -1})
    assert info.value.keys == ("epochs", "batch_size")


# --------------------------------------------------------------------------- components through their registries


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**DEMO, "sampler": "foo"}, "recipe key sampler.name: must be a registered sampler (balanced_batch, class_aware, repeat_factor, resampled); got 'foo'"),
        ({**DEMO, "sampler": {"name": "class_aware", "rounding": "bad"}}, "recipe key sampler.rounding: must be one of 'largest_remainder', 'stochastic'; got 'bad'"),
        ({**DEMO, "sampler": {"name": "class_aware", "labels": [0, 1]}}, "recipe key sampler.labels: is supplied by the run from the data, not by the recipe; got [0, 1]"),
        ({**DEMO, "mixer": {"name": "mixup", "alpha": -1}}, "recipe key mixer.alpha: must be a number > 0; got -1"),
        ({**DEMO, "mixer": {"name": "mixup", "num_classes": 3}}, "recipe key mixer.num_classes: is supplied by the run from the data, not by the recipe; got 3"),
        ({**DEMO, "augmentation": {"name": "light", "magnitude": -1}}, "recipe key augmentation.magnitude: must be a number >= 0; got -1"),
        ({**DEMO, "eval_augmentation": "blur"}, "recipe key eval_augmentation.name: must be a registered policy ("),
        ({**DEMO, "schedule": {"name": "step", "milestones": [5, 5]}}, "recipe key schedule.milestones: must be a list of increasing epochs >= 1; got [5, 5]"),
        ({**DEMO, "schedule": {"name": "cosine", "patience": 3}}, "recipe key schedule.patience: unknown key; valid keys at schedule (schedule 'cosine'): min_lr_ratio, warmup_epochs, warmup_start"),
        ({**DEMO, "optim": {"name": "sgd", "momentum": 0.0, "nesterov": True}}, "recipe key optim.momentum: must be > 0 with nesterov=True; got 0.0"),
        ({**DEMO, "optim": {"name": "rmsprop"}}, "recipe key optim.name: must be a registered optimizer (adam, adamw, sgd); got 'rmsprop'"),
        ({**DEMO, "strategy": {"crt": {"sampler": "zzz"}}}, "recipe key strategy.crt.sampler.name: must be a registered sampler ("),
    ],
)
def test_components_are_validated_through_their_registries(raw, message):
    assert _error(raw).startswith(message)


def test_samplers_and_mixers_are_built_on_stand_ins_only_when_the_classes_are_known(tmp_path):
    bad = {"name": "class_aware", "rounding": "bad"}
    # a folder source without classes: C is unknown, the sampler is built on stand-in labels
    assert _error({"data": {"source": str(tmp_path)}, "sampler": bad}).startswith("recipe key sampler.rounding")
    # ... except what needs the real number of classes, checked when the data is scanned
    big = {"name": "balanced_batch", "classes_per_batch": 5, "weighting": [1, 2, 3]}
    assert load_recipe({"data": {"source": str(tmp_path)}, "sampler": big}).sampler == big
    assert _error({"data": {"source": str(tmp_path)}, "sampler": {"name": "class_aware", "rnding": "x"}}).startswith(
        "recipe key sampler.rnding: unknown key; valid keys at sampler (sampler 'class_aware'): weighting, num_samples,"
    )
    # with classes named, it is built (labels 0..C-1 repeated) and its values checked
    assert _error({"data": {"source": str(tmp_path), "classes": ["a", "b"]}, "sampler": bad}).startswith("recipe key sampler.rounding")
    r = load_recipe({"data": {"source": str(tmp_path), "classes": ["a", "b"]}, "mixer": {"name": "remix", "kappa": 3.0}})
    assert r.mixer == {"name": "remix", "kappa": 3.0}


def test_a_registry_that_has_not_landed_is_checked_by_shape_only(monkeypatch):
    monkeypatch.setitem(R._REGISTRIES, "loss", ("augbal.train._no_such_module", "LOSSES", ()))
    assert load_recipe({**DEMO, "loss": {"name": "anything", "p": 1}}).loss == {"name": "anything", "p": 1}
    assert _error({**DEMO, "loss": {"p": 1}}).startswith("recipe key loss: must be a registered name or a mapping")


@pytest.mark.parametrize(
    ("module", "key", "spec"),
    [
        ("augbal.train._losses", "loss", {"name": "no_such_loss"}),
        ("augbal.train._freeze", "freeze", {"name": "no_such_policy"}),
        ("augbal.train._select", "selection", {"name": "no_such_selection"}),
        ("augbal.train._features", "strategy", {"feature_resampler": {"name": "no_such_resampler"}}),
    ],
)
def test_pending_registries_validate_once_they_exist(module, key, spec):
    pytest.importorskip(module)
    message = _error({**DEMO, key: spec})
    assert message.startswith(f"recipe key {key}") and "must be a registered" in message


def test_recipe_level_rules():
    assert _error({**DEMO, "strategy": {"drs": {"switch_epoch": 5}}}) == (
        "recipe key strategy.drs: needs a sampler (the one used from switch_epoch on); got sampler: null"
    )
    assert _error({**DEMO, "epochs": 5, "sampler": "class_aware", "strategy": {"drs": {"switch_epoch": 5}}}) == (
        "recipe key strategy.drs.switch_epoch: must be < epochs (5); got 5"
    )
    assert _error({**DEMO, "schedule": {"name": "cosine", "warmup_epochs": 30}}) == (
        "recipe key schedule.warmup_epochs: must be <= epochs (20); got 30"
    )
    assert _error({**DEMO, "averaging": "best"}) == "recipe key averaging.name: must be 'ema' or 'swa' (or averaging: null); got 'best'"


# --------------------------------------------------------------------------- the data section


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "demo", "task": "seedlike-3"}, "recipe key data: needs exactly one of source (a folder, a manifest or 'demo') or task; got source='demo', task='seedlike-3'"),
        ({"task": "seedlike-3"}, "recipe key data.root: is required with task 'seedlike-3' (the CIFAR-10 jpg folder or .tar.gz); got None"),
        ({"task": "seedlike-3", "root": "/x", "ratio": 10}, "recipe key data.ratio: applies to task 'cifar10-lt' only; got 10.0"),
        ({"task": "seedlike-3", "root": "/x", "classes": ["cat"]}, "recipe key data.classes: does not apply to task 'seedlike-3' (its classes and counts are fixed); got ['cat']"),
        ({"task": "cifar10-lt", "root": "/x", "task_options": {"foo": 1}}, "recipe key data.task_options.foo: unknown key; valid keys at data.task_options: n_max, val_per_class"),
        ({"task": "mnist", "root": "/x"}, "recipe key data.task: must be 'seedlike-3' or 'cifar10-lt'; got 'mnist'"),
        ({"source": "demo", "root": "/x"}, "recipe key data.root: applies to a task only (with source, the images are the source); got '/x'"),
        ({"source": "demo", "skew": {"ratoi": 10}}, "recipe key data.skew.ratoi: unknown key; valid keys at data.skew: profile, ratio, counts, prior, size, order, n_max, mu, seed"),
        ({"source": "demo", "val_fraction": 0.5, "test_fraction": 0.5}, "recipe key data.val_fraction: plus test_fraction must be < 1; got 0.5 + 0.5"),
        ({"source": "demo", "val_fraction": 0}, "recipe key data.val_fraction: must be > 0; got 0"),
        ({"source": "demo", "classes": ["a", "a"]}, "recipe key data.classes: must name each class once; got ['a', 'a']"),
        ({"source": "/x", "splits": "existing", "test_fraction": 0.2}, "recipe key data.test_fraction: applies to splits: split only (existing sides are used as they are); got 0.2"),
    ],
)
def test_data_section_rules(data, message):
    assert _error({"data": data}) == message


# --------------------------------------------------------------------------- paths and files


def test_paths_resolve_relative_to_the_recipe_file(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "recipes"
    folder.mkdir(parents=True)
    (folder / "r.yaml").write_text(
        "data: {task: seedlike-3, root: ../data/cifar.tar.gz, extract_dir: cache}\n"
        "model: {weights: ../w/backbone.pth}\ncache: {dir: /abs/cache}\nout: runs/x\n"
    )
    monkeypatch.chdir(tmp_path)
    r = load_recipe(folder / "r.yaml")
    assert r.data.root == str(tmp_path / "project" / "data" / "cifar.tar.gz")
    assert r.data.extract_dir == str(folder / "cache")
    assert r.model.weights == str(tmp_path / "project" / "w" / "backbone.pth")
    assert r.cache.dir == "/abs/cache" and r.out == "runs/x"  # absolute kept; out is the caller's
    # a mapping resolves against base_dir (default: the current directory); keywords stay
    m = load_recipe({"data": {"source": "imgs"}, "model": {"weights": "none"}}, base_dir=tmp_path / "b")
    assert m.data.source == str(tmp_path / "b" / "imgs") and m.model.weights == "none"
    assert load_recipe({"data": {"source": "imgs"}}).data.source == str(tmp_path / "imgs")
    assert load_recipe(DEMO).data.source == "demo" and load_recipe(DEMO).model.weights == "imagenet"


def test_yaml_file_errors_and_exponent_floats(tmp_path):
    assert _error(tmp_path / "missing.yaml").startswith(f"recipe file {str(tmp_path / 'missing.yaml')!r} cannot be read")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: demo\n")
    assert _error(bad).startswith(f"{bad}: not valid YAML")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    assert _error(listing) == f"{listing}: a recipe is a mapping of keys (data, model, loss, ...); got list"
    good = tmp_path / "good.yaml"
    good.write_text("data: {source: demo}\noptim: {name: adamw, lr: 3e-4, weight_decay: 1e-2}\n")
    assert load_recipe(good).optim == {"name": "adamw", "lr": 0.0003, "weight_decay": 0.01, "no_decay_bn_bias": False,
                                       "betas": [0.9, 0.999], "eps": 1e-08}


def test_recipe_constructed_directly_validates_too():
    assert Recipe(data={"source": "demo"}, loss="focal").loss == {"name": "focal"}
    with pytest.raises(pydantic.ValidationError, match="recipe key sampler.name: must be a registered sampler"):
        Recipe(data={"source": "demo"}, sampler="nope")


def test_parameters_passed_up_the_class_tree_are_known():
    pytest.importorskip("augbal.train._freeze")
    r = load_recipe(DEMO, ["freeze={name: two_stage, head_epochs: 2, lr_mult: {layer4: 0.1}}"])
    assert r.freeze == {"name": "two_stage", "head_epochs": 2, "lr_mult": {"layer4": 0.1}}
    assert _error(DEMO, ["freeze={name: two_stage, head_epoch: 2}"]) == (
        "recipe key freeze.head_epoch: unknown key; valid keys at freeze (freeze policy 'two_stage'): "
        "head_epochs, then, lr_mult, reinit, bn, seed"
    )


def test_the_resolved_recipe_saved_in_a_run_folder_loads_back_equal(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "r.yaml").write_text("data: {source: images, classes: [b, a]}\nmodel: {weights: w.pth}\nloss: focal\n")
    recipe = load_recipe(folder / "r.yaml", ["optim.lr=3e-4"])
    run = tmp_path / "elsewhere" / "run"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(recipe.to_yaml())
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = load_recipe(run / "recipe.yaml")
    assert again == recipe and recipe_hash(again) == recipe_hash(recipe)
    assert again.data.source == str(folder / "images") and again.model.weights == str(folder / "w.pth")


def test_a_resolved_existing_splits_recipe_loads_back(tmp_path):
    for side in ("train", "val"):
        (tmp_path / "tree" / side / "cat").mkdir(parents=True)
    recipe = load_recipe({"data": {"source": str(tmp_path / "tree"), "splits": "existing"}, "model": {"weights": "none"}})
    assert load_recipe(recipe.to_dict()) == recipe
    with pytest.raises(RecipeError, match="data.val_fraction: applies to splits: split only"):
        load_recipe({"data": {"source": str(tmp_path / "tree"), "splits": "existing", "val_fraction": 0.3}})


@pytest.mark.parametrize(
    "raw",
    [
        {"data": {"task": "cifar10-lt", "root": "/c.tar.gz", "ratio": 50, "task_options": {"val_per_class": 20},
                  "split_seed": 3, "extract_dir": "/x"}},
        {"data": {"task": "seedlike-3", "root": "/c", "task_options": {"train_counts": [9, 3, 1]}}},
        {"data": {"source": "/imgs", "classes": ["b", "a"], "skew": {"ratio": 10, "n_max": 50}, "test_fraction": 0}},
        {"data": {"source": "/imgs", "splits": "existing"}, "cache": {"enabled": True, "views": 3, "dir": "/cache"}},
        {
            **DEMO,
            "model": {"weights": "/w.pth", "dropout": 0.2, "head": "cosine", "input_size": 64, "mean": [0.5, 0.5, 0.5],
                      "std": [0.25, 0.25, 0.25], "channels_last": True},
            "freeze": {"name": "two_stage", "head_epochs": 2},
            "loss": {"name": "ldam", "weighting": {"name": "deferred", "switch_epoch": 5}},
            "sampler": {"name": "class_aware", "weighting": "sqrt"},
            "augmentation": {"name": "rarity_scaled", "base": "light"},
            "mixer": {"name": "mixup", "alpha": 0.2},
            "selection": {"name": "smoothed", "metric": "balanced_accuracy", "window": 3},
            "averaging": {"name": "ema", "decay": 0.99},
            "optim": {"name": "sgd", "lr": 0.1, "nesterov": True},
            "schedule": {"name": "plateau", "metric": "loss", "factor": 0.5, "patience": 6, "warmup_epochs": 1},
            "grad_clip": 1.0,
            "strategy": {"posthoc": {"prior": "em"}, "crt": {"epochs": 3, "lr": 0.01, "sampler": "class_aware"},
                         "tau_norm": {}, "feature_resampler": {"name": "smote"}, "drs": {"switch_epoch": 10}},
            "device": "cuda:1", "num_workers": 2, "amp": "bf16", "noise_floor": {"n_boot": 50, "seed": 1}, "out": "runs/a",
        },
    ],
    ids=["cifar10-lt", "seedlike-3", "source-skew", "existing", "every-section"],
)
def test_every_kind_of_resolved_recipe_loads_back_equal(raw):
    recipe = load_recipe(raw)
    again = load_recipe(yaml.safe_load(recipe.to_yaml()))
    assert again == recipe and recipe_hash(again) == recipe_hash(recipe)


def test_bad_yaml_is_one_line_naming_the_file_line_and_column(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: [\n")
    message = _error(bad)
    assert "\n" not in message
    assert message == (f"{bad}: not valid YAML: line 2, column 1: expected the node content, but found "
                       "'<stream end>' (while parsing a flow node)")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sampler={name: class_aware, weighting: balance}", "recipe key sampler.weighting: must be a name ("),
        ("sampler={name: class_aware, num_samples: 0}", "recipe key sampler.num_samples: must be an int >= 1 or None; got 0"),
        ("mixer={name: remix, kappa: 0.5}", "recipe key mixer.kappa: must be a number >= 1; got 0.5"),
        ("selection.metric=bal_acc", "recipe key selection.metric: must name a metric a run records ("),
        ("strategy.crt={sampler: {name: class_aware, weighting: balnced}}", "recipe key strategy.crt.sampler.weighting: "),
        ("strategy.crt={sampler: {name: class_aware, num_samples: 0}}", "recipe key strategy.crt.sampler.num_samples: "),
    ],
)
def test_component_values_are_checked_at_load_without_the_data(tmp_path, override, message):
    with pytest.raises(RecipeError) as info:
        load_recipe({"data": {"source": str(tmp_path)}}, [override])
    assert str(info.value).startswith(message)


def test_class_names_as_keys_wait_for_the_data_or_are_checked_against_data_classes(tmp_path):
    specs = {
        "sampler": {"name": "class_aware", "weighting": {"dog": 10}},
        "loss": {"name": "wce", "weighting": {"dog": 10}},
        "augmentation": {"name": "class_conditional", "policies": {"dog": "heavy"}},
    }
    r = load_recipe({"data": {"source": str(tmp_path)}, **specs})  # the classes are not known yet
    assert r.sampler == specs["sampler"] and r.augmentation == specs["augmentation"]
    r = load_recipe({"data": {"source": str(tmp_path), "classes": ["cat", "dog"]}, **specs})
    assert r.loss == specs["loss"]
    for key, spec in specs.items():
        bad = {**spec, **{k: {"dgo": v} for k, v in spec.items() if isinstance(v, dict) for v in v.values()}}
        message = _error({"data": {"source": str(tmp_path), "classes": ["cat", "dog"]}, key: bad})
        assert message.startswith(f"recipe key {key}."), message
        assert "unknown class 'dgo'; the classes are: cat, dog" in message
