"""build_model: weights sources and their metadata, the head, the stem, the stages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from augbal.train import _model
from augbal.train._model import (
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    STAGES,
    CosineLinear,
    HeadDroppedWarning,
    WeightsError,
    WeightsInfo,
    build_model,
    head_linear,
    stage_modules,
)

torch.set_num_threads(1)
SEEDLIKE_SHA = "87360c9c6dd5f613bd36b9212df2d5759aeedd154b7fcd59cbb2353931175c02"


def _random_state(num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    from torchvision.models import resnet18

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return resnet18(num_classes=num_classes).state_dict()


@pytest.fixture(scope="module")
def file7(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random resnet18 state_dict with a 7-class head (no sidecar)."""
    path = tmp_path_factory.mktemp("w7") / "backbone7.pth"
    torch.save(_random_state(7, seed=123), path)
    return path


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


META = {"input_size": 64, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


# ----------------------------------------------------------------------------- "none"


def test_none_is_seeded_and_leaves_the_global_rng_alone() -> None:
    before = torch.get_rng_state()
    a, _ = build_model(3, seed=5)
    b, _ = build_model(3, seed=5)
    c, _ = build_model(3, seed=6)
    assert torch.equal(torch.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layer1.0.conv1.weight"], sc["layer1.0.conv1.weight"])
    assert not torch.equal(sa["fc.weight"], sc["fc.weight"])


def test_none_metadata_imagenet_by_default_cifar_with_the_cifar_stem() -> None:
    model, info = build_model(4)
    assert info == WeightsInfo("none", None, 224, IMAGENET_MEAN, IMAGENET_STD, ())
    assert isinstance(model.maxpool, nn.MaxPool2d) and model.conv1.kernel_size == (7, 7)
    model, info = build_model(4, cifar_stem=True)
    assert (info.input_size, info.mean, info.std) == (32, CIFAR_MEAN, CIFAR_STD)
    assert (model.conv1.kernel_size, model.conv1.stride, model.conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert isinstance(model.maxpool, nn.Identity)
    model.eval()
    # no downsampling in the stem: layer1 sees the full 32x32 input
    seen = {}
    model.layer1.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(o.shape)))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    assert seen["shape"] == (2, 64, 32, 32)


def test_explicit_metadata_overrides() -> None:
    _, info = build_model(2, input_size=96, mean=(0.1, 0.2, 0.3), std=[1, 2, 3])
    assert (info.input_size, info.mean, info.std) == (96, (0.1, 0.2, 0.3), (1.0, 2.0, 3.0))


def test_weights_info_is_frozen_plain_data() -> None:
    info = WeightsInfo("w.pth", "ab", 64, CIFAR_MEAN, CIFAR_STD, ("fc.weight",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.input_size = 32  # type: ignore[misc]
    assert info.to_dict() == {
        "source": "w.pth",
        "sha256": "ab",
        "input_size": 64,
        "mean": list(CIFAR_MEAN),
        "std": list(CIFAR_STD),
        "dropped": ["fc.weight"],
    }
    json.dumps(info.to_dict())


# ----------------------------------------------------------------------------- heads


def test_dropout_and_cosine_heads() -> None:
    model, _ = build_model(3, dropout=0.25)
    assert isinstance(model.fc, nn.Sequential) and isinstance(model.fc[0], nn.Dropout)
    assert model.fc[0].p == 0.25 and head_linear(model) is model.fc[1]
    assert head_linear(model).out_features == 3

    model, _ = build_model(3, head="cosine", dropout=0.1)
    layer = head_linear(model)
    assert isinstance(layer, CosineLinear) and layer is model.fc[1]
    assert tuple(layer.weight.shape) == (3, 512) and not any("bias" in k for k in model.fc.state_dict())
    x = torch.randn(5, 512, generator=torch.Generator().manual_seed(0))
    expected = (x / x.norm(dim=1, keepdim=True)) @ (layer.weight / layer.weight.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(layer(x), expected)
    model.eval()
    out = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (2, 3) and bool(out.abs().max() <= 1.0 + 1e-6)


def test_stage_modules_and_wrappers() -> None:
    model, _ = build_model(3, cifar_stem=True)
    stages = stage_modules(model)
    assert tuple(stages) == STAGES
    assert stages["stem"] == [model.conv1, model.bn1, model.relu, model.maxpool]
    assert stages["layer3"] == [model.layer3] and stages["head"] == [model.fc]
    # every parameter belongs to exactly one stage
    owned = [id(p) for mods in stages.values() for m in mods for p in m.parameters()]
    assert sorted(owned) == sorted(id(p) for p in model.parameters())
    averaged = torch.optim.swa_utils.AveragedModel(model)
    assert stage_modules(averaged)["layer4"] == [averaged.module.layer4]
    with pytest.raises(TypeError, match=r"torchvision ResNet; Sequential has no conv1, bn1"):
        stage_modules(nn.Sequential(nn.Linear(2, 2)))


# ----------------------------------------------------------------------------- files


def test_file_with_a_7_class_head_loads_into_3_classes_with_a_notice(file7: Path, tmp_path: Path) -> None:
    path = _copy(file7, tmp_path / "w.pth")
    (tmp_path / "w.pth.json").write_text(json.dumps(META))
    with pytest.warns(HeadDroppedWarning) as record:
        model, info = build_model(3, weights=path)
    assert len(record) == 1
    message = str(record[0].message)
    assert "fc.weight (7, 512), fc.bias (7,)" in message and str(path) in message
    assert info.dropped == ("fc.weight", "fc.bias")
    assert info.source == str(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info.input_size, info.mean, info.std) == (64, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    state, loaded = torch.load(path, weights_only=True), model.state_dict()
    assert all(torch.equal(state[k], loaded[k]) for k in state if not k.startswith("fc."))
    assert loaded["fc.weight"].shape == (3, 512)
    # the fresh head is the seeded one of a random model
    fresh, _ = build_model(3, seed=0)
    assert torch.equal(loaded["fc.weight"], fresh.state_dict()["fc.weight"])


def test_a_fitting_head_is_loaded_without_a_notice(tmp_path: Path) -> None:
    state = _random_state(3, seed=1)
    path = tmp_path / "w3.pth"
    torch.save(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, info = build_model(3, weights=path, **META)
    assert info.dropped == ()
    assert torch.equal(model.state_dict()["fc.weight"], state["fc.weight"])
    # the same file into a dropout head (fc.1.*) and back: a checkpoint of a dropout head loads too
    model, info = build_model(3, weights=path, dropout=0.5, **META)
    assert info.dropped == () and torch.equal(model.fc[1].bias, state["fc.bias"])
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    again, info = build_model(3, weights=tmp_path / "ckpt.pth", **META)
    assert info.dropped == () and torch.equal(again.fc.bias, state["fc.bias"])
    # a cosine head is another layer: the linear head is dropped
    with pytest.warns(HeadDroppedWarning, match="CosineLinear"):
        _, info = build_model(3, weights=path, head="cosine", **META)
    assert info.dropped == ("fc.weight", "fc.bias")


def test_ddp_prefix_is_removed(tmp_path: Path) -> None:
    state = _random_state(3, seed=2)
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "ddp.pth")
    model, _ = build_model(3, weights=tmp_path / "ddp.pth", **META)
    assert torch.equal(model.state_dict()["layer2.0.bn1.running_mean"], state["layer2.0.bn1.running_mean"])


def test_missing_and_unexpected_keys_are_errors_naming_them(tmp_path: Path) -> None:
    state = _random_state(3, seed=3)
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"missing keys: layer1\.0\.conv1\.weight; unexpected keys: extra\.weight"):
        build_model(3, weights=tmp_path / "bad.pth", **META)


def test_cifar_stem_does_not_fit_a_7x7_stem(file7: Path) -> None:
    with pytest.raises(WeightsError, match=re.escape("conv1.weight (64, 3, 7, 7) (the model's is (64, 3, 3, 3))")):
        build_model(3, weights=file7, cifar_stem=True, **META)


def test_not_a_state_dict(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"junk\.pth could not be read as a state_dict"):
        build_model(3, weights=tmp_path / "junk.pth", **META)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match=r"list\.pth must hold a state_dict .*; got list"):
        build_model(3, weights=tmp_path / "list.pth", **META)
    with pytest.raises(FileNotFoundError, match=r"weights file '.*nope\.pth' does not exist"):
        build_model(3, weights=tmp_path / "nope.pth")


# ----------------------------------------------------------------------------- metadata


def test_stem_sidecar_with_size_and_table_fallback(file7: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(file7, tmp_path / "net.pth")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    # the shared sidecar's shape: "size" only, plus the sha256 it describes
    (tmp_path / "net.json").write_text(json.dumps({"size": 48, "weights_sha256": sha, "epochs": 40}))
    monkeypatch.setitem(_model.KNOWN_WEIGHTS, sha, {"input_size": 999, "mean": (0.1, 0.1, 0.1), "std": (0.9, 0.9, 0.9)})
    with pytest.warns(HeadDroppedWarning):
        _, info = build_model(3, weights=path)
    assert (info.input_size, info.mean, info.std) == (48, (0.1, 0.1, 0.1), (0.9, 0.9, 0.9))
    with pytest.warns(HeadDroppedWarning):
        _, info = build_model(3, weights=path, input_size=64, std=(1, 1, 1))
    assert (info.input_size, info.mean, info.std) == (64, (0.1, 0.1, 0.1), (1.0, 1.0, 1.0))


def test_the_seedlike_backbone_is_known() -> None:
    entry = _model.KNOWN_WEIGHTS[SEEDLIKE_SHA]
    assert (entry["input_size"], entry["mean"], entry["std"]) == (
        64,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    )


@pytest.mark.filterwarnings("ignore::augbal.train._model.HeadDroppedWarning")
def test_unknown_file_without_metadata_says_which_keys_to_set(file7: Path) -> None:
    with pytest.raises(WeightsError) as err:
        build_model(3, weights=file7, input_size=64)
    text = str(err.value)
    assert "set model.mean, model.std in the recipe" in text and "backbone7.json" in text
    assert "model.input_size" not in text


@pytest.mark.filterwarnings("ignore::augbal.train._model.HeadDroppedWarning")
def test_sidecar_problems_name_the_file(file7: Path, tmp_path: Path) -> None:
    path = _copy(file7, tmp_path / "s.pth")
    sidecar = tmp_path / "s.json"
    sidecar.write_text("{oops")
    with pytest.raises(WeightsError, match=r"s\.json is not readable JSON"):
        build_model(3, weights=path)
    sidecar.write_text(json.dumps({"size": 64, "sha256": "0" * 64}))
    with pytest.raises(WeightsError, match=r"describes the file with sha256 0000.*the sidecar belongs to other weights"):
        build_model(3, weights=path)
    sidecar.write_text(json.dumps({"size": 64, "mean": [0.5, 0.5], "std": [1, 1, 1]}))
    with pytest.raises(ValueError, match=r"mean \(in .*s\.json\) must be three numbers .*; got \[0\.5, 0\.5\]"):
        build_model(3, weights=path)


# ----------------------------------------------------------------------------- imagenet


def test_imagenet_offline_without_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_model tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(FileNotFoundError) as err:
        build_model(3, weights="imagenet")
    text = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in text
    assert "download=True" in text and "weights: /path/to/resnet18.pth" in text


def test_imagenet_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    state = _random_state(1000, seed=4)
    torch.save(state, cached)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 1000-class head is always replaced: no notice
        model, info = build_model(3, weights="imagenet")
    assert info.source == "imagenet" and info.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert (info.input_size, info.mean, info.std) == (224, IMAGENET_MEAN, IMAGENET_STD)
    assert info.dropped == ("fc.weight", "fc.bias")
    assert torch.equal(model.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be an int >= 1; got 0"),
        ({"dropout": 1.0}, "dropout must be a number in [0, 1); got 1.0"),
        ({"head": "mlp"}, "head must be one of 'linear', 'cosine'; got 'mlp'"),
        ({"std": (1, 0, 1)}, "std must be three numbers > 0 (one per RGB channel); got (1, 0, 1)"),
        ({"weights": ""}, "weights must be 'imagenet', 'none' or the path of a state_dict file; got ''"),
        ({"seed": -1}, "seed must be an int >= 0; got -1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    kwargs = {"num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(**kwargs)


def test_cosine_matches_functional_formula_on_known_numbers() -> None:
    layer = CosineLinear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    out = layer(torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.6, 7.0 / 5.0 / 2**0.5]]))
    torch.testing.assert_close(out[0], F.cosine_similarity(torch.tensor([[3.0, 4.0]]), layer.weight))


def test_imagenet_download_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def fake_download(url: str, model_dir: str, progress: bool, check_hash: bool) -> None:
        calls.append((url, model_dir, check_hash))
        torch.save(_random_state(1000, seed=5), Path(model_dir) / "resnet18-f37072fd.pth")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    _, info = build_model(3, weights="imagenet", download=True, input_size=160)
    assert calls == [
        ("https://download.pytorch.org/models/resnet18-f37072fd.pth", str(tmp_path / "hub" / "checkpoints"), True)
    ]
    assert info.input_size == 160 and info.mean == IMAGENET_MEAN  # an explicit size overrides the weights' 224
    build_model(3, weights="imagenet", download=True)  # cached now: no second download
    assert len(calls) == 1


@pytest.mark.filterwarnings("ignore::augbal.train._model.HeadDroppedWarning")
def test_file_sidecar_comes_before_stem_sidecar(file7: Path, tmp_path: Path) -> None:
    path = _copy(file7, tmp_path / "both.pth")
    (tmp_path / "both.json").write_text(json.dumps({**META, "input_size": 32}))
    (tmp_path / "both.pth.json").write_text(json.dumps({**META, "input_size": 96}))
    assert build_model(3, weights=path)[1].input_size == 96
    (tmp_path / "both.pth.json").unlink()
    assert build_model(3, weights=path)[1].input_size == 32
