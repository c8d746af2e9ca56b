"""The ResNet-18 of ``augbal train``: weights, their metadata, the head, and the stages.

:func:`build_model` returns a torchvision ``resnet18`` with its head replaced for ``C``
classes, and a :class:`WeightsInfo` saying where the weights came from (their sha256)
and which input they expect (size, mean, std): the augmentation policy and the feature
caches read these, never a default. Weights are one of

- ``"imagenet"``: torchvision's ``ResNet18_Weights.IMAGENET1K_V1``, read from torchvision's
  own cache (``$TORCH_HOME/hub/checkpoints``). Nothing is downloaded unless
  ``download=True`` (the recipe's ``model.download``); without the file, a clear error
  says where it was looked for and how to pass a local file.
- a path to a ``state_dict`` file, loaded with ``torch.load(weights_only=True)``. Head keys
  whose shape (or layer type) does not fit the new head are dropped with a
  :class:`HeadDroppedWarning`; any other missing, unexpected or mis-shaped key is a
  :class:`WeightsError`. The input metadata comes from a sidecar JSON next to the file
  (``<file>.json`` or ``<stem>.json``, keys ``input_size`` or ``size``, ``mean``, ``std``),
  else from a table of known weights keyed by sha256 (:data:`KNOWN_WEIGHTS`), key by key;
  the explicit ``input_size`` / ``mean`` / ``std`` arguments override both.
- ``"none"``: random initialisation.

Every random draw of :func:`build_model` (the initial weights, the new head) comes from
the CPU generator seeded with ``seed`` inside ``torch.random.fork_rng``, so the global
RNG is left as it was and the same seed gives the same model.

Stages, in forward order: :data:`STAGES` = stem (conv1, bn1, relu, maxpool), layer1 ..
layer4, head (``model.fc``). :func:`stage_modules` maps each to its modules and
:func:`head_linear` finds the (linear or cosine) layer inside the head.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from augbal._registry import plain_data
from augbal._validation import check_bool, check_choice, check_int, check_real, check_seed, is_real

__all__ = [
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "KNOWN_WEIGHTS",
    "STAGES",
    "CosineLinear",
    "HeadDroppedWarning",
    "WeightsError",
    "WeightsInfo",
    "build_model",
    "file_sha256",
    "head_linear",
    "stage_modules",
]

STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4", "head")
"""The stage names of a ResNet-18, in forward order."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

KNOWN_WEIGHTS: dict[str, dict[str, Any]] = {
    # the shared seedlike-3 backbone: resnet18 pretrained on the 7 CIFAR-10 classes other
    # than cat, deer and dog, at 32 px upsampled to 64 px (../shared/weights/README.md)
    "87360c9c6dd5f613bd36b9212df2d5759aeedd154b7fcd59cbb2353931175c02": {
        "description": "resnet18-cifar7-64px (seedlike-3 backbone)",
        "input_size": 64,
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
    },
}
"""Input metadata of known state_dict files, keyed by the file's sha256."""

_HEAD_KINDS = ("linear", "cosine")
_FEATURES = 512  # width of resnet18's pooled features


class WeightsError(ValueError):
    """Weights that cannot be loaded as asked: a bad file, mismatched keys, missing metadata."""


class HeadDroppedWarning(UserWarning):
    """A weights file's head did not fit the new head and was dropped (the keys are listed)."""


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from and the input they expect.

    Attributes:
        source: ``"imagenet"``, ``"none"`` or the path of the state_dict file.
        sha256: the sha256 of the weights file (``None`` for ``"none"``).
        input_size: the side of the square input, in pixels.
        mean: the per-channel normalisation mean (RGB, on a 0..1 scale).
        std: the per-channel normalisation std.
        dropped: the file's state_dict keys dropped because they did not fit the head.

    Example:
        >>> WeightsInfo("none", None, 32, CIFAR_MEAN, CIFAR_STD).to_dict()["mean"]
        [0.4914, 0.4822, 0.4465]
    """

    source: str
    sha256: str | None
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dropped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (tuples become lists), for JSON and the run folder."""
        return plain_data(asdict(self), what="WeightsInfo")


class CosineLinear(nn.Module):
    """A normalised linear layer: the cosine of normalised features and normalised class weights.

    As LDAM's ``NormedLinear`` (Cao et al. 2019): outputs lie in ``[-1, 1]`` and carry no
    scale; the loss applies it (LDAM's ``s``), so pair ``head="cosine"`` with a loss that
    scales its logits. The weight has ``nn.Linear``'s shape ``(out_features, in_features)``
    and there is no bias.

    Example:
        >>> layer = CosineLinear(4, 2)
        >>> bool(layer(torch.ones(3, 4)).abs().max() <= 1.0)
        True
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, low=1)
        self.out_features = check_int("out_features", out_features, low=1)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation of the weight (from the global RNG, as nn.Linear)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


# --------------------------------------------------------------------------- stages


def _unwrap(model: nn.Module) -> nn.Module:
    """The ResNet inside a DDP / AveragedModel (``.module``) or ``torch.compile`` (``._orig_mod``) wrapper."""
    seen = 0
    while not hasattr(model, "conv1") and seen < 4:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        model, seen = inner, seen + 1
    return model


def stage_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The modules of each stage of a torchvision ResNet, keyed by :data:`STAGES` in forward order.

    A model wrapped by DDP, ``AveragedModel`` or ``torch.compile`` is unwrapped first.

    Example:
        >>> model, _ = build_model(3, cifar_stem=True)
        >>> {name: len(mods) for name, mods in stage_modules(model).items()}
        {'stem': 4, 'layer1': 1, 'layer2': 1, 'layer3': 1, 'layer4': 1, 'head': 1}

    Raises:
        TypeError: for a model without a ResNet's ``conv1 bn1 relu maxpool layer1..4 fc``.
    """
    net = _unwrap(model)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
    missing = [n for n in names if not isinstance(getattr(net, n, None), nn.Module)]
    if missing:
        raise TypeError(
            f"stages are defined for a torchvision ResNet; {type(net).__name__} has no {', '.join(missing)}"
        )
    return {
        "stem": [net.conv1, net.bn1, net.relu, net.maxpool],
        "layer1": [net.layer1],
        "layer2": [net.layer2],
        "layer3": [net.layer3],
        "layer4": [net.layer4],
        "head": [net.fc],
    }


def head_linear(model: nn.Module) -> nn.Linear | CosineLinear:
    """The linear (or cosine) layer of the head: ``model.fc``, or the last such layer in it.

    Example:
        >>> model, _ = build_model(3, dropout=0.2)
        >>> head_linear(model)
        Linear(in_features=512, out_features=3, bias=True)
    """
    head = stage_modules(model)["head"][0]
    layers = [m for m in head.modules() if isinstance(m, (nn.Linear, CosineLinear))]
    if not layers:
        raise TypeError(f"the head has no linear or cosine layer; got {head!r}")
    return layers[-1]


# --------------------------------------------------------------------------- building


def build_model(
    num_classes: int,
    *,
    weights: str | os.PathLike[str] = "none",
    cifar_stem: bool = False,
    dropout: float = 0.0,
    head: str = "linear",
    input_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    download: bool = False,
    seed: int = 0,
) -> tuple[nn.Module, WeightsInfo]:
    """A torchvision ``resnet18`` for ``num_classes`` classes, and what its weights are.

    Args:
        num_classes: the number of classes ``C`` of the new head.
        weights: ``"imagenet"``, ``"none"`` or the path of a state_dict file (see the module doc).
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (32 px training from scratch).
        dropout: with ``p > 0`` the head is ``nn.Sequential(nn.Dropout(p), layer)``.
        head: ``"linear"`` (``nn.Linear(512, C)``) or ``"cosine"`` (:class:`CosineLinear`;
            the loss applies the scale).
        input_size, mean, std: the input the weights expect; they override the metadata of
            the weights (required for a file whose metadata is not known).
        download: let torchvision download the ImageNet weights when they are not cached.
        seed: seeds the random initialisation (and the new head) on a forked CPU RNG.

    Returns:
        ``(model, info)``: the model on the CPU in train mode, and its :class:`WeightsInfo`.

    Example:
        >>> model, info = build_model(3, cifar_stem=True, seed=0)
        >>> model(torch.zeros(2, 3, 32, 32)).shape, info.input_size, info.sha256
        (torch.Size([2, 3]), 32, None)

    Raises:
        ValueError: a bad argument (the message names it).
        FileNotFoundError: a weights file that does not exist, or ImageNet weights not cached
            with ``download=False``.
        WeightsError: a file that is not a state_dict, keys that do not fit, or missing metadata.
    """
    check_int("num_classes", num_classes, low=1)
    check_bool("cifar_stem", cifar_stem)
    check_real("dropout", dropout, low=0, high=1, high_open=True)
    check_choice("head", head, _HEAD_KINDS)
    check_int("input_size", input_size, low=1, allow_none=True)
    explicit = {
        "input_size": input_size,
        "mean": None if mean is None else _triple("mean", mean),
        "std": None if std is None else _triple("std", std, positive=True),
    }
    check_bool("download", download)
    check_seed("seed", seed)
    if not isinstance(weights, (str, os.PathLike)) or (isinstance(weights, str) and not weights):
        raise ValueError(f"weights must be 'imagenet', 'none' or the path of a state_dict file; got {weights!r}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _resnet18(num_classes, cifar_stem=cifar_stem, dropout=float(dropout), head=head)

    if isinstance(weights, str) and weights == "none":
        meta: dict[str, Any] = (
            {"input_size": 32, "mean": CIFAR_MEAN, "std": CIFAR_STD}
            if cifar_stem
            else {"input_size": 224, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        )
        source, sha, dropped = "none", None, ()
    elif isinstance(weights, str) and weights == "imagenet":
        path, meta = _imagenet_file(download)
        source, sha = "imagenet", file_sha256(path)
        dropped = _load_state(model, _read_state(path), source=f"ImageNet weights {path}", warn=False)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights file {os.fspath(weights)!r} does not exist (weights are 'imagenet', 'none' "
                "or the path of a state_dict file)"
            )
        source, sha = os.fspath(weights), file_sha256(path)
        dropped = _load_state(model, _read_state(path), source=f"weights file {path}", warn=True)
        meta = _file_metadata(path, sha, explicit)
    meta = {**meta, **{k: v for k, v in explicit.items() if v is not None}}
    info = WeightsInfo(
        source=source,
        sha256=sha,
        input_size=int(meta["input_size"]),
        mean=tuple(float(v) for v in meta["mean"]),  # type: ignore[arg-type]
        std=tuple(float(v) for v in meta["std"]),  # type: ignore[arg-type]
        dropped=tuple(dropped),
    )
    return model.train(), info


def _resnet18(num_classes: int, *, cifar_stem: bool, dropout: float, head: str) -> nn.Module:
    """The architecture, initialised from the (already seeded) global CPU RNG."""
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=num_classes)
    if cifar_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    layer: nn.Module = model.fc if head == "linear" else CosineLinear(_FEATURES, num_classes)
    model.fc = nn.Sequential(nn.Dropout(dropout), layer) if dropout > 0 else layer
    return model


def _triple(name: str, value: Any, *, positive: bool = False, where: str = "") -> tuple[float, float, float]:
    """Three finite numbers (``> 0`` when ``positive``), one per RGB channel."""
    ok = isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 3
    ok = ok and all(is_real(v) and math.isfinite(float(v)) and (float(v) > 0 or not positive) for v in value)
    if not ok:
        rule = "three numbers > 0 (one per RGB channel)" if positive else "three numbers (one per RGB channel)"
        raise ValueError(f"{name}{where} must be {rule}; got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, as hex.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     file_sha256(f.name)[:12]
        'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- ImageNet weights


def _imagenet_file(download: bool) -> tuple[Path, dict[str, Any]]:
    """The cached IMAGENET1K_V1 file (downloaded only when ``download``) and its input metadata."""
    from torchvision.models import ResNet18_Weights

    w = ResNet18_Weights.IMAGENET1K_V1
    preset = w.transforms()
    meta = {"input_size": int(preset.crop_size[0]), "mean": tuple(preset.mean), "std": tuple(preset.std)}
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    path = cache / os.path.basename(w.url)
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"the ImageNet weights are not in torchvision's cache: {path} does not exist and nothing is "
                f"downloaded without asking. Either download them once (download=True, or model.download: true "
                f"in the recipe; the cache is $TORCH_HOME/hub/checkpoints, TORCH_HOME defaults to "
                f"~/.cache/torch), copy {w.url} to {path}, or pass a local file as the weights "
                f"(weights: /path/to/resnet18.pth)"
            )
        cache.mkdir(parents=True, exist_ok=True)
        torch.hub.load_state_dict_from_url(w.url, model_dir=os.fspath(cache), progress=True, check_hash=True)
    return path, meta


# --------------------------------------------------------------------------- state_dict files


def _read_state(path: Path) -> dict[str, Tensor]:
    """A state_dict from ``path`` (``weights_only=True``); ``{"state_dict": ...}`` / ``{"model": ...}``
    checkpoints are unwrapped and a DDP ``module.`` prefix is removed."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # an unpickling error, a truncated file, a non-torch file
        raise WeightsError(
            f"weights file {path} could not be read as a state_dict with torch.load(weights_only=True): {exc}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"weights file {path} must hold a state_dict ({{name: tensor}}); got {type(state).__name__}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _is_head(key: str) -> bool:
    return key.startswith("fc.")


def _listing(keys: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys)} in all)"


def _load_state(model: nn.Module, state: dict[str, Tensor], *, source: str, warn: bool) -> list[str]:
    """Load ``state`` into ``model``; returns the file's head keys dropped (warned about when ``warn``).

    A head saved with dropout (``fc.1.weight``) reads as ``fc.weight``. The file's head is
    loaded when its keys and shapes are exactly those of the new head (a checkpoint of the
    same head), and dropped otherwise. Every other key must match by name and shape.
    """
    own = model.state_dict()
    head_prefix = "fc.1." if isinstance(model.fc, nn.Sequential) else "fc."
    body = {k: v for k, v in state.items() if not _is_head(k)}
    file_head = {("fc." + k[len("fc.1.") :] if k.startswith("fc.1.") else k): (k, v) for k, v in state.items() if _is_head(k)}
    own_head = {"fc." + k[len(head_prefix) :]: v for k, v in own.items() if k.startswith(head_prefix)}

    missing = [k for k in own if not _is_head(k) and k not in body]
    unexpected = [k for k in body if k not in own]
    shapes = [
        f"{k} {tuple(v.shape)} (the model's is {tuple(own[k].shape)})"
        for k, v in body.items()
        if k in own and v.shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if shapes:
        problems.append(f"keys of another shape: {_listing(shapes)}")
    if problems:
        raise WeightsError(
            f"{source} does not fit a resnet18 as built here (cifar_stem changes conv1 and drops the max-pool); "
            + "; ".join(problems)
        )

    fits = set(file_head) == set(own_head) and all(file_head[k][1].shape == own_head[k].shape for k in own_head)
    load = dict(body)
    dropped: list[str] = []
    if fits:
        load.update({head_prefix + k[len("fc.") :]: v for k, (_, v) in file_head.items()})
    else:
        dropped = [orig for orig, _ in file_head.values()]
        if dropped and warn:
            shown = ", ".join(f"{orig} {tuple(v.shape)}" for orig, v in file_head.values())
            warnings.warn(
                HeadDroppedWarning(
                    f"{source}: the head does not fit the new {model.fc.__class__.__name__} head and was dropped "
                    f"(a freshly initialised head is trained instead): {shown}"
                ),
                stacklevel=3,
            )
    model.load_state_dict(load, strict=False)
    return dropped


def _file_metadata(path: Path, sha: str, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """Input size, mean and std of a weights file: sidecar JSON, else the known-weights table, key by key."""
    found: dict[str, Any] = {}
    sidecar = next((p for p in (path.with_name(path.name + ".json"), path.with_suffix(".json")) if p.is_file()), None)
    if sidecar is not None:
        found.update(_read_sidecar(sidecar, sha))
    for key, value in KNOWN_WEIGHTS.get(sha, {}).items():
        if key in ("input_size", "mean", "std"):
            found.setdefault(key, value)
    lacking = [k for k in ("input_size", "mean", "std") if k not in found and explicit.get(k) is None]
    if lacking:
        looked = f"the sidecar {sidecar} has no {', '.join(lacking)}" if sidecar else (
            f"no sidecar {path.name}.json or {path.stem}.json next to it"
        )
        raise WeightsError(
            f"weights file {path} does not say which input it expects ({looked}, and its sha256 {sha[:16]}... is not "
            f"a known weights file): set {', '.join('model.' + k for k in lacking)} in the recipe "
            f"(build_model({', '.join(k + '=...' for k in lacking)})), or write a sidecar {path.name}.json "
            '{"input_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}'
        )
    return found


def _read_sidecar(sidecar: Path, sha: str) -> dict[str, Any]:
    """The metadata keys of a sidecar JSON, validated (the messages name the file)."""
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"weights sidecar {sidecar} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"weights sidecar {sidecar} must hold a JSON object; got {type(data).__name__}")
    where = f" (in {sidecar})"
    claimed = data.get("weights_sha256", data.get("sha256"))
    if isinstance(claimed, str) and claimed.lower() != sha:
        raise WeightsError(
            f"weights sidecar {sidecar} describes the file with sha256 {claimed}, but the weights file's sha256 "
            f"is {sha}: the sidecar belongs to other weights"
        )
    out: dict[str, Any] = {}
    sizes = {k: data[k] for k in ("input_size", "size") if k in data}
    if len(sizes) == 2 and sizes["input_size"] != sizes["size"]:
        raise WeightsError(f"weights sidecar {sidecar} gives two input sizes: input_size {sizes['input_size']!r}, "
                           f"size {sizes['size']!r}")
    if sizes:
        key, value = next(iter(sizes.items()))
        out["input_size"] = check_int(f"{key}{where}", value, low=1)
    if "mean" in data:
        out["mean"] = _triple("mean", data["mean"], where=where)
    if "std" in data:
        out["std"] = _triple("std", data["std"], positive=True, where=where)
    return out
