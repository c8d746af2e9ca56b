"""estimate_prior_em, adjust_logits and tau_normalize on synthetic, exactly calibrated models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from augbal.train import adjust_logits, estimate_prior_em, tau_normalize

torch.set_num_threads(1)

MEANS = np.array([[0.0, 0.0], [2.5, 0.0], [0.0, 2.5]])
TRAIN = np.array([4500, 450, 45]) / 4995


def _bayes_logits(prior_of_data: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Samples of 3 unit Gaussians drawn with ``prior_of_data``, scored by the Bayes
    classifier calibrated for the *training* prior: log N(x; mu_y, I) + log pi_train,y."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=prior_of_data)
    x = MEANS[y] + rng.normal(size=(n, 2))
    loglik = -0.5 * ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    return loglik + np.log(TRAIN), y


def _softmax(z) -> np.ndarray:
    return torch.softmax(torch.as_tensor(z, dtype=torch.float64), 1).numpy()


def test_em_recovers_a_shifted_prior():
    shifted = np.array([0.2, 0.3, 0.5])
    logits, _ = _bayes_logits(shifted, 20000)
    probs = _softmax(logits)
    naive = probs.mean(axis=0)  # the posteriors' mean stays near the training prior
    assert abs(naive[2] - 0.5) > 0.3
    est = estimate_prior_em(probs, TRAIN)
    assert est.sum() == pytest.approx(1.0)
    assert est == pytest.approx(shifted, abs=0.02)


def test_em_keeps_the_training_prior_when_nothing_shifted():
    logits, _ = _bayes_logits(TRAIN, 20000, seed=1)
    est = estimate_prior_em(torch.from_numpy(_softmax(logits)).float(), [4500, 450, 45])  # counts work too
    assert est == pytest.approx(TRAIN, abs=0.01)


def test_em_fixed_point_is_the_mean_of_the_adjusted_posteriors():
    logits, _ = _bayes_logits(np.array([0.4, 0.4, 0.2]), 3000, seed=2)
    est = estimate_prior_em(_softmax(logits), TRAIN, tol=1e-12)
    adjusted = adjust_logits(logits, train_prior=TRAIN, target_prior=est)
    assert _softmax(adjusted).mean(axis=0) == pytest.approx(est, abs=1e-9)


def test_em_stops_after_max_iter():
    logits, _ = _bayes_logits(np.array([0.2, 0.3, 0.5]), 2000, seed=3)
    probs = _softmax(logits)
    one = estimate_prior_em(probs, TRAIN, max_iter=1)
    assert one == pytest.approx(probs.mean(axis=0), abs=1e-12)  # first EM round: the mean posterior


def test_adjust_logits_is_bayes_rule_for_the_uniform_prior():
    logits, y = _bayes_logits(np.array([1 / 3, 1 / 3, 1 / 3]), 500, seed=4)
    adjusted = adjust_logits(logits, train_prior=TRAIN)
    assert adjusted == pytest.approx(logits - np.log(TRAIN) + math.log(1 / 3), abs=1e-12)
    expected = _softmax(logits) / TRAIN
    expected /= expected.sum(axis=1, keepdims=True)
    assert _softmax(adjusted) == pytest.approx(expected, abs=1e-12)
    # balanced data: the adjusted (balanced-error) classifier is right more often on the minority
    assert (adjusted.argmax(1) == y)[y == 2].mean() > (logits.argmax(1) == y)[y == 2].mean() + 0.3


def test_adjust_logits_tau_and_types():
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float32, requires_grad=True)
    out = adjust_logits(z, train_prior=[4500, 450, 45], target_prior=[1, 1, 2], tau=0.5)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.requires_grad
    shift = 0.5 * (np.log([0.25, 0.25, 0.5]) - np.log(TRAIN))
    assert out.detach().numpy()[0] == pytest.approx(np.array([1.0, 2.0, 3.0]) + shift, abs=1e-5)
    assert adjust_logits([[1.0, 2.0]], train_prior=[9, 1], tau=0).tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: estimate_prior_em([[0.5, 0.6]], [1, 1]), "probs rows must sum to 1 (softmax outputs); got 1.1 in row 0"),
        (lambda: estimate_prior_em([[1.5, -0.5]], [1, 1]), "probs must be probabilities in [0, 1]"),
        (lambda: estimate_prior_em([[0.5, 0.5]], [1, 0]), "train_prior must be 2 positive class counts or probabilities"),
        (lambda: estimate_prior_em([[0.5, 0.5]], [1, 1, 1]), "train_prior must be 2 positive"),
        (lambda: estimate_prior_em([[0.5, 0.5]], [1, 1], tol=0), "tol must be a number > 0; got 0"),
        (lambda: estimate_prior_em([[0.5, 0.5]], [1, 1], max_iter=0), "max_iter must be an int >= 1; got 0"),
        (lambda: adjust_logits([[1.0, 2.0]], train_prior=[1, 1], target_prior="balanced"), "target_prior must be 'uniform' or 2 class counts"),
        (lambda: adjust_logits([[1.0, 2.0]], train_prior=[1, 1], target_prior=[1, 0]), "target_prior must be 2 positive"),
        (lambda: adjust_logits([[1.0, 2.0]], train_prior=[1, 1], tau=-1), "tau must be a number >= 0; got -1"),
    ],
)
def test_posthoc_bad_input(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value)


def test_tau_normalize_weight_rows():
    w = torch.tensor([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    assert tau_normalize(w, 1.0).tolist() == [[0.6, 0.8], [0.0, 1.0], [0.0, 0.0]]
    half = tau_normalize(w, 0.5)
    assert half.numpy() == pytest.approx(np.array([[3 / math.sqrt(5), 4 / math.sqrt(5)], [0.0, math.sqrt(2)], [0.0, 0.0]]))
    same = tau_normalize(w, 0.0)
    assert same.tolist() == w.tolist() and same is not w
    assert w.tolist() == [[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]]  # input untouched


def test_tau_normalize_linear_drops_the_bias():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    before = layer.weight.detach().clone()
    out = tau_normalize(layer, 1.0)
    assert isinstance(out, torch.nn.Linear) and out is not layer and out.bias is None
    assert torch.linalg.vector_norm(out.weight, dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0])
    x = torch.randn(5, 4)
    expected = x @ (before / before.norm(dim=1, keepdim=True)).T
    assert torch.allclose(out(x), expected, atol=1e-6)
    assert torch.equal(layer.weight, before) and layer.bias is not None
    # the minority class with the smallest norm gains most: norms are equalised
    skewed = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    assert tau_normalize(skewed, 1.0).norm(dim=1).tolist() == [1.0, 1.0]


def test_tau_normalize_bad_input():
    with pytest.raises(TypeError, match=r"an nn.Linear or a 2-d \(classes, features\).*got Tensor of shape \(3,\)"):
        tau_normalize(torch.ones(3), 1.0)
    with pytest.raises(TypeError, match="got Conv2d"):
        tau_normalize(torch.nn.Conv2d(1, 1, 1), 1.0)
    with pytest.raises(ValueError, match="tau must be a number >= 0; got -0.5"):
        tau_normalize(torch.ones(2, 2), -0.5)
