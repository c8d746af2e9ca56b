"""Feature-space oversampling: the SMOTE family of imbalanced-learn on cached embeddings."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from imblearn.over_sampling import SMOTE

from augbal.train._features import (
    FEATURE_RESAMPLERS,
    BorderlineSMOTEResampler,
    FeatureResampler,
    NeighborsClampedWarning,
    resample_features,
)

torch.set_num_threads(1)


def _data(counts=(40, 12, 6), dim=8, seed=0):
    """Three overlapping Gaussian blobs (so borderline samples exist)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    X = (rng.normal(size=(len(y), dim)) + 0.8 * y[:, None]).astype(np.float32)
    return X, y


def test_registry_names_and_specs_round_trip() -> None:
    assert FEATURE_RESAMPLERS.names() == ["adasyn", "borderline_smote", "smote"]
    for name in FEATURE_RESAMPLERS:
        r = FEATURE_RESAMPLERS.from_spec(name, k_neighbors=3, sampling_strategy={"1": 20})
        spec = r.to_dict()
        assert spec["name"] == name and spec["k_neighbors"] == 3
        again = FEATURE_RESAMPLERS.from_spec(spec)
        assert type(again) is type(r) and again.to_dict() == spec
        assert pickle.loads(pickle.dumps(r)).to_dict() == spec
    assert BorderlineSMOTEResampler().to_dict() == {
        "name": "borderline_smote",
        "sampling_strategy": "auto",
        "k_neighbors": 5,
        "m_neighbors": 10,
        "kind": "borderline-1",
    }


def test_smote_exact_counts_originals_first_and_imblearns_own_result() -> None:
    X, y = _data()
    Xr, yr = resample_features(X, y, {"name": "smote", "k_neighbors": 3}, seed=7)
    assert np.bincount(yr).tolist() == [40, 40, 40]
    assert Xr.shape == (120, 8) and Xr.dtype == np.float32 and yr.dtype == np.int64
    assert np.array_equal(Xr[:58], X) and np.array_equal(yr[:58], y)
    assert yr[58:].tolist() == [1] * 28 + [2] * 34
    ref_X, ref_y = SMOTE(k_neighbors=3, random_state=7).fit_resample(X, y)
    assert np.array_equal(Xr, ref_X) and np.array_equal(yr, ref_y)


def test_dict_and_named_strategies() -> None:
    X, y = _data()
    _, yr = resample_features(X, y, {"name": "smote", "sampling_strategy": {2: 20}, "k_neighbors": 3}, seed=0)
    assert np.bincount(yr).tolist() == [40, 12, 20]
    _, yr = resample_features(
        X, y, {"name": "smote", "sampling_strategy": {"cat": 30}, "k_neighbors": 3}, seed=0, classes=["deer", "dog", "cat"]
    )
    assert np.bincount(yr).tolist() == [40, 12, 30]
    _, yr = resample_features(X, y, {"name": "smote", "sampling_strategy": "minority", "k_neighbors": 3}, seed=0)
    assert np.bincount(yr).tolist() == [40, 12, 40]


def test_seeded_and_reproducible() -> None:
    X, y = _data()
    a = resample_features(X, y, "smote", seed=1)[0]
    b = resample_features(X, y, "smote", seed=1)[0]
    c = resample_features(X, y, "smote", seed=2)[0]
    assert np.array_equal(a, b) and not np.array_equal(a[58:], c[58:])


def test_synthetic_rows_lie_between_same_class_samples() -> None:
    X, y = _data(counts=(30, 5), dim=2)
    Xr, yr = resample_features(X, y, {"name": "smote", "k_neighbors": 4}, seed=0)
    lo, hi = X[y == 1].min(0), X[y == 1].max(0)
    assert ((Xr[35:] >= lo - 1e-6) & (Xr[35:] <= hi + 1e-6)).all()


def test_torch_activations_keep_shape_dtype_and_type() -> None:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(24, 4, 2, 2, generator=g).half()
    y = torch.tensor([0] * 18 + [1] * 6)
    Xr, yr = resample_features(X, y, {"name": "smote", "k_neighbors": 3}, seed=0)
    assert Xr.shape == (36, 4, 2, 2) and Xr.dtype == torch.float16 and yr.dtype == torch.int64
    assert torch.equal(Xr[:24], X) and torch.bincount(yr).tolist() == [18, 18]


def test_adasyn_and_borderline_oversample_the_minority() -> None:
    X, y = _data()
    Xa, ya = resample_features(X, y, {"name": "adasyn", "k_neighbors": 3}, seed=0)
    counts = np.bincount(ya)
    assert counts[0] == 40 and abs(counts[1] - 40) <= 4 and abs(counts[2] - 40) <= 4
    assert np.array_equal(Xa[:58], X)
    Xb, yb = resample_features(X, y, {"name": "borderline_smote", "k_neighbors": 3}, seed=0)
    counts = np.bincount(yb)
    assert counts[0] == 40 and counts[1] > 12 and counts[2] > 6 and np.array_equal(Xb[:58], X)


@pytest.mark.parametrize("name", ["smote", "adasyn", "borderline_smote"])
def test_k_neighbors_is_clamped_to_the_smallest_class_with_a_warning(name: str) -> None:
    X, y = _data(counts=(40, 12, 4))
    r = FEATURE_RESAMPLERS.from_spec(name)  # k_neighbors=5 > 4 - 1
    with pytest.warns(NeighborsClampedWarning, match=r"k_neighbors=5 needs 6 samples .*class 'cat' has 4: using k_neighbors=3"):
        Xr, yr = r.fit_resample(X, y, seed=0, classes=["deer", "dog", "cat"])
    assert r.k_neighbors_ == 3 and r.k_neighbors == 5 and r.to_dict()["k_neighbors"] == 5
    assert (yr == 2).sum() > 4
    assert r.sampling_strategy_ == {0: 40, 1: 40, 2: 40}


def test_a_one_sample_class_is_an_error_naming_it() -> None:
    X, y = _data(counts=(20, 5, 1))
    with pytest.raises(ValueError, match=r"class 'cat' must have at least 2 samples to be oversampled .*\(smote\); got 1"):
        resample_features(X, y, "smote", seed=0, classes=["deer", "dog", "cat"])
    # a class that is not oversampled may be that small
    _, yr = resample_features(X, y, {"name": "smote", "sampling_strategy": {1: 20}, "k_neighbors": 3}, seed=0)
    assert np.bincount(yr).tolist() == [20, 20, 1]


def test_nothing_to_do_returns_the_input() -> None:
    X, y = _data(counts=(5, 5))
    Xr, yr = resample_features(X, y, "smote", seed=0)
    assert np.array_equal(Xr, X) and np.array_equal(yr, y)


def test_bad_input_is_a_clear_error() -> None:
    X, y = _data()
    with pytest.raises(ValueError, match="k_neighbors must be an int >= 1; got 0"):
        FEATURE_RESAMPLERS.from_spec({"name": "smote", "k_neighbors": 0})
    with pytest.raises(ValueError, match="sampling_strategy must be plain data"):
        FEATURE_RESAMPLERS.from_spec("smote", sampling_strategy=lambda y: {1: 3})
    with pytest.raises(ValueError, match=r"kind must be one of 'borderline-1', 'borderline-2'; got 'b3'"):
        BorderlineSMOTEResampler(kind="b3")
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]; got -1"):
        resample_features(X, y, "smote", seed=-1)
    with pytest.raises(ValueError, match="labels must be 58 non-negative integer class indices"):
        resample_features(X, y[:10], "smote", seed=0)
    with pytest.raises(ValueError, match="features must be a floating-point"):
        resample_features(X.astype(np.int64), y, "smote", seed=0)
    with pytest.raises(KeyError, match="unknown feature resampler 'tomek'"):
        resample_features(X, y, "tomek", seed=0)
    with pytest.raises(ValueError, match="unknown class 'cow'"):
        resample_features(X, y, {"name": "smote", "sampling_strategy": {"cow": 50}}, seed=0, classes=["a", "b", "c"])
    with pytest.raises(NotImplementedError):
        FeatureResampler()._sampler({}, 1, 0)
