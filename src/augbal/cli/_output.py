"""Rendering helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from collections import Counter

from rich.console import Console
from rich.table import Table

from augbal.data import ImageIndex


def console() -> Console:
    """A console on the current ``sys.stdout`` (so click's CliRunner captures it)."""
    return Console(file=sys.stdout, soft_wrap=True, width=100)


def print_index(out: Console, index: ImageIndex, *, title: str) -> None:
    """Class counts, imbalance ratio, sizes, modes and problems of an index."""
    counts = index.class_counts()
    total = int(counts.sum())
    table = Table(title=title, title_justify="left")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("share", justify="right")
    for name, n in zip(index.classes, counts.tolist()):
        table.add_row(name, str(n), f"{n / total:.1%}" if total else "-")
    table.add_section()
    table.add_row("total", str(total), "")
    out.print(table)
    out.print(f"classes: {len(index.classes)}   imbalance ratio (largest/smallest): {index.imbalance_ratio():.1f}")
    sizes = Counter(zip(index.widths.tolist(), index.heights.tolist()))
    out.print("image sizes: " + _top(Counter({f"{w}x{h}": n for (w, h), n in sizes.items()})))
    out.print("modes: " + _top(Counter(index.modes.tolist())))
    problems = index.problems
    skipped = index.meta.get("skipped_hidden", 0)
    out.print(f"problems: {len(problems)}" + (f"   hidden entries skipped: {skipped}" if skipped else ""))
    kinds = Counter(p.kind for p in problems)
    for kind, n in sorted(kinds.items()):
        out.print(f"  {kind}: {n}")
    for p in problems[:10]:
        out.print(f"  {p.path}: {p.reason}", markup=False, highlight=False)
    if len(problems) > 10:
        out.print(f"  ... and {len(problems) - 10} more")


def _top(counter: Counter, k: int = 5) -> str:
    if not counter:
        return "-"
    items = counter.most_common(k)
    text = ", ".join(f"{key} ({n})" for key, n in items)
    rest = len(counter) - len(items)
    return text + (f", +{rest} more" if rest > 0 else "")
