"""``augbal demo``: run every stage that exists on the embedded demo set."""

from __future__ import annotations

from pathlib import Path

import click

from ._output import console, print_index


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("augbal-demo"),
    show_default=True,
    help="Folder for the demo's outputs.",
)
def demo(out_dir: Path) -> None:
    """Run augbal end to end on its embedded demo images and show where outputs are."""
    from augbal.data import demo_dataset, scan

    out = console()
    images = demo_dataset(out_dir / "images")
    out.print(f"[bold]1. demo images[/bold] written to {images}")
    index = scan(images)
    print_index(out, index, title="2. scan")
    out.print()
    out.print(f"outputs are in {out_dir.resolve()}")
