"""The benchmark grid: strategies x skewed splits x seeds, each run a folder keyed by its recipe.

A bench recipe names a base train recipe and the axes of the grid::

    base: seedlike-3.yaml          # a train recipe (relative to this file) or an inline mapping
    strategies: [ce, wce:inverse, logit-adjust, oversample-augment]
    seeds: [0, 1, 2, 3, 4]
    splits:                        # optional; default: the base recipe's own data
      - {name: lt-100, data: {task: cifar10-lt, root: ../cifar10, ratio: 100}}
    report: {title: seedlike-3}

Every run is the base recipe with the split's data, the seed, and the strategy's fragment;
its folder is ``runs/<hash>`` of the resolved recipe, so a finished run is found again and
skipped, a half run resumes, and the same run in two grids is computed once. A run that fails
is recorded with its error; the grid goes on.
"""

from __future__ import annotations

import copy
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._atomic import atomic_write_text
from .._validation import check_int
from ._aggregate import RunRecord
from ._strategies import apply_strategy, resolve_strategy

__all__ = ["BenchResult", "GridRun", "expand_grid", "load_bench", "run_grid"]

RECORD = "record.json"  # a finished run: the RunRecord the report reads
ERROR = "error.json"  # a failed run: its error and traceback
SPEC = "spec.json"  # what the run is: split, strategy, seed, resolved recipe


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: its names, its resolved recipe (plain data) and its key."""

    split: str
    strategy: str
    seed: int
    recipe: Mapping[str, Any]
    key: str

    def folder(self, root: str | os.PathLike[str]) -> Path:
        """``root/runs/<key>``."""
        return Path(root) / "runs" / self.key[:16]


@dataclass(frozen=True)
class BenchSpec:
    """A parsed bench recipe."""

    base: Mapping[str, Any]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    splits: tuple[tuple[str, Mapping[str, Any] | None], ...]
    report: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


def _fail(message: str) -> ValueError:
    from augbal.recipes import RecipeError

    return RecipeError(message)


def load_bench(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    strategies: Sequence[str] | None = None,
    seeds: int | Sequence[int] | None = None,
) -> BenchSpec:
    """Read a bench recipe (a YAML file or a mapping); ``overrides`` apply to the base recipe,
    ``strategies`` and ``seeds`` (a list, or a count N for 0..N-1) replace the recipe's.

    Raises:
        augbal.recipes.RecipeError: naming the key, the rule and the value.
    """
    from augbal.recipes import load_recipe

    if isinstance(source, Mapping):
        raw, base_dir, where = copy.deepcopy(dict(source)), Path.cwd(), "bench recipe"
    else:
        path = Path(source)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise _fail(f"bench recipe {str(path)!r} cannot be read: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            from augbal.recipes import yaml_error_text

            raise _fail(f"{path}: not valid YAML: {yaml_error_text(exc)}") from None
        base_dir, where = path.resolve().parent, str(path)
    if not isinstance(raw, dict):
        raise _fail(f"{where}: a bench recipe is a mapping (base, strategies, seeds, splits); got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"base", "strategies", "seeds", "splits", "report"})
    if unknown:
        raise _fail(f"bench recipe key {unknown[0]}: unknown key; valid keys: base, strategies, seeds, splits, report")
    if "base" not in raw:
        raise _fail("bench recipe key base: required (a train recipe file or mapping); got nothing")
    if strategies is not None:
        raw["strategies"] = list(strategies)
    if seeds is not None:
        raw["seeds"] = seeds if isinstance(seeds, int) else list(seeds)
    base_src = raw["base"]
    if isinstance(base_src, str):
        base_src = (base_dir / base_src) if not os.path.isabs(base_src) else Path(base_src)
        base = load_recipe(base_src, overrides)
    elif isinstance(base_src, Mapping):
        base = load_recipe(base_src, overrides, base_dir=base_dir)
    else:
        raise _fail(f"bench recipe key base: must be a recipe file or mapping; got {base_src!r}")
    strategies = raw.get("strategies") or ["ce"]
    if isinstance(strategies, str) or not all(isinstance(s, str) for s in strategies):
        raise _fail(f"bench recipe key strategies: must be a list of strategy names; got {strategies!r}")
    for name in strategies:
        try:
            resolve_strategy(name)
        except (KeyError, ValueError) as exc:
            raise _fail(f"bench recipe key strategies: {exc.args[0]}") from None
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds:
        raise _fail(f"bench recipe key seeds: must be a non-empty list of seeds or a count; got {seeds!r}")
    for s in seeds:
        try:
            check_int("seed", s, low=0)
        except ValueError:
            raise _fail(f"bench recipe key seeds: each seed must be an integer >= 0; got {s!r}") from None
    splits: list[tuple[str, Mapping[str, Any] | None]] = []
    for k, item in enumerate(raw.get("splits") or [None]):
        if item is None:
            data = base.data
            splits.append((data.task or (Path(data.source).name if data.source else "data"), None))
        elif isinstance(item, Mapping) and set(item) <= {"name", "data"} and "name" in item:
            splits.append((str(item["name"]), dict(item.get("data") or {}) or None))
        else:
            raise _fail(f"bench recipe key splits[{k}]: must be {{name: ..., data: {{...}}}}; got {item!r}")
    if len({s for s, _ in splits}) != len(splits):
        raise _fail(f"bench recipe key splits: names must be distinct; got {[s for s, _ in splits]}")
    report = raw.get("report") or {}
    return BenchSpec(base.to_dict(), tuple(strategies), tuple(int(s) for s in seeds), tuple(splits), report,
                     str(source) if not isinstance(source, Mapping) else "")


def expand_grid(spec: BenchSpec) -> list[GridRun]:
    """Every (split, strategy, seed) run with its resolved, validated recipe and key.

    Data of a split replaces the base recipe's ``data`` whole; relative paths in it resolve
    against the current folder (write them in the bench file relative to it, or absolute).
    """
    from augbal.recipes import RecipeError, load_recipe, recipe_hash

    runs = []
    for split, data in spec.splits:
        base = copy.deepcopy(dict(spec.base))
        if data is not None:
            base["data"] = dict(data)
        for strategy in spec.strategies:
            for seed in spec.seeds:
                raw = apply_strategy({**base, "seed": seed}, strategy)
                try:
                    recipe = load_recipe(raw)
                except RecipeError as exc:
                    raise _fail(f"strategy {strategy} on split {split}: {exc}") from None
                runs.append(GridRun(split, strategy, seed, recipe.to_dict(), recipe_hash(recipe)))
    return runs


@dataclass
class BenchResult:
    """What a grid did: the records of its runs (finished and failed) and where they are."""

    out: Path
    records: list[RunRecord]
    skipped: int = 0
    wall_s: float = 0.0
    report: Any = None

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.error is not None]


def run_grid(
    runs: Sequence[GridRun],
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    resources: Mapping[str, float] | None = None,
    run_fn: Callable[[Mapping[str, Any], str], Mapping[str, Any]] | None = None,
    progress: Callable[[Mapping[str, int], GridRun | None], None] | None = None,
) -> BenchResult:
    """Run (or find) every run of ``runs`` and return their records.

    Args:
        runs: from :func:`expand_grid`.
        out: the grid folder (``runs/<key>`` per run).
        jobs: local worker processes (``executor="local"``); 1 runs in this process.
        shard: ``(i, K)`` runs only the i-th of K slices (0-based; for a scheduler array).
        executor: ``"local"`` or ``"ray"`` (an existing cluster via ``ray_address``, or a local one).
        resources: per-run Ray resources, e.g. ``{"num_cpus": 2}`` or ``{"num_gpus": 1}``.
        run_fn: ``run_fn(run_as_dict, folder) -> record dict`` (default: train the recipe,
            then evaluate its test split once).
        progress: called with the counts (done, running, failed, skipped, total) after each change.
    """
    check_int("jobs", jobs, low=1)
    if shard is not None:
        i, k = shard
        check_int("shard count", k, low=1)
        check_int("shard index", i, low=0, high=k - 1)
        runs = [r for n, r in enumerate(sorted(runs, key=lambda r: r.key)) if n % k == i]
    root = Path(out)
    (root / "runs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fn = run_fn or _train_and_test
    records: dict[str, RunRecord] = {}
    todo: list[GridRun] = []
    for run in runs:
        found = _finished(run, root)
        if found is not None:
            records[run.key] = found
        else:
            todo.append(run)
    counts = {"total": len(runs), "done": len(records), "skipped": len(records), "running": 0, "failed": 0}

    def note(run: GridRun, record: RunRecord) -> None:
        records[run.key] = record
        counts["done"] += 1
        counts["failed"] += record.error is not None
        if progress is not None:
            progress(dict(counts), run)

    if progress is not None:
        progress(dict(counts), None)
    payloads = [(_as_payload(run), str(run.folder(root))) for run in todo]
    if executor == "ray":
        _run_ray(todo, payloads, fn, note, counts, progress, ray_address, resources)
    elif executor != "local":
        raise ValueError(f"executor must be 'local' or 'ray'; got {executor!r}")
    elif jobs == 1 or len(todo) <= 1:
        for run, (payload, folder) in zip(todo, payloads):
            counts["running"] = 1
            if progress is not None:
                progress(dict(counts), None)
            record = RunRecord.from_dict(_guarded(fn, payload, folder))
            counts["running"] = 0
            note(run, record)
    else:
        _run_processes(todo, payloads, fn, note, counts, progress, jobs)
    ordered = [records[r.key] for r in runs if r.key in records]
    return BenchResult(root, ordered, skipped=counts["skipped"], wall_s=time.perf_counter() - start)


def _as_payload(run: GridRun) -> dict[str, Any]:
    return {"split": run.split, "strategy": run.strategy, "seed": run.seed, "recipe": dict(run.recipe), "key": run.key}


def _finished(run: GridRun, root: Path) -> RunRecord | None:
    path = run.folder(root) / RECORD
    try:
        return RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _guarded(fn: Callable[..., Mapping[str, Any]], payload: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """Run one grid run; any exception becomes a failed record (with error.json) instead of stopping the grid."""
    run_dir = Path(folder)
    run_dir.mkdir(parents=True, exist_ok=True)
    names = {k: payload[k] for k in ("split", "strategy", "seed")}
    atomic_write_text(run_dir / SPEC, json.dumps(payload, indent=1, sort_keys=True) + "\n", fsync=False)
    started = time.perf_counter()
    try:
        record = {**dict(fn(payload, folder)), **names, "run_dir": folder}
    except Exception as exc:  # a failed run is data, not the end of the grid
        error = f"{type(exc).__name__}: {exc}"
        atomic_write_text(run_dir / ERROR, json.dumps({"error": error, "traceback": traceback.format_exc()}, indent=1) + "\n",
                          fsync=False)
        return {**names, "error": error, "run_dir": folder, "wall_s": time.perf_counter() - started}
    (run_dir / ERROR).unlink(missing_ok=True)
    atomic_write_text(run_dir / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_processes(todo, payloads, fn, note, counts, progress, jobs) -> None:
    import multiprocessing as mp

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as pool:
        pending: dict[Future, GridRun] = {}
        queue = list(zip(todo, payloads))
        while queue or pending:
            while queue and len(pending) < jobs:
                run, (payload, folder) = queue.pop(0)
                pending[pool.submit(_guarded, fn, payload, folder)] = run
            counts["running"] = len(pending)
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                run = pending.pop(future)
                counts["running"] = len(pending)
                note(run, RunRecord.from_dict(future.result()))


def _run_ray(todo, payloads, fn, note, counts, progress, ray_address, resources) -> None:
    from .._ray import connect, import_ray

    ray = import_ray()
    connect(ray, address=ray_address, workers=None)
    options = dict(resources or {"num_cpus": 1})
    remote = ray.remote(_guarded).options(**options)
    pending = {remote.remote(fn, payload, folder): run for run, (payload, folder) in zip(todo, payloads)}
    counts["running"] = len(pending)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            run = pending.pop(ref)
            counts["running"] = len(pending)
            note(run, RunRecord.from_dict(ray.get(ref)))


def _train_and_test(payload: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """The default run: train the recipe into ``folder`` (resuming a half run), then score the
    selected checkpoint once on the test split; return the record the report reads."""
    from ._runs import record_from_run, train_run

    train_run(payload["recipe"], folder)
    return record_from_run(folder)


def grid_table(counts: Mapping[str, int], started: float) -> Any:
    """A rich table of a grid's progress: done, running, failed, skipped and the ETA."""
    from rich.table import Table

    table = Table(title="augbal bench", show_header=True)
    for col in ("done", "running", "failed", "skipped", "total", "ETA"):
        table.add_column(col, justify="right")
    done_new = counts["done"] - counts["skipped"]
    left = counts["total"] - counts["done"]
    elapsed = time.perf_counter() - started
    eta = "-" if done_new == 0 else time.strftime("%H:%M:%S", time.gmtime(elapsed / done_new * left))
    table.add_row(*(str(counts[c]) for c in ("done", "running", "failed", "skipped", "total")), eta)
    return table


def strategies_help(names: Iterable[str] | None = None) -> str:
    """One line per registered strategy, for ``--help``."""
    from ._strategies import STRATEGIES

    return "\n".join(f"{n}: {resolve_strategy(n).description}" for n in (names or STRATEGIES.names()))
