"""Freeze policies: which ResNet stages train at each epoch, at which learning rate.

A policy answers, for every epoch, the stages that train (:meth:`FreezePolicy.trainable`,
a tuple of :data:`~augbal.train._model.STAGES` names in forward order) and does what that
means to a model: ``requires_grad`` per stage (:meth:`~FreezePolicy.apply`), BatchNorm of
the frozen stages kept in eval mode so their running statistics do not move
(:meth:`~FreezePolicy.train_mode`), one optimiser parameter group per stage with its own
learning-rate multiplier (:meth:`~FreezePolicy.param_groups`: discriminative learning
rates), and what a cache may hold (:meth:`~FreezePolicy.frozen_through`).

Registered in :data:`FREEZE_POLICIES`: ``head``, ``layer4`` (head + layer4), ``layer3``
(head + layer4 + layer3), ``all``; ``two_stage`` (the head alone for ``head_epochs``
epochs, then more: fastai's ``fine_tune``) and ``progressive`` (unfreezing on a schedule).

Common parameters:
    lr_mult: ``{stage: multiplier}`` of the base learning rate (``{"layer4": 0.1}``: layer4
        trains at a tenth of the head's rate); a stage not named trains at 1.0.
    reinit: re-initialise each unfrozen stage other than the head (torchvision's
        initialisation, drawn from ``(seed, stage)``) when :meth:`~FreezePolicy.apply` is
        called for the first epoch the stage trains. Because the draw depends only on
        ``(seed, stage)``, a resumed run that calls ``apply`` again for that epoch gets the
        same weights; a run resumed after that epoch keeps its trained weights.
    bn: ``"frozen"`` (BatchNorm of frozen stages in eval mode) or ``"train"`` (their
        running statistics follow the training batches; their affine parameters stay frozen).
    seed: seeds ``reinit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from augbal._registry import Registry
from augbal._validation import check_bool, check_choice, check_int, check_real, check_seed, is_int
from augbal.train._model import STAGES, stage_modules

__all__ = [
    "FREEZE_POLICIES",
    "FreezePolicy",
    "Progressive",
    "TrainAll",
    "TrainHead",
    "TrainLayer3",
    "TrainLayer4",
    "TwoStage",
]

FREEZE_POLICIES: Registry[FreezePolicy] = Registry("freeze policy")

# "unfreeze down to X": the stages from X to the head
_DEPTHS: dict[str, tuple[str, ...]] = {
    "head": ("head",),
    "layer4": STAGES[4:],
    "layer3": STAGES[3:],
    "layer2": STAGES[2:],
    "layer1": STAGES[1:],
    "all": STAGES,
}
_BN_MODES = ("frozen", "train")


class FreezePolicy:
    """Base class of the freeze policies: the common parameters and everything but :meth:`_trainable`.

    Subclasses implement the one hook ``_trainable(epoch) -> tuple[str, ...]`` (stages in
    forward order) and ``_params()`` (their own spec parameters).

    Args:
        lr_mult: learning-rate multiplier per stage (stages not named: 1.0).
        reinit: re-initialise unfrozen non-head stages at the first epoch they train.
        bn: ``"frozen"`` or ``"train"``: BatchNorm mode of the frozen stages.
        seed: seed of the re-initialisation.
    """

    def __init__(
        self,
        *,
        lr_mult: Mapping[str, float] | None = None,
        reinit: bool = False,
        bn: str = "frozen",
        seed: int = 0,
    ) -> None:
        if lr_mult is None:
            lr_mult = {}
        if not isinstance(lr_mult, Mapping):
            raise ValueError(f"lr_mult must be a {{stage: multiplier}} dict; got {lr_mult!r}")
        self.lr_mult = {
            check_choice("lr_mult stage", stage, STAGES): check_real(f"lr_mult[{stage!r}]", mult, low=0, low_open=True)
            for stage, mult in lr_mult.items()
        }
        self.reinit = check_bool("reinit", reinit)
        self.bn = check_choice("bn", bn, _BN_MODES)
        self.seed = check_seed("seed", seed)

    def _check_lr_mult(self) -> None:
        """A multiplier for a stage the policy never trains is a mistake (called by subclasses' constructors)."""
        ever = self._ever()
        never = [s for s in self.lr_mult if s not in ever]
        if never:
            raise ValueError(
                f"lr_mult must name stages this {self.name} policy trains ({', '.join(ever)}); "  # type: ignore[attr-defined]
                f"got {', '.join(never)}"
            )

    # ------------------------------------------------------------------ the schedule
    def trainable(self, epoch: int) -> tuple[str, ...]:
        """The stages trained at ``epoch`` (0-based), in forward order.

        Example:
            >>> FREEZE_POLICIES.from_spec({"name": "two_stage", "head_epochs": 2}).trainable(2)
            ('layer4', 'head')
        """
        check_int("epoch", epoch, low=0)
        return self._trainable(epoch)

    def _trainable(self, epoch: int) -> tuple[str, ...]:
        raise NotImplementedError

    def _ever(self) -> tuple[str, ...]:
        """The stages trained at some epoch (policies deepen, so the deepest set)."""
        raise NotImplementedError

    def changes(self, epochs: int) -> list[int]:
        """The epochs in ``1 .. epochs - 1`` whose trainable set differs from the epoch before.

        Example:
            >>> FREEZE_POLICIES.from_spec({"name": "progressive"}).changes(10)
            [3, 6]
        """
        check_int("epochs", epochs, low=1)
        return [e for e in range(1, epochs) if self._trainable(e) != self._trainable(e - 1)]

    def frozen_through(self, epochs: int) -> str | None:
        """The last stage frozen for the whole run of ``epochs`` epochs, or ``None``.

        ``"layer4"``: everything up to the pooled 512-d features is fixed, so the features can
        be cached; ``"layer3"``: layer3's output can. ``None`` when the stem trains at some
        epoch, or with ``bn="train"`` (frozen stages' BatchNorm statistics then move, so
        their output is not fixed).

        Example:
            >>> FREEZE_POLICIES.from_spec("head").frozen_through(20)
            'layer4'
        """
        check_int("epochs", epochs, low=1)
        if self.bn == "train":
            return None
        trained = {s for e in range(epochs) for s in self._trainable(e)}
        last = None
        for stage in STAGES:
            if stage in trained:
                break
            last = stage
        return last

    # ------------------------------------------------------------------ acting on a model
    def apply(self, model: nn.Module, epoch: int) -> tuple[str, ...]:
        """Set ``requires_grad`` of every parameter by its stage for ``epoch``; returns the trainable stages.

        With ``reinit=True``, a non-head stage that starts training at ``epoch`` is
        re-initialised first.

        Example:
            >>> from augbal.train import build_model
            >>> model, _ = build_model(3, cifar_stem=True)
            >>> FREEZE_POLICIES.from_spec("layer4").apply(model, 0)
            ('layer4', 'head')
            >>> model.layer3[0].conv1.weight.requires_grad, model.layer4[0].conv1.weight.requires_grad
            (False, True)
        """
        trainable = self.trainable(epoch)
        stages = stage_modules(model)
        if self.reinit:
            before = () if epoch == 0 else self._trainable(epoch - 1)
            for stage in trainable:
                if stage != "head" and stage not in before:
                    self._reinit(stage, stages[stage])
        for stage, modules in stages.items():
            for module in modules:
                module.requires_grad_(stage in trainable)
        return trainable

    def _reinit(self, stage: str, modules: list[nn.Module]) -> None:
        """torchvision's ResNet initialisation of ``modules``, drawn on the CPU from ``(seed, stage)``."""
        generator = torch.Generator().manual_seed(self.seed * len(STAGES) + STAGES.index(stage))
        with torch.no_grad():
            for root in modules:
                for m in root.modules():
                    if isinstance(m, nn.Conv2d):
                        w = torch.empty(m.weight.shape)  # drawn on the CPU: the same weights on any device
                        nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=generator)
                        m.weight.copy_(w)
                        if m.bias is not None:
                            m.bias.zero_()
                    elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.reset_parameters()  # weight 1, bias 0, running statistics reset

    def train_mode(self, model: nn.Module, epoch: int) -> nn.Module:
        """``model.train()``, then (``bn="frozen"``) BatchNorm of the stages frozen at ``epoch`` in eval mode.

        Example:
            >>> from augbal.train import build_model
            >>> model, _ = build_model(3, cifar_stem=True)
            >>> _ = FREEZE_POLICIES.from_spec("head").train_mode(model, 0)
            >>> model.training, model.layer4[0].bn1.training
            (True, False)
        """
        trainable = self.trainable(epoch)
        model.train()
        if self.bn == "frozen":
            for stage, modules in stage_modules(model).items():
                if stage in trainable:
                    continue
                for root in modules:
                    for m in root.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):
                            m.eval()
        return model

    def param_groups(self, model: nn.Module, *, lr: float) -> list[dict[str, Any]]:
        """One optimiser group per stage the policy ever trains, in forward order.

        Each group is ``{"params": [...], "lr": lr * lr_mult[stage], "stage": stage}``. Groups
        of stages frozen at first are included from the start (their parameters have no
        gradient while frozen, so the optimiser skips them), so one optimiser serves the run.

        Example:
            >>> from augbal.train import build_model
            >>> model, _ = build_model(3, cifar_stem=True)
            >>> policy = FREEZE_POLICIES.from_spec({"name": "layer4", "lr_mult": {"layer4": 0.1}})
            >>> [(g["stage"], g["lr"]) for g in policy.param_groups(model, lr=1e-3)]
            [('layer4', 0.0001), ('head', 0.001)]
        """
        lr = check_real("lr", lr, low=0, low_open=True)
        stages = stage_modules(model)
        groups = []
        for stage in self._ever():
            params = [p for m in stages[stage] for p in m.parameters()]
            groups.append({"params": params, "lr": lr * self.lr_mult.get(stage, 1.0), "stage": stage})
        return groups

    # ------------------------------------------------------------------ spec
    def _params(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params, lr_mult, reinit, bn, seed}``; ``FREEZE_POLICIES.from_spec`` rebuilds it.

        Example:
            >>> FREEZE_POLICIES.from_spec("head").to_dict()
            {'name': 'head', 'lr_mult': {}, 'reinit': False, 'bn': 'frozen', 'seed': 0}
        """
        common = {"lr_mult": dict(self.lr_mult), "reinit": self.reinit, "bn": self.bn, "seed": self.seed}
        return FREEZE_POLICIES.spec(self, {**self._params(), **common})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({params})"


FREEZE_POLICIES.base = FreezePolicy


class _Fixed(FreezePolicy):
    """The same stages at every epoch: from ``_from`` to the head."""

    _from = "head"

    def __init__(self, **common: Any) -> None:
        super().__init__(**common)
        self._check_lr_mult()

    def _trainable(self, epoch: int) -> tuple[str, ...]:
        return _DEPTHS[self._from]

    def _ever(self) -> tuple[str, ...]:
        return _DEPTHS[self._from]


def _fixed(name: str, stage: str, doc: str) -> type[_Fixed]:
    """The fixed policy ``name`` training ``stage`` down to the head, registered as ``stage``."""
    cls = type(name, (_Fixed,), {"__doc__": doc, "__module__": __name__, "_from": stage})
    return FREEZE_POLICIES.register(stage)(cls)


TrainHead = _fixed("TrainHead", "head", "Only the head trains (linear probing on a frozen backbone).")
TrainLayer4 = _fixed("TrainLayer4", "layer4", "layer4 and the head train.")
TrainLayer3 = _fixed("TrainLayer3", "layer3", "layer3, layer4 and the head train.")
TrainAll = _fixed("TrainAll", "all", "Every stage trains (full fine-tuning).")


@FREEZE_POLICIES.register("two_stage")
class TwoStage(FreezePolicy):
    """The head alone for ``head_epochs`` epochs, then the stages from ``then`` down (fastai's ``fine_tune``).

    Args:
        head_epochs: epochs of head-only training (``>= 1``).
        then: ``"layer4"``, ``"layer3"``, ``"layer2"``, ``"layer1"`` or ``"all"``.

    Example:
        >>> policy = TwoStage(head_epochs=1, then="all")
        >>> policy.trainable(0), len(policy.trainable(1))
        (('head',), 6)
    """

    def __init__(self, *, head_epochs: int = 1, then: str = "layer4", **common: Any) -> None:
        super().__init__(**common)
        self.head_epochs = check_int("head_epochs", head_epochs, low=1)
        self.then = check_choice("then", then, tuple(d for d in _DEPTHS if d != "head"))
        self._check_lr_mult()

    def _trainable(self, epoch: int) -> tuple[str, ...]:
        return _DEPTHS["head"] if epoch < self.head_epochs else _DEPTHS[self.then]

    def _ever(self) -> tuple[str, ...]:
        return _DEPTHS[self.then]

    def _params(self) -> dict[str, Any]:
        return {"head_epochs": self.head_epochs, "then": self.then}


@FREEZE_POLICIES.register("progressive")
class Progressive(FreezePolicy):
    """Unfreezing on a schedule ``{first epoch: deepest stage trained}`` (ULMFiT-style gradual unfreezing).

    Args:
        schedule: epochs (increasing, the first 0; integer strings as JSON writes keys are
            read as integers) mapped to ``"head"``, ``"layer4"`` ... ``"layer1"``, ``"all"``,
            each deeper than the one before. Default ``{0: "head", 3: "layer4", 6: "layer3"}``.

    Example:
        >>> policy = Progressive(schedule={0: "head", 2: "layer4"})
        >>> [policy.trainable(e) for e in (1, 2)]
        [('head',), ('layer4', 'head')]
    """

    def __init__(self, *, schedule: Mapping[Any, str] | None = None, **common: Any) -> None:
        super().__init__(**common)
        if schedule is None:
            schedule = {0: "head", 3: "layer4", 6: "layer3"}
        self.schedule = _check_schedule(schedule)
        self._check_lr_mult()

    def _trainable(self, epoch: int) -> tuple[str, ...]:
        depth = "head"
        for start, stage in self.schedule.items():
            if epoch < start:
                break
            depth = stage
        return _DEPTHS[depth]

    def _ever(self) -> tuple[str, ...]:
        return _DEPTHS[list(self.schedule.values())[-1]]

    def _params(self) -> dict[str, Any]:
        return {"schedule": dict(self.schedule)}


def _check_schedule(schedule: Any) -> dict[int, str]:
    """``{epoch: depth}`` with epochs increasing from 0 and depths deepening."""
    if not isinstance(schedule, Mapping) or not schedule:
        raise ValueError(f"schedule must be a non-empty {{epoch: stage}} dict; got {schedule!r}")
    out: dict[int, str] = {}
    order = list(_DEPTHS)
    for key, depth in schedule.items():
        epoch = int(key.strip()) if isinstance(key, str) and key.strip().isdigit() else key
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"schedule epochs must be ints >= 0; got {key!r}")
        check_choice(f"schedule[{key!r}]", depth, order)
        if out:
            last_epoch, last_depth = next(reversed(out.items()))
            if epoch <= last_epoch:
                raise ValueError(f"schedule epochs must increase; got {epoch} after {last_epoch}")
            if order.index(depth) <= order.index(last_depth):
                raise ValueError(
                    f"schedule stages must deepen (head, layer4, layer3, layer2, layer1, all); "
                    f"got {depth!r} at epoch {epoch} after {last_depth!r}"
                )
        out[int(epoch)] = depth
    if 0 not in out:
        raise ValueError(f"schedule must say what trains from epoch 0; got {dict(schedule)!r}")
    return out
