"""Conformance suite: every registered loss (``LOSSES.names()``, no hand-kept list), and the
variants a recipe is likely to name, pass ``augbal.testing.check_loss``; and the checks
themselves catch broken losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from augbal.testing import LOSS_CHECKS, check_loss, check_spec_roundtrip
from augbal.train import LOSSES, Loss
from augbal.train._losses import CrossEntropy, FocalLoss, _soft_ce

torch.set_num_threads(1)

DRW = {"name": "deferred", "switch_epoch": 160, "before": "instance", "after": {"name": "effective_number", "beta": 0.9999}}
VARIANTS: list[Any] = [
    *LOSSES.names(),
    {"name": "focal", "gamma": 0.5, "weighting": "sqrt", "label_smoothing": 0.1},
    {"name": "class_balanced", "beta": 0.99, "base": "focal", "gamma": 1.0},
    {"name": "class_balanced", "beta": 0.999, "base": "sigmoid", "gamma": 2.0},
    {"name": "class_balanced", "base": "sigmoid", "gamma": 0.0},
    {"name": "ldam", "max_margin": 0.5, "s": 30.0, "weighting": DRW},
    {"name": "ldam", "s": 1.0, "label_smoothing": 0.1},
    {"name": "logit_adjusted", "tau": 1.5, "weighting": {"name": "effective_number", "beta": 0.999}},
    {"name": "balanced_softmax", "weighting": "balanced"},
    {"name": "wce", "weighting": {"name": "progressive", "start": "instance", "end": "balanced", "epochs": 5}},
]
IDS = [v if isinstance(v, str) else "-".join(f"{x}" for x in v.values() if not isinstance(x, dict)) for v in VARIANTS]


def test_registry_has_the_promised_losses() -> None:
    assert set(LOSSES.names()) == {"ce", "wce", "focal", "class_balanced", "ldam", "logit_adjusted", "balanced_softmax"}


@pytest.mark.parametrize("check", LOSS_CHECKS)
@pytest.mark.parametrize("spec", VARIANTS, ids=IDS)
def test_loss_conforms(spec: Any, check: str) -> None:
    check_loss(spec, checks=[check])


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_conforms_with_four_classes(name: str) -> None:
    check_loss(name, num_classes=4, seed=3, checks=["weighted", "reduces_to_ce", "soft_targets", "finite"])


def test_spec_roundtrip_finds_the_loss_registry() -> None:
    rebuilt = check_spec_roundtrip(LOSSES.from_spec({"name": "ldam", "s": 1.0}))
    assert rebuilt.to_dict() == {"name": "ldam", "max_margin": 0.5, "s": 1.0, "weighting": None, "label_smoothing": 0.0}


def test_unknown_check_names_are_refused() -> None:
    with pytest.raises(ValueError, match="check_loss checks must be among spec, pickle"):
        check_loss("ce", checks=["spec", "fast"])


# --------------------------------------------------------------------------- broken losses are caught
# Each stand-in is registered in LOSSES for the duration of one test only.


@pytest.fixture
def register():
    added: list[str] = []

    def add(name: str, cls: type) -> type:
        LOSSES.register(name)(cls)
        added.append(name)
        return cls

    yield add
    for name in added:
        LOSSES._entries.pop(name)
        LOSSES._names = {c: n for c, n in LOSSES._names.items() if n != name}


class _UnnormalisedMean(CrossEntropy):
    """Weights applied, but divided by N instead of the sum of weights."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, *, epoch: int = 0) -> torch.Tensor:
        full = super().forward(logits, targets, epoch=epoch)
        if self.weighting is None:
            return full
        w = torch.as_tensor(self.class_weights(epoch=epoch), dtype=logits.dtype)
        t = targets if targets.ndim == 2 else torch.nn.functional.one_hot(targets, logits.shape[1]).to(logits.dtype)
        return (t @ w * _soft_ce(logits, t)).mean()


class _HardOnlyMargin(Loss):
    """A margin only on integer labels: soft one-hot rows give another value."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, *, epoch: int = 0) -> torch.Tensor:
        if targets.ndim == 1:
            logits = logits - 0.3 * torch.nn.functional.one_hot(targets, logits.shape[1]).to(logits.dtype)
        return super().forward(logits, targets, epoch=epoch)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        return _soft_ce(logits, targets)


class _UnclampedFocal(FocalLoss):
    """(1 - p)^γ without the floor: γ < 1 gives an infinite gradient where p = 1."""

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        log_p = logits.log_softmax(1)
        return -(targets * (-torch.expm1(log_p)).pow(self.gamma) * log_p).sum(1)


class _NoisyCE(CrossEntropy):
    """Draws from the global RNG (a dropout-like jitter)."""

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        return _soft_ce(logits + 0.0 * torch.rand_like(logits), targets)


class _WrongNeutral(FocalLoss):
    """Claims to be CE at gamma=0.5."""

    neutral_params = {"gamma": 0.5}


class _FirstRowOnly(CrossEntropy):
    """Depends on the batch order (the first row counts twice)."""

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
        out = _soft_ce(logits, targets)
        return torch.cat([out[:1] * 2, out[1:]])


class _NoRangeCheck(CrossEntropy):
    """Skips the base validation of labels (gathers with wrapped indices)."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, *, epoch: int = 0) -> torch.Tensor:
        self._fitted()
        if targets.ndim == 1:
            return torch.nn.functional.cross_entropy(logits, targets.clamp(0, logits.shape[1] - 1))
        return super().forward(logits, targets, epoch=epoch)


class _LostParameter(FocalLoss):
    """Its spec forgets gamma."""

    def _params(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("cls", "check", "message"),
    [
        (_UnnormalisedMean, "weighted", "batch value vs Σ w ℓ / Σ w"),
        (_HardOnlyMargin, "soft_targets", "one-hot vs labels"),
        (_UnclampedFocal, "finite", "extreme (±1e4) logits"),
        (_NoisyCE, "global_rng", "consumed torch's global RNG"),
        (_WrongNeutral, "reduces_to_ce", "labels, epoch 0"),
        (_FirstRowOnly, "batch_order", "permuted"),
        (_NoRangeCheck, "validation", "must raise ValueError; it did not"),
        (_LostParameter, "spec", "rebuilt from its spec"),
    ],
)
def test_check_loss_catches_a_broken_loss(register, cls: type, check: str, message: str) -> None:
    register("_broken", cls)
    params: dict[str, Any] = {}
    if issubclass(cls, FocalLoss):
        params["gamma"] = 0.5 if cls is not _WrongNeutral else 2.0
    if cls is _UnnormalisedMean:
        params["weighting"] = "balanced"
    with pytest.raises(AssertionError, match=rf"check_loss\[{check}\] failed") as info:
        check_loss(cls(**params), checks=[check])
    assert message in str(info.value)


def test_empty_class_check_accepts_a_clear_refusal_and_rejects_an_infinite_loss(register) -> None:
    check_loss("ldam", checks=["empty_class"])  # refuses in fit, naming class_counts

    class _LogZero(Loss):  # log n_c of an empty class: -inf logits, an infinite loss on its labels
        def _fit(self, counts: np.ndarray) -> None:
            with np.errstate(divide="ignore"):
                self.log_counts_ = np.log(counts.astype(np.float64))

        def _loss(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int) -> torch.Tensor:
            return _soft_ce(logits + torch.as_tensor(self.log_counts_, dtype=logits.dtype), targets)

    register("_broken", _LogZero)
    with pytest.raises(AssertionError, match=r"check_loss\[empty_class\] failed.*an empty class"):
        check_loss("_broken", checks=["empty_class"])


def test_check_loss_validates_its_own_arguments() -> None:
    with pytest.raises(ValueError, match="num_classes must be an int >= 2; got 1"):
        check_loss("ce", num_classes=1)
    with pytest.raises(ValueError, match="seed must be an int >= 0; got -1"):
        check_loss("ce", seed=-1)
    with pytest.raises(KeyError, match="unknown loss 'cross_entropy'; choose one of: balanced_softmax, ce"):
        check_loss("cross_entropy")
