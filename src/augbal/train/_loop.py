"""``train(recipe, *, out)``: one ResNet-18 fine-tuning run, read top to bottom.

The run folder (``out``) holds, when a run is done::

    recipe.yaml        the resolved recipe (``Recipe.to_yaml()``), checked on resume
    metrics.jsonl      one history row per epoch (rewritten atomically every epoch)
    last.pt            everything to continue: model, optimiser, scheduler, sampler,
                       averager, RNG states, history, epoch (atomic, every epoch)
    best.pt            the weights of the epoch the selector chose (``torch.load(...,
                       weights_only=True)`` reads it)
    selected.pt        the final model after averaging / cRT / tau-norm (weights only)
    selection.json     which candidate won on validation, why, and its post-hoc adjustment
    tensorboard/       the history rows as TensorBoard scalars (``log.tensorboard``; rank 0)
    run.md, *.png, classification_report.txt   the report (``write_run_report``)

Test data is never read here: ``augbal.train.evaluate_test(run_dir)`` scores the selected
model once, after ``selection.json`` is written, into ``test.json``.

Randomness: the model is initialised under ``torch.manual_seed(seed)`` inside a forked RNG;
every epoch re-seeds torch's global generator (dropout) from ``(seed, epoch, rank)``, the
shuffle and the mixer draw from generators seeded by ``(seed, epoch)``, augmentation from
the ``Draw`` of every sample. So the same recipe on CPU gives the same ``metrics.jsonl``
apart from the timing keys (``time_s``), and a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from augbal._atomic import atomic_write, atomic_write_text
from augbal._draw import DrawBatch

from ._distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    close_distributed,
    gather_rows,
    init_distributed,
    shard_indices,
)
from ._json import dumps as strict_json

__all__ = ["CHECKPOINT_FORMAT", "RunResult", "lr_find", "read_history", "train"]

CHECKPOINT_FORMAT = 1
#: history-row keys that hold wall-clock times (left out when runs are compared for determinism)
TIMING_KEYS = ("time_s",)


@dataclass(frozen=True)
class RunResult:
    """What a finished run left: its folder, the selected checkpoint and why, the verdict.

    Attributes:
        run_dir: the run folder.
        selected_epoch: the epoch whose weights the selected candidate starts from.
        candidate: the winning candidate's name ("best", "last", "ema", "swa", "crt", "tau_norm",
            with "+posthoc" when the logits are prior-adjusted).
        reason: one sentence saying why it was selected.
        val: the validation metrics of the selected candidate (``evaluate_logits``).
        verdict: the "should I worry?" sentence.
        volatility, floor: the numbers behind the verdict.
        paths: the files written (name -> path).
    """

    run_dir: Path
    selected_epoch: int
    candidate: str
    reason: str
    val: dict[str, Any]
    verdict: str
    volatility: float
    floor: float
    paths: dict[str, Path] = field(default_factory=dict)


def train(
    recipe: Any,
    *,
    out: str | os.PathLike[str],
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Fine-tune the recipe's ResNet-18 and write the run folder ``out``.

    Args:
        recipe: a ``augbal.recipes.Recipe``, a mapping or a YAML path (``load_recipe``).
        out: the run folder; must not hold another run unless ``resume``.
        resume: continue the run in ``out`` from its ``last.pt`` (the recipe must equal the
            saved one; a difference is refused naming the key).
        progress: called on rank 0 with each history row as it is written.

    Returns:
        RunResult.

    Raises:
        augbal.recipes.RecipeError: a bad recipe (or one differing from the run resumed).
        FileExistsError: ``out`` holds another run and ``resume`` is False.
        FileNotFoundError: ``resume`` without ``out/last.pt``.

    Example:
        >>> import tempfile
        >>> result = train({"data": {"source": "demo"}, "epochs": 1, "batch_size": 64,
        ...                 "model": {"weights": "none", "input_size": 32}},
        ...                out=tempfile.mkdtemp() + "/run")  # doctest: +SKIP
    """
    from augbal.recipes import Recipe, load_recipe, recipe_hash

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    run = Path(out)
    ctx = init_distributed(recipe.device)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
            return _train(recipe, recipe_hash(recipe), run, resume, ctx, progress)
    finally:
        close_distributed(ctx)


def _train(recipe: Any, rhash: str, run: Path, resume: bool, ctx: DistContext, progress: Any) -> RunResult:
    from . import _strategies as strategies
    from ._cache import tail
    from ._metrics import evaluate_logits
    from ._noise import noise_floor, volatility, worry_verdict
    from ._optim import build_scheduler
    from ._report import write_run_report
    from ._select import SELECTIONS

    seed, epochs, device = int(recipe.seed), int(recipe.epochs), ctx.device

    # ---- the run folder: a new run, or the one to resume; the TensorBoard logger (rank 0) --
    logger = _tensorboard_logger(recipe, run, ctx)  # refuses before anything is written if it cannot log
    saved = _open_run_folder(run, recipe, rhash, resume, ctx)

    # ---- data, model, freeze policy, loss, inputs, batches, optimiser (as lr_find has them) --
    s = _setup(recipe, run, ctx)
    data, classes, model, net, freeze, optimizer = s.data, s.classes, s.model, s.net, s.freeze, s.optimizer
    train_ds, val_ds, upto, per_rank, amp, channels_last = s.train_ds, s.val_ds, s.upto, s.per_rank, s.amp, s.channels_last
    train_labels, val_labels, train_counts, train_prior = s.train_labels, s.val_labels, s.train_counts, s.train_prior
    sampler, batch_sampler, loader, loss_fn, weights = s.sampler, s.batch_sampler, s.loader, s.loss_fn, s.weights
    mixer = s.mixer
    partner = None  # Balanced-MixUp mixes every batch with one from a class-balanced stream
    if mixer is not None and strategies.needs_balanced_batches(mixer):
        partner = strategies.balanced_batches(train_ds, train_labels, per_rank, seed=seed, ctx=ctx)
        partner_loader = _loader(recipe, train_ds, partner, upto is not None, seed)

    # ---- schedule, selection, averaging ------------------------------------------------------
    scheduler = build_scheduler(optimizer, recipe.schedule, epochs=epochs, steps_per_epoch=len(batch_sampler))
    selector = SELECTIONS.from_spec(_spec(recipe.selection))
    averager = selector if getattr(selector, "averages", False) else None
    if averager is None and getattr(recipe, "averaging", None) is not None:
        averager = SELECTIONS.from_spec(_spec(recipe.averaging))
    grad_clip = getattr(recipe, "grad_clip", None)
    per_epoch_posthoc = strategies.per_epoch_posthoc(recipe)

    # ---- resume: restore every piece of state saved after the last finished epoch ---------
    history: list[dict[str, Any]] = []
    start = 0
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if sampler is not None and saved.get("sampler") is not None:
            sampler.load_state_dict(saved["sampler"])
        if averager is not None and saved.get("averager") is not None:
            averager.load_state_dict(saved["averager"], model=model)  # the selector too, when it averages
        _set_rng_states(saved["rng"])
        history = list(saved["history"])
        for row in history:  # the selector's state is a function of the history
            selector.update(row["epoch"], _selection_view(row))
        start = int(saved["epoch"]) + 1

    # ---- the epochs --------------------------------------------------------------------------
    ddp, trainable = None, None
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_derive(seed, epoch, ctx.rank))  # dropout and anything else on torch's global RNG
        freeze.apply(model, epoch)
        freeze.train_mode(model, epoch)
        if ctx.distributed and tuple(freeze.trainable(epoch)) != trainable:
            trainable = tuple(freeze.trainable(epoch))
            ddp = _wrap_ddp(net, ctx)  # DDP registers the parameters trainable now
        forward = ddp if ddp is not None else net
        batch_sampler.set_epoch(epoch)
        if partner is not None:
            partner.set_epoch(epoch)
            partners = iter(partner_loader)
        mix_gen = torch.Generator().manual_seed(_derive(seed, epoch, 0x313C))
        lrs = [float(g["lr"]) for g in optimizer.param_groups]  # the rates the epoch starts with
        sums = torch.zeros(3, dtype=torch.float64)  # loss as optimised * n, unweighted CE * n, n

        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = y
            if partner is not None:
                xb, yb = next(partners)
                x, targets = mixer(x, y, xb[: len(x)].to(device), yb[: len(x)].to(device), generator=mix_gen)
            elif mixer is not None:
                x, targets = mixer(x, y, generator=mix_gen)
            with _autocast(device, amp):
                logits = forward(x)
            logits = logits.float()
            loss = loss_fn(logits, targets, epoch=epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
            optimizer.step()
            scheduler.step_batch()
            if averager is not None and averager.per_step:
                averager.update(model, epoch)  # EMA: its decay is per step
            with torch.no_grad():
                n = x.shape[0]
                sums += torch.tensor([float(loss) * n, float(F.cross_entropy(logits, targets)) * n, n], dtype=torch.float64)

        sums = all_reduce_sum(sums, ctx)
        val_logits = _predict(net, val_ds, len(val_labels), ctx, device, amp, channels_last, batch=int(recipe.batch_size))
        val = evaluate_logits(val_logits, val_labels, train_counts=train_counts, classes=classes)
        scheduler.step_epoch(val)
        row = {
            "epoch": epoch,
            "lr": lrs,
            "train": {"loss": float(sums[0] / sums[2]), "loss_unweighted": float(sums[1] / sums[2])},
            "val": val,
            "time_s": time.perf_counter() - t0,
        }
        if per_epoch_posthoc is not None:  # the selector chooses the epoch on the adjusted logits
            adjusted, _ = strategies.posthoc_adjust(val_logits.cpu().float(), per_epoch_posthoc,
                                                    train_prior=train_prior, val_labels=val_labels)  # fmt: skip
            row["val_posthoc"] = evaluate_logits(adjusted, val_labels, train_counts=train_counts, classes=classes)
        history.append(row)
        if selector.update(epoch, _selection_view(row)) and ctx.is_main:  # the whole row: "val.loss", "train.loss" name keys of it
            _save_weights(run / "best.pt", model, epoch=epoch, classes=classes, weights=weights, kind="best")
        if getattr(recipe.log, "epoch_checkpoints", False) and ctx.is_main:
            _save_weights(epoch_checkpoint(run, epoch), model, epoch=epoch, classes=classes, weights=weights, kind="epoch")
        if averager is not None and not averager.per_step:
            averager.update(model, epoch)  # SWA: once an epoch; the frozen stages average to themselves
        if ctx.is_main:
            _save_checkpoint(run / "last.pt", {
                "format": CHECKPOINT_FORMAT, "recipe_hash": rhash, "epoch": epoch,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "sampler": None if sampler is None else sampler.state_dict(),
                "averager": None if averager is None else averager.state_dict(), "rng": _rng_states(), "history": history,
            })  # fmt: skip
            _write_history(run / "metrics.jsonl", history)
            if logger is not None:
                logger.log(row)
            if progress is not None:
                progress(row)
        barrier(ctx)
    if logger is not None:
        logger.close()

    # ---- after training: candidates, strategies, the choice on validation ------------------
    def score(module: nn.Module) -> tuple[torch.Tensor, dict[str, Any]]:
        logits = _predict(module, val_ds, len(val_labels), ctx, device, amp, channels_last, batch=int(recipe.batch_size))
        return logits, evaluate_logits(logits, val_labels, train_counts=train_counts, classes=classes)

    selected_epoch = selector.selected_epoch if selector.selected_epoch is not None else epochs - 1
    candidates: list[strategies.Candidate] = []
    if not getattr(selector, "averages", False):  # the selector's epoch (the last weights if it chose none)
        best = _load_weights(run / "best.pt", ctx)
        if best is not None:
            model.load_state_dict(best["model"])
        logits, metrics = score(net)
        name, reason = ("best", selector.reason()) if best is not None else ("last", f"the last epoch ({epochs - 1})")
        candidates.append(strategies.Candidate(name, selected_epoch, reason, logits, metrics, _copy_state(model)))
    if averager is not None:  # weight averages, BatchNorm recomputed on the training inputs
        averaged = strategies.finalize_average(averager, train_ds, upto=upto, frozen=freeze.frozen_through(epochs),
                                               batch=per_rank, device=device)  # fmt: skip
        logits, metrics = score(averaged if upto is None else tail(averaged, upto))
        state = _copy_state(averaged)
        name = SELECTIONS.name_of(averager)
        candidates.append(strategies.Candidate(name, epochs - 1, averager.reason(), logits, metrics, state))

    metric, mode = strategies.selection_metric(selector)
    chosen = strategies.choose(candidates, metric, mode)
    model.load_state_dict(chosen.state)
    chosen = strategies.after_training(
        recipe, chosen, model=model, data=data, weights=weights, train_prior=train_prior, val_labels=val_labels,
        train_counts=train_counts, classes=classes, score=score, net=net, device=device, ctx=ctx, seed=seed,
        metric=metric, mode=mode, candidates=candidates, root=s.cache_root, eval_policy=s.eval_policy,
    )  # fmt: skip
    model.load_state_dict(chosen.state)

    # ---- should I worry? the volatility of the unweighted val loss against its noise floor ---
    nf = recipe.noise_floor
    floor = noise_floor(chosen.logits, val_labels, n_boot=int(nf.n_boot), seed=int(nf.seed), classes=classes)
    curve = [row["val"]["loss"] for row in history]
    vol = volatility(curve)
    verdict = worry_verdict(vol, floor, values=curve)  # also says when the excess is only the early descent

    # ---- outputs (rank 0) -------------------------------------------------------------------
    paths = {name: run / name for name in ("recipe.yaml", "metrics.jsonl", "last.pt", "selected.pt", "selection.json")}
    if (run / "best.pt").exists():
        paths["best.pt"] = run / "best.pt"
    selection = {
        "candidate": chosen.name,
        "epoch": chosen.epoch,
        "reason": chosen.reason,
        "metric": metric,
        "mode": mode,
        "posthoc": chosen.posthoc,
        "candidates": {c.name: {"epoch": c.epoch, metric: strategies.metric_value(c.metrics, metric)} for c in candidates},
        "val": chosen.metrics,
        "volatility": vol,
        "floor": _floor_value(floor),
        "verdict": verdict.sentence,
        "weights": weights.to_dict(),
        "classes": classes,
        "train_prior": train_prior.tolist(),
        "train_counts": train_counts.tolist(),
    }
    if ctx.is_main:
        _save_weights(run / "selected.pt", model, epoch=chosen.epoch, classes=classes, weights=weights,
                      kind=chosen.name, posthoc=chosen.posthoc)  # fmt: skip
        atomic_write_text(run / "selection.json", strict_json(selection, indent=2) + "\n")
        y_pred = chosen.logits.argmax(1).numpy()
        report = write_run_report(
            run, history=history, classes=classes, verdict=verdict, selection=selection, noise=floor,
            recipe=recipe.to_dict(), y_true=val_labels, y_pred=y_pred,
        )  # fmt: skip
        if isinstance(report, Mapping):
            paths.update({str(k): Path(v) for k, v in report.items()})
        paths["run.md"] = run / "run.md"
    barrier(ctx)
    return RunResult(
        run_dir=run, selected_epoch=int(chosen.epoch), candidate=chosen.name, reason=chosen.reason,
        val=chosen.metrics, verdict=verdict.sentence, volatility=float(vol), floor=_floor_value(floor), paths=paths,
    )  # fmt: skip


# ======================================================================================
# helpers: the run folder and checkpoints
# ======================================================================================


def _open_run_folder(run: Path, recipe: Any, rhash: str, resume: bool, ctx: DistContext) -> dict[str, Any] | None:
    """Check ``run`` and write ``recipe.yaml`` for a new run; load ``last.pt`` to resume."""
    last = run / "last.pt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist")
        _check_same_recipe(run, recipe, rhash)
        return torch.load(last, map_location="cpu", weights_only=False)  # our own file: RNG states are numpy objects
    taken = [name for name in ("last.pt", "metrics.jsonl", "selection.json") if (run / name).exists()]
    if taken:  # every rank sees it and stops (none is left waiting at the barrier)
        raise FileExistsError(
            f"run folder {run} already holds a run ({', '.join(taken)}); pass resume=True (--resume) to continue "
            "it, or choose another folder"
        )
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "recipe.yaml", recipe.to_yaml())
    barrier(ctx)
    return None


def _tensorboard_logger(recipe: Any, run: Path, ctx: DistContext) -> Any:
    """``RUN/tensorboard``'s logger on rank 0 when ``log.tensorboard`` is on; every rank checks
    that TensorBoard imports, so a run that cannot log is refused on all of them at once."""
    if not recipe.log.tensorboard:
        return None
    from augbal.recipes import RecipeError

    from ._tensorboard import TensorBoardLogger, import_summary_writer

    try:
        import_summary_writer()
    except ImportError as exc:
        raise RecipeError(f"recipe key log.tensorboard: {exc}", ("log.tensorboard",)) from None
    return TensorBoardLogger(run / "tensorboard") if ctx.is_main else None


def _check_same_recipe(run: Path, recipe: Any, rhash: str) -> None:
    """Refuse to resume with a recipe that differs from the saved one, naming the first key that differs."""
    from augbal.recipes import RecipeError, load_recipe, recipe_hash

    saved = load_recipe(run / "recipe.yaml")
    if recipe_hash(saved) == rhash:
        return
    diffs = _diff(saved.to_dict(), recipe.to_dict())
    key, old, new = diffs[0] if diffs else ("?", "?", "?")
    raise RecipeError(
        f"recipe key {key}: must equal the saved run's to resume it ({run / 'recipe.yaml'}); "
        f"got {new!r}, the run was started with {old!r}"
    )


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Dotted keys where two nested mappings differ, in key order.

    Example:
        >>> _diff({"optim": {"lr": 1, "wd": 0}, "seed": 0}, {"optim": {"lr": 2, "wd": 0}, "seed": 0})
        [('optim.lr', 1, 2)]
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: list[tuple[str, Any, Any]] = []
        for k in list(a) + [k for k in b if k not in a]:
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)


def _save_weights(path: Path, model: nn.Module, **meta: Any) -> None:
    """Weights plus plain metadata: ``torch.load(path, weights_only=True)`` reads it."""
    info = meta.pop("weights", None)
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    state.update({k: v for k, v in meta.items()})
    if info is not None:
        state["weights"] = info.to_dict()
    _save_checkpoint(path, state)


def epoch_checkpoint(run: str | os.PathLike[str], epoch: int) -> Path:
    """Where ``log.epoch_checkpoints`` keeps ``epoch``'s weights: ``RUN/epochs/epoch-NNN.pt``."""
    return Path(run) / "epochs" / f"epoch-{int(epoch):03d}.pt"


def _load_weights(path: Path, ctx: DistContext) -> dict[str, Any] | None:
    barrier(ctx)  # rank 0 wrote it
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _write_history(path: Path, history: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(strict_json(row) + "\n" for row in history))


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "metrics.jsonl")
        >>> _write_history(Path(p), [{"epoch": 0}, {"epoch": 1}])
        >>> [r["epoch"] for r in read_history(p)]
        [0, 1]
    """
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _rng_states() -> dict[str, Any]:
    import random

    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    import random

    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _state_hash(model: nn.Module) -> str:
    """sha256 over a model's state_dict tensors (names, shapes, bytes): the key of random weights."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def trunk_hash(model: nn.Module, upto: str) -> str:
    """The cache key of ``trunk(model, upto)``: the hash of exactly the weights and BatchNorm
    statistics its outputs depend on (the same weights give the same key in every run)."""
    from ._cache import trunk

    return _state_hash(trunk(model, upto))


def _floor_value(floor: Any) -> float:
    for attr in ("floor", "std"):
        value = getattr(floor, attr, None)
        if value is not None:
            return float(value)
    return float(floor)


# ======================================================================================
# helpers: batches, forward passes, distribution
# ======================================================================================


def _selection_view(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The epoch's row as the selector reads it: ``val`` is the post-hoc adjusted validation
    metrics when the recipe asks for per-epoch adjustment (``strategy.posthoc.per_epoch``)."""
    return {**row, "val": row["val_posthoc"]} if "val_posthoc" in row else row


def _derive(*key: int) -> int:
    """A 63-bit seed from integers (``SeedSequence``): distinct keys give unrelated seeds.

    Example:
        >>> _derive(0, 1) == _derive(0, 1), _derive(0, 1) == _derive(0, 2)
        (True, False)
    """
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(2, np.uint32).astype(np.uint64) @ [1 << 31, 1])


def _spec(value: Any) -> Any:
    """A component spec as plain data (pydantic sub-models dumped)."""
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def _per_rank_batch(batch_size: int, ctx: DistContext) -> int:
    if batch_size % ctx.world_size:
        raise ValueError(
            f"batch_size must be a multiple of the number of processes ({ctx.world_size}): it is the global "
            f"batch, split evenly; got {batch_size}"
        )
    return batch_size // ctx.world_size


def _is_batch_sampler(sampler: Any) -> bool:
    return getattr(sampler, "_unit", 1) > 1


class ShuffleBatches:
    """The plain-shuffle batch sampler: a seeded permutation per epoch, sharded as torch's
    ``DistributedSampler`` shards it, cut into batches of ``DrawBatch`` keys (repeat 0).

    Rank ``r`` of ``R`` takes positions ``r, r + R, ...`` of the padded permutation, so the
    union of the ranks' ``i``-th batches of ``B/R`` items is the single process's ``i``-th
    batch of ``B`` items: with gradient averaging the ranks take the same steps.

    Example:
        >>> from augbal.train._distributed import DistContext
        >>> ctx = DistContext(0, 1, 0, torch.device("cpu"))
        >>> b = ShuffleBatches(10, 4, seed=0, ctx=ctx); b.set_epoch(0)
        >>> [len(x) for x in b], len(b)
        ([4, 4, 2], 3)
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, ctx: DistContext) -> None:
        from torch.utils.data import DistributedSampler

        self.batch_size = batch_size
        self.epoch = 0
        self._sampler = DistributedSampler(
            range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self._sampler) // self.batch_size)

    def __iter__(self) -> Iterator[DrawBatch]:
        order = np.fromiter(iter(self._sampler), dtype=np.int64)
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield DrawBatch(idx, np.zeros_like(idx), self.epoch)


def _collate_tensors(batch: Any) -> Any:
    """Collate of cached views: ``__getitems__`` already returns ``(features, labels)`` tensors."""
    return batch


def _loader(recipe: Any, dataset: Any, batch_sampler: Any, cached: bool, seed: int) -> Any:
    from augbal.augment import make_loader

    workers = 0 if cached else getattr(recipe, "num_workers", None)
    return make_loader(
        dataset, batch_size=None, batch_sampler=batch_sampler, num_workers=workers, seed=seed,
        collate_fn=_collate_tensors if cached else None,
    )  # fmt: skip


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _wrap_ddp(net: nn.Module, ctx: DistContext) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)


@torch.no_grad()
def _predict(
    net: nn.Module,
    views: tuple[Any, ...],
    n: int,
    ctx: DistContext,
    device: torch.device,
    amp: torch.dtype | None,
    channels_last: bool,
    *,
    batch: int,
) -> torch.Tensor:
    """float32 logits of all ``n`` samples (CPU), in order: the mean over ``views`` (datasets of the
    same samples, one per evaluation policy: two with ``tta: flip``); ranks score shards, then gather."""
    was_training = net.training
    modes = {mod: mod.training for mod in net.modules()}
    net.eval()
    idx = np.asarray(shard_indices(n, ctx), dtype=np.int64)
    parts = []
    for i in range(0, len(idx), batch):
        keys = idx[i : i + batch]
        logits = []
        for view in views:
            items = view.__getitems__(DrawBatch(keys, np.zeros_like(keys), 0))
            x = items[0] if isinstance(items, tuple) else torch.stack([torch.as_tensor(it[0]) for it in items])
            x = x.to(device)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits.append(net(x).float())
        parts.append(logits[0] if len(logits) == 1 else torch.stack(logits).mean(0))
    for mod, mode in modes.items():
        mod.training = mode
    net.training = was_training
    mine = torch.cat(parts) if parts else torch.zeros((0, 0), device=device)
    return gather_rows(mine, n, ctx).cpu()


def lr_find(recipe: Any, *, out: str | os.PathLike[str], **options: Any) -> Any:
    """The LR range test (``augbal.train.find_lr``) on the recipe's model, loss and batches.

    Builds what ``train`` builds for epoch 0 (the same ``_setup``: cached inputs when the
    trunk stays frozen, the recipe's sampler or the seeded shuffle), in one process, sweeps
    the learning rate, writes ``out/lr_find.png`` and returns the ``LRFinderResult``
    (``suggestion``: fastai's steepest-descent point). Nothing is trained: the model and
    optimiser are restored by ``find_lr``. ``options`` go to ``find_lr`` (``num_iter``, ...).

    Example:
        >>> import tempfile
        >>> result = lr_find({"data": {"source": "demo"}, "batch_size": 64,
        ...                   "model": {"weights": "none", "input_size": 32}},
        ...                  out=tempfile.mkdtemp(), num_iter=20)  # doctest: +SKIP
    """
    from augbal.recipes import Recipe, load_recipe

    from ._optim import find_lr

    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    run = Path(out)
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=init_distributed(recipe.device).device)
    s = _setup(recipe, run, ctx)
    s.freeze.apply(s.model, 0)
    s.freeze.train_mode(s.model, 0)
    s.batch_sampler.set_epoch(0)
    result = find_lr(s.net, s.loader, lambda logits, y: s.loss_fn(logits, y), s.optimizer, **options)
    run.mkdir(parents=True, exist_ok=True)
    result.plot(run / "lr_find.png")
    return result


# ======================================================================================
# the setup train and lr_find share
# ======================================================================================


@dataclass(frozen=True, eq=False)
class _Setup:
    """What a run is built from before its first epoch (``_setup``)."""

    data: Any  # DataSplits
    classes: list[str]
    train_labels: np.ndarray  # of train_ds (a feature resampler changes them)
    val_labels: np.ndarray
    train_counts: np.ndarray  # of the data's train side
    train_prior: np.ndarray
    model: nn.Module
    weights: Any  # WeightsInfo
    freeze: Any  # FreezePolicy
    loss_fn: Any  # a fitted Loss
    train_policy: Any
    eval_policy: Any
    mixer: Any  # the recipe's mixer, None without one
    upto: str | None  # what the inputs are cached up to ("features", "layer3"), None for images
    cache_root: Path
    train_ds: Any
    val_ds: tuple[Any, ...]  # one dataset per evaluation view (``_predict`` averages them)
    net: nn.Module  # what the inputs go through: the model, or its tail on cached activations
    channels_last: bool
    amp: torch.dtype | None
    per_rank: int
    sampler: Any  # the recipe's sampler, None for the seeded shuffle
    batch_sampler: Any
    loader: Any
    optimizer: torch.optim.Optimizer


@contextlib.contextmanager
def _recipe_key(path: str, spec: Any) -> Iterator[None]:
    """Turn a component's build error into a ``RecipeError`` naming its recipe key (``path``)."""
    from . import _strategies as strategies

    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        raise strategies.component_error(path, spec, exc) from None


def _resolve_data(recipe: Any, seed: int) -> Any:
    """``resolve_data`` of the recipe's data section; a listed class without images is a
    ``RecipeError`` naming ``data.classes`` and the classes the source has."""
    from augbal.data import EmptyClassError
    from augbal.recipes import RecipeError

    from ._data import resolve_data

    try:
        return resolve_data(recipe.data, seed=seed)
    except EmptyClassError as exc:
        if recipe.data.classes is None:
            raise
        source = Path(recipe.data.source or "")
        found = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")) if source.is_dir() else []
        listing = f" (the classes of {source}: {', '.join(found)})" if found else ""
        raise RecipeError(f"recipe key data.classes: every class named must have images in data.source{listing}; "
                          f"got {', '.join(repr(c) for c in exc.classes)}", ("data.classes",)) from None


def _setup(recipe: Any, run: Path, ctx: DistContext) -> _Setup:
    """Data, model, freeze policy, loss, inputs, batches and optimiser of a run: one place, so
    ``train`` and ``lr_find`` cannot drift apart."""
    from augbal.recipes import RecipeError
    from augbal.sampling import SAMPLERS

    from . import _strategies as strategies
    from ._freeze import FREEZE_POLICIES
    from ._losses import LOSSES
    from ._model import build_model
    from ._optim import build_optimizer

    seed, epochs, device = int(recipe.seed), int(recipe.epochs), ctx.device

    # ---- data ----------------------------------------------------------------------------
    data = _resolve_data(recipe, seed)
    classes = list(data.classes)
    C = len(classes)
    train_labels = np.asarray(data.train.labels, dtype=np.int64)
    val_labels = np.asarray(data.val.labels, dtype=np.int64)
    if len(val_labels) == 0:
        raise RecipeError("recipe key data.val_fraction: must leave validation images (checkpoints are chosen on "
                          "validation, never on test); got a validation split of 0 images")  # fmt: skip
    train_counts = np.bincount(train_labels, minlength=C)

    # ---- model, freeze policy, loss ------------------------------------------------------
    m = recipe.model
    model, weights = build_model(
        C, weights=m.weights, cifar_stem=m.cifar_stem, dropout=m.dropout, head=m.head,
        input_size=m.input_size, mean=m.mean, std=m.std, download=m.download, seed=seed,
    )  # fmt: skip
    freeze = FREEZE_POLICIES.from_spec(_spec(recipe.freeze))
    # every component that needs the data is built (or checked) now, before the first epoch:
    # a bad value is a RecipeError naming its key, never a failure after hours of training
    with _recipe_key("loss", _spec(recipe.loss)):
        loss_fn = LOSSES.from_spec(strategies.component_with_classes("loss", _spec(recipe.loss), classes)).fit(train_counts)
    train_policy, eval_policy = strategies.policies(recipe, weights, seed=seed, classes=classes, counts=train_counts)
    with _recipe_key("mixer", _spec(recipe.mixer)):
        mixer = strategies.build_mixer(recipe, num_classes=C, class_counts=train_counts)
    crt = strategies._strategy(recipe, "crt")
    if crt is not None:  # built once here to check it; cRT builds its own after training
        strategies.crt_sampler(crt, train_labels, classes, seed=seed)

    # ---- inputs: cached features / activations when the trunk stays frozen, else images --
    upto = strategies.cache_level(recipe, freeze, epochs)
    cache_root = Path(getattr(getattr(recipe, "cache", None), "dir", None) or run / "cache")
    if upto is not None:
        train_ds, val_ds, net = strategies.cached_inputs(
            recipe, model, trunk_hash(model, upto), data, upto=upto, train_policy=train_policy,
            eval_policy=eval_policy, device=device, ctx=ctx, seed=seed, root=cache_root,
        )  # fmt: skip
        train_labels = np.asarray(train_ds.labels, dtype=np.int64)  # a feature resampler changes them
    else:
        from augbal.data import ImageDataset

        train_ds = ImageDataset(data.train, transform=train_policy)
        val_ds = tuple(ImageDataset(data.val, transform=p) for p in strategies.eval_views(recipe, eval_policy))
        net = model
    model.to(device)
    channels_last = device.type == "cuda" and bool(getattr(m, "channels_last", True)) and upto != "features"
    if channels_last:
        model.to(memory_format=torch.channels_last)

    # ---- batches: a sampler's batch mode, or a seeded shuffle shared by every rank --------
    per_rank = _per_rank_batch(int(recipe.batch_size), ctx)
    sampler_spec = strategies.sampler_spec(recipe)
    sampler = None
    if sampler_spec is not None:
        with _recipe_key("sampler", sampler_spec):
            sampler = SAMPLERS.from_spec(
                strategies.component_with_classes("sampler", sampler_spec, classes),
                labels=train_labels, seed=seed, num_replicas=ctx.world_size, rank=ctx.rank, yield_draws=True,
            )  # fmt: skip
        batch_sampler: Any = sampler if _is_batch_sampler(sampler) else sampler.batches(per_rank)
        with _recipe_key("sampler", sampler_spec):  # some rules hold per epoch (the classes a weighting keeps)
            for epoch in sorted({epochs - 1, 0}):
                batch_sampler.set_epoch(epoch)
                len(batch_sampler)
            batch_sampler.set_epoch(0)
    else:
        batch_sampler = ShuffleBatches(len(train_labels), per_rank, seed=seed, ctx=ctx)

    # ---- the optimiser: one group per stage the freeze policy ever trains ------------------
    optimizer = build_optimizer(freeze.param_groups(model, lr=float(recipe.optim["lr"])), recipe.optim)
    return _Setup(
        data=data, classes=classes, train_labels=train_labels, val_labels=val_labels, train_counts=train_counts,
        train_prior=train_counts / train_counts.sum(), model=model, weights=weights, freeze=freeze, loss_fn=loss_fn,
        train_policy=train_policy, eval_policy=eval_policy, mixer=mixer, upto=upto, cache_root=cache_root, train_ds=train_ds, val_ds=val_ds, net=net,
        channels_last=channels_last, amp=strategies.autocast_dtype(recipe, device), per_rank=per_rank,
        sampler=sampler, batch_sampler=batch_sampler, loader=_loader(recipe, train_ds, batch_sampler, upto is not None, seed),
        optimizer=optimizer,
    )  # fmt: skip
