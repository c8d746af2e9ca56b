"""Feature-space oversampling: imbalanced-learn's SMOTE family on cached embeddings.

A head trained on cached features (``augbal.train.FeatureCache``) can see synthetic
minority samples interpolated between real ones in feature space, where interpolation
is meaningful, instead of in pixel space. The resamplers here are thin, registered
wrappers of ``imblearn.over_sampling.SMOTE`` / ``ADASYN`` / ``BorderlineSMOTE``: the
target counts speak imbalanced-learn's ``sampling_strategy`` (checked by
``augbal.sampling.check_sampling_strategy``, so dict keys may be class names), the
random state comes from an explicit seed, and the result is imbalanced-learn's own:
the original rows first, in order, then the synthetic rows class by class.

Neighbours: SMOTE interpolates between a minority sample and one of its ``k_neighbors``
nearest neighbours *within its class*, which needs ``k_neighbors + 1`` samples of that
class. A class with fewer samples (but at least 2) has ``k_neighbors`` clamped to its
count - 1, with a :class:`NeighborsClampedWarning` naming the class; a class of one
sample cannot be interpolated and is an error naming it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from augbal._registry import Registry
from augbal._validation import check_choice, check_int

__all__ = [
    "ADASYNResampler",
    "BorderlineSMOTEResampler",
    "FEATURE_RESAMPLERS",
    "FeatureResampler",
    "NeighborsClampedWarning",
    "SMOTEResampler",
    "resample_features",
]


class NeighborsClampedWarning(UserWarning):
    """A class has too few samples for the asked number of neighbours; fewer were used."""


class FeatureResampler:
    """Base class of the feature-space oversamplers (imbalanced-learn wrappers).

    Subclasses register with ``@FEATURE_RESAMPLERS.register("name")`` and implement one
    hook, ``_sampler(strategy, k_neighbors, random_state)``, returning the configured
    imbalanced-learn sampler. After :meth:`fit_resample`, ``sampling_strategy_`` holds
    the final count of every class asked for and ``k_neighbors_`` the neighbours used.

    Args:
        sampling_strategy: any imbalanced-learn over-sampling form (``'auto'``,
            ``'minority'``, ``'not majority'``, ``'all'``, a ``{class: final count}``
            dict, a float ratio for two classes); plain data, so it fits a spec.
        k_neighbors: neighbours within the class that synthetic samples interpolate towards.
    """

    name: ClassVar[str] = ""

    def __init__(self, *, sampling_strategy: Any = "auto", k_neighbors: int = 5) -> None:
        check_int("k_neighbors", k_neighbors, low=1)
        if callable(sampling_strategy):
            raise ValueError(
                "sampling_strategy must be plain data here (a string, a {class: count} dict or a float), "
                f"so that the resampler has a spec; got the callable {sampling_strategy!r}"
            )
        self.sampling_strategy = sampling_strategy
        self.k_neighbors = int(k_neighbors)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain data."""
        return {"sampling_strategy": self.sampling_strategy, "k_neighbors": self.k_neighbors}

    def to_dict(self) -> dict[str, Any]:
        """The spec ``{"name": ..., **params}``; ``FEATURE_RESAMPLERS.from_spec`` rebuilds it."""
        return FEATURE_RESAMPLERS.spec(self, self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- the public method -----------------------------------------------------------
    def fit_resample(
        self, features: Any, labels: Any, *, seed: int, classes: Sequence[str] | None = None
    ) -> tuple[Any, Any]:
        """Oversample ``features`` (``(N, ...)``; numpy or torch) to the target class counts.

        Args:
            features: one row per sample; rows of any shape are flattened for the
                neighbour search and the result has the same row shape, dtype, array
                type (numpy / torch) and device.
            labels: ``N`` integer class indices.
            seed: the random state (an int in ``[0, 2**32)``).
            classes: class names in index order (names in a dict strategy and in messages).

        Returns:
            ``(features, labels)``: the ``N`` originals, in order, then the synthetic rows.

        Raises:
            ValueError: bad labels, seed or strategy; a class to oversample with one sample.
        """
        from augbal.sampling import check_sampling_strategy

        check_int("seed", seed, low=0, high=2**32 - 1)
        X, restore = _as_matrix(features)
        y = _as_labels(labels, len(X))
        counts = np.bincount(y, minlength=0 if classes is None else len(classes))
        targets = check_sampling_strategy(self.sampling_strategy, counts, kind="over", classes=classes)
        grow = {c: n for c, n in targets.items() if n > counts[c]}
        self.sampling_strategy_ = targets
        self.k_neighbors_ = self.k_neighbors
        if not grow:
            return restore(X, y)
        def label(c: int) -> str:
            return repr(classes[c]) if classes is not None else str(c)

        for c in grow:
            if counts[c] < 2:
                raise ValueError(
                    f"class {label(c)} must have at least 2 samples to be oversampled by interpolation "
                    f"({self.name}); got {int(counts[c])}"
                )
        small = [c for c in grow if counts[c] <= self.k_neighbors]
        k = min([self.k_neighbors] + [int(counts[c]) - 1 for c in small])
        if small:
            listing = ", ".join(f"class {label(c)} has {int(counts[c])}" for c in small)
            warnings.warn(
                f"k_neighbors={self.k_neighbors} needs {self.k_neighbors + 1} samples in every class to "
                f"oversample; {listing}: using k_neighbors={k}",
                NeighborsClampedWarning,
                stacklevel=2,
            )
        self.k_neighbors_ = k
        sampler = self._sampler(dict(sorted(grow.items())), k, int(seed))
        X_out, y_out = sampler.fit_resample(X, y)
        return restore(np.asarray(X_out, dtype=X.dtype), np.asarray(y_out, dtype=np.int64))

    # -- the hook ----------------------------------------------------------------------
    def _sampler(self, strategy: dict[int, int], k_neighbors: int, random_state: int) -> Any:
        raise NotImplementedError


FEATURE_RESAMPLERS: Registry[FeatureResampler] = Registry("feature resampler", base=FeatureResampler)
"""Feature-space oversamplers by name: ``smote``, ``adasyn``, ``borderline_smote``."""


@FEATURE_RESAMPLERS.register("smote")
class SMOTEResampler(FeatureResampler):
    """``smote``: imbalanced-learn's ``SMOTE`` (Chawla et al., 2002); exact target counts.

    Example:
        >>> X = np.arange(20, dtype=np.float32).reshape(10, 2)
        >>> y = np.array([0] * 7 + [1] * 3)
        >>> Xr, yr = SMOTEResampler(k_neighbors=2).fit_resample(X, y, seed=0)
        >>> np.bincount(yr).tolist(), bool((Xr[:10] == X).all())
        ([7, 7], True)
    """

    def _sampler(self, strategy: dict[int, int], k_neighbors: int, random_state: int) -> Any:
        from imblearn.over_sampling import SMOTE

        return SMOTE(sampling_strategy=strategy, k_neighbors=k_neighbors, random_state=random_state)


@FEATURE_RESAMPLERS.register("adasyn")
class ADASYNResampler(FeatureResampler):
    """``adasyn``: imbalanced-learn's ``ADASYN`` (He et al., 2008; ``n_neighbors=k_neighbors``).

    More synthetic samples near the class border; the counts reach the targets only
    approximately (ADASYN spreads them by a density ratio and rounds).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 3)).astype(np.float32); y = np.array([0] * 30 + [1] * 10)
        >>> Xr, yr = ADASYNResampler(k_neighbors=3).fit_resample(X, y, seed=0)
        >>> bool(abs(int((yr == 1).sum()) - 30) <= 3)
        True
    """

    def _sampler(self, strategy: dict[int, int], k_neighbors: int, random_state: int) -> Any:
        from imblearn.over_sampling import ADASYN

        return ADASYN(sampling_strategy=strategy, n_neighbors=k_neighbors, random_state=random_state)


@FEATURE_RESAMPLERS.register("borderline_smote")
class BorderlineSMOTEResampler(FeatureResampler):
    """``borderline_smote``: imbalanced-learn's ``BorderlineSMOTE`` (Han et al., 2005).

    Only minority samples "in danger" (more than half, not all, of their ``m_neighbors``
    nearest neighbours in other classes) seed synthetic samples; a class with none in
    danger gets none.

    Args:
        m_neighbors: neighbours (over all classes) that decide whether a sample is in danger.
        kind: ``"borderline-1"`` or ``"borderline-2"``.

    Example:
        >>> BorderlineSMOTEResampler(kind="borderline-2").to_dict()["kind"]
        'borderline-2'
    """

    def __init__(
        self, *, sampling_strategy: Any = "auto", k_neighbors: int = 5, m_neighbors: int = 10, kind: str = "borderline-1"
    ) -> None:
        super().__init__(sampling_strategy=sampling_strategy, k_neighbors=k_neighbors)
        check_int("m_neighbors", m_neighbors, low=1)
        check_choice("kind", kind, ("borderline-1", "borderline-2"))
        self.m_neighbors = int(m_neighbors)
        self.kind = kind

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "m_neighbors": self.m_neighbors, "kind": self.kind}

    def _sampler(self, strategy: dict[int, int], k_neighbors: int, random_state: int) -> Any:
        from imblearn.over_sampling import BorderlineSMOTE

        return BorderlineSMOTE(
            sampling_strategy=strategy,
            k_neighbors=k_neighbors,
            m_neighbors=self.m_neighbors,
            kind=self.kind,
            random_state=random_state,
        )


def resample_features(
    features: Any, labels: Any, spec: Any, *, seed: int, classes: Sequence[str] | None = None
) -> tuple[Any, Any]:
    """Oversample cached features with the resampler ``spec`` names (see ``FeatureResampler.fit_resample``).

    Example:
        >>> import torch
        >>> X = torch.randn(12, 4, generator=torch.Generator().manual_seed(0)); y = torch.tensor([0] * 9 + [1] * 3)
        >>> Xr, yr = resample_features(X, y, {"name": "smote", "k_neighbors": 2}, seed=0)
        >>> tuple(Xr.shape), torch.bincount(yr).tolist(), bool(torch.equal(Xr[:12], X))
        ((18, 4), [9, 9], True)
    """
    resampler = FEATURE_RESAMPLERS.from_spec(spec)
    return resampler.fit_resample(features, labels, seed=seed, classes=classes)


# --------------------------------------------------------------------------- helpers


def _as_matrix(features: Any) -> tuple[np.ndarray, Any]:
    """``features`` as a float ``(N, D)`` numpy matrix and the function that turns a result back."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(features, torch.Tensor):
        shape, dtype, device = tuple(features.shape[1:]), features.dtype, features.device
        if not dtype.is_floating_point:
            raise ValueError(f"features must be floating point; got {dtype}")
        X = features.detach().reshape(len(features), -1).to("cpu", torch.float32).numpy()

        def restore(X_out: np.ndarray, y_out: np.ndarray) -> tuple[Any, Any]:
            Xt = torch.from_numpy(np.ascontiguousarray(X_out)).reshape(-1, *shape).to(device, dtype)
            return Xt, torch.from_numpy(y_out).to(device)

        return X, restore
    arr = np.asarray(features)
    if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"features must be a floating-point (N, ...) array; got dtype {arr.dtype}, shape {arr.shape}")
    shape, dtype = arr.shape[1:], arr.dtype
    X = arr.reshape(len(arr), -1).astype(np.float32 if dtype == np.float16 else dtype, copy=False)

    def restore_np(X_out: np.ndarray, y_out: np.ndarray) -> tuple[Any, Any]:
        return X_out.reshape(-1, *shape).astype(dtype, copy=False), y_out

    return X, restore_np


def _as_labels(labels: Any, n: int) -> np.ndarray:
    try:
        import torch

        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != n or (y.size and not np.issubdtype(y.dtype, np.integer)) or (y.size and y.min() < 0):
        raise ValueError(f"labels must be {n} non-negative integer class indices, one per row; got {labels!r}")
    return y.astype(np.int64)
