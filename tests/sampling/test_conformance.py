"""Every registered sampler and weighting (``SAMPLERS.names()``, ``WEIGHTINGS.names()``: a new
one is tested automatically) passes the public conformance checks of ``augbal.testing``."""

from __future__ import annotations

import numpy as np
import pytest

from augbal.sampling import SAMPLERS, WEIGHTINGS
from augbal.testing import SAMPLER_CHECKS, WEIGHTING_CHECKS, check_sampler, check_weighting, chi_square_pvalue

LABELS = np.repeat(np.arange(4), [300, 60, 20, 6])
rng = np.random.default_rng(7)
LABELS = LABELS[rng.permutation(LABELS.size)]  # interleaved classes, as in a real dataset
NAMES = SAMPLERS.names()


def factory(name):
    return lambda **kwargs: SAMPLERS.build(name, labels=LABELS, **kwargs)


def test_registry_holds_every_sampler():
    assert {"class_aware", "balanced_batch", "repeat_factor", "resampled"} <= set(NAMES)


@pytest.mark.parametrize("check", SAMPLER_CHECKS)
@pytest.mark.parametrize("name", NAMES)
def test_sampler_conforms(name, check):
    check_sampler(factory(name), checks=[check])


@pytest.mark.parametrize("name", NAMES)
def test_a_built_sampler_is_checked_through_its_class(name):
    check_sampler(SAMPLERS.build(name, labels=LABELS, seed=3), checks=["deterministic", "shards", "spec"])


@pytest.mark.parametrize("name", NAMES)
def test_spec_leaves_out_labels_and_placement(name):
    s = SAMPLERS.build(name, labels=LABELS, seed=4, num_replicas=2, rank=1)
    spec = s.to_dict()
    assert spec["name"] == name and spec["seed"] == 4
    assert not {"labels", "num_replicas", "rank"} & set(spec)
    again = SAMPLERS.from_spec(spec, labels=LABELS, num_replicas=2, rank=1)
    assert list(again) == list(s)


@pytest.mark.parametrize("name", NAMES)
def test_the_frequency_check_has_power(name):
    """At the check's sample size, the data's own (imbalanced) frequencies, or a 10% distortion
    of the target, are rejected."""
    s = SAMPLERS.build(name, labels=LABELS, seed=11)
    counts = np.zeros(4, dtype=np.int64)
    for epoch in range(20):
        s.set_epoch(epoch)
        items = list(s)
        flat = np.array([i for item in items for i in (item if isinstance(item, list) else [item])])
        counts += np.bincount(LABELS[flat], minlength=4)
    target = np.array(list(s.target_frequencies().values()))
    assert chi_square_pvalue(counts, target) > 0.01
    assert chi_square_pvalue(counts, np.bincount(LABELS).astype(float)) < 1e-6
    assert chi_square_pvalue(counts, target * np.array([1.1, 1.0, 1.0, 0.9])) < 1e-4


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_weighting_conforms(name):
    check_weighting(WEIGHTINGS.build(name))


@pytest.mark.parametrize(
    "spec",
    [
        {"power": 0.25},
        {"effective_number": 0.9999},
        {"explicit": {"weights": [1.0, 2.0, 3.0]}},
        {"progressive": {"start": "sqrt", "end": 2.0, "epochs": 3, "interpolate": "probs"}},
        {"deferred": {"switch_epoch": 2, "before": "sqrt", "after": {"effective_number": 0.99}}},
    ],
)
def test_configured_weightings_conform(spec):
    from augbal.sampling import resolve_weighting

    check_weighting(resolve_weighting(spec), counts=([4500, 450, 45], [0, 5, 1], [3, 3, 3]), checks=WEIGHTING_CHECKS)
