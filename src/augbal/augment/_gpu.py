"""Batch augmentation ops for image tensors already on the device (GPU or CPU).

Every op takes a whole ``N, C, H, W`` batch (``uint8`` or floating point) and works
on it at once: random choices are drawn per sample with one vectorised call on the
tensor's own device, so there is no Python loop over the batch and no host sync
(no ``.item()``, no ``.cpu()``) in the hot path. Randomness comes from a
``torch.Generator`` on the tensor's device, created lazily from the op's ``seed``
(one per device) or passed explicitly as ``op(images, generator=g)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from augbal._registry import Registry
from augbal._validation import check_choice, check_int, check_probability, check_seed

__all__ = [
    "BATCH_OPS",
    "BatchCompose",
    "BatchHorizontalFlip",
    "BatchNormalize",
    "BatchOp",
    "BatchPadCrop",
    "BatchResize",
]

_PADDING_MODES = ("constant", "edge", "reflect", "symmetric")


class _DeviceGenerators:
    """Mixin: one lazily created ``torch.Generator`` per device, seeded from ``self.seed``.

    Generator states survive pickling (DataLoader workers, checkpoints) as plain byte
    tensors, so an unpickled op continues the same random stream on any device.
    """

    seed: int

    def _generator(self, device: torch.device) -> torch.Generator:
        generators: dict[str, torch.Generator] = self.__dict__.setdefault("generators_", {})
        key = str(device)
        gen = generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            pending = self.__dict__.get("_pending_states", {})
            if key in pending:
                gen.set_state(pending.pop(key))
            else:
                gen.manual_seed(self.seed)
            generators[key] = gen
        return gen

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        states = {key: gen.get_state() for key, gen in state.pop("generators_", {}).items()}
        state["_pending_states"] = {**state.get("_pending_states", {}), **states}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _check_batch(images: Any, who: str) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{who} needs an N, C, H, W image tensor; got {shape}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{who} needs uint8 or floating-point images; got {images.dtype}")


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        pair = (size, size)
    else:
        pair = tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or an (height, width) pair; got {size!r}")
    return pair  # type: ignore[return-value]


class BatchOp(_DeviceGenerators):
    """Base class: ``__call__`` validates the batch, then calls the private hook ``_apply``.

    Deterministic ops ignore ``generator``; random ops use it, or their own generator
    on the batch's device (seeded from ``seed``) when it is ``None``.
    """

    seed: int = 0

    def __call__(self, images: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        _check_batch(images, type(self).__name__)
        return self._apply(images, generator)

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, read from the attributes of the same name."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {name: getattr(self, name) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **get_params()}``; ``BATCH_OPS.from_spec`` rebuilds the op
        (its generator restarts from ``seed``).

        Example:
            >>> BatchHorizontalFlip(p=0.25).to_dict()
            {'name': 'horizontal_flip', 'p': 0.25, 'seed': 0}
        """
        return BATCH_OPS.spec(self, self.get_params())

    def __repr__(self) -> str:
        public = {k: v for k, v in self.__dict__.items() if not k.endswith("_") and not k.startswith("_")}
        args = ", ".join(f"{k}={v!r}" for k, v in public.items())
        return f"{type(self).__name__}({args})"


BATCH_OPS: Registry[BatchOp] = Registry("batch op", base=BatchOp)
"""Every batch op, by name; ``BATCH_OPS.from_spec(op.to_dict())`` rebuilds ``op``."""


@BATCH_OPS.register("horizontal_flip")
class BatchHorizontalFlip(BatchOp):
    """Flip each image left-right with probability ``p``, independently per sample.

    Example:
        >>> x = torch.arange(2 * 1 * 1 * 3, dtype=torch.uint8).reshape(2, 1, 1, 3)
        >>> BatchHorizontalFlip(p=1.0)(x)[:, 0, 0].tolist()
        [[2, 1, 0], [5, 4, 3]]
    """

    def __init__(self, *, p: float = 0.5, seed: int = 0) -> None:
        check_probability("p", p)
        check_seed("seed", seed)
        self.p = p
        self.seed = seed

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Draw the per-sample flip mask (``bool``, shape ``N``) on the batch's device."""
        gen = generator if generator is not None else self._generator(images.device)
        u = torch.rand(images.shape[0], generator=gen, device=images.device)
        return {"flip": u < self.p}

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        flip = self.make_params(images, generator)["flip"]
        return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


@BATCH_OPS.register("pad_crop")
class BatchPadCrop(BatchOp):
    """Pad each image by ``padding``, then crop ``size`` at a random offset drawn per sample.

    The classic CIFAR "random crop with padding" for a whole batch: the batch is padded
    once, and one indexing copy takes every sample's window (no loop over samples).
    ``padding_mode`` follows torchvision: ``constant`` (filled with ``fill``), ``edge``,
    ``reflect`` or ``symmetric``. ``size`` defaults to the input size.

    Example:
        >>> x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
        >>> BatchPadCrop(padding=2, fill=255)(x).shape
        torch.Size([4, 3, 8, 8])
    """

    def __init__(
        self,
        *,
        size: int | Sequence[int] | None = None,
        padding: int = 4,
        padding_mode: str = "constant",
        fill: float = 0,
        seed: int = 0,
    ) -> None:
        check_choice("padding_mode", padding_mode, _PADDING_MODES)
        check_int("padding", padding)
        check_seed("seed", seed)
        self.size = None if size is None else _pair(size, "size")
        self.padding = padding
        self.padding_mode = padding_mode
        self.fill = fill
        self.seed = seed

    def _out_size(self, images: Tensor) -> tuple[int, int]:
        height, width = images.shape[-2:]
        out_h, out_w = self.size or (height, width)
        pad = self.padding
        if out_h > height + 2 * pad or out_w > width + 2 * pad:
            raise ValueError(
                f"the crop must fit in the padded image; got crop {(out_h, out_w)} "
                f"from {(height, width)} padded by {pad}"
            )
        if self.padding_mode in ("reflect", "symmetric"):
            limit = min(height, width) - (self.padding_mode == "reflect")
            if pad > limit:
                raise ValueError(
                    f"{self.padding_mode} padding must be at most {limit} for a {(height, width)} image; got {pad}"
                )
        return out_h, out_w

    def make_params(self, images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Draw per-sample crop offsets ``top``, ``left`` (in padded coordinates, ``int64``, shape ``N``)."""
        gen = generator if generator is not None else self._generator(images.device)
        n, (height, width) = images.shape[0], images.shape[-2:]
        out_h, out_w = self._out_size(images)
        top = torch.randint(0, height + 2 * self.padding - out_h + 1, (n,), generator=gen, device=images.device)
        left = torch.randint(0, width + 2 * self.padding - out_w + 1, (n,), generator=gen, device=images.device)
        return {"top": top, "left": left}

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        params = self.make_params(images, generator)
        out_h, out_w = self._out_size(images)
        padded = self._pad(images)
        # every crop window of the padded batch as a strided view (no copy), then one
        # advanced-indexing copy picks each sample's own window
        n, c, height, width = padded.shape
        sn, sc, sh, sw = padded.stride()
        windows = padded.as_strided(
            (n, c, height - out_h + 1, width - out_w + 1, out_h, out_w), (sn, sc, sh, sw, sh, sw)
        )
        return windows[torch.arange(n, device=images.device), :, params["top"], params["left"]]

    def _pad(self, images: Tensor) -> Tensor:
        pad = self.padding
        if not pad:
            return images
        if self.padding_mode == "constant":
            return F.pad(images, (pad, pad, pad, pad), mode="constant", value=self.fill)
        height, width = images.shape[-2:]
        rows = self._source_index(torch.arange(-pad, height + pad, device=images.device), height)
        cols = self._source_index(torch.arange(-pad, width + pad, device=images.device), width)
        return images.index_select(2, rows).index_select(3, cols)

    def _source_index(self, idx: Tensor, side: int) -> Tensor:
        if self.padding_mode == "reflect":
            idx = idx.abs()
            return torch.where(idx > side - 1, 2 * (side - 1) - idx, idx)
        if self.padding_mode == "symmetric":
            idx = torch.where(idx < 0, -idx - 1, idx)
            return torch.where(idx > side - 1, 2 * side - 1 - idx, idx)
        return idx.clamp(0, side - 1)  # edge


@BATCH_OPS.register("resize")
class BatchResize(BatchOp):
    """Resize a batch to ``size`` (an int means a square ``size x size`` output).

    Bilinear by default, antialiased when shrinking, like torchvision v2. ``uint8`` stays
    ``uint8``: on the CPU through torch's native uint8 kernel (bit-identical to
    torchvision), on CUDA by interpolating in float and rounding (within one grey level
    of the CPU result). Same-size input is returned unchanged.

    Example:
        >>> BatchResize(size=64)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, *, size: int | Sequence[int], mode: str = "bilinear", antialias: bool = True) -> None:
        check_choice("mode", mode, ("nearest", "nearest-exact", "bilinear", "bicubic"))
        self.size = _pair(size, "size")
        self.mode = mode
        self.antialias = antialias

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        if tuple(images.shape[-2:]) == self.size:
            return images
        smooth = self.mode in ("bilinear", "bicubic")
        if images.dtype == torch.uint8 and (images.device.type == "cpu" or not smooth):
            # torch's native uint8 kernels (CPU bilinear/bicubic, nearest anywhere), as torchvision uses
            return F.interpolate(
                images,
                size=self.size,
                mode=self.mode,
                align_corners=False if smooth else None,
                antialias=self.antialias and smooth,
            )
        x = images if images.is_floating_point() else images.float()
        out = F.interpolate(
            x,
            size=self.size,
            mode=self.mode,
            align_corners=False if smooth else None,
            antialias=self.antialias and smooth,
        )
        if images.dtype == torch.uint8:
            out = out.round_().clamp_(0, 255).to(torch.uint8)
        return out


@BATCH_OPS.register("normalize")
class BatchNormalize(BatchOp):
    """Subtract ``mean`` and divide by ``std`` per channel; ``uint8`` input is first scaled to [0, 1].

    Output is ``float32`` for ``uint8`` input, else the input's float dtype.

    Example:
        >>> x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
        >>> BatchNormalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))(x).unique().tolist()
        [1.0]
    """

    def __init__(self, *, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"mean and std need one value per channel; got {len(mean)} means and {len(std)} stds")
        if min(std) <= 0:
            raise ValueError(f"std must be positive; got {tuple(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def _stats(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        cache: dict[tuple[str, torch.dtype], tuple[Tensor, Tensor]] = self.__dict__.setdefault("stats_", {})
        key = (str(device), dtype)
        if key not in cache:
            mean = torch.tensor(self.mean, dtype=dtype).view(1, -1, 1, 1).to(device)
            std = torch.tensor(self.std, dtype=dtype).view(1, -1, 1, 1).to(device)
            cache[key] = (mean, std)
        return cache[key]

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        if images.shape[1] != len(self.mean):
            raise ValueError(f"BatchNormalize has {len(self.mean)} channel statistics; got {images.shape[1]} channels")
        if images.is_floating_point():
            mean, std = self._stats(images.device, images.dtype)
            return (images - mean).div_(std)
        x = images.to(torch.float32).mul_(1.0 / 255)  # a fresh tensor, scaled as torchvision's to_dtype
        mean, std = self._stats(x.device, x.dtype)
        return x.sub_(mean).div_(std)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("stats_", None)
        return state


@BATCH_OPS.register("compose")
class BatchCompose(BatchOp):
    """Apply batch ops in order, all drawing from one generator on the batch's device.

    ``ops`` are batch ops or their specs (``{"name": "pad_crop", "padding": 4}``, ``"horizontal_flip"``).

    Example:
        >>> ops = BatchCompose([BatchHorizontalFlip(), BatchPadCrop(padding=4), BatchResize(size=64),
        ...                     BatchNormalize(mean=(0.5,) * 3, std=(0.25,) * 3)], seed=0)
        >>> out = ops(torch.zeros(8, 3, 32, 32, dtype=torch.uint8))
        >>> out.shape, out.dtype
        (torch.Size([8, 3, 64, 64]), torch.float32)
    """

    def __init__(self, ops: Sequence[BatchOp | str | Mapping[str, Any]], *, seed: int = 0) -> None:
        ops = [BATCH_OPS.from_spec(op) if isinstance(op, (str, Mapping)) else op for op in ops]
        bad = [type(op).__name__ for op in ops if not callable(op)]
        if bad:
            raise TypeError(f"BatchCompose needs callable batch ops; got {', '.join(bad)}")
        check_seed("seed", seed)
        self.ops = ops
        self.seed = seed

    def _apply(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        gen = generator if generator is not None else self._generator(images.device)
        for op in self.ops:
            images = op(images, generator=gen)
        return images
