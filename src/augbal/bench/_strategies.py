"""Strategies: small named recipe fragments a benchmark grid compares.

A strategy changes a base recipe (plain data, as loaded from YAML) in the few keys that make
it what it is: the loss, the sampler, the augmentation, a post-training step. Fragments that
depend on the run (DRW's switch epoch is 80 % of the epochs) are functions of the base recipe.
``"a+b"`` combines strategies; two strategies setting the same key differently is an error.
Users add their own with :func:`register_strategy`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from .._registry import Registry

__all__ = ["STRATEGIES", "Strategy", "apply_strategy", "register_strategy", "resolve_strategy"]

Fragment = Union[Mapping[str, Any], Callable[[Mapping[str, Any]], Mapping[str, Any]]]


@dataclass(frozen=True)
class Strategy:
    """A named recipe fragment.

    Args:
        name: the registered name (``"wce:inverse"``, ``"ldam-drw+oversample-augment"``).
        fragment: nested overrides of the recipe, or a function of the base recipe returning them.
        description: one line for ``augbal bench --help`` and the report.

    Example:
        >>> s = Strategy("ce", {"loss": "ce"}, "plain cross-entropy")
        >>> s.overrides({"epochs": 3}), s.to_dict()
        ({'loss': 'ce'}, {'name': 'ce'})
    """

    name: str
    fragment: Fragment
    description: str = ""

    def overrides(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The fragment for ``base`` (a deep copy: callers may change it)."""
        data = self.fragment(base) if callable(self.fragment) else self.fragment
        return copy.deepcopy(dict(data))

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ...}``: a strategy is named, not parameterised (combine or register a new one)."""
        return {"name": self.name}


STRATEGIES: Registry[Strategy] = Registry("strategy", base=Strategy)


def register_strategy(name: str, fragment: Fragment, description: str = "") -> Strategy:
    """Register a strategy under ``name`` (``+`` is reserved for combinations).

    Example:
        >>> s = register_strategy("ce:low-lr", {"loss": "ce", "optim": {"lr": 3e-4}}, "cross-entropy, lr 3e-4")
        >>> resolve_strategy("ce:low-lr") == s
        True
    """
    if not isinstance(name, str) or not name or "+" in name:
        raise ValueError(f"strategy names must be non-empty strings without '+'; got {name!r}")
    strategy = Strategy(name, fragment, description)
    STRATEGIES.register(name)(lambda: strategy)
    return strategy


def _merge(into: dict[str, Any], extra: Mapping[str, Any], *, names: tuple[str, str], path: str = "") -> None:
    for key, value in extra.items():
        where = f"{path}.{key}" if path else key
        if key not in into:
            into[key] = copy.deepcopy(value)
        elif isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value, names=names, path=where)
        elif into[key] != value:
            raise ValueError(
                f"strategies {names[0]!r} and {names[1]!r} cannot be combined: both set recipe key {where} "
                f"({into[key]!r} vs {value!r})"
            )


def resolve_strategy(spec: Any) -> Strategy:
    """A strategy from its name, ``{"name": ...}``, a ``"a+b"`` combination, or a Strategy.

    Example:
        >>> s = resolve_strategy("ldam-drw+oversample")
        >>> s.name, sorted(s.overrides({"epochs": 10}))
        ('ldam-drw+oversample', ['loss', 'sampler'])
    """
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, Mapping):
        if set(spec) != {"name"}:
            raise ValueError(f"a strategy spec is {{'name': ...}} only; got {dict(spec)!r}")
        spec = spec["name"]
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"a strategy must be a registered name; got {spec!r}")
    parts = spec.split("+")
    if len(parts) == 1:
        return STRATEGIES.build(spec)
    members = [STRATEGIES.build(p.strip()) for p in parts]

    def combined(base: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        owner: dict[str, str] = {}  # top-level recipe key -> the member that set it first
        for member in members:
            for key, value in member.overrides(base).items():
                owner.setdefault(key, member.name)
                _merge(out, {key: value}, names=(owner[key], member.name))
        return out

    description = " + ".join(m.description or m.name for m in members)
    return Strategy("+".join(m.name for m in members), combined, description)


def apply_strategy(base: Mapping[str, Any], spec: Any) -> dict[str, Any]:
    """``base`` (a recipe as plain data) with the strategy's fragment merged in (fragment wins).

    Example:
        >>> apply_strategy({"loss": "ce", "optim": {"lr": 1e-3}}, "wce:inverse")["loss"]
        {'name': 'wce', 'weighting': 'balanced'}
    """
    strategy = resolve_strategy(spec)
    out = copy.deepcopy(dict(base))
    _override(out, strategy.overrides(base))
    return out


def _override(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and "name" not in value:
            _override(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _epochs(base: Mapping[str, Any]) -> int:
    return int(base.get("epochs", 20))


def _switch(base: Mapping[str, Any]) -> int:
    """DRW/DRS switch epoch: 80 % of the run (160 of 200 in Cao et al., 2019)."""
    return max(1, int(round(0.8 * _epochs(base))))


_BALANCED_SAMPLER = {"name": "class_aware", "weighting": "balanced"}

for _name, _fragment, _description in (
    ("ce", {"loss": "ce"}, "cross-entropy, plain shuffling"),
    ("wce:inverse", {"loss": {"name": "wce", "weighting": "balanced"}}, "cross-entropy weighted by inverse class frequency"),
    ("wce:sqrt", {"loss": {"name": "wce", "weighting": "sqrt"}}, "cross-entropy weighted by inverse square-root frequency"),
    ("wce:effective", {"loss": {"name": "wce", "weighting": {"name": "effective_number", "beta": 0.999}}},
     "cross-entropy weighted by the effective number of samples (Cui et al., 2019)"),
    ("focal", {"loss": {"name": "focal", "gamma": 2.0}}, "focal loss, gamma 2 (Lin et al., 2017)"),
    ("ldam-drw", lambda b: {"loss": {"name": "ldam", "weighting": {
        "name": "deferred", "switch_epoch": _switch(b), "before": "instance",
        "after": {"name": "effective_number", "beta": 0.9999}}}},
     "LDAM margins with deferred re-weighting at 80 % of the epochs (Cao et al., 2019)"),
    ("logit-adjust", {"loss": {"name": "logit_adjusted", "tau": 1.0}}, "logit-adjusted cross-entropy, tau 1 (Menon et al., 2021)"),
    ("balanced-softmax", {"loss": "balanced_softmax"}, "balanced softmax (Ren et al., 2020)"),
    ("posthoc-la", {"strategy": {"posthoc": {"prior": "em"}}},
     "post-hoc logit adjustment to the validation prior estimated with EM (Saerens et al., 2002)"),
    ("posthoc-uniform", {"strategy": {"posthoc": {"prior": "uniform", "per_epoch": True}}},
     "post-hoc logit adjustment to the uniform prior, every epoch chosen on the adjusted logits (Menon et al., 2021)"),
    ("oversample", {"sampler": dict(_BALANCED_SAMPLER)}, "class-balanced sampling (with replacement)"),
    ("oversample-augment", {"sampler": {**_BALANCED_SAMPLER, "yield_draws": True},
                            "augmentation": {"name": "rarity_scaled", "base": "light"}},
     "class-balanced sampling, each repeat of a minority image a different rarity-scaled augmentation"),
    ("undersample", {"sampler": {"name": "resampled", "sampling_strategy": "auto", "method": "under"}},
     "random undersampling of the larger classes every epoch"),
    ("sqrt-sampling", {"sampler": {"name": "class_aware", "weighting": "sqrt"}}, "square-root sampling"),
    ("progressive", lambda b: {"sampler": {"name": "class_aware", "weighting": {
        "name": "progressive", "epochs": _epochs(b)}}},
     "progressively-balanced sampling: instance to class-balanced over the run (Kang et al., 2020)"),
    ("drs", lambda b: {"sampler": {"name": "class_aware", "weighting": {
        "name": "deferred", "switch_epoch": _switch(b), "before": "instance", "after": "balanced"}}},
     "deferred re-sampling: class-balanced from 80 % of the epochs (Cao et al., 2019)"),
    ("crt", {"strategy": {"crt": {"epochs": 10}}}, "classifier re-training with class-balanced sampling on frozen features (Kang et al., 2020)"),
    ("tau-norm", {"strategy": {"tau_norm": {}}}, "tau-normalised classifier, tau chosen on validation (Kang et al., 2020)"),
    ("smote-features", {"strategy": {"feature_resampler": "smote"}}, "SMOTE on the cached features the head trains on"),
    ("mixup", {"mixer": {"name": "mixup", "alpha": 0.2}}, "mixup, alpha 0.2 (Zhang et al., 2018)"),
    ("remix", {"mixer": {"name": "remix", "alpha": 1.0}}, "Remix: mixup with labels favouring the minority (Chou et al., 2020)"),
    ("ema", {"averaging": {"name": "ema", "decay": 0.99}},
     "an exponential moving average of the weights (decay 0.99 per step), a candidate chosen on validation"),
    ("swa", {"selection": {"name": "swa", "last_k": 5}},
     "the weights averaged over the last 5 epochs (SWA, BatchNorm recomputed) are the selected model"),
    ("select-loss", {"selection": {"name": "best", "metric": "loss_uniform_prior"}},
     "the epoch of lowest validation loss corrected to the uniform prior (a proper score: far less noisy "
     "than balanced accuracy on a few minority images), on the adjusted logits with posthoc-uniform"),
    ("tta", {"tta": "flip"}, "test-time flip averaging: every validation and test image scored as the mean "
     "of its logits and its mirror's"),
    ("layer4", {"freeze": {"name": "layer4"}, "augmentation": "light"},
     "fine-tune layer4 with the head, light flip/crop augmentation (on cached layer3 activations, K views)"),
):
    register_strategy(_name, _fragment, _description)
