"""Strict JSON for the files a run writes: a non-finite number (NaN, inf) is written as ``null``.

``json.dumps`` writes ``NaN`` by default, which strict parsers (JavaScript, ``jq``) refuse;
readers of run files treat ``null`` as "not defined" (a volatility of fewer than 3 epochs, the
loss of an empty class).

Example:
    >>> dumps({"volatility": float("nan"), "loss": [0.5, float("inf")]})
    '{"volatility": null, "loss": [0.5, null]}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["dumps", "finite"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (nested in dicts, lists, tuples) replaced by None.

    Example:
        >>> finite({"a": (1.0, float("nan"))})
        {'a': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`finite` ``(value)``; never writes NaN or Infinity."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
