"""Conformance checks users can run on their own samplers, policies, mixers, weightings and losses.

augbal's own test suite runs exactly these checks on every registered component, in the
manner of imbalanced-learn's ``check_estimator`` and torchvision's ``check_transform``.
Each ``check_*`` function runs a list of named checks (``SAMPLER_CHECKS``, ...; pass
``checks=`` to run some of them) and raises ``AssertionError`` naming the check that
failed and why. Nothing here imports pytest or scipy.

Example:
    >>> import numpy as np
    >>> from augbal.sampling import ClassAwareSampler, Power
    >>> from augbal.testing import check_sampler, check_weighting
    >>> check_weighting(Power(q=0.5))
    >>> check_sampler(ClassAwareSampler(np.repeat([0, 1, 2], [30, 9, 3]), seed=0), checks=["deterministic", "spec"])
"""

from __future__ import annotations

import copy
import inspect
import itertools
import json
import math
import pickle
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "LOSS_CHECKS",
    "MIXER_CHECKS",
    "POLICY_CHECKS",
    "SAMPLER_CHECKS",
    "WEIGHTING_CHECKS",
    "check_loss",
    "check_mixer",
    "check_policy",
    "check_sampler",
    "check_spec_roundtrip",
    "check_weighting",
    "check_world_size_invariance",
    "chi_square_pvalue",
]


class _Failed(AssertionError):
    """A check's own failure (as opposed to an error the component raised)."""


def _expect(condition: Any, message: str) -> None:
    if not condition:
        raise _Failed(message)


def _run(kind: str, subject: Any, table: dict[str, Callable[[], None]], checks: Iterable[str] | None) -> None:
    names = list(table) if checks is None else list(checks)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"{kind} checks must be among {', '.join(table)}; got {', '.join(map(repr, unknown))}")
    for name in names:
        try:
            table[name]()
        except AssertionError as exc:  # a check's own failure (or a nested check's)
            raise AssertionError(f"{kind}[{name}] failed for {subject!r}: {exc}") from None
        except Exception as exc:  # the component itself raised
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError quotes its message
            failure = f"{kind}[{name}] failed for {subject!r}: it raised {type(exc).__name__}: {text}"
            raise AssertionError(failure) from exc


# --------------------------------------------------------------------------- statistics


def _gammaincc(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) (series / continued fraction)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P(a, x)
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # modified Lentz continued fraction for Q(a, x)
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_front) * h)


def chi_square_pvalue(counts: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray) -> float:
    """P-value of Pearson's chi-square test of observed ``counts`` against class ``probs``.

    Classes of probability 0 must have count 0 (else the p-value is 0); they do not count
    as degrees of freedom.

    Example:
        >>> round(chi_square_pvalue([50, 50], [0.5, 0.5]), 3), chi_square_pvalue([90, 10], [0.5, 0.5]) < 1e-10
        (1.0, True)
    """
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if counts.shape != probs.shape or counts.ndim != 1:
        raise ValueError(f"counts and probs need the same 1-d shape; got {counts.shape} and {probs.shape}")
    live = probs > 0
    if np.any(counts[~live] > 0):
        return 0.0
    expected = probs[live] / probs[live].sum() * counts.sum()
    df = int(live.sum()) - 1
    if df < 1:
        return 1.0
    stat = float(((counts[live] - expected) ** 2 / expected).sum())
    return _gammaincc(df / 2.0, stat / 2.0)


# --------------------------------------------------------------------------- specs


def _registry_for(component: Any) -> Any:
    """The augbal registry of ``component``'s kind (weighting, sampler, policy, mixer, batch op, loss)."""
    from augbal.sampling import SAMPLERS, WEIGHTINGS, ClassSampler, Weighting

    if isinstance(component, Weighting):
        return WEIGHTINGS
    if isinstance(component, ClassSampler):
        return SAMPLERS
    from augbal.augment import BATCH_OPS, MIXERS, POLICIES, BatchOp, Mixer, Policy

    for base, registry in ((Policy, POLICIES), (Mixer, MIXERS), (BatchOp, BATCH_OPS)):
        if isinstance(component, base):
            return registry
    from augbal.train import LOSSES, Loss

    if isinstance(component, Loss):
        return LOSSES
    raise TypeError(
        f"check_spec_roundtrip needs the registry of a {type(component).__name__}; pass it as the second argument"
    )


def check_spec_roundtrip(component: Any, registry: Any = None, /, **build_kwargs: Any) -> Any:
    """Check that ``component.to_dict()`` is a plain ``{"name": ..., **params}`` spec that
    ``registry.from_spec`` turns back into an equal component, directly and through YAML text
    (with ``get_params()``, the rebuilt component must have the same parameters).

    Args:
        component: any registered component.
        registry: its registry (default: augbal's registry of its kind).
        **build_kwargs: runtime arguments that are not part of a spec (a sampler's ``labels``).

    Returns:
        The component rebuilt from the spec (callers compare its output with the original's).

    Example:
        >>> from augbal.augment import MixUp
        >>> check_spec_roundtrip(MixUp(num_classes=3, alpha=0.4)).alpha
        0.4
    """
    from augbal._registry import plain_data

    registry = _registry_for(component) if registry is None else registry
    kind = f"check_spec_roundtrip ({registry.kind})"
    rebuilt: list[Any] = []

    def roundtrip() -> None:
        spec = component.to_dict()
        _expect(isinstance(spec, dict), f"to_dict() must return a dict; got {type(spec).__name__}")
        _expect(isinstance(spec.get("name"), str), f"the spec needs a string 'name'; got {spec!r}")
        _expect(spec["name"] in registry, f"the spec's name {spec['name']!r} is not registered in {registry!r}")
        _expect(
            registry.name_of(component) == spec["name"],
            f"the spec's name {spec['name']!r} is not the registered name {registry.name_of(component)!r}",
        )
        try:
            json.dumps(spec, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _Failed(f"the spec must be JSON-serialisable plain data ({exc}); got {spec!r}") from None
        given = copy.deepcopy(spec)
        back = registry.from_spec(given, **build_kwargs)
        _expect(given == spec, f"from_spec must not modify the spec it is given; {spec!r} became {given!r}")
        _expect(
            type(back) is type(component),
            f"from_spec built a {type(back).__name__}, not a {type(component).__name__}",
        )
        _expect(
            back.to_dict() == spec,
            f"from_spec(spec).to_dict() differs from the spec: {back.to_dict()!r} != {spec!r}",
        )
        if callable(getattr(component, "get_params", None)):
            mine, theirs = plain_data(component.get_params()), plain_data(back.get_params())
            lost = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            _expect(not lost, f"the spec loses parameters {lost}: built from it, {mine!r} becomes {theirs!r}")
        import yaml

        text = yaml.safe_dump(spec)
        again = registry.from_spec(yaml.safe_load(text), **build_kwargs)
        _expect(again.to_dict() == spec, f"the spec does not survive YAML: {again.to_dict()!r} != {spec!r}")
        rebuilt.append(back)

    _run(kind, component, {"spec": roundtrip}, None)
    return rebuilt[0]


# --------------------------------------------------------------------------- samplers

SAMPLER_CHECKS = (
    "deterministic",
    "set_epoch",
    "len",
    "pickle",
    "resume",
    "resume_after_set_epoch",
    "draws",
    "class_frequencies",
    "shards",
    "world_size",
    "batches",
    "spec",
)


def _flat(items: Iterable[Any]) -> np.ndarray:
    """Dataset indices of a sampler's output (ints, Draws, or batches of either)."""
    return np.array([i for i, _ in _epoch_keys(items)[0]], dtype=np.int64)


def _sampler_factory(obj: Any) -> tuple[Callable[..., Any], Any]:
    """(factory(**kwargs) -> sampler, a sampler built by it) for a sampler or a factory."""
    if hasattr(obj, "__iter__") and hasattr(obj, "get_params") and hasattr(obj, "labels"):
        sampler = obj

        def factory(**kwargs: Any) -> Any:
            params = {**sampler.get_params(), "num_replicas": 1, "rank": 0, **kwargs}
            return type(sampler)(sampler.labels, **params)

        return factory, sampler
    if callable(obj) and not hasattr(obj, "__iter__"):
        return obj, obj(seed=0)
    raise TypeError(
        "check_sampler takes a sampler following augbal's ClassSampler protocol or a factory "
        f"factory(seed=..., num_replicas=..., rank=..., yield_draws=...) -> sampler; got {type(obj).__name__}"
    )


def _epoch_keys(items: Iterable[Any]) -> tuple[list[tuple[int, int]], int]:
    """(index, repeat) of every item a sampler yields (repeat -1 for plain ints), and the items
    per unit (a batch sampler's batch size, else 1)."""
    from augbal._draw import Draw

    out, unit = [], 1
    for item in items:
        batch = isinstance(item, (list, tuple)) and not isinstance(item, Draw)
        if batch:
            unit = len(item)
        for x in item if batch else [item]:
            out.append((int(x.index), int(x.repeat)) if isinstance(x, Draw) else (int(x), -1))
    return out, unit


def check_world_size_invariance(
    factory: Callable[[int, int], Any], labels: Any, world_sizes: Sequence[int] = (1, 2, 3, 4)
) -> None:
    """Check that the shards of ``factory(num_replicas, rank)`` draw the images one process draws.

    As with torch's ``DistributedSampler``, only the order and which rank gets an image may
    depend on the world size R: the union of the R shards must equal the single-process
    epoch's multiset, except for fewer than ``R * unit`` draws all added (padding to equal
    shards) or all removed (``drop_last``), and none when the single-process length is a
    multiple of ``R * unit`` (the unit is a batch sampler's batch, else one item). Shards
    must be equally long, their class counts must add up to ``quotas()``, and with
    ``yield_draws`` every ``(index, repeat)`` occurs once and an image's repeats count
    0, 1, 2, ...

    Example:
        >>> import numpy as np
        >>> from augbal.sampling import ClassAwareSampler
        >>> labels = np.repeat([0, 1, 2], [50, 10, 3])
        >>> check_world_size_invariance(
        ...     lambda r, k: ClassAwareSampler(labels, num_samples=60, seed=1, num_replicas=r, rank=k), labels)

    Raises:
        AssertionError: naming the world size and how the draws differ.
    """
    from collections import Counter

    labels = np.asarray(labels)
    reference = Counter(i for i, _ in _epoch_keys(factory(1, 0))[0])
    size = sum(reference.values())
    for world in world_sizes:
        shards = [factory(world, rank) for rank in range(world)]
        keys_units = [_epoch_keys(s) for s in shards]
        keys = [k for k, _ in keys_units]
        unit = max(u for _, u in keys_units)
        _expect(len({len(k) for k in keys}) == 1, f"R={world}: shards of unequal lengths {[len(k) for k in keys]}")
        union = [key for k in keys for key in k]
        got = Counter(i for i, _ in union)
        extra, missing = got - reference, reference - got
        step = world * unit
        differ = sum(extra.values()) + sum(missing.values())
        _expect(not (extra and missing), f"R={world}: {len(extra)} images added and {len(missing)} removed "
                f"against the single-process epoch (only the order may depend on the world size)")
        _expect(differ < step, f"R={world}: {differ} draws differ from the single-process epoch (at most {step - 1} may, "
                "as padding or drop_last)")
        if size % step == 0:
            _expect(differ == 0, f"R={world}: {differ} draws differ although the epoch ({size}) is a multiple of {step}")
        if hasattr(shards[0], "quotas"):
            quotas = shards[0].quotas()
            _expect(sum(quotas.values()) == len(union), f"R={world}: quotas() sum to {sum(quotas.values())}; "
                    f"the shards hold {len(union)}")
            drawn = Counter(labels[[i for i, _ in union]].tolist())
            _expect({c: n for c, n in quotas.items() if n} == dict(drawn), f"R={world}: the shards draw {dict(drawn)}; "
                    f"quotas() says {quotas}")
        if union and union[0][1] >= 0:
            _expect(len(set(union)) == len(union), f"R={world}: an (index, repeat) pair is drawn twice")
            by_image: dict[int, list[int]] = {}
            for i, k in union:
                by_image.setdefault(i, []).append(k)
            _expect(all(sorted(v) == list(range(len(v))) for v in by_image.values()),
                    f"R={world}: an image's repeat numbers are not 0, 1, 2, ...")


def check_sampler(sampler_or_factory: Any, *, checks: Iterable[str] | None = None, epochs: int = 20) -> None:
    """Run the sampler conformance checks (``SAMPLER_CHECKS``) on a sampler.

    Args:
        sampler_or_factory: a sampler with the ``ClassSampler`` protocol (``set_epoch``,
            ``state_dict``, ``report``, ``quotas``, ``target_frequencies``, ``get_params``),
            rebuilt with other seeds / shards through its class; or a factory
            ``f(seed=..., num_replicas=..., rank=..., yield_draws=...)`` returning one
            (defaults: one replica, rank 0).
        checks: names from ``SAMPLER_CHECKS`` to run (default: all).
        epochs: epochs pooled by the class-frequency chi-square check.

    Raises:
        AssertionError: naming the first failing check.
    """
    factory, sample = _sampler_factory(sampler_or_factory)
    from augbal.data import targets_of

    labels = sample.labels if isinstance(sample.labels, np.ndarray) else targets_of(sample.labels)
    labels = np.asarray(labels, dtype=np.int64)
    classes = np.unique(labels)
    dense = np.searchsorted(classes, labels)

    def build(**kwargs: Any) -> Any:
        kwargs.setdefault("num_replicas", 1)
        kwargs.setdefault("rank", 0)
        return factory(**kwargs)

    def class_counts(indices: np.ndarray) -> np.ndarray:
        return np.bincount(dense[indices], minlength=classes.size)

    def deterministic() -> None:
        a, b = build(seed=3), build(seed=3)
        a.set_epoch(2)
        b.set_epoch(2)
        first = list(a)
        _expect(first == list(b), "two samplers with the same seed and epoch yield different sequences")
        _expect(first == list(a), "iterating the same epoch again does not replay it")
        other = build(seed=4)
        other.set_epoch(2)
        _expect(list(other) != first, "seed 4 yields the same sequence as seed 3: the seed is ignored")

    def set_epoch() -> None:
        s = build(seed=0)
        first = list(s)
        s.set_epoch(1)
        second = list(s)
        _expect(first != second, "epochs 0 and 1 yield the same sequence: set_epoch has no effect")
        s.set_epoch(0)
        _expect(list(s) == first, "set_epoch(0) after epoch 1 does not replay epoch 0")

    def length() -> None:
        for epoch in range(3):
            s = build(seed=1)
            s.set_epoch(epoch)
            n = len(list(s))
            _expect(n == len(s) > 0, f"epoch {epoch}: len() is {len(s)} but iteration yields {n} items")

    def pickling() -> None:
        s = build(seed=5)
        s.set_epoch(1)
        clone = pickle.loads(pickle.dumps(s))
        whole = list(s)
        _expect(list(clone) == whole, "a pickled copy yields another sequence than the original")
        _expect(list(pickle.loads(pickle.dumps(s))) == [], "pickled after its epoch, a copy yields items of it again")
        it = iter(s)
        head = list(itertools.islice(it, 7))
        resumed = pickle.loads(pickle.dumps(s))
        _expect(head + list(resumed) == whole, "pickled after 7 items, a copy does not continue where it stopped")

    def resume() -> None:
        s = build(seed=9)
        s.set_epoch(3)
        whole = list(s)
        for cut in sorted({0, 1, min(13, len(whole)), len(whole)}):
            it = iter(s)
            head = list(itertools.islice(it, cut))
            state = s.state_dict()
            _expect(
                state.get("yielded") == cut and state.get("epoch") == 3,
                f"after {cut} items of epoch 3, state_dict() says {state!r}",
            )
            fresh = build(seed=9)
            fresh.load_state_dict(state)
            _expect(head + list(fresh) == whole, f"resumed after {cut} items, the sampler does not continue the epoch")
            _expect(list(fresh) == whole, "a loaded position applies to more than one iteration")

    def resume_after_set_epoch() -> None:
        s = build(seed=9)
        s.set_epoch(3)
        whole = list(s)
        head = list(itertools.islice(iter(s), 13))
        fresh = build(seed=9)
        fresh.load_state_dict(s.state_dict())
        fresh.set_epoch(3)
        _expect(head + list(fresh) == whole, "set_epoch(saved epoch) after load_state_dict loses the loaded position")
        fresh.set_epoch(3)
        _expect(list(fresh) == whole, "set_epoch after the resumed epoch does not replay it from its start")
        resumed = pickle.loads(pickle.dumps(s))
        resumed.set_epoch(3)
        _expect(
            head + list(resumed) == whole,
            "set_epoch(same epoch) on a sampler pickled mid-epoch loses its position",
        )
        moved = build(seed=9)
        moved.load_state_dict(s.state_dict())
        moved.set_epoch(4)
        _expect(len(list(moved)) == len(moved), "after load_state_dict, set_epoch(another epoch) does not start afresh")

    def draws() -> None:
        from augbal._draw import Draw

        plain, drawn = build(seed=2), build(seed=2, yield_draws=True)
        plain.set_epoch(4)
        drawn.set_epoch(4)
        items = list(drawn)
        _expect(np.array_equal(_flat(items), _flat(list(plain))), "yield_draws=True changes which indices are drawn")
        seen: dict[int, int] = {}
        for d in (x for item in items for x in (item if isinstance(item, list) else [item])):
            _expect(isinstance(d, Draw) and d.epoch == 4, f"yield_draws=True must yield Draws of epoch 4; got {d!r}")
            _expect(
                d.repeat == seen.get(d.index, 0),
                f"draw {seen.get(d.index, 0)} of image {d.index} says repeat={d.repeat}",
            )
            seen[d.index] = d.repeat + 1

    def class_frequencies() -> None:
        s = build(seed=11)
        counts = np.zeros(classes.size, dtype=np.int64)
        expected = np.zeros(classes.size, dtype=np.float64)  # each epoch's target, weighted by its draws
        for epoch in range(epochs):
            s.set_epoch(epoch)
            drawn = class_counts(_flat(s))
            counts += drawn
            target = s.target_frequencies(epoch)
            expected += drawn.sum() * np.array([target.get(int(c), 0.0) for c in classes])
        probs = expected / expected.sum()
        p = chi_square_pvalue(counts, probs)
        _expect(
            p > 0.01,
            f"realised class counts {counts.tolist()} over {epochs} epochs do not match target_frequencies() "
            f"of those epochs, {np.round(probs, 4).tolist()} pooled (chi-square p = {p:.2g})",
        )

    def shards() -> None:
        for replicas in (2, 3):
            parts = [build(seed=6, num_replicas=replicas, rank=r) for r in range(replicas)]
            items = [list(s) for s in parts]
            lengths = {len(i) for i in items}
            _expect(len(lengths) == 1, f"{replicas} replicas yield shards of different lengths {sorted(lengths)}")
            quotas = np.array([parts[0].quotas().get(int(c), 0) for c in classes])
            total = np.zeros(classes.size, dtype=np.int64)
            per_unit = len(items[0][0]) if items[0] and isinstance(items[0][0], list) else 1
            for r, (s, out) in enumerate(zip(parts, items)):
                counts = class_counts(_flat(out))
                target = s.report().target_counts
                expected = [target.get(int(c), 0) for c in classes]
                _expect(
                    counts.tolist() == expected,
                    f"rank {r}/{replicas} draws {counts.tolist()}; its report says {expected}",
                )
                share = quotas / replicas
                _expect(
                    np.all(np.abs(counts - share) <= per_unit),
                    f"rank {r}/{replicas} holds {counts.tolist()}, not floor/ceil of its share {share.tolist()}",
                )
                total += counts
            _expect(
                total.tolist() == quotas.tolist(),
                f"{replicas} shards draw {total.tolist()} in all; quotas() says {quotas.tolist()}",
            )

    def spec() -> None:
        s = build(seed=7)
        rebuilt = check_spec_roundtrip(s, None, labels=s.labels, num_replicas=1, rank=0)
        for epoch in (0, 1):
            s.set_epoch(epoch)
            rebuilt.set_epoch(epoch)
            _expect(list(rebuilt) == list(s), f"the sampler rebuilt from its spec yields another epoch {epoch}")

    def world_size() -> None:
        for yield_draws in (False, True):
            check_world_size_invariance(
                lambda num_replicas, rank: build(seed=5, num_replicas=num_replicas, rank=rank, yield_draws=yield_draws),
                labels,
            )

    def batch_mode() -> None:
        if not hasattr(sample, "batches"):
            return
        from torch.utils.data import BatchSampler

        for yield_draws in (False, True):
            s = build(seed=8, yield_draws=yield_draws)
            s.set_epoch(1)
            items = list(s)
            size = 3 * (len(items[0]) if items and isinstance(items[0], list) else 1)  # 3 units
            flat_items = [x for item in items for x in (item if isinstance(item, list) else [item])]
            expected = [list(b) for b in BatchSampler(flat_items, size, False)]
            got = [list(b) for b in s.batches(size)]
            _expect(len(s.batches(size)) == len(expected), f"len(batches({size})) is not the number of batches it yields")
            _expect(
                [[int(getattr(x, "index", x)) for x in b] for b in got]
                == [[int(getattr(x, "index", x)) for x in b] for b in expected],
                f"batches({size}) (yield_draws={yield_draws}) is not BatchSampler over the items of the same epoch",
            )
            if yield_draws:
                _expect(
                    [[(int(x.index), int(x.repeat)) for x in b] for b in got]
                    == [[(x.index, x.repeat) for x in b] for b in expected],
                    f"batches({size}) carries other repeat numbers than the items of the same epoch",
                )

    table = {
        "deterministic": deterministic,
        "set_epoch": set_epoch,
        "len": length,
        "pickle": pickling,
        "resume": resume,
        "resume_after_set_epoch": resume_after_set_epoch,
        "draws": draws,
        "class_frequencies": class_frequencies,
        "shards": shards,
        "world_size": world_size,
        "batches": batch_mode,
        "spec": spec,
    }
    _run("check_sampler", sample, table, checks)


# --------------------------------------------------------------------------- policies

POLICY_CHECKS = (
    "output",
    "deterministic",
    "seed",
    "repeats",
    "stream",
    "inputs_untouched",
    "global_rngs",
    "pickle",
    "input_types",
    "protocol",
    "spec",
)


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def check_policy(policy: Any, *, checks: Iterable[str] | None = None) -> None:
    """Run the policy conformance checks (``POLICY_CHECKS``) on an augmentation policy.

    The policy follows augbal's protocol ``policy(image, *, label=None, draw=None)`` ->
    ``float32`` tensor ``(3, size, size)``, with ``size``, ``mean``, ``std``, ``seed``,
    ``deterministic``, ``get_params()`` and ``with_params(**overrides)`` (``augbal.augment.Policy``).

    Raises:
        AssertionError: naming the first failing check.

    Example:
        >>> from augbal.augment import build_policy
        >>> check_policy(build_policy("flip", size=16), checks=["output", "seed"])
    """
    import torch

    from augbal._draw import Draw

    def output() -> None:
        low = (0 - np.array(policy.mean)) / np.array(policy.std)
        high = (1 - np.array(policy.mean)) / np.array(policy.std)
        size = policy.size
        for shape in [(30, 41), (41, 30), (1, 1), (size, size), (3, 200)]:
            for i in range(4):
                out = policy(_textured(*shape, seed=i), label=i % 3, draw=Draw(i, repeat=i % 2, epoch=1))
                _expect(isinstance(out, torch.Tensor), f"the output must be a torch tensor; got {type(out).__name__}")
                _expect(
                    out.dtype == torch.float32 and tuple(out.shape) == (3, size, size),
                    f"a {shape} image must give float32 (3, {size}, {size}); got {out.dtype} {tuple(out.shape)}",
                )
                _expect(
                    out.is_contiguous() and bool(torch.isfinite(out).all()),
                    "the output must be contiguous and finite",
                )
                per_channel = out.reshape(3, -1).double()
                _expect(
                    (per_channel.min(1).values.numpy() >= low - 1e-5).all()
                    and (per_channel.max(1).values.numpy() <= high + 1e-5).all(),
                    f"output values leave the normalised pixel range "
                    f"[{low.round(3).tolist()}, {high.round(3).tolist()}]",
                )

    def deterministic() -> None:
        image = _textured(33, 29)
        twin = policy.with_params()
        for draw in [Draw(0), Draw(5, repeat=2, epoch=3)]:
            a = policy(image, label=1, draw=draw)
            _expect(torch.equal(a, policy(image, label=1, draw=draw)), f"the same {draw!r} gives different outputs")
            _expect(
                torch.equal(a, twin(image, label=1, draw=draw)),
                f"an equal policy gives another output for {draw!r}",
            )

    def seed() -> None:
        if policy.deterministic:
            return
        image = _textured(33, 29)
        other = policy.with_params(seed=policy.seed + 1)
        draws = [Draw(i, repeat=i % 3) for i in range(8)]
        same = all(torch.equal(policy(image, label=0, draw=d), other(image, label=0, draw=d)) for d in draws)
        _expect(
            not same,
            f"seeds {policy.seed} and {policy.seed + 1} give identical outputs for 8 draws: the seed is ignored",
        )

    def repeats() -> None:
        image = _textured(33, 29)
        outs = {policy(image, label=2, draw=Draw(7, repeat=k)).numpy().tobytes() for k in range(8)}
        if policy.deterministic:
            _expect(len(outs) == 1, "a policy marked deterministic gives different outputs for different repeats")
        else:
            _expect(len(outs) >= 2, "8 repeats of one image all give the same output: the repeat number is ignored")

    def stream() -> None:
        image = _textured(33, 29)
        fresh, again = policy.with_params(), policy.with_params()
        run = [fresh(image, label=0).numpy().tobytes() for _ in range(6)]
        _expect(
            [again(image, label=0).numpy().tobytes() for _ in range(6)] == run,
            "draw-less calls of equal policies differ",
        )
        if policy.deterministic:
            _expect(len(set(run)) == 1, "a policy marked deterministic varies between draw-less calls")
        else:
            _expect(len(set(run)) >= 2, "6 draw-less calls all give the same output: the call stream does not advance")

    def inputs_untouched() -> None:
        image = _textured(20, 26)
        before = image.copy()
        label = np.int64(1)
        out = policy(image, label=label, draw=Draw(2))
        _expect(isinstance(out, torch.Tensor), "a policy returns the image tensor only, never a new label")
        _expect(label == 1 and np.array_equal(image, before), "the policy modified its input image")
        image.setflags(write=False)
        _expect(torch.equal(out, policy(image, label=1, draw=Draw(2))), "a read-only input gives another output")

    def global_rngs() -> None:
        torch_state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
        policy(_textured(20, 26), label=0, draw=Draw(1))
        policy(_textured(20, 26), label=0)
        np_after = np.random.get_state()
        _expect(torch.equal(torch_state, torch.get_rng_state()), "the policy consumed torch's global RNG")
        _expect(
            np_state[1].tolist() == np_after[1].tolist() and np_state[2] == np_after[2],
            "the policy consumed numpy's global RNG",
        )
        _expect(py_state == random.getstate(), "the policy consumed Python's global RNG")

    def pickling() -> None:
        image = _textured(25, 31)
        expected = policy(image, label=2, draw=Draw(4, repeat=1))
        clone = pickle.loads(pickle.dumps(policy))
        _expect(clone == policy, "an unpickled copy does not compare equal")
        _expect(
            torch.equal(expected, clone(image, label=2, draw=Draw(4, repeat=1))),
            "an unpickled copy gives another output",
        )

    def input_types() -> None:
        from PIL import Image

        rgb = _textured(18, 22)
        gray = rgb[:, :, 0]
        draw = Draw(3, repeat=1)
        expected = policy(rgb, label=1, draw=draw)
        _expect(
            torch.equal(expected, policy(Image.fromarray(rgb), label=1, draw=draw)),
            "a PIL image gives another output than its array",
        )
        from_gray = policy(np.repeat(gray[:, :, None], 3, axis=2), label=1, draw=draw)
        forms = (("(H, W)", gray), ("(H, W, 1)", gray[:, :, None]), ("PIL 'L'", Image.fromarray(gray, mode="L")))
        for form, value in forms:
            _expect(
                torch.equal(from_gray, policy(value, label=1, draw=draw)),
                f"a {form} grayscale image is not treated as RGB",
            )

    def protocol() -> None:
        _expect(getattr(policy, "wants_context", None) is True, "policies must set wants_context = True")
        _expect(isinstance(policy.deterministic, bool), f"deterministic must be a bool; got {policy.deterministic!r}")

    def spec() -> None:
        image = _textured(21, 17)
        rebuilt = check_spec_roundtrip(policy)
        draw = Draw(2, repeat=1)
        _expect(rebuilt == policy, "the policy rebuilt from its spec does not compare equal")
        _expect(
            torch.equal(policy(image, label=1, draw=draw), rebuilt(image, label=1, draw=draw)),
            "the rebuilt policy gives another output",
        )
        from augbal.augment import POLICIES

        bigger = POLICIES.from_spec(policy.to_dict(), size=policy.size + 8)
        _expect(
            bigger(_textured(10, 10), draw=Draw(0)).shape[-1] == policy.size + 8,
            "a size override of the spec is ignored",
        )

    table = {
        "output": output,
        "deterministic": deterministic,
        "seed": seed,
        "repeats": repeats,
        "stream": stream,
        "inputs_untouched": inputs_untouched,
        "global_rngs": global_rngs,
        "pickle": pickling,
        "input_types": input_types,
        "protocol": protocol,
        "spec": spec,
    }
    _run("check_policy", policy, table, checks)


# --------------------------------------------------------------------------- mixers

MIXER_CHECKS = ("output", "deterministic", "global_rng", "pickle", "spec")


def check_mixer(mixer: Any, *, checks: Iterable[str] | None = None) -> None:
    """Run the mixer conformance checks (``MIXER_CHECKS``) on a batch mixer.

    The mixer follows ``augbal.augment.Mixer``: ``mixer(images, labels)`` (plus a
    class-balanced batch for mixers whose ``__call__`` takes ``balanced_images``) ->
    ``(images, soft_targets)``, with ``num_classes``, ``seed`` and ``get_params()``.

    Raises:
        AssertionError: naming the first failing check.

    Example:
        >>> from augbal.augment import MixUp
        >>> check_mixer(MixUp(num_classes=3, seed=0))
    """
    import torch

    k = mixer.num_classes
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 8, 8, generator=generator)
    labels = torch.arange(12) % k
    two_batches = "balanced_images" in inspect.signature(mixer.__call__).parameters
    args = (images, labels, images.flip(0) * 0.5, labels.flip(0)) if two_batches else (images, labels)

    def copy_with(**overrides: Any) -> Any:
        return type(mixer)(**{**mixer.get_params(), **overrides})

    def output() -> None:
        copies = [a.clone() for a in args]
        mixed, targets = copy_with()(*args)
        _expect(
            mixed.shape == images.shape and mixed.dtype == images.dtype,
            f"mixed images must keep shape {tuple(images.shape)} and {images.dtype}; "
            f"got {tuple(mixed.shape)} {mixed.dtype}",
        )
        _expect(
            targets.shape == (12, k) and targets.dtype == torch.float32,
            f"targets must be float32 (12, {k}); got {targets.dtype} {tuple(targets.shape)}",
        )
        _expect(
            torch.allclose(targets.sum(1), torch.ones(12), atol=1e-5),
            f"target rows must sum to 1; got {targets.sum(1).tolist()}",
        )
        _expect(bool((targets >= 0).all()), "targets must be non-negative")
        _expect(all(torch.equal(a, c) for a, c in zip(args, copies)), "the mixer modified its input batch")

    def deterministic() -> None:
        seed = int(mixer.seed)
        a, b, c = copy_with(seed=seed), copy_with(seed=seed), copy_with(seed=seed + 1)
        differs = False
        for call in range(3):
            xa, ya = a(*args)
            xb, yb = b(*args)
            xc, _ = c(*args)
            _expect(torch.equal(xa, xb) and torch.equal(ya, yb), f"call {call}: two mixers with seed {seed} differ")
            differs = differs or not torch.equal(xa, xc)
        _expect(differs, f"seeds {seed} and {seed + 1} mix 3 batches identically: the seed is ignored")

    def global_rng() -> None:
        state = torch.get_rng_state()
        copy_with()(*args)
        _expect(torch.equal(torch.get_rng_state(), state), "the mixer consumed torch's global RNG")

    def pickling() -> None:
        m = copy_with()
        m(*args)
        clone = pickle.loads(pickle.dumps(m))
        xa, ya = m(*args)
        xb, yb = clone(*args)
        _expect(
            torch.equal(xa, xb) and torch.equal(ya, yb),
            "an unpickled copy does not continue the same random stream",
        )

    def spec() -> None:
        rebuilt = check_spec_roundtrip(copy_with())
        xa, ya = copy_with()(*args)
        xb, yb = rebuilt(*args)
        _expect(torch.equal(xa, xb) and torch.equal(ya, yb), "the mixer rebuilt from its spec mixes another batch")

    table = {
        "output": output,
        "deterministic": deterministic,
        "global_rng": global_rng,
        "pickle": pickling,
        "spec": spec,
    }
    _run("check_mixer", mixer, table, checks)


# --------------------------------------------------------------------------- weightings

WEIGHTING_CHECKS = ("weights", "static", "pickle", "spec")

_COUNTS = ([4500, 450, 45], [7, 0, 1, 300], [1, 1], [0, 5])


def check_weighting(
    weighting: Any, *, counts: Sequence[Sequence[int]] = _COUNTS, checks: Iterable[str] | None = None
) -> None:
    """Run the weighting conformance checks (``WEIGHTING_CHECKS``) on a weighting.

    The convention (``augbal.sampling.Weighting``): ``class_weights(counts, epoch=)`` is
    ``float64``, 0 for empty classes, mean 1 over the others; ``sampling_probs`` is
    ``p_c ∝ n_c * w_c``; a ``static`` weighting does not change with the epoch.

    Args:
        weighting: the weighting to check.
        counts: per-class count vectors to check it on (a per-class weighting needs its length).
        checks: names from ``WEIGHTING_CHECKS`` (default: all).

    Raises:
        AssertionError: naming the first failing check.
    """

    def weights() -> None:
        for c in counts:
            arr = np.asarray(c)
            n_present = int(np.count_nonzero(arr))
            for epoch in (0, 1, 5, 50):
                w = weighting.class_weights(c, epoch=epoch)
                _expect(
                    w.dtype == np.float64 and w.shape == arr.shape,
                    f"class_weights({c}) must be float64 of shape {arr.shape}",
                )
                _expect(
                    np.all(np.isfinite(w)) and np.all(w >= 0),
                    f"class_weights({c}, epoch={epoch}) = {w.tolist()} is not finite and >= 0",
                )
                _expect(
                    math.isclose(w.sum(), n_present, rel_tol=1e-12),
                    f"class_weights({c}) = {w.tolist()} does not have mean 1 over present classes",
                )
                _expect(np.all(w[arr == 0] == 0), f"class_weights({c}) gives an empty class a weight: {w.tolist()}")
                p = weighting.sampling_probs(c, epoch=epoch)
                _expect(
                    math.isclose(p.sum(), 1.0, rel_tol=1e-12) and np.all(p >= 0),
                    f"sampling_probs({c}) = {p.tolist()} is not a distribution",
                )
                _expect(
                    np.allclose(p, arr * w / np.dot(arr, w), rtol=1e-12, atol=0),
                    f"sampling_probs({c}) is not n_c * w_c normalised",
                )

    def static() -> None:
        if not weighting.static:
            return
        for c in counts:
            w0 = weighting.class_weights(c, epoch=0)
            for epoch in (1, 7, 50):
                _expect(
                    np.array_equal(w0, weighting.class_weights(c, epoch=epoch)),
                    f"a static weighting changes at epoch {epoch}",
                )

    def pickling() -> None:
        clone = pickle.loads(pickle.dumps(weighting))
        _expect(clone == weighting and type(clone) is type(weighting), "an unpickled copy does not compare equal")

    def spec() -> None:
        rebuilt = check_spec_roundtrip(weighting)
        _expect(rebuilt == weighting, "the weighting rebuilt from its spec does not compare equal")
        for c in counts:
            for epoch in (0, 3):
                _expect(
                    np.array_equal(rebuilt.class_weights(c, epoch=epoch), weighting.class_weights(c, epoch=epoch)),
                    f"the rebuilt weighting gives other weights for {c} at epoch {epoch}",
                )

    table = {"weights": weights, "static": static, "pickle": pickling, "spec": spec}
    _run("check_weighting", weighting, table, checks)


# --------------------------------------------------------------------------- losses

LOSS_CHECKS = (
    "spec",
    "pickle",
    "validation",
    "finite",
    "empty_class",
    "reduces_to_ce",
    "weighted",
    "soft_targets",
    "label_smoothing",
    "batch_order",
    "double",
    "global_rng",
    "device",
)


def check_loss(
    loss_or_spec: Any, *, num_classes: int = 3, seed: int = 0, checks: Iterable[str] | None = None
) -> None:
    """Run the loss conformance checks (``LOSS_CHECKS``) on a loss of ``augbal.train.LOSSES``.

    The contract (``augbal.train.Loss``): ``fit(class_counts)`` then
    ``loss(logits, targets, *, epoch=0)`` -> a scalar, for integer labels ``(N,)`` or soft
    targets ``(N, C)``; a sample weighs its target's class weight (``class_weights(epoch=)``)
    and the batch value is the weighted mean of per-sample losses. The checks:

    - ``spec``: ``to_dict()`` round-trips (directly and through YAML) to a loss of equal value;
    - ``pickle``: a fitted loss unpickles to the same value;
    - ``validation``: unfitted use, a wrong class count, out-of-range labels, bad soft rows,
      float labels and a negative epoch raise clear errors;
    - ``finite``: finite value and gradients, on moderate and on extreme (±1e4) logits, hard
      and soft targets, at epochs 0 and 1000 (after any deferred switch);
    - ``empty_class``: a class with count 0 either makes ``fit`` raise ``ValueError`` naming
      ``class_counts``, or the loss stays finite (with gradients) on batches of that class;
    - ``reduces_to_ce``: with ``weighting=None``, equal counts and the class's
      ``neutral_params``, the loss equals ``torch.nn.functional.cross_entropy``;
    - ``weighted``: with skewed counts (and ``weighting="balanced"`` where the loss takes a
      weighting), the batch value is ``Σ w_i ℓ_i / Σ w_i`` of its one-sample values;
    - ``soft_targets``: one-hot float targets give the value of the integer labels;
    - ``label_smoothing``: smoothing ε on labels equals the unsmoothed loss on ``(1-ε)e_y + ε/C``;
    - ``batch_order``: permuting the batch does not change the value;
    - ``double``: the float32 value equals the float64 value (rtol 1e-5);
    - ``global_rng``: a call does not consume torch's global RNG;
    - ``device``: on CUDA (when available) the value equals the CPU value (skipped otherwise).

    Args:
        loss_or_spec: a loss or its spec (unfitted or fitted; it is refitted on copies).
        num_classes: the number of classes of the test batches (``>= 2``).
        seed: seed of the test batches.
        checks: names from ``LOSS_CHECKS`` (default: all).

    Raises:
        AssertionError: naming the first failing check.

    Example:
        >>> check_loss({"name": "focal", "gamma": 2.0}, checks=["spec", "reduces_to_ce", "weighted"])
    """
    import torch
    import torch.nn.functional as F

    from augbal._validation import check_int, check_seed
    from augbal.train import LOSSES

    k: int = check_int("num_classes", num_classes, low=2)  # type: ignore[assignment]
    loss = LOSSES.from_spec(loss_or_spec)
    spec = loss.to_dict()
    generator = torch.Generator().manual_seed(check_seed("seed", seed))
    n = 4 * k
    logits = torch.randn(n, k, generator=generator, dtype=torch.float64) * 2
    labels = torch.arange(n) % k
    raw = torch.rand(n, k, generator=generator, dtype=torch.float64) ** 3  # mixed rows, some near one-hot
    soft = raw / raw.sum(1, keepdim=True)
    skewed = [max(1, round(100 * 0.1 ** (2 * i / (k - 1)))) for i in range(k)]  # 100 ... 1
    equal = [5] * k
    epochs = (0, 1000)

    def build(counts: Sequence[int], **overrides: Any) -> Any:
        """A fitted copy of the loss (rebuilt from its spec with ``overrides`` when there are any)."""
        fresh = LOSSES.from_spec(spec, **overrides) if overrides else copy.deepcopy(loss)
        return fresh.fit(counts)

    def value(lo: Any, z: Any, t: Any, epoch: int = 0) -> float:
        return float(lo(z, t, epoch=epoch))

    def close(a: float, b: float, what: str, rtol: float = 1e-9, atol: float = 1e-12) -> None:
        _expect(math.isclose(a, b, rel_tol=rtol, abs_tol=atol), f"{what}: {a!r} != {b!r}")

    def spec_check() -> None:
        rebuilt = check_spec_roundtrip(loss, LOSSES)
        a, b = build(skewed), rebuilt.fit(skewed)
        for epoch in epochs:
            close(value(b, logits, labels, epoch), value(a, logits, labels, epoch), f"rebuilt from its spec, epoch {epoch}")

    def pickling() -> None:
        a = build(skewed)
        before = value(a, logits, soft)
        clone = pickle.loads(pickle.dumps(a))
        _expect(clone.to_dict() == spec, f"an unpickled copy has another spec: {clone.to_dict()!r}")
        close(value(clone, logits, soft), before, "an unpickled copy")

    def validation() -> None:
        def raises(kinds: tuple[type, ...], call: Callable[[], Any], what: str, needle: str = "") -> None:
            try:
                call()
            except kinds as exc:
                _expect(needle in str(exc), f"{what}: the error does not mention {needle!r}: {exc}")
                return
            raise _Failed(f"{what} must raise {' or '.join(c.__name__ for c in kinds)}; it did not")

        fresh = LOSSES.from_spec(spec)
        if getattr(loss, "counts_", None) is None:
            fresh = copy.deepcopy(loss)
        raises((RuntimeError, ValueError), lambda: fresh(logits, labels), "an unfitted loss", "fit")
        a = build(skewed)
        raises((ValueError,), lambda: a(logits[:, :-1], labels % (k - 1)), f"logits with {k - 1} columns", "logits")
        raises((ValueError,), lambda: a(logits, labels + k), f"labels >= {k}", "target")
        raises((ValueError,), lambda: a(logits, labels - 1), "negative labels", "target")
        raises((ValueError,), lambda: a(logits, soft * 2), "soft rows summing to 2", "soft targets")
        raises((ValueError,), lambda: a(logits, labels.double()), "float labels (N,)", "targets")
        raises((ValueError,), lambda: a(logits, labels[:-1]), "one label too few", "targets")
        raises((ValueError,), lambda: a(logits, labels, epoch=-1), "a negative epoch", "epoch")
        raises((ValueError,), lambda: a.fit([1, -1] + [1] * (k - 2)), "negative class_counts", "class_counts")

    def finite() -> None:
        a = build(skewed)
        signs = torch.where(torch.rand(n, k, generator=generator) < 0.5, -1.0, 1.0)
        for scale, z0 in (("moderate", logits.float()), ("extreme (±1e4)", signs * 1e4)):
            for kind, t in (("hard", labels), ("soft", soft.float())):
                for epoch in epochs:
                    z = z0.clone().requires_grad_(True)
                    out = a(z, t, epoch=epoch)
                    _expect(out.ndim == 0, f"the loss must be a scalar; got shape {tuple(out.shape)}")
                    out.backward()
                    _expect(
                        bool(torch.isfinite(out)) and bool(torch.isfinite(z.grad).all()),
                        f"{scale} logits, {kind} targets, epoch {epoch}: loss {out.item()!r}, "
                        f"finite gradient {bool(torch.isfinite(z.grad).all())}",
                    )

    def empty_class() -> None:
        counts = list(skewed)
        counts[k // 2] = 0
        try:
            a = build(counts)
        except ValueError as exc:
            _expect("class_counts" in str(exc), f"refusing an empty class must name class_counts: {exc}")
            return
        only = torch.full((n,), k // 2)
        for kind, t in (("mixed labels", labels), ("only the empty class", only), ("soft", soft)):
            for epoch in epochs:
                z = logits.clone().requires_grad_(True)
                out = a(z, t, epoch=epoch)
                out.backward()
                _expect(
                    bool(torch.isfinite(out)) and bool(torch.isfinite(z.grad).all()),
                    f"an empty class ({kind}, epoch {epoch}) gives loss {out.item()!r} or a non-finite gradient",
                )

    def reduces_to_ce() -> None:
        neutral = getattr(type(loss), "neutral_params", None)
        if neutral is None:
            return
        overrides = dict(neutral)
        if "weighting" in spec:
            overrides["weighting"] = None
        if "label_smoothing" in spec:
            overrides["label_smoothing"] = 0.0
        a = build(equal, **overrides)
        for epoch in epochs:
            close(value(a, logits, labels, epoch), float(F.cross_entropy(logits, labels)), f"labels, epoch {epoch}")
            close(value(a, logits, soft, epoch), float(F.cross_entropy(logits, soft)), f"soft targets, epoch {epoch}")

    def weighted() -> None:
        a = build(skewed, weighting="balanced") if "weighting" in spec else build(skewed)
        for epoch in epochs:
            w = torch.as_tensor(a.class_weights(epoch=epoch), dtype=torch.float64)
            for kind, t, wi in (("labels", labels, w[labels]), ("soft", soft, soft @ w)):
                single = torch.tensor([value(a, logits[i : i + 1], t[i : i + 1], epoch) for i in range(n)])
                expected = float((wi * single).sum() / wi.sum())
                close(value(a, logits, t, epoch), expected, f"{kind}, epoch {epoch}: batch value vs Σ w ℓ / Σ w", 1e-7)

    def soft_targets() -> None:
        a = build(skewed)
        one_hot = F.one_hot(labels, k).double()
        for epoch in epochs:
            close(value(a, logits, one_hot, epoch), value(a, logits, labels, epoch), f"one-hot vs labels, epoch {epoch}", 1e-9)
            close(
                value(a, logits.float(), one_hot.float(), epoch),
                value(a, logits.float(), labels, epoch),
                f"float32 one-hot vs labels, epoch {epoch}",
                1e-6,
            )

    def label_smoothing() -> None:
        if "label_smoothing" not in spec:
            return
        extra = {"weighting": None} if "weighting" in spec else {}
        eps = 0.2
        smooth = build(equal, label_smoothing=eps, **extra)
        plain = build(equal, label_smoothing=0.0, **extra)
        target = F.one_hot(labels, k).double() * (1 - eps) + eps / k
        for epoch in epochs:
            close(value(smooth, logits, labels, epoch), value(plain, logits, target, epoch), f"epoch {epoch}", 1e-9)

    def batch_order() -> None:
        a = build(skewed)
        perm = torch.randperm(n, generator=generator)
        for t in (labels, soft):
            for epoch in epochs:
                close(value(a, logits[perm], t[perm], epoch), value(a, logits, t, epoch), f"permuted, epoch {epoch}", 1e-9)

    def double() -> None:
        a = build(skewed)
        for t32, t64 in ((labels, labels), (soft.float(), soft)):
            for epoch in epochs:
                close(value(a, logits.float(), t32, epoch), value(a, logits, t64, epoch), f"epoch {epoch}", 1e-5, 1e-6)

    def global_rng() -> None:
        a = build(skewed)
        state = torch.get_rng_state()
        a(logits, soft)
        a(logits, labels, epoch=1000)
        _expect(torch.equal(torch.get_rng_state(), state), "the loss consumed torch's global RNG")

    def device() -> None:
        if not torch.cuda.is_available():
            return
        a = build(skewed)
        for t in (labels, soft.float()):
            for epoch in epochs:
                cpu = value(a, logits.float(), t, epoch)
                moved = a.to("cuda")
                z = logits.float().cuda().requires_grad_(True)
                out = moved(z, t.cuda(), epoch=epoch)
                out.backward()
                close(float(out), cpu, f"CUDA vs CPU, epoch {epoch}", 1e-5, 1e-6)
                _expect(bool(torch.isfinite(z.grad).all()), "a non-finite gradient on CUDA")

    table = {
        "spec": spec_check,
        "pickle": pickling,
        "validation": validation,
        "finite": finite,
        "empty_class": empty_class,
        "reduces_to_ce": reduces_to_ce,
        "weighted": weighted,
        "soft_targets": soft_targets,
        "label_smoothing": label_smoothing,
        "batch_order": batch_order,
        "double": double,
        "global_rng": global_rng,
        "device": device,
    }
    _run("check_loss", loss, table, checks)
