"""``augbal demo``: run every stage that exists on the embedded demo set."""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.table import Table

from ._output import console, print_index
from ._params import OutputPath, os_error_text


@click.command(short_help="Run every stage on the embedded demo images.")
@click.option(
    "--out",
    "out_dir",
    type=OutputPath(folder=True),
    default=Path("augbal-demo"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random draw (an int >= 0)."
)
@click.option("--bench/--no-bench", default=True, show_default=True,
              help="Run the small bench grid (5 strategies x 2 seeds, about a minute or two) and write its report.")
def demo(out_dir: Path, seed: int, bench: bool) -> None:
    """Run augbal end to end on its embedded demo images and show where outputs are.

    Scan, split, sample, augment, build a balanced dataset, then a small bench grid (ce,
    wce:inverse, oversample, oversample-augment, logit-adjust; 2 seeds) with its report.html.
    """
    from augbal._tour import DEMO_SEEDS, DEMO_STRATEGIES, SEEDLIKE3_COMMAND, run_demo

    start = time.perf_counter()
    out = console()

    def progress(counts, run):
        if run is not None:
            out.print(f"   run {counts['done']}/{counts['total']}: {run.strategy}, seed {run.seed}", highlight=False)

    try:
        run = run_demo(out_dir, seed=seed, bench=bench, progress=progress)
    except OSError as exc:
        raise click.ClickException(f"cannot write the demo to {out_dir}: {os_error_text(exc)}") from None
    out.print(f"[bold]1. demo images[/bold] (840 CIFAR-10 images) in {run.files['images']}")
    print_index(out, run.index, title="2. scan")

    table = Table(title="3. split (seeded; val keeps a different skew, test is balanced)", title_justify="left")
    table.add_column("class")
    for side in ("train", "val", "test"):
        table.add_column(side, justify="right")
    counts = run.split.counts()
    for name in run.index.classes:
        table.add_row(name, *(str(counts[side][name]) for side in ("train", "val", "test")))
    out.print(table)

    classes = run.split.train.classes
    table = Table(title="4. one epoch of ClassAwareSampler over train, per weighting", title_justify="left")
    table.add_column("weighting")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("unique fraction", justify="right")
    table.add_column("max repeats", justify="right")
    for weighting, report in run.sampler_reports.items():
        table.add_row(
            weighting,
            *(str(report.class_counts.get(c, 0)) for c in range(len(classes))),
            f"{report.unique_fraction:.2f}",
            str(report.max_repeats),
        )
    out.print(table)
    out.print(
        "5. augmentation: rarity-scaled 'medium' policy, a different draw for each repeat "
        f"of an image -> {run.files['augmentation']}"
    )
    table = Table(title=f"6. build-dataset: balanced train with 'light' augmentation -> {run.files['balanced dataset']}",
                  title_justify="left")
    for name in ("class", "before", "after", "augmented"):
        table.add_column(name, justify="left" if name == "class" else "right")
    for r in run.build.rows:
        if r["split"] == "train":
            table.add_row(r["class"], str(r["before"]), str(r["after"]), str(r["augmented"]))
    out.print(table)
    if run.bench is not None:
        weights = ("ImageNet ResNet-18 weights from torchvision's cache" if run.weights == "imagenet" else
                   "random weights (torchvision's cache holds no ImageNet ResNet-18), so its numbers only show the pipeline working")
        out.print(f"7. bench: {', '.join(DEMO_STRATEGIES)} x {DEMO_SEEDS} seeds, head trained on cached features, {weights}")
        for split, sentence in run.report.recommendations.items():
            out.print(f"   {sentence}", highlight=False)
        out.print(f"8. report: {run.files['bench report']}")
        out.print(f"   the real benchmark (needs the shared CIFAR-10 folder): {SEEDLIKE3_COMMAND}", highlight=False)
    out.print()
    out.print(f"outputs are in {run.out_dir.resolve()} ({time.perf_counter() - start:.1f} s):")
    for name, path in run.files.items():
        out.print(f"  {name:<20} {path}")
