"""``augbal build-dataset SOURCE OUT`` and ``augbal build-dataset merge OUT SHARD_DIRS...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ._output import console
from ._params import OutputPath, bad_parameter, dataset_source, os_error_text


def _ratios(value: str) -> tuple[float, float, float] | str:
    if value.strip() == "existing":
        return "existing"
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise bad_parameter("split", f"must be three comma-separated ratios train,val,test or 'existing'; got {value!r}")
    return parts  # type: ignore[return-value]


class _BuildCommand(click.Command):
    """``build-dataset``, whose first argument ``merge`` runs the ``merge`` command instead.

    ``augbal build-dataset SOURCE OUT`` stays as it is; a SOURCE folder named ``merge`` is
    given as ``./merge``.
    """

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        if args and args[0] == "merge":
            return merge.make_context(f"{info_name} merge", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)


@click.command("build-dataset", cls=_BuildCommand,
               short_help="Write a balanced, augmented, split copy of an image folder (or merge shards).")
@click.argument("source", type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path))
@click.argument("out", type=OutputPath(folder=True))
@click.option(
    "--target",
    default="auto",
    show_default=True,
    metavar="STRATEGY",
    help="Training-class targets, imbalanced-learn sampling_strategy forms: auto, 'not majority', all, "
    "minority, 'not minority', a float ratio (two classes), or a JSON dict such as '{\"cat\": 500}'.",
)
@click.option(
    "--undersample",
    default=None,
    metavar="STRATEGY",
    help="First drop training originals, imbalanced-learn under-sampling forms: auto (= 'not minority'), "
    "majority, 'not minority', 'not majority', all, a float ratio (two classes) or a JSON dict of counts. "
    "Which originals stay is seeded by (seed, content hash); the dropped ones are listed in summary.json.",
)
@click.option("--split", "--splits", "split", default="0.8,0.1,0.1", show_default=True, metavar="TRAIN,VAL,TEST|existing",
              help="Stratified, duplicate-group-aware split ratios (seeded), or 'existing': keep SOURCE's own "
              "train/, val/ and test/ folders (val, test optional; each must hold train's class folders).")
@click.option("--skew", default=None, metavar="SPEC",
              help="Skew the training split first, for experiments (augbal.data.skew, seeded by --seed): "
              "ratio=100 (exponential long tail; the largest class is the head and keeps all its images: "
              "order=count, unlike augbal.data.skew's default order=given, the alphabetical class order), "
              "ratio=10,profile=step[,mu=0.5], n_max=N, order=given, or a JSON dict such as "
              "'{\"counts\": {\"cat\": 50, \"dog\": 500}}'. Left-out images are not copied.")
@click.option("--policy", default="light", show_default=True, metavar="NAME|JSON",
              help="Augmentation policy: a registered name (light, medium, heavy, rarity_scaled, ...) or a JSON spec "
              "(a 'size' in it sets the output size as --size does; mean and std, which normalise tensors at "
              "training time, do not apply to written images). The manifest records the spec as applied.")
@click.option("--size", type=click.IntRange(min=1), default=None, metavar="PX",
              help="Side of augmented images (default: each source image's shorter side).")
@click.option("--max-multiplier", type=click.IntRange(min=1), default=None, metavar="M",
              help="No original used more than M times (itself + copies); classes left short are reported.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the split, the tie order and every augmentation.")
@click.option("--link", is_flag=True, help="Hard-link originals instead of copying them.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True, metavar="Q",
              help="Quality of augmented copies of JPEG sources (written as <stem>.aug<k>.jpg); copies of "
              "every other source (PNG, alpha, palette, TIFF, ...) are PNG. Part of the configuration hash.")
@click.option("--format", "format_", type=click.Choice(["files", "webdataset"]), default="files", show_default=True,
              help="files: OUT/<split>/<class>/<file>. webdataset: OUT/<split>-NNNNNN.tar shards (webdataset "
              "library), each sample <key>.<ext> + .cls (label index) + .json (its manifest row), in a seeded "
              "order; manifest paths are <shard>#<key>.<ext>. Needs pip install 'augbal[webdataset]'. With "
              "--num-shards each shard is a files tree and merge packs the tar files (the same bytes).")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Samples per tar shard with --format webdataset [default: 1000].")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Augmentation processes (default: the CPUs available); with --executor ray, the CPUs of a "
              "local Ray started for the build (default: all). With more than one, the workers take about 2 s "
              "to start (this process writes meanwhile), so for builds of under about 10,000 files "
              "--workers 1 can be faster.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: --workers processes on this machine; ray: Ray tasks (one CPU each) on a Ray cluster, "
              "the same bytes (needs pip install augbal[ray]; OUT on a file system every node writes, augbal "
              "installed on the nodes).")
@click.option("--ray-address", default=None, metavar="ADDR",
              help="With --executor ray: the cluster for ray.init(address=ADDR), e.g. auto or ray://head:10001 "
              "[default: $RAY_ADDRESS if set, else a new local Ray].")
@click.option("--num-shards", type=click.IntRange(min=1), default=None, metavar="K",
              help="Build one shard of K (with --shard-index; e.g. a SLURM array task): files are split by source "
              "content hash and repeat; join the K shard folders with 'augbal build-dataset merge OUT SHARD_DIRS...'. "
              "With --format webdataset a shard is written as files; merge packs the tar files.")
@click.option("--shard-index", type=click.IntRange(min=0), default=None, metavar="I",
              help="Which shard to build, 0..K-1 (with --num-shards).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT (and, without --resume, discard a leftover OUT.incomplete).")
@click.option("--resume", is_flag=True,
              help="Continue the interrupted build in OUT.incomplete, keeping the files it wrote; refused (naming "
              "the setting) unless it was started with the same configuration.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (images/s, ETA) on stderr while writing [default: when stderr is a terminal].")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
def build_dataset(
    source: Path,
    out: Path,
    target: str,
    split: str,
    policy: str,
    size: int | None,
    max_multiplier: int | None,
    seed: int,
    link: bool,
    workers: int | None,
    overwrite: bool,
    resume: bool,
    progress: bool | None,
    dry_run: bool,
    undersample: str | None,
    skew: str | None,
    jpeg_quality: int,
    format_: str,
    shard_size: int | None,
    executor: str,
    ray_address: str | None,
    num_shards: int | None,
    shard_index: int | None,
) -> None:
    """Scan SOURCE (SOURCE/<class>/<image>), split it, bring each training class to its target
    with augmented copies, and write OUT/<split>/<class>/<file>, manifest.csv, manifest.jsonl,
    summary.json and problems.csv. The build is written to OUT.incomplete and renamed at the end.

    Augmented copies are OUT/train/<class>/<stem>.aug<k>.jpg for a JPEG source (--jpeg-quality),
    <stem>.aug<k>.png for any other; each depends only on the seed, its source file's content
    and k. Val and test are copied untouched.

    An interrupted build leaves OUT.incomplete: --resume continues it (the result is byte-identical
    to an uninterrupted build), --overwrite discards it. Exit codes: 2 bad arguments or a refused
    OUT / --resume, 1 a build that failed.

    Scale: --executor ray runs the same work as Ray tasks; --num-shards K --shard-index I builds one
    shard into its own OUT, and 'augbal build-dataset merge OUT SHARD_DIRS...' joins the K shards
    (see its --help; a SOURCE folder named merge is given as ./merge). Every way gives the same bytes
    as one process.
    """
    from augbal.build import BuildOptionError, BuildTaskError, OutputPathError
    from augbal.build import build_dataset as build
    from augbal.data import EmptyClassError

    ratios = _ratios(split)
    try:
        with dataset_source("source", source):
            summary = build(
                source, out, target=target, split=ratios, policy=policy, size=size, max_multiplier=max_multiplier,
                seed=seed, link=link, workers=workers, overwrite=overwrite, dry_run=dry_run, resume=resume,
                undersample=undersample, skew=skew, jpeg_quality=jpeg_quality, format=format_,
                shard_size=shard_size, progress=(sys.stderr.isatty() if progress is None else progress) and not dry_run,
                executor=executor, ray_address=ray_address, num_shards=num_shards, shard_index=shard_index,
            )
    except OutputPathError as exc:
        raise click.UsageError(exc.cli) from None
    except EmptyClassError as exc:
        raise click.ClickException(
            f"empty classes in {exc.root}: {', '.join(exc.classes)} (a build needs at least one image per class)"
        ) from None
    except BuildOptionError as exc:
        raise bad_parameter({"format": "format_"}.get(exc.option, exc.option), exc.cli) from None
    except ImportError as exc:
        raise click.UsageError(str(exc)) from None
    except BuildTaskError as exc:
        raise click.ClickException(f"cannot build {out}: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot build {out}: {os_error_text(exc)}") from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _print_summary(summary)


@click.command("merge", short_help="Join the shard folders of one build into one dataset.")
@click.argument("out", type=click.Path(file_okay=False, dir_okay=True, path_type=Path))
@click.argument("shard_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT (or a leftover OUT.incomplete).")
def merge(out: Path, shard_dirs: tuple[Path, ...], overwrite: bool) -> None:
    """Join SHARD_DIRS, the outputs of 'augbal build-dataset SOURCE SHARD --num-shards K --shard-index I'
    for every I in 0..K-1, into one dataset in OUT: the same files, manifest.csv, manifest.jsonl and
    problems.csv as one build of that configuration, byte for byte, and its summary.json with a
    last "merged" entry. Files are hard-linked from the shards (copied where links fail); the shards
    are left as they are. Shards of a --format webdataset build are then packed into the same
    <split>-NNNNNN.tar files as one build. Written to OUT.incomplete and renamed at the end.

    Refused (exit 2), naming the folders: shards of different configurations (naming the setting,
    e.g. --format or --shard-size) or --num-shards, a shard index missing or given twice, a folder
    that is not a shard build. Exit 1: an I/O error.
    """
    from augbal.build import MergeRefusedError, OutputPathError, merge_shards

    try:
        summary = merge_shards(out, shard_dirs, overwrite=overwrite)
    except (MergeRefusedError, OutputPathError) as exc:
        raise click.UsageError(getattr(exc, "cli", str(exc))) from None
    except OSError as exc:
        raise click.ClickException(f"cannot merge into {out}: {os_error_text(exc)}") from None
    _print_summary(summary)


def _print_summary(summary: Any) -> None:
    out = console()
    title = f"plan for {summary.out} (dry run: nothing written)" if summary.dry_run else f"built {summary.out}"
    if summary.merged:
        title = f"merged {summary.merged} shards into {summary.out}"
    table = Table(title=Text(title), title_justify="left")
    for name in ("class", "split", "before", "after", "max reuse", "augmented"):
        table.add_column(name, justify="left" if name in ("class", "split") else "right")
    for r in summary.rows:
        table.add_row(Text(r["class"]), r["split"], str(r["before"]), str(r["after"]), str(r["max_reuse"]),
                      str(r["augmented"]))
    out.print(table)
    for name, (want, reached) in summary.short.items():
        out.print(f"short: {name} reaches {reached} of its target {want} (--max-multiplier caps it)",
                  markup=False, highlight=False)
    for message in summary.warnings:
        out.print(f"warning: {message}", markup=False, highlight=False)
    if summary.dropped:
        out.print(f"undersampled: {len(summary.dropped)} training originals dropped (listed in summary.json)",
                  markup=False, highlight=False)
    if summary.skewed_out:
        left = sum(summary.skewed_out.values())
        out.print(f"skewed: {left} training originals left out by --skew (per class in summary.json)",
                  markup=False, highlight=False)
    if summary.tar_shards:
        packs = "the merge packs " if summary.shard is not None else ""  # a shard is a files tree
        out.print(f"webdataset: {packs}{len(summary.tar_shards)} tar files ({summary.tar_shards[0]} ... "
                  f"{summary.tar_shards[-1]})", markup=False, highlight=False)
    if summary.resumed:
        out.print(f"resumed: kept {summary.resumed} augmented copies already written", markup=False, highlight=False)
    if summary.problems:
        out.print(f"problems: {len(summary.problems)} files not used (see problems.csv)", markup=False, highlight=False)
    if summary.shard is not None:
        verb = "would write" if summary.dry_run else "wrote"
        out.print(f"shard {summary.shard['index']} of {summary.shard['count']}: {verb} {summary.shard['files']} of the "
                  f"{sum(r['after'] for r in summary.rows)} files (the table is the whole build)",
                  markup=False, highlight=False)
    out.print(f"config hash: {summary.config_hash}", markup=False, highlight=False)
