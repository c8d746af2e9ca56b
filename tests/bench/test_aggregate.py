"""Aggregation: exact means/stds, seeded bootstrap intervals, paired differences, the recommendation."""

import math

import numpy as np
import pytest

from augbal.bench import RunRecord, aggregate, bootstrap_interval, compare, recommend, shot_accuracy


def _runs(strategy, values, *, split="s3", volatility=None, counts=(4500, 450, 45), error=None):
    out = []
    for seed, v in enumerate(values):
        out.append(RunRecord.from_dict({
            "strategy": strategy, "split": split, "seed": seed, "train_counts": counts,
            "scores": {} if error else {"balanced_accuracy": v, "macro_f1": v - 0.05, "recall": [0.9, 0.6, v / 2], "ece": 0.1},
            "volatility": volatility, "noise_floor": 0.05, "wall_s": 10.0 + seed, "error": error,
        }))
    return out


def test_mean_std_and_interval_per_strategy_and_split():
    records = _runs("ce", [0.30, 0.34, 0.38]) + _runs("la", [0.70, 0.72, 0.74], volatility=0.02)
    table = aggregate(records, n_boot=2000, seed=3)
    ce = table[("s3", "ce")]["balanced_accuracy"]
    assert ce.n == 3 and ce.mean == pytest.approx(0.34) and ce.std == pytest.approx(0.04)  # ddof=1
    assert ce.values == (0.30, 0.34, 0.38)
    assert 0.30 - 1e-12 <= ce.ci[0] < 0.34 < ce.ci[1] <= 0.38 + 1e-12
    assert table[("s3", "la")]["minority_recall"].mean == pytest.approx(0.36)
    assert table[("s3", "la")]["volatility_ratio"].mean == pytest.approx(0.4)
    assert math.isnan(table[("s3", "ce")]["volatility"].mean) and table[("s3", "ce")]["volatility"].text() == "n/a"
    assert ce.text() == "0.340 ± 0.040"
    assert aggregate(records, n_boot=2000, seed=3) == table  # seeded: the same intervals


def test_failed_runs_are_left_out_of_the_numbers():
    records = _runs("ce", [0.3, 0.4]) + _runs("ce", [0.9], error="RuntimeError: boom")
    assert [r.ok for r in records] == [True, True, False]
    assert aggregate(records)[("s3", "ce")]["balanced_accuracy"].n == 2


def test_bootstrap_interval_matches_a_direct_computation():
    values = [0.1, 0.5, 0.3, 0.9]
    lo, hi = bootstrap_interval(values, level=0.9, n_boot=5000, seed=7)
    rng = np.random.default_rng(7)
    means = np.asarray(values)[rng.integers(0, 4, size=(5000, 4))].mean(axis=1)
    assert (lo, hi) == tuple(np.quantile(means, [0.05, 0.95]))
    assert bootstrap_interval([0.4]) == (0.4, 0.4)
    assert all(math.isnan(v) for v in bootstrap_interval([]))
    with pytest.raises(ValueError, match="level must be"):
        bootstrap_interval(values, level=1.5)


def test_paired_differences_use_only_the_seeds_both_ran():
    base = _runs("wce:inverse", [0.50, 0.60, 0.55])
    other = _runs("la", [0.70, 0.65])  # seeds 0 and 1
    (c,) = compare(base + other, baseline="wce:inverse", n_boot=1000)
    assert c.strategy == "la" and c.seeds == (0, 1)
    assert c.diff == pytest.approx(((0.70 - 0.50) + (0.65 - 0.60)) / 2)
    assert c.ci == (pytest.approx(0.05), pytest.approx(0.20)) and c.significant
    assert compare(base, baseline="ce") == []


def test_shot_groups():
    got = shot_accuracy([1.0, 0.5, 0.25, 0.0], [101, 100, 20, 19])
    assert got == {"many": 1.0, "medium": pytest.approx(0.375), "few": 0.0}
    assert math.isnan(shot_accuracy([0.5], [5000])["few"])
    with pytest.raises(ValueError, match="equally long"):
        shot_accuracy([0.5], [1, 2])


def test_recommendation_names_the_best_with_interval_seeds_and_calm():
    records = _runs("wce:inverse", [0.50, 0.60, 0.55], volatility=0.12) + _runs("la", [0.70, 0.72, 0.71], volatility=0.03)
    text = recommend(records, "s3", n_boot=1000)
    lo, hi = bootstrap_interval([0.20, 0.12, 0.16], n_boot=1000)
    assert text == (f"On s3, la beats wce:inverse by 16.0 points of balanced accuracy (95% CI [{lo * 100:.1f}, {hi * 100:.1f}]) "
                    "over 3 seeds; its validation loss is 4.0x calmer.")
    assert recommend(_runs("wce:inverse", [0.5]), "s3") .startswith("On s3, wce:inverse is the best")
    assert recommend(records, "other") == "On other, no run finished: nothing to recommend."


def test_record_needs_its_keys():
    with pytest.raises(ValueError, match="missing seed"):
        RunRecord.from_dict({"strategy": "ce", "split": "s"})


def test_a_class_absent_from_the_scored_split_is_left_out_of_its_shot_group():
    import math

    from augbal.bench._aggregate import shot_accuracy

    got = shot_accuracy([0.9, None, 0.5, 0.3], [5000, 500, 10, 12])
    assert got["many"] == 0.9 and math.isnan(got["medium"]) and got["few"] == pytest.approx(0.4)
