"""``augbal train --recipe R.yaml`` and ``augbal evaluate RUN --data PATH``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ._output import console
from ._params import Device, OutputPath, bad_parameter, os_error_text


@click.command("train", short_help="Fine-tune a ResNet-18 as a recipe says; write a run folder.")
@click.option("--recipe", "recipe_path", required=True, metavar="R.yaml",
              type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The recipe (YAML) of the run.")
@click.option("--out", type=OutputPath(folder=True), default=None, metavar="RUN",
              help="The run folder [default: the recipe's out, else runs/<recipe name>].")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe key, the value read as YAML (--set optim.lr=3e-4); repeatable.")
@click.option("--resume", is_flag=True, help="Continue the run in RUN from its last.pt (the recipe must be the same).")
@click.option("--find-lr", is_flag=True, help="Sweep the learning rate (as fastai's lr_find), save RUN/lr_find.png, "
              "print the suggestion; no training.")
@click.option("--device", type=Device(), default=None,
              help="Where to train [default: the recipe's device].")
@click.option("--test/--no-test", "test", default=True, show_default=True,
              help="After training (and the choice of checkpoint on validation), score the selected model once "
              "on the test split, if the data has one (RUN/test.json).")
def train(
    recipe_path: Path,
    out: Path | None,
    overrides: tuple[str, ...],
    resume: bool,
    find_lr: bool,
    device: str | None,
    test: bool,
) -> None:
    """Train as the recipe says; print one line per epoch and the verdict on the validation loss."""
    from augbal.recipes import RecipeError, load_recipe

    sets = list(overrides) + ([f"device={device}"] if device else [])
    try:
        recipe = load_recipe(recipe_path, sets)
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise bad_parameter("recipe_path", os_error_text(exc)) from None
    run = out or Path(getattr(recipe, "out", None) or Path("runs") / recipe_path.stem)
    con = console()
    if find_lr:
        from augbal.train import lr_find

        try:
            result = lr_find(recipe, out=run)
        except (ValueError, KeyError) as exc:
            raise click.ClickException(str(exc)) from None
        con.print(f"suggested learning rate: {result.suggestion:.3g}   (plot: {run / 'lr_find.png'})", highlight=False)
        return

    from augbal.train import train as run_training

    epochs = int(recipe.epochs)
    # one line per epoch; on a terminal also a live bar (transient: a log file gets the lines only)
    bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[note]}"), console=con, transient=True, disable=not con.is_terminal)  # fmt: skip
    task = bar.add_task("epochs", total=epochs, note="")

    def progress(row: dict[str, Any]) -> None:
        con.print(_epoch_line(row, epochs), highlight=False, markup=False)
        note = f"val loss {row['val']['loss']:.3f}  bal-acc {row['val']['balanced_accuracy']:.3f}"
        bar.update(task, completed=row["epoch"] + 1, note=note)

    # under torchrun every rank runs this command; rank 0 alone speaks and scores the test split
    speaks = os.environ.get("RANK", "0") == "0"
    if resume and not (Path(run) / "last.pt").exists():
        raise bad_parameter("resume", f"nothing to resume: {Path(run) / 'last.pt'} does not exist")
    try:
        with bar:
            result = run_training(recipe, out=run, resume=resume, progress=progress)
    except RecipeError as exc:
        raise click.UsageError(str(exc)) from None
    except FileExistsError as exc:
        raise bad_parameter("out", str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(os_error_text(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"training failed: {os_error_text(exc)}") from None
    except (ValueError, KeyError, RuntimeError) as exc:
        raise click.ClickException(f"training failed: {exc}") from None

    if not speaks:
        return
    con.print(f"selected: {result.candidate} — {result.reason}", highlight=False, markup=False)
    con.print(_metrics_table("validation, selected model", result.val))
    con.print(result.verdict, highlight=False, markup=False)
    if test:
        from augbal.train import evaluate_test

        try:
            scored = evaluate_test(run)
        except ValueError:
            scored = None  # no test split: nothing to score
        if scored is not None:
            con.print(_metrics_table("test, evaluated once after selection", scored["metrics"]))
    con.print(f"run folder: {run}", highlight=False, markup=False)


def _check_checkpoint(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from augbal.train import check_checkpoint

    try:
        check_checkpoint(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("evaluate", short_help="Score a run's checkpoint on a folder or manifest.")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path), metavar="PATH",
              help="A folder of class sub-folders or a manifest (.csv/.jsonl).")
@click.option("--checkpoint", default="selected", show_default=True, callback=_check_checkpoint, metavar="NAME",
              help="selected, best, last, or epoch:N (a run with log.epoch_checkpoints keeps every epoch).")
@click.option("--prior", type=click.Choice(["none", "uniform", "em"]), default=None,
              help="Adjust the logits to a uniform prior, or to this data's prior estimated by EM "
              "[default: the selected checkpoint's own adjustment].")
@click.option("--device", type=Device(), default="cpu", show_default=True)
def evaluate(run: Path, data: Path, checkpoint: str, prior: str | None, device: str) -> None:
    """Score RUN's checkpoint on the images of PATH; print the metrics and write them as JSON."""
    from augbal.train import evaluate as score

    try:
        result = score(run, data, checkpoint=checkpoint, prior=prior, device=device)
    except FileNotFoundError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_text(exc)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    con = console()
    con.print(_metrics_table(f"{data} ({checkpoint})", result["metrics"], classes=result["classes"]))
    con.print(f"written: {result['path']}", highlight=False, markup=False)


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    """One line per epoch (numbered from 0, as in metrics.jsonl), so a non-terminal log is not flooded.

    >>> _epoch_line({"epoch": 0, "lr": [0.001, 0.001], "train": {"loss": 1.0, "loss_unweighted": 0.9},
    ...              "val": {"loss": 0.8, "balanced_accuracy": 0.5}, "time_s": 1.5}, 3)
    '[1/3] epoch 0  train loss 1.0000 (unweighted 0.9000)  val loss 0.8000  bal-acc 0.5000  lr 0.001  1.5s'
    """
    rates = row["lr"]
    lr = f"{rates[0]:.3g}" if len(set(rates)) == 1 else "/".join(f"{v:.3g}" for v in rates)
    return (
        f"[{row['epoch'] + 1}/{epochs}] epoch {row['epoch']}  train loss {row['train']['loss']:.4f} "
        f"(unweighted {row['train']['loss_unweighted']:.4f})  val loss {row['val']['loss']:.4f}  "
        f"bal-acc {row['val']['balanced_accuracy']:.4f}  lr {lr}  {row['time_s']:.1f}s"
    )


def _metrics_table(title: str, metrics: dict[str, Any], *, classes: list[str] | None = None) -> Table:
    table = Table(title=Text(title), title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("balanced_accuracy", "macro_f1", "accuracy", "loss", "loss_weighted", "loss_uniform_prior", "ece"):
        if key in metrics:
            table.add_row(key, f"{float(metrics[key]):.4f}")
    recall = metrics.get("recall")
    if recall is not None:
        names = classes or metrics.get("classes") or [str(i) for i in range(len(recall))]
        for name, r in zip(names, recall):  # None: no image of the class to recall
            table.add_row(Text(f"recall {name}"), "n/a" if r is None else f"{float(r):.4f}")
    return table
