"""volatility, noise_floor and worry_verdict: exact numbers, the variance decomposition,
and the floor's meaning (it is the volatility of a loss that is only sampling noise)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augbal.train import NoiseFloor, Verdict, noise_floor, volatility, worry_verdict

torch.set_num_threads(1)

VAL = (450, 90, 18)  # deer, dog, cat: the seedlike-3 validation counts
TRAIN = (4500, 450, 45)
CLASSES = ["deer", "dog", "cat"]


def _val_logits(seed: int = 0, counts=VAL) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(counts)), counts)
    logits = rng.normal(0.0, 1.5, size=(labels.size, len(counts)))
    logits[np.arange(labels.size), labels] += 1.0
    return logits, labels


def _losses(logits, labels) -> np.ndarray:
    return F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), reduction="none").numpy()


# --------------------------------------------------------------------------- volatility


def test_volatility_is_sample_std_of_differences():
    assert volatility([1.0, 2.0, 4.0, 7.0]) == pytest.approx(1.0)  # diffs 1, 2, 3: std ddof=1
    values = [0.9, 0.7, 0.8, 0.5, 0.65, 0.6]
    assert volatility(values) == pytest.approx(float(np.std(np.diff(values), ddof=1)), abs=1e-15)
    assert volatility(np.array(values)) == volatility(torch.tensor(values, dtype=torch.float64))
    # a steady trend is not volatile
    assert volatility([1.0, 0.9, 0.8, 0.7]) == pytest.approx(0.0, abs=1e-12)


def test_volatility_too_short_or_diverged_is_nan():
    assert math.isnan(volatility([]))
    assert math.isnan(volatility([0.5, 0.4]))
    assert math.isnan(volatility([0.5, float("nan"), 0.4, 0.3]))
    assert math.isnan(volatility([0.5, None, 0.4, 0.3]))


@pytest.mark.parametrize("bad", ["0.5", [[0.1, 0.2, 0.3]], [0.1, "x", 0.3], {"a": 1}, 3.0])
def test_volatility_bad_input(bad):
    with pytest.raises(ValueError, match="values must be a 1-d sequence of numbers"):
        volatility(bad)


# --------------------------------------------------------------------------- noise floor


def test_floor_is_sqrt2_std_deterministic_and_seeded():
    logits, labels = _val_logits()
    a = noise_floor(logits, labels, n_boot=300, seed=3, classes=CLASSES)
    b = noise_floor(torch.from_numpy(logits), torch.from_numpy(labels), n_boot=300, seed=3, classes=CLASSES)
    c = noise_floor(logits, labels, n_boot=300, seed=4, classes=CLASSES)
    assert a == b
    assert a.std != c.std
    assert a.floor == math.sqrt(2) * a.std
    assert a.loss == pytest.approx(float(_losses(logits, labels).mean()), abs=1e-12)
    assert a.n == VAL and a.classes == tuple(CLASSES) and a.total == 558


def test_analytic_decomposition_hand_computed_and_matches_bootstrap():
    logits, labels = _val_logits(1)
    l = _losses(logits, labels)
    w = 1.0 / np.array(TRAIN)
    nf = noise_floor(logits, labels, n_boot=4000, seed=0, weights=w, classes=CLASSES)
    n = np.array(VAL)
    a = n * w / (n * w).sum()
    terms = np.array([a[c] ** 2 * l[labels == c].var() / n[c] for c in range(3)])
    assert nf.analytic_std == pytest.approx(math.sqrt(terms.sum()), rel=1e-12)
    assert [nf.per_class_share[c] for c in CLASSES] == pytest.approx((terms / terms.sum()).tolist(), rel=1e-12)
    assert sum(nf.per_class_share.values()) == pytest.approx(1.0)
    # the loss is torch's weighted CE; the stratified bootstrap's std is the analytic one
    weighted = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), weight=torch.from_numpy(w))
    assert nf.loss == pytest.approx(weighted.item(), abs=1e-12)
    assert nf.std == pytest.approx(nf.analytic_std, rel=0.05)


def test_cat_dominates_the_weighted_loss_noise_not_the_unweighted():
    # equal per-sample spread in every class: only counts and weights differ
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), VAL)
    target_loss = rng.exponential(0.5, size=labels.size)
    logits = np.zeros((labels.size, 3))
    # CE = log(1 + 2 exp(-m)) for margin m on the true class: pick m to hit the target loss
    logits[np.arange(labels.size), labels] = -np.log((np.expm1(target_loss)) / 2)
    assert _losses(logits, labels) == pytest.approx(target_loss, abs=1e-9)
    weighted = noise_floor(logits, labels, n_boot=200, weights=1 / np.array(TRAIN), classes=CLASSES)
    unweighted = noise_floor(logits, labels, n_boot=200, classes=CLASSES)
    var = [target_loss[labels == c].var() for c in range(3)]
    # a = 1/7, 2/7, 4/7 for the weighted loss; n_c / 558 for the unweighted one
    wt = np.array([(1 / 7) ** 2 * var[0] / 450, (2 / 7) ** 2 * var[1] / 90, (4 / 7) ** 2 * var[2] / 18])
    ut = np.array([n * v / 558**2 for n, v in zip(VAL, var)])
    assert weighted.per_class_share["cat"] == pytest.approx(wt[2] / wt.sum(), rel=1e-9)
    assert unweighted.per_class_share["cat"] == pytest.approx(ut[2] / ut.sum(), rel=1e-9)
    assert weighted.per_class_share["cat"] > 0.85
    assert unweighted.per_class_share["cat"] < 0.1
    assert weighted.dominant() == ("cat", weighted.per_class_share["cat"], 18)
    assert unweighted.dominant()[0] == "deer"
    assert weighted.floor > 2 * unweighted.floor


def test_floor_equals_volatility_of_a_loss_that_is_only_sampling_noise():
    """Evaluate one fixed model on a fresh validation draw each 'epoch': the volatility of
    that curve is pure sampling noise, and the floor (from one validation set) predicts it."""
    rng = np.random.default_rng(11)
    pool_logits, pool_labels = _val_logits(2, counts=(6000, 3000, 1000))
    pool = [np.flatnonzero(pool_labels == c) for c in range(3)]
    curve = []
    for _ in range(400):
        idx = np.concatenate([rng.choice(pool[c], VAL[c], replace=False) for c in range(3)])
        curve.append(float(_losses(pool_logits[idx], pool_labels[idx]).mean()))
    floors = []
    for s in range(5):
        idx = np.concatenate([np.random.default_rng(100 + s).choice(pool[c], VAL[c], replace=False) for c in range(3)])
        floors.append(noise_floor(pool_logits[idx], pool_labels[idx], n_boot=500, seed=s).floor)
    assert volatility(curve) == pytest.approx(np.mean(floors), rel=0.15)


def test_unstratified_bootstrap_includes_class_count_noise():
    logits, labels = _val_logits(3)
    l = _losses(logits, labels)
    nf = noise_floor(logits, labels, n_boot=3000, stratified=False)
    assert nf.std == pytest.approx(math.sqrt(l.var() / l.size), rel=0.07)
    assert nf.stratified is False


def test_zero_weight_class_has_no_share_and_absent_class_is_listed():
    logits, labels = _val_logits(4, counts=(30, 20, 0))
    nf = noise_floor(logits, labels, n_boot=50, weights=[1.0, 0.0, 1.0], classes=CLASSES)
    assert nf.per_class_share == {"deer": 1.0, "dog": 0.0, "cat": 0.0}
    assert nf.n == (30, 20, 0)
    assert nf.loss == pytest.approx(float(_losses(logits, labels)[:30].mean()), abs=1e-12)


def test_round_trip_and_json():
    logits, labels = _val_logits()
    nf = noise_floor(logits, labels, n_boot=50, classes=CLASSES)
    data = json.loads(json.dumps(nf.to_dict()))
    assert NoiseFloor.from_dict(data) == nf
    with pytest.raises(ValueError, match="a noise floor is the dict NoiseFloor.to_dict"):
        NoiseFloor.from_dict({"std": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_boot": 1}, "n_boot must be an int >= 2; got 1"),
        ({"seed": -1}, "seed must be an int >= 0; got -1"),
        ({"weights": [1.0, 2.0]}, "weights must be 3 finite non-negative per-class weights, or None"),
        ({"weights": [1.0, -1.0, 1.0]}, "weights must be 3 finite non-negative"),
        ({"weights": [0.0, 0.0, 0.0]}, "weights must give some validation sample a weight > 0"),
        ({"stratified": 1}, "stratified must be True or False; got 1"),
    ],
)
def test_noise_floor_bad_input(kwargs, message):
    logits, labels = _val_logits(counts=(5, 4, 3))
    with pytest.raises(ValueError) as info:
        noise_floor(logits, labels, **kwargs)
    assert message in str(info.value)


# --------------------------------------------------------------------------- verdict


def _floor(floor: float = 0.08, cat_share: float = 0.62) -> NoiseFloor:
    rest = 1 - cat_share
    return NoiseFloor(
        loss=0.5, std=floor / math.sqrt(2), floor=floor, analytic_std=floor / math.sqrt(2),
        per_class_share={"deer": rest * 0.7, "dog": rest * 0.3, "cat": cat_share},
        n=VAL, classes=tuple(CLASSES), n_boot=1000, seed=0, stratified=True, weighted=False,
    )  # fmt: skip


def test_worry_sentence_with_numbers():
    v = worry_verdict(0.14, _floor())
    assert isinstance(v, Verdict)
    assert v.exceeds is True
    assert v.ratio == pytest.approx(1.75)
    assert v.sentence == (
        "Validation loss fluctuates 1.8x more than its sampling noise (volatility 0.14 vs noise floor 0.08, "
        "from 558 validation images, 62% of it from class cat with 18 images): worry — it is the training, "
        "not the finite validation set."
    )


def test_no_worry_sentences():
    v = worry_verdict(0.072, _floor())
    assert v.exceeds is False
    assert v.sentence == (
        "Validation loss fluctuates within its sampling noise (volatility 0.072 vs noise floor 0.08, ratio 0.9x, "
        "from 558 validation images, 62% of it from class cat with 18 images): no need to worry; pick the "
        "checkpoint on a smoothed metric."
    )
    v = worry_verdict(0.1, 0.08)
    assert v.exceeds is False
    assert v.sentence.startswith("Validation loss fluctuates 1.2x its sampling noise, inside the 1.5x margin")
    assert v.sentence.endswith("(volatility 0.1 vs noise floor 0.08): no need to worry; pick the checkpoint on a smoothed metric.")


def test_threshold_is_strict_and_configurable():
    assert worry_verdict(3.0, 2.0).exceeds is False  # ratio exactly 1.5
    assert worry_verdict(3.01, 2.0).exceeds is True
    assert worry_verdict(0.11, 0.1, threshold=1.05).exceeds is True


def test_levers_say_what_moved_it():
    v = worry_verdict(0.14, _floor(), levers={"unfreezing layer4": 0.2, "halving the LR on plateau": 0.06})
    assert v.sentence.endswith(
        "worry — it is the training, not the finite validation set; of the levers tried, halving the LR on "
        "plateau cut it 2.3x (to 0.06), unfreezing layer4 raised it 1.4x (to 0.2)."
    )
    v = worry_verdict(0.07, 0.08, levers={"label smoothing": 0.071})
    assert v.sentence.endswith("of the levers tried, label smoothing left it unchanged (0.071).")
    assert worry_verdict(0.07, 0.08, levers={"x": 0.0}).sentence.endswith("of the levers tried, x cut it to 0.")


def test_too_few_epochs():
    v = worry_verdict(volatility([0.5, 0.4]), _floor())
    assert math.isnan(v.ratio) and v.exceeds is False
    assert v.sentence == (
        "Cannot tell yet whether validation loss fluctuates more than its sampling noise: its volatility needs "
        "at least 3 epochs (noise floor 0.08, from 558 validation images, 62% of it from class cat with 18 images)."
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((-0.1, 0.08), {}, "volatility must be a number >= 0 or nan"),
        (("0.1", 0.08), {}, "volatility must be a number >= 0 or nan"),
        ((0.1, -0.08), {}, "floor must be a number >= 0; got -0.08"),
        ((0.1, 0.08), {"threshold": 0}, "threshold must be a number > 0; got 0"),
        ((0.1, 0.08), {"levers": {"x": "fast"}}, "levers must map a lever (a string) to its run's volatility"),
        ((0.1, 0.08), {"levers": {"x": -0.1}}, "levers must map a lever (a string) to its run's volatility (a number >= 0)"),
        ((0.1, 0.08), {"levers": {"x": float("nan")}}, "levers must map a lever"),
    ],
)
def test_verdict_bad_input(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        worry_verdict(*args, **kwargs)
    assert message in str(info.value)


def test_verdict_context_from_n_and_class_names():
    v = worry_verdict(0.14, 0.08, n=558)
    assert "(volatility 0.14 vs noise floor 0.08, from 558 validation images): worry" in v.sentence
    logits, labels = _val_logits()
    nf = noise_floor(logits, labels, n_boot=50, weights=1 / np.array(TRAIN))  # classes "0", "1", "2"
    v = worry_verdict(0.5, nf, n=558, classes=CLASSES)
    share = round(100 * nf.per_class_share["2"])
    assert f"from 558 validation images, {share}% of it from class cat with 18 images" in v.sentence
    with pytest.raises(ValueError, match=r"n must equal the noise floor's number of validation samples \(558\); got 20"):
        worry_verdict(0.5, nf, n=20)
    with pytest.raises(ValueError, match="classes must be 3 class names"):
        worry_verdict(0.5, nf, classes=["a"])


def test_weights_give_the_same_loss_variants_as_evaluate_logits():
    from augbal.train import evaluate_logits

    logits, labels = _val_logits(6)
    m = evaluate_logits(logits, labels, train_counts=TRAIN)
    assert noise_floor(logits, labels, n_boot=10).loss == pytest.approx(m["loss"], abs=1e-12)
    weighted = noise_floor(logits, labels, n_boot=10, weights=1 / np.array(TRAIN))
    assert weighted.loss == pytest.approx(m["loss_weighted"], abs=1e-12)
    uniform = noise_floor(logits, labels, n_boot=10, weights=1 / np.array(VAL))
    assert uniform.loss == pytest.approx(m["loss_uniform_prior"], abs=1e-12)


def test_an_early_descent_is_not_instability():
    # a converging run: big early drops, then changes within the noise
    curve = [1.2, 0.8, 0.6, 0.52, 0.5, 0.51, 0.49, 0.5, 0.495, 0.505]
    vol = volatility(curve)
    v = worry_verdict(vol, 0.02, values=curve)
    late = volatility(curve[-5:])
    assert v.exceeds is True and v.late_epochs == 5
    assert v.late_ratio == pytest.approx(late / 0.02)
    assert v.sentence == (
        f"Validation loss fluctuates {vol / 0.02:.1f}x more than its sampling noise (volatility {vol:.2g} vs noise "
        f"floor 0.02), but only {late / 0.02:.1f}x over the last 5 epochs (volatility {late:.2g}): the excess is the "
        "early descent, not instability; no need to worry; pick the checkpoint on a smoothed metric."
    )
    # jumping to the end: still worry, and the late ratio says so
    jumpy = [1.2, 0.8, 0.6, 0.7, 0.5, 0.65, 0.45, 0.7, 0.5, 0.68]
    v = worry_verdict(volatility(jumpy), 0.02, values=jumpy)
    assert v.sentence.endswith(
        f"worry — it is the training, not the finite validation set (still {volatility(jumpy[-5:]) / 0.02:.1f}x over "
        "the last 5 epochs)."
    )
    # too short a curve for a late window: the whole-run sentence, no late numbers
    v = worry_verdict(volatility(curve[:4]), 0.02, values=curve[:4])
    assert v.late_epochs == 0 and math.isnan(v.late_ratio) and "last" not in v.sentence
    with pytest.raises(ValueError, match="values must be a 1-d sequence of numbers"):
        worry_verdict(0.1, 0.02, values="abc")
