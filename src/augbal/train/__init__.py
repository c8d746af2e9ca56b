"""The ResNet-18 fine-tuning stage: a run's data, model and weights, freeze policies, losses,
metrics, the validation-loss noise floor, checkpoint selection, feature caches, the loop and
its TensorBoard logger.

Names are imported from their private modules on first use, so ``import augbal.train``
does not import torch.

>>> import augbal.train
>>> "train" in augbal.train.__all__
True
"""

from __future__ import annotations

import importlib

# public name -> private module that defines it (the one table of this package's API)
_EXPORTS: dict[str, str] = {
    # model and weights
    "STAGES": "_model",
    "CosineLinear": "_model",
    "HeadDroppedWarning": "_model",
    "KNOWN_WEIGHTS": "_model",
    "WeightsError": "_model",
    "WeightsInfo": "_model",
    "build_model": "_model",
    "head_linear": "_model",
    "stage_modules": "_model",
    # freeze policies
    "FREEZE_POLICIES": "_freeze",
    "FreezePolicy": "_freeze",
    # checkpoint selection and weight averaging
    "SELECTIONS": "_select",
    "Selector": "_select",
    "Averager": "_select",
    "EMA": "_select",
    "SWA": "_select",
    # losses
    "LOSSES": "_losses",
    "Loss": "_losses",
    # metrics, noise floor, post-hoc adjustment
    "evaluate_logits": "_metrics",
    "expected_calibration_error": "_metrics",
    "NoiseFloor": "_noise",
    "Verdict": "_noise",
    "noise_floor": "_noise",
    "volatility": "_noise",
    "worry_verdict": "_noise",
    "adjust_logits": "_posthoc",
    "estimate_prior_em": "_posthoc",
    "tau_normalize": "_posthoc",
    # caches and feature-space resampling
    "FEATURE_RESAMPLERS": "_features",
    "FeatureCache": "_cache",
    "CachedViews": "_cache",
    "resample_features": "_features",
    "trunk": "_cache",
    # optimisers, schedules, LR finder
    "OPTIMIZERS": "_optim",
    "SCHEDULES": "_optim",
    "build_optimizer": "_optim",
    "build_scheduler": "_optim",
    "find_lr": "_optim",
    "LRFinderResult": "_optim",
    # the data of a run: a recipe's data section, the benchmark tasks
    "DataSplits": "_data",
    "resolve_data": "_data",
    "seedlike3_task": "_data",
    "cifar10_lt_task": "_data",
    # the run
    "RunResult": "_loop",
    "train": "_loop",
    "lr_find": "_loop",
    "read_history": "_loop",
    "check_checkpoint": "_evaluate",
    "evaluate": "_evaluate",
    "evaluate_test": "_evaluate",
    "write_run_report": "_report",
    # logging
    "TensorBoardLogger": "_tensorboard",
    "history_scalars": "_tensorboard",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'augbal.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
