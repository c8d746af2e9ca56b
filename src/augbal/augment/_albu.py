"""Policies built from albumentations 2.x: ``none``, ``flip``, ``light``, ``medium``, ``heavy``.

All ops after the first run at the output size (crop/resize first), on uint8, then one
lookup table normalises to float32 CHW. albumentations draws from its own numpy
``Generator`` and ``random.Random``; augbal replaces both on every call with generators
derived from the call's seed sequence, so a ``Draw`` always reproduces the same bytes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from augbal.augment._policy import POLICIES, PipelinePolicy, crop_ranges, normalization_lut
from augbal.augment._repeat import numpy_python_rngs


def _albumentations() -> Any:
    # albumentations asks PyPI for a newer version on import unless told not to
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


class AlbumentationsPolicy(PipelinePolicy):
    """Base of the albumentations policies: subclasses list their ops in ``_ops(A, m)``.

    Example:
        >>> import numpy as np
        >>> from augbal._draw import Draw
        >>> x = MediumPolicy(size=16)(np.zeros((20, 20, 3), np.uint8), draw=Draw(0))
        >>> tuple(x.shape)
        (3, 16, 16)
    """

    def _ops(self, A: Any, m: float) -> list[Any]:
        raise NotImplementedError

    def _build(self) -> tuple[Any, np.ndarray]:
        A = _albumentations()
        # one image per call: no other target whose shape could disagree (the check cost ~6 us a call)
        compose = A.Compose(self._ops(A, self.magnitude), p=1.0, seed=0, is_check_shapes=False)
        return compose, normalization_lut(self.mean, self.std)

    def _pixels(self, image: np.ndarray, seeds: np.random.SeedSequence, label: int | None) -> np.ndarray:
        compose, _ = self._pipeline()
        # one generator pair per policy (per process: not pickled), re-seeded for every call
        rngs = self._built_rngs = numpy_python_rngs(seeds, out=self.__dict__.get("_built_rngs"))
        compose.set_random_state(*rngs)
        return compose(image=image)["image"]


def _resize(A: Any, size: int) -> Any:
    return A.Resize(size, size, area_for_downscale="image")


def _crop(A: Any, size: int, m: float) -> Any:
    """RandomResizedCrop with the ranges of :func:`crop_ranges` (area >= max(0.08, 0.65^m))."""
    scale, ratio = crop_ranges(m)
    return A.RandomResizedCrop((size, size), scale=scale, ratio=ratio, area_for_downscale="image")


def _colour_affine(A: Any, m: float) -> list[Any]:
    """ColorJitter (p=0.8) with brightness/contrast/saturation factors in [max(0.1, 0.75^m), 1 + min(0.9, 0.25 m)]
    (m=1: 0.75..1.25, as ColorJitter(0.25); the darkening grows geometrically so that strong magnitudes
    do not turn images black), hue ±min(0.5, 0.05 m);
    Affine (p=0.5) with rotation ±min(180, 10 m) degrees, translation ±min(0.45, 0.05 m) of the side,
    one scale for both axes in [max(0.1, 1 - 0.1 m), 1 + 0.1 m], zero fill."""
    if m <= 0:
        return []
    factors = (max(0.1, 0.75**m), 1.0 + min(0.9, 0.25 * m))
    return [
        A.ColorJitter(brightness=factors, contrast=factors, saturation=factors, hue=min(0.5, 0.05 * m), p=0.8),
        A.Affine(
            rotate=(-min(180.0, 10.0 * m), min(180.0, 10.0 * m)),
            translate_percent=(-min(0.45, 0.05 * m), min(0.45, 0.05 * m)),
            scale=(max(0.1, 1.0 - 0.1 * m), 1.0 + 0.1 * m),
            keep_ratio=True,  # one zoom for both axes (albumentations draws x and y apart by default)
            fill=0,
            p=0.5,
        ),
    ]


def _degrade(A: Any, m: float) -> list[Any]:
    """One of GaussianBlur (sigma up to max(0.2, m)) or GaussNoise (std up to min(0.5, 0.06 m) of
    the range), p=0.5; CoarseDropout (p=0.5) of 1..max(1, round(2 m)) zero holes whose sides are
    min(0.1, 0.2 m)..min(0.5, 0.2 m) of the image side."""
    if m <= 0:
        return []
    hole = (min(0.1, 0.2 * m), min(0.5, 0.2 * m))
    return [
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=0, sigma_limit=(0.1, max(0.2, m)), p=1.0),
                A.GaussNoise(std_range=(0.0, min(0.5, 0.06 * m)), p=1.0),
            ],
            p=0.5,
        ),
        A.CoarseDropout(
            num_holes_range=(1, max(1, round(2 * m))),
            hole_height_range=hole,
            hole_width_range=hole,
            fill=0,
            p=0.5,
        ),
    ]


@POLICIES.register("none")
class NonePolicy(AlbumentationsPolicy):
    """``none``: resize to ``size`` x ``size`` and normalise; no randomness (``magnitude`` unused).

    Example:
        >>> import numpy as np
        >>> x = NonePolicy(size=4, mean=(0, 0, 0), std=(1, 1, 1))(np.full((8, 6, 3), 255, np.uint8))
        >>> float(x.min()), float(x.max())
        (1.0, 1.0)
    """

    deterministic = True

    def _ops(self, A: Any, m: float) -> list[Any]:
        return [_resize(A, self.size)]


@POLICIES.register("flip")
class FlipPolicy(AlbumentationsPolicy):
    """``flip``: resize, horizontal flip with p=0.5 (``magnitude`` unused), normalise.

    Example:
        >>> import numpy as np
        >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 0] = 255
        >>> outs = {FlipPolicy(size=4, seed=s)(img)[0, 0, 0].item() > 0 for s in range(8)}
        >>> sorted(outs)
        [False, True]
    """

    def _ops(self, A: Any, m: float) -> list[Any]:
        return [_resize(A, self.size), A.HorizontalFlip(p=0.5)]


@POLICIES.register("light")
class LightPolicy(AlbumentationsPolicy):
    """``light``: random resized crop + horizontal flip.

    Magnitude ``m``: crop area fraction in ``[max(0.08, 0.65^m), 1]``, aspect ratio in
    ``[(3/4)^min(m,1), (4/3)^min(m,1)]`` (m=1: area 0.65..1, ratio 3/4..4/3; m=3: area
    0.27..1); flip p=0.5 always.

    Example:
        >>> LightPolicy(size=32).to_dict()["name"]
        'light'
    """

    def _ops(self, A: Any, m: float) -> list[Any]:
        return [_crop(A, self.size, m), A.HorizontalFlip(p=0.5)]


@POLICIES.register("medium")
class MediumPolicy(AlbumentationsPolicy):
    """``medium``: ``light`` + colour jitter + small affine.

    Magnitude ``m`` (m=0 drops colour and affine): ColorJitter (p=0.8) brightness, contrast and
    saturation factors in ``[max(0.1, 0.75^m), 1 + min(0.9, 0.25 m)]`` (m=1: 0.75..1.25; m=3:
    0.42..1.75), hue ``±min(0.5, 0.05 m)``; Affine (p=0.5) rotation
    ``±min(180, 10 m)`` degrees, translation ``±min(0.45, 0.05 m)`` of the side, one scale
    for both axes (aspect kept) in ``[max(0.1, 1 - 0.1 m), 1 + 0.1 m]``, zero fill; crop and
    flip as ``light``.

    Example:
        >>> MediumPolicy(magnitude=2.0).magnitude
        2.0
    """

    def _ops(self, A: Any, m: float) -> list[Any]:
        return [_crop(A, self.size, m), A.HorizontalFlip(p=0.5), *_colour_affine(A, m)]


@POLICIES.register("heavy")
class HeavyPolicy(AlbumentationsPolicy):
    """``heavy``: ``medium`` + blur or noise + cutout (CoarseDropout).

    Magnitude ``m`` (m=0 drops them): one of GaussianBlur (sigma ``0.1..max(0.2, m)``) or
    GaussNoise (std up to ``min(0.5, 0.06 m)`` of the value range) with p=0.5; CoarseDropout
    (p=0.5) of ``1..max(1, round(2 m))`` zero-filled holes with sides ``min(0.1, 0.2 m)`` to
    ``min(0.5, 0.2 m)`` of the image side; crop, flip, colour and affine as ``medium``.

    Example:
        >>> HeavyPolicy(size=8).size
        8
    """

    def _ops(self, A: Any, m: float) -> list[Any]:
        return [_crop(A, self.size, m), A.HorizontalFlip(p=0.5), *_colour_affine(A, m), *_degrade(A, m)]

