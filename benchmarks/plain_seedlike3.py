"""The plain-PyTorch reference recipes of DESIGN.md on seedlike-3, without augbal's training stage.

What a practitioner writes first: torchvision's ``resnet18`` with the offline backbone
(``../shared/weights/resnet18-cifar7-64px.pth``), a new 3-way head, ``model.train()``
every epoch (so BatchNorm running statistics of the frozen blocks follow the skewed
training batches, as they do in a plain loop), Adam lr 1e-3 weight decay 1e-4, batch 128,
20 epochs, the **last** checkpoint. Six recipes:

- ``ce-head``, ``wce-head`` (inverse-frequency weights ``n / (C n_c)``), ``wrs-head``
  (``torch.utils.data.WeightedRandomSampler``, weight ``1 / n_c`` per image): head only,
  no augmentation;
- ``ce-layer4``, ``wce-layer4``, ``wrs-layer4``: layer4 + head trained, on-line
  flip/crop augmentation (pad-4 random crop of the 32 px image + horizontal flip, then
  bilinear upsampling to 64 px).

The data are augbal's ``seedlike3_task`` sides (the split DESIGN.md defines: train
4500/450/45, validation 450/90/18 from the remaining train images, test 1000 per class),
decoded once into a uint8 tensor; every epoch then runs the whole network (no cache). The
unweighted validation loss is recorded per epoch and its volatility (std of the
epoch-to-epoch differences, augbal's ``volatility``) reported with the test balanced
accuracy of the last epoch.

    python benchmarks/plain_seedlike3.py --root /path/to/cifar10-jpg --seeds 0 --out plain.json

``--root`` defaults to ``../shared/datasets/cifar10-jpg.tar.gz`` (extracted once into
augbal's cache). ``--recipes`` picks a subset (comma-separated).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from sklearn.metrics import balanced_accuracy_score

from augbal.data import load_rgb
from augbal.train._data import seedlike3_task
from augbal.train._noise import volatility

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)
RECIPES = ("ce-head", "wce-head", "wrs-head", "ce-layer4", "wce-layer4", "wrs-layer4")


def decode(side) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.stack([load_rgb(p) for p in side.paths])  # (N, 32, 32, 3) uint8
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(side.labels, dtype=torch.long)


def prepare(x: torch.Tensor, *, augment: bool, gen: torch.Generator) -> torch.Tensor:
    """uint8 (B, 3, 32, 32) -> normalised float (B, 3, 64, 64); flip/crop when ``augment``."""
    x = x.float() / 255
    if augment:
        padded = F.pad(x, (4, 4, 4, 4), mode="constant", value=0.0)
        off = torch.randint(0, 9, (x.shape[0], 2), generator=gen)
        x = torch.stack([padded[i, :, a : a + 32, b : b + 32] for i, (a, b) in enumerate(off.tolist())])
        flip = torch.rand(x.shape[0], generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    return (x - MEAN) / STD


@torch.no_grad()
def predict(model, x, batch=500):
    model.eval()
    return torch.cat([model(prepare(x[i : i + batch], augment=False, gen=None)) for i in range(0, len(x), batch)])


def run(recipe: str, seed: int, data, weights: Path, epochs: int) -> dict:
    (xtr, ytr), (xva, yva), (xte, yte) = data
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=7)
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.fc = torch.nn.Linear(512, 3)
    trained = ["fc"] + (["layer4"] if recipe.endswith("layer4") else [])
    for name, p in model.named_parameters():
        p.requires_grad = name.split(".")[0] in trained
    counts = torch.bincount(ytr, minlength=3).float()
    weight = (counts.sum() / (3 * counts)) if recipe.startswith("wce") else None
    if recipe.startswith("wrs"):
        sampler = torch.utils.data.WeightedRandomSampler(
            (1.0 / counts)[ytr].double(), num_samples=len(ytr), replacement=True, generator=gen
        )
    else:
        sampler = torch.utils.data.RandomSampler(range(len(ytr)), generator=gen)
    batches = torch.utils.data.BatchSampler(sampler, 128, drop_last=False)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    augment = recipe.endswith("layer4")
    val_losses, start = [], time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in batches:
            idx = torch.as_tensor(idx)
            loss = F.cross_entropy(model(prepare(xtr[idx], augment=augment, gen=gen)), ytr[idx], weight=weight)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
        val_losses.append(float(F.cross_entropy(predict(model, xva), yva)))
    wall = time.perf_counter() - start
    test_pred = predict(model, xte).argmax(1).numpy()
    val_pred = predict(model, xva).argmax(1).numpy()
    return {
        "recipe": recipe,
        "seed": seed,
        "test_balanced_accuracy": float(balanced_accuracy_score(yte.numpy(), test_pred)),
        "val_balanced_accuracy": float(balanced_accuracy_score(yva.numpy(), val_pred)),
        "val_loss": val_losses,
        "volatility": volatility(val_losses),
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(SHARED / "datasets" / "cifar10-jpg.tar.gz"))
    ap.add_argument("--weights", default=str(SHARED / "weights" / "resnet18-cifar7-64px.pth"))
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (the split and the run)")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="plain_seedlike3.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        ap.error(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    done = {(r["recipe"], r["seed"]) for r in results}
    for seed in (int(s) for s in args.seeds.split(",")):
        task = seedlike3_task(args.root, seed=seed)
        data = decode(task.train), decode(task.val), decode(task.test)
        for recipe in recipes:
            if (recipe, seed) in done:
                continue
            r = run(recipe, seed, data, Path(args.weights), args.epochs)
            print(f"{recipe:11s} seed {seed}  test bal-acc {r['test_balanced_accuracy']:.3f}  "
                  f"val-loss volatility {r['volatility']:.3f}  {r['wall_s']:.0f} s", flush=True)
            results.append(r)
            out.write_text(json.dumps(results, indent=1) + "\n")
    by = {}
    for r in results:
        by.setdefault(r["recipe"], []).append(r)
    print(f"\n{'recipe':11s} {'seeds':>5s} {'test bal-acc':>18s} {'volatility':>16s}")
    for recipe in RECIPES:
        rs = by.get(recipe)
        if rs:
            acc = np.array([r["test_balanced_accuracy"] for r in rs])
            vol = np.array([r["volatility"] for r in rs])
            print(f"{recipe:11s} {len(rs):5d} {acc.mean():9.3f} ± {acc.std():.3f} {vol.mean():9.3f} ± {vol.std():.3f}")


if __name__ == "__main__":
    main()
