"""The strategies of a run beyond its loss: the input path, DRS, and what acts after training.

- **Inputs.** :func:`cache_level` says how far the trunk stays frozen for the whole run
  (``freeze.frozen_through(epochs)``: "layer4" → the 512-d features can be cached, "layer3" →
  layer3's activations); :func:`cached_inputs` then trains the tail on
  ``FeatureCache.views(...)`` (K augmented views when an augmentation policy is set; the
  draw with repeat k in epoch e reads view (k + e) mod K) instead of images.
- **DRS** (deferred re-sampling, Cao et al. 2019): the sampler's weighting becomes
  ``Deferred(switch_epoch, before="instance", after="balanced")`` (a class-aware sampler when
  the recipe has none).
- **Feature-space resampling**: ``resample_features`` (SMOTE, ADASYN, BorderlineSMOTE via
  imbalanced-learn, seeded by the run seed) on the cached training features, once per run; the
  head trains on the resampled set.
- **After training**, each a *candidate* scored on validation, chosen only there:
  cRT (Kang et al. 2020: a new head trained with class-balanced sampling on the frozen
  features), tau-normalisation of the head (tau from a grid, chosen on validation), and
  post-hoc logit adjustment (Menon et al. 2021) to the uniform prior, the validation prior,
  or the validation prior estimated by EM (Saerens et al. 2002).

Example:
    >>> c = Candidate("best", 3, "epoch 3: best", torch.zeros(2, 2), {"balanced_accuracy": 0.5}, {})
    >>> d = Candidate("crt", 3, "cRT", torch.zeros(2, 2), {"balanced_accuracy": 0.6}, {})
    >>> choose([c, d], "balanced_accuracy", "max").name
    'crt'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augbal._draw import DrawBatch

__all__ = ["Candidate", "TensorViews", "choose", "drs_weighting", "posthoc_adjust"]

#: the tau grid of tau-normalisation when the recipe gives none (Kang et al. search [0, 1])
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(11))


@dataclass
class Candidate:
    """One model the run may select: its name, epoch, why it exists, its validation logits
    and metrics, its full state_dict, and the post-hoc adjustment applied to its logits."""

    name: str
    epoch: int
    reason: str
    logits: torch.Tensor
    metrics: dict[str, Any]
    state: dict[str, torch.Tensor]
    posthoc: dict[str, Any] | None = field(default=None)


def choose(candidates: Sequence[Candidate], metric: str, mode: str) -> Candidate:
    """The best candidate by ``metric`` (``mode`` "max" or "min"); ties keep the earlier one."""
    if not candidates:
        raise ValueError("choose needs at least one candidate; got none")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min'; got {mode!r}")
    sign = 1.0 if mode == "max" else -1.0

    def value(c: Candidate) -> float:
        v = metric_value(c.metrics, metric)
        return -np.inf if np.isnan(v) else sign * v  # a NaN never wins

    best = candidates[0]
    for c in candidates[1:]:
        if value(c) > value(best):
            best = c
    return best


def metric_value(metrics: dict[str, Any], name: str) -> float:
    """A validation metric by name: a key (``"loss"``), ``"val.<key>"``, or ``"<list key>.<class>"``
    (``"recall.2"``).

    Example:
        >>> metric_value({"loss": 0.5, "recall": [0.1, 0.9]}, "val.recall.1")
        0.9
    """
    key = name[4:] if name.startswith("val.") else name
    if key in metrics:
        return np.nan if metrics[key] is None else float(metrics[key])
    head, _, index = key.rpartition(".")
    if head in metrics and index.isdigit():
        value = metrics[head][int(index)]
        return np.nan if value is None else float(value)  # None: undefined, never chosen
    raise KeyError(f"metric {name!r} is not among the validation metrics: {', '.join(sorted(metrics))}")


def selection_metric(selector: Any) -> tuple[str, str]:
    """The metric and mode ("max"/"min") candidates are compared by: the selector's, else
    balanced accuracy; ``"auto"`` (or none) minimises losses and ECE, maximises the rest.

    Example:
        >>> from types import SimpleNamespace
        >>> selection_metric(SimpleNamespace(metric="val.loss", mode="auto"))
        ('val.loss', 'min')
        >>> selection_metric(SimpleNamespace(metric="train.loss", mode="min"))
        ('balanced_accuracy', 'max')
    """
    metric = str(getattr(selector, "metric", None) or "balanced_accuracy")
    mode = getattr(selector, "mode", None)
    if not (metric.startswith("val.") or "." not in metric or metric.split(".")[-1].isdigit()):
        metric, mode = "balanced_accuracy", "max"  # a training metric cannot rank candidates: validation decides
    if mode not in ("max", "min"):
        base = metric[4:] if metric.startswith("val.") else metric
        mode = "min" if base.startswith("loss") or base == "ece" else "max"
    return metric, str(mode)


# ======================================================================================
# inputs
# ======================================================================================


def policies(
    recipe: Any,
    weights: Any,
    *,
    seed: int,
    classes: Sequence[str] | None = None,
    counts: Sequence[int] | None = None,
) -> tuple[Any, Any]:
    """The training and evaluation policies, sized and normalised by the weights unless the
    spec gives its own ``size``/``mean``/``std``; seeded by the run seed unless it sets one.

    ``classes`` and ``counts`` (the training split's) go where a spec needs the data:
    ``rarity_scaled`` without counts, ``class_conditional`` keyed by class names (also nested;
    see :func:`policy_with_data`).

    Example:
        >>> from types import SimpleNamespace
        >>> from augbal.recipes import load_recipe
        >>> r = load_recipe({"data": {"source": "demo"}, "augmentation": "rarity_scaled"})
        >>> w = SimpleNamespace(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        >>> train_policy, _ = policies(r, w, seed=0, classes=["a", "b"], counts=[90, 10])
        >>> train_policy.magnitudes_[1] > train_policy.magnitudes_[0]
        True
    """
    from augbal.augment import build_policy

    def make(spec: Any) -> Any:
        spec = _spec(spec) if spec is not None else "none"
        spec = policy_with_data(spec, classes=classes, counts=counts)
        given = set(spec) if isinstance(spec, dict) else set()
        defaults = {"size": int(weights.input_size), "mean": tuple(weights.mean), "std": tuple(weights.std), "seed": seed}
        return build_policy(spec, **{k: v for k, v in defaults.items() if k not in given})

    built = []
    for key in ("augmentation", "eval_augmentation"):
        spec = getattr(recipe, key, None)
        try:
            built.append(make(spec))
        except (ValueError, TypeError, KeyError) as exc:
            raise component_error(key, _spec(spec), exc) from None
    return built[0], built[1]


def policy_with_data(spec: Any, *, classes: Sequence[str] | None, counts: Sequence[int] | None) -> Any:
    """A policy spec with what the run knows filled in where the spec leaves it out, nested
    specs too (``base``, ``default``, ``policies``): ``rarity_scaled`` gets the training
    ``counts`` and ``classes``, ``class_conditional`` the ``classes`` (names as keys).

    Example:
        >>> policy_with_data({"name": "mirrored", "base": "rarity_scaled"}, classes=["a", "b"], counts=[9, 1])
        {'name': 'mirrored', 'base': {'name': 'rarity_scaled', 'counts': [9, 1], 'classes': ['a', 'b']}}
    """
    if isinstance(spec, str):
        if spec not in ("rarity_scaled", "class_conditional"):
            return spec
        spec = {"name": spec}
    if not isinstance(spec, dict):
        return spec  # a built policy: used as it is
    out = dict(spec)
    for key in ("base", "default"):
        if key in out:
            out[key] = policy_with_data(out[key], classes=classes, counts=counts)
    if isinstance(out.get("policies"), dict):
        out["policies"] = {k: policy_with_data(v, classes=classes, counts=counts) for k, v in out["policies"].items()}
    name = out.get("name")
    if name == "rarity_scaled" and out.get("counts") is None and counts is not None:
        out["counts"] = [int(c) for c in counts]
        if out.get("classes") is None and classes is not None:
            out["classes"] = list(classes)
    if name == "class_conditional" and out.get("classes") is None and classes is not None:
        out["classes"] = list(classes)
    return out


def component_with_classes(kind: str, spec: Any, classes: Sequence[str] | None, *, path: str = "") -> Any:
    """A sampler or loss spec whose class-name keys can be resolved: its ``weighting`` built by
    ``resolve_weighting(..., classes=classes)`` and ``classes`` given to a factory taking it
    (``resampled``). A bad weighting is a ``RecipeError`` naming ``path``.weighting.

    Example:
        >>> component_with_classes("sampler", {"name": "class_aware", "weighting": {"b": 2.0}}, ["a", "b"])["weighting"]
        Explicit(weights={'b': 2.0}, classes=['a', 'b'])
    """
    import inspect

    if spec is None or classes is None:
        return spec
    path = path or kind
    from augbal.sampling import SAMPLERS, resolve_weighting

    from ._losses import LOSSES

    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    registry = SAMPLERS if kind == "sampler" else LOSSES
    if spec.get("weighting") is not None:
        try:
            spec["weighting"] = resolve_weighting(spec["weighting"], classes=list(classes))
        except ValueError as exc:
            raise component_error(path, {"weighting": spec["weighting"]}, exc) from None
    name = spec.get("name")
    if isinstance(name, str) and name in registry and spec.get("classes") is None:
        if "classes" in inspect.signature(registry.get(name)).parameters:
            spec["classes"] = list(classes)
    return spec


def eval_views(recipe: Any, eval_policy: Any) -> list[Any]:
    """The policies a validation or test image is scored under: the evaluation policy, and its
    mirror with ``tta: flip`` (the logits of the views are averaged)."""
    if getattr(recipe, "tta", "none") == "flip":
        from augbal.augment import Mirrored

        shared = {k: v for k, v in eval_policy.get_params().items() if k in ("size", "mean", "std", "seed")}
        return [eval_policy, Mirrored(base=eval_policy, **shared)]
    return [eval_policy]


def cache_level(recipe: Any, freeze: Any, epochs: int) -> str | None:
    """``"features"``, ``"layer3"`` or ``None``: what the run trains on, from the freeze policy
    and ``cache.enabled`` (``auto``: cache when allowed and no mixer mixes images)."""
    frozen = freeze.frozen_through(epochs)
    upto = {"layer4": "features", "layer3": "layer3"}.get(frozen)
    cache = getattr(recipe, "cache", None)
    enabled = getattr(cache, "enabled", "auto") if cache is not None else "auto"
    mixer = getattr(recipe, "mixer", None)
    resampler = _strategy(recipe, "feature_resampler")
    if enabled is False or enabled == "false":
        if resampler is not None:
            raise ValueError("strategy.feature_resampler must run on cached features; got cache.enabled: false")
        return None
    if upto is None:
        if enabled is True or enabled == "true":
            raise ValueError(
                f"cache.enabled: true needs a trunk frozen for the whole run (freeze head, layer4 or layer3); "
                f"got freeze {_spec(recipe.freeze)!r}"
            )
        if resampler is not None:
            raise ValueError("strategy.feature_resampler needs the 512-d features cached: use freeze: head")
        return None
    if mixer is not None:
        if enabled is True or enabled == "true" or resampler is not None:
            raise ValueError("a mixer mixes images, so it cannot run on cached features; set cache.enabled: false")
        return None
    if resampler is not None and upto != "features":
        raise ValueError("strategy.feature_resampler needs the 512-d features cached: use freeze: head")
    return upto


class TensorViews:
    """In-memory inputs (features or activations) and labels: a dataset taking whole batches of
    keys, as ``CachedViews`` does (here there is one view, so the repeat is ignored).

    Example:
        >>> tv = TensorViews(torch.arange(6.0).reshape(3, 2), np.array([0, 1, 1]))
        >>> x, y = tv.__getitems__(np.array([2, 0])); x.tolist(), y.tolist()
        ([[4.0, 5.0], [0.0, 1.0]], [1, 0])
    """

    def __init__(self, inputs: torch.Tensor, labels: Any) -> None:
        self.inputs = inputs
        self.labels = np.asarray(labels, dtype=np.int64)
        self.targets = self.labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, keys: Any) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(keys.index if isinstance(keys, DrawBatch) else keys, dtype=np.int64)
        t = torch.from_numpy(idx)
        return self.inputs[t], torch.from_numpy(self.labels[idx])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.inputs[i], int(self.labels[i])


def cached_inputs(
    recipe: Any,
    model: nn.Module,
    trunk_key: str,
    data: Any,
    *,
    upto: str,
    train_policy: Any,
    eval_policy: Any,
    device: torch.device,
    ctx: Any,
    seed: int,
    root: Path,
) -> tuple[Any, Any, nn.Module]:
    """``(train inputs, val inputs (a tuple: one per evaluation view), the tail to train)`` from the
    feature cache; rank 0 fills the cache first, the other ranks then read it."""
    from ._cache import FeatureCache, tail
    from ._distributed import barrier

    cache = getattr(recipe, "cache", None)
    views = int(getattr(cache, "views", 1) or 1)
    augmented = not getattr(train_policy, "deterministic", False)
    # features in float32: a cached run equals an uncached one; layer3 activations in float16 (memory)
    store = FeatureCache(getattr(cache, "dir", None) or root, dtype="float32" if upto == "features" else "float16")

    def build() -> tuple[Any, Any]:
        tr = store.views(
            model, trunk_key, data.train, upto=upto, policy=train_policy if augmented else eval_policy,
            num_views=views if augmented else 1, device=device,
        )  # fmt: skip
        va = tuple(store.views(model, trunk_key, data.val, upto=upto, policy=p, num_views=1, device=device)
                   for p in eval_views(recipe, eval_policy))  # fmt: skip
        return tr, va

    if ctx.is_main:
        train_views, val_views = build()
    barrier(ctx)
    if not ctx.is_main:
        train_views, val_views = build()
    resampler = _strategy(recipe, "feature_resampler")
    if resampler is not None:
        from ._features import resample_features

        features, labels = train_views.__getitems__(np.arange(len(train_views)))
        x, y = resample_features(features.numpy(), labels.numpy(), _spec(resampler), seed=seed)
        train_views = TensorViews(torch.as_tensor(np.asarray(x), dtype=features.dtype), np.asarray(y))
    return train_views, val_views, tail(model, upto)


def build_mixer(recipe: Any, *, num_classes: int, class_counts: np.ndarray) -> Any:
    """The recipe's mixer, given what a run supplies (``num_classes``; ``class_counts`` when it takes them)."""
    import inspect

    from augbal.augment import MIXERS

    spec = _spec(getattr(recipe, "mixer", None))
    if spec is None:
        return None
    name = spec if isinstance(spec, str) else spec["name"]
    runtime: dict[str, Any] = {"num_classes": int(num_classes)}
    if "class_counts" in inspect.signature(MIXERS.get(name)).parameters:
        runtime["class_counts"] = [int(c) for c in class_counts]
    return MIXERS.from_spec(spec, **runtime)


def needs_balanced_batches(mixer: Any) -> bool:
    """True for a mixer called with a second, class-balanced batch (Balanced-MixUp)."""
    from augbal.augment import BalancedMixUp

    return isinstance(mixer, BalancedMixUp)


def balanced_batches(dataset: Any, labels: np.ndarray, batch: int, *, seed: int, ctx: Any) -> Any:
    """The class-balanced batch stream Balanced-MixUp pairs with the training batches: a
    class-aware sampler (its own seed, derived from the run's) at least as long as the epoch."""
    from augbal.sampling import ClassAwareSampler

    from ._loop import _derive

    sampler = ClassAwareSampler(labels, weighting="balanced", seed=_derive(seed, 0xBA1) % (1 << 32),
                                num_replicas=ctx.world_size, rank=ctx.rank, yield_draws=True)  # fmt: skip
    return sampler.batches(batch)


def autocast_dtype(recipe: Any, device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA (``amp`` auto or bf16), nothing on CPU or with ``amp: off``."""
    amp = getattr(recipe, "amp", "auto")
    if amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16


class InOrder:
    """The training inputs in order, in batches of ``(inputs, labels)`` read lazily: what
    ``update_bn`` iterates once to recompute BatchNorm statistics.

    Example:
        >>> batches = InOrder(TensorViews(torch.zeros(5, 2), np.zeros(5)), 2, torch.device("cpu"))
        >>> [tuple(x.shape) for x, _ in batches]
        [(2, 2), (2, 2), (1, 2)]
    """

    def __init__(self, dataset: Any, batch: int, device: torch.device) -> None:
        self.dataset, self.batch, self.device = dataset, int(batch), device

    def __iter__(self) -> Any:
        n = len(self.dataset)
        for i in range(0, n, self.batch):
            idx = np.arange(i, min(n, i + self.batch), dtype=np.int64)
            items = self.dataset.__getitems__(DrawBatch(idx, np.zeros_like(idx), 0))
            if isinstance(items, tuple):
                x, y = items
            else:
                x = torch.stack([torch.as_tensor(it[0]) for it in items])
                y = torch.tensor([it[1] for it in items])
            yield x.to(self.device), y


def finalize_average(
    averager: Any, train_ds: Any, *, upto: str | None, frozen: str | None, batch: int, device: torch.device
) -> nn.Module:
    """The averaged whole model with the BatchNorm statistics of its trained stages recomputed.

    On images, ``averager.finalize`` (``update_bn``, frozen stages kept). On cached layer3
    activations, ``update_bn`` runs on the averaged tail (layer4's BatchNorm) over the cached
    inputs. On cached features there is no BatchNorm left to recompute.
    """
    if upto is None:
        return averager.finalize(InOrder(train_ds, batch, device), device, frozen_through=frozen)
    if upto == "features":
        return averager.finalize([], device, frozen_through="layer4")
    from ._cache import tail

    averaged = averager.averaged_model().to(device)
    torch.optim.swa_utils.update_bn(InOrder(train_ds, batch, device), tail(averaged, upto), device)
    return averaged


# ======================================================================================
# DRS
# ======================================================================================


def drs_weighting(switch_epoch: int, *, after: Any = "balanced") -> dict[str, Any]:
    """The DRS sampler weighting: instance-balanced (the data as it is) before ``switch_epoch``,
    the sampler's own weighting (class-balanced by default) from it.

    Example:
        >>> drs_weighting(4)
        {'name': 'deferred', 'switch_epoch': 4, 'before': 'instance', 'after': 'balanced'}
    """
    return {"name": "deferred", "switch_epoch": int(switch_epoch), "before": "instance", "after": after}


def sampler_spec(recipe: Any) -> Any:
    """The recipe's sampler spec, with DRS folded in (``strategy.drs``)."""
    spec = _spec(getattr(recipe, "sampler", None))
    drs = _strategy(recipe, "drs")
    if drs is None:
        return spec
    spec = {"name": "class_aware"} if spec is None else {"name": spec} if isinstance(spec, str) else dict(spec)
    after = spec.get("weighting", "balanced")
    return {**spec, "weighting": drs_weighting(int(_get(drs, "switch_epoch")), after=after)}


# ======================================================================================
# after training: cRT, tau-norm, post-hoc adjustment
# ======================================================================================


def after_training(
    recipe: Any,
    chosen: Candidate,
    *,
    model: nn.Module,
    data: Any,
    weights: Any,
    train_prior: np.ndarray,
    val_labels: np.ndarray,
    train_counts: np.ndarray,
    classes: list[str],
    score: Callable[[nn.Module], tuple[torch.Tensor, dict[str, Any]]],
    net: nn.Module,
    device: torch.device,
    ctx: Any,
    seed: int,
    metric: str,
    mode: str,
    candidates: list[Candidate],
    root: Path,
    eval_policy: Any,
) -> Candidate:
    """Add the cRT, tau-norm and post-hoc candidates the recipe asks for; return the winner."""
    from ._metrics import evaluate_logits

    crt = _strategy(recipe, "crt")
    tau = _strategy(recipe, "tau_norm")
    if crt is not None or tau is not None:
        model.load_state_dict(chosen.state)
        feats = _features(model, data, weights_key=_key(model), device=device, ctx=ctx, root=root,
                          policies=eval_views(recipe, eval_policy))  # fmt: skip
        train_x, train_y, val_x = feats
        if tau is not None:
            candidates.append(_tau_norm(model, chosen, val_x, val_labels, train_counts, classes, tau, metric, mode))
        if crt is not None:
            candidates.append(_crt(recipe, model, chosen, train_x, train_y, val_x, val_labels, train_counts, classes,
                                   crt, seed=seed, ctx=ctx))  # fmt: skip
        chosen = choose(candidates, metric, mode)
    posthoc = _strategy(recipe, "posthoc")
    if posthoc is not None:
        # with per_epoch the epochs were chosen on adjusted logits: every candidate is adjusted
        pool = list(candidates) if per_epoch_posthoc(recipe) is not None else [chosen]
        adjusted = []
        for cand in pool:
            logits, info = posthoc_adjust(cand.logits, posthoc, train_prior=train_prior, val_labels=val_labels)
            adjusted.append(Candidate(
                f"{cand.name}+posthoc", cand.epoch, f"{cand.reason}; logits adjusted to the {info['prior']} prior",
                logits, evaluate_logits(logits, val_labels, train_counts=train_counts, classes=classes), cand.state,
                posthoc=info,
            ))  # fmt: skip
        candidates.extend(adjusted)
        chosen = choose([chosen, *adjusted], metric, mode)
    return chosen


def per_epoch_posthoc(recipe: Any) -> Any:
    """The recipe's ``strategy.posthoc`` when every epoch is to be chosen on adjusted logits, else None."""
    posthoc = _strategy(recipe, "posthoc")
    return posthoc if posthoc is not None and _get(posthoc, "per_epoch", False) else None


def posthoc_adjust(
    logits: torch.Tensor, posthoc: Any, *, train_prior: np.ndarray, val_labels: np.ndarray
) -> tuple[torch.Tensor, dict[str, Any]]:
    """``logits`` adjusted as the recipe's ``strategy.posthoc`` says, and the adjustment's record.

    The target prior is ``uniform``, the validation labels' (``val``), or the validation prior
    estimated by EM from these logits' own posteriors (``em``, Saerens et al. 2002).

    Example:
        >>> z, info = posthoc_adjust(torch.zeros(2, 2), {"prior": "uniform"}, train_prior=np.array([0.8, 0.2]),
        ...                          val_labels=np.array([0, 1]))
        >>> [round(v, 3) for v in z[0].tolist()], info["target_prior"]  # log(.5/.8), log(.5/.2)
        ([-0.47, 0.916], [0.5, 0.5])
    """
    from ._posthoc import adjust_logits, estimate_prior_em

    num_classes = logits.shape[1]
    prior = str(_get(posthoc, "prior", "uniform"))
    tau = float(_get(posthoc, "tau", 1.0))
    if prior == "uniform":
        target: Any = np.full(num_classes, 1.0 / num_classes)
    elif prior == "val":
        target = np.bincount(val_labels, minlength=num_classes) / len(val_labels)
    else:  # "em"
        target = estimate_prior_em(torch.softmax(logits.double(), 1).numpy(), train_prior)
    out = adjust_logits(logits.numpy(), train_prior=train_prior, target_prior=target, tau=tau)
    info = {"prior": prior, "train_prior": train_prior.tolist(), "target_prior": np.asarray(target).tolist(), "tau": tau}
    return torch.as_tensor(np.asarray(out), dtype=torch.float32), info


def _key(model: nn.Module) -> str:
    from ._loop import trunk_hash

    return trunk_hash(model, "features")


def _features(
    model: nn.Module, data: Any, *, weights_key: str, device: torch.device, ctx: Any, root: Path, policies: list[Any]
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """512-d features of the training images under ``policies[0]`` and of the validation images
    averaged over ``policies`` (the views of test-time augmentation: the head is linear, so its
    logits of the mean feature are the mean of its logits), under ``model`` (cached)."""
    from ._cache import FeatureCache
    from ._distributed import barrier

    store = FeatureCache(root, dtype="float32")
    out: Any = None
    for turn in (0, 1):  # rank 0 fills the cache, then the others read it
        if (turn == 0) == bool(ctx.is_main):
            tr = store.views(model, weights_key, data.train, upto="features", policy=policies[0], num_views=1, device=device)
            tx, ty = tr.__getitems__(np.arange(len(tr)))
            vx = torch.stack([
                store.views(model, weights_key, data.val, upto="features", policy=p, num_views=1, device=device)
                .__getitems__(np.arange(len(data.val)))[0].float() for p in policies
            ]).mean(0)  # fmt: skip
            out = (tx.float(), ty.numpy(), vx)
        if turn == 0:
            barrier(ctx)
    return out


def _tau_norm(
    model: nn.Module,
    chosen: Candidate,
    val_x: torch.Tensor,
    val_labels: np.ndarray,
    train_counts: np.ndarray,
    classes: list[str],
    spec: Any,
    metric: str,
    mode: str,
) -> Candidate:
    """tau-normalised head (bias dropped), tau chosen on validation from the grid."""
    from ._metrics import evaluate_logits
    from ._model import head_linear
    from ._posthoc import tau_normalize

    head = head_linear(model)
    given = _get(spec, "tau", None)
    grid = sorted(set(TAU_GRID) | ({float(given)} if given is not None else set()))
    scored = []
    with torch.no_grad():
        for t in grid:
            w = torch.as_tensor(tau_normalize(head.weight.detach().cpu(), t), dtype=torch.float32)
            logits = val_x @ w.T
            scored.append(Candidate("tau_norm", chosen.epoch, "", logits,
                                    evaluate_logits(logits, val_labels, train_counts=train_counts, classes=classes),
                                    {}, posthoc=None))  # fmt: skip
            scored[-1].reason = t  # type: ignore[assignment]
    best = choose(scored, metric, mode)
    t = float(best.reason)  # type: ignore[arg-type]
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(tau_normalize(head.weight.detach().cpu(), t), dtype=head.weight.dtype))
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(chosen.state)
    return replace(best, reason=f"{chosen.reason}; head tau-normalised with tau={t:g} (chosen on validation)",
                   state=state)  # fmt: skip


def crt_sampler(spec: Any, labels: np.ndarray, classes: Sequence[str], *, seed: int) -> Any:
    """The sampler cRT re-trains the head with (``strategy.crt.sampler``; class-balanced by
    default); a bad value is a ``RecipeError`` naming ``strategy.crt.sampler``'s key."""
    from augbal.sampling import SAMPLERS

    path = "strategy.crt.sampler"
    given = _spec(_get(spec, "sampler", None)) or {"name": "class_aware", "weighting": "balanced"}
    try:
        sampler = SAMPLERS.from_spec(component_with_classes("sampler", given, classes, path=path),
                                     labels=labels, seed=seed, num_replicas=1, rank=0)  # fmt: skip
        len(sampler)  # some rules are checked when an epoch is planned
        return sampler
    except (ValueError, TypeError, KeyError) as exc:
        raise component_error(path, given, exc) from None


def _crt(
    recipe: Any,
    model: nn.Module,
    chosen: Candidate,
    train_x: torch.Tensor,
    train_y: np.ndarray,
    val_x: torch.Tensor,
    val_labels: np.ndarray,
    train_counts: np.ndarray,
    classes: list[str],
    spec: Any,
    *,
    seed: int,
    ctx: Any,
) -> Candidate:
    """Classifier re-training: a new head, class-balanced sampling, on the frozen features."""
    from ._metrics import evaluate_logits
    from ._model import head_linear
    from ._optim import build_optimizer

    head = head_linear(model)
    epochs = int(_get(spec, "epochs", 10))
    lr = float(_get(spec, "lr", None) or recipe.optim["lr"])
    sampler = crt_sampler(spec, train_y, classes, seed=seed)
    fresh = nn.Linear(head.in_features, head.out_features)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh.reset_parameters()
    optim_spec = {**dict(recipe.optim), "lr": lr}
    optimizer = build_optimizer([{"params": list(fresh.parameters()), "lr": lr}], optim_spec)
    batch = int(recipe.batch_size)
    y_all = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for idx in sampler.batches(batch):
            t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
            loss = torch.nn.functional.cross_entropy(fresh(train_x[t]), y_all[t])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        head.weight.copy_(fresh.weight)
        if getattr(head, "bias", None) is not None:
            head.bias.copy_(fresh.bias)
        logits = fresh(val_x)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(chosen.state)
    return Candidate(
        "crt", chosen.epoch,
        f"{chosen.reason}; head re-trained {epochs} epochs with class-balanced sampling on frozen features (cRT)",
        logits, evaluate_logits(logits, val_labels, train_counts=train_counts, classes=classes), state,
    )  # fmt: skip


# ======================================================================================
# small helpers
# ======================================================================================


def component_error(path: str, spec: Any, exc: BaseException) -> Exception:
    """The ``RecipeError`` naming the recipe key of a component's build error: the parameter
    the message starts with (``"num_samples must be ..."``), or the one holding the unknown
    class a message names, else ``path`` itself. A ``RecipeError`` is returned as it is.

    Example:
        >>> str(component_error("sampler", {"name": "class_aware", "num_samples": 0},
        ...                     ValueError("num_samples must be an int >= 1 or None; got 0")))
        'recipe key sampler.num_samples: must be an int >= 1 or None; got 0'
    """
    from augbal.recipes import RecipeError, _translate_build_error

    if isinstance(exc, RecipeError):
        return exc
    params = {k: v for k, v in spec.items() if k != "name"} if isinstance(spec, dict) else {}
    return _translate_build_error(path, params, exc)


def _spec(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) else value


def _get(section: Any, key: str, default: Any = None) -> Any:
    if isinstance(section, dict):
        return section.get(key, default)
    return getattr(section, key, default)


def _strategy(recipe: Any, key: str) -> Any:
    section = getattr(recipe, "strategy", None)
    if section is None:
        return None
    return _get(section, key, None)
