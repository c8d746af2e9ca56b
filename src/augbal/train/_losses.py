"""The loss family of ``augbal train``: CE, weighted CE, focal, class-balanced, LDAM(-DRW),
logit-adjusted CE and balanced softmax, each with the shared weighting family, label
smoothing and the soft targets of the batch mixers.

A recipe names a loss by its spec (``to_dict()``); ``LOSSES.from_spec`` builds it, and
``fit(class_counts)`` gives it the per-class training counts (priors, margins, weights):

.. code-block:: yaml

    loss:
      name: ldam
      max_margin: 0.5
      s: 30.0               # for a cosine head; use s: 1.0 with a plain linear head
      weighting:            # DRW, as in the LDAM-DRW reference code
        name: deferred
        switch_epoch: 160
        before: instance
        after: {name: effective_number, beta: 0.9999}

Conventions shared by every loss here:

- ``targets`` are integer labels ``(N,)`` or soft targets ``(N, C)`` (non-negative rows
  summing to 1, from mixers); a hard label ``y`` is the one-hot row ``e_y``, so both forms
  give the same value.
- Label smoothing ``ε`` is applied to the targets first: ``t' = (1 - ε) t + ε / C``
  (``torch.nn.functional.cross_entropy``'s definition), and every loss works on ``t'``.
- The weight of a sample is the class weight of its target, ``w_i = Σ_c t_ic w_c`` on the
  targets *before* smoothing (a mixed row weighs the mix of its classes' weights); the
  class weights are those of ``weighting`` (``augbal.sampling.resolve_weighting``: mean 1
  over the non-empty classes, 0 for an empty class; ``None`` = every sample weighs 1).
- The reduction is the weighted mean ``Σ_i w_i ℓ_i / Σ_i w_i``, torch's
  ``cross_entropy(weight=...)`` convention, so the weighting changes which samples count,
  not the scale of the loss. (With label smoothing, torch weights each smoothed class term
  by its own class weight; here the whole sample weighs ``w_i``. Without label smoothing
  the two agree.) A batch whose weights are all 0 gives 0. Under DDP each rank normalises
  by its own ``Σ w_i``, as ``cross_entropy(weight=...)`` does.
- Classes with no training sample (a 0 in ``class_counts``): the losses built on log
  priors or margins (``ldam``, ``logit_adjusted``, ``balanced_softmax``) refuse them in
  ``fit`` (their adjustment is infinite); the others fit, and such a class weighs 0 under
  any weighting (1 with ``weighting=None``), so the loss stays finite.
- ``forward`` checks the labels' range (or the soft rows) with one device sync per batch.
- Logits in half precision are computed in float32 (as autocast does for cross entropy);
  float32 and float64 logits keep their dtype. Per-class tensors are made on the logits'
  device and dtype, so ``loss.to(device)`` needs nothing moved.

Example:
    >>> import torch
    >>> loss = LOSSES.from_spec({"name": "focal", "gamma": 2.0, "weighting": "balanced"})
    >>> loss = loss.fit([100, 10, 1])
    >>> logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    >>> round(loss(logits, torch.tensor([0, 2])).item(), 6)
    0.004213
    >>> loss.to_dict()
    {'name': 'focal', 'gamma': 2.0, 'weighting': {'name': 'power', 'q': 1.0}, 'label_smoothing': 0.0}
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from .._registry import Registry
from .._validation import check_choice, check_int, check_probability, check_real
from ..sampling import resolve_weighting
from ..sampling._weighting import check_counts

__all__ = [
    "LOSSES",
    "BalancedSoftmax",
    "ClassBalanced",
    "CrossEntropy",
    "FocalLoss",
    "LDAMLoss",
    "Loss",
    "LogitAdjusted",
    "WeightedCrossEntropy",
]


class Loss(torch.nn.Module):
    """Base class of the loss family (see the module docstring for the conventions).

    Subclasses take keyword-only parameters (stored and validated, nothing computed),
    return them from ``_params()``, compute what they learn from the counts in
    ``_fit(counts)`` and implement ``_loss(logits, targets, epoch)``: the per-sample loss
    ``(N,)`` on soft, already smoothed targets ``(N, C)``. The public ``fit`` and
    ``forward`` validate, then call those hooks; ``forward`` weights and reduces.

    Args:
        weighting: a weighting spec (``"balanced"``, ``{"name": "effective_number",
            "beta": 0.999}``, a ``Deferred`` spec for DRW, ...) or ``None`` (uniform).
        label_smoothing: ``ε`` in ``[0, 1]``.

    Attributes:
        counts_: per-class training counts (``int64`` numpy array), set by ``fit``.
        neutral_params: parameters (with ``weighting=None`` and equal counts) under which
            the loss is plain cross entropy; ``None`` when it never is. The conformance
            suite checks the reduction.

    Example:
        >>> loss = LOSSES.from_spec("ce").fit([3, 1])
        >>> math.isclose(loss(torch.zeros(2, 2), torch.tensor([0, 1])).item(), math.log(2), rel_tol=1e-6)
        True
        >>> LOSSES.from_spec("ce")(torch.zeros(2, 2), torch.tensor([0, 1]))
        Traceback (most recent call last):
        ...
        RuntimeError: the ce loss is not fitted: call fit(class_counts) first
    """

    name: ClassVar[str]
    neutral_params: ClassVar[dict[str, Any] | None] = None

    def __init__(self, *, weighting: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weighting = None if weighting is None else resolve_weighting(weighting).to_dict()
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)
        self._cache: dict[tuple[Any, ...], torch.Tensor] = {}

    # ------------------------------------------------------------------ public API
    def fit(self, class_counts: Any) -> Loss:
        """Learn the per-class training counts (``counts_``) and what the loss derives from them.

        Raises:
            ValueError: unless ``class_counts`` is a 1-d sequence of non-negative integers
                with at least one sample (and, for the prior/margin losses, no zero).
        """
        counts = check_counts(class_counts, name="class_counts")
        self._cache = {}
        self._fit(counts)
        self.counts_ = counts
        return self

    def class_weights(self, *, epoch: int = 0) -> np.ndarray:
        """The per-class weights in force at ``epoch`` (``float64``; ones with ``weighting=None``)."""
        counts = self._fitted()
        epoch = check_int("epoch", epoch)  # type: ignore[assignment]
        weighting = self._weighting()
        if weighting is None:
            return np.ones(counts.size, dtype=np.float64)
        return weighting.class_weights(counts, epoch=epoch)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, *, epoch: int = 0) -> torch.Tensor:
        """The weighted mean loss of a batch (a scalar tensor).

        Args:
            logits: ``(N, C)`` floating point, ``C = len(counts_)``.
            targets: integer labels ``(N,)`` in ``[0, C)`` or soft targets ``(N, C)``
                (non-negative rows summing to 1).
            epoch: the training epoch (epoch-dependent weightings such as DRW).

        Raises:
            RuntimeError: the loss is not fitted.
            ValueError: logits or targets of the wrong shape, dtype, device or range.
        """
        counts = self._fitted()
        epoch = check_int("epoch", epoch)  # type: ignore[assignment]
        x, soft = _check_batch(logits, targets, counts.size)
        weights = self._sample_weights(soft, epoch)
        eps = self.label_smoothing
        if eps:
            soft = soft * (1.0 - eps) + eps / soft.shape[1]
        per_sample = self._loss(x, soft, epoch)
        if weights is None:
            return per_sample.mean()
        return (weights * per_sample).sum() / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}``; ``LOSSES.from_spec`` rebuilds the loss from it."""
        return LOSSES.spec(self, self._all_params())

    # ------------------------------------------------------------------ hooks
    def _params(self) -> dict[str, Any]:
        """The loss's own parameters (beyond ``weighting`` and ``label_smoothing``)."""
        return {}

    def _fit(self, counts: np.ndarray) -> None:
        """Compute what the loss needs from the validated counts (margins, log priors)."""

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _all_params(self) -> dict[str, Any]:
        return {**self._params(), "weighting": self.weighting, "label_smoothing": self.label_smoothing}

    def _weighting(self) -> Any:
        """The weighting built from the stored spec (built once; ``None``: uniform)."""
        if self.weighting is None:
            return None
        built = self.__dict__.get("_built_weighting")
        if built is None or built[0] != self.weighting:
            built = (self.weighting, resolve_weighting(self.weighting))
            self.__dict__["_built_weighting"] = built
            self._cache = {}  # weights made from another spec
        return built[1]

    def _fitted(self) -> np.ndarray:
        counts = getattr(self, "counts_", None)
        if counts is None:
            name = getattr(type(self), "name", type(self).__name__)
            raise RuntimeError(f"the {name} loss is not fitted: call fit(class_counts) first")
        return counts

    def _tensor(self, key: tuple[Any, ...], like: torch.Tensor, make: Any) -> torch.Tensor:
        """A per-class tensor on ``like``'s device and dtype, made once per (key, device, dtype)."""
        full = (*key, like.device, like.dtype, torch.is_inference_mode_enabled())
        value = self._cache.get(full)
        if value is None:
            if len(self._cache) > 16:  # epoch-keyed weights: keep the cache small
                self._cache.clear()
            value = torch.as_tensor(np.asarray(make(), dtype=np.float64), dtype=like.dtype, device=like.device)
            self._cache[full] = value
        return value

    def _sample_weights(self, soft: torch.Tensor, epoch: int) -> torch.Tensor | None:
        if self._weighting() is None:  # (re)builds the weighting, and drops stale weights, if its spec changed
            return None
        w = self._tensor(("weights", epoch), soft, lambda: self.class_weights(epoch=epoch))
        return (soft * w).sum(dim=1)  # not soft @ w: autocast would run a matmul in half precision

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._all_params().items())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state


LOSSES: Registry[Loss] = Registry("loss", base=Loss)
"""Every loss, by name; ``LOSSES.from_spec(loss.to_dict())`` rebuilds ``loss``."""


def _check_batch(logits: Any, targets: Any, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated logits (float32/float64) and targets as soft rows ``(N, C)`` in their dtype."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        what = f"{logits.dtype} {tuple(logits.shape)}" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating point tensor of shape (N, C); got {what}")
    n, c = logits.shape
    if n == 0 or c != num_classes:
        raise ValueError(
            f"logits must have at least one row and one column per class ({num_classes}, as fitted); "
            f"got shape {tuple(logits.shape)}"
        )
    x = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    if not isinstance(targets, torch.Tensor):
        raise ValueError(
            f"targets must be a tensor of class labels (N,) or soft targets (N, C); got {type(targets).__name__}"
        )
    if targets.device != logits.device:
        raise ValueError(f"targets must be on the logits' device ({logits.device}); got {targets.device}")
    integer = not (targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool)
    if targets.ndim == 1 and integer:
        if targets.shape[0] != n:
            raise ValueError(f"targets must have one label per row of logits ({n}); got shape {tuple(targets.shape)}")
        bad = (targets < 0) | (targets >= c)
        if bool(bad.any()):
            first = targets[bad][0].item()
            raise ValueError(f"target labels must be in [0, {c}); got {first}")
        return x, F.one_hot(targets.long(), c).to(x.dtype)
    if targets.ndim == 2 and targets.is_floating_point():
        if tuple(targets.shape) != (n, c):
            raise ValueError(f"soft targets must have the logits' shape {(n, c)}; got {tuple(targets.shape)}")
        t = targets.to(x.dtype)
        tol = 1e-4 if targets.dtype in (torch.float32, torch.float64) else 1e-2
        flags = torch.stack([(~torch.isfinite(t)).any(), (t < 0).any(), ((t.sum(1) - 1).abs() > tol).any()]).tolist()
        if any(flags):
            sums = [round(v, 6) for v in t.sum(1).tolist()[:8]]
            raise ValueError(f"soft targets must be finite, non-negative rows summing to 1; got row sums {sums}")
        return x, t
    raise ValueError(
        f"targets must be integer class labels (N,) or floating point soft targets (N, C); "
        f"got {targets.dtype} of shape {tuple(targets.shape)}"
    )


def _soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross entropy ``-Σ_c t_c log softmax(z)_c``."""
    return -(targets * logits.log_softmax(dim=1)).sum(dim=1)


def _focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample softmax focal loss ``-Σ_c t_c (1 - p_c)^γ log p_c`` (γ = 0: cross entropy)."""
    log_p = logits.log_softmax(dim=1)
    if gamma == 0.0:
        return -(targets * log_p).sum(dim=1)
    # 1 - p_c as -expm1(log p_c) (exact near p = 1), floored so the gradient of x^γ stays finite
    one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    return -(targets * one_minus_p.pow(gamma) * log_p).sum(dim=1)


def _sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample one-vs-all focal loss summed over classes:
    ``-Σ_c [t_c (1 - σ_c)^γ log σ_c + (1 - t_c) σ_c^γ log(1 - σ_c)]`` (γ = 0: binary CE)."""
    log_sig, log_one_minus = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos, neg = targets * log_sig, (1.0 - targets) * log_one_minus
    if gamma != 0.0:
        pos = pos * torch.exp(gamma * log_one_minus)
        neg = neg * torch.exp(gamma * log_sig)
    return -(pos + neg).sum(dim=1)


def _positive_counts(loss: Loss, counts: np.ndarray, why: str) -> None:
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        name = getattr(type(loss), "name", type(loss).__name__)
        raise ValueError(
            f"class_counts must be positive for the {name} loss ({why}); "
            f"got {counts.tolist()} (class {int(empty[0])} is empty)"
        )


# --------------------------------------------------------------------------- the family


@LOSSES.register("ce")
class CrossEntropy(Loss):
    """Cross entropy, ``ℓ = -Σ_c t_c log softmax(z)_c`` (with ``weighting``: weighted CE).

    Example:
        >>> loss = CrossEntropy(label_smoothing=0.1).fit([5, 5])
        >>> z, y = torch.tensor([[1.0, -1.0]]), torch.tensor([0])
        >>> torch.isclose(loss(z, y), F.cross_entropy(z, y, label_smoothing=0.1)).item()
        True
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {}

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        return _soft_ce(logits, targets)


@LOSSES.register("wce")
class WeightedCrossEntropy(CrossEntropy):
    """Weighted cross entropy: ``ce`` whose ``weighting`` defaults to ``"balanced"`` (inverse frequency).

    Example:
        >>> loss = WeightedCrossEntropy().fit([3, 1])
        >>> loss.class_weights().tolist()
        [0.5, 1.5]
    """

    def __init__(self, *, weighting: Any = "balanced", label_smoothing: float = 0.0) -> None:
        super().__init__(weighting=weighting, label_smoothing=label_smoothing)


@LOSSES.register("focal")
class FocalLoss(Loss):
    """Focal loss (Lin et al., 2017), softmax form: ``ℓ = -Σ_c t_c (1 - p_c)^γ log p_c``.

    For a hard label ``y`` this is ``-(1 - p_y)^γ log p_y``; soft targets use the sum over
    classes. Lin et al.'s class factor α is the ``weighting`` (e.g. ``"balanced"``).

    Args:
        gamma: focusing parameter ``γ >= 0`` (0: cross entropy; 2 in the paper).

    Example:
        >>> loss = FocalLoss(gamma=2.0).fit([5, 5])
        >>> z = torch.log(torch.tensor([[0.5, 0.5]]))
        >>> math.isclose(loss(z, torch.tensor([0])).item(), 0.25 * math.log(2), rel_tol=1e-6)
        True
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {"gamma": 0.0}

    def __init__(self, *, gamma: float = 2.0, weighting: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__(weighting=weighting, label_smoothing=label_smoothing)
        self.gamma = check_real("gamma", gamma, low=0)

    def _params(self) -> dict[str, Any]:
        return {"gamma": self.gamma}

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        return _focal(logits, targets, self.gamma)


@LOSSES.register("class_balanced")
class ClassBalanced(Loss):
    """Class-balanced loss (Cui et al., 2019): the ``base`` loss weighted by the inverse
    effective number of samples, ``w_c ∝ (1 - β) / (1 - β^n_c)`` (mean 1).

    ``base="ce"``: weighted softmax cross entropy; ``"focal"``: the softmax focal loss;
    ``"sigmoid"``: one-vs-all sigmoid focal loss summed over classes,
    ``-Σ_c [t_c (1-σ_c)^γ log σ_c + (1-t_c) σ_c^γ log(1-σ_c)]`` (γ = 0: binary cross
    entropy), as in the paper's code. The reduction is the weighted mean of this module
    (the paper's code divides by the number of samples instead: a per-batch scale). The
    weighting *is* the effective number, so ``weighting`` must stay ``None`` (use ``ce`` or
    ``focal`` with ``weighting={"name": "effective_number", ...}`` to combine it otherwise).

    Args:
        beta: ``β`` in ``[0, 1)`` (0.9999 is the paper's usual CIFAR setting; 0: uniform).
        base: ``"ce"``, ``"focal"`` or ``"sigmoid"``.
        gamma: focusing parameter of the focal bases (ignored by ``"ce"``).

    Example:
        >>> loss = ClassBalanced(beta=0.9).fit([100, 10, 1])
        >>> loss.class_weights().round(4).tolist()
        [0.2393, 0.3674, 2.3932]
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {"beta": 0.0, "base": "ce"}

    def __init__(
        self,
        *,
        beta: float = 0.9999,
        base: str = "ce",
        gamma: float = 2.0,
        weighting: Any = None,
        label_smoothing: float = 0.0,
    ) -> None:
        if weighting is not None:
            raise ValueError(
                "class_balanced weighting must be None (its weights are the effective number of beta); "
                f"got {weighting!r}"
            )
        super().__init__(label_smoothing=label_smoothing)
        self.beta = check_real("beta", beta, low=0, high=1, high_open=True)
        self.base = check_choice("base", base, ("ce", "focal", "sigmoid"))
        self.gamma = check_real("gamma", gamma, low=0)
        self.weighting = {"name": "effective_number", "beta": self.beta}

    def _params(self) -> dict[str, Any]:
        return {"beta": self.beta, "base": self.base, "gamma": self.gamma}

    def _all_params(self) -> dict[str, Any]:
        return {**self._params(), "label_smoothing": self.label_smoothing}

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        if self.base == "ce":
            return _soft_ce(logits, targets)
        if self.base == "focal":
            return _focal(logits, targets, self.gamma)
        return _sigmoid_focal(logits, targets, self.gamma)


@LOSSES.register("ldam")
class LDAMLoss(Loss):
    """Label-distribution-aware margin loss (Cao et al., 2019):
    ``ℓ = CE(s · (z - m ⊙ t), t)`` with ``m_c ∝ n_c^(-1/4)`` scaled so ``max_c m_c = max_margin``.

    For a hard label ``y`` only ``z_y`` loses its margin ``m_y``; soft targets subtract
    the margins weighted by the (smoothed) targets. The reference code uses ``s = 30``
    with a cosine (normalised) head, the default here; with a plain linear head the logits
    carry their own scale and ``s = 1`` is the sensible setting. LDAM-DRW is this loss with
    ``weighting={"name": "deferred", "switch_epoch": 160, "before": "instance",
    "after": {"name": "effective_number", "beta": 0.9999}}`` (the reference code's DRW).

    Args:
        max_margin: the largest margin (the rarest class's), ``>= 0``; 0.5 in the paper.
        s: logit scale ``> 0``.

    Example:
        >>> LDAMLoss(max_margin=0.5).fit([10000, 10, 1]).margins_.round(4).tolist()
        [0.05, 0.2812, 0.5]
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {"max_margin": 0.0, "s": 1.0}

    def __init__(
        self, *, max_margin: float = 0.5, s: float = 30.0, weighting: Any = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__(weighting=weighting, label_smoothing=label_smoothing)
        self.max_margin = check_real("max_margin", max_margin, low=0)
        self.s = check_real("s", s, low=0, low_open=True)

    def _params(self) -> dict[str, Any]:
        return {"max_margin": self.max_margin, "s": self.s}

    def _fit(self, counts: np.ndarray) -> None:
        _positive_counts(self, counts, "its margins grow as n_c^(-1/4)")
        m = counts.astype(np.float64) ** -0.25
        self.margins_ = m * (self.max_margin / m.max())

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        m = self._tensor(("margins",), logits, lambda: self.margins_)
        return _soft_ce(self.s * (logits - targets * m), targets)


@LOSSES.register("logit_adjusted")
class LogitAdjusted(Loss):
    """Logit-adjusted cross entropy (Menon et al., 2021): ``ℓ = CE(z + τ log π, t)`` with
    ``π_c = n_c / Σ n`` the training prior.

    Only training uses the adjusted logits: predict with the raw logits ``z`` (they then
    estimate the balanced posterior).

    Args:
        tau: the adjustment strength ``τ`` (1.0 in the paper; 0: cross entropy).

    Example:
        >>> LogitAdjusted(tau=1.0).fit([3, 1]).log_prior_.round(4).tolist()
        [-0.2877, -1.3863]
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {"tau": 0.0}

    def __init__(self, *, tau: float = 1.0, weighting: Any = None, label_smoothing: float = 0.0) -> None:
        super().__init__(weighting=weighting, label_smoothing=label_smoothing)
        self.tau = check_real("tau", tau)

    def _params(self) -> dict[str, Any]:
        return {"tau": self.tau}

    def _fit(self, counts: np.ndarray) -> None:
        _positive_counts(self, counts, "log prior of an empty class is -inf")
        self.log_prior_ = np.log(counts / counts.sum())

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        shift = self._tensor(("log_prior", self.tau), logits, lambda: self.tau * self.log_prior_)
        return _soft_ce(logits + shift, targets)


@LOSSES.register("balanced_softmax")
class BalancedSoftmax(Loss):
    """Balanced softmax (Ren et al., 2020): ``ℓ = CE(z + log n, t)``, the softmax of the
    training distribution ``n_c e^{z_c} / Σ_k n_k e^{z_k}``. Predict with the raw logits.

    Equal to ``logit_adjusted`` with ``τ = 1`` (``log n`` and ``log π`` differ by a constant).

    Example:
        >>> loss = BalancedSoftmax().fit([3, 1])
        >>> z = torch.zeros(1, 2)
        >>> round(loss(z, torch.tensor([1])).item(), 6) == round(math.log(4), 6)
        True
    """

    neutral_params: ClassVar[dict[str, Any] | None] = {}

    def _fit(self, counts: np.ndarray) -> None:
        _positive_counts(self, counts, "log n_c of an empty class is -inf")
        self.log_counts_ = np.log(counts.astype(np.float64))

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        shift = self._tensor(("log_counts",), logits, lambda: self.log_counts_)
        return _soft_ce(logits + shift, targets)
