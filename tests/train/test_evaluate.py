"""augbal.train.evaluate: a run's checkpoint scored on a folder, a manifest or an index."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

_spec = importlib.util.spec_from_file_location("_loop_helpers", Path(__file__).with_name("test_loop.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from augbal.train import train

    root = tmp_path_factory.mktemp("eval")
    folder = _helpers.make_folder(root / "data")
    result = train(_helpers.tiny_recipe(folder, **{"optim.lr": 1e-2}), out=root / "run")
    return result, folder


def val_split(result):
    from augbal.recipes import load_recipe
    from augbal.train._data import resolve_data

    recipe = load_recipe(result.run_dir / "recipe.yaml")
    return resolve_data(recipe.data, seed=recipe.seed).val


def test_the_selected_checkpoint_on_the_validation_images_scores_what_the_run_recorded(run):
    from augbal.train import evaluate

    result, _ = run
    scored = evaluate(result.run_dir, val_split(result))
    recorded = json.loads((result.run_dir / "selection.json").read_text())["val"]
    assert scored["checkpoint"] == "selected" and scored["prior"] is None
    assert scored["metrics"]["confusion"] == recorded["confusion"]
    for key in ("loss", "loss_weighted", "loss_uniform_prior", "balanced_accuracy", "ece"):
        assert scored["metrics"][key] == pytest.approx(recorded[key], abs=1e-5), key
    assert Path(scored["path"]) == result.run_dir / "evaluations" / "index-selected.json"


def test_a_manifest_scores_as_its_folder_and_labels_follow_the_run_classes(run, tmp_path):
    from augbal.data import scan, write_manifest
    from augbal.train import evaluate

    result, folder = run
    index = scan(folder)
    as_folder = evaluate(result.run_dir, folder, out=tmp_path / "a.json")
    manifest = write_manifest(index, tmp_path / "m.csv")
    as_manifest = evaluate(result.run_dir, manifest, out=tmp_path / "b.json")
    assert as_manifest["metrics"] == as_folder["metrics"]
    # a folder holding only some of the run's classes keeps the run's numbering
    only_dog = tmp_path / "dogs"
    (only_dog / "dog").mkdir(parents=True)
    for p in sorted((folder / "dog").iterdir())[:3]:
        (only_dog / "dog" / p.name).write_bytes(p.read_bytes())
    scored = evaluate(result.run_dir, only_dog, out=tmp_path / "c.json")
    assert scored["metrics"]["n"] == [0, 0, 3]


def test_priors_adjust_the_logits_and_bad_arguments_name_themselves(run, tmp_path):
    from augbal.train import evaluate
    from augbal.train._posthoc import adjust_logits

    result, folder = run
    none = evaluate(result.run_dir, folder, prior="none", out=tmp_path / "n.json")
    uniform = evaluate(result.run_dir, folder, prior="uniform", out=tmp_path / "u.json")
    em = evaluate(result.run_dir, folder, prior="em", out=tmp_path / "e.json")
    assert none["prior"] is None and uniform["prior"] == {"prior": "uniform"}
    assert len(em["prior"]["target_prior"]) == 3 and sum(em["prior"]["target_prior"]) == pytest.approx(1.0)
    # the adjustment is a per-class shift of the logits: the uniform target lifts the rare classes
    prior = np.asarray(json.loads((result.run_dir / "selection.json").read_text())["train_prior"])
    shift = np.asarray(adjust_logits(np.zeros((1, 3)), train_prior=prior, target_prior="uniform"))[0]
    assert shift.argmax() == prior.argmin()
    assert sum(uniform["metrics"]["confusion"][i][prior.argmin()] for i in range(3)) >= sum(
        none["metrics"]["confusion"][i][prior.argmin()] for i in range(3))  # fmt: skip
    with pytest.raises(ValueError, match="prior must be one of none, uniform, em; got 'val'"):
        evaluate(result.run_dir, folder, prior="val")
    with pytest.raises(ValueError, match="checkpoint must be one of selected, best, last or 'epoch:N'; got 'first'"):
        evaluate(result.run_dir, folder, checkpoint="first")
    other = _helpers.make_folder(tmp_path / "other", counts=(3, 3, 3))
    (other / "dog").rename(other / "wolf")
    with pytest.raises(ValueError, match=r"data classes must be among the run's classes .*; got 'wolf'"):
        evaluate(result.run_dir, other)


def test_epoch_checkpoints_keep_every_epoch_and_evaluate_scores_each(tmp_path):
    from augbal.recipes import load_recipe, recipe_hash
    from augbal.train import evaluate, read_history, train

    folder = _helpers.make_folder(tmp_path / "data")
    recipe = _helpers.tiny_recipe(folder, epochs=3, **{"optim.lr": 1e-2, "log.epoch_checkpoints": True})
    result = train(recipe, out=tmp_path / "run")
    kept = sorted(p.name for p in (result.run_dir / "epochs").iterdir())
    assert kept == ["epoch-000.pt", "epoch-001.pt", "epoch-002.pt"]
    val = val_split(result)
    history = read_history(result.run_dir / "metrics.jsonl")
    for epoch in range(3):  # each file holds that epoch's weights: it scores what the epoch recorded
        scored = evaluate(result.run_dir, val, checkpoint=f"epoch:{epoch}", prior="none", out=tmp_path / f"{epoch}.json")
        assert scored["epoch"] == epoch
        assert scored["metrics"]["confusion"] == history[epoch]["val"]["confusion"]
        assert scored["metrics"]["loss"] == pytest.approx(history[epoch]["val"]["loss"], abs=1e-5)
    best = evaluate(result.run_dir, val, checkpoint="best", prior="none", out=tmp_path / "b.json")
    same = evaluate(result.run_dir, val, checkpoint=f"epoch:{best['epoch']}", prior="none", out=tmp_path / "s.json")
    assert same["metrics"] == best["metrics"]
    # a run without them says how to keep them; the option does not change the run's key
    plain = train(_helpers.tiny_recipe(folder, epochs=3, **{"optim.lr": 1e-2}), out=tmp_path / "plain")
    assert not (plain.run_dir / "epochs").exists()
    with pytest.raises(FileNotFoundError, match=r"'epoch:1' not found: .*epoch-001.pt does not exist .*log.epoch_checkpoints"):
        evaluate(plain.run_dir, val, checkpoint="epoch:1")
    assert recipe_hash(load_recipe(result.run_dir / "recipe.yaml")) == recipe_hash(load_recipe(plain.run_dir / "recipe.yaml"))
    with pytest.raises(ValueError, match="'epoch:x'"):
        evaluate(result.run_dir, val, checkpoint="epoch:x")


def test_a_frozen_trunk_run_scores_on_the_feature_cache_as_on_the_images(run, monkeypatch):
    import augbal.train._evaluate as ev
    from augbal.data import ImageDataset
    from augbal.train import evaluate
    from augbal.train._cache import CachedViews

    result, _ = run
    seen = []
    real = ev._inputs

    def spy(*args):
        net, inputs = real(*args)
        seen.append([type(view) for view in inputs])
        return net, inputs

    monkeypatch.setattr(ev, "_inputs", spy)
    cached = evaluate(result.run_dir, val_split(result))["metrics"]
    monkeypatch.setattr(ev, "_inputs", lambda run, recipe, model, index, policy, device: (
        model, (ImageDataset(index, transform=policy),)))  # fmt: skip
    images = evaluate(result.run_dir, val_split(result))["metrics"]
    assert seen == [[CachedViews]]  # head-only run: the trunk's features come from the cache
    assert cached["confusion"] == images["confusion"]
    assert cached["loss"] == pytest.approx(images["loss"], abs=1e-5)


def _by_hand(result, index):
    """The selected model's logits on ``index``: the mean of the image's and its mirror's,
    computed here from the saved weights and the images, not through the run's input path."""
    from augbal.augment import build_policy
    from augbal.data import ImageDataset
    from augbal.train._metrics import evaluate_logits
    from augbal.train._model import build_model

    saved = torch.load(result.run_dir / "selected.pt", weights_only=True)
    selection = json.loads((result.run_dir / "selection.json").read_text())
    w = selection["weights"]
    model, _ = build_model(3, weights="none", input_size=w["input_size"], mean=tuple(w["mean"]), std=tuple(w["std"]))
    model.load_state_dict(saved["model"])
    model.eval()
    policy = build_policy("none", size=w["input_size"], mean=w["mean"], std=w["std"])
    ds = ImageDataset(index, transform=policy)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        plain, mirrored = model(x), model(x.flip(-1))
    counts = selection["train_counts"]
    both = evaluate_logits((plain + mirrored) / 2, index.labels, train_counts=counts)
    return both, evaluate_logits(plain, index.labels, train_counts=counts)


@pytest.mark.parametrize("freeze", ["head", "all"])  # cached features, and images through the whole model
def test_tta_flip_scores_the_mean_of_the_image_and_its_mirror_in_validation_and_evaluate(tmp_path, freeze):
    from augbal.train import evaluate, read_history, train

    folder = _helpers.make_folder(tmp_path / "data")
    result = train(_helpers.tiny_recipe(folder, epochs=1, tta="flip", freeze=freeze, selection="last",
                                        **{"optim.lr": 1e-2}), out=tmp_path / "run")  # fmt: skip
    val = val_split(result)
    both, plain = _by_hand(result, val)
    recorded = read_history(result.run_dir / "metrics.jsonl")[-1]["val"]
    # float32 logits: batched (training loop) and whole (by hand) sums agree to ~1e-7 relative;
    # with freeze="all" and lr 1e-2 the loss is in the thousands, beyond an absolute 1e-5
    assert recorded["loss"] == pytest.approx(both["loss"], rel=1e-6, abs=1e-5)
    assert recorded["confusion"] == both["confusion"]
    assert plain["loss"] != pytest.approx(both["loss"], abs=1e-5)  # the mirror changes the scores
    scored = evaluate(result.run_dir, val)
    assert scored["metrics"]["loss"] == pytest.approx(both["loss"], rel=1e-6, abs=1e-5)


def test_evaluations_of_other_data_folders_and_options_do_not_overwrite_each_other(run, tmp_path, monkeypatch):
    import shutil

    from augbal.train import evaluate

    result, folder = run
    folders = [tmp_path / parent / "val" for parent in ("ex", "other")]
    for f in folders:
        shutil.copytree(folder, f)
    paths = [evaluate(result.run_dir, folders[0])["path"], evaluate(result.run_dir, folders[1])["path"],
             evaluate(result.run_dir, folders[0], prior="em")["path"]]
    monkeypatch.chdir(folders[0])
    paths.append(evaluate(result.run_dir, ".")["path"])  # the same folder as the first, named otherwise
    names = [Path(p).name for p in paths]
    assert len(set(paths[:3])) == 3 and all(Path(p).is_file() for p in paths), names
    assert names[0].startswith("val-") and names[0].endswith("-selected.json") and "prior-em" in names[2]
    assert names[3] == names[0]  # "." is ex/val: the same data, the same file
