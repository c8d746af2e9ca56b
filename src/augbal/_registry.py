"""Name-based registries: recipes, the CLI and conformance suites find every component here.

Every component kind (weightings, samplers, policies, mixers, batch ops; losses, freeze
policies and strategies next) has one :class:`Registry`. A component's ``to_dict()`` is its
*spec*: ``{"name": <registered name>, **params}`` in plain data (numbers, strings, lists,
dicts, ``None``; nested components as their own specs), and ``REGISTRY.from_spec(spec)``
is the one function that rebuilds it. The name is written once, in ``register``; the
registry sets it as the class attribute ``name`` and answers ``name_of(component)``.
"""

from __future__ import annotations

import inspect

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Registry", "plain_data"]


class Registry(Generic[T]):
    """A name -> factory table for one kind of component (sampler, policy, loss, ...).

    ``register`` records a class (or a factory function) under a name, once; a registered
    class gets that name as its ``name`` attribute. ``from_spec`` rebuilds a component from
    its spec, a bare name, or returns an already-built component as is.

    Args:
        kind: what the registry holds, as used in messages (``"loss"``).
        base: the component base class: instances of it count as already built in
            ``from_spec`` (instances of registered classes always do).

    Example (a registry for a component kind that comes next, losses):
        >>> class Loss:
        ...     def to_dict(self):
        ...         return LOSSES.spec(self, {"gamma": self.gamma})
        >>> LOSSES = Registry("loss", base=Loss)
        >>> @LOSSES.register("focal")
        ... class Focal(Loss):
        ...     def __init__(self, *, gamma=2.0):
        ...         self.gamma = gamma
        >>> Focal.name, Focal(gamma=1.0).to_dict()
        ('focal', {'name': 'focal', 'gamma': 1.0})
        >>> LOSSES.from_spec({"name": "focal", "gamma": 0.5}).gamma, LOSSES.from_spec("focal", gamma=3.0).gamma
        (0.5, 3.0)
        >>> loss = Focal(); LOSSES.from_spec(loss) is loss
        True
    """

    def __init__(self, kind: str, *, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Callable[..., T]] = {}
        self._names: dict[type, str] = {}  # registered class -> its (first) registered name

    # ------------------------------------------------------------------ registering
    def register(self, name: str | None = None) -> Callable[[F], F]:
        """Decorator registering a class or factory under ``name`` (default: its lower-case name).

        A class gets ``name`` as its class attribute ``name`` (the one place a name is written).
        """

        def decorate(factory: F) -> F:
            key = name or factory.__name__.lower()
            if not isinstance(key, str) or not key:
                raise ValueError(f"{self.kind} names must be non-empty strings; got {key!r}")
            if key in self._entries and self._entries[key] is not factory:
                raise ValueError(f"{self.kind} names must be unique; {key!r} is already registered")
            self._entries[key] = factory
            if isinstance(factory, type) and factory not in self._names:
                self._names[factory] = key
                factory.name = key  # type: ignore[attr-defined]
            return factory

        return decorate

    # ------------------------------------------------------------------ looking up
    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``; a clear error lists the known names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}") from None

    def name_of(self, component: Any) -> str:
        """The registered name of ``component``'s class (or of the class itself).

        Raises:
            KeyError: when that exact class is not registered (a subclass must register itself,
                or its spec would rebuild its parent).
        """
        cls = component if isinstance(component, type) else type(component)
        try:
            return self._names[cls]
        except KeyError:
            raise KeyError(
                f"a {self.kind} needs a registered class to have a spec; {cls.__name__} is not registered "
                f"(decorate it with the {self.kind} registry's register('some_name'))"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    # ------------------------------------------------------------------ building
    def build(self, name: str, /, **kwargs: Any) -> T:
        """Call the factory registered as ``name`` with keyword arguments.

        Raises:
            TypeError: a keyword the factory does not take, named with the ones it does.
        """
        factory = self.get(name)
        try:
            params = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: let the call say
            params = None
        if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params):
            known = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
            unknown = sorted(set(kwargs) - set(known))
            if unknown:
                raise TypeError(f"{self.kind} {name!r} has no parameter {', '.join(map(repr, unknown))} "
                                f"(its parameters: {', '.join(known)}); got {', '.join(sorted(kwargs))}")
        return factory(**kwargs)

    def spec(self, component: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        """``{"name": name_of(component), **params}`` in plain data: the body of a ``to_dict()``."""
        data = plain_data(dict(params), what=f"{type(component).__name__} parameters")
        return {"name": self.name_of(component), **data}

    def is_built(self, obj: Any) -> bool:
        """True for an already-built component (an instance of ``base`` or of a registered class)."""
        classes = tuple(self._names) + ((self.base,) if self.base is not None else ())
        return bool(classes) and isinstance(obj, classes)

    def from_spec(self, spec: Any, /, **overrides: Any) -> T:
        """Build the component ``spec`` describes; ``overrides`` replace or add parameters.

        ``spec`` is a registered name, a ``{"name": ..., **params}`` dict (a ``to_dict()``),
        or an already-built component: returned as is, or rebuilt from its ``to_dict()``
        with the overrides when there are any. Runtime arguments that are no part of a
        spec (a sampler's ``labels``) are passed as overrides too.

        Raises:
            KeyError: an unknown name (the message lists the registered ones).
            ValueError: a dict without a string ``"name"``.
            TypeError: anything else.
        """
        if self.is_built(spec):
            if not overrides:
                return spec
            spec = spec.to_dict()
        if isinstance(spec, str):
            return self.build(spec, **overrides)
        if isinstance(spec, Mapping):
            params = dict(spec)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise ValueError(
                    f"a {self.kind} spec is a dict with a 'name' key naming a registered {self.kind}; "
                    f"got {dict(spec)!r}"
                )
            return self.build(name, **{**params, **overrides})
        raise TypeError(
            f"a {self.kind} spec is a registered name, a dict with 'name', or a built {self.kind}; "
            f"got {type(spec).__name__}"
        )

    # ------------------------------------------------------------------ container protocol
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def plain_data(value: Any, *, what: str = "a spec") -> Any:
    """``value`` as plain YAML/JSON data: numpy scalars and arrays, tuples and nested
    components (anything with ``to_dict()``) are converted; anything else that is not
    ``None``, a bool, an int, a float, a string, a list or a dict is an error.

    Example:
        >>> plain_data({"q": np.float64(0.5), "size": (32, 32), "counts": np.array([3, 1])})
        {'q': 0.5, 'size': [32, 32], 'counts': [3, 1]}

    Raises:
        TypeError: for a value a spec cannot hold (a callable, a tensor, a generator, ...).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, np.ndarray):
        return plain_data(value.tolist(), what=what)
    if isinstance(value, (list, tuple)):
        return [plain_data(v, what=what) for v in value]
    if isinstance(value, Mapping):
        return {plain_data(k, what=what): plain_data(v, what=what) for k, v in value.items()}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return plain_data(to_dict(), what=what)
    raise TypeError(
        f"{what} must be plain data (None, bool, int, float, str, list, dict or a component with "
        f"to_dict()); got {type(value).__name__} {value!r}"
    )
