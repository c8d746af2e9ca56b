"""``augbal bench``: run a grid of strategies x splits x seeds and write its report."""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path

import click

from ._output import console
from ._params import OutputPath, bad_parameter


class ShardParam(click.ParamType):
    """``i/K``: the i-th (0-based) of K slices of a grid.

    >>> ShardParam().convert("1/4", None, None)
    (1, 4)
    """

    name = "i/K"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
        if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
            self.fail(f"must be i/K with 0 <= i < K (e.g. 0/4); got {value!r}", param, ctx)
        return int(m.group(1)), int(m.group(2))


def _strategy_help() -> str:
    from augbal.bench import strategies_help

    return strategies_help()


@click.command(short_help="Compare imbalance strategies over splits and seeds; write a report.")
@click.option("--recipe", "recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Bench recipe (base train recipe, strategies, seeds, splits); see recipes/*-bench.yaml.")
@click.option("--out", "out", type=OutputPath(folder=True), default=None,
              help="Grid folder (runs/<hash> per run, report/). Default: bench-<recipe name>.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of the base train recipe (repeatable), e.g. --set epochs=10.")
@click.option("--strategies", default=None, metavar="A,B,...",
              help="Run these strategies instead of the recipe's (names or a+b combinations).")
@click.option("--seeds", type=click.IntRange(min=1), default=None, metavar="N", help="Run seeds 0..N-1 instead of the recipe's.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs in parallel local processes.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local processes, or Ray tasks on an existing cluster (--ray-address) or a local one.")
@click.option("--ray-address", default=None, metavar="ADDR", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray).")
@click.option("--cpus-per-run", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Ray resources per run (CPUs).")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Ray resources per run (GPUs).")
@click.option("--shard", type=ShardParam(), default=None, help="Run only slice i of K (0-based), for a scheduler array.")
@click.option("--list-strategies", is_flag=True, help="List the registered strategies and exit.")
def bench(recipe, out, overrides, strategies, seeds, jobs, executor, ray_address, cpus_per_run, gpus_per_run, shard,
          list_strategies) -> None:
    """Run a benchmark grid (strategies x splits x seeds) and write report.md and report.html.

    Each run is a folder keyed by the hash of its resolved recipe: finished runs are skipped,
    a half run resumes, a failed run is recorded and the grid goes on. Checkpoints are chosen
    on validation; the test split is scored once per run, after that choice.
    """
    from augbal.bench import STRATEGIES, expand_grid, grid_table, load_bench, run_grid, write_report
    from augbal.build import RayNotInstalledError
    from augbal.recipes import RecipeError

    if list_strategies:
        click.echo(_strategy_help())
        return
    if recipe is None:
        raise click.UsageError("Missing option '--recipe' (a bench recipe, e.g. recipes/seedlike-3-bench.yaml).")
    names = None if strategies is None else [s.strip() for s in strategies.split(",") if s.strip()]
    known = set(STRATEGIES.names())
    for name in names or ():
        unknown = [part for part in name.split("+") if part.strip() not in known]
        if unknown:
            raise bad_parameter("strategies", f"unknown strategy {unknown[0]!r} in {name!r}; "
                                              "see augbal bench --list-strategies")
    try:
        spec = load_bench(recipe, overrides, strategies=names, seeds=seeds)
        runs = expand_grid(spec)
    except RecipeError as exc:
        raise bad_parameter("recipe", str(exc)) from None
    out = out or Path(f"bench-{recipe.stem}")
    cons = console()
    started = time.perf_counter()
    live = None
    if cons.is_terminal:
        from rich.live import Live

        live = Live(console=cons, refresh_per_second=2, transient=False)
        live.start()

    def progress(counts, run):
        if live is not None:
            live.update(grid_table(counts, started))
        elif run is not None:
            cons.print(f"[{counts['done']}/{counts['total']}] {run.split} {run.strategy} seed {run.seed}"
                       f"{' FAILED' if counts['failed'] else ''}")

    resources = {"num_cpus": cpus_per_run, **({"num_gpus": gpus_per_run} if gpus_per_run else {})}
    try:
        result = run_grid(runs, out, jobs=jobs, shard=shard, executor=executor, ray_address=ray_address,
                          resources=resources, progress=progress)
    except RayNotInstalledError as exc:
        raise bad_parameter("executor", str(exc)) from None
    finally:
        if live is not None:
            live.stop()
    command = "augbal bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else ""
    title = spec.report.get("title", f"augbal bench: {recipe.stem}")
    report = write_report(result.records, Path(out) / "report", title=title, command=command,
                          notes=[f"Grid wall time: {result.wall_s:.0f} s ({result.skipped} runs found finished)."])
    for split, sentence in report.recommendations.items():
        cons.print(f"[bold]{split}[/bold]: {sentence}")
    cons.print(f"report: {report.html}  (markdown: {report.markdown})")
    if result.failed:
        cons.print(f"{len(result.failed)} of {len(result.records)} runs failed; their errors are in the report.")
        sys.exit(1)
