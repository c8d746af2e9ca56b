"""Registry: one spec shape ``{"name": ..., **params}`` for every component, one ``from_spec``."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from augbal._registry import Registry, plain_data
from augbal.augment import BATCH_OPS, MIXERS, POLICIES, BatchCompose, BatchPadCrop
from augbal.sampling import SAMPLERS, WEIGHTINGS, EffectiveNumber, Explicit, Power, resolve_weighting
from augbal.testing import check_spec_roundtrip

REGISTRIES = {"weighting": WEIGHTINGS, "sampler": SAMPLERS, "policy": POLICIES, "mixer": MIXERS, "batch op": BATCH_OPS}


def make_registry():
    class Part:
        def __init__(self, *, size=1):
            self.size = size

        def to_dict(self):
            return PARTS.spec(self, {"size": self.size})

    PARTS = Registry("part", base=Part)
    PARTS.register("part")(Part)
    return PARTS, Part


def test_register_sets_the_name_once_and_rejects_a_second_owner():
    parts, Part = make_registry()
    assert Part.name == "part" and parts.name_of(Part(size=2)) == "part"

    @parts.register("double")
    def double(size=1):
        return Part(size=2 * size)

    assert not hasattr(double, "name") and parts.names() == ["double", "part"]
    parts.register("part")(Part)  # registering the same class again is harmless
    with pytest.raises(ValueError, match="part names must be unique; 'part' is already registered"):
        parts.register("part")(double)


def test_from_spec_takes_a_spec_a_name_or_a_built_component():
    parts, Part = make_registry()
    built = Part(size=3)
    assert parts.from_spec(built) is built
    assert parts.from_spec(built, size=5).size == 5 and built.size == 3  # overrides rebuild a copy
    spec = {"name": "part", "size": 4}
    assert parts.from_spec(spec).size == 4 and spec == {"name": "part", "size": 4}
    assert parts.from_spec(spec, size=6).size == 6
    assert parts.from_spec("part").size == 1
    assert parts.from_spec(built.to_dict()).to_dict() == {"name": "part", "size": 3}


def test_from_spec_errors_state_the_rule():
    parts, Part = make_registry()
    with pytest.raises(KeyError, match="unknown part 'bolt'; choose one of: part"):
        parts.from_spec("bolt")
    with pytest.raises(ValueError, match=r"a part spec is a dict with a 'name' key .*; got \{'size': 2\}"):
        parts.from_spec({"size": 2})
    rule = "a part spec is a registered name, a dict with 'name', or a built part; got int"
    with pytest.raises(TypeError, match=rule):
        parts.from_spec(3)

    class Sub(Part):
        pass

    with pytest.raises(KeyError, match="Sub is not registered"):
        Sub().to_dict()


def test_plain_data_converts_numpy_and_tuples_and_rejects_objects():
    assert plain_data({"a": np.int64(2), "b": (np.float32(0.5),), "c": np.arange(2), 3: None}) == {
        "a": 2,
        "b": [0.5],
        "c": [0, 1],
        3: None,
    }
    with pytest.raises(TypeError, match="must be plain data .*; got function"):
        plain_data({"f": lambda: 0})


@pytest.mark.parametrize("kind", REGISTRIES)
def test_every_registered_class_takes_its_name_from_the_registry_only(kind):
    registry = REGISTRIES[kind]
    for name in registry.names():
        factory = registry.get(name)
        if not inspect.isclass(factory):
            continue
        assert factory.name == name and registry.name_of(factory) == name
        source = inspect.getsource(factory)
        assert f'name = "{name}"' not in source, f"{factory.__name__} writes its name twice"


@pytest.mark.parametrize(
    ("shorthand", "expected"),
    [
        ("balanced", Power(q=1.0)),
        ("sqrt", Power(q=0.5)),
        ("instance", Power(q=0.0)),
        (0.25, Power(q=0.25)),
        ({"power": 0.7}, Power(q=0.7)),
        ({"power": {"q": 0.7}}, Power(q=0.7)),
        ({"effective_number": 0.999}, EffectiveNumber(beta=0.999)),
        ({"name": "effective_number", "beta": 0.99}, EffectiveNumber(beta=0.99)),
        ({"name": "balanced"}, Power(q=1.0)),
        ({0: 2.0, 2: 0.5}, Explicit(weights={0: 2.0, 2: 0.5})),
        ([1.0, 2.0], Explicit(weights=[1.0, 2.0])),
    ],
)
def test_weighting_shorthands_are_still_accepted(shorthand, expected):
    w = resolve_weighting(shorthand)
    assert w == expected
    assert WEIGHTINGS.from_spec(w.to_dict()) == w


def test_weighting_specs_have_the_one_shape():
    assert Power(q=0.5).to_dict() == {"name": "power", "q": 0.5}
    assert EffectiveNumber(beta=0.999).to_dict() == {"name": "effective_number", "beta": 0.999}
    assert resolve_weighting({"deferred": {"switch_epoch": 2, "after": "sqrt"}}).to_dict() == {
        "name": "deferred",
        "switch_epoch": 2,
        "before": {"name": "power", "q": 0.0},
        "after": {"name": "power", "q": 0.5},
    }
    assert WEIGHTINGS.from_spec("balanced") == Power(q=1.0)
    named = resolve_weighting({"name": "explicit", "weights": {"cat": 2.0}}, classes=["dog", "cat"])
    assert named.class_weights([5, 5]).tolist() == [2 / 3, 4 / 3]
    with pytest.raises(ValueError, match=r"got \{'name': 'power', 'p': 1\}"):
        resolve_weighting({"name": "power", "p": 1})


def test_a_sampler_spec_cannot_hold_a_callable_strategy():
    sampler = SAMPLERS.build("resampled", labels=np.array([0, 0, 0, 1]), sampling_strategy=lambda y: {1: 3})
    with pytest.raises(TypeError, match="ResampledSampler parameters must be plain data .*; got function"):
        sampler.to_dict()


BATCH_OP_KWARGS = {
    "resize": {"size": (12, 10)},
    "normalize": {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)},
    "pad_crop": {"padding": 2, "padding_mode": "reflect", "seed": 4},
    "horizontal_flip": {"p": 0.3, "seed": 5},
    "compose": {"ops": ["horizontal_flip", {"name": "pad_crop", "padding": 2}], "seed": 6},
}


def test_batch_op_kwargs_cover_every_registered_op():
    assert sorted(BATCH_OP_KWARGS) == BATCH_OPS.names()


@pytest.mark.parametrize("name", BATCH_OPS.names())
def test_batch_ops_round_trip_and_give_the_same_output(name):
    op = BATCH_OPS.build(name, **BATCH_OP_KWARGS[name])
    rebuilt = check_spec_roundtrip(op)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a, b = op(images), rebuilt(images)
    assert torch.equal(a, b)
    json.dumps(op.to_dict())


def test_compose_spec_nests_its_ops_as_their_specs():
    ops = BatchCompose([BatchPadCrop(padding=1), "horizontal_flip"], seed=2)
    assert ops.to_dict() == {
        "name": "compose",
        "ops": [
            {"name": "pad_crop", "size": None, "padding": 1, "padding_mode": "constant", "fill": 0, "seed": 0},
            {"name": "horizontal_flip", "p": 0.5, "seed": 0},
        ],
        "seed": 2,
    }


def test_recipe_specs_with_nested_shorthands_build_the_same_components():
    labels = np.repeat(np.arange(3), [40, 10, 2])
    spec = {"name": "class_aware", "weighting": {"effective_number": 0.99}, "seed": 2}
    sampler = SAMPLERS.from_spec(spec, labels=labels)
    assert sampler.to_dict()["weighting"] == {"name": "effective_number", "beta": 0.99}
    assert list(SAMPLERS.from_spec(sampler.to_dict(), labels=labels)) == list(sampler)
    assert SAMPLERS.from_spec(sampler) is sampler
    policy = POLICIES.from_spec({"name": "rarity_scaled", "base": "light", "counts": [40, 10, 2], "size": 16})
    assert policy.to_dict()["base"] == {"name": "light"} and POLICIES.from_spec(policy.to_dict()) == policy
    mixer = MIXERS.from_spec("remix", num_classes=3, class_counts=[40, 10, 2])
    assert MIXERS.from_spec(mixer.to_dict()).to_dict() == mixer.to_dict()


def test_an_unknown_parameter_is_named_with_the_ones_the_component_takes() -> None:
    from augbal.augment import POLICIES

    with pytest.raises(TypeError) as info:
        POLICIES.from_spec({"name": "medium", "bogus": 1, "magnitude": 2})
    assert str(info.value) == ("policy 'medium' has no parameter 'bogus' (its parameters: size, mean, std, magnitude, "
                               "seed); got bogus, magnitude")
