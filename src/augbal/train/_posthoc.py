"""Post-hoc corrections of a trained classifier for the train/deployment prior shift.

- :func:`estimate_prior_em` — the class prior of an unlabelled set, from a classifier's
  posteriors, by EM (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a
  classifier to new a priori probabilities: a simple procedure").
- :func:`adjust_logits` — post-hoc logit adjustment to a target prior (Menon et al. 2021,
  "Long-tail learning via logit adjustment"): ``logits − τ·log π_train + τ·log π_target``.
- :func:`tau_normalize` — the τ-normalised classifier of Kang et al. 2020 ("Decoupling
  representation and classifier for long-tailed recognition"): ``W_c / ||W_c||^τ``.

Priors may be given as counts or probabilities: they are normalised to sum to 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int, check_real
from ._metrics import _check_scores, _to_numpy

__all__ = ["adjust_logits", "estimate_prior_em", "tau_normalize"]


def _check_prior(name: str, prior: Any, num_classes: int) -> np.ndarray:
    """A strictly positive prior of length C (counts or probabilities), normalised."""
    arr = _to_numpy(prior)
    ok = arr.ndim == 1 and arr.shape[0] == num_classes and arr.dtype != bool and np.issubdtype(arr.dtype, np.number)
    if ok:
        arr = arr.astype(np.float64)
        ok = bool(np.all(np.isfinite(arr)) and np.all(arr > 0))
    if not ok:
        raise ValueError(
            f"{name} must be {num_classes} positive class counts or probabilities (a class with prior 0 has "
            f"no finite log-prior); got {prior!r}"
        )
    return arr / arr.sum()


def _check_probs(probs: Any) -> np.ndarray:
    p = _check_scores("probs", probs)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"probs must be probabilities in [0, 1]; got values in [{p.min():g}, {p.max():g}]")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
    if bad.size:
        raise ValueError(f"probs rows must sum to 1 (softmax outputs); got {sums[bad[0]]:g} in row {int(bad[0])}")
    return p / sums[:, None]


def estimate_prior_em(probs: Any, train_prior: Any, *, max_iter: int = 1000, tol: float = 1e-8) -> np.ndarray:
    """The class prior of the set ``probs`` were computed on (Saerens et al. 2002).

    ``probs`` are the classifier's posteriors ``p_train(y | x)``, calibrated for the
    training prior. EM alternates re-weighting them to the current prior estimate
    ``π`` (``p(y | x) ∝ p_train(y | x) · π_y / π_train,y``) and setting ``π`` to their
    mean, from ``π = π_train``, until no component moves by more than ``tol`` (or
    ``max_iter`` rounds). Its fixed point is the maximum-likelihood prior of the set.

    Args:
        probs: ``(N, C)`` softmax outputs on the unlabelled (validation, deployment) set.
        train_prior: the training class counts or prior (length C, all positive).
        max_iter: at most this many EM rounds (>= 1).
        tol: stop when the largest change of a component is below this (> 0).

    Returns:
        The estimated prior (float64, sums to 1).

    Example:
        >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8]]
        >>> estimate_prior_em(probs, [0.5, 0.5]).round(3).tolist()
        [0.638, 0.362]

    Raises:
        ValueError: for probabilities outside [0, 1] or rows not summing to 1, a prior
            that is not positive or not of length C, bad ``max_iter`` / ``tol``.
    """
    p = _check_probs(probs)
    train = _check_prior("train_prior", train_prior, p.shape[1])
    max_iter = check_int("max_iter", max_iter, low=1)  # type: ignore[assignment]
    tol = check_real("tol", tol, low=0, low_open=True)  # type: ignore[assignment]
    return _em(p, train, max_iter, tol)


def _em(p: np.ndarray, train: np.ndarray, max_iter: int, tol: float) -> np.ndarray:
    prior = train.copy()
    for _ in range(max_iter):
        post = p * (prior / train)
        post /= post.sum(axis=1, keepdims=True)
        new = post.mean(axis=0)
        moved = float(np.abs(new - prior).max())
        prior = new
        if moved < tol:
            break
    return prior


def adjust_logits(logits: Any, *, train_prior: Any, target_prior: Any = "uniform", tau: float = 1.0) -> Any:
    """Post-hoc logit adjustment: ``logits − τ·log π_train + τ·log π_target`` (Menon et al. 2021).

    With ``τ = 1`` and calibrated logits, the softmax of the result is the posterior under
    the target prior (Bayes' rule: ``p_target(y|x) ∝ p_train(y|x) · π_target,y / π_train,y``);
    the uniform target gives the balanced-error classifier.

    Args:
        logits: ``(N, C)`` logits (a tensor: the result is a tensor of the same dtype and
            device; otherwise a float64 numpy array).
        train_prior: training counts or prior (length C, positive).
        target_prior: ``"uniform"``, or counts or a prior (length C, positive), e.g. from
            :func:`estimate_prior_em`.
        tau: the adjustment's strength (>= 0; 0 returns the logits unchanged).

    Example:
        >>> adjust_logits([[1.0, 1.0]], train_prior=[3, 1]).round(4).tolist()  # 1 + log(.5/.75), 1 + log(.5/.25)
        [[0.5945, 1.6931]]

    Raises:
        ValueError: for bad logits, priors or tau.
    """
    z = _check_scores("logits", logits)
    num_classes = z.shape[1]
    train = _check_prior("train_prior", train_prior, num_classes)
    if isinstance(target_prior, str):
        if target_prior != "uniform":
            raise ValueError(
                f"target_prior must be 'uniform' or {num_classes} class counts or probabilities; got {target_prior!r}"
            )
        target = np.full(num_classes, 1.0 / num_classes)
    else:
        target = _check_prior("target_prior", target_prior, num_classes)
    tau = check_real("tau", tau, low=0)  # type: ignore[assignment]
    shift = tau * (np.log(target) - np.log(train))
    if hasattr(logits, "detach") and hasattr(logits, "new_tensor"):
        return logits + logits.new_tensor(shift)
    return z + shift


def tau_normalize(weight_or_linear: Any, tau: float) -> Any:
    """The τ-normalised classifier of Kang et al. 2020: each class row ``W_c / ||W_c||^τ``.

    The bias is dropped, as in the paper's code (the τ-normalised classifier has none):
    given an ``nn.Linear`` the result is a new ``nn.Linear`` with ``bias=None`` on the same
    device and dtype; given a ``(C, D)`` weight tensor, a new tensor. The input is left
    unchanged and the result carries no gradient history. ``τ = 0`` keeps the weights,
    ``τ = 1`` gives unit-norm rows; a zero row stays zero.

    Example:
        >>> import torch
        >>> tau_normalize(torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64), 1.0).tolist()
        [[0.6, 0.8], [0.0, 1.0]]

    Raises:
        TypeError: unless given an ``nn.Linear`` or a 2-d floating-point tensor.
        ValueError: for ``tau`` < 0.
    """
    import torch

    tau = check_real("tau", tau, low=0)  # type: ignore[assignment]
    if isinstance(weight_or_linear, torch.nn.Linear):
        layer = weight_or_linear
        out = torch.nn.Linear(
            layer.in_features, layer.out_features, bias=False, device=layer.weight.device, dtype=layer.weight.dtype
        )
        with torch.no_grad():
            out.weight.copy_(_tau_rows(layer.weight, tau))
        return out
    w = weight_or_linear
    if isinstance(w, torch.Tensor) and w.ndim == 2 and w.is_floating_point():
        return _tau_rows(w, tau)
    shape = tuple(getattr(weight_or_linear, "shape", ()))
    raise TypeError(
        "tau_normalize takes an nn.Linear or a 2-d (classes, features) floating-point weight tensor; "
        f"got {type(weight_or_linear).__name__}{' of shape ' + str(shape) if shape else ''}"
    )


def _tau_rows(weight: Any, tau: float) -> Any:
    import torch

    with torch.no_grad():
        w = weight.detach()
        norms = torch.linalg.vector_norm(w, dim=1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
        return w / norms.pow(tau)  # a new tensor (pow(0) == 1: tau = 0 copies the weights)
