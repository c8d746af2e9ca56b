"""``augbal scan PATH``."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from augbal.data import DEFAULT_FORMATS, DEFAULT_MAX_PIXELS

from ._output import console, print_index
from ._params import NameList, OutputPath, bad_parameter, dataset_source, os_error_text


#: Per problem kind, the flag that changes how such files are treated (shown beside the count).
_HINTS = {
    "external-symlink": "--follow-external-symlinks accepts them",
    "format": "--formats sets the allowed formats",
    "too-large": "--max-pixels sets the limit",
}


@click.command(short_help="Count images per class; report problems and duplicates.")
@click.argument("path", type=click.Path(exists=True, file_okay=True, dir_okay=True, path_type=Path))
@click.option(
    "--classes",
    type=NameList("class"),
    default=None,
    metavar="A,B,...",
    help="Class names in label order (comma-separated); folders or labels outside them are reported.",
)
@click.option(
    "--near-duplicates/--no-near-duplicates",
    default=True,
    show_default=True,
    help="Also group perceptually alike images (imagehash phash; about 0.25 ms per image). "
    "On by default here; off in augbal.data.scan().",
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
    help="Report empty classes (the default here) or fail on them (--no-allow-empty: augbal.data.scan()'s default).",
)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Fully decode images (finds truncated files).")
@click.option(
    "--follow-external-symlinks",
    is_flag=True,
    help="Accept symlinks that point outside PATH (refused and reported by default).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help=f"Refuse larger images (default: {DEFAULT_MAX_PIXELS}, Pillow's limit).",
)
@click.option(
    "--formats",
    type=NameList("format"),
    default=None,
    metavar="JPEG,PNG,...",
    help=f"Allowed Pillow image formats (default: {', '.join(DEFAULT_FORMATS)}; JPG and TIF mean JPEG and TIFF).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Reader processes (threads where processes cannot be forked; default: min(8, CPUs)).",
)
@click.option(
    "--problems-csv",
    type=OutputPath(folder=False),
    default=None,
    help="Write every problem (path,kind,reason) to this CSV file.",
)
def scan(
    path: Path,
    classes: tuple[str, ...] | None,
    near_duplicates: bool,
    max_distance: int,
    allow_empty: bool,
    verify: bool,
    follow_external_symlinks: bool,
    max_pixels: int | None,
    formats: tuple[str, ...] | None,
    workers: int | None,
    problems_csv: Path | None,
) -> None:
    """Count images per class in PATH (root/<class>/<image>, nested folders counting as
    their class, or a .csv/.jsonl manifest of path,label[,group]) and report problems,
    hidden and non-image files, and duplicates.

    Defaults that differ from augbal.data.scan(): near duplicates are grouped (scan()
    does not by default) and empty classes are reported (scan() raises EmptyClassError
    by default).
    """
    from augbal.data import (
        DuplicateClassError,
        EmptyClassError,
        UnknownFormatError,
        check_formats,
        find_duplicates,
        write_problems,
    )
    from augbal.data import scan as scan_index

    allowed = DEFAULT_FORMATS
    if formats is not None:
        try:
            allowed = tuple(check_formats(formats))
        except UnknownFormatError as exc:
            raise bad_parameter(
                "formats",
                "must be image formats Pillow can open (JPEG, PNG, BMP, GIF, TIFF, WEBP, ...); "
                f"unknown: {', '.join(exc.unknown)}; got {_given('formats')!r}",
            ) from None
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, _progress_bar() as progress:
        warnings.simplefilter("always")
        try:
            with dataset_source("path", path):
                index = scan_index(
                    path,
                    classes=classes,
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
        except DuplicateClassError as exc:
            raise bad_parameter(
                "classes",
                f"class names must be distinct; {', '.join(exc.duplicates)} "
                f"{'is' if len(exc.duplicates) == 1 else 'are'} given more than once; got {_given('classes')!r}",
            ) from None
        except EmptyClassError as exc:
            raise click.ClickException(
                f"empty classes in {exc.root}: {', '.join(exc.classes)} "
                "(--no-allow-empty fails on them; by default they are reported)"
            ) from None
        except ValueError as exc:  # e.g. a manifest's errors, listed by line
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # e.g. PATH itself cannot be listed
            raise click.ClickException(f"cannot scan {path}: {os_error_text(exc)}") from None
    elapsed = time.perf_counter() - start
    out = console()
    print_index(
        out,
        index,
        title=f"{path}",
        duplicates=find_duplicates(index, near=near_duplicates, max_distance=max_distance),
        hints=_HINTS,
    )
    for w in caught:
        out.print(f"warning: {w.message}", markup=False, highlight=False)
    if problems_csv is not None:
        try:
            write_problems(index, problems_csv)
        except OSError as exc:
            raise click.ClickException(f"cannot write the problems report {problems_csv}: {os_error_text(exc)}") from None
        out.print(f"problems report: {problems_csv}", markup=False, highlight=False)
    out.print(f"scanned {len(index) + len(index.problems)} files in {elapsed:.1f} s")


def _given(name: str) -> str:
    """The command-line text of option ``name`` as the user typed it, e.g. ``'cat,cat'``."""
    value = click.get_current_context().params[name]
    return ",".join(value) if isinstance(value, tuple) else str(value)


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
