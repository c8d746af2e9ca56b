"""The ``augbal`` command line: thin click commands over the library.

Exit status, the same for every command:

- 0: done;
- 2: bad arguments, judged before any work starts (an unknown option, a value out of
  range, a flag given something it cannot use, PATH missing or not a data set, an
  output path that cannot be created): ``click.BadParameter`` / ``UsageError``, one
  ``Error:`` line naming the flag and the value, after click's usage line;
- 1: the work failed (an I/O error while reading or writing, data failing a check
  the user asked for such as ``--no-allow-empty``, a manifest with errors): one
  ``Error:`` line, never a traceback.

Commands catch the library's typed errors (``augbal.data.EmptyClassError``, ...) and
write their own messages in flag names, never matching message text.
"""

from __future__ import annotations

import click

from augbal import __version__

from ._bench import bench
from ._build import build_dataset
from ._demo import demo
from ._scan import scan
from ._train import evaluate, train


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Exit status: 0 done, 1 the work failed (an I/O error, data failing a check you asked for), 2 bad arguments.",
)
@click.version_option(__version__, "--version", prog_name="augbal")
def cli() -> None:
    """augbal: weighted loss or resampling? Evidence and tools for imbalanced image data."""


cli.add_command(scan)
cli.add_command(demo)
cli.add_command(build_dataset)
cli.add_command(train)
cli.add_command(evaluate)
cli.add_command(bench)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="augbal")


__all__ = ["cli", "main"]
