"""Augmentation: named policies, class-conditional and repeat-aware wrappers, batch mixers, GPU ops."""

from augbal.augment._albu import (
    AlbumentationsPolicy,
    FlipPolicy,
    HeavyPolicy,
    LightPolicy,
    MediumPolicy,
    NonePolicy,
)
from augbal.augment._autoaugment import (
    AutoAugmentPolicy,
    RandAugmentPolicy,
    TorchvisionAutoPolicy,
    TrivialAugmentPolicy,
)
from augbal.augment._conditional import ClassConditional, Mirrored, RarityScaled
from augbal.augment._gpu import (
    BATCH_OPS,
    BatchCompose,
    BatchHorizontalFlip,
    BatchNormalize,
    BatchOp,
    BatchPadCrop,
    BatchResize,
)
from augbal.augment._loader import default_num_workers, make_loader, seed_worker
from augbal.augment._mix import MIXERS, BalancedMixUp, CutMix, MixCollate, Mixer, MixUp, ReMix
from augbal.augment._policy import IMAGENET_MEAN, IMAGENET_STD, POLICIES, Policy, build_policy
from augbal.augment._repeat import RepeatAware, SeedStream, draw_seed_sequence

__all__: list[str] = [
    "BATCH_OPS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIXERS",
    "POLICIES",
    "AlbumentationsPolicy",
    "AutoAugmentPolicy",
    "BalancedMixUp",
    "BatchCompose",
    "BatchHorizontalFlip",
    "BatchNormalize",
    "BatchOp",
    "BatchPadCrop",
    "BatchResize",
    "ClassConditional",
    "CutMix",
    "FlipPolicy",
    "HeavyPolicy",
    "LightPolicy",
    "MediumPolicy",
    "Mirrored",
    "MixCollate",
    "MixUp",
    "Mixer",
    "NonePolicy",
    "Policy",
    "RandAugmentPolicy",
    "RarityScaled",
    "ReMix",
    "RepeatAware",
    "SeedStream",
    "TorchvisionAutoPolicy",
    "TrivialAugmentPolicy",
    "build_policy",
    "default_num_workers",
    "draw_seed_sequence",
    "make_loader",
    "seed_worker",
]
