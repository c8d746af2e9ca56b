"""Time per training run with the feature / activation cache vs recomputing the frozen trunk.

Two comparisons on the seedlike-3 task of ``../shared/DESIGN.md`` (deer/dog/cat, train
drawn 4500/450/45 from the CIFAR-10 train images with a seeded permutation, test = the
balanced CIFAR test images of those classes; backbone ``weights/resnet18-cifar7-64px.pth``,
inputs 32 -> 64 px, CIFAR mean/std), AdamW (lr 1e-3, wd 1e-4), batch 128, plain CE:

1. **head only**, no augmentation: (a) the plain loop decodes, transforms and runs the
   whole frozen backbone every epoch; (b) ``FeatureCache.views(..., upto="features")``
   computes the 512-d features once, then the head trains on ``CachedViews``.
2. **layer4 + head**, with on-line flip/crop augmentation (augbal's ``light`` policy:
   random resized crop + horizontal flip): (a) the plain loop augments every image every
   epoch (``Draw(i, 0, epoch)``) and runs stem..layer3 (frozen, no grad) + layer4 + fc;
   (b) ``upto="layer3"`` caches ``--views`` K augmented views of every image, and epoch
   ``e`` reads view ``e mod K`` (``CachedViews``' ``(repeat + epoch) mod K`` with repeat 0),
   training layer4 + fc (``tail(model, "layer3")``) on them.

Both cached runs are timed twice: *cold* (an empty cache: building it is part of the run)
and *warm* (the cache a previous run of the grid left: what every further strategy/seed of
a benchmark grid pays). The training loop here is this script's own minimal loop (the
real ``augbal.train`` loop is written in parallel); it is the same for (a) and (b) but for
where a batch's input comes from (fused AdamW in both). Same seed, same batch order for (a)
and (b).

    python benchmarks/bench_train_cache.py --scale 0.2 --epochs 20 --views 4 --threads 2

``--scale`` shrinks the 4500/450/45 train counts (and the 1000/class test) for a shared
CPU; accuracy is measured on the test images after the last epoch (balanced accuracy,
scikit-learn), untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from sklearn.metrics import balanced_accuracy_score

from augbal._draw import Draw, DrawBatch
from augbal.augment import build_policy
from augbal.data import ImageIndex, load_rgb
from augbal.train._cache import FeatureCache, tail, trunk

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
CLASSES = ("deer", "dog", "cat")
TRAIN_COUNTS = (4500, 450, 45)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# --------------------------------------------------------------------------- data


def extract(tar_path: Path, dest: Path) -> Path:
    """Extract the deer/dog/cat train and test images once (a marker file says it is done)."""
    marker = dest / ".done"
    if marker.exists():
        return dest
    wanted = {f"{split}/{c}/" for split in ("train", "test") for c in CLASSES}
    with tarfile.open(tar_path) as tf:
        members = [m for m in tf.getmembers() if m.isfile() and any(w in m.name for w in wanted)]
        tf.extractall(dest, members=members, filter="data")
    marker.write_text("ok\n")
    return dest


def _files(root: Path, split: str, cls: str) -> list[Path]:
    hits = sorted(root.rglob(f"{split}/{cls}/*.jpg"))
    if not hits:
        raise SystemExit(f"no {split}/{cls}/*.jpg under {root}")
    return hits


def seedlike3(root: Path, scale: float, seed: int) -> tuple[ImageIndex, ImageIndex]:
    """Train (4500/450/45 x scale, seeded permutation) and test (1000/class x scale)."""
    rng = np.random.default_rng(seed)
    train_paths, train_labels, test_paths, test_labels = [], [], [], []
    for label, (cls, n) in enumerate(zip(CLASSES, TRAIN_COUNTS)):
        files = _files(root, "train", cls)
        pick = rng.permutation(len(files))[: max(2, round(n * scale))]
        train_paths += [str(files[i]) for i in sorted(pick)]
        train_labels += [label] * len(pick)
        test = _files(root, "test", cls)[: max(2, round(1000 * scale))]
        test_paths += [str(p) for p in test]
        test_labels += [label] * len(test)
    return (
        ImageIndex.from_arrays(train_paths, train_labels, CLASSES),
        ImageIndex.from_arrays(test_paths, test_labels, CLASSES),
    )


def backbone(weights: Path) -> torch.nn.Module:
    torch.manual_seed(0)  # the new head's initial weights: the same for every run
    model = torchvision.models.resnet18(num_classes=7)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.fc = torch.nn.Linear(512, len(CLASSES))
    return model


def sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def epoch_order(n: int, seed: int, epoch: int, batch: int) -> list[np.ndarray]:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + batch] for i in range(0, n, batch)]


def images(index: ImageIndex, idx: np.ndarray, policy, epoch: int) -> torch.Tensor:
    return torch.stack(
        [
            policy(load_rgb(index.paths[i]), label=int(index.labels[i]), draw=Draw(int(i), 0, epoch))
            for i in idx.tolist()
        ]
    )


# --------------------------------------------------------------------------- the runs


def run_plain(model, index, policy, *, stage: str, epochs: int, batch: int, seed: int) -> dict:
    """The plain loop: every epoch loads, transforms and runs the frozen part again."""
    front, back = trunk(model, stage), tail(model, stage)
    front.eval().requires_grad_(False)
    back.train()
    opt = torch.optim.AdamW(back.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
    y_all = torch.from_numpy(index.labels)
    data_s = front_s = step_s = 0.0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for idx in epoch_order(len(index), seed, epoch, batch):
            t = time.perf_counter()
            x = images(index, idx, policy, epoch)
            t1 = time.perf_counter()
            with torch.no_grad():
                h = front(x)
            t2 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(back(h), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t3 = time.perf_counter()
            data_s, front_s, step_s = data_s + t1 - t, front_s + t2 - t1, step_s + t3 - t2
    total = time.perf_counter() - t0
    return {"seconds": total, "data_s": data_s, "frozen_forward_s": front_s, "train_step_s": step_s}


def run_cached(model, index, policy, cache, weights_hash, *, stage, epochs, batch, seed, views) -> dict:
    """The cached loop: the frozen part's outputs come from ``FeatureCache``."""
    t0 = time.perf_counter()
    cached = cache.views(model, weights_hash, index, upto=stage, policy=policy, num_views=views, batch_size=256)
    build_s = time.perf_counter() - t0
    back = tail(model, stage)
    back.train()
    opt = torch.optim.AdamW(back.parameters(), lr=1e-3, weight_decay=1e-4, fused=True)
    step_s = 0.0
    for epoch in range(epochs):
        for idx in epoch_order(len(index), seed, epoch, batch):
            x, y = cached.__getitems__(DrawBatch(idx, np.zeros_like(idx), epoch))
            t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(back(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step_s += time.perf_counter() - t
    total = time.perf_counter() - t0
    return {
        "seconds": total,
        "cache_s": build_s,
        "cache_forward_s": cached.report["forward_seconds"],
        "cache_computed_rows": cached.report["computed"],
        "train_step_s": step_s,
        "read_s": total - build_s - step_s,
    }


def test_accuracy(model, test: ImageIndex, eval_policy) -> float:
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(test), 256):
            idx = np.arange(i, min(len(test), i + 256))
            preds.append(model(images(test, idx, eval_policy, 0)).argmax(1).numpy())
    return float(balanced_accuracy_score(test.labels, np.concatenate(preds)))


def warm_up(model, index: ImageIndex, policy) -> None:
    """One untimed forward/backward pass and a few decodes: the first run pays no one-time costs."""
    x = images(index, np.arange(min(len(index), 32)), policy, 0)
    model(x).sum().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the seedlike-3 counts")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--views", type=int, default=4, help="K cached augmented views (layer4 case)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="head,layer4")
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"), help="cache storage dtype")
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "augbal-bench-train-cache")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.shared / "weights" / "resnet18-cifar7-64px.pth"
    root = extract(args.shared / "datasets" / "cifar10-jpg.tar.gz", args.work / "cifar")
    train, test = seedlike3(root, args.scale, args.seed)
    weights_hash = sha256(weights)
    eval_policy = build_policy("none", size=64, mean=CIFAR_MEAN, std=CIFAR_STD)
    aug_policy = build_policy("light", size=64, mean=CIFAR_MEAN, std=CIFAR_STD, seed=args.seed)
    print(
        f"train {train.class_counts().tolist()} test {test.class_counts().tolist()}, {args.epochs} epochs, "
        f"batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        flush=True,
    )
    warm_up(backbone(weights), train, aug_policy)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "train": train.class_counts().tolist()}
    common = dict(epochs=args.epochs, batch=args.batch, seed=args.seed)
    cases = {
        "head": ("features", eval_policy, 1),
        "layer4": ("layer3", aug_policy, args.views),
    }
    for part in args.parts.split(","):
        stage, policy, views = cases[part]
        cache_dir = args.work / f"cache-{os.getpid()}-{part}"
        out = {}
        model = backbone(weights)
        out["plain"] = run_plain(model, train, policy, stage=stage, **common)
        out["plain"]["test_bacc"] = test_accuracy(model, test, eval_policy)
        print(part, "plain", json.dumps(out["plain"]), flush=True)
        for temp in ("cold", "warm"):
            model = backbone(weights)
            cache = FeatureCache(cache_dir, dtype=args.dtype)
            out[temp] = run_cached(model, train, policy, cache, weights_hash, stage=stage, views=views, **common)
            out[temp]["test_bacc"] = test_accuracy(model, test, eval_policy)
            print(part, temp, json.dumps(out[temp]), flush=True)
        out["speedup_cold"] = out["plain"]["seconds"] / out["cold"]["seconds"]
        out["speedup_warm"] = out["plain"]["seconds"] / out["warm"]["seconds"]
        print(f"{part}: speed-up cold {out['speedup_cold']:.2f}x, warm {out['speedup_warm']:.2f}x", flush=True)
        results[part] = out
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
