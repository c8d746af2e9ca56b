"""Optimisers, schedules and the LR finder of augbal.train._optim."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch

from augbal.train._optim import (
    OPTIMIZERS,
    SCHEDULES,
    LRFinderResult,
    build_optimizer,
    build_scheduler,
    find_lr,
)

torch.set_num_threads(1)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))


def _run(sched, opt, epochs, steps, metrics=None):
    for e in range(epochs):
        for _ in range(steps):
            opt.step()
            sched.step_batch()
        sched.step_epoch(metrics(e) if metrics else {"loss": 1.0})
    return sched.history


# --------------------------------------------------------------------------- optimisers


def test_registered_names():
    assert OPTIMIZERS.names() == ["adam", "adamw", "sgd"]
    assert SCHEDULES.names() == ["constant", "cosine", "onecycle", "plateau", "step"]


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_spec_round_trip(name):
    spec = OPTIMIZERS.from_spec(name, lr=0.05)
    again = OPTIMIZERS.from_spec(spec.to_dict())
    assert again == spec and again.to_dict() == spec.to_dict()
    assert spec.to_dict()["name"] == name


@pytest.mark.parametrize("name", SCHEDULES.names())
def test_schedule_spec_round_trip(name):
    spec = SCHEDULES.from_spec(name, warmup_epochs=1)
    assert SCHEDULES.from_spec(spec.to_dict()) == spec
    assert spec.to_dict()["name"] == name


def test_group_learning_rates_are_preserved_and_multiplied():
    net = _net()
    groups = [
        {"params": net[0].parameters(), "lr": 0.001, "stage": "layer4"},
        {"params": net[2].parameters(), "lr_mult": 0.5, "stage": "head"},
        {"params": net[1].parameters()},
    ]
    opt = build_optimizer(groups, {"name": "sgd", "lr": 0.2, "momentum": 0.9, "nesterov": True})
    assert isinstance(opt, torch.optim.SGD)
    assert [g["lr"] for g in opt.param_groups] == [0.001, 0.1, 0.2]
    assert [g.get("stage") for g in opt.param_groups] == ["layer4", "head", None]
    assert all(g["momentum"] == 0.9 and g["nesterov"] for g in opt.param_groups)


def test_no_decay_bn_bias_splits_every_group():
    net = _net()
    groups = [{"params": list(net[:2].parameters()), "lr": 0.01, "stage": "body"}]
    opt = build_optimizer(groups, {"name": "adamw", "lr": 0.1, "weight_decay": 0.05, "no_decay_bn_bias": True})
    decay, plain = opt.param_groups
    assert [p is net[0].weight for p in decay["params"]] == [True]
    ids = {id(p) for p in plain["params"]}
    assert ids == {id(net[0].bias), id(net[1].weight), id(net[1].bias)}
    assert (decay["weight_decay"], plain["weight_decay"]) == (0.05, 0.0)
    assert decay["stage"] == plain["stage"] == "body" and decay["lr"] == plain["lr"] == 0.01
    # without the flag: one group, decay on everything
    (only,) = build_optimizer(groups, {"name": "adamw", "weight_decay": 0.05}).param_groups
    assert len(only["params"]) == 4 and only["weight_decay"] == 0.05


def test_adam_and_adamw_parameters_reach_torch():
    net = _net()
    adam = build_optimizer(net, {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4, "betas": [0.8, 0.99]})
    assert type(adam) is torch.optim.Adam
    g = adam.param_groups[0]
    assert (g["lr"], g["weight_decay"], g["betas"]) == (1e-3, 1e-4, (0.8, 0.99))
    adamw = build_optimizer(net.parameters(), "adamw")
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "sgd", "lr": -1}, "lr must be a number > 0; got -1"),
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "momentum must be > 0 with nesterov=True; got 0.0"),
        ({"name": "adam", "betas": [0.9]}, "betas must be two numbers in [0, 1); got [0.9]"),
        ({"name": "adamw", "no_decay_bn_bias": 1}, "no_decay_bn_bias must be True or False; got 1"),
    ],
)
def test_bad_optimizer_specs(spec, message):
    with pytest.raises(ValueError) as info:
        build_optimizer(_net(), spec)
    assert str(info.value) == message


def test_unknown_optimizer_and_parameter():
    with pytest.raises(KeyError, match="unknown optimizer 'rmsprop'; choose one of: adam, adamw, sgd"):
        build_optimizer(_net(), "rmsprop")
    with pytest.raises(TypeError, match="momentum"):
        build_optimizer(_net(), {"name": "adam", "momentum": 0.9})


# --------------------------------------------------------------------------- schedules


def _opt(lrs=(0.1,)):
    net = torch.nn.Linear(2, 2)
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(net.parameters(), lrs)], lr=lrs[0])


def test_cosine_with_warmup_matches_the_formula():
    opt = _opt()
    sched = build_scheduler(opt, {"name": "cosine", "warmup_epochs": 2, "warmup_start": 0.1}, epochs=6, steps_per_epoch=2)
    history = _run(sched, opt, 6, 2)
    warm = [0.1 * (0.1 + 0.9 * t / 4) for t in range(4)]
    cos = [0.1 * 0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(8)]
    assert history == pytest.approx(warm + cos, abs=1e-12)
    assert sched.lrs == pytest.approx([0.0], abs=1e-12)  # the end of the run


def test_cosine_floor_is_per_group():
    opt = _opt((0.1, 0.01))
    sched = build_scheduler(opt, {"name": "cosine", "min_lr_ratio": 0.1}, epochs=2, steps_per_epoch=2)
    _run(sched, opt, 2, 2)
    assert sched.lrs == pytest.approx([0.01, 0.001])


def test_ldam_step_schedule():
    opt = _opt()
    spec = {"name": "step", "milestones": [160, 180], "gamma": 0.1, "warmup_epochs": 5}
    sched = build_scheduler(opt, spec, epochs=200, steps_per_epoch=1)
    h = _run(sched, opt, 200, 1)
    assert h[0] == pytest.approx(0.001) and h[5] == pytest.approx(0.1)
    assert (h[159], h[160], h[179], h[180], h[199]) == pytest.approx((0.1, 0.01, 0.01, 0.001, 0.001))


def test_step_milestone_inside_warmup_is_an_error():
    with pytest.raises(ValueError, match=r"milestones must come after the warm-up \(5 epochs\); got \[3\]"):
        build_scheduler(_opt(), {"name": "step", "milestones": [3], "warmup_epochs": 5}, epochs=10, steps_per_epoch=1)


def test_onecycle_keeps_group_ratios_and_holds_past_the_end():
    opt = _opt((0.2, 0.02))
    sched = build_scheduler(opt, {"name": "onecycle", "max_lr": 1.0, "pct_start": 0.25}, epochs=4, steps_per_epoch=5)
    peaks = []
    for _ in range(20):
        opt.step()
        sched.step_batch()
        peaks.append(sched.lrs)
    first = sched.history
    assert max(first) == pytest.approx(1.0) and int(np.argmax(first)) == 4  # pct_start * 20 - 1
    assert all(a / b == pytest.approx(10.0) for a, b in peaks)
    end = sched.lrs
    opt.step()
    sched.step_batch()  # a 21st batch: no torch error, the rate holds
    assert sched.lrs == end


def test_plateau_halves_after_patience_on_the_named_metric():
    opt = _opt()
    spec = {"name": "plateau", "metric": "loss", "factor": 0.5, "patience": 2}
    sched = build_scheduler(opt, spec, epochs=10, steps_per_epoch=1)
    losses = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    lrs = []
    for value in losses:
        opt.step()
        sched.step_batch()
        sched.step_epoch({"loss": value, "balanced_accuracy": 0.5})
        lrs.append(sched.lrs[0])
    # best 0.9 at epoch 1; epochs 2, 3 are bad within patience; the 3rd bad epoch (4) halves
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_plateau_mode_follows_the_metric_and_needs_it():
    assert SCHEDULES.from_spec({"name": "plateau", "metric": "loss_uniform_prior"}).mode == "min"
    assert SCHEDULES.from_spec({"name": "plateau", "metric": "macro_f1"}).mode == "max"
    sched = build_scheduler(_opt(), {"name": "plateau", "metric": "loss"}, epochs=2, steps_per_epoch=1)
    sched.step_batch()
    with pytest.raises(KeyError, match="needs the validation metric 'loss'; the metrics are: accuracy, ece"):
        sched.step_epoch({"accuracy": 0.5, "ece": 0.1})


def test_plateau_warms_up_per_batch_and_waits():
    opt = _opt()
    spec = {"name": "plateau", "factor": 0.5, "patience": 0, "warmup_epochs": 1, "warmup_start": 0.5}
    sched = build_scheduler(opt, spec, epochs=4, steps_per_epoch=2)
    history = _run(sched, opt, 4, 2, metrics=lambda e: {"loss": 1.0})
    # warm-up 0.05, 0.075; epoch 1 at 0.1 (its end: the first decision, best so far);
    # epoch 2 at 0.1 ends bad -> 0.05; epoch 3 at 0.05
    assert history == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "cosine", "warmup_epochs": 1},
        {"name": "cosine", "warmup_epochs": 1, "min_lr_ratio": 0.2},
        {"name": "step", "milestones": [3], "gamma": 0.5, "warmup_epochs": 1},
        {"name": "onecycle"},
        {"name": "plateau", "patience": 0, "factor": 0.5, "warmup_epochs": 1},
        {"name": "constant", "warmup_epochs": 2},
    ],
)
def test_resume_from_state_dict_continues_exactly(spec):
    metrics = lambda e: {"loss": [1.0, 0.8, 0.9, 0.9, 0.7, 0.9][e]}  # noqa: E731
    opt = _opt((0.1, 0.03))
    whole = build_scheduler(opt, spec, epochs=6, steps_per_epoch=3)
    expected = list(_run(whole, opt, 6, 3, metrics))

    opt = _opt((0.1, 0.03))
    first = build_scheduler(opt, spec, epochs=6, steps_per_epoch=3)
    _run(first, opt, 3, 3, metrics)
    buffer = io.BytesIO()  # a checkpoint as the loop writes it, read back with weights_only
    torch.save({"opt": opt.state_dict(), "sched": first.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    opt2 = _opt((0.1, 0.03))
    second = build_scheduler(opt2, spec, epochs=6, steps_per_epoch=3)
    opt2.load_state_dict(saved["opt"])
    second.load_state_dict(saved["sched"])
    for e in range(3, 6):
        for _ in range(3):
            opt2.step()
            second.step_batch()
        second.step_epoch(metrics(e))
    assert second.history == pytest.approx(expected, abs=1e-15)
    assert second.lrs == pytest.approx(whole.lrs, abs=1e-15)


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="epochs must be an int >= 1; got 0"):
        build_scheduler(_opt(), "cosine", epochs=0, steps_per_epoch=1)
    with pytest.raises(ValueError, match=r"warmup_epochs must be <= epochs \(2\); got 3"):
        build_scheduler(_opt(), {"name": "cosine", "warmup_epochs": 3}, epochs=2, steps_per_epoch=1)
    with pytest.raises(ValueError, match="factor must be a number in \\(0, 1\\); got 2"):
        SCHEDULES.from_spec({"name": "plateau", "factor": 2})
    with pytest.raises(ValueError, match=r"milestones must be a list of increasing epochs >= 1; got \[5, 5\]"):
        SCHEDULES.from_spec({"name": "step", "milestones": [5, 5]})


# --------------------------------------------------------------------------- LR finder


class _LrLoss:
    """A loss that is a known function of the current learning rate (plus a zero-valued graph)."""

    def __init__(self, optimizer, f):
        self.optimizer, self.f, self.seen = optimizer, f, []

    def __call__(self, outputs, targets):
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.seen.append(lrs)
        return outputs.sum() * 0 + self.f(lrs[0])


def test_find_lr_sweep_suggestion_and_ratios():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.01}], lr=0.1)
    # falls fastest at lr = 10**-3.05, the middle of the segment from grid[29] to grid[30]: a
    # unique steepest step (centred on a grid point, the two steps beside it tie, and rounding picks)
    f = lambda lr: 2.0 - math.tanh(math.log10(lr) + 3.05)  # noqa: E731
    loss = _LrLoss(opt, f)
    data = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    result = find_lr(net, data, loss, opt, start_lr=1e-6, end_lr=1.0, num_iter=61, smooth=1.0)
    grid = 1e-6 * (1e6) ** (np.arange(61) / 60)
    assert result.lrs == pytest.approx(grid.tolist()) and not result.diverged
    assert result.losses == pytest.approx([f(x) for x in grid])
    values = np.array([f(x) for x in grid])
    assert result.suggestion == pytest.approx(grid[np.argmin(np.diff(values))]) == pytest.approx(grid[29])
    assert 10**-3.2 < result.suggestion < 10**-2.8
    assert all(b / a == pytest.approx(0.1) for a, b in loss.seen)  # the bias group kept its ratio
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]  # restored


def test_find_lr_stops_on_divergence():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = _LrLoss(opt, lambda lr: 1.0 if lr < 1e-2 else 100.0)
    data = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    result = find_lr(net, data, loss, opt, start_lr=1e-4, end_lr=1.0, num_iter=5, smooth=1.0)
    assert result.diverged and result.lrs == pytest.approx([1e-4, 1e-3, 1e-2])
    assert result.suggestion is None  # two points before the blow-up
    nan = _LrLoss(opt, lambda lr: float("nan") if lr > 1e-3 else 1.0)
    result = find_lr(net, data, nan, opt, start_lr=1e-4, end_lr=1.0, num_iter=5)
    assert result.diverged and len(result.lrs) == 2


def test_find_lr_restores_model_and_optimizer_state():
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()  # momentum buffers exist
    net.eval()
    model_before = copy.deepcopy(net.state_dict())
    optim_before = copy.deepcopy(opt.state_dict())
    data = [(torch.randn(8, 3), torch.randint(0, 2, (8,))) for _ in range(3)]
    result = find_lr(net, data, torch.nn.functional.cross_entropy, opt, num_iter=10)
    assert len(result.lrs) == 10 and len(result.raw_losses) == 10
    for key, value in model_before.items():
        assert torch.equal(net.state_dict()[key], value), key  # weights and BN statistics
    after = opt.state_dict()
    assert after["param_groups"] == optim_before["param_groups"]
    for k, state in optim_before["state"].items():
        assert torch.equal(after["state"][k]["momentum_buffer"], state["momentum_buffer"])
    assert not net.training


def test_find_lr_bad_arguments_and_empty_batches():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"end_lr must be > start_lr \(0.1\); got 0.01"):
        find_lr(net, [], torch.nn.functional.cross_entropy, opt, start_lr=0.1, end_lr=0.01)
    with pytest.raises(ValueError, match="batches must yield at least one"):
        find_lr(net, [], torch.nn.functional.cross_entropy, opt)


def test_lr_finder_plot_writes_a_png(tmp_path):
    result = LRFinderResult(lrs=[1e-4, 1e-3, 1e-2], losses=[1.0, 0.5, 2.0], suggestion=1e-3)
    path = result.plot(tmp_path / "lr.png")
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path == tmp_path / "lr.png"
    assert result.to_dict()["suggestion"] == 1e-3


def test_freeze_policy_groups_keep_their_stage_rates_through_optimizer_and_schedule():
    freeze = pytest.importorskip("augbal.train._freeze")
    model_mod = pytest.importorskip("augbal.train._model")
    model, _ = model_mod.build_model(3, cifar_stem=True)
    policy = freeze.FREEZE_POLICIES.from_spec({"name": "two_stage", "head_epochs": 1, "lr_mult": {"layer4": 0.1}})
    groups = policy.param_groups(model, lr=1e-3)
    opt = build_optimizer(groups, {"name": "sgd", "lr": 1e-3, "weight_decay": 5e-4, "no_decay_bn_bias": True})
    table = [(g["stage"], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert table == [("layer4", 1e-4, 5e-4), ("layer4", 1e-4, 0.0), ("head", 1e-3, 5e-4), ("head", 1e-3, 0.0)]
    head_bias = [g for g in opt.param_groups if g["stage"] == "head" and g["weight_decay"] == 0.0][0]
    assert [p is model.fc.bias for p in head_bias["params"]] == [True]
    sched = build_scheduler(opt, {"name": "cosine", "min_lr_ratio": 0.5}, epochs=1, steps_per_epoch=2)
    _run(sched, opt, 1, 2)
    assert sched.lrs == pytest.approx([5e-5, 5e-5, 5e-4, 5e-4])  # every stage to half its own rate


def test_find_lr_gives_back_torchs_generator_state():
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    data = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))]
    state = torch.random.get_rng_state()
    expected = torch.rand(3)
    torch.random.set_rng_state(state)
    find_lr(net, data, torch.nn.functional.cross_entropy, opt, num_iter=5)
    assert torch.equal(torch.rand(3), expected)
