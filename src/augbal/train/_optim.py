"""Optimisers, learning-rate schedules (all with warm-up) and an LR finder, by spec.

``OPTIMIZERS`` holds optimiser *specs* (``sgd``, ``adamw``, ``adam``): a spec stores its
hyper-parameters and builds a ``torch.optim`` optimiser over param groups. ``SCHEDULES``
holds schedule specs (``constant``, ``cosine``, ``step``, ``onecycle``, ``plateau``) that
:func:`build_scheduler` turns into an :class:`LRSchedule` built on ``torch.optim.lr_scheduler``.

Granularity: every schedule moves the learning rate once per batch (``step_batch``), over
``epochs * steps_per_epoch`` steps, so warm-up and cosine decay are smooth and epoch
milestones (``step``) land exactly at the first batch of that epoch. ``plateau`` warms up
per batch too, then decides once per epoch (``step_epoch(val_metrics)``) on a named
validation metric. Steps past the planned total keep the final learning rate.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(2, 2)
    >>> opt = build_optimizer(layer.parameters(), {"name": "sgd", "lr": 0.1, "momentum": 0.9})
    >>> sched = build_scheduler(opt, {"name": "cosine", "warmup_epochs": 1}, epochs=3, steps_per_epoch=2)
    >>> for _ in range(6):
    ...     opt.step(); sched.step_batch()
    >>> [round(lr, 4) for lr in sched.history]
    [0.001, 0.0505, 0.1, 0.0854, 0.05, 0.0146]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from augbal._registry import Registry
from augbal._validation import check_bool, check_choice, check_int, check_real

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "LRFinderResult",
    "LRSchedule",
    "OptimizerSpec",
    "ScheduleSpec",
    "build_optimizer",
    "build_scheduler",
    "find_lr",
]


# --------------------------------------------------------------------------- optimisers


class _Spec:
    """``to_dict``, equality and ``repr`` from ``get_params()``: the optimiser and schedule specs'."""

    _registry: ClassVar[Registry[Any]]  # set once the registry exists

    def get_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}``."""
        return self._registry.spec(self, self.get_params())

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"


class OptimizerSpec(_Spec):
    """Base class of the optimiser specs: hyper-parameters now, a ``torch.optim`` optimiser later.

    ``build(param_groups)`` validates the groups, splits off the BatchNorm and bias
    parameters (``no_decay_bn_bias``: every parameter with ``ndim <= 1``, the usual
    heuristic: biases and normalisation weights) into groups with ``weight_decay=0``,
    then calls the hook ``_make(groups)``.

    Per-group learning rates are preserved: a group with ``"lr"`` keeps it (the freeze
    policies' ``param_groups`` set ``lr * lr_mult[stage]``), a group with ``"lr_mult"``
    gets ``lr * lr_mult``, any other group gets ``lr``. Other keys (``"stage"``) stay on
    the group, so a learning rate can be traced back to its stage.

    Args:
        lr: base learning rate.
        weight_decay: L2 (``sgd``, ``adam``) or decoupled (``adamw``) weight decay.
        no_decay_bn_bias: no weight decay on BatchNorm and bias parameters.
    """

    name: ClassVar[str] = ""
    default_weight_decay: ClassVar[float] = 0.0

    def __init__(self, *, lr: float = 1e-3, weight_decay: float | None = None, no_decay_bn_bias: bool = False) -> None:
        self.lr = check_real("lr", lr, low=0, low_open=True)
        wd = self.default_weight_decay if weight_decay is None else weight_decay
        self.weight_decay = check_real("weight_decay", wd, low=0)
        self.no_decay_bn_bias = check_bool("no_decay_bn_bias", no_decay_bn_bias)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain values."""
        return {"lr": self.lr, "weight_decay": self.weight_decay, "no_decay_bn_bias": self.no_decay_bn_bias}

    def build(self, param_groups: Any) -> Any:
        """A ``torch.optim`` optimiser over ``param_groups`` (parameters, or dicts with ``"params"``)."""
        return self._make(self._groups(param_groups))

    def _groups(self, param_groups: Any) -> list[dict[str, Any]]:
        import torch

        if isinstance(param_groups, torch.nn.Module):
            param_groups = param_groups.parameters()
        items = list(param_groups)
        if not items:
            raise ValueError("param_groups must hold at least one parameter or group; got none")
        if all(isinstance(p, torch.Tensor) for p in items):
            items = [{"params": items}]
        groups: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "params" not in item:
                raise ValueError(
                    f"param_groups must be parameters or dicts with 'params'; got {type(item).__name__} at position {i}"
                )
            group = dict(item)
            params = group["params"]
            group["params"] = [params] if isinstance(params, torch.Tensor) else list(params)
            if "lr" in group:
                group["lr"] = check_real(f"param group {i} lr", group["lr"], low=0)
            else:
                mult = check_real(f"param group {i} lr_mult", group.pop("lr_mult", 1.0), low=0)
                group["lr"] = self.lr * mult
            group.setdefault("weight_decay", self.weight_decay)
            if not self.no_decay_bn_bias:
                groups.append(group)
                continue
            decay = [p for p in group["params"] if p.ndim > 1]
            plain = [p for p in group["params"] if p.ndim <= 1]
            if decay:
                groups.append({**group, "params": decay})
            if plain:
                groups.append({**group, "params": plain, "weight_decay": 0.0, "no_decay": True})
        return groups

    def _make(self, groups: list[dict[str, Any]]) -> Any:
        raise NotImplementedError


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", base=OptimizerSpec)
"""The optimiser specs by name; ``build_optimizer(groups, OPTIMIZERS.from_spec(...).to_dict())``."""
OptimizerSpec._registry = OPTIMIZERS


@OPTIMIZERS.register("sgd")
class SGD(OptimizerSpec):
    """``torch.optim.SGD`` with momentum and Nesterov (L2 weight decay in the gradient).

    Example:
        >>> SGD(lr=0.1, momentum=0.9).to_dict()["momentum"]
        0.9
    """

    def __init__(
        self,
        *,
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float | None = None,
        no_decay_bn_bias: bool = False,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, no_decay_bn_bias=no_decay_bn_bias)
        self.momentum = check_real("momentum", momentum, low=0, high=1, high_open=True)
        self.nesterov = check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"momentum must be > 0 with nesterov=True; got {momentum!r}")

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "momentum": self.momentum, "nesterov": self.nesterov}

    def _make(self, groups: list[dict[str, Any]]) -> Any:
        import torch

        return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov)


class _AdamBase(OptimizerSpec):
    torch_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        lr: float = 1e-3,
        betas: Sequence[float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | None = None,
        no_decay_bn_bias: bool = False,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, no_decay_bn_bias=no_decay_bn_bias)
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        self.betas = tuple(check_real("betas", b, low=0, high=1, high_open=True) for b in betas)
        self.eps = check_real("eps", eps, low=0, low_open=True)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "betas": list(self.betas), "eps": self.eps}

    def _make(self, groups: list[dict[str, Any]]) -> Any:
        import torch

        return getattr(torch.optim, self.torch_name)(groups, lr=self.lr, betas=self.betas, eps=self.eps)


@OPTIMIZERS.register("adam")
class Adam(_AdamBase):
    """``torch.optim.Adam`` (L2 weight decay added to the gradient; default 0).

    Example:
        >>> Adam(lr=1e-3, weight_decay=1e-4).to_dict()["weight_decay"]
        0.0001
    """

    torch_name = "Adam"


@OPTIMIZERS.register("adamw")
class AdamW(_AdamBase):
    """``torch.optim.AdamW`` (decoupled weight decay; default 0.01 as torch's).

    Example:
        >>> AdamW().weight_decay
        0.01
    """

    torch_name = "AdamW"
    default_weight_decay = 0.01


def build_optimizer(param_groups: Any, spec: Any) -> Any:
    """A ``torch.optim`` optimiser over ``param_groups`` from an ``OPTIMIZERS`` spec.

    Args:
        param_groups: a module, an iterable of parameters, or a list of group dicts
            (``{"params": ..., "lr": ..., "stage": ...}`` as ``FreezePolicy.param_groups`` gives).
        spec: ``"adamw"``, ``{"name": "sgd", "lr": 0.1, ...}`` or an :class:`OptimizerSpec`.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
        >>> groups = [{"params": net[0].parameters(), "lr": 0.01, "stage": "head"}]
        >>> opt = build_optimizer(groups, {"name": "adamw", "lr": 0.1, "no_decay_bn_bias": True})
        >>> [(g["stage"], g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups]
        [('head', 0.01, 0.01, 1), ('head', 0.01, 0.0, 1)]
    """
    return OPTIMIZERS.from_spec(spec).build(param_groups)


# --------------------------------------------------------------------------- schedules


class ScheduleSpec(_Spec):
    """Base class of the schedule specs; :func:`build_scheduler` makes the running schedule.

    The hook ``_main(optimizer, total, warmup, steps_per_epoch)`` returns the torch
    scheduler for the steps after warm-up (``None``: a constant rate); warm-up is a
    ``LinearLR`` from ``warmup_start * lr`` to ``lr`` over ``warmup_epochs`` epochs of
    batches, chained in front by ``SequentialLR``.

    Args:
        warmup_epochs: epochs of linear warm-up (a float counts fractions of an epoch).
        warmup_start: the warm-up's first learning rate, as a fraction of the group's rate.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, warmup_epochs: float = 0, warmup_start: float = 0.01) -> None:
        self.warmup_epochs = check_real("warmup_epochs", warmup_epochs, low=0)
        self.warmup_start = check_real("warmup_start", warmup_start, low=0, high=1, low_open=True)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain values."""
        return {"warmup_epochs": self.warmup_epochs, "warmup_start": self.warmup_start}

    def _warmup_steps(self, epochs: int, steps_per_epoch: int) -> int:
        return int(round(self.warmup_epochs * steps_per_epoch))

    def _main(self, optimizer: Any, total: int, warmup: int, steps_per_epoch: int) -> Any:
        return None

    #: the validation metric decided on once per epoch (``plateau`` only)
    metric: str | None = None


SCHEDULES: Registry[ScheduleSpec] = Registry("schedule", base=ScheduleSpec)
"""The learning-rate schedule specs by name."""
ScheduleSpec._registry = SCHEDULES


@SCHEDULES.register("constant")
class Constant(ScheduleSpec):
    """A constant learning rate after the warm-up.

    Example:
        >>> Constant(warmup_epochs=2).to_dict()
        {'name': 'constant', 'warmup_epochs': 2.0, 'warmup_start': 0.01}
    """


@SCHEDULES.register("cosine")
class Cosine(ScheduleSpec):
    """Cosine annealing (``CosineAnnealingLR``) from the group's rate to ``min_lr_ratio`` times it.

    Example:
        >>> Cosine(min_lr_ratio=0.01).to_dict()["min_lr_ratio"]
        0.01
    """

    def __init__(self, *, min_lr_ratio: float = 0.0, warmup_epochs: float = 0, warmup_start: float = 0.01) -> None:
        super().__init__(warmup_epochs=warmup_epochs, warmup_start=warmup_start)
        self.min_lr_ratio = check_real("min_lr_ratio", min_lr_ratio, low=0, high=1)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "min_lr_ratio": self.min_lr_ratio}

    def _main(self, optimizer: Any, total: int, warmup: int, steps_per_epoch: int) -> Any:
        from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR

        if self.min_lr_ratio == 0:
            return CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
        # per-group floors (a stage's rate decays to its own fraction): a lambda, same curve
        t_max, floor = max(1, total - warmup), self.min_lr_ratio
        return LambdaLR(optimizer, _CosineFactor(t_max, floor))


@dataclass(frozen=True)
class _CosineFactor:
    """``floor + (1 - floor) * (1 + cos(pi * t / t_max)) / 2`` (picklable, for LambdaLR)."""

    t_max: int
    floor: float

    def __call__(self, t: int) -> float:
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * min(t, self.t_max) / self.t_max))


@SCHEDULES.register("step")
class Step(ScheduleSpec):
    """Multiply the rate by ``gamma`` at each epoch of ``milestones`` (``MultiStepLR``).

    Milestones count epochs from the start of the run (warm-up included), as in the
    LDAM-DRW code: ``milestones=[160, 180], gamma=0.1`` trains epochs 160-179 at a tenth
    of the rate and 180-199 at a hundredth.

    Example:
        >>> Step(milestones=[160, 180], gamma=0.1, warmup_epochs=5).to_dict()["milestones"]
        [160, 180]
    """

    def __init__(
        self,
        *,
        milestones: Sequence[int] = (30, 60, 90),
        gamma: float = 0.1,
        warmup_epochs: float = 0,
        warmup_start: float = 0.01,
    ) -> None:
        super().__init__(warmup_epochs=warmup_epochs, warmup_start=warmup_start)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise ValueError(f"milestones must be a list of increasing epochs >= 1; got {milestones!r}")
        ms = [check_int("milestones", m, low=1) for m in milestones]
        if any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError(f"milestones must be a list of increasing epochs >= 1; got {list(milestones)!r}")
        self.milestones = ms
        self.gamma = check_real("gamma", gamma, low=0, low_open=True)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "milestones": list(self.milestones), "gamma": self.gamma}

    def _main(self, optimizer: Any, total: int, warmup: int, steps_per_epoch: int) -> Any:
        from torch.optim.lr_scheduler import MultiStepLR

        # the main scheduler counts from the end of warm-up; milestones count from the run's start
        steps = [m * steps_per_epoch - warmup for m in self.milestones]
        if any(s <= 0 for s in steps):
            raise ValueError(
                f"milestones must come after the warm-up ({self.warmup_epochs:g} epochs); got {self.milestones}"
            )
        return MultiStepLR(optimizer, milestones=steps, gamma=self.gamma)


@SCHEDULES.register("onecycle")
class OneCycle(ScheduleSpec):
    """The one-cycle policy (``OneCycleLR``, Smith 2018), stepped per batch.

    Its warm-up is its rising phase: ``pct_start`` of the run, or ``warmup_epochs / epochs``
    when ``warmup_epochs`` is given (``warmup_start`` is then unused: the rise starts at
    ``peak / div_factor``). The peak of each group is the group's rate, or with ``max_lr``
    ``max_lr`` times the group's rate over the largest group rate (stage ratios kept).
    ``cycle_momentum`` (off by default, so a recipe's momentum is the momentum used)
    cycles SGD's momentum / Adam's beta1 between 0.85 and 0.95 as fastai does.

    Example:
        >>> OneCycle(max_lr=0.1).to_dict()["pct_start"]
        0.3
    """

    def __init__(
        self,
        *,
        max_lr: float | None = None,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        anneal: str = "cos",
        cycle_momentum: bool = False,
        warmup_epochs: float = 0,
        warmup_start: float = 0.01,
    ) -> None:
        super().__init__(warmup_epochs=warmup_epochs, warmup_start=warmup_start)
        self.max_lr = check_real("max_lr", max_lr, low=0, low_open=True, allow_none=True)
        self.pct_start = check_real("pct_start", pct_start, low=0, high=1, low_open=True, high_open=True)
        self.div_factor = check_real("div_factor", div_factor, low=1)
        self.final_div_factor = check_real("final_div_factor", final_div_factor, low=1)
        self.anneal = check_choice("anneal", anneal, ("cos", "linear"))
        self.cycle_momentum = check_bool("cycle_momentum", cycle_momentum)

    def get_params(self) -> dict[str, Any]:
        return {
            **super().get_params(),
            "max_lr": self.max_lr,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "anneal": self.anneal,
            "cycle_momentum": self.cycle_momentum,
        }

    def _warmup_steps(self, epochs: int, steps_per_epoch: int) -> int:
        return 0  # the rising phase is part of the cycle

    def _main(self, optimizer: Any, total: int, warmup: int, steps_per_epoch: int) -> Any:
        from torch.optim.lr_scheduler import OneCycleLR

        rates = [g["lr"] for g in optimizer.param_groups]
        top = max(rates)
        peaks = rates if self.max_lr is None or top == 0 else [self.max_lr * r / top for r in rates]
        pct = self.pct_start
        if self.warmup_epochs > 0:
            pct = min(0.999, self.warmup_epochs * steps_per_epoch / total)
        return OneCycleLR(
            optimizer,
            max_lr=peaks,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=self.anneal,
            cycle_momentum=self.cycle_momentum,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
        )


@SCHEDULES.register("plateau")
class Plateau(ScheduleSpec):
    """``ReduceLROnPlateau`` on a named validation metric, decided once per epoch after warm-up.

    "Halve the learning rate when validation loss stalls for 6 epochs" is
    ``{"name": "plateau", "metric": "loss", "factor": 0.5, "patience": 6}``. ``mode`` is
    ``"min"`` or ``"max"``; by default ``"min"`` for metrics whose name holds ``loss`` and
    for ``ece``, ``"max"`` otherwise (``balanced_accuracy``).

    Example:
        >>> Plateau(metric="balanced_accuracy").mode
        'max'
    """

    def __init__(
        self,
        *,
        metric: str = "loss",
        mode: str | None = None,
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
        warmup_epochs: float = 0,
        warmup_start: float = 0.01,
    ) -> None:
        super().__init__(warmup_epochs=warmup_epochs, warmup_start=warmup_start)
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be the name of a validation metric; got {metric!r}")
        self.metric = metric
        if mode is None:
            mode = "min" if ("loss" in metric or metric == "ece") else "max"
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor = check_real("factor", factor, low=0, high=1, low_open=True, high_open=True)
        self.patience = check_int("patience", patience, low=0)
        self.threshold = check_real("threshold", threshold, low=0)
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.min_lr = check_real("min_lr", min_lr, low=0)

    def get_params(self) -> dict[str, Any]:
        return {
            **super().get_params(),
            "metric": self.metric,
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
        }

    def _plateau(self, optimizer: Any) -> Any:
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        return ReduceLROnPlateau(
            optimizer,
            mode=self.mode,
            factor=self.factor,
            patience=self.patience,
            threshold=self.threshold,
            cooldown=self.cooldown,
            min_lr=self.min_lr,
        )


class LRSchedule:
    """A running schedule: ``step_batch()`` after every optimiser step, ``step_epoch(val)`` after validation.

    Built by :func:`build_scheduler`. ``history`` holds the learning rate of the first
    group at every batch (before its step), ``lrs`` the current rate of every group.

    Attributes:
        spec: the schedule spec.
        total_steps: ``epochs * steps_per_epoch``.
        warmup_steps: batches of warm-up.
    """

    def __init__(self, optimizer: Any, spec: ScheduleSpec, *, epochs: int, steps_per_epoch: int) -> None:
        from torch.optim.lr_scheduler import LinearLR, SequentialLR

        self.optimizer = optimizer
        self.spec = spec
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.warmup_steps = min(spec._warmup_steps(epochs, steps_per_epoch), self.total_steps)
        if spec.warmup_epochs > epochs:
            raise ValueError(f"warmup_epochs must be <= epochs ({epochs}); got {spec.warmup_epochs:g}")
        self.steps = 0
        self.epochs_done = 0
        self._epoch_start = 0  # the step count when the current epoch began
        self.history: list[float] = []
        warm = None
        if self.warmup_steps > 0:
            warm = LinearLR(optimizer, start_factor=spec.warmup_start, end_factor=1.0, total_iters=self.warmup_steps)
        main = spec._main(optimizer, self.total_steps, self.warmup_steps, steps_per_epoch)
        if warm is not None and main is not None:
            self._batch = SequentialLR(optimizer, [warm, main], milestones=[self.warmup_steps])
        else:
            self._batch = warm if warm is not None else main
        self._plateau = spec._plateau(optimizer) if isinstance(spec, Plateau) else None

    @property
    def lrs(self) -> list[float]:
        """The current learning rate of every param group."""
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def step_batch(self) -> None:
        """Advance one batch (call after ``optimizer.step()``); past the planned total, hold."""
        self.history.append(self.lrs[0])
        if self.steps >= self.total_steps:
            return
        self.steps += 1
        if self._batch is not None and (self._plateau is None or self.steps <= self.warmup_steps):
            self._batch.step()

    def step_epoch(self, val_metrics: Mapping[str, Any] | None = None) -> None:
        """End an epoch; ``plateau`` reads ``val_metrics[metric]`` (after the warm-up epochs only).

        Raises:
            KeyError: ``plateau`` without its metric in ``val_metrics`` (the message lists the keys).
        """
        self.epochs_done += 1
        started, self._epoch_start = self._epoch_start, self.steps
        if self._plateau is None or started < self.warmup_steps:
            return  # no schedule to decide, or an epoch that was (partly) warm-up
        metric = self.spec.metric
        if val_metrics is None or metric not in val_metrics:
            keys = ", ".join(sorted(val_metrics or {})) or "none"
            raise KeyError(f"the plateau schedule needs the validation metric {metric!r}; the metrics are: {keys}")
        value = check_real(f"validation metric {metric}", val_metrics[metric])
        self._plateau.step(value)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (torch schedulers' states, counters, history)."""
        return {
            "steps": self.steps,
            "epochs_done": self.epochs_done,
            "epoch_start": self._epoch_start,
            "history": list(self.history),
            "batch": None if self._batch is None else self._batch.state_dict(),
            "plateau": None if self._plateau is None else self._plateau.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` (the optimiser's own state is restored separately)."""
        self.steps = int(state["steps"])
        self.epochs_done = int(state["epochs_done"])
        self._epoch_start = int(state["epoch_start"])
        self.history = list(state["history"])
        if self._batch is not None and state["batch"] is not None:
            self._batch.load_state_dict(state["batch"])
        if self._plateau is not None and state["plateau"] is not None:
            self._plateau.load_state_dict(state["plateau"])

    def __repr__(self) -> str:
        return f"LRSchedule({self.spec!r}, steps={self.steps}/{self.total_steps})"


def build_scheduler(optimizer: Any, spec: Any, *, epochs: int, steps_per_epoch: int) -> LRSchedule:
    """The running :class:`LRSchedule` of a ``SCHEDULES`` spec over ``epochs * steps_per_epoch`` batches.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0)
        >>> sched = build_scheduler(opt, {"name": "step", "milestones": [2], "gamma": 0.5}, epochs=3, steps_per_epoch=1)
        >>> for epoch in range(3):
        ...     opt.step(); sched.step_batch(); sched.step_epoch({"loss": 1.0})
        >>> sched.history
        [1.0, 1.0, 0.5]
    """
    schedule = SCHEDULES.from_spec(spec)
    epochs = check_int("epochs", epochs, low=1)
    steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, low=1)
    return LRSchedule(optimizer, schedule, epochs=epochs, steps_per_epoch=steps_per_epoch)


# --------------------------------------------------------------------------- LR finder


@dataclass(frozen=True)
class LRFinderResult:
    """The sweep of :func:`find_lr`.

    Attributes:
        lrs: the learning rate of each step (of the group with the largest rate).
        losses: the smoothed (bias-corrected exponential moving average) loss of each step.
        raw_losses: the loss of each batch as computed.
        suggestion: the rate of steepest descent of the smoothed loss (``None`` with < 3 points).
        diverged: True when the sweep stopped because the loss blew up.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float] = field(default_factory=list)
    suggestion: float | None = None
    diverged: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for a JSON file beside the plot)."""
        return {
            "lrs": list(self.lrs),
            "losses": list(self.losses),
            "raw_losses": list(self.raw_losses),
            "suggestion": self.suggestion,
            "diverged": self.diverged,
        }

    def plot(self, path: Any) -> Any:
        """Write the loss-vs-learning-rate plot (log x axis, the suggestion marked) to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        try:
            ax.plot(self.lrs, self.losses, label="smoothed loss")
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_ylabel("loss")
            if self.suggestion is not None:
                ax.axvline(self.suggestion, color="tab:red", linestyle="--", label=f"suggestion {self.suggestion:.2e}")
            ax.legend()
            ax.set_title("LR finder (steepest descent)")
            fig.tight_layout()
            fig.savefig(path, dpi=100)
        finally:
            plt.close(fig)
        return path


def find_lr(
    model: Any,
    batches: Iterable[Any],
    loss_fn: Callable[[Any, Any], Any],
    optimizer: Any,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    smooth: float = 0.05,
    diverge: float = 4.0,
) -> LRFinderResult:
    """An LR range test as fastai's ``lr_find``; the model and optimiser are restored afterwards.

    For ``num_iter`` batches (cycling ``batches`` when it is shorter) the learning rate
    grows exponentially from ``start_lr`` to ``end_lr``, one optimiser step per batch.
    Groups keep their ratios: the sweep's rate is that of the group with the largest
    rate, the others are scaled with it. The loss is smoothed by an exponential moving
    average with weight ``smooth`` for the newest batch, bias-corrected as fastai does;
    the sweep stops when the smoothed loss exceeds ``diverge`` times its minimum (or is not
    finite). The suggestion is the rate where the smoothed loss falls fastest per unit
    of ``log(lr)`` (fastai's ``steep``: the minimum of the forward differences), over the
    points before divergence. The model's and optimiser's ``state_dict`` (weights,
    BatchNorm statistics, momentum buffers, rates), the model's train/eval mode and
    torch's CPU and CUDA generator states (dropout draws from them) are restored at the
    end, even after an error, so a run after ``find_lr`` is the run without it.

    Args:
        model: the network (called as ``model(inputs)``).
        batches: ``(inputs, targets)`` pairs (tensors are moved to the model's device).
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        optimizer: a ``torch.optim`` optimiser over the model's parameters.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Linear(4, 2)
        >>> data = [(torch.randn(16, 4), torch.randint(0, 2, (16,))) for _ in range(4)]
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> before = net.weight.detach().clone()
        >>> result = find_lr(net, data, torch.nn.functional.cross_entropy, opt, num_iter=30)
        >>> len(result.lrs) <= 30, result.suggestion is not None, torch.equal(net.weight, before)
        (True, True, True)
    """
    import torch

    start_lr = check_real("start_lr", start_lr, low=0, low_open=True)
    end_lr = check_real("end_lr", end_lr, low=0, low_open=True)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be > start_lr ({start_lr:g}); got {end_lr!r}")
    num_iter = check_int("num_iter", num_iter, low=2)
    smooth = check_real("smooth", smooth, low=0, high=1, low_open=True)
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    if not optimizer.param_groups:
        raise ValueError("optimizer must have at least one param group; got none")

    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optimizer.state_dict())
    was_training = model.training
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        return _sweep(model, batches, loss_fn, optimizer, start_lr, end_lr, num_iter, smooth, diverge, torch)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        model.train(was_training)
        torch.random.set_rng_state(cpu_rng)  # dropout drew from torch's generators: give them back
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _sweep(model, batches, loss_fn, optimizer, start_lr, end_lr, num_iter, smooth, diverge, torch) -> LRFinderResult:
    rates = [float(g["lr"]) for g in optimizer.param_groups]
    top = max(rates) or 1.0
    ratios = [r / top if max(rates) > 0 else 1.0 for r in rates]
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    schedule = start_lr * (end_lr / start_lr) ** (np.arange(num_iter) / (num_iter - 1))
    lrs: list[float] = []
    smoothed: list[float] = []
    raw: list[float] = []
    avg, best, diverged = 0.0, math.inf, False
    model.train()
    source = iter(batches)
    cached: list[Any] = []
    for i, lr in enumerate(schedule.tolist()):
        try:
            batch = next(source)
            cached.append(batch)
        except StopIteration:
            if not cached:
                raise ValueError("batches must yield at least one (inputs, targets) pair; got none") from None
            batch = cached[i % len(cached)]
        inputs, targets = batch[0], batch[1]
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.to(device)
        if isinstance(targets, torch.Tensor):
            targets = targets.to(device)
        for group, ratio in zip(optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(inputs), targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        loss.backward()
        optimizer.step()
        avg = smooth * value + (1 - smooth) * avg
        corrected = avg / (1 - (1 - smooth) ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smoothed.append(corrected)
        best = min(best, corrected)
        if corrected > diverge * best:
            diverged = True
            break
    return LRFinderResult(lrs, smoothed, raw, _steepest(lrs, smoothed, diverged), diverged)


def _steepest(lrs: list[float], losses: list[float], diverged: bool) -> float | None:
    """fastai's ``steep``: the rate at the most negative forward difference of loss over log(lr)."""
    if diverged:  # the last point is the blow-up, not part of the curve
        lrs, losses = lrs[:-1], losses[:-1]
    if len(lrs) < 3:
        return None
    lr, loss = np.asarray(lrs), np.asarray(losses)
    grads = np.diff(loss) / np.diff(np.log(lr))
    return float(lr[int(np.argmin(grads))])
