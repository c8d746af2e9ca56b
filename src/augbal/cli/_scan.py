"""``augbal scan PATH``."""

from __future__ import annotations

import time

import click

from ._output import console, print_index


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, dir_okay=True))
def scan(path: str) -> None:
    """Count images per class in PATH (root/<class>/<image>) and list problems."""
    from augbal.data import scan as scan_index

    start = time.perf_counter()
    index = scan_index(path)
    elapsed = time.perf_counter() - start
    if not index.classes:
        raise click.UsageError(f"no class folders found in {path} (expected root/<class>/<image>)")
    out = console()
    print_index(out, index, title=f"{path}")
    out.print(f"scanned {len(index) + len(index.problems)} files in {elapsed:.1f} s")
