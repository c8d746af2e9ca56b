"""Checkpoint selection on validation, and weight averaging (EMA, SWA).

A :class:`Selector` sees each epoch's metrics once, through ``update(epoch, metrics)``,
and answers whether that epoch becomes the selected checkpoint (the loop then saves it).
Registered in :data:`SELECTIONS`:

- ``best(metric="balanced_accuracy", mode="auto")``: the epoch with the best value (ties:
  the earlier epoch keeps it).
- ``smoothed(metric=..., window=3, mode="auto")``: the epoch ending the best trailing mean
  of ``window`` epochs (ties: the *later* epoch, the "later, less volatile point"). Until
  ``window`` epochs have been seen the mean of the epochs so far competes; once a full
  window exists only full windows do.
- ``last``: every epoch replaces the previous one.
- ``ema(decay=0.999)`` and ``swa(last_k=5)``: weight averagers (:class:`EMA`, :class:`SWA`),
  registered here so a recipe names them the same way. Their ``update(epoch, metrics)``
  returns False (no epoch's checkpoint is the result); the loop recognises them by
  ``selector.averages`` (True) or ``isinstance(selector, Averager)``, calls
  ``update(model, epoch)`` to average, and at the end ``finalize(loader, device)`` (BatchNorm
  statistics recomputed) and ``averaged_model()``.

``metrics`` is the validation dict of :func:`augbal.train.evaluate_logits` or a whole
``metrics.jsonl`` row (``{"epoch": ..., "train": {...}, "val": {...}}``); a metric is a key
of it, a dotted path (``"val.loss"``, ``"train.loss_unweighted"``, ``"recall.2"``: the recall
of class 2), and a plain name is looked up in ``metrics["val"]`` when the row has one. The
name is checked at the first ``update`` (a KeyError lists the available names); a metric
under ``test`` is refused when the selector is built: checkpoints are chosen on validation.
``mode="auto"`` minimises metrics named ``loss...`` or ``ece`` and maximises the rest. A NaN
value never beats a number.
"""

from __future__ import annotations

import collections
import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, overload

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

from augbal._registry import Registry
from augbal._validation import check_choice, check_int, check_real, is_real
from augbal.train._model import STAGES, _unwrap, stage_modules

__all__ = ["EMA", "SELECTIONS", "SWA", "Averager", "Best", "Last", "Selector", "Smoothed"]

SELECTIONS: Registry[Selector] = Registry("selection")

_MODES = ("auto", "max", "min")


class Selector:
    """Base class of checkpoint selection: ``update`` validates, then calls the hook ``_update``.

    State learned from the updates has a trailing underscore; :meth:`state_dict` and
    :meth:`load_state_dict` carry it across a resumed run.
    """

    averages = False  # True for weight averagers: the loop averages instead of saving an epoch
    _tensor_attrs: tuple[str, ...] = ()  # learned attributes holding modules or weights, not plain data

    @property
    def selected_epoch(self) -> int | None:
        """The selected epoch so far (``None`` before the first selecting update)."""
        return getattr(self, "selected_epoch_", None)

    def update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        """Record ``epoch``'s metrics; True when this epoch becomes the selected checkpoint.

        Epochs must increase from one call to the next.

        Example:
            >>> best = SELECTIONS.from_spec("best")
            >>> [best.update(e, {"balanced_accuracy": v}) for e, v in enumerate([0.5, 0.7, 0.6])]
            [True, True, False]
            >>> best.reason()
            'epoch 1: best validation balanced_accuracy (0.7; highest of 3 epochs)'
        """
        self._check_epoch(epoch)
        if not isinstance(metrics, Mapping):
            raise ValueError(f"metrics must be a dict of metric values; got {type(metrics).__name__}")
        chosen = bool(self._update(epoch, metrics))
        self.last_epoch_ = epoch
        self.epochs_seen_ = getattr(self, "epochs_seen_", 0) + 1
        if chosen:
            self.selected_epoch_ = epoch
        return chosen

    def _check_epoch(self, epoch: Any) -> int:
        check_int("epoch", epoch, low=0)
        last = getattr(self, "last_epoch_", None)
        if last is not None and epoch <= last:
            raise ValueError(f"epoch must be > the last epoch updated ({last}); got {epoch}")
        return int(epoch)

    def _update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def reason(self) -> str:
        """One sentence: which epoch (or average) is the result, and why."""
        if self.selected_epoch is None:
            return f"no epoch selected yet ({self.name} selection)"  # type: ignore[attr-defined]
        return self._reason()

    def _reason(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ state and spec
    def state_dict(self) -> dict[str, Any]:
        """The learned state (attributes ending in ``_``) as plain data, for a run's checkpoint."""
        return {
            k: copy.deepcopy(v)
            for k, v in vars(self).items()
            if k.endswith("_") and not k.startswith("_") and k not in self._tensor_attrs
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run continues the same selection)."""
        for key, value in state.items():
            setattr(self, key, copy.deepcopy(value))

    def _params(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}``; ``SELECTIONS.from_spec`` rebuilds the selector.

        Example:
            >>> SELECTIONS.from_spec({"name": "smoothed", "metric": "loss"}).to_dict()
            {'name': 'smoothed', 'metric': 'loss', 'window': 3, 'mode': 'auto'}
        """
        return SELECTIONS.spec(self, self._params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"


SELECTIONS.base = Selector


# --------------------------------------------------------------------------- metric look-up


def _check_metric(metric: Any) -> str:
    if not isinstance(metric, str) or not metric.strip(". "):
        raise ValueError(f"metric must be a metric name such as 'balanced_accuracy' or 'val.loss'; got {metric!r}")
    if metric.split(".")[0].startswith("test"):
        raise ValueError(
            "metric must name a validation (or training) metric: checkpoints are selected on validation, "
            f"never on test; got {metric!r}"
        )
    return metric


#: the validation metrics of an epoch (``evaluate_logits``): one number each, or one per class
VAL_SCALARS = ("loss", "loss_weighted", "loss_uniform_prior", "accuracy", "balanced_accuracy", "macro_f1",
               "geometric_mean", "ece")  # fmt: skip
VAL_PER_CLASS = ("per_class_loss", "recall", "precision", "f1", "n")
TRAIN_SCALARS = ("loss", "loss_unweighted")


def check_run_metric(metric: Any) -> str:
    """``metric`` if it names a metric a training run records in its epoch rows: a validation
    metric (``balanced_accuracy``, ``val.loss``; per class ``recall.2``), a training loss
    (``train.loss``) or a learning rate (``lr.0``); a ValueError listing the names otherwise.

    Example:
        >>> check_run_metric("val.recall.2")
        'val.recall.2'
        >>> check_run_metric("bal_acc")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: metric must name a metric a run records (balanced_accuracy, loss, ...); got 'bal_acc'
    """
    import re

    _check_metric(metric)
    per_class = "|".join(VAL_PER_CLASS)
    val = rf"(?:{'|'.join(VAL_SCALARS)}|(?:{per_class})\.\d+)"
    pattern = rf"(?:(?:val|val_posthoc)\.)?{val}|train\.(?:{'|'.join(TRAIN_SCALARS)})|lr\.\d+"
    if re.fullmatch(pattern, metric) is None:
        scalars = ", ".join(("balanced_accuracy",) + tuple(v for v in VAL_SCALARS if v != "balanced_accuracy"))
        raise ValueError(
            f"metric must name a metric a run records ({scalars}, optionally as val.<name>; per class "
            f"{', '.join(f'{v}.<class index>' for v in VAL_PER_CLASS)}; train.loss, train.loss_unweighted); got {metric!r}"
        )
    return metric


def _flat(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalar entries of ``metrics`` by dotted path (dicts nested; lists of numbers by index)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, path + "."))
        elif isinstance(value, (list, tuple)):
            if all(is_real(v) or v is None for v in value):  # None: undefined (a class absent from validation)
                out.update({f"{path}.{i}": v for i, v in enumerate(value)})
        elif is_real(value) or value is None:
            out[path] = value
    return out


def _lookup(metrics: Mapping[str, Any], metric: str) -> float:
    """The value of ``metric`` in ``metrics`` (see the module doc); KeyError listing the names otherwise."""
    flat = _flat(metrics)
    for key in (metric, f"val.{metric}", metric[len("val.") :] if metric.startswith("val.") else metric):
        if key in flat:
            value = flat[key]
            return math.nan if value is None else float(value)
    names = sorted(k for k in flat if k not in ("epoch", "time_s") and not k.split(".")[0].startswith("test"))
    shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
    raise KeyError(f"metric {metric!r} is not in the epoch's metrics; the available metrics are: {shown}")


def _auto_mode(metric: str, mode: str) -> str:
    if mode != "auto":
        return mode
    last = metric.split(".")[-1] if not metric.split(".")[-1].isdigit() else metric.split(".")[-2]
    return "min" if last.startswith("loss") or last == "ece" else "max"


def _describe(metric: str) -> str:
    head, _, rest = metric.partition(".")
    if head == "val" and rest:
        return f"validation {rest}"
    if head == "train" and rest:
        return f"training {rest}"
    return f"validation {metric}"


def _better(new: float, old: float | None, mode: str, *, ties: bool) -> bool:
    """``new`` beats ``old`` (``ties``: an equal value beats it too); NaN never beats a number."""
    if old is None:
        return True
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    if new == old:
        return ties
    return new > old if mode == "max" else new < old


def _num(value: float) -> str:
    return f"{value:.3g}"


# --------------------------------------------------------------------------- selectors


@SELECTIONS.register("best")
class Best(Selector):
    """The epoch with the best value of ``metric`` (the earlier epoch on ties).

    Args:
        metric: the metric name or dotted path (see the module doc).
        mode: ``"max"``, ``"min"`` or ``"auto"`` (min for ``loss...`` and ``ece``).
    """

    def __init__(self, *, metric: str = "balanced_accuracy", mode: str = "auto") -> None:
        self.metric = _check_metric(metric)
        self.mode = check_choice("mode", mode, _MODES)

    def _update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        value = _lookup(metrics, self.metric)
        if _better(value, getattr(self, "best_value_", None), _auto_mode(self.metric, self.mode), ties=False):
            self.best_value_ = value
            return True
        return False

    def _reason(self) -> str:
        extreme = "highest" if _auto_mode(self.metric, self.mode) == "max" else "lowest"
        return (
            f"epoch {self.selected_epoch}: best {_describe(self.metric)} ({_num(self.best_value_)}; "
            f"{extreme} of {self.epochs_seen_} epochs)"
        )

    def _params(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode}


@SELECTIONS.register("smoothed")
class Smoothed(Selector):
    """The epoch ending the best trailing ``window``-epoch mean of ``metric`` (the later epoch on ties).

    Args:
        metric: the metric name or dotted path (see the module doc).
        window: epochs in the trailing mean (``>= 1``).
        mode: ``"max"``, ``"min"`` or ``"auto"``.

    Example:
        >>> s = Smoothed(metric="balanced_accuracy", window=2)
        >>> [s.update(e, {"balanced_accuracy": v}) for e, v in enumerate([0.5, 1.0, 0.5, 0.75, 0.75, 0.25])]
        [True, True, True, False, True, False]
        >>> s.reason()
        'epoch 4: best 2-epoch mean of validation balanced_accuracy (0.75; epochs 3-4, highest of 5 windows)'
    """

    def __init__(self, *, metric: str = "balanced_accuracy", window: int = 3, mode: str = "auto") -> None:
        self.metric = _check_metric(metric)
        self.window = check_int("window", window, low=1)
        self.mode = check_choice("mode", mode, _MODES)

    def _update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        value = _lookup(metrics, self.metric)
        recent = [*getattr(self, "recent_", []), [epoch, value]][-self.window :]
        self.recent_ = recent
        values = [v for _, v in recent]
        mean = math.nan if any(math.isnan(v) for v in values) else sum(values) / len(values)
        full = len(recent) == self.window
        mode = _auto_mode(self.metric, self.mode)
        if full:
            self.windows_ = getattr(self, "windows_", 0) + 1
            had_full = getattr(self, "best_full_", False)
            if not had_full or _better(mean, self.best_value_, mode, ties=True):
                self.best_value_, self.best_start_, self.best_full_ = mean, recent[0][0], True
                return True
            return False
        if _better(mean, getattr(self, "best_value_", None), mode, ties=True):
            self.best_value_, self.best_start_, self.best_full_ = mean, recent[0][0], False
            return True
        return False

    def _reason(self) -> str:
        extreme = "highest" if _auto_mode(self.metric, self.mode) == "max" else "lowest"
        epochs = f"epochs {self.best_start_}-{self.selected_epoch}" if self.best_start_ != self.selected_epoch else (
            f"epoch {self.selected_epoch}"
        )
        if self.best_full_:
            n = self.windows_
            return (
                f"epoch {self.selected_epoch}: best {self.window}-epoch mean of {_describe(self.metric)} "
                f"({_num(self.best_value_)}; {epochs}, {extreme} of {n} window{'s' if n != 1 else ''})"
            )
        return (
            f"epoch {self.selected_epoch}: best mean of {_describe(self.metric)} over the epochs so far "
            f"({_num(self.best_value_)}; {epochs}; the run is shorter than the {self.window}-epoch window)"
        )

    def _params(self) -> dict[str, Any]:
        return {"metric": self.metric, "window": self.window, "mode": self.mode}


@SELECTIONS.register("last")
class Last(Selector):
    """The last epoch.

    Example:
        >>> last = Last(); last.update(0, {}), last.update(1, {}), last.reason()
        (True, True, 'epoch 1: the last epoch')
    """

    def _update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        return True

    def _reason(self) -> str:
        return f"epoch {self.selected_epoch}: the last epoch"


# --------------------------------------------------------------------------- weight averaging


class Averager(Selector):
    """Base of the weight averagers: ``update(model, epoch)`` averages, ``update(epoch, metrics)`` returns False.

    ``averaged_model()`` is the averaged network (a plain module with the model's
    state_dict keys); ``finalize(loader, device)`` recomputes its BatchNorm statistics with
    ``torch.optim.swa_utils.update_bn``. ``selected_epoch`` is the last epoch averaged.
    """

    averages = True
    #: True when ``update(model, epoch)`` is meant for every optimiser step (EMA), False for epoch ends (SWA)
    per_step = False
    _tensor_attrs = ("module_", "template_", "snapshots_", "average_")

    @overload
    def update(self, epoch: int, metrics: Mapping[str, Any]) -> bool: ...

    @overload
    def update(self, model: nn.Module, epoch: int) -> None: ...  # type: ignore[overload-overlap]

    def update(self, first: Any, second: Any) -> bool | None:  # type: ignore[override]
        """``update(model, epoch)``: average ``model``'s weights in; ``update(epoch, metrics)``: False.

        Example:
            >>> net = nn.Linear(1, 1)
            >>> ema = EMA(decay=0.5)
            >>> ema.update(net, 0); ema.update(0, {"loss": 1.0})
            False
        """
        if isinstance(first, nn.Module):
            epoch = check_int("epoch", second, low=0)
            last = getattr(self, "averaged_epoch_", None)
            if last is not None and epoch < last:
                raise ValueError(f"epoch must be >= the last epoch averaged ({last}); got {epoch}")
            if self._average(_unwrap(first), epoch):
                self.first_epoch_ = getattr(self, "first_epoch_", epoch)
                self.averaged_epoch_ = self.selected_epoch_ = epoch
                self.bn_batches_ = None  # the statistics of a finalized average are stale again
            return None
        return super().update(first, second)

    def _update(self, epoch: int, metrics: Mapping[str, Any]) -> bool:
        return False

    def _average(self, model: nn.Module, epoch: int) -> bool:
        """Average ``model`` in; False when this epoch is not averaged."""
        raise NotImplementedError

    def averaged_model(self) -> nn.Module:
        """The averaged network (the same object until the next ``update``).

        Raises:
            RuntimeError: before the first ``update(model, epoch)``.
        """
        if getattr(self, "averaged_epoch_", None) is None:
            raise RuntimeError(
                f"{type(self).__name__} has averaged no weights yet: call update(model, epoch) first"
                + self._empty_hint()
            )
        return self._averaged()

    def _averaged(self) -> nn.Module:
        raise NotImplementedError

    def _empty_hint(self) -> str:
        return ""

    def finalize(
        self, loader: Iterable[Any], device: torch.device | str | None = None, *, frozen_through: str | None = None
    ) -> nn.Module:
        """Recompute the averaged model's BatchNorm statistics over ``loader``; returns the model.

        ``loader`` yields image batches or ``(images, labels, ...)`` tuples. The model is moved
        to ``device``. ``frozen_through`` (a freeze policy's ``frozen_through(epochs)``) keeps the
        statistics of the stages frozen for the whole run: training used them as they were.
        When that leaves no BatchNorm layer to recompute (head-only training), the loader is
        not read at all, so a run trained on cached features need not build an image loader.

        Example:
            >>> swa = SWA(last_k=2)
            >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
            >>> swa.update(net, 0); swa.update(net, 1)
            >>> model = swa.finalize([torch.ones(4, 2) * 3, torch.zeros(4, 2)])
            >>> [round(v, 2) for v in model[1].running_mean.tolist()] == [round(v, 2) for v in
            ...     (net[0](torch.cat([torch.ones(4, 2) * 3, torch.zeros(4, 2)])).mean(0).tolist())]
            True
        """
        model = self.averaged_model()
        if device is not None:
            model.to(device)
        if frozen_through is not None:
            check_choice("frozen_through", frozen_through, STAGES)
            keep = STAGES[: STAGES.index(frozen_through) + 1]
            kept = {
                m: {k: v.clone() for k, v in m.state_dict().items()}
                for stage, mods in stage_modules(model).items()
                if stage in keep
                for root in mods
                for m in root.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm)
            }
        else:
            kept = {}
        trained = [
            m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m not in kept
        ]
        if not trained:  # e.g. a head-only run: every BatchNorm is frozen, the loader is not read
            self.bn_batches_ = 0
            return model
        count = [0]

        def counted() -> Iterator[Any]:
            for batch in loader:
                count[0] += 1
                yield batch

        with torch.no_grad():
            update_bn(counted(), model, device=device)
        for module, state in kept.items():
            module.load_state_dict(state)
        self.bn_batches_ = count[0]
        return model

    def _bn_clause(self) -> str:
        n = getattr(self, "bn_batches_", None)
        if n is None:
            return "BatchNorm statistics not recomputed (finalize was not called)"
        if n == 0:
            return "BatchNorm statistics kept (no BatchNorm layer trained)"
        return f"BatchNorm statistics recomputed on {n} batch{'es' if n != 1 else ''}"

    def state_dict(self) -> dict[str, Any]:
        """Plain counters and the averaged weights (tensors, CPU): ``torch.save``-able with ``weights_only``."""
        state = super().state_dict()
        state.update(self._tensor_state())
        return state

    def load_state_dict(self, state: Mapping[str, Any], *, model: nn.Module | None = None) -> None:  # type: ignore[override]
        """Restore :meth:`state_dict`; ``model`` (same architecture) is the template of the averaged weights."""
        state = dict(state)
        tensors = {k: state.pop(k) for k in list(state) if k.startswith("weights")}
        super().load_state_dict(state)
        if tensors:
            if model is None:
                raise ValueError(f"{type(self).__name__}.load_state_dict needs model= (the network averaged)")
            self._load_tensor_state(tensors, _unwrap(model))

    def _tensor_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_tensor_state(self, tensors: dict[str, Any], model: nn.Module) -> None:
        raise NotImplementedError


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@SELECTIONS.register("ema")
class EMA(Averager):
    """An exponential moving average of the weights (``AveragedModel`` with ``get_ema_multi_avg_fn``).

    ``w_ema <- decay * w_ema + (1 - decay) * w`` at every ``update(model, epoch)`` (the first
    copies ``w``); BatchNorm buffers are averaged the same way (``use_buffers=True``) until
    ``finalize`` recomputes them. Call it after every optimiser step (``decay`` per step, as
    is usual for EMA) or once an epoch with a smaller ``decay``.

    Args:
        decay: the weight of the average so far, in ``[0, 1)``.

    Example:
        >>> net, ema = nn.Linear(1, 1, bias=False), EMA(decay=0.5)
        >>> for w in (4.0, 0.0, 2.0):
        ...     _ = net.weight.data.fill_(w); ema.update(net, 0)
        >>> ema.averaged_model().weight.item()  # 4 -> 0.5 * 4 + 0.5 * 0 -> 0.5 * 2 + 0.5 * 2
        2.0
    """

    per_step = True

    def __init__(self, *, decay: float = 0.999) -> None:
        self.decay = check_real("decay", decay, low=0, high=1, high_open=True)

    def _average(self, model: nn.Module, epoch: int) -> bool:
        if getattr(self, "module_", None) is None:
            self.module_ = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.module_.update_parameters(model)
        return True

    def _averaged(self) -> nn.Module:
        return self.module_.module

    def _reason(self) -> str:
        n = int(self.module_.n_averaged)
        return (
            f"exponential moving average of the weights (decay {self.decay:g}, {n} update{'s' if n != 1 else ''}, "
            f"epochs {self.first_epoch_}-{self.averaged_epoch_}); {self._bn_clause()}"
        )

    def _tensor_state(self) -> dict[str, Any]:
        module = getattr(self, "module_", None)
        return {} if module is None else {"weights": _cpu_state(module)}

    def _load_tensor_state(self, tensors: dict[str, Any], model: nn.Module) -> None:
        self.module_ = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True)
        self.module_.load_state_dict(tensors["weights"])

    def _params(self) -> dict[str, Any]:
        return {"decay": self.decay}


@SELECTIONS.register("swa")
class SWA(Averager):
    """Stochastic weight averaging: the uniform mean of the weights of the last ``last_k`` epochs.

    Call ``update(model, epoch)`` once at the end of every epoch. With ``last_k`` the
    averager keeps the last ``k`` epochs' weights on the CPU (k copies of the state_dict)
    and averages them with ``AveragedModel`` when asked, so it needs no run length; with
    ``start_epoch`` it averages every epoch from that one on, streaming (``last_k`` is then
    unused and recorded as None). BatchNorm buffers are the last epoch's until ``finalize``
    recomputes them.

    Args:
        last_k: the number of final epochs averaged (``>= 1``).
        start_epoch: the first epoch averaged instead.

    Example:
        >>> net, swa = nn.Linear(1, 1, bias=False), SWA(last_k=2)
        >>> for epoch, w in enumerate([1.0, 2.0, 4.0]):
        ...     _ = net.weight.data.fill_(w); swa.update(net, epoch)
        >>> swa.averaged_model().weight.item(), swa.reason().split(";")[0]
        (3.0, 'SWA: uniform average of the weights of the last 2 epochs (1-2)')
    """

    def __init__(self, *, last_k: int | None = 5, start_epoch: int | None = None) -> None:
        self.start_epoch = check_int("start_epoch", start_epoch, low=0, allow_none=True)
        if self.start_epoch is not None:
            self.last_k = None
        else:
            self.last_k = check_int("last_k", last_k, low=1, allow_none=True)
            if self.last_k is None:
                raise ValueError("SWA needs last_k (an int >= 1) or start_epoch; got neither")

    def _average(self, model: nn.Module, epoch: int) -> bool:
        if self.start_epoch is not None and epoch < self.start_epoch:
            return False
        self.average_ = None  # rebuilt on request
        if self.start_epoch is not None:
            if getattr(self, "module_", None) is None:
                self.module_ = AveragedModel(model)
            self.module_.update_parameters(model)
            self.module_.module.load_state_dict(_buffers(model), strict=False)
            self.averaged_epochs_ = [*getattr(self, "averaged_epochs_", []), epoch]
            return True
        if getattr(self, "template_", None) is None:
            self.template_ = copy.deepcopy(model)
        snapshots = getattr(self, "snapshots_", None)
        if snapshots is None or snapshots.maxlen != self.last_k:
            snapshots = self.snapshots_ = collections.deque(maxlen=self.last_k)
        snapshots.append((epoch, _cpu_state(model)))
        self.averaged_epochs_ = [e for e, _ in snapshots]
        return True

    def _empty_hint(self) -> str:
        return "" if self.start_epoch is None else f" (it averages the epochs from {self.start_epoch} on)"

    def _averaged(self) -> nn.Module:
        if self.start_epoch is not None:
            return self.module_.module
        if getattr(self, "average_", None) is None:
            averaged = AveragedModel(self.template_)
            scratch = copy.deepcopy(self.template_)
            for _, state in self.snapshots_:
                scratch.load_state_dict(state)
                averaged.update_parameters(scratch)
            averaged.module.load_state_dict(_buffers_of(self.snapshots_[-1][1], scratch), strict=False)
            self.average_ = averaged.module
        return self.average_

    def _reason(self) -> str:
        epochs = self.averaged_epochs_
        span = f"{epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"{epochs[0]}"
        which = f"the last {len(epochs)} epochs" if self.start_epoch is None else f"epochs from {self.start_epoch}"
        return f"SWA: uniform average of the weights of {which} ({span}); {self._bn_clause()}"

    def _tensor_state(self) -> dict[str, Any]:
        if self.start_epoch is not None:
            module = getattr(self, "module_", None)
            return {} if module is None else {"weights": _cpu_state(module)}
        snapshots = getattr(self, "snapshots_", None)
        return {} if not snapshots else {"weights_snapshots": [[e, s] for e, s in snapshots]}

    def _load_tensor_state(self, tensors: dict[str, Any], model: nn.Module) -> None:
        if "weights" in tensors:
            self.module_ = AveragedModel(model)
            self.module_.load_state_dict(tensors["weights"])
        else:
            self.template_ = copy.deepcopy(model)
            snapshots = ((int(e), s) for e, s in tensors["weights_snapshots"])
            self.snapshots_ = collections.deque(snapshots, maxlen=self.last_k)
            self.average_ = None

    def _params(self) -> dict[str, Any]:
        return {"last_k": self.last_k, "start_epoch": self.start_epoch}


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k in dict(model.named_buffers())}


def _buffers_of(state: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    names = dict(model.named_buffers())
    return {k: v for k, v in state.items() if k in names}

