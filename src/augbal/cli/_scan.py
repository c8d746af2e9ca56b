"""``augbal scan PATH``."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from ._output import console, print_index


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path))
@click.option(
    "--classes",
    default=None,
    metavar="A,B,...",
    help="Class names in label order (comma-separated); folders or labels outside them are reported.",
)
@click.option(
    "--near-duplicates/--no-near-duplicates",
    default=True,
    show_default=True,
    help="Also group perceptually alike images (imagehash phash; about 0.25 ms per image).",
)
@click.option(
    "--max-distance",
    type=click.IntRange(0, 63),
    default=4,
    show_default=True,
    help="Near duplicates: largest Hamming distance between 64-bit perceptual hashes.",
)
@click.option(
    "--allow-empty/--no-allow-empty",
    default=True,
    show_default=True,
    help="Report empty classes (default) or fail on them, as the library's scan does by default.",
)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Fully decode images (finds truncated files).")
@click.option(
    "--follow-external-symlinks",
    is_flag=True,
    help="Accept symlinks that point outside PATH (refused and reported by default).",
)
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, help="Refuse larger images (default: Pillow's limit).")
@click.option(
    "--formats",
    default=None,
    metavar="JPEG,PNG,...",
    help="Allowed Pillow image formats (default: JPEG, PNG, BMP, GIF, TIFF, WEBP).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Reader processes (threads where processes cannot be forked; default: min(8, CPUs)).",
)
@click.option(
    "--problems-csv",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write every problem (path,kind,reason) to this CSV file.",
)
def scan(
    path: Path,
    classes: str | None,
    near_duplicates: bool,
    max_distance: int,
    allow_empty: bool,
    verify: bool,
    follow_external_symlinks: bool,
    max_pixels: int | None,
    formats: str | None,
    workers: int | None,
    problems_csv: Path | None,
) -> None:
    """Count images per class in PATH (root/<class>/<image>, or a .csv/.jsonl manifest of
    path,label[,group]) and report problems, hidden and non-image files, and duplicates."""
    from augbal.data import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS, find_duplicates, write_problems
    from augbal.data import scan as scan_index
    from augbal.data._io import _allowed_formats

    names = None
    if classes is not None:
        names = [c.strip() for c in classes.split(",") if c.strip()]
        if not names:
            raise click.BadParameter("give at least one class name", param_hint="--classes")
    allowed = DEFAULT_FORMATS
    if formats is not None:
        allowed = tuple(f.strip().upper() for f in formats.split(",") if f.strip())
        if not allowed:
            raise click.BadParameter("give at least one format name", param_hint="--formats")
        try:
            allowed = tuple(_allowed_formats(allowed))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--formats") from None
    if path.is_file() and path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise click.BadParameter(f"a file must be a .csv or .jsonl manifest; got {path.name}", param_hint="PATH")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, _progress_bar() as progress:
        warnings.simplefilter("always")
        try:
            index = scan_index(
                path,
                classes=names,
                workers=workers,
                verify=verify,
                near_duplicates=near_duplicates,
                max_distance=max_distance,
                allow_empty=allow_empty,
                follow_external_symlinks=follow_external_symlinks,
                max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                formats=allowed,
                progress=progress,
            )
        except ValueError as exc:
            if "no class folders" in str(exc):
                raise click.UsageError(str(exc)) from None
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # e.g. PATH itself cannot be listed
            raise click.ClickException(f"cannot scan {path}: {exc}") from None
    elapsed = time.perf_counter() - start
    out = console()
    print_index(out, index, title=f"{path}", duplicates=find_duplicates(index, near=near_duplicates, max_distance=max_distance))
    for w in caught:
        out.print(f"warning: {w.message}", markup=False, highlight=False)
    if problems_csv is not None:
        try:
            write_problems(index, problems_csv)
        except OSError as exc:
            raise click.ClickException(f"cannot write the problems report {problems_csv}: {exc}") from None
        out.print(f"problems report: {problems_csv}", markup=False, highlight=False)
    out.print(f"scanned {len(index) + len(index.problems)} files in {elapsed:.1f} s")


@contextmanager
def _progress_bar():
    """A transient progress bar on stderr when it is a terminal; else no callback."""
    from rich.console import Console
    from rich.progress import Progress

    err = Console(stderr=True)
    if not err.is_terminal:
        yield None
        return
    # No auto-refresh thread: scan forks its readers, and forking a multi-threaded
    # process is unsafe (scan would fall back to slower thread readers); redraw on each call.
    with Progress(console=err, transient=True, auto_refresh=False) as bar:
        task = bar.add_task("reading images", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, refresh=True)

        yield update
