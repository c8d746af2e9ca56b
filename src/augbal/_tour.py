"""The ``augbal demo`` pipeline: every stage that exists, run on the embedded images."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Validation keeps the skew but at another prior than train; test is balanced. Counts
# are (train, val, test) per class; None = all remaining images go to train.
DEMO_SPLIT = {"deer": (None, 40, 20), "dog": (None, 20, 20), "cat": (None, 8, 20)}
DEMO_WEIGHTINGS = ("instance", "sqrt", "balanced")


@dataclass
class DemoRun:
    """What ``run_demo`` produced: the indices, sampler reports and output files."""

    out_dir: Path
    index: object
    split: object
    sampler_reports: dict[str, object] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def run_demo(out_dir: str | Path, *, seed: int = 0) -> DemoRun:
    """Write the demo images, scan, split, sample one epoch per weighting, augment.

    Example:
        >>> import tempfile
        >>> run = run_demo(tempfile.mkdtemp(), seed=0)
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
    return run


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
