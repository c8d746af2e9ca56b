"""The checks of user-passed values, and the one class-key resolver, shared by every subpackage.

One rule for every check here: a value that breaks the rule raises :class:`ValueError`
whether its type or its value is wrong (``seed="a"`` and ``seed=-1`` alike), with the
message ``"NAME must be RULE; got VALUE"`` (the value as ``repr``), so a caller (the CLI,
a recipe loader) catches one exception type and the user reads the rule first. ``bool``
is never accepted as a number (``True`` is not a seed or a count). Python ints and numpy
integers are integers; the checks return plain Python values, so ``to_dict()`` stays
YAML/JSON friendly. This module imports only numpy: ``data``, ``sampling`` and ``augment``
all use it, and data flows one way.

Example:
    >>> check_int("num_samples", 10, low=1)
    10
    >>> check_seed("seed", -1)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an int >= 0; got -1
    >>> resolve_class_key("cat", classes=["deer", "dog", "cat"])
    2
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "check_device",
    "ClassNamesNeededError",
    "check_bool",
    "check_choice",
    "check_int",
    "check_probability",
    "check_real",
    "check_seed",
    "is_int",
    "is_real",
    "resolve_class_key",
    "resolve_class_mapping",
]

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """True for a Python or numpy integer that is not a ``bool``.

    Example:
        >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
        (True, True, False, False)
    """
    return isinstance(value, (Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """True for a Python or numpy real number (integers included) that is not a ``bool``.

    Example:
        >>> is_real(0.5), is_real(np.float32(0.5)), is_real(2), is_real(False), is_real("1")
        (True, True, True, False, False)
    """
    return isinstance(value, (Real, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _fail(name: str, rule: str, value: Any) -> ValueError:
    return ValueError(f"{name} must be {rule}; got {value!r}")


def check_int(
    name: str, value: Any, *, low: int | None = 0, high: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as a Python int in ``[low, high]`` (bounds inclusive; ``None`` = unbounded).

    Example:
        >>> check_int("epochs", 5, low=1)
        5
        >>> check_int("num_samples", None, low=1, allow_none=True) is None
        True
        >>> check_int("workers", 0, low=1)
        Traceback (most recent call last):
        ...
        ValueError: workers must be an int >= 1; got 0
    """
    if value is None and allow_none:
        return None
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, _range_rule("an int", "an int", low, high) + (" or None" if allow_none else ""), value)
    return int(value)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a finite Python float within the given bounds (closed unless ``*_open``).

    Example:
        >>> check_real("beta", 0.999, low=0, high=1, high_open=True)
        0.999
        >>> check_real("alpha", 0, low=0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be a number > 0; got 0
    """
    if value is None and allow_none:
        return None
    ok = is_real(value) and math.isfinite(float(value))
    if ok:
        v = float(value)
        if low is not None and (v <= low if low_open else v < low):
            ok = False
        if high is not None and (v >= high if high_open else v > high):
            ok = False
    if not ok:
        rule = _range_rule("a number", "a finite number", low, high, low_open, high_open)
        raise _fail(name, rule + (" or None" if allow_none else ""), value)
    return float(value)


def _range_rule(
    kind: str, unbounded: str, low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    """``"an int in [0, 63]"``, ``"a number > 0"``, ...: the rule a bounded check states."""

    def show(v: float) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{show(low)}, {show(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {show(low)}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {show(high)}"
    return unbounded


def check_probability(name: str, value: Any) -> float:
    """``value`` as a float in ``[0, 1]``.

    Example:
        >>> check_probability("p", 0.5)
        0.5
    """
    return check_real(name, value, low=0, high=1)  # type: ignore[return-value]


def check_seed(name: str, value: Any) -> int:
    """A seed: an int (Python or numpy) ``>= 0``, returned as a Python int.

    Seeds are plain data (they go into ``to_dict()`` specs and every process derives its
    generator from ``(seed, epoch, ...)``), so a ``numpy.random.SeedSequence`` or
    ``Generator`` is not a seed here, nor is ``None`` (an unseeded run is not reproducible).

    Example:
        >>> check_seed("seed", np.int64(7))
        7
        >>> check_seed("seed", "a")
        Traceback (most recent call last):
        ...
        ValueError: seed must be an int >= 0; got 'a'
    """
    return check_int(name, value, low=0)  # type: ignore[return-value]


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is ``True`` or ``False`` (a numpy bool too); 0/1 and strings are not.

    Example:
        >>> check_bool("replacement", False)
        False
    """
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(name, "True or False", value)
    return bool(value)


def check_device(name: str, value: Any) -> str:
    """A torch device a run may ask for: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Example:
        >>> check_device("device", "cuda:1")
        'cuda:1'
    """
    if not (isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", value)):
        raise _fail(name, "'auto', 'cpu', 'cuda' or 'cuda:N'", value)
    return value


def check_choice(name: str, value: Any, choices: Iterable[T]) -> T:
    """``value`` when it is one of ``choices``.

    Example:
        >>> check_choice("method", "over", ("over", "under"))
        'over'
        >>> check_choice("method", "both", ("over", "under"))
        Traceback (most recent call last):
        ...
        ValueError: method must be one of 'over', 'under'; got 'both'
    """
    options = tuple(choices)
    try:
        ok = value in options
    except TypeError:  # unhashable / incomparable
        ok = False
    if not ok:
        raise _fail(name, "one of " + ", ".join(repr(c) for c in options), value)
    return value


# --------------------------------------------------------------------------- class keys


def resolve_class_key(
    key: Any,
    *,
    classes: Sequence[str] | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    num_classes: int | None = None,
    name: str = "class key",
) -> int:
    """The dense class index (``0 .. C-1``) that ``key`` denotes.

    ``key`` may be a class name (when ``classes`` gives the names, in dense order) or an
    integer label value. ``labels`` gives the label value of each dense class (a sampler
    over labels ``[3, 7]`` has dense classes 0 and 1); without it, label values *are* the
    dense indices, so an integer key is a dense index, checked against ``num_classes``
    (or ``len(classes)``) when known.

    Ambiguity rules: a string is first a class name; a string that names no class but is
    a decimal integer (``"2"``, as JSON writes integer dict keys) is that label value; an
    integer is always a label value, never a name (address a class literally named ``"1"``
    as ``"1"``). ``bool`` is never a key.

    Example:
        >>> resolve_class_key("dog", classes=["deer", "dog", "cat"])
        1
        >>> resolve_class_key(7, labels=[3, 7])
        1
        >>> resolve_class_key("2", num_classes=3)
        2
        >>> resolve_class_key("cow", classes=["deer", "dog", "cat"])
        Traceback (most recent call last):
        ...
        ValueError: unknown class 'cow'; the classes are: deer, dog, cat

    Raises:
        ValueError: for an unknown name, a name without ``classes``, a label that is not a
            class, or a key that is neither a string nor an integer.
    """
    return _ClassKeys(classes, labels, num_classes, name).resolve(key)


def _listing(items: Sequence[Any], limit: int = 20) -> str:
    """``a, b, c`` (the first ``limit`` items and a count when there are more)."""
    shown = ", ".join(str(x) for x in items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


class ClassNamesNeededError(ValueError):
    """A key that is a class name where no class names were given (``classes=``): a recipe
    checked before its data is scanned waits for them; a caller with the names passes them."""


class _ClassKeys:
    """The lookups of :func:`resolve_class_key`, built once per table (O(C), then O(1) a key)."""

    def __init__(self, classes: Any, labels: Any, num_classes: int | None, name: str) -> None:
        self.names = None if classes is None else [str(c) for c in classes]
        self.by_name = None if self.names is None else {}
        for i, c in enumerate(self.names or ()):
            self.by_name.setdefault(c, i)  # type: ignore[union-attr]
        self.values = None if labels is None else [int(v) for v in np.asarray(labels).reshape(-1).tolist()]
        self.by_value = None if self.values is None else {v: i for i, v in enumerate(self.values)}
        self.n = num_classes if num_classes is not None else (None if self.names is None else len(self.names))
        self.name = name

    def resolve(self, key: Any) -> int:
        names, name = self.names, self.name
        if isinstance(key, str):
            if self.by_name is not None and key in self.by_name:
                return self.by_name[key]
            text = key.strip()
            if text.isascii() and text.isdigit():
                key = int(text)
            elif names is not None:
                raise ValueError(f"unknown class {key!r}; the classes are: {_listing(names)}")
            else:
                raise ClassNamesNeededError(f"{name}s that are class names need the class names (classes=); got {key!r}")
        if not is_int(key):
            rule = "a class name or an integer label" if names is not None else "an integer class label"
            raise _fail(name, rule, key)
        key = int(key)
        if self.by_value is not None:
            if key not in self.by_value:
                raise ValueError(f"unknown class label {key}; the labels are: {_listing(self.values)}")
            return self.by_value[key]
        n = self.n
        if key < 0 or (n is not None and key >= n):
            rule = f"a class label in [0, {n})" if n is not None else "a class label >= 0"
            if names is not None:
                rule += " or a class name"
            raise _fail(name, rule, key)
        return key


def resolve_class_mapping(
    mapping: Mapping[Any, T],
    *,
    classes: Sequence[str] | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    num_classes: int | None = None,
    name: str = "class key",
) -> dict[int, T]:
    """``{dense class index: value}`` from a mapping keyed by class names, labels or indices.

    Each key is resolved by :func:`resolve_class_key`; two keys that denote the same
    class (``"cat"`` and ``2``) are an error. Key order is kept.

    Example:
        >>> resolve_class_mapping({"cat": 2.0, 0: 1.0}, classes=["deer", "dog", "cat"])
        {2: 2.0, 0: 1.0}
    """
    if not isinstance(mapping, Mapping):
        raise ValueError(f"a class table must be a {{class: value}} dict; got {mapping!r}")
    out: dict[int, T] = {}
    first: dict[int, Any] = {}
    keys = _ClassKeys(classes, labels, num_classes, name)
    for key, value in mapping.items():
        c = keys.resolve(key)
        if c in out:
            label = str(classes[c]) if classes is not None else (c if labels is None else int(labels[c]))
            raise ValueError(f"each class may be given once; got class {label!r} as {first[c]!r} and {key!r}")
        out[c] = value
        first[c] = key
    return out
