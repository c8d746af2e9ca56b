"""Class-conditional policies: a policy per class, or one policy whose magnitude grows with rarity.

Sub-policies given by name, or by a dict that lacks some of ``size``, ``mean``, ``std``,
``magnitude``, ``seed``, take those from the wrapper; ``Policy`` instances are used as is
but must have the wrapper's ``size`` (a batch must stack). ``to_dict()`` writes sub-policies
without the parameters they share with the wrapper, so overriding the wrapper's ``size``
(or seed, ...) on a round trip reaches them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from augbal._draw import Draw
from augbal.augment._policy import POLICIES, Policy, PolicySpec, build_policy



def _resolve(spec: PolicySpec, wrapper: Policy) -> Policy:
    if isinstance(spec, Policy):
        return spec
    inherited = Policy.get_params(wrapper)  # the common parameters only
    if isinstance(spec, str):
        return build_policy(spec, **inherited)
    if isinstance(spec, Mapping):
        return build_policy({**inherited, **spec})
    raise TypeError(f"a class policy is a registered name, a dict with 'name', or a Policy; got {type(spec).__name__}")


def _check_size(policy: Policy, wrapper: Policy) -> Policy:
    if policy.size != wrapper.size:
        raise ValueError(
            f"class policies must produce the wrapper's size ({wrapper.size}) so a batch stacks; "
            f"got {policy.name} with size {policy.size}"
        )
    return policy


def _compact(policy: Policy, wrapper: Policy) -> dict[str, Any]:
    """``policy.to_dict()`` without the common parameters it shares with (inherits from) the wrapper."""
    common = Policy.get_params(wrapper)
    return {k: v for k, v in policy.to_dict().items() if k not in common or common[k] != v}


def _class_key(key: Any) -> int:
    if isinstance(key, str) and key.strip().isdigit():  # JSON turns int keys into strings
        key = int(key)
    if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or key < 0:
        raise ValueError(f"class keys must be non-negative class indices; got {key!r}")
    return int(key)


@POLICIES.register("class_conditional")
class ClassConditional(Policy):
    """A policy per class index; classes not listed (and calls without a label) use ``default``.

    Args:
        policies: ``{class_index: policy}``, each a registered name, a dict or a ``Policy``.
        default: the policy for every other class.
        **params: the common policy parameters (``size``, ``mean``, ``std``, ``magnitude``,
            ``seed``), inherited by sub-policies given by name or dict.

    Example:
        >>> import numpy as np
        >>> from augbal._draw import Draw
        >>> policy = ClassConditional({2: "heavy"}, default="light", size=32)
        >>> policy.policies[2].name, policy.default.name
        ('heavy', 'light')
        >>> tuple(policy(np.zeros((40, 40, 3), np.uint8), label=2, draw=Draw(0)).shape)
        (3, 32, 32)
    """

    def __init__(
        self,
        policies: Mapping[Any, PolicySpec] | None = None,
        *,
        default: PolicySpec = "none",
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.policies = {_class_key(c): _check_size(_resolve(p, self), self) for c, p in (policies or {}).items()}
        self.default = _check_size(_resolve(default, self), self)

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return all(p.deterministic for p in (self.default, *self.policies.values()))

    def policy_for(self, label: int | None) -> Policy:
        """The policy applied to samples of class ``label``."""
        return self.default if label is None else self.policies.get(int(label), self.default)

    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        return self.policy_for(label)(image, label=label, draw=draw)

    def get_params(self) -> dict[str, Any]:
        return {
            "policies": {c: _compact(p, self) for c, p in sorted(self.policies.items())},
            "default": _compact(self.default, self),
            **super().get_params(),
        }


@POLICIES.register("rarity_scaled")
class RarityScaled(Policy):
    """One ``base`` policy whose magnitude grows with the rarity of the sample's class.

    Class ``c`` with ``n_c`` training samples gets magnitude
    ``m_c = min(max_magnitude, m_base * (n_max / n_c) ** power)``, where ``m_base`` is the
    base policy's magnitude (the majority class keeps it). Classes with zero samples get
    ``max_magnitude``; calls without a label use ``m_base``. Without ``counts`` every class
    uses ``m_base``. See each policy's docstring for how its ops scale with the magnitude.

    Args:
        base: the policy to scale (name, dict or ``Policy``).
        counts: samples per class index (a sequence, or a ``{class: count}`` dict).
        max_magnitude: the cap of ``m_c``.
        power: how fast magnitude grows with the imbalance ratio (0.5: square root).
        **params: the common policy parameters, inherited by a base given by name or dict.

    Example:
        >>> policy = RarityScaled(base="medium", counts=[400, 100, 4], max_magnitude=3.0)
        >>> [round(m, 2) for m in policy.magnitudes_]
        [1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        *,
        base: PolicySpec = "medium",
        counts: Sequence[int] | Mapping[Any, int] | None = None,
        max_magnitude: float = 3.0,
        power: float = 0.5,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.base = _check_size(_resolve(base, self), self)
        if isinstance(counts, Mapping):
            keyed = {_class_key(c): n for c, n in counts.items()}
            counts = [keyed.get(c, 0) for c in range(max(keyed, default=-1) + 1)]
        self.counts = None if counts is None else [int(n) for n in counts]
        if self.counts is not None and (not self.counts or min(self.counts) < 0 or max(self.counts) == 0):
            raise ValueError(f"counts must be non-negative per-class sample counts, not all zero; got {counts!r}")
        if not (np.isfinite(max_magnitude) and max_magnitude >= 0 and np.isfinite(power) and power >= 0):
            raise ValueError(f"max_magnitude and power must be finite numbers >= 0; got {max_magnitude!r}, {power!r}")
        self.max_magnitude = float(max_magnitude)
        self.power = float(power)

    @property
    def magnitudes_(self) -> list[float]:
        """The magnitude of every class index in ``counts`` (empty without counts)."""
        if self.counts is None:
            return []
        n_max, m = max(self.counts), self.base.magnitude
        return [
            self.max_magnitude if n == 0 else min(self.max_magnitude, m * (n_max / n) ** self.power)
            for n in self.counts
        ]

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.base.deterministic

    def policy_for(self, label: int | None) -> Policy:
        """The base policy at the magnitude of class ``label``."""
        if label is None or self.counts is None:
            return self.base
        label = int(label)
        if not 0 <= label < len(self.counts):
            raise ValueError(f"label must be a class index covered by counts (0..{len(self.counts) - 1}); got {label}")
        cache = self.__dict__.setdefault("_built_per_class", {})
        if label not in cache:
            cache[label] = self.base.with_params(magnitude=self.magnitudes_[label])
        return cache[label]

    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        return self.policy_for(label)(image, label=label, draw=draw)

    def get_params(self) -> dict[str, Any]:
        return {
            "base": _compact(self.base, self),
            "counts": self.counts,
            "max_magnitude": self.max_magnitude,
            "power": self.power,
            **super().get_params(),
        }
