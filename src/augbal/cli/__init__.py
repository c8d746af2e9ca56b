"""The ``augbal`` command line: thin click commands over the library."""

from __future__ import annotations

import click

from augbal import __version__

from ._demo import demo
from ._scan import scan


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="augbal")
def cli() -> None:
    """augbal: weighted loss or resampling? Evidence and tools for imbalanced image data."""


cli.add_command(scan)
cli.add_command(demo)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="augbal")


__all__ = ["cli", "main"]
