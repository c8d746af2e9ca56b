"""The weighting family: one definition of per-class weights, shared by samplers and losses.

Convention (used by every weighting, everywhere in augbal): ``class_weights`` returns one
``float64`` weight per class; empty classes get ``0``; the weights of the non-empty classes
sum to the number of non-empty classes (their mean is 1, the class-balanced-loss
convention), so a loss keeps its scale whatever the weighting. A sampler draws class ``c``
with probability ``p_c ∝ n_c * w_c`` (``sampling_probs``), so ``"instance"`` reproduces the
data's class frequencies and ``"balanced"`` draws every non-empty class equally often.

Spec forms accepted by :func:`resolve_weighting` (recipes, the CLI and Python users alike):

- ``"instance"`` / ``"sqrt"`` / ``"balanced"``: :class:`Power` with q = 0 / 0.5 / 1;
- a number ``q`` or ``{"power": q}``: :class:`Power`, ``w_c ∝ n_c ** -q``;
- ``{"effective_number": beta}``: :class:`EffectiveNumber`, ``w_c ∝ (1 - β) / (1 - β ** n_c)``;
- ``{class index or name: weight, ...}``, a per-class list, or
  ``{"explicit": {"weights": ..., "classes": ...}}``: :class:`Explicit` (unlisted classes weigh 1);
- ``{"progressive": {"start": ..., "end": ..., "epochs": E}}``: :class:`Progressive`;
- ``{"deferred": {"switch_epoch": E, "before": ..., "after": ...}}``: :class:`Deferred`;
- the spec a weighting's ``to_dict()`` returns, ``{"name": "power", "q": 0.5}`` (any
  registered name, with its parameters): rebuilt by ``WEIGHTINGS.from_spec``;
- a :class:`Weighting` instance: returned as is.

A dict whose ``"name"`` is a registered weighting name is a spec; a one-key dict
whose key is a registered weighting name is that weighting; any other dict is an
explicit ``{class: weight}`` table (write ``{"explicit": {...}}`` for a class that is
literally named like a weighting).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._registry import Registry
from .._validation import check_choice, check_int, check_real, is_real, resolve_class_mapping

__all__ = [
    "WEIGHTINGS",
    "Deferred",
    "EffectiveNumber",
    "Explicit",
    "Power",
    "Progressive",
    "Weighting",
    "resolve_weighting",
]

# --------------------------------------------------------------------------- validation


def check_counts(counts: Any, *, name: str = "counts") -> np.ndarray:
    """Validate per-class sample counts and return them as an ``int64`` array.

    Example:
        >>> check_counts([4500, 450, 45]).tolist()
        [4500, 450, 45]

    Raises:
        ValueError: unless ``counts`` is a non-empty 1-d array of non-negative integers
            with at least one sample.
    """
    try:
        import torch

        if isinstance(counts, torch.Tensor):
            counts = counts.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(counts, (str, bytes, Mapping)) or counts is None:
        raise ValueError(f"{name} must be a 1-d sequence of non-negative integers, one per class; got {counts!r}")
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-d sequence of non-negative integers, one per class; "
            f"got shape {arr.shape}"
        )
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be non-negative integers; got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must be non-negative integers; got {arr.tolist()}")
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative integers; got {arr.tolist()}")
    if not np.any(arr > 0):
        raise ValueError(f"{name} must contain at least one sample; got {arr.tolist()}")
    return arr


def _check_epoch(epoch: Any) -> int:
    return check_int("epoch", epoch)  # type: ignore[return-value]


def _check_real(value: Any, name: str) -> float:
    return check_real(name, value)  # type: ignore[return-value]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so ``to_dict()`` output is YAML/JSON friendly."""
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------- base class


class Weighting:
    """Base class of the weighting family: per-class weights from per-class counts.

    Subclasses store their (keyword-only) parameters in ``__init__`` and implement
    ``_class_weights(counts, epoch)`` returning raw non-negative weights; the public
    methods validate, zero the empty classes and normalise (see the module docstring).

    Example:
        >>> w = resolve_weighting("balanced")
        >>> w.class_weights([300, 100, 0]).tolist()
        [0.5, 1.5, 0.0]
        >>> w.sampling_probs([300, 100, 0]).tolist()
        [0.5, 0.5, 0.0]
    """

    def class_weights(self, counts: Any, *, epoch: int = 0) -> np.ndarray:
        """Per-class weights (``float64``): 0 for empty classes, mean 1 over the others."""
        counts = check_counts(counts)
        epoch = _check_epoch(epoch)
        return _normalise(self._class_weights(counts, epoch), counts, self)

    def sampling_probs(self, counts: Any, *, epoch: int = 0) -> np.ndarray:
        """Probability of drawing each *class* when every sample of class ``c`` weighs ``w_c``.

        ``p_c ∝ n_c * w_c``; the result sums to 1 and is 0 for empty classes.
        """
        counts = check_counts(counts)
        mass = counts * self.class_weights(counts, epoch=epoch)
        return mass / mass.sum()

    @property
    def static(self) -> bool:
        """True when the weights do not depend on the epoch (samplers skip recomputation)."""
        return True

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}`` (plain data); ``WEIGHTINGS.from_spec`` (or
        ``resolve_weighting``) rebuilds an equal weighting from it.

        Example:
            >>> Power(q=0.5).to_dict()
            {'name': 'power', 'q': 0.5}
        """
        return WEIGHTINGS.spec(self, self._params())

    # -- hooks -------------------------------------------------------------------------

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _params(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    # -- value semantics ---------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Weighting):
            return NotImplemented
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        params = self._params()
        if isinstance(params, dict):
            inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        else:
            inner = repr(params)
        return f"{type(self).__name__}({inner})"


WEIGHTINGS: Registry[Weighting] = Registry("weighting", base=Weighting)
"""Every weighting, by name; ``WEIGHTINGS.from_spec(w.to_dict())`` rebuilds ``w``."""


def _normalise(raw: Any, counts: np.ndarray, weighting: Weighting) -> np.ndarray:
    w = np.asarray(raw, dtype=np.float64).copy()
    present = counts > 0
    w[~present] = 0.0
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"class weights must be finite and non-negative; got {w.tolist()} from {weighting!r}")
    total = w.sum()
    if total <= 0:
        raise ValueError(
            f"at least one non-empty class needs a positive weight; got {w.tolist()} "
            f"for counts {counts.tolist()} from {weighting!r}"
        )
    return w * (present.sum() / total)


# --------------------------------------------------------------------------- the family


@WEIGHTINGS.register("power")
class Power(Weighting):
    """``w_c ∝ n_c ** -q``: q = 0 instance-balanced, 0.5 square root, 1 class-balanced.

    Args:
        q: the exponent (any finite number; values above 1 over-weight rare classes).

    Example:
        >>> Power(q=1).class_weights([4500, 450, 45]).round(4).tolist()
        [0.027, 0.2703, 2.7027]
    """

    def __init__(self, *, q: float = 1.0) -> None:
        _check_real(q, "q")
        self.q = q

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        q = _check_real(self.q, "q")
        w = np.zeros(counts.shape, dtype=np.float64)
        present = counts > 0
        n = counts[present].astype(np.float64)
        with np.errstate(over="ignore", under="ignore"):
            raw = n**-q
        if not (np.all(np.isfinite(raw)) and np.all(raw > 0)):
            # extreme q: the same ratios, computed relative to the largest count
            exponent = -q * np.log(n)
            raw = np.exp(exponent - exponent.max())
        w[present] = raw
        return w

    def _params(self) -> Any:
        return {"q": _plain(self.q)}


@WEIGHTINGS.register("instance")
def instance() -> Power:
    """Instance-balanced: every sample weighs the same (``Power(q=0)``)."""
    return Power(q=0.0)


@WEIGHTINGS.register("sqrt")
def sqrt() -> Power:
    """Square-root balanced (``Power(q=0.5)``)."""
    return Power(q=0.5)


@WEIGHTINGS.register("balanced")
def balanced() -> Power:
    """Class-balanced / inverse frequency (``Power(q=1)``)."""
    return Power(q=1.0)


@WEIGHTINGS.register("effective_number")
class EffectiveNumber(Weighting):
    """Effective number of samples (Cui et al., 2019): ``w_c ∝ (1 - β) / (1 - β ** n_c)``.

    β = 0 is instance-balanced; β → 1 tends to class-balanced.

    Args:
        beta: in ``[0, 1)``; typical values 0.9, 0.99, 0.999, 0.9999.

    Example:
        >>> EffectiveNumber(beta=0.999).class_weights([4500, 450, 45]).round(4).tolist()
        [0.1145, 0.3125, 2.573]
    """

    def __init__(self, *, beta: float = 0.999) -> None:
        check_real("beta", beta, low=0, high=1, high_open=True)
        self.beta = beta

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        beta = check_real("beta", self.beta, low=0, high=1, high_open=True)
        w = np.zeros(counts.shape, dtype=np.float64)
        present = counts > 0
        if beta == 0.0:
            w[present] = 1.0
            return w
        # 1 - beta**n computed as -expm1(n*log(beta)): exact for beta close to 1
        effective = -np.expm1(counts[present] * math.log(beta)) / (1.0 - beta)
        w[present] = 1.0 / effective
        return w

    def _params(self) -> Any:
        return {"beta": _plain(self.beta)}


@WEIGHTINGS.register("explicit")
class Explicit(Weighting):
    """Weights given per class: a ``{class index or name: weight}`` dict or a per-class list.

    Classes missing from a dict weigh 1 (as scikit-learn's ``class_weight`` dict), then
    the weights are normalised like every weighting. Keys are resolved by
    ``augbal._validation.resolve_class_key``: class names (they need ``classes``), labels,
    or labels as JSON strings (``"2"``). Keys, weights and, when ``classes`` is given, the
    list length are checked at construction; the number of classes again per call.

    Args:
        weights: ``{index or name: weight}`` or a sequence with one weight per class.
        classes: class names, in class-index order (needed only for names).

    Example:
        >>> w = Explicit(weights={"cat": 3.0}, classes=("cat", "dog"))
        >>> w.class_weights([10, 10]).tolist()
        [1.5, 0.5]
    """

    def __init__(self, *, weights: Mapping[Any, float] | Sequence[float] | None = None,
                 classes: Sequence[str] | None = None) -> None:
        self.weights = weights
        self.classes = classes
        # validated here, against ``classes`` when given; the number of classes is checked
        # again against the counts each call
        if classes is not None and (isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray))):
            raise ValueError(f"classes must be a sequence of class names; got {classes!r}")
        self._table(None if classes is None else len(classes))

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        n = counts.size
        if self.classes is not None and len(self.classes) != n:
            raise ValueError(f"classes must name every class ({n}); got {len(self.classes)} names")
        return self._table(n)

    def _table(self, n: int | None) -> np.ndarray:
        """The per-class weights for ``n`` classes (``None``: unknown yet, only checked)."""
        weights = {} if self.weights is None else self.weights
        if isinstance(weights, Mapping):
            checked = {key: self._weight(value, key) for key, value in weights.items()}
            table = resolve_class_mapping(checked, classes=self.classes, num_classes=n, name="weight key")
            w = np.ones(0 if n is None else n, dtype=np.float64)
            if n is not None:
                for c, value in table.items():
                    w[c] = value
            return w
        if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)):
            raise ValueError(f"explicit weights must be a {{class: weight}} dict or a per-class list; got {weights!r}")
        if n is not None and len(weights) != n:
            raise ValueError(f"explicit weights must give one weight per class ({n}); got {len(weights)}")
        return np.array([self._weight(v, i) for i, v in enumerate(weights)], dtype=np.float64)

    @staticmethod
    def _weight(value: Any, key: Any) -> float:
        if not is_real(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"explicit weights must be finite non-negative numbers; got {value!r} for class {key!r}")
        return float(value)

    def _params(self) -> Any:
        weights = self.weights
        if isinstance(weights, Mapping) and self.classes is not None:
            # keyed by class name, so a JSON round trip cannot read label 1 as a class named "1"
            dense = resolve_class_mapping(dict(weights), classes=self.classes, num_classes=len(self.classes))
            weights = {str(self.classes[c]): _plain(v) for c, v in sorted(dense.items())}
        elif isinstance(weights, Mapping):
            weights = {_plain(k): _plain(v) for k, v in weights.items()}
        elif weights is not None:
            weights = [_plain(v) for v in weights]
        classes = None if self.classes is None else [str(c) for c in self.classes]
        return {"weights": weights, "classes": classes}


@WEIGHTINGS.register("progressive")
class Progressive(Weighting):
    """Progressive balancing: from power weighting ``start`` to ``end``, linearly over ``epochs``.

    With ``t = min(epoch, epochs) / epochs``, ``interpolate="exponent"`` (default) uses
    ``Power(q = q_start + (q_end - q_start) * t)`` (instance → square root → balanced);
    ``interpolate="probs"`` mixes the class draw probabilities,
    ``p(t) = (1 - t) * p_start + t * p_end`` (progressively-balanced sampling of Kang et
    al., 2020). From ``epoch >= epochs`` on, the weights are those of ``end``.

    Args:
        start, end: power weightings: ``"instance"``, ``"sqrt"``, ``"balanced"`` or a float q.
        epochs: number of epochs of the ramp (a positive integer).
        interpolate: ``"exponent"`` or ``"probs"``.

    Example:
        >>> w = Progressive(start="instance", end="balanced", epochs=4)
        >>> [w.q_at(e) for e in (0, 2, 4, 9)]
        [0.0, 0.5, 1.0, 1.0]
        >>> w = Progressive(epochs=2, interpolate="probs")
        >>> w.sampling_probs([300, 100], epoch=1).round(4).tolist()
        [0.625, 0.375]
    """

    def __init__(
        self, *, start: Any = "instance", end: Any = "balanced", epochs: int = 10, interpolate: str = "exponent"
    ) -> None:
        _power_q(start, "progressive start")
        _power_q(end, "progressive end")
        check_int("progressive epochs", epochs, low=1)
        check_choice("progressive interpolate", interpolate, ("exponent", "probs"))
        self.start = start
        self.end = end
        self.epochs = epochs
        self.interpolate = interpolate

    def fraction(self, epoch: int) -> float:
        """How far along the ramp ``epoch`` is: ``min(epoch, epochs) / epochs``, in [0, 1]."""
        epoch = _check_epoch(epoch)
        epochs = check_int("progressive epochs", self.epochs, low=1)
        check_choice("progressive interpolate", self.interpolate, ("exponent", "probs"))
        return min(epoch, epochs) / epochs  # type: ignore[operator]

    def q_at(self, epoch: int) -> float:
        """The exponent reached at ``epoch`` (the one used with ``interpolate="exponent"``)."""
        t = self.fraction(epoch)
        q0, q1 = _power_q(self.start, "progressive start"), _power_q(self.end, "progressive end")
        return q0 + (q1 - q0) * t

    @property
    def static(self) -> bool:
        return _power_q(self.start, "progressive start") == _power_q(self.end, "progressive end")

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        t = self.fraction(epoch)
        if self.interpolate == "probs":
            q0, q1 = _power_q(self.start, "progressive start"), _power_q(self.end, "progressive end")
            p = (1 - t) * Power(q=q0).sampling_probs(counts) + t * Power(q=q1).sampling_probs(counts)
            return np.divide(p, counts, out=np.zeros_like(p), where=counts > 0)
        return Power(q=self.q_at(epoch))._class_weights(counts, epoch)

    def _params(self) -> Any:
        return {
            "start": _q_data(self.start),
            "end": _q_data(self.end),
            "epochs": _plain(self.epochs),
            "interpolate": self.interpolate,
        }


@WEIGHTINGS.register("deferred")
class Deferred(Weighting):
    """Deferred re-weighting / re-sampling (DRW / DRS, Cao et al., 2019): one weighting
    before ``switch_epoch``, another from ``switch_epoch`` on.

    Args:
        switch_epoch: first epoch that uses ``after`` (a non-negative integer).
        before, after: any weighting spec (see :func:`resolve_weighting`).

    Example:
        >>> w = Deferred(switch_epoch=2, before="instance", after="balanced")
        >>> [w.class_weights([3, 1], epoch=e).tolist() for e in (1, 2)]
        [[1.0, 1.0], [0.5, 1.5]]
    """

    def __init__(self, *, switch_epoch: int = 10, before: Any = "instance", after: Any = "balanced") -> None:
        check_int("deferred switch_epoch", switch_epoch)
        resolve_weighting(before)
        resolve_weighting(after)
        self.switch_epoch = switch_epoch
        self.before = before
        self.after = after

    def active(self, epoch: int) -> Weighting:
        """The weighting in force at ``epoch``."""
        epoch = _check_epoch(epoch)
        switch = check_int("deferred switch_epoch", self.switch_epoch)
        before, after = resolve_weighting(self.before), resolve_weighting(self.after)
        return after if epoch >= switch else before

    @property
    def static(self) -> bool:
        return False

    def _class_weights(self, counts: np.ndarray, epoch: int) -> np.ndarray:
        return self.active(epoch).class_weights(counts, epoch=epoch)

    def _params(self) -> Any:
        return {
            "switch_epoch": _plain(self.switch_epoch),
            "before": _spec_data(self.before),
            "after": _spec_data(self.after),
        }


def _power_q(spec: Any, what: str) -> float:
    """The exponent of a power-weighting spec (name, number, ``{"power": q}`` or Power)."""
    try:
        w = resolve_weighting(spec)
    except ValueError:
        w = None
    if not isinstance(w, Power):
        raise ValueError(
            f"{what} must be a power weighting ('instance', 'sqrt', 'balanced' or a number q); got {spec!r}"
        )
    return _check_real(w.q, f"{what} q")


def _spec_data(spec: Any) -> Any:
    """A nested spec in canonical plain data (its weighting's ``to_dict()``), so equal
    weightings compare equal however they were written; an invalid spec is kept as given
    (it is reported when the weights are computed)."""
    try:
        return resolve_weighting(spec).to_dict()
    except ValueError:
        return _plain(spec)


def _q_data(spec: Any) -> Any:
    """A progressive end point as its exponent q when valid, else as given."""
    try:
        return _power_q(spec, "q")
    except ValueError:
        return _plain(spec)


# --------------------------------------------------------------------------- factory

_RULE = (
    "weighting must be a name ({names}), a number q, a {{class: weight}} dict or per-class list, "
    "a spec {{'name': name, **parameters}}, a one-key dict {{name: parameters}} or a Weighting"
)


def resolve_weighting(spec: Any, *, classes: Sequence[str] | None = None) -> Weighting:
    """Build the :class:`Weighting` described by ``spec`` (see the module docstring).

    A thin wrapper over ``WEIGHTINGS.from_spec``: the shorthands are first written as the
    spec ``{"name": ..., **params}`` they stand for.

    Args:
        spec: a name, a number q, a dict or list, a ``to_dict()`` spec, or a ``Weighting``
            (returned as is).
        classes: class names, used by explicit ``{name: weight}`` tables.

    Example:
        >>> resolve_weighting("sqrt")
        Power(q=0.5)
        >>> resolve_weighting({"effective_number": 0.99})
        EffectiveNumber(beta=0.99)
        >>> resolve_weighting({"name": "power", "q": 2.0})
        Power(q=2.0)
        >>> resolve_weighting({"dog": 2.0}, classes=["cat", "dog"]).class_weights([5, 5]).tolist()
        [0.6666666666666666, 1.3333333333333333]

    Raises:
        ValueError: for anything else, stating the accepted forms and the value received.
    """
    if isinstance(spec, Weighting):
        return spec
    if type(spec).__module__.startswith("torch") and hasattr(spec, "tolist"):
        spec = spec.tolist()  # a tensor of per-class weights (or a 0-d tensor q)
    rule = _RULE.format(names=", ".join(repr(n) for n in WEIGHTINGS.names()))
    canonical = _canonical(spec, classes, rule)
    try:
        return WEIGHTINGS.from_spec(canonical)
    except TypeError as exc:  # a parameter the weighting does not take
        raise ValueError(f"{rule}; got {spec!r} ({exc})") from None


def _canonical(spec: Any, classes: Sequence[str] | None, rule: str) -> dict[str, Any]:
    """The spec ``{"name": ..., **params}`` a shorthand stands for (nested weightings built)."""
    if isinstance(spec, str):
        if spec not in WEIGHTINGS:
            raise ValueError(f"{rule}; got {spec!r}")
        return {"name": spec}
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"{rule}; got {spec!r}")
    if is_real(spec):
        return {"name": "power", "q": _check_real(spec, "q")}
    if isinstance(spec, Mapping):
        name = spec.get("name")
        if isinstance(name, str) and name in WEIGHTINGS:  # a to_dict() spec (class weights are numbers)
            return _with_classes(name, {k: v for k, v in spec.items() if k != "name"}, classes)
        if len(spec) == 1:
            (key, value), = spec.items()
            if isinstance(key, str) and key in WEIGHTINGS:
                return _with_classes(key, _shorthand_params(key, value), classes)
        return {"name": "explicit", "weights": dict(spec), "classes": classes}
    if isinstance(spec, (Sequence, np.ndarray)) and not isinstance(spec, (bytes, bytearray)):
        return {"name": "explicit", "weights": list(spec), "classes": classes}
    raise ValueError(f"{rule}; got {spec!r}")


# the single positional parameter of each name in {name: value} shorthand
_SHORTHAND = {"power": "q", "effective_number": "beta", "explicit": "weights"}


def _shorthand_params(name: str, value: Any) -> dict[str, Any]:
    """The parameters of the one-key form ``{name: value}``."""
    if isinstance(value, Mapping) and name != "explicit":
        return dict(value)
    if name == "explicit" and isinstance(value, Mapping) and set(value) <= {"weights", "classes"} and value:
        return dict(value)
    if name in _SHORTHAND:
        return {_SHORTHAND[name]: value}
    if value is None:
        return {}
    raise ValueError(f"{name} takes a dict of parameters; got {{{name!r}: {value!r}}}")


def _with_classes(name: str, params: dict[str, Any], classes: Sequence[str] | None) -> dict[str, Any]:
    """``{"name": name, **params}`` with ``classes`` passed on to explicit tables, nested ones too."""
    if name == "explicit" and params.get("classes") is None and classes is not None:
        params["classes"] = classes
    if name == "deferred":
        for key in ("before", "after"):
            if key in params:
                params[key] = resolve_weighting(params[key], classes=classes)
    return {"name": name, **params}
