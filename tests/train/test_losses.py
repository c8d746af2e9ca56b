"""The loss family against its papers' formulas, on fixed small numbers computed here with
numpy (never by calling the code under test), and the losses' validation and conventions."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from augbal.train import LOSSES, Loss
from augbal.train._losses import BalancedSoftmax, ClassBalanced, FocalLoss, LDAMLoss, LogitAdjusted

torch.set_num_threads(1)

# 2 samples x 3 classes, counts [100, 10, 1]; the labels are the majority and the rarest class
Z = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
Y = np.array([0, 2])
COUNTS = np.array([100, 10, 1])
# a mixed (mixup-like) row and a one-hot row
T = np.array([[0.7, 0.0, 0.3], [0.0, 0.0, 1.0]])


def logits(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(Z, dtype=dtype)


def labels() -> torch.Tensor:
    return torch.tensor(Y)


def soft() -> torch.Tensor:
    return torch.tensor(T)


def log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def nll(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -log_softmax(z)[np.arange(len(y)), y]


def mean_one(w: np.ndarray) -> np.ndarray:
    return w * len(w) / w.sum()


def value(loss: Loss, targets: torch.Tensor, *, epoch: int = 0, z: torch.Tensor | None = None) -> float:
    return float(loss(logits() if z is None else z, targets, epoch=epoch))


# --------------------------------------------------------------------------- cross entropy


def test_ce_is_the_mean_negative_log_softmax() -> None:
    loss = LOSSES.from_spec("ce").fit(COUNTS)
    expected = nll(Z, Y).mean()
    assert math.isclose(value(loss, labels()), expected, rel_tol=1e-12)
    assert math.isclose(expected, 0.5 * (0.241308 + 0.169846), rel_tol=1e-5)  # -log p_y by hand


def test_wce_weights_by_inverse_frequency_and_normalises_by_the_sum_of_weights() -> None:
    loss = LOSSES.from_spec("wce").fit(COUNTS)
    w = mean_one(1.0 / COUNTS)  # [0.027027, 0.27027, 2.7027]
    np.testing.assert_allclose(loss.class_weights(), w, rtol=1e-12)
    expected = (w[Y] * nll(Z, Y)).sum() / w[Y].sum()
    assert math.isclose(value(loss, labels()), expected, rel_tol=1e-12)
    # torch's convention: cross_entropy(weight=w) divides by the sum of the targets' weights
    torch_value = F.cross_entropy(logits(), labels(), weight=torch.tensor(w))
    assert math.isclose(value(loss, labels()), float(torch_value), rel_tol=1e-12)


def test_soft_targets_weigh_the_target_weighted_mean_of_class_weights() -> None:
    loss = LOSSES.from_spec("wce").fit(COUNTS)
    w = mean_one(1.0 / COUNTS)
    per_sample = -(T * log_softmax(Z)).sum(axis=1)
    wi = T @ w  # 0.7 w_0 + 0.3 w_2, then w_2
    assert math.isclose(value(loss, soft()), (wi * per_sample).sum() / wi.sum(), rel_tol=1e-12)


def test_label_smoothing_matches_torch_without_weights_and_weights_the_whole_sample_with_them() -> None:
    eps = 0.1
    plain = LOSSES.from_spec("ce", label_smoothing=eps).fit(COUNTS)
    torch_value = F.cross_entropy(logits(), labels(), label_smoothing=eps)
    assert math.isclose(value(plain, labels()), float(torch_value), rel_tol=1e-12)

    weighted = LOSSES.from_spec("wce", label_smoothing=eps).fit(COUNTS)
    w = mean_one(1.0 / COUNTS)
    smoothed = np.eye(3)[Y] * (1 - eps) + eps / 3
    per_sample = -(smoothed * log_softmax(Z)).sum(axis=1)
    ours = (w[Y] * per_sample).sum() / w[Y].sum()  # the weight of the label, not of the smoothed row
    assert math.isclose(value(weighted, labels()), ours, rel_tol=1e-12)
    torch_weighted = F.cross_entropy(logits(), labels(), weight=torch.tensor(w), label_smoothing=eps)
    assert not math.isclose(ours, float(torch_weighted), rel_tol=1e-3)  # the documented difference


# --------------------------------------------------------------------------- focal (Lin et al. 2017)


def test_focal_matches_lin_et_al_on_hard_labels() -> None:
    gamma = 2.0
    p = np.exp(log_softmax(Z))[np.arange(2), Y]  # [0.78559, 0.84379]
    expected = np.mean(-((1 - p) ** gamma) * np.log(p))
    assert math.isclose(value(FocalLoss(gamma=gamma).fit(COUNTS), labels()), expected, rel_tol=1e-12)
    assert math.isclose(expected, 0.5 * (0.214403**2 * 0.241308 + 0.156207**2 * 0.169846), rel_tol=1e-5)


def test_focal_with_alpha_from_the_weighting() -> None:
    gamma, w = 0.5, mean_one(COUNTS ** -0.5)
    p = np.exp(log_softmax(Z))[np.arange(2), Y]
    per_sample = -((1 - p) ** gamma) * np.log(p)
    loss = FocalLoss(gamma=gamma, weighting="sqrt").fit(COUNTS)
    assert math.isclose(value(loss, labels()), (w[Y] * per_sample).sum() / w[Y].sum(), rel_tol=1e-12)


def test_focal_on_soft_targets_sums_over_classes() -> None:
    gamma = 2.0
    p = np.exp(log_softmax(Z))
    expected = np.mean(-(T * (1 - p) ** gamma * np.log(p)).sum(axis=1))
    assert math.isclose(value(FocalLoss(gamma=gamma).fit(COUNTS), soft()), expected, rel_tol=1e-12)


def test_focal_gradient_is_finite_where_p_is_one_for_gamma_below_one() -> None:
    z = torch.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    out = FocalLoss(gamma=0.5).fit([1, 1, 1])(z, torch.tensor([0]))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(z.grad).all()


# --------------------------------------------------------------------------- class-balanced (Cui et al. 2019)


def effective_number_weights(beta: float) -> np.ndarray:
    return mean_one((1 - beta) / (1 - beta ** COUNTS.astype(float)))


def test_class_balanced_softmax_uses_the_inverse_effective_number() -> None:
    beta = 0.999
    w = effective_number_weights(beta)
    loss = ClassBalanced(beta=beta).fit(COUNTS)
    np.testing.assert_allclose(loss.class_weights(), w, rtol=1e-12)
    np.testing.assert_allclose(w, [0.028363, 0.271256, 2.700381], rtol=1e-5)
    expected = (w[Y] * nll(Z, Y)).sum() / w[Y].sum()
    assert math.isclose(value(loss, labels()), expected, rel_tol=1e-12)


def test_class_balanced_focal_base() -> None:
    beta, gamma = 0.99, 1.0
    w = effective_number_weights(beta)
    p = np.exp(log_softmax(Z))[np.arange(2), Y]
    per_sample = -((1 - p) ** gamma) * np.log(p)
    loss = ClassBalanced(beta=beta, base="focal", gamma=gamma).fit(COUNTS)
    assert math.isclose(value(loss, labels()), (w[Y] * per_sample).sum() / w[Y].sum(), rel_tol=1e-12)


def test_class_balanced_sigmoid_base_matches_the_papers_modulator() -> None:
    # Cui et al.'s code: BCE(z, y) * exp(-γ y z - γ log(1 + e^{-z})), weighted by the label's class weight
    beta, gamma = 0.9999, 2.0
    w = effective_number_weights(beta)
    onehot = np.eye(3)[Y]
    bce = np.maximum(Z, 0) - Z * onehot + np.log1p(np.exp(-np.abs(Z)))
    modulator = np.exp(-gamma * onehot * Z - gamma * np.log1p(np.exp(-Z)))
    per_sample = (modulator * bce).sum(axis=1)
    loss = ClassBalanced(beta=beta, base="sigmoid", gamma=gamma).fit(COUNTS)
    assert math.isclose(value(loss, labels()), (w[Y] * per_sample).sum() / w[Y].sum(), rel_tol=1e-10)


def test_class_balanced_sigmoid_with_gamma_zero_is_weighted_binary_cross_entropy() -> None:
    loss = ClassBalanced(beta=0.0, base="sigmoid", gamma=0.0).fit(COUNTS)
    expected = F.binary_cross_entropy_with_logits(logits(), soft(), reduction="none").sum(1).mean()
    assert math.isclose(value(loss, soft()), float(expected), rel_tol=1e-12)


def test_class_balanced_refuses_another_weighting() -> None:
    with pytest.raises(ValueError, match=r"class_balanced weighting must be None .*; got 'balanced'"):
        ClassBalanced(weighting="balanced")


# --------------------------------------------------------------------------- LDAM (Cao et al. 2019)


def ldam_margins(max_margin: float) -> np.ndarray:
    m = 1.0 / np.sqrt(np.sqrt(COUNTS.astype(float)))  # n^(-1/4): [0.31623, 0.56234, 1]
    return m * max_margin / m.max()


def test_ldam_subtracts_the_label_margin_then_scales() -> None:
    m = ldam_margins(0.5)
    loss = LDAMLoss(max_margin=0.5, s=30.0).fit(COUNTS)
    np.testing.assert_allclose(loss.margins_, m, rtol=1e-12)
    np.testing.assert_allclose(loss.margins_, [0.158114, 0.281171, 0.5], rtol=1e-5)
    shifted = Z.copy()
    shifted[np.arange(2), Y] -= m[Y]
    assert math.isclose(value(loss, labels()), nll(30.0 * shifted, Y).mean(), rel_tol=1e-12)


def test_ldam_soft_targets_subtract_the_target_weighted_margins() -> None:
    m = ldam_margins(0.5)
    shifted = 1.0 * (Z - T * m)
    expected = np.mean(-(T * log_softmax(shifted)).sum(axis=1))
    assert math.isclose(value(LDAMLoss(s=1.0).fit(COUNTS), soft()), expected, rel_tol=1e-12)


def test_ldam_drw_switches_to_effective_number_weights_at_epoch_160() -> None:
    drw = {"name": "deferred", "switch_epoch": 160, "before": "instance", "after": {"name": "effective_number", "beta": 0.9999}}
    loss = LDAMLoss(weighting=drw).fit(COUNTS)
    # the reference code: betas = [0, 0.9999][epoch // 160]; w = (1-β)/(1-β^n), normalised to sum C
    after = (1 - 0.9999) / (1 - 0.9999 ** COUNTS.astype(float))
    after = after / after.sum() * 3
    np.testing.assert_allclose(loss.class_weights(epoch=159), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(loss.class_weights(epoch=160), after, rtol=1e-12)
    m = ldam_margins(0.5)
    shifted = Z.copy()
    shifted[np.arange(2), Y] -= m[Y]
    per_sample = nll(30.0 * shifted, Y)
    assert math.isclose(value(loss, labels(), epoch=159), per_sample.mean(), rel_tol=1e-12)
    expected = (after[Y] * per_sample).sum() / after[Y].sum()
    assert math.isclose(value(loss, labels(), epoch=160), expected, rel_tol=1e-12)


# --------------------------------------------------------------------------- logit adjustment (Menon et al. 2021)


@pytest.mark.parametrize("tau", [1.0, 0.5, 2.0])
def test_logit_adjusted_adds_tau_log_prior(tau: float) -> None:
    prior = COUNTS / COUNTS.sum()  # [0.9009, 0.0901, 0.0090]
    expected = nll(Z + tau * np.log(prior), Y).mean()
    assert math.isclose(value(LogitAdjusted(tau=tau).fit(COUNTS), labels()), expected, rel_tol=1e-12)


def test_logit_adjusted_pushes_the_rare_label_harder() -> None:
    loss = LogitAdjusted().fit(COUNTS)
    rare = common = torch.zeros(1, 3, dtype=torch.float64)
    assert value(loss, torch.tensor([2]), z=rare) > value(loss, torch.tensor([0]), z=common)
    # zero logits: -log π_2 for the rarest class, -log π_0 for the majority
    assert math.isclose(value(loss, torch.tensor([2]), z=rare), -math.log(1 / 111), rel_tol=1e-12)


# --------------------------------------------------------------------------- balanced softmax (Ren et al. 2020)


def test_balanced_softmax_adds_log_counts_and_equals_logit_adjusted_tau_one() -> None:
    expected = nll(Z + np.log(COUNTS), Y).mean()
    loss = BalancedSoftmax().fit(COUNTS)
    assert math.isclose(value(loss, labels()), expected, rel_tol=1e-12)
    assert math.isclose(value(loss, soft()), value(LogitAdjusted(tau=1.0).fit(COUNTS), soft()), rel_tol=1e-12)
    # the balanced softmax probability n_c e^{z_c} / Σ n_k e^{z_k}
    e = COUNTS * np.exp(Z)
    assert math.isclose(expected, np.mean(-np.log(e[np.arange(2), Y] / e.sum(1))), rel_tol=1e-12)


# --------------------------------------------------------------------------- specs and the registry


def test_specs_are_plain_data_with_every_parameter() -> None:
    assert LOSSES.from_spec("wce").to_dict() == {
        "name": "wce", "weighting": {"name": "power", "q": 1.0}, "label_smoothing": 0.0,
    }
    assert LOSSES.from_spec("class_balanced").to_dict() == {
        "name": "class_balanced", "beta": 0.9999, "base": "ce", "gamma": 2.0, "label_smoothing": 0.0,
    }
    assert LOSSES.from_spec("ldam").to_dict() == {
        "name": "ldam", "max_margin": 0.5, "s": 30.0, "weighting": None, "label_smoothing": 0.0,
    }
    spec = {"name": "focal", "gamma": 1, "weighting": {"effective_number": 0.99}}
    assert LOSSES.from_spec(spec).to_dict() == {
        "name": "focal", "gamma": 1.0, "weighting": {"name": "effective_number", "beta": 0.99}, "label_smoothing": 0.0,
    }


def test_the_lazy_package_exports_the_registry() -> None:
    import augbal.train

    assert augbal.train.LOSSES is LOSSES and augbal.train.Loss is Loss


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "focal", "gamma": -1}, "gamma must be a number >= 0; got -1"),
        ({"name": "ce", "label_smoothing": 1.5}, "label_smoothing must be a number in [0, 1]; got 1.5"),
        ({"name": "ldam", "s": 0}, "s must be a number > 0; got 0"),
        ({"name": "ldam", "max_margin": -0.1}, "max_margin must be a number >= 0; got -0.1"),
        ({"name": "logit_adjusted", "tau": float("nan")}, "tau must be a finite number; got nan"),
        ({"name": "class_balanced", "beta": 1.0}, "beta must be a number in [0, 1); got 1.0"),
        ({"name": "class_balanced", "base": "softmax"}, "base must be one of 'ce', 'focal', 'sigmoid'; got 'softmax'"),
        ({"name": "ce", "weighting": "inverse"}, "weighting must be a name"),
    ],
)
def test_bad_parameters_are_refused_naming_the_rule(spec: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        LOSSES.from_spec(spec)
    assert message in str(info.value)


def test_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        FocalLoss(2.0)  # type: ignore[misc]


# --------------------------------------------------------------------------- validation


@pytest.fixture
def fitted() -> Loss:
    return LOSSES.from_spec("wce").fit(COUNTS)


def test_an_unfitted_loss_says_to_call_fit() -> None:
    with pytest.raises(RuntimeError, match=r"the ldam loss is not fitted: call fit\(class_counts\) first"):
        LDAMLoss()(logits(), labels())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: (logits()[:, :2], torch.tensor([0, 1])), "one column per class (3, as fitted); got shape (2, 2)"),
        (lambda: (logits()[:0], torch.tensor([], dtype=torch.long)), "at least one row"),
        (lambda: (torch.tensor(Y), labels()), "logits must be a floating point tensor of shape (N, C); got torch.int64 (2,)"),
        (lambda: (Z, labels()), "logits must be a floating point tensor of shape (N, C); got ndarray"),
        (lambda: (logits(), torch.tensor([0, 3])), "target labels must be in [0, 3); got 3"),
        (lambda: (logits(), torch.tensor([-1, 0])), "target labels must be in [0, 3); got -1"),
        (lambda: (logits(), torch.tensor([0, 1, 2])), "one label per row of logits (2); got shape (3,)"),
        (lambda: (logits(), torch.tensor([0.0, 2.0])), "integer class labels (N,) or floating point soft targets (N, C)"),
        (lambda: (logits(), torch.tensor([True, False])), "got torch.bool"),
        (lambda: (logits(), soft() * 0.5), "rows summing to 1; got row sums [0.5, 0.5]"),
        (lambda: (logits(), soft() - 0.1 * torch.eye(3)[[2, 0]] + 0.1 * torch.eye(3)[[0, 2]]), "non-negative"),
        (lambda: (logits(), soft()[:, :2]), "soft targets must have the logits' shape (2, 3); got (2, 2)"),
        (lambda: (logits(), Y), "targets must be a tensor"),
    ],
)
def test_bad_batches_are_refused_naming_the_rule(fitted: Loss, make, message: str) -> None:
    z, t = make()
    with pytest.raises(ValueError) as info:
        fitted(z, t)
    assert message in str(info.value)


def test_a_negative_epoch_is_refused(fitted: Loss) -> None:
    with pytest.raises(ValueError, match="epoch must be an int >= 0; got -1"):
        fitted(logits(), labels(), epoch=-1)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([3, 1], None),  # fits; the mismatch shows at the first batch
        ([3, -1, 2], "class_counts must be non-negative integers; got [3, -1, 2]"),
        ([0, 0, 0], "class_counts must contain at least one sample"),
        ([1.5, 2, 3], "class_counts must be non-negative integers"),
        ("abc", "class_counts must be a 1-d sequence"),
    ],
)
def test_fit_validates_the_counts(counts, message) -> None:
    loss = LOSSES.from_spec("ce")
    if message is None:
        loss.fit(counts)
        with pytest.raises(ValueError, match="one column per class"):
            loss(logits(), labels())
        return
    with pytest.raises(ValueError) as info:
        loss.fit(counts)
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["ldam", "logit_adjusted", "balanced_softmax"])
def test_prior_and_margin_losses_refuse_an_empty_class(name: str) -> None:
    with pytest.raises(ValueError, match=rf"class_counts must be positive for the {name} loss .*got \[5, 0, 3\] \(class 1 is empty\)"):
        LOSSES.from_spec(name).fit([5, 0, 3])


def test_an_empty_class_weighs_zero_under_a_weighting_and_one_without() -> None:
    counts = [5, 0, 3]
    z, t = logits(), torch.tensor([1, 1])
    weighted = LOSSES.from_spec("wce").fit(counts)
    assert weighted.class_weights().tolist() == [0.75, 0.0, 1.25]
    grad_z = z.clone().requires_grad_(True)
    out = weighted(grad_z, t)
    out.backward()
    assert out.item() == 0.0 and torch.equal(grad_z.grad, torch.zeros_like(z))  # all weights 0: 0, not nan
    plain = LOSSES.from_spec("ce").fit(counts)
    assert math.isclose(value(plain, t), nll(Z, np.array([1, 1])).mean(), rel_tol=1e-12)


# --------------------------------------------------------------------------- dtypes, devices, pickling


def test_half_precision_logits_are_computed_in_float32() -> None:
    loss = LOSSES.from_spec("ldam", s=1.0).fit(COUNTS)
    for dtype in (torch.float16, torch.bfloat16):
        out = loss(logits(dtype), labels())
        assert out.dtype == torch.float32
        assert math.isclose(out.item(), value(loss, labels(), z=logits(dtype).double()), rel_tol=1e-6)
    assert loss(logits(torch.float32), labels()).dtype == torch.float32
    assert loss(logits(torch.float64), labels()).dtype == torch.float64


def test_per_class_tensors_made_in_inference_mode_do_not_break_training() -> None:
    loss = LOSSES.from_spec("balanced_softmax", weighting="balanced").fit(COUNTS)
    with torch.inference_mode():
        loss(logits(), labels())
    z = logits().requires_grad_(True)
    loss(z, labels()).backward()  # an inference tensor saved for backward would raise here
    assert torch.isfinite(z.grad).all()


def test_pickling_keeps_the_fit_and_drops_the_tensor_cache() -> None:
    loss = LOSSES.from_spec("ldam", weighting="sqrt").fit(COUNTS)
    before = value(loss, soft())
    assert loss._cache  # margins and weights were made for float64 on the CPU
    clone = pickle.loads(pickle.dumps(loss))
    assert clone._cache == {} and clone.counts_.tolist() == COUNTS.tolist()
    assert value(clone, soft()) == before


def test_to_moves_nothing_and_keeps_working() -> None:
    loss = LOSSES.from_spec("logit_adjusted").fit(COUNTS)
    assert loss.to(torch.float32) is loss and list(loss.buffers()) == [] and list(loss.parameters()) == []
    assert math.isclose(float(loss(logits(torch.float32), labels())), value(loss, labels()), rel_tol=1e-6)


def test_repr_names_the_parameters() -> None:
    assert repr(FocalLoss(gamma=1.0)) == "FocalLoss(gamma=1.0, weighting=None, label_smoothing=0.0)"


def test_under_autocast_the_weights_keep_full_precision() -> None:
    # autocast runs matmuls in bf16; the per-sample weights must not be rounded by one
    loss = LOSSES.from_spec("wce").fit([4500, 450, 45])
    head = torch.nn.Linear(4, 3)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    mix = torch.rand(64, 3, generator=torch.Generator().manual_seed(1))
    targets = mix / mix.sum(1, keepdim=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = head(x)
        inside = loss(z, targets)
    assert z.dtype == torch.bfloat16 and inside.dtype == torch.float32
    outside = loss(z.float(), targets)
    assert math.isclose(inside.item(), outside.item(), rel_tol=1e-6)


def test_changing_the_weighting_attribute_rebuilds_the_weights() -> None:
    loss = LOSSES.from_spec("wce").fit(COUNTS)
    before = value(loss, labels())
    loss.weighting = {"name": "power", "q": 0.0}
    assert math.isclose(value(loss, labels()), nll(Z, Y).mean(), rel_tol=1e-12) and before != value(loss, labels())


def test_an_unregistered_subclass_is_named_by_its_class_in_errors() -> None:
    class Mine(Loss):
        def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
            return -(targets * logits.log_softmax(1)).sum(1)

    with pytest.raises(RuntimeError, match="the Mine loss is not fitted"):
        Mine()(logits(), labels())
    assert math.isclose(value(Mine().fit(COUNTS), labels()), nll(Z, Y).mean(), rel_tol=1e-12)


# --------------------------------------------------------------------------- behaviour on a skewed problem


def _train_head(spec, x: torch.Tensor, y: torch.Tensor, counts: list[int], epochs: int = 80) -> torch.nn.Linear:
    loss = LOSSES.from_spec(spec).fit(counts)
    torch.manual_seed(0)  # the head's initial weights; the same for every loss
    head = torch.nn.Linear(2, 3)
    opt = torch.optim.SGD(head.parameters(), lr=1.0)  # full batch: one step an epoch
    for epoch in range(epochs):
        opt.zero_grad()
        loss(head(x), y, epoch=epoch).backward()
        opt.step()
    return head


def test_rebalancing_losses_recover_the_rare_classes_that_ce_gives_up() -> None:
    # three overlapping 2-d Gaussians, trained 500/50/5, tested balanced (2000 each)
    from sklearn.metrics import balanced_accuracy_score

    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 1.7]])

    def sample(counts: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([means[c] + torch.randn(n, 2, generator=g) for c, n in enumerate(counts)])
        return x, torch.repeat_interleave(torch.arange(3), torch.tensor(counts))

    counts = [500, 50, 5]
    x, y = sample(counts)
    x_test, y_test = sample([2000, 2000, 2000])

    def score(spec) -> float:
        head = _train_head(spec, x, y, counts)
        with torch.no_grad():
            return balanced_accuracy_score(y_test, head(x_test).argmax(1))

    ce = score("ce")
    drw = {"name": "deferred", "switch_epoch": 60, "before": "instance", "after": {"name": "effective_number", "beta": 0.9999}}
    assert ce < 0.5  # measured 0.470; the rebalancing losses 0.684 to 0.695
    for spec in ("wce", "logit_adjusted", {"name": "class_balanced", "beta": 0.999},
                 {"name": "ldam", "s": 1.0, "max_margin": 1.0, "weighting": drw}):
        assert score(spec) > ce + 0.15, spec


def test_the_recipe_spec_in_the_module_docstring_builds_ldam_drw() -> None:
    import textwrap

    import yaml

    import augbal.train._losses as module

    block = module.__doc__.split(".. code-block:: yaml")[1].split("Conventions")[0]
    spec = yaml.safe_load(textwrap.dedent(block))["loss"]
    loss = LOSSES.from_spec(spec).fit(COUNTS)
    assert isinstance(loss, LDAMLoss) and loss.s == 30.0 and loss.max_margin == 0.5
    assert loss.class_weights(epoch=159).tolist() == [1.0, 1.0, 1.0]
    assert loss.class_weights(epoch=160)[2] > 2.5
