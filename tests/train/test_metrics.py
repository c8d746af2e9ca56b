"""evaluate_logits and expected_calibration_error: exact numbers on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augbal.train import evaluate_logits, expected_calibration_error

torch.set_num_threads(1)


def _ce(z: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in z)) - z[y]


LOGITS = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.2, 0.1, 0.0]]
LABELS = [0, 1, 1, 2, 2]
TRAIN = [4500, 450, 45]


def test_losses_match_hand_computed_values():
    m = evaluate_logits(LOGITS, LABELS, train_counts=TRAIN)
    ce = [_ce(z, y) for z, y in zip(LOGITS, LABELS)]
    assert m["loss"] == pytest.approx(sum(ce) / 5, abs=1e-12)
    w = [1 / 4500, 1 / 450, 1 / 45]
    num = sum(w[y] * l for y, l in zip(LABELS, ce))
    den = sum(w[y] for y in LABELS)
    assert m["loss_weighted"] == pytest.approx(num / den, abs=1e-12)
    per_class = [ce[0], (ce[1] + ce[2]) / 2, (ce[3] + ce[4]) / 2]
    assert m["per_class_loss"] == pytest.approx(per_class, abs=1e-12)
    assert m["loss_uniform_prior"] == pytest.approx(sum(per_class) / 3, abs=1e-12)


def test_weighted_loss_equals_torch_weighted_cross_entropy():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=g)
    counts = torch.tensor([4500.0, 450.0, 45.0], dtype=torch.float64)
    m = evaluate_logits(z, y, train_counts=[4500, 450, 45])
    assert m["loss_weighted"] == pytest.approx(F.cross_entropy(z, y, weight=1 / counts).item(), abs=1e-12)
    assert m["loss"] == pytest.approx(F.cross_entropy(z, y).item(), abs=1e-12)


def test_scores_and_confusion_exact():
    m = evaluate_logits(LOGITS, LABELS, train_counts=TRAIN, classes=["deer", "dog", "cat"])
    # predictions: 0, 1, 0, 2, 0
    assert m["confusion"] == [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx([1.0, 0.5, 0.5])
    assert m["precision"] == pytest.approx([1 / 3, 1.0, 1.0])
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    f1 = [2 * (1 / 3) / (4 / 3), 2 * 0.5 / 1.5, 2 * 0.5 / 1.5]
    assert m["f1"] == pytest.approx(f1)
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["geometric_mean"] == pytest.approx((1.0 * 0.5 * 0.5) ** (1 / 3))
    assert m["n"] == [1, 2, 2]
    assert m["classes"] == ["deer", "dog", "cat"]


def test_class_absent_from_validation_keeps_its_row():
    # class 2 never occurs in the labels, but is predicted once
    z = [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
    m = evaluate_logits(z, [0, 1, 1], train_counts=[10, 10, 10])
    assert m["confusion"] == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
    assert m["n"] == [1, 2, 0]
    assert m["recall"] == [1.0, 0.5, None]  # undefined without an image of the class, not 0
    assert m["f1"][2] is None and m["f1"][1] == pytest.approx(2 / 3)
    assert m["precision"] == [1.0, 1.0, 0.0]  # predicted once, wrongly: a real 0
    assert m["per_class_loss"][2] is None
    # averages over the classes present in validation
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["geometric_mean"] == pytest.approx(math.sqrt(0.5))
    ce_present = [_ce(z[0], 0), (_ce(z[1], 1) + _ce(z[2], 1)) / 2]
    assert m["loss_uniform_prior"] == pytest.approx(sum(ce_present) / 2, abs=1e-12)


def test_class_absent_from_training_weighs_zero():
    m = evaluate_logits([[1.0, 0.0], [0.0, 1.0]], [0, 1], train_counts=[10, 0])
    assert m["loss_weighted"] == pytest.approx(_ce([1.0, 0.0], 0), abs=1e-12)


def test_json_ready_and_plain_types():
    z = torch.randn(6, 3, dtype=torch.float32, requires_grad=True)
    m = evaluate_logits(z, torch.tensor([0, 1, 2, 0, 1, 2]), train_counts=np.array([3, 2, 1]))
    json.loads(json.dumps(m, allow_nan=False))
    floats = ("loss", "loss_weighted", "loss_uniform_prior", "accuracy", "balanced_accuracy", "macro_f1", "ece")
    for key in floats + ("geometric_mean",):
        assert type(m[key]) is float, key
    assert all(type(v) is int for row in m["confusion"] for v in row)


def test_bfloat16_logits_accepted():
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.bfloat16)
    m = evaluate_logits(z, [0, 1], train_counts=[1, 1])
    assert m["loss"] == pytest.approx((_ce([2.0, 0.0], 0) + _ce([0.0, 1.0], 1)) / 2, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logits": [1.0, 2.0]}, "logits must be a 2-d (N, C) array"),
        ({"logits": [[1.0, float("nan")]]}, "logits must be finite; got [1.0, nan] in row 0"),
        ({"labels": [0, 2]}, "labels must be class labels in [0, 2); got 2"),
        ({"labels": [0]}, "labels must be a 1-d array of 2 class labels"),
        ({"labels": [0.5, 1]}, "labels must be integer class labels"),
        ({"train_counts": [1, 2, 3]}, "train_counts must hold one training count per class (2)"),
        ({"train_counts": [1, -2]}, "counts must be non-negative integers"),
        ({"classes": ["a"]}, "classes must be 2 class names"),
    ],
)
def test_bad_input_names_the_argument(kwargs, message):
    args = {"logits": [[1.0, 0.0], [0.0, 1.0]], "labels": [0, 1], "train_counts": [5, 5]}
    args.update(kwargs)
    logits, labels = args.pop("logits"), args.pop("labels")
    with pytest.raises(ValueError) as info:
        evaluate_logits(logits, labels, **args)
    assert message in str(info.value)


def test_ece_hand_computed():
    # bins of width 0.25: (0, .25], (.25, .5], (.5, .75], (.75, 1]
    probs = [
        [0.9, 0.1],  # conf .9, correct      -> bin 3
        [0.8, 0.2],  # conf .8, wrong        -> bin 3
        [0.4, 0.6],  # conf .6, correct      -> bin 2
        [0.7, 0.3],  # conf .7, correct      -> bin 2
        [0.5, 0.5],  # conf .5 (edge: bin 1), prediction 0, wrong
    ]
    labels = [0, 1, 1, 0, 1]
    # bin 3: acc 1/2, conf .85 -> 2/5 * .35 ; bin 2: acc 1, conf .65 -> 2/5 * .35 ; bin 1: 1/5 * .5
    expected = 0.4 * 0.35 + 0.4 * 0.35 + 0.2 * 0.5
    assert expected_calibration_error(probs, labels, bins=4) == pytest.approx(expected, abs=1e-12)


def test_ece_perfectly_calibrated_is_zero_and_one_bin_is_gap_of_means():
    probs = [[0.5, 0.5]] * 4
    assert expected_calibration_error(probs, [0, 0, 1, 1], bins=10) == pytest.approx(0.0)
    probs = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]
    # one bin: |mean correct - mean confidence| = |2/3 - 0.8|
    assert expected_calibration_error(probs, [0, 0, 0], bins=1) == pytest.approx(abs(2 / 3 - 0.8))


def test_ece_in_evaluate_uses_softmax_probs():
    z = torch.tensor([[3.0, 0.0], [0.0, 0.5], [1.0, 1.2]], dtype=torch.float64)
    m = evaluate_logits(z, [0, 0, 1], train_counts=[2, 1])
    assert m["ece"] == pytest.approx(expected_calibration_error(torch.softmax(z, 1), [0, 0, 1]), abs=1e-15)


def test_ece_bad_input():
    with pytest.raises(ValueError, match=r"probs must be probabilities in \[0, 1\]"):
        expected_calibration_error([[1.5, -0.5]], [0])
    with pytest.raises(ValueError, match="bins must be an int >= 1; got 0"):
        expected_calibration_error([[0.5, 0.5]], [0], bins=0)


def test_an_undefined_recall_prints_na_and_is_never_chosen():
    from rich.console import Console

    from augbal.cli._train import _metrics_table
    from augbal.train._strategies import metric_value

    m = evaluate_logits([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], [0, 1], train_counts=[10, 10, 10], classes=["a", "b", "c"])
    console = Console(record=True, width=80)
    console.print(_metrics_table("val", m))
    text = console.export_text()
    assert "recall c" in text and "n/a" in text and "recall a" in text
    assert math.isnan(metric_value(m, "val.recall.2")) and metric_value(m, "val.recall.0") == 1.0
