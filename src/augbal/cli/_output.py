"""Rendering helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from augbal.data import MANIFEST_PROBLEM_KINDS, DuplicateReport, ImageIndex

#: Problem kinds that are skipped entries rather than damaged or refused images.
_SKIPPED_KINDS = ("hidden", "not-image", "not-in-class")


def console() -> Console:
    """A console on the current ``sys.stdout`` (so click's CliRunner captures it)."""
    return Console(file=sys.stdout, soft_wrap=True, width=100)


def print_index(
    out: Console,
    index: ImageIndex,
    *,
    title: str,
    duplicates: DuplicateReport | None = None,
    first: int = 10,
    hints: Mapping[str, str] | None = None,
) -> None:
    """Class counts, imbalance ratio, sizes, modes, problems and duplicate groups of an index.

    ``hints`` maps a problem kind to a short note printed beside its count (e.g. the flag
    that accepts such files).
    """
    counts = index.class_counts()
    total = int(counts.sum())
    # Text(), not str: a class or folder name such as "[background]" is not rich markup
    table = Table(title=Text(title), title_justify="left")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("share", justify="right")
    for name, n in zip(index.classes, counts.tolist()):
        table.add_row(Text(name), str(n), f"{n / total:.1%}" if total else "-")
    table.add_section()
    table.add_row("total", str(total), "")
    out.print(table)
    out.print(f"classes: {len(index.classes)}   imbalance ratio (largest/smallest): {index.imbalance_ratio():.1f}")
    empty = [name for name, n in zip(index.classes, counts.tolist()) if n == 0]
    if empty:
        out.print(f"empty classes: {', '.join(empty)}", markup=False, highlight=False)
    sizes = Counter(zip(index.widths.tolist(), index.heights.tolist()))
    out.print("image sizes: " + _top(Counter({f"{w}x{h}": n for (w, h), n in sizes.items()})))
    out.print("modes: " + _top(Counter(index.modes.tolist())))

    problems = index.problems
    kinds = index.problem_counts()
    quarantined = [p for p in problems if p.kind not in _SKIPPED_KINDS]
    skipped = ", ".join(f"{kind} {kinds[kind]}" for kind in _SKIPPED_KINDS if kind in kinds)
    out.print(
        f"problems: {len(problems)}   quarantined: {len(quarantined)}" + (f"   skipped: {skipped}" if skipped else ""),
        markup=False,
        highlight=False,
    )
    for kind, n in kinds.items():
        hint = (hints or {}).get(kind)
        out.print(f"  {kind}: {n}" + (f"   ({hint})" if hint else ""), markup=False, highlight=False)
        shown = [p for p in problems if p.kind == kind][:first]
        for p in shown:
            # a manifest row's reason names its line and path already ("m.csv:3: img/x.png: no such file")
            shown_as = p.reason if p.kind in MANIFEST_PROBLEM_KINDS else f"{p.path}: {p.reason}"
            out.print(f"    {shown_as}", markup=False, highlight=False)
        if n > len(shown):
            out.print(f"    ... and {n - len(shown)} more", markup=False, highlight=False)

    if duplicates is not None:
        s = duplicates.summary()
        out.print(
            f"duplicate groups: {s['groups']} (exact {s['exact_groups']}, near {s['near_groups']})   "
            f"images in groups: {s['duplicated_samples']}   across classes: {s['cross_class_groups']}",
            markup=False,
            highlight=False,
        )
        cross = [g for g in range(duplicates.n_groups) if duplicates.cross_class[g]][:first]
        for g in cross:
            members = duplicates.members(g)
            listed = ", ".join(f"{index.paths[i]} ({index.classes[index.labels[i]]})" for i in members[:4])
            more = f", +{len(members) - 4} more" if len(members) > 4 else ""
            out.print(f"  {duplicates.kinds[g]} across classes: {listed}{more}", markup=False, highlight=False)


def _top(counter: Counter, k: int = 5) -> str:
    if not counter:
        return "-"
    items = counter.most_common(k)
    text = ", ".join(f"{key} ({n})" for key, n in items)
    rest = len(counter) - len(items)
    return text + (f", +{rest} more" if rest > 0 else "")
