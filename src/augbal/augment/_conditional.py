"""Policies wrapping policies: a policy per class, one whose magnitude grows with rarity, and
the mirror of a policy's output (the second view of flip test-time augmentation).

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
from augbal._validation import check_real, is_int, is_real, resolve_class_mapping
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


def _is_count(n: Any) -> bool:
    """A non-negative integer (an integral float such as 400.0 too, as ``check_counts`` accepts)."""
    return (is_int(n) or (is_real(n) and float(n).is_integer())) and n >= 0


def _check_classes(classes: Any) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise ValueError(f"classes must be a sequence of class names; got {classes!r}")
    return [str(c) for c in classes]


@POLICIES.register("class_conditional")
class ClassConditional(Policy):
    """A policy per class; classes not listed (and calls without a label) use ``default``.

    Args:
        policies: ``{class: policy}``, each a registered name, a dict or a ``Policy``; a class
            is a label (class index) or, with ``classes``, a class name
            (see :func:`augbal._validation.resolve_class_key`).
        default: the policy for every other class.
        classes: class names in label order, so ``policies`` may be keyed by name.
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
        >>> ClassConditional({"cat": "heavy"}, classes=["deer", "dog", "cat"], size=32).policy_for(2).name
        'heavy'
    """

    def __init__(
        self,
        policies: Mapping[Any, PolicySpec] | None = None,
        *,
        default: PolicySpec = "none",
        classes: Sequence[str] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.classes = _check_classes(classes)
        keyed = resolve_class_mapping(policies or {}, classes=self.classes)
        self.policies = {c: _check_size(_resolve(p, self), self) for c, p in keyed.items()}
        self.default = _check_size(_resolve(default, self), self)

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return all(p.deterministic for p in (self.default, *self.policies.values()))

    def policy_for(self, label: int | None) -> Policy:
        """The policy applied to samples of class ``label``."""
        return self.default if label is None else self.policies.get(int(label), self.default)

    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        return self.policy_for(label)(image, label=label, draw=draw)

    def pixels(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> np.ndarray:
        return self.policy_for(label).pixels(image, label=label, draw=draw)

    def get_params(self) -> dict[str, Any]:
        return {
            # keyed by name when names are known: a JSON round trip cannot confuse a class
            # named "1" with label 1
            "policies": {
                (c if self.classes is None else self.classes[c]): _compact(p, self)
                for c, p in sorted(self.policies.items())
            },
            "default": _compact(self.default, self),
            **({} if self.classes is None else {"classes": list(self.classes)}),
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
        counts: samples per class (a sequence in label order, or a ``{class: count}`` dict
            keyed by label or, with ``classes``, by class name; unlisted classes count 0).
        classes: class names in label order (fixes the number of classes).
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
        classes: Sequence[str] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.base = _check_size(_resolve(base, self), self)
        self.classes = _check_classes(classes)
        given = counts
        if isinstance(counts, Mapping):
            keyed = resolve_class_mapping(counts, classes=self.classes)
            size = len(self.classes) if self.classes is not None else max(keyed, default=-1) + 1
            counts = [keyed.get(c, 0) for c in range(size)]
        elif counts is not None and (
            isinstance(counts, (str, bytes))
            or not (isinstance(counts, (Sequence, np.ndarray)) or hasattr(counts, "tolist"))
        ):
            raise ValueError(f"counts must be non-negative per-class sample counts, not all zero; got {given!r}")
        if counts is not None:
            counts = counts.tolist() if hasattr(counts, "tolist") else list(counts)  # numpy arrays, tensors
            if not counts or not all(_is_count(n) for n in counts) or max(counts) == 0:
                raise ValueError(f"counts must be non-negative per-class sample counts, not all zero; got {given!r}")
            if self.classes is not None and len(counts) != len(self.classes):
                raise ValueError(f"counts must give one count per class ({len(self.classes)}); got {len(counts)}")
        self.counts = None if counts is None else [int(n) for n in counts]
        self.max_magnitude = check_real("max_magnitude", max_magnitude, low=0)
        self.power = check_real("power", power, low=0)

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

    def pixels(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> np.ndarray:
        return self.policy_for(label).pixels(image, label=label, draw=draw)

    def get_params(self) -> dict[str, Any]:
        return {
            "base": _compact(self.base, self),
            "counts": self.counts,
            "max_magnitude": self.max_magnitude,
            "power": self.power,
            **({} if self.classes is None else {"classes": list(self.classes)}),
            **super().get_params(),
        }


@POLICIES.register("mirrored")
class Mirrored(Policy):
    """``base``'s output mirrored left to right: the second view of flip test-time augmentation.

    With a deterministic ``base`` (the evaluation policy, ``none`` by default) a run scores
    every validation and test image as the mean of the logits of this view and the base's
    (``tta: flip`` in a recipe). The mirror is of the output, so ``pixels`` and the tensor
    agree as for any policy.

    Args:
        base: the policy whose output is mirrored (name, dict or ``Policy``).
        **params: the common policy parameters, inherited by a base given by name or dict.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 0] = 255
        >>> plain = build_policy("none", size=4, mean=(0, 0, 0), std=(1, 1, 1))
        >>> mirror = Mirrored(base="none", size=4, mean=(0, 0, 0), std=(1, 1, 1))
        >>> plain(img)[0, 0].tolist(), mirror(img)[0, 0].tolist(), mirror.deterministic
        ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], True)
    """

    def __init__(self, *, base: PolicySpec = "none", **params: Any) -> None:
        super().__init__(**params)
        self.base = _check_size(_resolve(base, self), self)

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        return self.base.deterministic

    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        return self.base(image, label=label, draw=draw).flip(-1)

    def pixels(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> np.ndarray:
        return np.ascontiguousarray(self.base.pixels(image, label=label, draw=draw)[:, ::-1])

    def get_params(self) -> dict[str, Any]:
        return {"base": _compact(self.base, self), **super().get_params()}
