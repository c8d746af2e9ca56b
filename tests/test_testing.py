"""augbal.testing: every check can fail. Each broken component below breaks one rule and the
check for that rule (and only the checks asked for) rejects it, naming the check."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from augbal._draw import Draw
from augbal._registry import Registry
from augbal.augment import LightPolicy, MixUp
from augbal.augment._policy import as_rgb_array
from augbal.augment._repeat import as_draw, draw_seed_sequence
from augbal.sampling import ClassAwareSampler, Power
from augbal.testing import (
    MIXER_CHECKS,
    POLICY_CHECKS,
    SAMPLER_CHECKS,
    WEIGHTING_CHECKS,
    check_mixer,
    check_policy,
    check_sampler,
    check_spec_roundtrip,
    check_weighting,
    chi_square_pvalue,
)

LABELS = np.repeat(np.arange(4), [300, 60, 20, 6])
LABELS = LABELS[np.random.default_rng(7).permutation(LABELS.size)]


# --------------------------------------------------------------------------- samplers


class Unseeded(ClassAwareSampler):  # iteration order from an unseeded RNG
    def __iter__(self):
        items = list(super().__iter__())
        random.Random().shuffle(items)
        return iter(items)


class IgnoresEpoch(ClassAwareSampler):
    def set_epoch(self, epoch):
        pass


class WrongLen(ClassAwareSampler):
    def __len__(self):
        return super().__len__() + 1


class ForgetsPositionWhenPickled(ClassAwareSampler):
    def __getstate__(self):
        return {**super().__getstate__(), "_resume": 0}


class IgnoresYielded(ClassAwareSampler):
    def load_state_dict(self, state):
        self.set_epoch(state["epoch"])


class SetEpochResets(ClassAwareSampler):
    def set_epoch(self, epoch):
        self.epoch, self._resume, self._cursor = int(epoch), 0, None


class RepeatAlwaysZero(ClassAwareSampler):
    def _items(self, idx, rep, epoch):
        items = super()._items(idx, rep, epoch)
        return [Draw(d.index, 0, d.epoch) for d in items] if self.yield_draws else items


class LyingTarget(ClassAwareSampler):  # claims the data's frequencies, draws balanced
    def target_frequencies(self, epoch=None):
        self._fit()
        return dict(zip(self.classes_.tolist(), (self.class_counts_ / self.num_labels_).tolist()))


class EveryRankTheWholeEpoch(ClassAwareSampler):
    def __init__(self, labels, **kwargs):
        kwargs.update(num_replicas=1, rank=0)
        super().__init__(labels, **kwargs)


class SeedMovesWithWorldSize(ClassAwareSampler):  # a run on 2 GPUs would draw other images than on 1
    def __init__(self, labels, *, seed=0, num_replicas=1, **kwargs):
        super().__init__(labels, seed=seed + num_replicas - 1, num_replicas=num_replicas, **kwargs)


class BatchesOutOfOrder(ClassAwareSampler):
    def batches(self, batch_size=None, *, drop_last=False):
        return list(reversed(list(super().batches(batch_size, drop_last=drop_last))))


class Unregistered(ClassAwareSampler):
    pass


BROKEN_SAMPLERS = {
    "deterministic": Unseeded,
    "set_epoch": IgnoresEpoch,
    "len": WrongLen,
    "pickle": ForgetsPositionWhenPickled,
    "resume": IgnoresYielded,
    "resume_after_set_epoch": SetEpochResets,
    "draws": RepeatAlwaysZero,
    "class_frequencies": LyingTarget,
    "shards": EveryRankTheWholeEpoch,
    "world_size": SeedMovesWithWorldSize,
    "batches": BatchesOutOfOrder,
    "spec": Unregistered,
}


def test_every_sampler_check_has_a_broken_sampler():
    assert set(BROKEN_SAMPLERS) == set(SAMPLER_CHECKS)


@pytest.mark.parametrize("check", SAMPLER_CHECKS)
def test_each_sampler_check_catches_its_broken_sampler(check):
    broken = BROKEN_SAMPLERS[check](LABELS, weighting="balanced", seed=0)
    with pytest.raises(AssertionError, match=rf"^check_sampler\[{check}\] failed for {type(broken).__name__}"):
        check_sampler(broken, checks=[check])
    check_sampler(ClassAwareSampler(LABELS, seed=0), checks=[check])  # the sound sampler passes it


def test_sampler_messages_say_what_is_wrong():
    with pytest.raises(AssertionError, match="len\\(\\) is 387 but iteration yields 386 items"):
        check_sampler(WrongLen(LABELS, seed=0), checks=["len"])
    with pytest.raises(AssertionError, match="Unregistered is not registered"):
        check_sampler(Unregistered(LABELS, seed=0), checks=["spec"])


def test_a_factory_is_accepted_and_bad_arguments_are_errors():
    check_sampler(lambda **kw: ClassAwareSampler(LABELS, weighting="sqrt", **kw), checks=["deterministic", "resume"])
    with pytest.raises(TypeError, match="check_sampler takes a sampler"):
        check_sampler([0, 1, 2])
    with pytest.raises(ValueError, match="check_sampler checks must be among deterministic, .*; got 'nope'"):
        check_sampler(ClassAwareSampler(LABELS), checks=["nope"])


# --------------------------------------------------------------------------- policies


class WrongSize(LightPolicy):
    def _apply(self, image, seeds, label):
        return super()._apply(image, seeds, label)[:, :-1]


class NoisyOutput(LightPolicy):  # the same draw gives another output each call
    def __call__(self, image, *, label=None, draw=None):
        return super().__call__(image, label=label, draw=draw) + float(np.random.default_rng().random()) * 1e-3


class IgnoresSeed(LightPolicy):
    def __call__(self, image, *, label=None, draw=None):
        seeds = draw_seed_sequence(0, as_draw(draw if draw is not None else 0))
        return self._apply(as_rgb_array(image), seeds, label)


class IgnoresRepeat(LightPolicy):
    def __call__(self, image, *, label=None, draw=None):
        draw = as_draw(draw) if draw is not None else None
        return super().__call__(image, label=label, draw=None if draw is None else Draw(draw.index, 0, draw.epoch))


class FrozenStream(LightPolicy):  # every draw-less call reuses the same seeds
    def __call__(self, image, *, label=None, draw=None):
        if draw is None:
            return self._apply(as_rgb_array(image), np.random.SeedSequence([self.seed]), label)
        return super().__call__(image, label=label, draw=draw)


class WritesInput(LightPolicy):
    def __call__(self, image, *, label=None, draw=None):
        out = super().__call__(image, label=label, draw=draw)
        if isinstance(image, np.ndarray) and image.flags.writeable:
            image[0, 0] = 0
        return out


class UsesGlobalRng(LightPolicy):
    def __call__(self, image, *, label=None, draw=None):
        np.random.random()
        return super().__call__(image, label=label, draw=draw)


class PicklesAnotherSeed(LightPolicy):
    def __reduce__(self):
        return (type(self), (), {**self.__getstate__(), "seed": self.seed + 1})


class MishandlesPil(LightPolicy):
    def __call__(self, image, *, label=None, draw=None):
        if not isinstance(image, np.ndarray):
            image = np.asarray(image.convert("RGB"))[::-1].copy()
        return super().__call__(image, label=label, draw=draw)


class NoContext(LightPolicy):
    wants_context = False


class UnregisteredPolicy(LightPolicy):
    pass


BROKEN_POLICIES = {
    "output": WrongSize,
    "deterministic": NoisyOutput,
    "seed": IgnoresSeed,
    "repeats": IgnoresRepeat,
    "stream": FrozenStream,
    "inputs_untouched": WritesInput,
    "global_rngs": UsesGlobalRng,
    "pickle": PicklesAnotherSeed,
    "input_types": MishandlesPil,
    "protocol": NoContext,
    "spec": UnregisteredPolicy,
}


def test_every_policy_check_has_a_broken_policy():
    assert set(BROKEN_POLICIES) == set(POLICY_CHECKS)


@pytest.mark.parametrize("check", POLICY_CHECKS)
def test_each_policy_check_catches_its_broken_policy(check):
    broken = BROKEN_POLICIES[check](size=16, seed=1)
    with pytest.raises(AssertionError, match=rf"^check_policy\[{check}\] failed for {type(broken).__name__}"):
        check_policy(broken, checks=[check])
    check_policy(LightPolicy(size=16, seed=1), checks=[check])


def test_policy_that_ignores_its_seed_is_named_so():
    with pytest.raises(AssertionError, match="seeds 1 and 2 give identical outputs for 8 draws: the seed is ignored"):
        check_policy(IgnoresSeed(size=16, seed=1), checks=["seed"])


# --------------------------------------------------------------------------- mixers


class UnnormalisedTargets(MixUp):
    def _mix(self, images, targets, generator):
        mixed, soft = super()._mix(images, targets, generator)
        return mixed, soft * 0.5


class MixerIgnoresSeed(MixUp):
    def _own_generator(self):
        return torch.Generator().manual_seed(0)


class MixerUsesGlobalRng(MixUp):
    def _mix(self, images, targets, generator):
        torch.rand(1)
        return super()._mix(images, targets, generator)


class RestartsWhenPickled(MixUp):
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "generator_"}


class UnregisteredMixer(MixUp):
    pass


BROKEN_MIXERS = {
    "output": UnnormalisedTargets,
    "deterministic": MixerIgnoresSeed,
    "global_rng": MixerUsesGlobalRng,
    "pickle": RestartsWhenPickled,
    "spec": UnregisteredMixer,
}


def test_every_mixer_check_has_a_broken_mixer():
    assert set(BROKEN_MIXERS) == set(MIXER_CHECKS)


@pytest.mark.parametrize("check", MIXER_CHECKS)
def test_each_mixer_check_catches_its_broken_mixer(check):
    broken = BROKEN_MIXERS[check](num_classes=3, seed=1)
    with pytest.raises(AssertionError, match=rf"^check_mixer\[{check}\] failed for {type(broken).__name__}"):
        check_mixer(broken, checks=[check])
    check_mixer(MixUp(num_classes=3, seed=1), checks=[check])


# --------------------------------------------------------------------------- weightings


class Unnormalised(Power):
    def class_weights(self, counts, *, epoch=0):
        return super().class_weights(counts, epoch=epoch) * 2


class ClaimsStatic(Power):
    def _class_weights(self, counts, epoch):
        return Power(q=self.q + epoch)._class_weights(counts, epoch)


class PicklesAnotherQ(Power):
    def __reduce__(self):
        return (type(self), (), {"q": self.q + 1})


class UnregisteredWeighting(Power):
    pass


BROKEN_WEIGHTINGS = {
    "weights": Unnormalised,
    "static": ClaimsStatic,
    "pickle": PicklesAnotherQ,
    "spec": UnregisteredWeighting,
}


def test_every_weighting_check_has_a_broken_weighting():
    assert set(BROKEN_WEIGHTINGS) == set(WEIGHTING_CHECKS)


@pytest.mark.parametrize("check", WEIGHTING_CHECKS)
def test_each_weighting_check_catches_its_broken_weighting(check):
    broken = BROKEN_WEIGHTINGS[check](q=0.5)
    with pytest.raises(AssertionError, match=rf"^check_weighting\[{check}\] failed for {type(broken).__name__}"):
        check_weighting(broken, checks=[check])
    check_weighting(Power(q=0.5), checks=[check])


# --------------------------------------------------------------------------- specs


class Thing:
    def __init__(self, *, size=1, tags=None):
        self.size, self.tags = size, tags

    def get_params(self):
        return {"size": self.size, "tags": self.tags}

    def to_dict(self):
        return THINGS.spec(self, {"size": self.size, "tags": self.tags})


THINGS = Registry("thing", base=Thing)
THINGS.register("thing")(Thing)


@THINGS.register("lossy")
class Lossy(Thing):  # its spec forgets size
    def to_dict(self):
        return THINGS.spec(self, {"tags": self.tags})


@THINGS.register("opaque")
class Opaque(Thing):  # its spec holds a set: not JSON
    def to_dict(self):
        return {"name": "opaque", "size": self.size, "tags": {1, 2}}


def test_spec_roundtrip_passes_a_sound_component_and_returns_the_rebuilt_one():
    rebuilt = check_spec_roundtrip(Thing(size=3, tags=["a"]), THINGS)
    assert type(rebuilt) is Thing and rebuilt.size == 3 and rebuilt is not None


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (Lossy(size=3), r"the spec loses parameters \['size'\]"),
        (Opaque(size=3), "the spec must be JSON-serialisable plain data"),
    ],
)
def test_spec_roundtrip_catches_lossy_and_opaque_specs(component, message):
    with pytest.raises(AssertionError, match=rf"^check_spec_roundtrip \(thing\)\[spec\] failed .*{message}"):
        check_spec_roundtrip(component, THINGS)


def test_spec_roundtrip_needs_a_registry_for_unknown_kinds():
    with pytest.raises(TypeError, match="pass it as the second argument"):
        check_spec_roundtrip(object())


# --------------------------------------------------------------------------- statistics and imports


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 40])
def test_chi_square_matches_scipy(df):
    chi2 = pytest.importorskip("scipy.stats").chi2
    for stat in (0.0, 0.01, 0.5, 1.0, df - 0.5, df, df + 3.0, 2.5 * df + 10, 120.0):
        from augbal.testing import _gammaincc

        assert _gammaincc(df / 2, stat / 2) == pytest.approx(chi2.sf(stat, df), rel=1e-9, abs=1e-300)


def test_chi_square_pvalue_of_counts():
    assert chi_square_pvalue([10, 0], [1.0, 0.0]) == 1.0  # one live class: nothing to test
    assert chi_square_pvalue([10, 1], [1.0, 0.0]) == 0.0  # a draw of an impossible class
    assert chi_square_pvalue([500, 500], [0.5, 0.5]) == pytest.approx(1.0)
    assert chi_square_pvalue([600, 400], [0.5, 0.5]) < 1e-9
    with pytest.raises(ValueError, match="same 1-d shape"):
        chi_square_pvalue([1, 2], [1.0])


def test_testing_module_is_lazy_and_imports_no_pytest_scipy_or_torch():
    code = (
        "import sys, augbal\n"
        "assert 'augbal.testing' not in sys.modules and 'testing' in dir(augbal)\n"
        "import augbal.testing\n"
        "print(sorted(m for m in ('pytest', 'scipy', 'torch') if m in sys.modules))\n"
        "print(augbal.testing is sys.modules['augbal.testing'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True"]


@pytest.mark.parametrize("weighting", [{"name": "deferred", "switch_epoch": 10}, {"progressive": {"epochs": 5}}])
def test_class_frequencies_pools_each_epochs_own_target(weighting):
    """A weighting that changes by epoch is held to the targets of the epochs drawn, not the last one's."""
    from augbal.sampling import ClassAwareSampler, resolve_weighting

    labels = np.repeat([0, 1, 2], [60, 15, 5])
    check_sampler(ClassAwareSampler(labels, weighting=resolve_weighting(weighting)), checks=["class_frequencies"])
