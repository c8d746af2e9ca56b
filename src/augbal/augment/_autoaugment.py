"""torchvision v2's auto-augment family as seeded augbal policies: ``randaugment``,
``trivialaugment``, ``autoaugment``.

Pipeline (all torchvision v2 on a uint8 CHW tensor): RandomResizedCrop + horizontal flip
(as ``light``), the auto-augment op, then the same lookup-table normalisation as the
albumentations policies. torchvision draws from torch's global RNG, so each call runs
under ``torch.random.fork_rng`` seeded from the call's seed sequence: reproducible per
``Draw`` and the caller's RNG state is left untouched.

Magnitude ``m`` multiplies every op's magnitude table, clipped to the op's valid range
(shear and brightness/colour/contrast/sharpness <= 0.99, rotation <= 180 degrees,
translation <= 150/331 of the side, the largest shift in torchvision's RandAugment and
AutoAugment tables, so one shift never leaves only fill (TrivialAugmentWide shifts up to
32 px, so below 71 px its largest shifts are clipped even at m=1); posterize removes ``m``
times as many bits, keeping >= 1; solarize lowers its threshold ``m`` times as far, >= 0);
ops without a magnitude (AutoContrast, Equalize, Invert, Identity) are unchanged; m=0
skips the auto-augment op.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from augbal._validation import check_int
from augbal.augment._policy import POLICIES, PipelinePolicy, crop_ranges, normalization_lut
from augbal.augment._repeat import forked_rngs

_CAPS = {"ShearX": 0.99, "ShearY": 0.99, "Rotate": 180.0, "Brightness": 0.99, "Color": 0.99,
         "Contrast": 0.99, "Sharpness": 0.99}
_AUTOAUGMENT_VARIANTS = ("imagenet", "cifar10", "svhn")
# the largest shift in torchvision's RandAugment/AutoAugment tables (a fraction of the side): a
# shift by the whole side would leave only fill, so scaled translations stop here
_MAX_SHIFT = 150.0 / 331.0


def _scaled_magnitudes(fn: Any, op: str, m: float, num_bins: int, height: int, width: int) -> Any:
    values = fn(num_bins, height, width)
    if values is None:
        return None
    if op == "Posterize":
        return (8 - (8 - values.float()) * m).round().clamp(1, 8).int()
    if op == "Solarize":
        return (1 - (1 - values) * m).clamp(0, 1)
    shift_caps = {"TranslateX": _MAX_SHIFT * width, "TranslateY": _MAX_SHIFT * height}
    cap = shift_caps.get(op, _CAPS.get(op, float("inf")))
    return (values * m).clamp(max=cap)


def _scale_space(transform: Any, m: float) -> Any:
    """Give ``transform`` (a v2 auto-augment op) an instance-level, ``m``-scaled magnitude table."""
    space = type(transform)._AUGMENTATION_SPACE
    transform._AUGMENTATION_SPACE = {
        op: (partial(_scaled_magnitudes, fn, op, m), signed) for op, (fn, signed) in space.items()
    }
    return transform


class TorchvisionAutoPolicy(PipelinePolicy):
    """Base of the torchvision v2 policies: subclasses build the auto-augment op in ``_auto_op(v2)``.

    Example:
        >>> import numpy as np
        >>> from augbal._draw import Draw
        >>> x = RandAugmentPolicy(size=16)(np.zeros((20, 24, 3), np.uint8), draw=Draw(1))
        >>> tuple(x.shape)
        (3, 16, 16)
    """

    def _auto_op(self, v2: Any) -> Any:
        raise NotImplementedError

    def _build(self) -> tuple[Any, np.ndarray]:
        from torchvision.transforms import v2

        m = self.magnitude
        scale, ratio = crop_ranges(m)
        ops = [
            v2.RandomResizedCrop((self.size, self.size), scale=scale, ratio=ratio, antialias=True),
            v2.RandomHorizontalFlip(p=0.5),
        ]
        if m > 0:
            ops.append(_scale_space(self._auto_op(v2), m))
        return v2.Compose(ops), normalization_lut(self.mean, self.std)

    def _pixels(self, image: np.ndarray, seeds: np.random.SeedSequence, label: int | None) -> np.ndarray:
        import torch

        pipeline, _ = self._pipeline()
        if not image.flags.writeable:  # torch.from_numpy warns on read-only arrays
            image = image.copy()
        with forked_rngs(seeds):
            out = pipeline(torch.from_numpy(image).permute(2, 0, 1))
        return np.ascontiguousarray(out.permute(1, 2, 0).numpy())


@POLICIES.register("randaugment")
class RandAugmentPolicy(TorchvisionAutoPolicy):
    """``randaugment``: torchvision v2 ``RandAugment(num_ops, magnitude=9, num_magnitude_bins=31)``.

    Example:
        >>> RandAugmentPolicy(num_ops=3).get_params()["num_ops"]
        3
    """

    def __init__(self, *, num_ops: int = 2, **params: Any) -> None:
        super().__init__(**params)
        check_int("num_ops", num_ops)
        self.num_ops = int(num_ops)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "num_ops": self.num_ops}

    def _auto_op(self, v2: Any) -> Any:
        return v2.RandAugment(num_ops=self.num_ops)


@POLICIES.register("trivialaugment")
class TrivialAugmentPolicy(TorchvisionAutoPolicy):
    """``trivialaugment``: torchvision v2 ``TrivialAugmentWide()`` (one op, uniform magnitude bin).

    Example:
        >>> TrivialAugmentPolicy().name
        'trivialaugment'
    """

    def _auto_op(self, v2: Any) -> Any:
        return v2.TrivialAugmentWide()


@POLICIES.register("autoaugment")
class AutoAugmentPolicy(TorchvisionAutoPolicy):
    """``autoaugment``: torchvision v2 ``AutoAugment`` with the learned ``variant`` policy
    (``"imagenet"``, ``"cifar10"`` or ``"svhn"``).

    Example:
        >>> AutoAugmentPolicy(variant="cifar10").to_dict()["variant"]
        'cifar10'
    """

    def __init__(self, *, variant: str = "imagenet", **params: Any) -> None:
        super().__init__(**params)
        if variant not in _AUTOAUGMENT_VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(_AUTOAUGMENT_VARIANTS)}; got {variant!r}")
        self.variant = variant

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "variant": self.variant}

    def _auto_op(self, v2: Any) -> Any:
        return v2.AutoAugment(v2.AutoAugmentPolicy(self.variant))
