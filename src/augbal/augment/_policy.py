"""Augmentation policies: the base class, the ``POLICIES`` registry and the dict/name factory.

Every policy follows one call protocol (the one ``augbal.data.ImageDataset`` uses)::

    policy(image, *, label=None, draw=None) -> float32 tensor (3, size, size), normalised

``image`` is an ``(H, W, 3)`` ``uint8`` RGB array (``(H, W)`` / ``(H, W, 1)`` grayscale
arrays and PIL images are accepted too), ``label`` the int class index and ``draw`` an
``augbal._draw.Draw``: with a draw the output depends only on
``(seed, index, repeat, epoch)`` (see ``augbal.augment._repeat``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Union

import numpy as np

from augbal._draw import Draw
from augbal._registry import Registry
from augbal._validation import check_int, check_real, check_seed, is_real
from augbal.augment._repeat import SeedStream, as_draw, draw_seed_sequence

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PolicySpec = Union["Policy", str, Mapping[str, Any]]


class Policy:
    """Base class of augbal augmentation policies.

    Subclasses register with ``@POLICIES.register("name")`` (which sets ``name``) and implement one hook,
    ``_apply(image, seeds, label)``, which receives a validated ``(H, W, 3)`` uint8 array
    and the ``np.random.SeedSequence`` of this call. Constructors only store parameters;
    heavy objects (pipelines, lookup tables) are built on first use and are not pickled.

    Randomness: with a ``draw`` the call's generators come from
    ``np.random.SeedSequence([seed, draw.index, draw.repeat, draw.epoch])`` (the same draw
    gives byte-identical output in any process; repeat k differs from repeat k'); without
    one, from the instance's :class:`~augbal.augment.SeedStream` (policy seed, call count
    and, in DataLoader workers, the worker seed). Global RNGs are never consumed.

    Args:
        size: output side in pixels; outputs are ``(3, size, size)``.
        mean, std: per-channel normalisation on the 0..1 scale (ImageNet by default).
        magnitude: strength of the random operations; 1.0 is the nominal strength, 0.0
            leaves only resizing (and flips); each policy documents how its ops scale.
        seed: the policy seed, first entry of every derived seed sequence.

    Example:
        >>> import numpy as np
        >>> from augbal._draw import Draw
        >>> policy = build_policy("light", size=32, seed=1)
        >>> x = policy(np.zeros((40, 50, 3), np.uint8), label=0, draw=Draw(3, repeat=1))
        >>> x.dtype, tuple(x.shape)
        (torch.float32, (3, 32, 32))
    """

    name: ClassVar[str] = ""  # set by POLICIES.register
    wants_context: ClassVar[bool] = True
    #: True when the output does not depend on the draw (e.g. ``none``); checked by the conformance suite.
    deterministic: bool = False

    def __init__(
        self,
        *,
        size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        magnitude: float = 1.0,
        seed: int = 0,
    ) -> None:
        check_int("size", size, low=1)
        mean, std = _three("mean", mean, low=None), _three("std", std, low=0)
        check_real("magnitude", magnitude, low=0)
        check_seed("seed", seed)
        self.size = int(size)
        self.mean = mean
        self.std = std
        self.magnitude = float(magnitude)
        self.seed = int(seed)
        self._stream = SeedStream(self.seed)

    # -- the protocol ---------------------------------------------------------------
    def __call__(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> Any:
        """Augment one image; see the module docstring for the protocol."""
        return self._apply(*self._inputs(image, label, draw))

    def pixels(self, image: Any, *, label: int | None = None, draw: Draw | None = None) -> np.ndarray:
        """The same augmentation as a call, as ``(size, size, 3)`` uint8 pixels before normalisation.

        What ``augbal build-dataset`` writes: with ``mean=0, std=1`` the call's tensor is
        exactly these pixels ``/ 255``. Policies whose ops end on uint8 pixels (albumentations,
        torchvision) return them through the ``_pixels`` hook without the float round trip.

        Example:
            >>> from augbal._draw import Draw
            >>> p = build_policy("light", size=8, mean=(0, 0, 0), std=(1, 1, 1))
            >>> img = np.arange(300, dtype=np.uint8).reshape(10, 10, 3)
            >>> u8 = p.pixels(img, draw=Draw(2, repeat=1))
            >>> u8.dtype, u8.shape, bool((p(img, draw=Draw(2, repeat=1)).numpy() * 255).round().astype(np.uint8)
            ...                              .transpose(1, 2, 0).tolist() == u8.tolist())
            (dtype('uint8'), (8, 8, 3), True)
        """
        return self._pixels(*self._inputs(image, label, draw))

    def _inputs(self, image: Any, label: int | None, draw: Draw | None) -> tuple[np.ndarray, np.random.SeedSequence, int | None]:
        """The hooks' arguments: the image as an RGB array, the draw's seeds (or the stream's next), the label."""
        seeds = self._stream.next() if draw is None else draw_seed_sequence(self.seed, as_draw(draw))
        return as_rgb_array(image), seeds, check_int("label (a class index)", label, allow_none=True)

    def _apply(self, image: np.ndarray, seeds: np.random.SeedSequence, label: int | None) -> Any:
        raise NotImplementedError

    def _pixels(self, image: np.ndarray, seeds: np.random.SeedSequence, label: int | None) -> np.ndarray:
        """Hook of :meth:`pixels`; by default ``_apply``'s tensor un-normalised and rounded to uint8."""
        out = self._apply(image, seeds, label)
        array = np.array(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        array = np.rint((array * std + mean) * np.float32(255.0))
        return np.clip(array, 0, 255).astype(np.uint8).transpose(1, 2, 0)

    # -- parameters and serialisation -----------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain Python values (lists, floats, ints, dicts)."""
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "magnitude": self.magnitude,
            "seed": self.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}``; ``POLICIES.from_spec`` (or :func:`build_policy`)
        turns it back into an equal policy."""
        return POLICIES.spec(self, self.get_params())

    def with_params(self, **overrides: Any) -> Policy:
        """A copy of this policy with some parameters replaced (e.g. ``magnitude=2.0``)."""
        return type(self)(**{**self.get_params(), **overrides})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __getstate__(self) -> dict[str, Any]:
        # built pipelines and lookup tables are rebuilt lazily after unpickling
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_built")}


POLICIES: Registry[Policy] = Registry("policy", base=Policy)
"""Every augmentation policy, by name; ``POLICIES.from_spec(policy.to_dict())`` rebuilds it."""


def _three(name: str, values: Any, *, low: float | None) -> tuple[float, float, float]:
    """Three per-channel floats (``low`` exclusive), e.g. a normalisation ``mean`` or ``std``.

    Example:
        >>> _three("std", [0.5, 0.5, 0.5], low=0)
        (0.5, 0.5, 0.5)
    """
    rule = "3 numbers, one per channel" + ("" if low is None else f", each > {low:g}")
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence | np.ndarray):
        raise ValueError(f"{name} must be {rule}; got {values!r}")
    if len(values) != 3 or not all(is_real(v) for v in values):
        raise ValueError(f"{name} must be {rule}; got {values!r}")
    out = tuple(float(v) for v in values)
    if low is not None and not all(v > low for v in out):
        raise ValueError(f"{name} must be {rule}; got {values!r}")
    return out  # type: ignore[return-value]


def build_policy(spec: PolicySpec, /, **overrides: Any) -> Policy:
    """Build a policy from a registered name, a ``to_dict()`` dict or a policy, with overrides.

    A thin wrapper over ``POLICIES.from_spec`` (a ``Policy`` of an unregistered class is
    returned as is, or copied with ``with_params``).

    Example:
        >>> p = build_policy("medium", size=64)
        >>> p == build_policy(p.to_dict()), build_policy(p, magnitude=2.0).magnitude
        (True, 2.0)
    """
    if isinstance(spec, Policy):
        return spec.with_params(**overrides) if overrides else spec
    if isinstance(spec, Mapping) and not isinstance(spec.get("name"), str):
        raise ValueError(f"a policy dict needs a 'name' key naming a registered policy; got {dict(spec)!r}")
    if not isinstance(spec, (str, Mapping)):
        raise TypeError(f"a policy is a registered name, a dict with 'name', or a Policy; got {type(spec).__name__}")
    return POLICIES.from_spec(spec, **overrides)


def as_rgb_array(image: Any) -> np.ndarray:
    """Validate ``image`` and return it as an ``(H, W, 3)`` ``uint8`` array (no copy when possible).

    Accepts RGB arrays, grayscale ``(H, W)`` / ``(H, W, 1)`` arrays (repeated to 3 channels)
    and PIL images of any mode (converted to RGB).

    Example:
        >>> as_rgb_array(np.zeros((2, 3), np.uint8)).shape
        (2, 3, 3)
    """
    if not isinstance(image, np.ndarray):
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None  # type: ignore[assignment]
        if Image is not None and isinstance(image, Image.Image):
            image = np.asarray(image.convert("RGB"))
        else:
            raise TypeError(f"policies take an (H, W, 3) uint8 numpy array or a PIL image; got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"policies take uint8 images (0..255); got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"policies take RGB images shaped (H, W, 3) (use augbal.data.load_rgb); got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"policies need a non-empty image; got shape {image.shape}")
    return np.ascontiguousarray(image)


def crop_ranges(magnitude: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """RandomResizedCrop ``(scale, ratio)`` ranges at ``magnitude`` ``m`` (``light`` and up).

    The smallest kept area is ``max(0.08, 0.65 ** m)``: every unit of magnitude multiplies it
    by 0.65 (m=1: 0.65, m=2: 0.42, m=3: 0.27 of the image; ImageNet's 0.08 floor only from
    m=5.9), so a rarity-scaled policy's strongest crops still keep most of a centred object.
    The aspect ratio is ``[(3/4)^min(m,1), (4/3)^min(m,1)]``.

    Example:
        >>> [round(crop_ranges(m)[0][0], 3) for m in (0, 1, 2, 3)]
        [1.0, 0.65, 0.423, 0.275]
    """
    r = min(magnitude, 1.0)
    return (max(0.08, 0.65**magnitude), 1.0), ((3 / 4) ** r, (4 / 3) ** r)


class PipelinePolicy(Policy):
    """A policy whose ops end on uint8 pixels: ``_build()`` makes ``(pipeline, lut)`` once per
    process (not pickled), ``_pixels`` runs the pipeline and a call normalises its pixels through the LUT."""

    def _build(self) -> tuple[Any, np.ndarray]:
        raise NotImplementedError

    def _pipeline(self) -> tuple[Any, np.ndarray]:
        built = self.__dict__.get("_built")
        if built is None:
            built = self._built = self._build()
        return built

    def _apply(self, image: np.ndarray, seeds: np.random.SeedSequence, label: int | None) -> Any:
        return normalize_to_tensor(self._pixels(image, seeds, label), self._pipeline()[1])


def normalize_to_tensor(image: np.ndarray, lut: np.ndarray) -> Any:
    """``(H, W, 3)`` uint8 -> contiguous float32 ``(3, H, W)`` tensor through a per-channel table.

    ``lut`` is the ``(256, 1, 3)`` float32 table from :func:`normalization_lut`.

    Example:
        >>> lut = normalization_lut((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        >>> normalize_to_tensor(np.full((1, 1, 3), 255, np.uint8), lut).flatten().tolist()
        [1.0, 1.0, 1.0]
    """
    import cv2
    import torch

    out = cv2.LUT(np.ascontiguousarray(image), lut)
    return torch.from_numpy(np.ascontiguousarray(out.reshape(image.shape).transpose(2, 0, 1)))


def normalization_lut(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The ``(256, 1, 3)`` float32 table mapping a uint8 value ``v`` of channel ``c`` to ``(v/255 - mean[c]) / std[c]``."""
    values = np.arange(256, dtype=np.float64)[:, None] / 255.0
    table = (values - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    return table.astype(np.float32).reshape(256, 1, 3)
