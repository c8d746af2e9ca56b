"""The weighting family: exact weights for known counts, schedules, specs, errors, conformance."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from augbal.sampling import (
    WEIGHTINGS,
    Deferred,
    EffectiveNumber,
    Explicit,
    Power,
    Progressive,
    Weighting,
    resolve_weighting,
)

COUNTS = [4500, 450, 45]


def expected(raw, counts=COUNTS):
    """The documented convention: empty classes 0, the others' weights sum to their number."""
    raw = np.asarray(raw, dtype=np.float64)
    present = np.asarray(counts) > 0
    raw = np.where(present, raw, 0.0)
    return raw * present.sum() / raw.sum()


# ----------------------------------------------------------------------------- exact values


def test_named_powers_on_seedlike_counts():
    np.testing.assert_allclose(resolve_weighting("instance").class_weights(COUNTS), [1.0, 1.0, 1.0], rtol=1e-15)
    # 1/n: ratios 1 : 10 : 100, sum 111, normalised to 3
    np.testing.assert_allclose(
        resolve_weighting("balanced").class_weights(COUNTS), [3 / 111, 30 / 111, 300 / 111], rtol=1e-12
    )
    s = [1 / math.sqrt(n) for n in COUNTS]
    np.testing.assert_allclose(
        resolve_weighting("sqrt").class_weights(COUNTS), [3 * x / sum(s) for x in s], rtol=1e-12
    )
    assert resolve_weighting("sqrt") == Power(q=0.5) == resolve_weighting(0.5)


def test_sampling_probs_are_class_draw_probabilities():
    np.testing.assert_allclose(resolve_weighting("instance").sampling_probs(COUNTS), np.array(COUNTS) / 4995)
    np.testing.assert_allclose(resolve_weighting("balanced").sampling_probs(COUNTS), [1 / 3] * 3, rtol=1e-12)
    # sqrt: p_c ∝ n_c * n_c^-0.5 = sqrt(n_c)
    r = np.sqrt(COUNTS)
    np.testing.assert_allclose(resolve_weighting("sqrt").sampling_probs(COUNTS), r / r.sum(), rtol=1e-12)
    # q = 2 over-weights the rarest class beyond balance: p_c ∝ 1/n_c
    p = resolve_weighting(2).sampling_probs(COUNTS)
    np.testing.assert_allclose(p, [1 / 111, 10 / 111, 100 / 111], rtol=1e-12)


def test_effective_number_matches_formula():
    beta = 0.999
    raw = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    got = EffectiveNumber(beta=beta).class_weights(COUNTS)
    np.testing.assert_allclose(got, expected(raw), rtol=1e-12)
    np.testing.assert_allclose(got, [0.1145431, 0.3124653, 2.5729916], atol=1e-7)
    # beta = 0 is instance-balanced; beta -> 1 tends to class-balanced
    np.testing.assert_array_equal(EffectiveNumber(beta=0.0).class_weights(COUNTS), [1.0, 1.0, 1.0])
    near_one = EffectiveNumber(beta=1 - 1e-12).class_weights(COUNTS)
    np.testing.assert_allclose(near_one, resolve_weighting("balanced").class_weights(COUNTS), rtol=1e-6)


def test_empty_classes_weigh_zero_and_are_never_drawn():
    counts = [10, 0, 40]
    for spec in ("instance", "sqrt", "balanced", {"effective_number": 0.9}, {1: 5.0}):
        w = resolve_weighting(spec).class_weights(counts)
        assert w[1] == 0.0
        assert w.sum() == pytest.approx(2.0, rel=1e-12)
        assert resolve_weighting(spec).sampling_probs(counts)[1] == 0.0
    np.testing.assert_allclose(resolve_weighting("balanced").class_weights(counts), [1.6, 0.0, 0.4])


def test_extreme_exponents_stay_finite():
    counts = [10**9, 1, 3]
    w = Power(q=60).class_weights(counts)  # 1e9 ** -60 underflows without the fallback
    assert np.all(np.isfinite(w)) and np.all(w >= 0)  # w[0] underflows to 0 relative to the others
    assert w.sum() == pytest.approx(3.0)
    assert w[1] > w[2] > w[0]
    w = Power(q=-60).class_weights(counts)  # 1e9 ** 60 overflows without the fallback
    assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(3.0)
    assert w[0] == pytest.approx(3.0)


# ----------------------------------------------------------------------------- explicit


def test_explicit_by_index_name_and_list():
    classes = ("deer", "dog", "cat")
    by_name = resolve_weighting({"cat": 8.0, "dog": 2.0}, classes=classes)  # deer unlisted -> 1
    by_index = resolve_weighting({2: 8.0, 1: 2.0})
    by_list = resolve_weighting([1.0, 2.0, 8.0])
    for w in (by_name, by_index, by_list):
        np.testing.assert_allclose(w.class_weights(COUNTS), [3 / 11, 6 / 11, 24 / 11], rtol=1e-12)
    # explicit weights are per-sample weights: p_c ∝ n_c * w_c
    np.testing.assert_allclose(by_name.sampling_probs(COUNTS), np.array([4500, 900, 360]) / 5760)
    assert isinstance(by_name, Explicit) and by_name.classes == classes


def test_explicit_zero_weight_excludes_a_class():
    w = Explicit(weights={0: 0.0})
    np.testing.assert_allclose(w.class_weights([5, 5, 5]), [0.0, 1.5, 1.5])
    assert w.sampling_probs([5, 5, 5]).tolist() == [0.0, 0.5, 0.5]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Explicit(weights={"cat": 2.0}), "weight keys that are class names need the class names (classes=); got 'cat'"),
        (lambda: Explicit(weights={"cow": 2.0}, classes=("a", "b", "c")), "unknown class 'cow'; the classes are: a, b, c"),
        (lambda: Explicit(weights={0: -1.0}), "finite non-negative numbers; got -1.0 for class 0"),
        (lambda: Explicit(weights={0: float("nan")}), "finite non-negative numbers; got nan"),
        (lambda: Explicit(weights={0: True}), "finite non-negative numbers; got True for class 0"),
        (lambda: Explicit(weights=[1.0, 2.0], classes=("a", "b", "c")), "one weight per class (3); got 2"),
        (lambda: Explicit(weights={3: 1.0}, classes=("a", "b", "c")), "weight key must be a class label in [0, 3) or a class name; got 3"),
        (lambda: Explicit(weights={"b": 1.0, 1: 2.0}, classes=("a", "b")), "each class may be given once; got class 'b' as 'b' and 1"),
        (lambda: Explicit(weights="ab"), "a {class: weight} dict or a per-class list; got 'ab'"),
        (lambda: Explicit(weights=[1.0], classes="a"), "classes must be a sequence of class names; got 'a'"),
    ],
)
def test_explicit_errors_at_construction(make, message):
    # issue 8: validated when built, not at a sampler's first len()
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("weighting", "message"),
    [
        (lambda: Explicit(weights={3: 2.0}), r"weight key must be a class label in [0, 3); got 3"),
        (lambda: Explicit(weights=[1.0, 2.0]), "one weight per class (3); got 2"),
        (lambda: Explicit(weights={}, classes=("a", "b")), "classes must name every class (3); got 2 names"),
        (lambda: Explicit(weights=[0.0, 0.0, 5.0]), "at least one non-empty class needs a positive weight"),
    ],
)
def test_explicit_errors_against_the_counts(weighting, message):
    counts = [5, 5, 0] if "positive weight" in message else [5, 5, 5]
    with pytest.raises(ValueError) as err:
        weighting().class_weights(counts)
    assert message in str(err.value)


def test_explicit_json_string_keys_are_labels():
    by_string, by_int = Explicit(weights={"2": 3.0}), Explicit(weights={2: 3.0})
    assert by_string.class_weights([5, 5, 5]).tolist() == by_int.class_weights([5, 5, 5]).tolist()


# ----------------------------------------------------------------------------- schedules


def test_progressive_exponent_and_weights_per_epoch():
    w = Progressive(start="instance", end="balanced", epochs=4)
    assert [w.q_at(e) for e in range(7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert not w.static
    for epoch, q in [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0), (100, 1.0)]:
        np.testing.assert_allclose(
            w.class_weights(COUNTS, epoch=epoch), Power(q=q).class_weights(COUNTS), rtol=1e-12
        )
    np.testing.assert_allclose(w.class_weights(COUNTS, epoch=2), resolve_weighting("sqrt").class_weights(COUNTS))
    # numbers and reversed ramps work too; start == end is static
    back = Progressive(start=1.0, end=0.0, epochs=2)
    assert [back.q_at(e) for e in range(3)] == [1.0, 0.5, 0.0]
    assert Progressive(start="sqrt", end=0.5, epochs=3).static


def test_progressive_probability_interpolation_is_kangs_pb_sampling():
    w = Progressive(start="instance", end="balanced", epochs=4, interpolate="probs")
    p_ib = np.array(COUNTS) / sum(COUNTS)
    p_cb = np.full(3, 1 / 3)
    for epoch in (0, 1, 2, 3, 4, 10):
        t = min(epoch, 4) / 4
        np.testing.assert_allclose(w.sampling_probs(COUNTS, epoch=epoch), (1 - t) * p_ib + t * p_cb, rtol=1e-12)
    # differs from interpolating the exponent mid-ramp, agrees at both ends
    by_q = Progressive(start="instance", end="balanced", epochs=4)
    assert not np.allclose(w.sampling_probs(COUNTS, epoch=2), by_q.sampling_probs(COUNTS, epoch=2))
    np.testing.assert_allclose(w.class_weights(COUNTS, epoch=4), by_q.class_weights(COUNTS, epoch=4), rtol=1e-12)


def test_deferred_switches_at_the_epoch():
    w = Deferred(switch_epoch=3, before="instance", after={"effective_number": 0.999})
    assert not w.static
    for epoch in (0, 1, 2):
        np.testing.assert_array_equal(w.class_weights(COUNTS, epoch=epoch), [1.0, 1.0, 1.0])
        np.testing.assert_allclose(w.sampling_probs(COUNTS, epoch=epoch), np.array(COUNTS) / 4995)
    for epoch in (3, 4, 50):
        np.testing.assert_allclose(
            w.class_weights(COUNTS, epoch=epoch), EffectiveNumber(beta=0.999).class_weights(COUNTS), rtol=1e-15
        )
    assert isinstance(w.active(2), Power) and isinstance(w.active(3), EffectiveNumber)


def test_deferred_with_named_explicit_weights_via_resolve():
    w = resolve_weighting(
        {"deferred": {"switch_epoch": 1, "after": {"cat": 4.0}}}, classes=("deer", "dog", "cat")
    )
    np.testing.assert_allclose(w.class_weights([1, 1, 1], epoch=1), [0.5, 0.5, 2.0])
    assert resolve_weighting(w.to_dict()) == w


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Progressive(start={"effective_number": 0.9}), "progressive start must be a power weighting"),
        (lambda: Progressive(end="nope"), "progressive end must be a power weighting"),
        (lambda: Progressive(epochs=0), "progressive epochs must be an int >= 1; got 0"),
        (lambda: Progressive(interpolate="linear"), "progressive interpolate must be one of 'exponent', 'probs'; got 'linear'"),
        (lambda: Deferred(switch_epoch=-1), "deferred switch_epoch must be an int >= 0; got -1"),
        (lambda: Deferred(after="nope"), "got 'nope'"),
        (lambda: Power(q="x"), "q must be a finite number; got 'x'"),
        (lambda: Power(q=float("inf")), "q must be a finite number; got inf"),
        (lambda: EffectiveNumber(beta=1.0), "beta must be a number in [0, 1); got 1.0"),
        (lambda: EffectiveNumber(beta=-0.1), "beta must be a number in [0, 1); got -0.1"),
        (lambda: resolve_weighting({"power": "x"}), "q must be a finite number; got 'x'"),
        (lambda: resolve_weighting({"effective_number": 2}), "beta must be a number in [0, 1); got 2"),
        (lambda: resolve_weighting({"progressive": {"epochs": 1.5}}), "progressive epochs must be an int >= 1; got 1.5"),
    ],
)
def test_bad_parameters_fail_at_construction(make, message):
    # issue 8: they used to pass construction and fail at the first class_weights / len()
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


# ----------------------------------------------------------------------------- inputs


def test_counts_may_be_lists_arrays_tensors_and_integral_floats():
    w = resolve_weighting("balanced")
    ref = w.class_weights(COUNTS)
    for counts in (np.array(COUNTS, dtype=np.int32), torch.tensor(COUNTS), [4500.0, 450.0, 45.0], tuple(COUNTS)):
        np.testing.assert_array_equal(w.class_weights(counts), ref)


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([], "non-empty 1-d sequence"),
        ([[1, 2]], "got shape (1, 2)"),
        ([3, -1], "non-negative integers; got [3, -1]"),
        ([1.5, 2], "non-negative integers; got [1.5, 2.0]"),
        ([0, 0], "at least one sample; got [0, 0]"),
        (["a", "b"], "non-negative integers; got dtype <U1"),
        ({0: 3}, "1-d sequence of non-negative integers, one per class; got {0: 3}"),
    ],
)
def test_bad_counts(counts, message):
    with pytest.raises(ValueError) as err:
        resolve_weighting("balanced").class_weights(counts)
    assert message in str(err.value)
    with pytest.raises(ValueError):
        resolve_weighting("balanced").sampling_probs(counts)


@pytest.mark.parametrize("epoch", [-1, 1.5, "2", True])
def test_bad_epoch(epoch):
    with pytest.raises(ValueError, match="epoch must be an int >= 0; got"):
        resolve_weighting("balanced").class_weights(COUNTS, epoch=epoch)


# ----------------------------------------------------------------------------- resolve_weighting


def test_resolve_forms():
    w = Power(q=0.3)
    assert resolve_weighting(w) is w
    assert resolve_weighting("instance") == Power(q=0.0)
    assert resolve_weighting("balanced") == Power(q=1.0)
    assert resolve_weighting(0.25) == Power(q=0.25)
    assert resolve_weighting(1) == Power(q=1)
    assert resolve_weighting({"power": 0.7}) == Power(q=0.7)
    assert resolve_weighting({"power": {"q": 0.7}}) == Power(q=0.7)
    assert resolve_weighting({"effective_number": 0.99}) == EffectiveNumber(beta=0.99)
    assert resolve_weighting({"effective_number": {"beta": 0.99}}) == EffectiveNumber(beta=0.99)
    assert resolve_weighting("effective_number") == EffectiveNumber(beta=0.999)
    assert resolve_weighting({"progressive": {"epochs": 5}}) == Progressive(start="instance", end="balanced", epochs=5)
    assert resolve_weighting({"deferred": {"switch_epoch": 7}}) == Deferred(
        switch_epoch=7, before=Power(q=0.0), after=Power(q=1.0)
    )
    assert resolve_weighting({"explicit": {"a": 2.0}}, classes=["a", "b"]) == Explicit(
        weights={"a": 2.0}, classes=["a", "b"]
    )
    assert resolve_weighting(torch.tensor([1.0, 3.0])) == Explicit(weights=[1.0, 3.0])
    assert resolve_weighting(torch.tensor(0.5)) == Power(q=0.5)
    # a class literally named like a weighting goes through the explicit form
    w = resolve_weighting({"explicit": {"weights": {"sqrt": 3.0}, "classes": ["sqrt", "x"]}})
    np.testing.assert_allclose(w.class_weights([1, 1]), [1.5, 0.5])


@pytest.mark.parametrize(
    "spec",
    ["uniform", "", None, True, float("nan"), object(), b"sqrt", {"progressive": 3}, {"power": {"p": 1}}],
)
def test_resolve_rejects_with_rule_then_value(spec):
    with pytest.raises(ValueError) as err:
        resolve_weighting(spec)
    text = str(err.value)
    assert "; got " in text
    rule, got = text.split("; got ", 1)
    assert rule and got


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        resolve_weighting("uniform")
    assert str(err.value).endswith("; got 'uniform'")
    for name in WEIGHTINGS.names():
        assert repr(name) in str(err.value)


# ----------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("name", WEIGHTINGS.names())
def test_every_registered_weighting_conforms(name):
    w = WEIGHTINGS.build(name)
    assert isinstance(w, Weighting)
    assert resolve_weighting(name) == w
    for counts in (COUNTS, [7, 0, 1, 300], [1, 1], [0, 5]):
        n_present = sum(1 for c in counts if c > 0)
        for epoch in (0, 1, 5, 50):
            cw = w.class_weights(counts, epoch=epoch)
            assert cw.dtype == np.float64 and cw.shape == (len(counts),)
            assert np.all(np.isfinite(cw)) and np.all(cw >= 0)
            assert cw.sum() == pytest.approx(n_present, rel=1e-12)
            assert np.all(cw[np.asarray(counts) == 0] == 0)
            p = w.sampling_probs(counts, epoch=epoch)
            assert p.sum() == pytest.approx(1.0, rel=1e-12) and np.all(p >= 0)
            np.testing.assert_allclose(p, np.asarray(counts) * cw / np.dot(counts, cw), rtol=1e-12)
            if w.static:
                np.testing.assert_array_equal(cw, w.class_weights(counts, epoch=0))
    # pickles and round-trips through plain data (what recipes store)
    clone = pickle.loads(pickle.dumps(w))
    assert clone == w and type(clone) is type(w)
    data = w.to_dict()
    assert resolve_weighting(data) == w
    assert pickle.loads(pickle.dumps(data)) == data
    np.testing.assert_array_equal(resolve_weighting(data).class_weights(COUNTS, epoch=3), w.class_weights(COUNTS, epoch=3))


@pytest.mark.parametrize(
    "w",
    [
        Power(q=0.25),
        EffectiveNumber(beta=0.9999),
        Explicit(weights={"cat": 3.0}, classes=("deer", "dog", "cat")),
        Explicit(weights=[1.0, 2.0, 3.0]),
        Progressive(start="sqrt", end=2.0, epochs=3),
        Progressive(start=0.0, end="sqrt", epochs=5, interpolate="probs"),
        Deferred(switch_epoch=2, before=Power(q=0.5), after={"effective_number": 0.99}),
        Deferred(switch_epoch=1, before=Progressive(epochs=2), after="balanced"),
    ],
)
def test_configured_weightings_round_trip(w):
    data = w.to_dict()
    back = resolve_weighting(data)
    assert back == w
    for epoch in (0, 1, 2, 4):
        np.testing.assert_array_equal(back.class_weights(COUNTS, epoch=epoch), w.class_weights(COUNTS, epoch=epoch))
    assert pickle.loads(pickle.dumps(w)) == w


def test_schedules_actually_change_and_static_ones_do_not():
    dynamic = [name for name in WEIGHTINGS.names() if not WEIGHTINGS.build(name).static]
    assert dynamic == ["deferred", "progressive"]
    for name in dynamic:
        w = WEIGHTINGS.build(name)
        assert not np.allclose(w.class_weights(COUNTS, epoch=0), w.class_weights(COUNTS, epoch=50))


def test_explicit_spec_survives_json_when_class_names_look_like_labels():
    """A class literally named "1" at dense index 0: the spec must not confuse it with label 1."""
    import json

    w = Explicit(weights={1: 5.0}, classes=["1", "0"])
    rebuilt = resolve_weighting(json.loads(json.dumps(w.to_dict())))
    counts = np.array([10, 10])
    assert w.class_weights(counts).tolist() == pytest.approx([1 / 3, 5 / 3])
    assert rebuilt.class_weights(counts).tolist() == pytest.approx([1 / 3, 5 / 3])
    assert rebuilt.to_dict() == w.to_dict()
