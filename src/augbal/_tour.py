"""The ``augbal demo`` pipeline: every stage that exists, run on the embedded images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Validation keeps the skew but at another prior than train; test is balanced. Counts
# are (train, val, test) per class; None = all remaining images go to train.
DEMO_SPLIT = {"deer": (None, 40, 20), "dog": (None, 20, 20), "cat": (None, 8, 20)}
DEMO_WEIGHTINGS = ("instance", "sqrt", "balanced")
#: the demo's bench grid: the baselines, resampling, repeat-aware augmentation and a loss fix
DEMO_STRATEGIES = ("ce", "wce:inverse", "oversample", "oversample-augment", "logit-adjust")
DEMO_SEEDS = 2
#: the one command that runs the real benchmark (needs ../shared, about 35 min on 2 cores)
SEEDLIKE3_COMMAND = "augbal bench --recipe recipes/seedlike-3-bench.yaml --out bench-seedlike-3"


@dataclass
class DemoRun:
    """What ``run_demo`` produced: the indices, sampler reports and output files."""

    out_dir: Path
    index: object
    split: object
    sampler_reports: dict[str, object] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    build: object = None
    bench: object = None
    report: object = None
    weights: str = "none"


def run_demo(out_dir: str | Path, *, seed: int = 0, bench: bool = True, progress=None) -> DemoRun:
    """Write the demo images, scan, split, sample one epoch per weighting, augment, build a
    balanced dataset, and (``bench=True``) run a small bench grid and write its report.

    Example:
        >>> import tempfile
        >>> run = run_demo(tempfile.mkdtemp(), seed=0, bench=False)
        >>> run.split.counts()["test"]
        {'cat': 20, 'deer': 20, 'dog': 20}
        >>> run.sampler_reports["balanced"].class_counts
        {0: 238, 1: 237, 2: 237}
    """
    from augbal._validation import check_seed
    from augbal.data import demo_dataset, scan, split, write_manifest, write_problems
    from augbal.sampling import ClassAwareSampler

    seed = check_seed("seed", seed)  # before any file is written
    out = Path(out_dir)
    run = DemoRun(out_dir=out, index=None, split=None)
    run.files["images"] = demo_dataset(out / "images")
    run.index = scan(run.files["images"])
    run.files["problems"] = write_problems(run.index, out / "problems.csv")
    run.split = split(run.index, counts=DEMO_SPLIT, seed=seed)
    for name, side in zip(("train", "val", "test"), run.split):
        run.files[f"{name} manifest"] = write_manifest(side, out / "splits" / f"{name}.csv")

    train = run.split.train
    for weighting in DEMO_WEIGHTINGS:
        sampler = ClassAwareSampler(train.labels, weighting=weighting, seed=seed)
        for _ in sampler:
            pass
        run.sampler_reports[weighting] = sampler.report()

    run.files["augmentation"] = _augmentation_grid(train, out / "augment" / "repeats.png", seed=seed)
    run.build = _build(run.files["images"], out / "balanced", seed=seed)
    run.files["balanced dataset"] = out / "balanced"
    if bench:
        run.files["split folders"] = _split_tree(run.split, out / "split")
        run.weights, base = _bench_base(run.files["split folders"], out / "cache")
        run.bench, run.report = _bench(base, out / "bench", seed=seed, progress=progress)
        run.files["bench report"] = Path(run.report.html)
    return run


def _build(images: Path, out: Path, *, seed: int):
    """The README's build: balanced train with light augmentation, no original used more than 8 times."""
    from augbal.build import build_dataset

    return build_dataset(images, out, policy="light", max_multiplier=8, seed=seed, workers=1, overwrite=True)


def _split_tree(parts, root: Path) -> Path:
    """The demo split as ``root/{train,val,test}/<class>/`` (hard links where possible)."""
    import os
    import shutil

    if root.exists():
        shutil.rmtree(root)
    for name, side in zip(("train", "val", "test"), parts):
        for path, label in zip(side.paths, side.labels):
            target = root / name / side.classes[int(label)] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)
    return root


def imagenet_weights_cached() -> bool:
    """True when torchvision's cache already holds the ImageNet ResNet-18 weights (nothing is downloaded)."""
    import os

    from torch.hub import get_dir
    from torchvision.models import ResNet18_Weights

    name = os.path.basename(ResNet18_Weights.IMAGENET1K_V1.url)
    return os.path.isfile(os.path.join(get_dir(), "checkpoints", name))


def _bench_base(split_root: Path, cache: Path) -> tuple[str, dict]:
    """The demo's base recipe: the head of a ResNet-18 trained on cached features (ImageNet
    weights when torchvision's cache has them, else random ones)."""
    weights = "imagenet" if imagenet_weights_cached() else "none"
    model = {"weights": weights}
    if weights == "none":
        model.update(input_size=32, mean=[0.4914, 0.4822, 0.4465], std=[0.2470, 0.2435, 0.2616])
    base = {
        "data": {"source": str(split_root), "splits": "existing"},
        "model": model,
        "freeze": "head",
        "optim": {"name": "adam", "lr": 3e-3, "weight_decay": 1e-4},
        "epochs": 12,
        "batch_size": 64,
        "cache": {"enabled": True, "views": 4, "dir": str(cache)},
        "noise_floor": {"n_boot": 200, "seed": 0},
        "device": "cpu",
        "num_workers": 0,
    }
    return weights, base


def _bench(base: dict, out: Path, *, seed: int, progress=None):
    from augbal.bench import expand_grid, load_bench, run_grid, write_report

    spec = load_bench({"base": base, "strategies": list(DEMO_STRATEGIES), "seeds": [seed + k for k in range(DEMO_SEEDS)],
                       "splits": [{"name": "demo", "data": base["data"]}]})
    result = run_grid(expand_grid(spec), out, progress=progress)
    notes = []
    if base["model"]["weights"] == "none":
        notes.append("The demo fine-tunes from random weights (torchvision's cache holds no ImageNet ResNet-18): "
                     "its numbers only show the pipeline working.")
    notes.append(f"The real benchmark: {SEEDLIKE3_COMMAND}")
    report = write_report(result.records, out / "report", title="augbal demo: 5 strategies x 2 seeds on the demo images",
                          command="augbal demo", notes=notes)
    return result, report


def _augmentation_grid(train, path: Path, *, seed: int, repeats: int = 8) -> Path:
    """One row per class: the original image, then ``repeats`` draws of a rarity-scaled policy."""
    from PIL import Image

    from augbal._draw import Draw
    from augbal.augment import RarityScaled
    from augbal.data import load_rgb

    size = 64
    policy = RarityScaled(base="medium", counts=train.class_counts().tolist(), size=size, seed=seed)
    mean = np.asarray(policy.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(policy.std, dtype=np.float32)[:, None, None]
    rows = []
    for label in range(len(train.classes)):
        i = int(np.flatnonzero(train.labels == label)[0])
        image = load_rgb(train.paths[i])
        tiles = [np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))]
        for k in range(repeats):
            x = policy(image, label=label, draw=Draw(i, k, 0)).numpy() * std + mean
            tiles.append((np.clip(x, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0))
        rows.append(np.concatenate(tiles, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path
