"""augbal.train.train end to end on tiny generated images: the run folder, determinism, the
cache path equal to the image path, and test data kept out of selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from augbal.data import write_image_folder

torch.set_num_threads(1)


def make_folder(root: Path, counts=(48, 16, 8), size: int = 32, seed: int = 0) -> Path:
    """Class c: noise around its own colour, so a head can learn something in two epochs."""
    rng = np.random.default_rng(seed)
    items = []
    for c, n in enumerate(counts):
        base = np.array([60 + 70 * c, 180 - 50 * c, 90 + 40 * (c % 2)], dtype=np.float64)
        for _ in range(n):
            img = np.clip(base + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
            items.append((img, c))
    return write_image_folder(items, root, classes=["cat", "deer", "dog"])


def tiny_recipe(source: Path, **overrides):
    recipe = {
        "data": {"source": str(source), "val_fraction": 0.25, "test_fraction": 0.2, "split_seed": 0},
        "model": {"weights": "none", "input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "epochs": 2,
        "batch_size": 16,
        "device": "cpu",
        "num_workers": 0,
        "optim": {"name": "adam", "lr": 1e-3},
        "noise_floor": {"n_boot": 50, "seed": 0},
    }
    for key, value in overrides.items():
        node = recipe
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return recipe


def without_timing(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("time_s")
    return rows


class Interrupted(Exception):
    pass


def stop_after(epoch: int):
    """A progress callback that interrupts a run once ``epoch`` is written (to test resuming)."""

    def progress(row):
        if row["epoch"] == epoch:
            raise Interrupted(f"stopped after epoch {epoch}")

    return progress


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("images") / "data")


@pytest.fixture(scope="module")
def head_run(folder, tmp_path_factory):
    from augbal.train import train

    out = tmp_path_factory.mktemp("runs") / "head"
    return train(tiny_recipe(folder, **{"cache.dir": str(out.parent / "cache")}), out=out)


def test_a_run_writes_its_folder_and_says_what_it_selected(head_run):
    run = head_run.run_dir
    for name in ("recipe.yaml", "metrics.jsonl", "last.pt", "best.pt", "selected.pt", "selection.json", "run.md"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    for r in rows:
        assert set(r) == {"epoch", "lr", "train", "val", "time_s"}
        assert set(r["train"]) == {"loss", "loss_unweighted"}
        assert {"loss", "loss_weighted", "loss_uniform_prior", "balanced_accuracy", "macro_f1", "recall",
                "confusion", "ece"} <= set(r["val"])
        assert r["lr"] == [pytest.approx(1e-3)]
    best = torch.load(run / "best.pt", weights_only=True)
    selection = json.loads((run / "selection.json").read_text())
    assert best["epoch"] == selection["epoch"] == head_run.selected_epoch
    assert selection["candidate"] == head_run.candidate == "best"
    chosen = max(rows, key=lambda r: r["val"]["balanced_accuracy"])  # first of the ties, as "best" keeps it
    assert head_run.selected_epoch == chosen["epoch"]
    assert head_run.val["balanced_accuracy"] == pytest.approx(chosen["val"]["balanced_accuracy"], abs=1e-9)
    assert selection["verdict"] == head_run.verdict and "noise" in head_run.verdict
    assert selection["classes"] == ["cat", "deer", "dog"]
    assert (run / "cache").exists() is False  # the recipe's cache.dir was used
    assert any((run.parent / "cache").iterdir())


def test_an_occupied_run_folder_is_refused(head_run, folder):
    from augbal.train import train

    with pytest.raises(FileExistsError, match="already holds a run"):
        train(tiny_recipe(folder), out=head_run.run_dir)


def test_the_same_recipe_gives_the_same_metrics_byte_for_byte(folder, tmp_path):
    from augbal.train import train

    recipe = tiny_recipe(folder, freeze={"name": "layer4"}, sampler={"name": "class_aware"},
                         augmentation={"name": "light"}, epochs=2)
    a = train(recipe, out=tmp_path / "a")
    b = train(recipe, out=tmp_path / "b")
    assert without_timing(a.run_dir / "metrics.jsonl") == without_timing(b.run_dir / "metrics.jsonl")
    wa = torch.load(a.run_dir / "selected.pt", weights_only=True)["model"]
    wb = torch.load(b.run_dir / "selected.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train({**recipe, "seed": 1}, out=tmp_path / "c")
    assert without_timing(c.run_dir / "metrics.jsonl") != without_timing(a.run_dir / "metrics.jsonl")


def test_cached_features_train_the_head_as_the_images_do(folder, tmp_path, head_run):
    from augbal.train import train

    plain = train(tiny_recipe(folder, **{"cache.enabled": False}), out=tmp_path / "plain")
    assert not (tmp_path / "plain" / "cache").exists()
    cached = without_timing(head_run.run_dir / "metrics.jsonl")
    images = without_timing(plain.run_dir / "metrics.jsonl")
    for a, b in zip(cached, images):
        for key in ("loss", "loss_weighted", "loss_uniform_prior", "balanced_accuracy", "ece"):
            assert a["val"][key] == pytest.approx(b["val"][key], abs=1e-5), key
        assert a["train"]["loss"] == pytest.approx(b["train"]["loss"], abs=1e-5)


def test_the_test_split_cannot_influence_the_selection(folder, tmp_path, head_run, monkeypatch):
    from augbal.train import _data, train
    from augbal.train._evaluate import evaluate_test

    before = (head_run.run_dir / "selection.json").read_bytes()
    best = (head_run.run_dir / "best.pt").read_bytes()
    scored = evaluate_test(head_run.run_dir)
    assert (head_run.run_dir / "test.json").is_file()
    assert json.loads((head_run.run_dir / "test.json").read_text())["metrics"] == scored["metrics"]
    assert (head_run.run_dir / "selection.json").read_bytes() == before  # scoring test changed nothing
    assert (head_run.run_dir / "best.pt").read_bytes() == best

    real = _data.resolve_data

    def no_test(*args, **kwargs):
        splits = real(*args, **kwargs)
        assert splits.test is not None
        return type(splits)(**{**splits.__dict__, "test": None})

    monkeypatch.setattr(_data, "resolve_data", no_test)
    alone = train(tiny_recipe(folder, **{"cache.dir": str(head_run.run_dir.parent / "cache")}), out=tmp_path / "no-test")
    a = json.loads(before)
    b = json.loads((alone.run_dir / "selection.json").read_text())
    assert (a["candidate"], a["epoch"], a["val"]) == (b["candidate"], b["epoch"], b["val"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trains_in_bf16_with_channels_last(folder, tmp_path):
    from augbal.train import train

    result = train(tiny_recipe(folder, device="cuda", freeze={"name": "layer4"}, **{"cache.enabled": False}),
                   out=tmp_path / "cuda")
    rows = without_timing(result.run_dir / "metrics.jsonl")
    assert len(rows) == 2 and all(np.isfinite(r["val"]["loss"]) for r in rows)


def test_an_augmented_head_run_trains_on_k_cached_views_read_by_repeat_and_epoch(folder, tmp_path, monkeypatch):
    from augbal.train import _cache, train

    seen = []
    real = _cache.CachedViews.__getitems__

    def spy(self, keys):
        if self.num_views > 1:
            seen.append(((np.asarray(keys.repeat) + keys.epoch) % self.num_views).tolist())
        return real(self, keys)

    monkeypatch.setattr(_cache.CachedViews, "__getitems__", spy)
    recipe = tiny_recipe(folder, augmentation={"name": "light"}, sampler={"name": "class_aware"},
                         epochs=2, **{"cache.views": 3, "cache.dir": str(tmp_path / "cache")})  # fmt: skip
    train(recipe, out=tmp_path / "run")
    views = {v for batch in seen for v in batch}
    assert views == {0, 1, 2}  # repeats of minority images and later epochs read other views
    assert len(list((tmp_path / "cache").rglob("view-*"))) == 3 + 1  # 3 training views, 1 validation view


def test_two_stage_trains_the_head_first_then_layer4_on_cached_layer3_activations(folder, tmp_path):
    from augbal.train import build_model, train

    recipe = tiny_recipe(folder, epochs=2, freeze={"name": "two_stage", "head_epochs": 1, "then": "layer4"},
                         **{"optim.lr": 1e-2, "cache.dir": str(tmp_path / "cache")})  # fmt: skip
    initial, _ = build_model(3, weights="none", input_size=32, mean=[0.5] * 3, std=[0.25] * 3, seed=0)
    with pytest.raises(Interrupted):
        train(recipe, out=tmp_path / "run", progress=stop_after(0))
    after_0 = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    assert torch.equal(after_0["layer4.1.conv2.weight"], initial.layer4[1].conv2.weight)  # epoch 0: head only
    assert not torch.equal(after_0["fc.weight"], initial.fc.weight)
    train(recipe, out=tmp_path / "run", resume=True)
    after_1 = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["model"]
    assert not torch.equal(after_1["layer4.1.conv2.weight"], initial.layer4[1].conv2.weight)  # then layer4
    assert torch.equal(after_1["layer3.1.conv2.weight"], initial.layer3[1].conv2.weight)  # never trained
    assert any(p.name.startswith("view-") for p in (tmp_path / "cache").rglob("*"))  # layer3 activations cached


def test_grad_clip_bounds_each_step(folder, tmp_path):
    from augbal.train import build_model, train

    initial, _ = build_model(3, weights="none", input_size=32, mean=[0.5] * 3, std=[0.25] * 3, seed=0)
    sgd = {"name": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0}

    def moved(**extra) -> float:
        name = "clip" if extra else "free"
        run = train(tiny_recipe(folder, epochs=1, optim=sgd, **extra, **{"cache.dir": str(tmp_path / "c")}),
                    out=tmp_path / name)  # fmt: skip
        w = torch.load(run.run_dir / "last.pt", weights_only=False)["model"]
        steps = -(-sum(json.loads((run.run_dir / "selection.json").read_text())["train_counts"]) // 16)
        delta = torch.cat([(w["fc.weight"] - initial.fc.weight).flatten(), (w["fc.bias"] - initial.fc.bias).flatten()])
        return float(delta.detach().norm()), steps

    clipped, steps = moved(grad_clip=1e-6)
    free, _ = moved()
    assert 0 < clipped <= steps * 1e-6 * (1 + 1e-4)  # lr 1 x a gradient norm clipped to 1e-6, per step
    assert free > 1000 * clipped


def test_a_run_without_validation_images_is_refused(folder, tmp_path, monkeypatch):
    from augbal.recipes import RecipeError
    from augbal.train import _data, train

    real = _data.resolve_data

    def empty_val(*args, **kwargs):  # e.g. an existing split whose val folder holds no image
        splits = real(*args, **kwargs)
        return type(splits)(**{**splits.__dict__, "val": splits.val.subset([])})

    monkeypatch.setattr(_data, "resolve_data", empty_val)
    with pytest.raises(RecipeError, match="recipe key data.val_fraction: must leave validation images"):
        train(tiny_recipe(folder), out=tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("spec", [{"name": "ema", "decay": 0.9}, {"name": "swa", "start_epoch": 0}])
def test_a_weight_average_survives_the_checkpoint_and_a_resume(folder, tmp_path, spec):
    """EMA's AveragedModel holds a local function: the checkpoint keeps the averager's state, not the object."""
    from augbal.train import train

    recipe = tiny_recipe(folder, epochs=2, averaging=spec, **{"cache.dir": str(tmp_path / "cache")})
    whole = train(recipe, out=tmp_path / "whole")
    with pytest.raises(Interrupted):
        train(recipe, out=tmp_path / "cut", progress=stop_after(0))
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["averager"]["weights"]  # state, not the object
    train(recipe, out=tmp_path / "cut", resume=True)
    a = torch.load(whole.run_dir / "selected.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "selected.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((whole.run_dir / "selection.json").read_text()) == json.loads(
        (tmp_path / "cut" / "selection.json").read_text())


def test_ema_averages_at_every_optimiser_step_and_swa_once_an_epoch(folder, tmp_path):
    """EMA's decay is per step (the strategy says so): it must see every step, not only epoch ends."""
    from augbal.train import train

    def averaged(spec, name):
        run = train(tiny_recipe(folder, epochs=3, averaging=spec, **{"cache.dir": str(tmp_path / "cache")}),
                    out=tmp_path / name)  # fmt: skip
        selection = json.loads((run.run_dir / "selection.json").read_text())
        steps = -(-sum(selection["train_counts"]) // 16)  # batch 16, the last batch kept
        state = torch.load(run.run_dir / "last.pt", weights_only=False)["averager"]
        return steps, int(state["weights"]["n_averaged"])

    steps, updates = averaged({"name": "ema", "decay": 0.9}, "ema")
    assert steps > 1 and updates == 3 * steps
    _, updates = averaged({"name": "swa", "start_epoch": 0}, "swa")
    assert updates == 3


def _lr_find_labels(recipe, out, monkeypatch) -> list[list[int]]:
    """The labels of every batch lr_find hands to find_lr (one pass over its loader)."""
    from augbal.train import _optim, lr_find

    seen: list[list[int]] = []
    real = _optim.find_lr

    def spy(net, batches, loss_fn, optimizer, **options):
        seen.extend(y.tolist() for _, y in batches)
        return real(net, batches, loss_fn, optimizer, **options)

    monkeypatch.setattr(_optim, "find_lr", spy)
    lr_find(recipe, out=out, start_lr=1e-5, end_lr=1e-1, num_iter=4)
    assert (out / "lr_find.png").stat().st_size > 0
    return seen


def test_lr_find_draws_the_batches_of_the_recipes_sampler(folder, tmp_path, monkeypatch):
    from augbal.recipes import load_recipe
    from augbal.sampling import SAMPLERS
    from augbal.train import resolve_data

    recipe = tiny_recipe(folder, sampler={"name": "class_aware"}, **{"cache.dir": str(tmp_path / "cache")})
    labels = np.asarray(resolve_data(load_recipe(recipe).data, seed=0).train.labels)
    batches = SAMPLERS.from_spec({"name": "class_aware"}, labels=labels, seed=0, yield_draws=True).batches(16)
    batches.set_epoch(0)
    expected = [labels[b.index].tolist() for b in batches]
    seen = _lr_find_labels(recipe, tmp_path / "lr", monkeypatch)
    assert seen == expected
    assert np.bincount(np.concatenate(seen), minlength=3).tolist() == [14, 13, 13]  # balanced, not 27/9/4 as train
    assert np.bincount(labels, minlength=3).tolist() == [27, 9, 4]


def test_lr_find_without_a_sampler_shuffles_as_the_first_epoch_of_train_does(folder, tmp_path, monkeypatch):
    recipe = tiny_recipe(folder, **{"cache.dir": str(tmp_path / "cache")})
    seen = _lr_find_labels(recipe, tmp_path / "lr", monkeypatch)
    assert [len(b) for b in seen] == [16, 16, 8]
    assert np.bincount(np.concatenate(seen), minlength=3).tolist() == [27, 9, 4]  # every train image once


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_the_json_files_of_a_run_are_strict_json_with_null_for_undefined_numbers(head_run, folder):
    from augbal.train import evaluate

    run = head_run.run_dir
    selection = _strict((run / "selection.json").read_text())
    assert selection["volatility"] is None  # two epochs: the volatility is not defined
    for line in (run / "metrics.jsonl").read_text().splitlines():
        _strict(line)
    _strict(Path(evaluate(run, folder, checkpoint="selected")["path"]).read_text())
    from augbal.train._json import dumps

    assert dumps({"a": [float("nan"), float("-inf"), 1.5]}) == '{"a": [null, null, 1.5]}'
