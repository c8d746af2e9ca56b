"""write_run_report: the files, their content, and the errors for malformed input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augbal.train import evaluate_logits, noise_floor, volatility, worry_verdict, write_run_report

torch.set_num_threads(1)

CLASSES = ["deer", "dog", "cat"]
TRAIN = [4500, 450, 45]
VAL = (45, 9, 3)
PNGS = ["balanced_accuracy.png", "confusion.png", "losses.png", "lr.png"]


def _labels() -> np.ndarray:
    return np.repeat(np.arange(3), VAL)


def _logits(epoch: int) -> np.ndarray:
    rng = np.random.default_rng(epoch)
    y = _labels()
    z = rng.normal(size=(y.size, 3))
    z[np.arange(y.size), y] += 0.3 * epoch
    return z


def _history(epochs: int = 6) -> list[dict]:
    rows = []
    for e in range(epochs):
        rows.append(
            {
                "epoch": e,
                "lr": [1e-3 * 0.5**e, 1e-4 * 0.5**e],
                "train": {"loss": 1.0 / (e + 1), "loss_unweighted": 0.8 / (e + 1)},
                "val": evaluate_logits(_logits(e), _labels(), train_counts=TRAIN, classes=CLASSES),
                "time_s": 0.25,
            }
        )
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    history = _history()
    nf = noise_floor(_logits(4), _labels(), n_boot=200, classes=CLASSES)
    verdict = worry_verdict(volatility([r["val"]["loss"] for r in history]), nf)
    test = evaluate_logits(_logits(40), _labels(), train_counts=TRAIN, classes=CLASSES)
    y_pred = _logits(4).argmax(1)
    folder = tmp_path_factory.mktemp("run")
    paths = write_run_report(
        folder, history=history, classes=CLASSES, verdict=verdict, noise=nf, test=test,
        selection={"epoch": 4, "reason": "best balanced_accuracy (0.71) on validation", "candidate": "best"},
        recipe={"epochs": 6, "loss": {"name": "wce"}, "optim": {"name": "adam", "lr": 1e-3}},
        y_true=_labels(), y_pred=y_pred,
    )  # fmt: skip
    return folder, paths, history, verdict, nf, test


def test_files_exist_and_pngs_decode(run):
    folder, paths, *_ = run
    assert sorted(paths) == sorted(PNGS + ["classification_report.txt", "run.md"])
    for name, path in paths.items():
        assert path == folder / name and path.is_file()
    for name in PNGS:
        with Image.open(folder / name) as im:
            im.verify()
        with Image.open(folder / name) as im:
            assert im.format == "PNG" and im.size == (700, 450)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_run_md_holds_the_sentence_and_the_history_numbers(run):
    folder, _, history, verdict, nf, test = run
    text = (folder / "run.md").read_text()
    assert verdict.sentence in text
    assert "Epoch 4 (best): best balanced_accuracy (0.71) on validation" in text
    for row in history:
        v = row["val"]
        cells = [f"{v[k]:.4f}" for k in ("loss", "loss_weighted", "loss_uniform_prior", "balanced_accuracy", "macro_f1")]
        marker = " ←" if row["epoch"] == 4 else ""
        lr = ", ".join(f"{x:.3g}" for x in row["lr"])
        train = f"{row['train']['loss']:.4f} | {row['train']['loss_unweighted']:.4f}"
        assert f"| {row['epoch']}{marker} | {lr} | {train} | " + " | ".join(cells) + " |" in text
    sel = history[4]["val"]
    for c, name in enumerate(CLASSES):
        line = (
            f"| {name} | {VAL[c]} | {sel['recall'][c]:.4f} | {sel['precision'][c]:.4f} | {sel['f1'][c]:.4f} | "
            f"{sel['per_class_loss'][c]:.4f} |"
        )
        assert line in text
    assert f"balanced accuracy {sel['balanced_accuracy']:.4f}" in text
    assert "Validation: 57 images (deer 45, dog 9, cat 3)." in text
    assert f"bootstrap std {nf.std:.4f}" in text and "| cat | 3 |" in text
    assert "Evaluated once, after the selection; it played no part in choosing the checkpoint." in text
    assert f"balanced accuracy {test['balanced_accuracy']:.4f}" in text
    assert "```yaml\nepochs: 6\nloss:\n  name: wce\n" in text
    assert "- Recipe: loss wce, optimiser adam (lr 0.001)." in text
    assert "Training time: 1.5 s (0.25 s per epoch)." in text


def test_classification_report_is_imblearns(run):
    from imblearn.metrics import classification_report_imbalanced

    folder, *_ = run
    text = (folder / "classification_report.txt").read_text()
    expected = classification_report_imbalanced(
        _labels(), _logits(4).argmax(1), labels=[0, 1, 2], target_names=CLASSES, digits=3, zero_division=0
    )
    assert text == f"validation, selected checkpoint (epoch 4), 57 images\n\n{expected}"
    assert "geo" in text and "iba" in text and "cat" in text


def test_byte_identical_when_rewritten_and_band_drawn(run, tmp_path):
    folder, _, history, verdict, nf, test = run
    kwargs = dict(
        history=history, classes=CLASSES, verdict=verdict, noise=nf, test=test,
        selection={"epoch": 4, "reason": "best balanced_accuracy (0.71) on validation", "candidate": "best"},
        recipe={"epochs": 6, "loss": {"name": "wce"}, "optim": {"name": "adam", "lr": 1e-3}},
        y_true=_labels(), y_pred=_logits(4).argmax(1),
    )  # fmt: skip
    write_run_report(tmp_path / "again", **kwargs)
    for name in PNGS + ["run.md", "classification_report.txt"]:
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes(), name
    kwargs["noise"] = None
    write_run_report(tmp_path / "noband", **kwargs)
    assert (tmp_path / "noband" / "losses.png").read_bytes() != (folder / "losses.png").read_bytes()
    assert (tmp_path / "noband" / "lr.png").read_bytes() == (folder / "lr.png").read_bytes()
    assert "bootstrap std" not in (tmp_path / "noband" / "run.md").read_text()


def test_minimal_report_without_test_or_predictions(tmp_path):
    history = _history(2)
    paths = write_run_report(
        tmp_path, history=history, classes=CLASSES, verdict="It is fine.", selection={"epoch": 1, "reason": "last"}
    )
    assert sorted(paths) == sorted(PNGS + ["run.md"])
    text = (tmp_path / "run.md").read_text()
    assert "## Test" not in text and "It is fine." in text
    assert not (tmp_path / "classification_report.txt").exists()


def test_selection_with_its_own_metrics_and_a_selector_object(tmp_path):
    history = _history(3)
    averaged = evaluate_logits(_logits(9), _labels(), train_counts=TRAIN, classes=CLASSES)
    write_run_report(
        tmp_path / "swa", history=history, classes=CLASSES, verdict="ok",
        selection={"epoch": 2, "reason": "SWA of the last 2 epochs", "candidate": "swa", "val": averaged},
    )  # fmt: skip
    text = (tmp_path / "swa" / "run.md").read_text()
    assert f"balanced accuracy {averaged['balanced_accuracy']:.4f}" in text
    assert f"| deer | 45 | {averaged['recall'][0]:.4f} |" in text

    class Smoothed:
        selected_epoch = 1

        def reason(self) -> str:
            return "best 3-epoch mean of val balanced_accuracy"

        def to_dict(self) -> dict:
            return {"name": "smoothed", "metric": "balanced_accuracy", "window": 3}

    write_run_report(tmp_path / "sel", history=history, classes=CLASSES, verdict="ok", selection=Smoothed())
    assert "Epoch 1 (smoothed): best 3-epoch mean of val balanced_accuracy" in (tmp_path / "sel" / "run.md").read_text()


def test_nan_loss_epoch_is_shown_as_a_dash(tmp_path):
    history = _history(3)
    history[1]["val"] = dict(history[1]["val"], loss=math.nan)
    write_run_report(tmp_path, history=history, classes=CLASSES, verdict="ok", selection={"epoch": 0, "reason": "r"})
    line = next(l for l in (tmp_path / "run.md").read_text().splitlines() if l.startswith("| 1 |"))
    assert line.split(" | ")[4] == "—"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"history": []}, "history must be a non-empty list of metrics.jsonl rows"),
        ({"history": [{"epoch": 0}]}, "history row 0 must have the key 'val'"),
        ({"selection": {"epoch": 7, "reason": "r"}}, "selection epoch 7 is not in the history (epochs 0..1)"),
        ({"selection": {"epoch": "1", "reason": "r"}}, "selection must name an int 'epoch' and a str 'reason'"),
        ({"selection": 3}, "selection must be a dict with 'epoch' and 'reason' or a selector"),
        ({"classes": ["deer", "dog"]}, "classes must name the 3 classes of the selection metrics"),
        ({"verdict": 0.5}, "verdict must be a Verdict, its sentence or its to_dict()"),
        ({"noise": 0.1}, "noise must be a NoiseFloor, its to_dict() or None"),
        ({"test": {"loss": 1.0}}, "test must be an evaluate_logits dict (with 'confusion') or None"),
        ({"y_true": [0, 1]}, "y_true and y_pred must be given together"),
        ({"y_true": [0, 1], "y_pred": [0, 5]}, "y_true and y_pred: labels must be class labels in [0, 3); got 5"),
        ({"recipe": 5}, "recipe must be a Recipe, a dict or None"),
    ],
)
def test_bad_input(tmp_path, change, message):
    kwargs = dict(history=_history(2), classes=CLASSES, verdict="ok", selection={"epoch": 1, "reason": "last"})
    kwargs.update(change)
    with pytest.raises(ValueError) as info:
        write_run_report(tmp_path, **kwargs)
    assert message in str(info.value)
    assert not (Path(tmp_path) / "run.md").exists()


def test_recipe_summary_and_late_ratio_line(tmp_path):
    history = _history(8)
    curve = [r["val"]["loss"] for r in history]
    verdict = worry_verdict(volatility(curve), 0.05, values=curve)
    recipe = {
        "model": {"weights": "imagenet", "input_size": 224},
        "loss": {"name": "wce", "weighting": "balanced", "label_smoothing": 0.0},
        "sampler": None,
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "epochs": 8,
        "seed": 3,
    }
    write_run_report(
        tmp_path, history=history, classes=CLASSES, verdict=verdict, selection={"epoch": 7, "reason": "last"},
        recipe=recipe,
    )  # fmt: skip
    text = (tmp_path / "run.md").read_text()
    assert (
        "- Recipe: weights imagenet, loss wce (weighting balanced, label_smoothing 0), "
        "optimiser sgd (lr 0.01, momentum 0.9), seed 3." in text
    )
    assert f"; over the last 4 epochs ratio {verdict.late_ratio:.2f}." in text
    assert verdict.sentence in text
