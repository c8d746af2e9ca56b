"""Recipes: one validated description of a training run, loaded from YAML.

A :class:`Recipe` is a pydantic model (extra keys forbidden at every level, frozen) with
sections ``data``, ``model``, ``optim``, ``schedule``, ``cache``, ``strategy``,
``noise_floor``, ``log`` and the component specs ``freeze``, ``loss``, ``sampler``,
``augmentation``, ``eval_augmentation``, ``mixer``, ``selection``, ``averaging``. A
component is written as its registry spec: a bare name (``loss: focal``) or a mapping
``{name: focal, gamma: 2}``; the recipe stores the mapping form. ``optim`` and
``schedule`` are specs of :data:`augbal.train.OPTIMIZERS` / :data:`augbal.train.SCHEDULES`,
stored with every hyper-parameter written out (``recipe.optim["lr"]`` always exists, and
the saved recipe shows the weight decay and betas a run used).

Validation at load time, through the registries: the name must be registered, every
parameter must be one the component takes, and the component is built once to check
the values. Arguments a run supplies from the data (a sampler's ``labels``, a mixer's
``num_classes`` and ``class_counts``) may not appear in a spec; samplers and mixers are
built on stand-ins (``labels = [0, 1, ..., C-1]`` repeated 4 times, ``num_classes = C``)
when the number of classes ``C`` is known from the recipe (``data.classes``, a task,
the demo set), and checked by name and parameters only otherwise. Registries of the
train stage that are not importable yet are checked by shape only.

Paths (``data.source``, ``data.root``, ``data.extract_dir``, ``model.weights`` when it
is a file, ``cache.dir``) are resolved at load time, relative to the folder of the
recipe file (for a mapping: ``base_dir``, default the current directory), and stored
absolute, so the resolved recipe a run saves (:meth:`Recipe.to_yaml`) loads back equal
from anywhere. ``out`` is relative to the current directory, as a command's output.

Example:
    >>> recipe = load_recipe({"data": {"source": "demo"}, "loss": "focal"}, ["optim.lr=3e-4", "epochs=2"])
    >>> recipe.loss, recipe.optim["lr"], recipe.epochs
    ({'name': 'focal'}, 0.0003, 2)
    >>> load_recipe(recipe.to_dict()) == recipe
    True
    >>> load_recipe({"data": {"source": "demo"}}, ["optim.lr=-1"])
    Traceback (most recent call last):
    ...
    augbal.recipes.RecipeError: recipe key optim.lr: must be a number > 0; got -1
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from augbal._validation import ClassNamesNeededError, check_device

__all__ = [
    "CacheSection",
    "DataSection",
    "LogSection",
    "ModelSection",
    "Recipe",
    "RecipeError",
    "StrategySection",
    "check_device",
    "load_recipe",
    "recipe_hash",
    "yaml_error_text",
]


class RecipeError(ValueError):
    """A recipe that breaks a rule: ``"recipe key optim.lr: must be a number > 0; got -1"``.

    One line per broken rule; ``keys`` lists the key paths named.
    """

    def __init__(self, message: str, keys: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.keys = keys


def _fail(path: str, rule: str) -> RecipeError:
    return RecipeError(f"recipe key {path}: {rule}", (path,))


# --------------------------------------------------------------------------- value types


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not a boolean; got {value!r}")
    return value


def _strict_int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an int; got {value!r}")
    return value


def _three(value: Any) -> Any:
    if value is None:
        return None
    ok = isinstance(value, (list, tuple)) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok:
        raise ValueError(f"must be three numbers (one per RGB channel); got {value!r}")
    return tuple(float(v) for v in value)


def _spec(value: Any) -> Any:
    """A component spec in mapping form: a bare name becomes ``{"name": name}``."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        if not isinstance(value.get("name"), str) or not value.get("name"):
            raise ValueError(f"must be a registered name or a mapping with a 'name' key; got {dict(value)!r}")
        return dict(value)
    raise ValueError(f"must be a registered name or a mapping with a 'name' key; got {value!r}")


Real = Annotated[float, BeforeValidator(_not_bool)]
Int = Annotated[int, BeforeValidator(_strict_int)]
Triple = Annotated[tuple[float, float, float] | None, BeforeValidator(_three)]
Spec = Annotated[dict[str, Any], BeforeValidator(_spec)]
OptSpec = Annotated[dict[str, Any] | None, BeforeValidator(_spec)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- sections


class DataSection(_Section):
    """Where the images come from and how they split.

    Give ``source`` (an image folder of class sub-folders, a ``.csv`` / ``.jsonl``
    manifest, or ``"demo"``, the embedded demo set) or ``task`` (``"seedlike-3"``,
    ``"cifar10-lt"``) with ``root`` (an extracted CIFAR-10 jpg folder or its ``.tar.gz``).

    Attributes:
        splits: ``"split"`` (stratified ``val_fraction`` / ``test_fraction`` of ``source``)
            or ``"existing"`` (``source`` holds ``train/``, ``val/`` and optionally ``test/``).
        split_seed: seed of the split and skew draws; ``None`` follows the recipe's ``seed``.
        classes: a subset of classes, in label order.
        skew: keyword arguments of ``augbal.data.skew`` applied to the train side
            (``{ratio: 100, n_max: 450}``, ``{counts: {cat: 10, dog: 100}}``).
        ratio: cifar10-lt's imbalance ratio (default 100).
        task_options: keyword arguments of the task function (its counts; see ``augbal.train._data``).
        extract_dir: where a ``.tar.gz`` root is extracted (default: the augbal cache).
    """

    source: str | None = None
    task: Literal["seedlike-3", "cifar10-lt"] | None = None
    root: str | None = None
    ratio: Real | None = Field(None, ge=1)
    splits: Literal["split", "existing"] = "split"
    val_fraction: Real = Field(0.1, gt=0, lt=1)
    test_fraction: Real = Field(0.1, ge=0, lt=1)
    split_seed: Int | None = Field(None, ge=0)
    classes: list[str] | None = None
    skew: dict[str, Any] | None = None
    task_options: dict[str, Any] = Field(default_factory=dict)
    extract_dir: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> DataSection:
        if (self.source is None) == (self.task is None):
            raise _fail(
                "data",
                "needs exactly one of source (a folder, a manifest or 'demo') or task; "
                f"got source={self.source!r}, task={self.task!r}",
            )
        if self.task is not None:
            self._task_rules()
        else:
            self._source_rules()
        return self

    def _task_rules(self) -> None:
        task = self.task
        if self.root is None:
            raise _fail("data.root", f"is required with task {task!r} (the CIFAR-10 jpg folder or .tar.gz); got None")
        for key in ("classes", "skew"):
            value = getattr(self, key)
            if value is not None:
                rule = f"does not apply to task {task!r} (its classes and counts are fixed)"
                raise _fail(f"data.{key}", f"{rule}; got {value!r}")
        if self.ratio is not None and task != "cifar10-lt":
            raise _fail("data.ratio", f"applies to task 'cifar10-lt' only; got {self.ratio!r}")
        skip = ("root", "seed", "ratio", "extract_dir")  # set from the section itself
        _check_kwargs("data.task_options", self.task_options, _task_function(task), skip=skip)  # type: ignore[arg-type]

    def _source_rules(self) -> None:
        for key in ("root", "ratio"):
            value = getattr(self, key)
            if value is not None:
                rule = "applies to a task only (with source, the images are the source)"
                raise _fail(f"data.{key}", f"{rule}; got {value!r}")
        if self.task_options:
            raise _fail("data.task_options", f"applies to a task only; got {self.task_options!r}")
        # a resolved recipe (to_dict) states the defaults: only a value other than the default is a conflict
        given = sorted(k for k in {"val_fraction", "test_fraction"} & self.model_fields_set
                       if getattr(self, k) != type(self).model_fields[k].default)
        if self.splits == "existing" and given:
            rule = "applies to splits: split only (existing sides are used as they are)"
            raise _fail(f"data.{given[0]}", f"{rule}; got {getattr(self, given[0])!r}")
        if self.val_fraction + self.test_fraction >= 1:
            got = f"{self.val_fraction:g} + {self.test_fraction:g}"
            raise _fail("data.val_fraction", f"plus test_fraction must be < 1; got {got}")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise _fail("data.classes", f"must name each class once; got {self.classes!r}")
        if self.skew is not None:
            from augbal.data import skew

            _check_kwargs("data.skew", self.skew, skew, skip=("index", "exclude"))

    def num_classes(self) -> int | None:
        """The number of classes when the recipe alone tells it (a task, ``classes``, the demo set)."""
        if self.task is not None:
            from augbal.train import _data

            return len(_data.SEEDLIKE3_CLASSES if self.task == "seedlike-3" else _data.CIFAR10_CLASSES)
        if self.classes is not None:
            return len(self.classes)
        if self.source == "demo":
            from augbal.data import DEMO_COUNTS

            return len(DEMO_COUNTS)
        return None

    def class_names(self) -> list[str] | None:
        """The class names in label order when the recipe alone tells them (a task, ``classes``)."""
        if self.task is not None:
            from augbal.train import _data

            return list(_data.SEEDLIKE3_CLASSES if self.task == "seedlike-3" else _data.CIFAR10_CLASSES)
        return None if self.classes is None else list(self.classes)


class ModelSection(_Section):
    """The network: torchvision ``resnet18`` with a new head (see ``augbal.train.build_model``).

    Attributes:
        weights: ``"imagenet"`` (torchvision's cache), ``"none"`` (random init) or a state_dict path.
        download: let torchvision download the ImageNet weights when they are not cached.
        cifar_stem: 3x3 first convolution, no max-pool (32 px training from scratch).
        dropout: dropout before the head.
        head: ``"linear"`` or ``"cosine"``.
        input_size, mean, std: override the input size and normalisation the weights carry.
        channels_last: channels-last memory format (CUDA).
    """

    weights: str = "imagenet"
    download: bool = False
    cifar_stem: bool = False
    dropout: Real = Field(0.0, ge=0, lt=1)
    head: Literal["linear", "cosine"] = "linear"
    input_size: Int | None = Field(None, ge=1)
    mean: Triple = None
    std: Triple = None
    channels_last: bool = False

    @model_validator(mode="after")
    def _rules(self) -> ModelSection:
        if self.std is not None and min(self.std) <= 0:
            raise _fail("model.std", f"must be three numbers > 0; got {list(self.std)!r}")
        return self


class CacheSection(_Section):
    """Feature caching: ``enabled`` (``"auto"``: when the freeze policy allows it), ``views`` (K), ``dir``."""

    enabled: Literal["auto"] | bool = "auto"
    views: Int = Field(1, ge=1)
    dir: str | None = None


class PosthocSection(_Section):
    """Post-hoc logit adjustment to a target ``prior``: ``uniform``, ``em`` (Saerens et al. 2002) or ``val``.

    ``per_epoch`` adjusts every epoch's validation logits too (``val_posthoc`` in
    ``metrics.jsonl``) and lets the selection rule choose the epoch on them: the epoch whose
    *adjusted* model is best, not the epoch whose raw model is. Off, only the chosen model is
    adjusted (and kept when the adjustment wins on validation).
    """

    prior: Literal["uniform", "em", "val"] = "uniform"
    tau: Real = Field(1.0, ge=0)
    per_epoch: bool = False


class CrtSection(_Section):
    """Classifier re-training (cRT): retrain the head on frozen features with ``sampler``.

    ``lr`` ``None`` takes the recipe's optimiser rate.
    """

    epochs: Int = Field(10, ge=1)
    lr: Real | None = Field(None, gt=0)
    sampler: Spec = Field(default_factory=lambda: {"name": "class_aware"})


class TauNormSection(_Section):
    """tau-normalisation of the head's weights (Kang et al. 2020); ``tau`` ``None``: chosen on validation."""

    tau: Real | None = Field(None, ge=0)


class DrsSection(_Section):
    """Deferred re-sampling: plain shuffling until ``switch_epoch``, the recipe's sampler from then on."""

    switch_epoch: Int = Field(..., ge=1)


class StrategySection(_Section):
    """Strategies beyond the loss: ``posthoc``, ``crt``, ``tau_norm``, ``feature_resampler``, ``drs``."""

    posthoc: PosthocSection | None = None
    crt: CrtSection | None = None
    tau_norm: TauNormSection | None = None
    feature_resampler: OptSpec = None
    drs: DrsSection | None = None


class NoiseFloorSection(_Section):
    """The bootstrap of the validation-loss noise floor: ``n_boot`` resamples, ``seed``."""

    n_boot: Int = Field(1000, ge=1)
    seed: Int = Field(0, ge=0)


class LogSection(_Section):
    """What a run keeps besides ``metrics.jsonl``: ``tensorboard`` (``RUN/tensorboard/``, rank 0;
    needs ``pip install 'augbal[tensorboard]'``) and ``epoch_checkpoints`` (every epoch's weights
    as ``RUN/epochs/epoch-NNN.pt``, which ``evaluate(checkpoint="epoch:N")`` scores). Left out
    of :func:`recipe_hash`: neither changes what the run computes."""

    tensorboard: bool = False
    epoch_checkpoints: bool = False


def _device(value: Any) -> Any:
    try:
        return check_device("device", value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("device ")) from None


class Recipe(_Section):
    """A training run, validated; see the module docstring for the rules.

    ``tta: flip`` scores every validation image (each epoch, and every candidate) and, in
    ``evaluate``, every test image as the mean of the logits of the image under
    ``eval_augmentation`` and of its mirror image (``Mirrored``).

    Example:
        >>> r = Recipe(data={"source": "demo"}, sampler="class_aware")
        >>> r.sampler, r.selection["metric"], r.optim["name"]
        ({'name': 'class_aware'}, 'balanced_accuracy', 'adam')
    """

    data: DataSection
    model: ModelSection = Field(default_factory=ModelSection)
    freeze: Spec = Field(default_factory=lambda: {"name": "head"})
    loss: Spec = Field(default_factory=lambda: {"name": "ce"})
    sampler: OptSpec = None
    augmentation: Spec = Field(default_factory=lambda: {"name": "none"})
    eval_augmentation: Spec = Field(default_factory=lambda: {"name": "none"})
    tta: Literal["none", "flip"] = "none"
    mixer: OptSpec = None
    selection: Spec = Field(default_factory=lambda: {"name": "best", "metric": "balanced_accuracy"})
    averaging: OptSpec = None
    optim: Spec = Field(default_factory=lambda: {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}, validate_default=True)
    schedule: Spec = Field(default_factory=lambda: {"name": "constant"}, validate_default=True)
    epochs: Int = Field(20, ge=1)
    batch_size: Int = Field(128, ge=1)
    grad_clip: Real | None = Field(None, gt=0)
    cache: CacheSection = Field(default_factory=CacheSection)
    strategy: StrategySection = Field(default_factory=StrategySection)
    seed: Int = Field(0, ge=0)
    device: Annotated[str, BeforeValidator(_device)] = "auto"
    num_workers: Int | None = Field(None, ge=0)
    amp: Literal["auto", "bf16", "off"] = "auto"
    noise_floor: NoiseFloorSection = Field(default_factory=NoiseFloorSection)
    log: LogSection = Field(default_factory=LogSection)
    out: str | None = None

    @field_validator("optim", "schedule", mode="after")
    @classmethod
    def _expand(cls, spec: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The optimiser and schedule specs with every hyper-parameter written out (``to_dict()``)."""
        kind = _COMPONENT_FIELDS[info.field_name]  # type: ignore[index]
        _check_component(info.field_name, spec, kind, None)  # type: ignore[arg-type]
        return _registry(kind).from_spec(spec).to_dict()

    @model_validator(mode="after")
    def _components(self) -> Recipe:
        num_classes = self.data.num_classes()
        for path, spec, kind in self._specs():
            _check_component(path, spec, kind, num_classes, self.data.class_names())
        metric = self.selection.get("metric")
        if metric is not None:
            _check_selection_metric(metric)
        warm = self.schedule.get("warmup_epochs", 0)
        if isinstance(warm, (int, float)) and warm > self.epochs:
            raise _fail("schedule.warmup_epochs", f"must be <= epochs ({self.epochs}); got {warm:g}")
        if self.averaging is not None and self.averaging["name"] not in ("ema", "swa"):
            raise _fail("averaging.name", f"must be 'ema' or 'swa' (or averaging: null); got {self.averaging['name']!r}")
        drs = self.strategy.drs
        if drs is not None:
            if self.sampler is None:
                raise _fail("strategy.drs", "needs a sampler (the one used from switch_epoch on); got sampler: null")
            if drs.switch_epoch >= self.epochs:
                raise _fail("strategy.drs.switch_epoch", f"must be < epochs ({self.epochs}); got {drs.switch_epoch}")
        return self

    def _specs(self) -> list[tuple[str, dict[str, Any], str]]:
        """``(key path, spec, registry kind)`` of every component spec in the recipe."""
        out = [
            (key, getattr(self, key), kind)
            for key, kind in _COMPONENT_FIELDS.items()
            if key not in _EXPANDED and getattr(self, key) is not None
        ]
        if self.strategy.feature_resampler is not None:
            out.append(("strategy.feature_resampler", self.strategy.feature_resampler, "feature_resampler"))
        if self.strategy.crt is not None:
            out.append(("strategy.crt.sampler", self.strategy.crt.sampler, "sampler"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain data (every default filled in)."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved recipe as YAML; ``load_recipe`` of it gives an equal recipe."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True)


#: top-level keys that do not change what a run computes (left out of its hash)
_UNHASHED = ("log",)
#: options added after runs were first keyed by :func:`recipe_hash`: hashed only when set, so
#: the finished runs of a grid keep their keys when augbal gains an option they do not use
_HASHED_WHEN_SET: dict[tuple[str, ...], Any] = {("tta",): "none", ("strategy", "posthoc", "per_epoch"): False}


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's canonical JSON (sorted keys, no spaces) less ``log``: the key of a run.

    Options added since runs were first keyed (``tta``, ``strategy.posthoc.per_epoch``) count
    only when set, so upgrading augbal keeps the keys of a grid's finished runs.

    ``log`` says only how a run is reported, not what it computes: turning TensorBoard on
    keeps a benchmark grid's finished runs and lets a resumed run start logging.

    Paths are stored absolute, so the same recipe file checked out in two places hashes
    differently: a hash keys runs on one machine (a benchmark grid), not across machines.

    Example:
        >>> a = load_recipe({"data": {"source": "demo"}, "loss": "ce"})
        >>> b = load_recipe({"loss": {"name": "ce"}, "data": {"source": "demo"}})
        >>> recipe_hash(a) == recipe_hash(b), len(recipe_hash(a))
        (True, 64)
    """
    data = {k: v for k, v in recipe.to_dict().items() if k not in _UNHASHED}
    for *parents, key in _HASHED_WHEN_SET:
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and key in node and node[key] == _HASHED_WHEN_SET[(*parents, key)]:
            del node[key]
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- components

_COMPONENT_FIELDS: dict[str, str] = {
    "freeze": "freeze",
    "loss": "loss",
    "sampler": "sampler",
    "augmentation": "policy",
    "eval_augmentation": "policy",
    "mixer": "mixer",
    "selection": "selection",
    "averaging": "selection",
    "optim": "optimizer",
    "schedule": "schedule",
}

# specs stored with every parameter written out (checked and expanded by Recipe._expand)
_EXPANDED = ("optim", "schedule")

# kind -> (module, registry name, runtime arguments a run supplies, never in a spec)
_REGISTRIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "freeze": ("augbal.train._freeze", "FREEZE_POLICIES", ()),
    "loss": ("augbal.train._losses", "LOSSES", ()),
    "sampler": ("augbal.sampling", "SAMPLERS", ("labels", "num_replicas", "rank")),
    "policy": ("augbal.augment", "POLICIES", ()),
    "mixer": ("augbal.augment", "MIXERS", ("num_classes", "class_counts", "generator")),
    "selection": ("augbal.train._select", "SELECTIONS", ()),
    "optimizer": ("augbal.train._optim", "OPTIMIZERS", ()),
    "schedule": ("augbal.train._optim", "SCHEDULES", ()),
    "feature_resampler": ("augbal.train._features", "FEATURE_RESAMPLERS", ()),
}


def _registry(kind: str) -> Any:
    """The registry of ``kind``, or ``None`` while its module has not landed."""
    module, attr, _ = _REGISTRIES[kind]
    try:
        return getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return None
        raise


def _parameters(factory: Callable[..., Any]) -> tuple[list[str], bool]:
    """Keyword parameters of ``factory`` and whether it takes any other keyword.

    A class whose ``__init__`` passes ``**kwargs`` on to its parent's gets the parameters
    of every ``__init__`` up its MRO that does, so ``FreezePolicy(**common)`` subclasses list
    ``lr_mult``, ``reinit``, ... and still refuse a misspelt key.
    """
    inits = [factory]
    if isinstance(factory, type):
        inits = [c.__dict__["__init__"] for c in factory.__mro__ if "__init__" in c.__dict__ and c is not object]
    names: list[str] = []
    for init in inits or [factory]:
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return names, True
        var = False
        for p in sig.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                var = True
            elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names:
                names.append(p.name)
        if not var:
            return names, False
    return names, True


def _check_kwargs(path: str, given: Mapping[str, Any], factory: Callable[..., Any], *, skip: Iterable[str] = ()) -> None:
    names, var = _parameters(factory)
    valid = [n for n in names if n not in set(skip)]
    for key in given:
        if not var and key not in valid:
            raise _fail(f"{path}.{key}", f"unknown key; valid keys at {path}: {', '.join(valid) or 'none'}")


#: the number of classes samplers are built on when the recipe does not tell it (rules that
#: depend on the real number, such as classes_per_batch, are checked when the data is scanned)
_STAND_IN_CLASSES = 64


def _check_selection_metric(metric: Any) -> None:
    """``selection.metric`` must name a metric a run records (``augbal.train._select.run_metric_names``)."""
    try:
        from augbal.train._select import check_run_metric
    except ModuleNotFoundError:  # pragma: no cover - the train stage has not landed
        return
    try:
        check_run_metric(metric)
    except ValueError as exc:
        raise _fail("selection.metric", str(exc).removeprefix("metric ")) from None


def _check_component(
    path: str, spec: dict[str, Any], kind: str, num_classes: int | None, classes: list[str] | None = None
) -> None:
    registry = _registry(kind)
    if registry is None:
        return  # that registry has not landed yet: the spec's shape was checked
    name = spec["name"]
    if name not in registry:
        raise _fail(f"{path}.name", f"must be a registered {registry.kind} ({', '.join(registry.names())}); got {name!r}")
    params = {k: v for k, v in spec.items() if k != "name"}
    runtime = _REGISTRIES[kind][2]
    for key in params:
        if key in runtime:
            raise _fail(f"{path}.{key}", f"is supplied by the run from the data, not by the recipe; got {params[key]!r}")
    factory = registry.get(name)
    names, var = _parameters(factory)
    valid = [n for n in names if n not in runtime]
    for key in params:
        if not var and key not in valid:
            raise _fail(f"{path}.{key}", f"unknown key; valid keys at {path} ({registry.kind} {name!r}): {', '.join(valid) or 'none'}")
    extra: dict[str, Any] = {}
    built_spec: Any = spec
    try:
        if kind in ("sampler", "loss", "policy") and classes is not None:
            from augbal.train import _strategies

            if kind == "policy":
                built_spec = _strategies.policy_with_data(spec, classes=classes, counts=None)
            else:
                built_spec = _strategies.component_with_classes(kind, spec, classes, path=path)
        if kind == "sampler" or kind == "mixer":
            import numpy as np

            c = num_classes
            if c is None and kind == "sampler":
                # the number of classes is not known: rules of the weighting and sampling_strategy
                # that need the data wait for it; the other values are checked on stand-in labels
                _check_weighting(path, spec)
                built_spec = {k: v for k, v in spec.items() if k not in ("weighting", "sampling_strategy")}
                c = _STAND_IN_CLASSES
            if kind == "sampler":
                extra["labels"] = np.tile(np.arange(c), 4)
            else:
                c = 2 if c is None else c
                extra["num_classes"] = c
                if "class_counts" in names:
                    extra["class_counts"] = [4] * c
        built = registry.from_spec(built_spec, **extra)
        if kind == "sampler":
            len(built)  # some rules are checked when an epoch is planned (classes_per_batch)
    except RecipeError:
        raise
    except ClassNamesNeededError:
        if classes is None:
            return  # class names as keys: checked against the data's classes when it is scanned
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise _translate_build_error(path, params, exc) from None


def _check_weighting(path: str, spec: Mapping[str, Any]) -> None:
    """A sampler's ``weighting`` resolved without the data (class names wait for it)."""
    if spec.get("weighting") is None:
        return
    from augbal.sampling import resolve_weighting

    try:
        resolve_weighting(spec["weighting"])
    except ClassNamesNeededError:
        pass  # class names as keys: checked against the data's classes when it is scanned
    except ValueError as exc:
        raise _translate_build_error(path, {"weighting": spec["weighting"]}, exc) from None


def _translate_build_error(path: str, params: Mapping[str, Any], exc: Exception) -> RecipeError:
    """``"gamma must be ...; got -1"`` from a component -> ``"recipe key loss.gamma: must be ...; got -1"``."""
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    for key in sorted(params, key=len, reverse=True):
        if message.startswith(f"{key} "):
            return _fail(f"{path}.{key}", message[len(key) + 1 :])
    unknown = re.match(r"unknown class ('[^']*'|\S+);", message)  # the parameter whose table names it
    if unknown is not None:
        for key, value in params.items():
            if isinstance(value, Mapping) and any(repr(k) == unknown.group(1) or str(k) == unknown.group(1) for k in value):
                return _fail(f"{path}.{key}", message)
    return _fail(path, message)


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``3e-4`` and ``1e5`` as floats (YAML 1.1 needs a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_error_text(exc: Exception) -> str:
    """A YAML parser's error on one line: where, then what (PyYAML's own text spans several).

    Example:
        >>> try:
        ...     yaml.safe_load("foo: [\\n")
        ... except yaml.YAMLError as exc:
        ...     print(yaml_error_text(exc))
        line 2, column 1: expected the node content, but found '<stream end>' (while parsing a flow node)
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RecipeError(f"{where}: not valid YAML: {yaml_error_text(exc)}") from None


def load_recipe(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Iterable[str] = (),
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> Recipe:
    """Load, override and validate a recipe.

    Args:
        source: a YAML file, or a mapping (a parsed recipe, ``Recipe.to_dict()``).
        overrides: ``"key.sub=value"`` strings, the value parsed as YAML
            (``"optim.lr=3e-4"``, ``"loss={name: focal, gamma: 2}"``, ``"sampler=null"``).
            A key unknown at its level is an error listing the valid keys; inside a
            component spec any key may be set (the component's parameters are checked next).
        base_dir: the folder relative paths of a mapping are resolved against
            (default: the current directory; a file's own folder for a file).

    Raises:
        RecipeError: naming the key, the rule and the value (one line per broken rule);
            a missing or unreadable file, or invalid YAML.

    Example:
        >>> load_recipe({"data": {"source": "demo"}}, ["optim.momentum=0.9"])
        Traceback (most recent call last):
        ...
        augbal.recipes.RecipeError: recipe key optim.momentum: unknown key; valid keys at optim (optimizer 'adam'): lr, betas, eps, weight_decay, no_decay_bn_bias
    """
    if isinstance(source, Mapping):
        raw: Any = _plain(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        where = "recipe"
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"recipe file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
        raw = _yaml(text, str(path))
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
        where = str(path)
        if raw is None:
            raw = {}
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: a recipe is a mapping of keys (data, model, loss, ...); got {type(raw).__name__}")
    if isinstance(overrides, str):
        overrides = [overrides]
    for item in overrides:
        _apply_override(raw, item)
    _resolve_paths(raw, base)
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise _translate(exc) from None


def _plain(value: Any) -> Any:
    """A deep copy of nested mappings/lists as dicts/lists (overrides edit it in place)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_COMPONENT_PATHS = set(_COMPONENT_FIELDS) | {"strategy.feature_resampler", "strategy.crt.sampler"}


def _section_fields(path: tuple[str, ...]) -> list[str] | None:
    """The valid keys at ``path`` of the schema; ``None`` inside a component spec or free mapping."""
    if ".".join(path) in _COMPONENT_PATHS:
        return None
    model: Any = Recipe
    for key in path:
        field = model.model_fields.get(key)
        if field is None:
            return None
        sub = _section_type(field.annotation)
        if sub is None:
            return None
        model = sub
    return list(model.model_fields)


def _default(path: tuple[str, ...]) -> Any:
    """The schema's default value at ``path`` as plain data (``None`` when there is none)."""
    model: Any = Recipe
    for key in path[:-1]:
        field = model.model_fields.get(key)
        model = None if field is None else _section_type(field.annotation)
        if model is None:
            return None
    field = model.model_fields.get(path[-1])
    if field is None or field.is_required():
        return None
    value = field.get_default(call_default_factory=True)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else _plain(value)


def _section_type(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None) or ()
    for candidate in (annotation, *args):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if not isinstance(item, str) or "=" not in item:
        raise RecipeError(f"an override is KEY=VALUE (optim.lr=3e-4); got {item!r}")
    key, _, text = item.partition("=")
    parts = tuple(p.strip() for p in key.strip().split("."))
    if not all(parts):
        raise RecipeError(f"an override key is dotted names (optim.lr); got {key!r}")
    value = _yaml(text, f"override {key.strip()}")
    node = raw
    for depth, part in enumerate(parts):
        here = parts[:depth]
        valid = _section_fields(here)
        if valid is not None and part not in valid:
            where = ".".join(here) or "the top level"
            raise _fail(".".join(parts[: depth + 1]), f"unknown key; valid keys at {where}: {', '.join(valid)}")
        if depth == len(parts) - 1:
            node[part] = value
            return
        child = node.get(part)
        if child is None and part not in node:
            child = _default(parts[: depth + 1])  # a component's default spec gains a parameter
        if isinstance(child, str) and ".".join(parts[: depth + 1]) in _COMPONENT_PATHS:
            child = {"name": child}  # a bare name gains a parameter
        elif not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child


_PATH_KEYS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("data", "source", ("demo",)),
    ("data", "root", ()),
    ("data", "extract_dir", ()),
    ("model", "weights", ("imagenet", "none")),
    ("cache", "dir", ()),
)


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    for section, key, keywords in _PATH_KEYS:
        node = raw.get(section)
        if not isinstance(node, dict):
            continue
        value = node.get(key)
        if isinstance(value, str) and value and value not in keywords:
            p = Path(os.path.expanduser(value))
            node[key] = str(p if p.is_absolute() else (base / p).resolve())


_SIMPLE_RULES = {
    "int_type": "must be an int",
    "int_parsing": "must be an int",
    "int_from_float": "must be an int",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "missing": "is required",
}


def _translate(exc: ValidationError, prefix: tuple[str, ...] = ()) -> RecipeError:
    """One ``recipe key PATH: RULE; got VALUE`` line per pydantic error (never pydantic's raw dump).

    ``prefix`` is the key path of the model validated (``("data",)`` for a lone ``DataSection``).
    """
    lines, keys = [], []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(str(p) for p in err["loc"])
        path = ".".join(loc) or "recipe"
        cause = (err.get("ctx") or {}).get("error")
        kind, value = err["type"], err.get("input")
        if isinstance(cause, RecipeError):
            lines.append(str(cause))
            keys.extend(cause.keys)
            continue
        if kind == "extra_forbidden":
            valid = _section_fields(loc[:-1]) or []
            where = ".".join(loc[:-1]) or "the top level"
            rule = f"unknown key; valid keys at {where}: {', '.join(valid)}"
        elif kind == "value_error" and cause is not None:
            rule = str(cause)
        elif kind == "missing":
            rule = "is required"
        elif kind in _SIMPLE_RULES:
            rule = f"{_SIMPLE_RULES[kind]}; got {value!r}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
            bound = next(iter(err["ctx"].values()))
            bound = f"{bound:g}" if isinstance(bound, float) else bound
            rule = f"must be {op} {bound}; got {value!r}"
        elif kind == "literal_error":
            rule = f"must be {err['ctx']['expected']}; got {value!r}"
        else:
            msg = err["msg"]
            rule = f"{msg[:1].lower()}{msg[1:]}; got {value!r}"
        lines.append(f"recipe key {path}: {rule}")
        keys.append(path)
    return RecipeError("\n".join(lines), tuple(keys))


def _task_function(task: str) -> Callable[..., Any]:
    from augbal.train import _data

    return {"seedlike-3": _data.seedlike3_task, "cifar10-lt": _data.cifar10_lt_task}[task]
