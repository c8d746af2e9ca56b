"""Batch mixers: mixup, cutmix, Remix and Balanced-MixUp, at collate time or step time.

A mixer maps ``(images[B, C, H, W], labels)`` to ``(images, soft_targets[B, K])``:
labels are integer classes ``[B]`` or soft targets ``[B, K]``; the output targets are
``float32`` rows summing to 1, which augbal's losses accept. Every random draw (the
mixing weight, the pairing permutation, the cutmix box) comes from the mixer's own CPU
``torch.Generator`` (from ``seed``, or the ``generator`` you pass), never from the
global RNG. Only the small permutation is copied to the images' device, so a mixer
works at step time on GPU batches without a host sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from augbal._registry import Registry
from augbal._validation import check_int, check_probability, check_real, check_seed

__all__ = ["MIXERS", "BalancedMixUp", "CutMix", "MixCollate", "MixUp", "Mixer", "ReMix"]

MIXERS: Registry[Mixer] = Registry("mixer")


def _beta(a: float, b: float, generator: torch.Generator) -> float:
    """One draw of Beta(a, b) from ``generator`` (as the ratio of two gamma draws)."""
    gammas = torch._standard_gamma(torch.tensor([a, b], dtype=torch.float64), generator=generator)
    return float(gammas[0] / gammas.sum())


class Mixer:
    """Base class of the batch mixers.

    ``__call__`` validates the batch and converts labels to soft targets, then calls
    the private hook ``_mix(images, targets, generator)``.

    Args:
        num_classes: number of classes ``K`` (width of the soft targets).
        alpha: concentration of the Beta distribution the mixing weight is drawn from.
        seed: seed of the mixer's own CPU generator.
        generator: a CPU ``torch.Generator`` to draw from instead (``seed`` is then unused).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        alpha: float = 1.0,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        check_int("num_classes", num_classes, low=1)
        check_real("alpha", alpha, low=0, low_open=True)
        check_seed("seed", seed)
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"mixers draw on the CPU and need a CPU generator; got one on {generator.device}")
        self.num_classes = num_classes
        self.alpha = float(alpha)
        self.seed = seed
        self.generator = generator

    def __call__(
        self, images: Tensor, labels: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Mix a batch; returns ``(mixed_images, soft_targets)``.

        ``generator`` overrides the mixer's own generator for this call (``MixCollate``
        uses it to give every DataLoader worker its own stream).
        """
        name = type(self).__name__
        targets = self._soft_targets(images, labels, name)
        return self._mix(images, targets, generator if generator is not None else self._own_generator())

    def _mix(self, images: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain values; a passed-in ``generator`` is runtime state, not one of them."""
        return {"num_classes": self.num_classes, "alpha": self.alpha, "seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **get_params()}``; ``MIXERS.from_spec`` rebuilds the mixer
        (seeded from ``seed``: a ``generator`` passed in is not part of the spec).

        Example:
            >>> MixUp(num_classes=3, alpha=0.4).to_dict()
            {'name': 'mixup', 'num_classes': 3, 'alpha': 0.4, 'seed': 0}
        """
        return MIXERS.spec(self, self.get_params())

    def _own_generator(self) -> torch.Generator:
        """The generator in use, ``generator_``: the one passed in, else one seeded from ``seed``."""
        gen = getattr(self, "generator_", None)
        if gen is None:
            gen = self.generator if self.generator is not None else torch.Generator().manual_seed(self.seed)
            self.generator_ = gen
        return gen

    def _soft_targets(self, images: Any, labels: Any, name: str) -> Tensor:
        """Validate the batch and return ``float32`` soft targets ``[B, K]`` on the images' device.

        Value checks (label range, row sums) run for CPU tensors only, so that a GPU
        batch never waits on a host sync.
        """
        if not isinstance(images, Tensor) or images.ndim != 4:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{name} needs an N, C, H, W image tensor; got {shape}")
        if not isinstance(labels, Tensor):
            labels = torch.as_tensor(labels)
        batch, k = images.shape[0], self.num_classes
        if labels.ndim not in (1, 2) or labels.shape[0] != batch:
            raise ValueError(
                f"{name} needs one label (row) per image; got labels of shape {tuple(labels.shape)} for {batch} images"
            )
        check_values = labels.device.type == "cpu"
        if labels.ndim == 1 and not labels.is_floating_point() and labels.dtype != torch.bool:
            if check_values and batch and (int(labels.min()) < 0 or int(labels.max()) >= k):
                raise ValueError(f"labels must be class indices in [0, {k}); got {sorted(set(labels.tolist()))}")
            index = labels.to(images.device, torch.int64, non_blocking=True)[:, None]
            # scatter, not F.one_hot: one_hot checks the label range with a host sync on CUDA
            return torch.zeros(batch, k, device=images.device).scatter_(1, index, 1.0)
        if labels.ndim == 2 and labels.is_floating_point():
            if labels.shape[1] != k:
                raise ValueError(f"soft targets need num_classes={k} columns; got shape {tuple(labels.shape)}")
            if check_values and batch and not torch.allclose(labels.sum(1), labels.new_ones(batch), atol=1e-4):
                raise ValueError(f"soft targets must sum to 1 per row; got row sums {labels.sum(1).tolist()}")
            return labels.to(images.device, torch.float32, non_blocking=True)
        raise TypeError(
            f"{name} needs integer labels [B] or float soft targets [B, K]; "
            f"got {labels.dtype} of shape {tuple(labels.shape)}"
        )

    def _pairing(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """A random permutation of the batch (drawn on the CPU, moved to the images' device)."""
        return torch.randperm(images.shape[0], generator=generator).to(images.device, non_blocking=True)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator" and not k.endswith("_"))
        return f"{type(self).__name__}({args})"


def _needs_float(images: Tensor, name: str) -> None:
    if not images.is_floating_point():
        raise TypeError(
            f"{name} blends pixels and needs floating-point images (convert or normalise first); got {images.dtype}"
        )


@MIXERS.register("mixup")
class MixUp(Mixer):
    """mixup (Zhang et al. 2018): blend each image with a random partner, ``lam ~ Beta(alpha, alpha)``.

    ``images = lam * x + (1 - lam) * x[perm]`` and the same for the targets.

    Example:
        >>> mix = MixUp(num_classes=3, alpha=0.4, seed=0)
        >>> x, y = mix(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 2]))
        >>> y.shape, torch.allclose(y.sum(1), torch.ones(4))
        (torch.Size([4, 3]), True)
    """

    def _mix(self, images: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _needs_float(images, type(self).__name__)
        lam = _beta(self.alpha, self.alpha, generator)
        perm = self._pairing(images, generator)
        mixed = images.mul(lam).add_(images[perm], alpha=1.0 - lam)
        return mixed, targets.mul(lam).add_(targets[perm], alpha=1.0 - lam)


@MIXERS.register("cutmix")
class CutMix(Mixer):
    """CutMix (Yun et al. 2019): paste a box from a random partner, ``lam ~ Beta(alpha, alpha)``.

    The box has area about ``(1 - lam) * H * W`` and a uniformly drawn centre; it is
    clipped at the image border, and the label weight is corrected to the area actually
    pasted: ``lam_used = 1 - box_area / (H * W)``. Works on any dtype (pixels are copied).

    Example:
        >>> mix = CutMix(num_classes=2, seed=0)
        >>> x, y = mix(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))
        >>> torch.allclose(y.sum(1), torch.ones(2))
        True
    """

    def box(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """Draw ``lam`` and the box ``(top, bottom, left, right)`` (clipped, end-exclusive)."""
        lam = _beta(self.alpha, self.alpha, generator)
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy = int(torch.randint(0, height, (1,), generator=generator))
        cx = int(torch.randint(0, width, (1,), generator=generator))
        top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        return top, bottom, left, right

    def _mix(self, images: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        height, width = images.shape[-2:]
        top, bottom, left, right = self.box(height, width, generator)
        perm = self._pairing(images, generator)
        mixed = images.clone()
        mixed[:, :, top:bottom, left:right] = images[perm, :, top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        return mixed, targets.mul(lam).add_(targets[perm], alpha=1.0 - lam)


@MIXERS.register("remix")
class ReMix(Mixer):
    """Remix (Chou et al. 2020, "Remix: Rebalanced Mixup"): mixup whose label leans to the minority class.

    Images are mixed as in mixup, ``x = lam * x_i + (1 - lam) * x_j``. The label weight
    ``lam_y`` of sample ``i`` is 0 (all label to the minority ``j``) when
    ``n_i / n_j >= kappa`` and ``lam < tau``; 1 (all to the minority ``i``) when
    ``n_i / n_j <= 1 / kappa`` and ``1 - lam < tau``; otherwise ``lam``. For soft input
    targets the class of a row is its argmax.

    Args:
        class_counts: training-set count ``n_c`` of every class (length ``num_classes``).
        kappa: imbalance ratio from which a pair counts as imbalanced (paper: 3).
        tau: label-mass threshold (paper: 0.5).

    Example:
        >>> mix = ReMix(num_classes=2, class_counts=[900, 100], seed=0)
        >>> x, y = mix(torch.rand(4, 3, 8, 8), torch.tensor([0, 0, 1, 1]))
        >>> torch.allclose(y.sum(1), torch.ones(4))
        True
    """

    def __init__(
        self,
        *,
        num_classes: int,
        class_counts: Sequence[int] | np.ndarray | Tensor,
        alpha: float = 1.0,
        kappa: float = 3.0,
        tau: float = 0.5,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(num_classes=num_classes, alpha=alpha, seed=seed, generator=generator)
        rule = f"class_counts needs one positive count per class ({num_classes}), in class order"
        try:
            counts = torch.as_tensor(np.asarray(class_counts, dtype=np.float64), dtype=torch.float64)
        except (TypeError, ValueError):  # a dict, strings, ...: not a count per class
            raise ValueError(f"{rule}; got {class_counts!r}") from None
        if counts.shape != (num_classes,) or not bool((counts > 0).all()):
            raise ValueError(f"{rule}; got {np.asarray(class_counts).tolist()}")
        check_real("kappa", kappa, low=1)
        check_probability("tau", tau)
        self.class_counts = counts.tolist()
        self.kappa = float(kappa)
        self.tau = float(tau)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "class_counts": self.class_counts, "kappa": self.kappa, "tau": self.tau}

    def label_weights(self, classes: Tensor, partners: Tensor, lam: float) -> Tensor:
        """The label weight ``lam_y`` of every pair ``(classes[i], partners[i])`` for image weight ``lam``."""
        counts = torch.tensor(self.class_counts, dtype=torch.float64).to(classes.device, non_blocking=True)
        ratio = counts[classes] / counts[partners]
        lam_y = torch.full(classes.shape, lam, dtype=torch.float64, device=classes.device)
        lam_y = torch.where((ratio >= self.kappa) & (lam < self.tau), torch.zeros_like(lam_y), lam_y)
        lam_y = torch.where((ratio <= 1.0 / self.kappa) & (1.0 - lam < self.tau), torch.ones_like(lam_y), lam_y)
        return lam_y.to(torch.float32)

    def _mix(self, images: Tensor, targets: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        _needs_float(images, type(self).__name__)
        lam = _beta(self.alpha, self.alpha, generator)
        perm = self._pairing(images, generator)
        mixed = images.mul(lam).add_(images[perm], alpha=1.0 - lam)
        classes = targets.argmax(1)
        lam_y = self.label_weights(classes, classes[perm], lam)[:, None]
        return mixed, lam_y * targets + (1.0 - lam_y) * targets[perm]


@MIXERS.register("balanced_mixup")
class BalancedMixUp(Mixer):
    """Balanced-MixUp (Galdran et al. 2021): blend an instance-sampled batch with a class-balanced one.

    ``lam ~ Beta(alpha, 1)`` weighs the class-balanced batch:
    ``x = (1 - lam) * x_instance + lam * x_balanced`` (same for the targets), so with a
    small ``alpha`` (paper: 0.1-0.3) the instance batch dominates and the balanced batch
    adds a little minority signal. Pairing is by position; both batches need the same
    shape. Feed it from two loaders, e.g. ``zip(instance_loader, balanced_loader)`` where
    the second uses a class-balanced sampler, at step time.

    Example:
        >>> mix = BalancedMixUp(num_classes=2, alpha=0.2, seed=0)
        >>> x, y = mix(torch.zeros(2, 3, 4, 4), torch.tensor([0, 0]), torch.ones(2, 3, 4, 4), torch.tensor([1, 1]))
        >>> torch.allclose(x[:, 0, 0, 0], y[:, 1])
        True
    """

    def __init__(
        self, *, num_classes: int, alpha: float = 0.2, seed: int = 0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(num_classes=num_classes, alpha=alpha, seed=seed, generator=generator)

    def __call__(  # type: ignore[override]
        self,
        images: Tensor,
        labels: Tensor,
        balanced_images: Tensor,
        balanced_labels: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Mix the instance batch with the class-balanced batch; returns ``(images, soft_targets)``."""
        name = type(self).__name__
        targets = self._soft_targets(images, labels, name)
        balanced_targets = self._soft_targets(balanced_images, balanced_labels, name)
        if balanced_images.shape != images.shape:
            raise ValueError(
                f"{name} needs batches of the same shape; got {tuple(images.shape)} and {tuple(balanced_images.shape)}"
            )
        _needs_float(images, name)
        gen = generator if generator is not None else self._own_generator()
        lam = _beta(self.alpha, 1.0, gen)
        balanced_images = balanced_images.to(images.device, images.dtype, non_blocking=True)
        mixed = images.mul(1.0 - lam).add_(balanced_images, alpha=lam)
        return mixed, targets.mul(1.0 - lam).add_(balanced_targets, alpha=lam)


class MixCollate:
    """A DataLoader ``collate_fn`` that collates a batch, then mixes it.

    Samples are ``(image, label, *extra)``; the batch comes back as
    ``(images, soft_targets, *extra)``. Inside a DataLoader worker the mixer draws from a
    generator derived from ``(mixer.seed, worker seed)``, so workers do not repeat each
    other's draws and a loader with a seeded generator (``make_loader``) gives the same
    batches run after run. In the main process (``num_workers=0``) the mixer's own
    generator is used.

    Args:
        mixer: any single-batch mixer (``MixUp``, ``CutMix``, ``ReMix``, ...).
        collate_fn: how to collate the samples first (default: torch's ``default_collate``).

    Example:
        >>> collate = MixCollate(MixUp(num_classes=2, seed=0))
        >>> images, targets = collate([(torch.zeros(3, 4, 4), 0), (torch.ones(3, 4, 4), 1)])
        >>> images.shape, targets.shape
        (torch.Size([2, 3, 4, 4]), torch.Size([2, 2]))
    """

    def __init__(self, mixer: Mixer, *, collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        if isinstance(mixer, BalancedMixUp):
            raise TypeError(
                "BalancedMixUp mixes two batches (instance-sampled and class-balanced); call it at step time "
                "with a batch from each loader instead of as a collate_fn"
            )
        if not callable(mixer):
            raise TypeError(f"MixCollate needs a mixer; got {type(mixer).__name__}")
        self.mixer = mixer
        self.collate_fn = collate_fn
        self._worker: tuple[int, torch.Generator] | None = None

    def __call__(self, batch: list[Any]) -> tuple[Any, ...]:
        from torch.utils.data import default_collate

        collated = (self.collate_fn or default_collate)(batch)
        if not isinstance(collated, (list, tuple)) or len(collated) < 2:
            raise TypeError(f"MixCollate needs samples of the form (image, label, ...); got {type(collated).__name__}")
        images, labels, *extra = collated
        images, targets = self.mixer(images, labels, generator=self._worker_generator())
        return (images, targets, *extra)

    def _worker_generator(self) -> torch.Generator | None:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is None:
            return None
        if self._worker is None or self._worker[0] != info.seed:
            entropy = [int(getattr(self.mixer, "seed", 0)), info.seed]
            state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
            self._worker = (info.seed, torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1])))
        return self._worker[1]

    def __repr__(self) -> str:
        return f"MixCollate({self.mixer!r})"
