"""Checkpoint selection on a hand-written history, and weight averaging (SWA, EMA) on known weights."""

from __future__ import annotations

import io
import json
import math
import pickle
import re

import pytest
import torch
from torch import nn

from augbal.train._freeze import FREEZE_POLICIES
from augbal.train._model import build_model
from augbal.train._select import EMA, SELECTIONS, SWA, Averager, Best, Last, Selector, Smoothed

torch.set_num_threads(1)

# a metrics.jsonl-like history: (balanced accuracy, unweighted val loss, recall of class 2)
# (a spike at epoch 2, a steadier plateau at epochs 4-6)
RUN = [
    (0.45, 1.00, 0.00),
    (0.55, 0.80, 0.25),
    (0.75, 0.90, 0.50),
    (0.50, 0.70, 0.50),
    (0.66, 0.75, 0.75),
    (0.68, 0.72, 0.50),
    (0.70, 0.85, 0.25),
    (0.60, 0.78, 0.50),
]


def _row(epoch: int, bacc: float, loss: float, recall2: float) -> dict:
    return {
        "epoch": epoch,
        "lr": [0.001],
        "train": {"loss": 0.5, "loss_unweighted": 0.4},
        "val": {
            "loss": loss,
            "balanced_accuracy": bacc,
            "recall": [0.9, 0.8, recall2],
            "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        },
        "time_s": 1.0,
    }


HISTORY = [_row(e, *values) for e, values in enumerate(RUN)]


def _run(selector: Selector, history: list[dict] = HISTORY) -> list[bool]:
    return [selector.update(row["epoch"], row) for row in history]


def test_registered_names() -> None:
    assert SELECTIONS.names() == ["best", "ema", "last", "smoothed", "swa"]


def test_best_balanced_accuracy_keeps_the_earlier_tie() -> None:
    best = SELECTIONS.from_spec("best")
    assert _run(best) == [True, True, True, False, False, False, False, False]
    assert best.selected_epoch == 2
    assert best.reason() == "epoch 2: best validation balanced_accuracy (0.75; highest of 8 epochs)"


def test_best_loss_is_minimised_by_default_and_dotted_paths() -> None:
    best = Best(metric="val.loss")
    assert _run(best) == [True, True, False, True, False, False, False, False]
    assert best.reason() == "epoch 3: best validation loss (0.7; lowest of 8 epochs)"
    worst = Best(metric="loss", mode="max")
    _run(worst)
    assert worst.selected_epoch == 0
    recall = Best(metric="recall.2")
    _run(recall)
    assert recall.selected_epoch == 4
    train = Best(metric="train.loss_unweighted")
    _run(train)
    assert train.selected_epoch == 0 and train.reason().startswith("epoch 0: best training loss_unweighted (0.4")
    flat = Best()  # the val dict of evaluate_logits alone
    assert [flat.update(e, row["val"]) for e, row in enumerate(HISTORY)] == _run(Best())
    flat = Best(metric="val.loss")
    assert [flat.update(e, row["val"]) for e, row in enumerate(HISTORY)] == _run(Best(metric="loss"))


def test_smoothed_trailing_mean_ties_go_to_the_later_epoch() -> None:
    smoothed = SELECTIONS.from_spec({"name": "smoothed", "window": 3})
    # partial means .45, .50, then 3-epoch means .583, .600, .637, .613, .680, .660: the plateau, not the spike
    assert _run(smoothed) == [True, True, True, True, True, False, True, False]
    assert smoothed.selected_epoch == 6
    means = [sum(r[0] for r in RUN[e - 2 : e + 1]) / 3 for e in range(2, 8)]
    assert means.index(max(means)) + 2 == 6
    assert smoothed.reason() == (
        "epoch 6: best 3-epoch mean of validation balanced_accuracy (0.68; epochs 4-6, highest of 6 windows)"
    )
    # exact ties (binary fractions): the later window wins, the earlier stays for best
    values = [0.5, 1.0, 0.5, 0.75, 0.75, 0.25]
    history = [{"balanced_accuracy": v} for v in values]
    two = Smoothed(window=2)
    assert [two.update(e, m) for e, m in enumerate(history)] == [True, True, True, False, True, False]
    assert two.selected_epoch == 4
    one = Best()
    assert [one.update(e, m) for e, m in enumerate(history)] == [True, True, False, False, False, False]


def test_smoothed_prefers_a_full_window_and_handles_a_short_run() -> None:
    s = Smoothed(window=3, metric="loss")
    assert s.update(0, {"loss": 0.1}) is True  # the only value so far
    assert s.update(1, {"loss": 0.9}) is False  # mean 0.5 > 0.1
    assert s.reason() == (
        "epoch 0: best mean of validation loss over the epochs so far (0.1; epoch 0; the run is shorter "
        "than the 3-epoch window)"
    )
    assert s.update(2, {"loss": 0.8}) is True  # the first full window replaces partial means
    assert s.selected_epoch == 2


def test_nan_never_beats_a_number() -> None:
    best = Best(metric="loss")
    assert [best.update(e, {"loss": v}) for e, v in enumerate([math.nan, 2.0, math.nan, 1.0])] == [
        True,
        True,
        False,
        True,
    ]
    s = Smoothed(metric="loss", window=2)
    assert [s.update(e, {"loss": v}) for e, v in enumerate([1.0, 1.0, math.nan, 3.0, 3.0])] == [
        True,
        True,
        False,
        False,
        False,
    ]


def test_last() -> None:
    last = SELECTIONS.from_spec("last")
    assert _run(last) == [True] * 8
    assert last.reason() == "epoch 7: the last epoch"
    assert Last().reason() == "no epoch selected yet (last selection)"


def test_unknown_metric_is_named_at_the_first_update() -> None:
    best = Best(metric="balanced_acc")  # no error yet: the metrics are unknown until the first epoch
    with pytest.raises(KeyError) as err:
        best.update(0, HISTORY[0])
    text = str(err.value)
    assert "metric 'balanced_acc' is not in the epoch's metrics; the available metrics are: " in text
    assert "val.balanced_accuracy" in text and "val.recall.2" in text and "val.confusion" not in text
    assert "time_s" not in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "best", "metric": "test.balanced_accuracy"}, "checkpoints are selected on validation, never on test"),
        ({"name": "best", "metric": "test_loss"}, "never on test; got 'test_loss'"),
        ({"name": "best", "mode": "maximum"}, "mode must be one of 'auto', 'max', 'min'; got 'maximum'"),
        ({"name": "smoothed", "window": 0}, "window must be an int >= 1; got 0"),
        ({"name": "best", "metric": ""}, "metric must be a metric name such as 'balanced_accuracy'"),
        ({"name": "ema", "decay": 1.0}, "decay must be a number in [0, 1); got 1.0"),
        ({"name": "swa", "last_k": None}, "SWA needs last_k (an int >= 1) or start_epoch; got neither"),
        ({"name": "swa", "last_k": 0}, "last_k must be an int >= 1 or None; got 0"),
    ],
)
def test_bad_parameters(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SELECTIONS.from_spec(spec)


def test_epochs_must_increase() -> None:
    best = Best()
    best.update(3, {"balanced_accuracy": 0.5})
    with pytest.raises(ValueError, match=re.escape("epoch must be > the last epoch updated (3); got 3")):
        best.update(3, {"balanced_accuracy": 0.5})
    with pytest.raises(ValueError, match="metrics must be a dict"):
        best.update(4, [0.5])


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "best", "metric": "val.loss", "mode": "min"},
        {"name": "smoothed", "metric": "macro_f1", "window": 5, "mode": "auto"},
        {"name": "last"},
        {"name": "ema", "decay": 0.99},
        {"name": "swa", "last_k": 3, "start_epoch": None},
        {"name": "swa", "last_k": None, "start_epoch": 10},
    ],
)
def test_spec_round_trip(spec: dict) -> None:
    selector = SELECTIONS.from_spec(spec)
    assert selector.to_dict() == spec
    assert SELECTIONS.from_spec(json.loads(json.dumps(selector.to_dict()))).to_dict() == spec
    assert selector.averages is isinstance(selector, Averager)


@pytest.mark.parametrize("name", SELECTIONS.names())
def test_every_selection_builds_from_its_name_and_pickles(name: str) -> None:
    selector = SELECTIONS.from_spec(name)
    assert isinstance(selector, Selector) and selector.to_dict()["name"] == name
    assert pickle.loads(pickle.dumps(selector)).to_dict() == selector.to_dict()
    if not selector.averages:
        _run(selector)
        again = pickle.loads(pickle.dumps(selector))
        assert again.selected_epoch == selector.selected_epoch and again.reason() == selector.reason()
    else:
        assert selector.update(0, HISTORY[0]) is False and selector.selected_epoch is None


@pytest.mark.parametrize("spec", [{"name": "best"}, {"name": "smoothed", "window": 3}, {"name": "last"}])
def test_a_resumed_selection_continues_exactly(spec: dict) -> None:
    whole = SELECTIONS.from_spec(spec)
    expected = _run(whole)
    first = SELECTIONS.from_spec(spec)
    head = _run(first, HISTORY[:4])
    state = json.loads(json.dumps(first.state_dict()))
    resumed = SELECTIONS.from_spec(spec)
    resumed.load_state_dict(state)
    assert head + _run(resumed, HISTORY[4:]) == expected
    assert resumed.reason() == whole.reason()


# ----------------------------------------------------------------------------- averaging


def _tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))


def _with_weights(model: nn.Module, value: float) -> nn.Module:
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) * value + i)
    return model


def test_swa_of_three_known_weight_sets_is_their_mean() -> None:
    sets = [_with_weights(_tiny(), v) for v in (1.0, 2.0, 6.0)]
    swa = SWA(last_k=3)
    for epoch, model in enumerate(sets):
        assert swa.update(model, epoch) is None
    averaged = swa.averaged_model()
    assert isinstance(averaged, nn.Sequential)  # a plain module: its state_dict keys are the model's
    for name, p in averaged.named_parameters():
        expected = sum(dict(m.named_parameters())[name] for m in sets) / 3
        torch.testing.assert_close(p, expected)
    torch.testing.assert_close(averaged[0].weight, _with_weights(_tiny(), 3.0)[0].weight)
    assert swa.selected_epoch == 2
    # last_k=2: only the last two epochs
    swa2 = SELECTIONS.from_spec({"name": "swa", "last_k": 2})
    for epoch, model in enumerate(sets):
        swa2.update(model, epoch)
    torch.testing.assert_close(swa2.averaged_model()[4].weight, _with_weights(_tiny(), 4.0)[4].weight)
    assert swa2.reason() == (
        "SWA: uniform average of the weights of the last 2 epochs (1-2); BatchNorm statistics not recomputed "
        "(finalize was not called)"
    )
    # start_epoch=1: streaming from epoch 1 on
    swa3 = SWA(start_epoch=1)
    swa3.update(sets[0], 0)
    assert swa3.selected_epoch is None and swa3.reason() == "no epoch selected yet (swa selection)"
    with pytest.raises(RuntimeError, match=r"SWA has averaged no weights yet: .*\(it averages the epochs from 1 on\)"):
        swa3.averaged_model()
    for epoch, model in enumerate(sets[1:], start=1):
        swa3.update(model, epoch)
    torch.testing.assert_close(swa3.averaged_model()[0].bias, _with_weights(_tiny(), 4.0)[0].bias)
    assert "of epochs from 1 (1-2)" in swa3.reason()


def test_swa_snapshots_are_copies() -> None:
    model = _with_weights(_tiny(), 1.0)
    swa = SWA(last_k=2)
    swa.update(model, 0)
    _with_weights(model, 3.0)  # training goes on in place
    swa.update(model, 1)
    torch.testing.assert_close(swa.averaged_model()[4].weight, _with_weights(_tiny(), 2.0)[4].weight)


def test_ema_matches_the_formula() -> None:
    decay = 0.9
    ema = SELECTIONS.from_spec({"name": "ema", "decay": decay})
    values = (1.0, 2.0, 6.0, -1.0)
    model = _tiny()
    for step, v in enumerate(values):
        _with_weights(model, v)
        with torch.no_grad():
            model[1].running_mean.fill_(v)
        ema.update(model, step // 2)  # several steps per epoch
    expected_scale = values[0]
    for v in values[1:]:
        expected_scale = decay * expected_scale + (1 - decay) * v
    averaged = ema.averaged_model()
    # parameters are arange * value + i, linear in value: the EMA of the values gives the EMA of the weights
    torch.testing.assert_close(averaged[0].weight, _with_weights(_tiny(), expected_scale)[0].weight)
    torch.testing.assert_close(averaged[1].running_mean, torch.full((4,), expected_scale))  # buffers too
    assert ema.reason() == (
        "exponential moving average of the weights (decay 0.9, 4 updates, epochs 0-1); BatchNorm statistics not "
        "recomputed (finalize was not called)"
    )
    assert ema.update(2, {"loss": 1.0}) is False and ema.averages


def test_averaged_model_before_any_update() -> None:
    with pytest.raises(RuntimeError, match=re.escape("EMA has averaged no weights yet: call update(model, epoch) first")):
        EMA().averaged_model()
    with pytest.raises(ValueError, match=re.escape("epoch must be >= the last epoch averaged (2); got 1")):
        ema = EMA()
        ema.update(_tiny(), 2)
        ema.update(_tiny(), 1)


def test_finalize_recomputes_batchnorm_and_keeps_frozen_stages() -> None:
    images = [torch.randn(6, 3, 6, 6, generator=torch.Generator().manual_seed(s)) * 2 + 1 for s in range(3)]
    sets = [_with_weights(_tiny(), v) for v in (0.01, 0.02)]
    swa = SWA(last_k=2)
    for epoch, model in enumerate(sets):
        swa.update(model, epoch)
    averaged = swa.finalize([(x, torch.zeros(6)) for x in images], "cpu")
    assert averaged is swa.averaged_model()
    conv_out = averaged[0](torch.cat(images))
    torch.testing.assert_close(averaged[1].running_mean, conv_out.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert swa.reason().endswith("BatchNorm statistics recomputed on 3 batches")
    assert all(p.grad is None for p in averaged.parameters())

    # on a ResNet: frozen_through="layer3" keeps the statistics of the stem .. layer3
    net = build_model(3, cifar_stem=True, seed=0)[0]
    policy = FREEZE_POLICIES.from_spec("layer4")
    ema = EMA(decay=0.5)
    ema.update(net, 0)
    before = {k: v.clone() for k, v in ema.averaged_model().state_dict().items() if "running_mean" in k}
    batches = [torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(9)) * 3 + 2]
    model = ema.finalize(batches, frozen_through=policy.frozen_through(10))
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith(("layer4", "fc")))
    assert not torch.equal(after["layer4.1.bn2.running_mean"], before["layer4.1.bn2.running_mean"])
    assert ema.reason().endswith("BatchNorm statistics recomputed on 1 batch")

    # head only: nothing to recompute, and the loader (cached features here) is never read
    def unreadable():
        raise AssertionError("the loader was read")
        yield

    head = EMA(decay=0.5)
    head.update(net, 0)
    kept = head.finalize(unreadable(), frozen_through=FREEZE_POLICIES.from_spec("head").frozen_through(10))
    assert torch.equal(kept.layer4[1].bn2.running_mean, net.layer4[1].bn2.running_mean)
    assert head.reason().endswith("BatchNorm statistics kept (no BatchNorm layer trained)")


@pytest.mark.parametrize("spec", [{"name": "ema", "decay": 0.5}, {"name": "swa", "last_k": 2}, {"name": "swa", "start_epoch": 1}])
def test_an_averager_resumes_from_a_weights_only_checkpoint(spec: dict) -> None:
    sets = [_with_weights(_tiny(), v) for v in (1.0, 2.0, 6.0, 3.0)]
    whole = SELECTIONS.from_spec(spec)
    for epoch, model in enumerate(sets):
        whole.update(model, epoch)
    first = SELECTIONS.from_spec(spec)
    for epoch, model in enumerate(sets[:2]):
        first.update(model, epoch)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = SELECTIONS.from_spec(spec)
    resumed.load_state_dict(torch.load(buffer, weights_only=True), model=_tiny())
    for epoch, model in enumerate(sets[2:], start=2):
        resumed.update(model, epoch)
    for (name, a), b in zip(whole.averaged_model().state_dict().items(), resumed.averaged_model().state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert resumed.reason() == whole.reason()
    with pytest.raises(ValueError, match="needs model="):
        SELECTIONS.from_spec(spec).load_state_dict(first.state_dict())
