"""Feature / activation caches: trunk + tail, on-disk keyed views, the (k + e) mod K mapping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from augbal._draw import Draw, DrawBatch
from augbal.augment import build_policy
from augbal.data import scan, write_image_folder
from augbal.train._cache import UPTO, CachedViews, FeatureCache, content_hash, tail, trunk

torch.set_num_threads(1)

W = "ab" * 32  # a stand-in weights hash


class _Images(list):
    classes = ["a", "b", "c"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory):
    """12 random 32x32 images in 3 classes, scanned (so the index carries content hashes)."""
    rng = np.random.default_rng(0)
    items = _Images((rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), i % 3) for i in range(12))
    return scan(write_image_folder(items, tmp_path_factory.mktemp("imgs")))


def _model(num_classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=num_classes)


class _Counter:
    """Counts forward calls of ``model.conv1``; the hook is a plain function, so the cache's
    deep copy of the trunk keeps calling this one (a callable object would be copied)."""

    def __init__(self, model: nn.Module) -> None:
        box = self.box = [0]

        def hook(module, inputs, output) -> None:
            box[0] += 1

        model.conv1.register_forward_hook(hook)

    @property
    def calls(self) -> int:
        return self.box[0]


# --------------------------------------------------------------------------- trunk / tail


@pytest.mark.parametrize("upto", UPTO)
def test_tail_of_trunk_is_the_model_exactly(upto: str) -> None:
    model = _model().eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(tail(model, upto)(trunk(model, upto)(x)), model(x))


def test_trunk_shapes_and_shared_modules() -> None:
    model = _model().eval()
    x = torch.randn(2, 3, 64, 64)
    assert trunk(model, "features")(x).shape == (2, 512)
    assert trunk(model, "layer3")(x).shape == (2, 256, 4, 4)
    assert trunk(model, "layer3")[6] is model.layer3
    assert tail(model, "features")[0] is model.fc
    assert [type(m).__name__ for m in tail(model, "layer3")] == ["Sequential", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    # no parameter is in both parts
    front = {id(p) for p in trunk(model, "layer3").parameters()}
    assert not front & {id(p) for p in tail(model, "layer3").parameters()}
    assert len(front) + sum(1 for _ in tail(model, "layer3").parameters()) == sum(1 for _ in model.parameters())


def test_tail_keeps_a_dropout_head() -> None:
    model = _model()
    model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 3))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(tail(model, "features")(trunk(model, "features")(x)), model(x))


def test_trunk_errors() -> None:
    with pytest.raises(ValueError, match=r"upto must be one of 'stem', .*'features'; got 'layer4'"):
        trunk(_model(), "layer4")
    with pytest.raises(TypeError, match="stages are defined for a torchvision ResNet; Linear has no conv1, bn1"):
        trunk(nn.Linear(2, 2), "features")
    model = _model()
    del model.avgpool
    with pytest.raises(TypeError, match="ResNet with avgpool; ResNet has none"):
        tail(model, "layer3")


def test_a_wrapped_model_is_looked_through() -> None:
    from torch.optim.swa_utils import AveragedModel

    averaged = AveragedModel(_model())
    assert trunk(averaged, "layer3")[6] is averaged.module.layer3
    assert tail(averaged, "features")[0] is averaged.module.fc


# --------------------------------------------------------------------------- cache: hits and misses


def test_hit_does_no_forward_pass_and_reads_the_same_bytes(index, tmp_path: Path) -> None:
    model = _model()
    counter = _Counter(model)
    first = FeatureCache(tmp_path).views(model, W, index, upto="features", batch_size=5)
    assert counter.calls == 3  # 12 images, batches of 5
    assert first.report["computed"] == 12 and first.report["reused"] == 0
    assert first.data.shape == (1, 12, 512) and first.data.dtype == torch.float16
    assert first.labels.tolist() == index.labels.tolist()

    again = FeatureCache(tmp_path).views(model, W, index, upto="features", batch_size=5)
    assert counter.calls == 3
    assert again.report["computed"] == 0 and again.report["reused"] == 12
    assert again.data.numpy().tobytes() == first.data.numpy().tobytes()


def test_cached_rows_equal_the_trunk_output(index, tmp_path: Path) -> None:
    from augbal.data import load_rgb

    model = _model()
    views = FeatureCache(tmp_path, dtype="float32").views(model, W, index, upto="layer3", batch_size=4)
    x = torch.stack([torch.from_numpy(load_rgb(p)).permute(2, 0, 1).float() / 255 for p in index.paths])
    with torch.no_grad():
        expected = trunk(model.eval(), "layer3")(x)
    assert views.data.dtype == torch.float32 and views.data.shape == (1, 12, 256, 2, 2)
    torch.testing.assert_close(views.data[0], expected, rtol=1e-5, atol=1e-5)


def test_the_model_is_left_as_it_was(index, tmp_path: Path) -> None:
    model = _model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    FeatureCache(tmp_path).views(model, W, index, upto="features")
    assert model.training and model.bn1.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched


def test_missing_rows_only_are_computed(index, tmp_path: Path) -> None:
    model = _model()
    counter = _Counter(model)
    cache = FeatureCache(tmp_path)
    part = cache.views(model, W, index.subset(range(5)), upto="features", batch_size=100)
    assert part.report["computed"] == 5 and counter.calls == 1
    full = cache.views(model, W, index, upto="features", batch_size=100)
    assert full.report["computed"] == 7 and full.report["reused"] == 5 and counter.calls == 2
    assert torch.equal(full.data[0, :5], part.data[0])
    view_dir = Path(full.report["folder"]) / "view-000"
    assert len(list(view_dir.glob("chunk-*.npy"))) == 2 and len(list(view_dir.glob("chunk-*.json"))) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"weights": "cd" * 32},
        {"upto": "layer3"},
        {"policy": build_policy("none", size=32, seed=0, mean=(0.5,) * 3, std=(0.25,) * 3)},
    ],
    ids=["weights", "upto", "policy"],
)
def test_a_changed_key_misses(index, tmp_path: Path, change: dict) -> None:
    model = _model()
    cache = FeatureCache(tmp_path)
    base = dict(weights=W, upto="features", policy=build_policy("none", size=32, seed=0))
    assert cache.views(model, base["weights"], index, upto=base["upto"], policy=base["policy"]).report["computed"] == 12
    assert cache.views(model, base["weights"], index, upto=base["upto"], policy=base["policy"]).report["computed"] == 0
    args = {**base, **change}
    views = cache.views(model, args["weights"], index, upto=args["upto"], policy=args["policy"])
    assert views.report["computed"] == 12
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    meta = json.loads((Path(views.report["folder"]) / "meta.json").read_text())
    assert meta["weights_sha256"] == args["weights"] and meta["upto"] == args["upto"]
    assert meta["policy"] == args["policy"].to_dict()


def test_a_changed_dtype_or_architecture_misses(index, tmp_path: Path) -> None:
    model = _model()
    a = FeatureCache(tmp_path).views(model, W, index, upto="features")
    b = FeatureCache(tmp_path, dtype="float32").views(model, W, index, upto="features")
    other = _model()
    other.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)  # a CIFAR stem: another trunk
    c = FeatureCache(tmp_path).views(other, W, index, upto="features")
    assert len({a.report["key"], b.report["key"], c.report["key"]}) == 3
    assert b.report["computed"] == 12 and c.report["computed"] == 12


# --------------------------------------------------------------------------- views


def test_views_differ_across_k_and_are_stable_across_runs_and_splits(index, tmp_path: Path) -> None:
    model = _model()
    policy = build_policy("light", size=32, seed=3)
    a = FeatureCache(tmp_path / "a").views(model, W, index, upto="features", policy=policy, num_views=3)
    assert a.data.shape == (3, 12, 512) and a.report["computed"] == 36
    for k in range(3):
        for j in range(k + 1, 3):
            assert not torch.equal(a.data[k], a.data[j])
    # another root, another split order: the same image gets the same view k
    order = list(range(11, -1, -1))
    b = FeatureCache(tmp_path / "b").views(
        model, W, index.subset(order), upto="features", policy=build_policy("light", size=32, seed=3), num_views=3
    )
    assert b.report["computed"] == 36 and torch.equal(b.data, a.data[:, order])


def test_deterministic_policy_stores_one_view(index, tmp_path: Path) -> None:
    model = _model()
    counter = _Counter(model)
    views = FeatureCache(tmp_path).views(
        model, W, index, upto="features", policy=build_policy("none", size=32), num_views=4, batch_size=12
    )
    assert counter.calls == 1 and views.num_views == 4 and views.report["stored_views"] == 1
    assert torch.equal(views.data[3], views.data[0])
    assert [p.name for p in Path(views.report["folder"]).iterdir() if p.is_dir()] == ["view-000"]


def test_pairs_share_rows_with_the_index_and_hashes_are_computed(index, tmp_path: Path) -> None:
    model = _model()
    counter = _Counter(model)
    cache = FeatureCache(tmp_path)
    first = cache.views(model, W, index, upto="features", batch_size=100)
    assert counter.calls == 1
    pairs = [(p, "") for p in index.paths.tolist()]  # hashes computed from the bytes
    second = cache.views(model, W, pairs, upto="features", labels=index.labels)
    assert counter.calls == 1 and second.report["computed"] == 0
    assert torch.equal(second.data, first.data) and second.labels.tolist() == index.labels.tolist()
    assert content_hash(index.paths[0]) == index.hashes[0]
    bare = cache.views(model, W, index.paths.tolist(), upto="features")
    assert bare.labels.tolist() == [-1] * 12 and torch.equal(bare.data, first.data)


def test_partial_writes_are_ignored_and_bad_chunks_recomputed(index, tmp_path: Path) -> None:
    model = _model()
    views = FeatureCache(tmp_path).views(model, W, index, upto="features")
    vdir = Path(views.report["folder"]) / "view-000"
    (chunk_json,) = vdir.glob("chunk-*.json")
    # a crash between the .npy and the .json, and a leftover temporary file: ignored
    (vdir / "chunk-99999999999999999999-1-deadbeef.npy").write_bytes(b"garbage")
    (vdir / ".chunk-x.npy.abc.part").write_bytes(b"garbage")
    assert FeatureCache(tmp_path).views(model, W, index, upto="features").report["computed"] == 0
    chunk_json.write_text("{not json")
    with pytest.warns(RuntimeWarning, match=r"ignoring unreadable chunk .*chunk-.*\.json"):
        again = FeatureCache(tmp_path).views(model, W, index, upto="features")
    assert again.report["computed"] == 12 and torch.equal(again.data, views.data)


def test_concurrent_runs_on_one_root_agree(index, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = _model()

    def run(_):
        return FeatureCache(tmp_path).views(model, W, index, upto="features", batch_size=3)

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(run, range(2))
    assert torch.equal(a.data, b.data)
    c = FeatureCache(tmp_path).views(model, W, index, upto="features")
    assert c.report["computed"] == 0 and torch.equal(c.data, a.data)
    vdir = Path(c.report["folder"]) / "view-000"
    assert not list(vdir.glob(".*part"))  # no temporary file is left behind
    assert {p.suffix for p in vdir.iterdir()} == {".npy", ".json"}


def test_an_index_without_hashes_and_a_policy_by_spec(index, tmp_path: Path) -> None:
    from augbal.data import ImageIndex

    model = _model()
    bare = ImageIndex.from_arrays(index.paths, index.labels, index.classes)  # hashes ""
    spec = {"name": "none", "size": 32}
    a = FeatureCache(tmp_path).views(model, W, bare, upto="features", policy=spec)
    b = FeatureCache(tmp_path).views(model, W, index, upto="features", policy=build_policy(spec))
    assert a.report["key"] == b.report["key"] and b.report["computed"] == 0 and torch.equal(a.data, b.data)


def test_memory_mapped_views_read_the_same_rows(index, tmp_path: Path) -> None:
    import pickle

    model = _model()
    policy = build_policy("light", size=32, seed=3)
    cache = FeatureCache(tmp_path, chunk_rows=5)  # three chunks per view
    mem = cache.views(model, W, index, upto="layer3", policy=policy, num_views=2)
    mapped = cache.views(model, W, index.subset(range(12)), upto="layer3", policy=policy, num_views=2, in_memory=False)
    assert mapped.report["computed"] == 0 and not isinstance(mapped.data, torch.Tensor)
    assert repr(mapped).endswith("device=cpu, memory-mapped)")
    assert mapped.data.shape == mem.data.shape and mapped.data.dtype == torch.float16
    batch = DrawBatch(np.array([11, 0, 5, 5]), np.array([0, 1, 0, 1]), epoch=1)
    for a, b in zip(mapped.__getitems__(batch), mem.__getitems__(batch)):
        assert torch.equal(a, b)
    assert torch.equal(mapped[Draw(7, 1, 0)][0], mem[Draw(7, 1, 0)][0])
    assert torch.equal(mapped.features(1), mem.features(1))
    assert torch.equal(mapped.to("cpu").data, mem.data)
    again = pickle.loads(pickle.dumps(mapped))
    assert torch.equal(again.__getitems__(batch)[0], mem.__getitems__(batch)[0])
    one = cache.views(model, W, index, upto="features", policy=build_policy("none", size=32), num_views=3, in_memory=False)
    assert one.num_views == 3 and torch.equal(one.features(2), one.features(0))


def test_progress_bar_runs(index, tmp_path: Path) -> None:
    views = FeatureCache(tmp_path).views(_model(), W, index, upto="features", progress=True)
    assert views.report["computed"] == 12


# --------------------------------------------------------------------------- CachedViews


def _toy(k: int = 3, n: int = 4) -> CachedViews:
    # value = 10 * view + index
    data = (10 * torch.arange(k)[:, None] + torch.arange(n)[None, :]).float()[:, :, None]
    return CachedViews(data.half(), [0, 1, 2, 1][:n])


def test_repeat_k_in_epoch_e_reads_view_k_plus_e_mod_K() -> None:
    views = _toy()
    x, y = views[Draw(2, repeat=1, epoch=0)]
    assert x.tolist() == [12.0] and y == 2 and x.dtype == torch.float32
    assert views[Draw(2, repeat=2, epoch=2)][0].tolist() == [12.0]  # (2 + 2) % 3 == 1
    batch = DrawBatch(np.array([0, 0, 0, 3]), np.array([0, 1, 2, 0]), epoch=2)
    x, y = views.__getitems__(batch)
    assert x[:, 0].tolist() == [20.0, 0.0, 10.0, 23.0] and y.tolist() == [0, 0, 0, 1] and y.dtype == torch.int64
    assert views.__getitems__([Draw(1, 1, 1), 3])[0][:, 0].tolist() == [21.0, 3.0]


def test_integer_keys_read_the_epoch_view() -> None:
    views = _toy()
    assert views.__getitems__(np.array([1, 3]))[0][:, 0].tolist() == [1.0, 3.0]
    views.set_epoch(4)
    assert views.__getitems__(torch.tensor([1, 3]))[0][:, 0].tolist() == [11.0, 13.0]
    assert views[2][0].tolist() == [12.0]
    assert views.__getitems__(np.array([-1]))[0][:, 0].tolist() == [13.0]


def test_cached_views_as_a_dataloader_with_an_augbal_sampler() -> None:
    from augbal.sampling import ClassAwareSampler

    views = _toy(k=2, n=4)
    sampler = ClassAwareSampler(views.labels, seed=0, yield_draws=True)
    loader = torch.utils.data.DataLoader(views, batch_sampler=sampler.batches(3), collate_fn=CachedViews.collate)
    seen = [(x, y) for x, y in loader]
    assert sum(len(y) for _, y in seen) == len(sampler)
    for batch, (x, y) in zip(sampler.batches(3), seen):
        expected = [10 * ((r + batch.epoch) % 2) + i for i, r in zip(batch.index.tolist(), batch.repeat.tolist())]
        assert x[:, 0].tolist() == expected
        assert y.tolist() == views.labels[batch.index].tolist()


def test_cached_views_attributes_and_errors() -> None:
    views = _toy()
    assert len(views) == 4 and views.num_views == 3 and views.targets is views.labels
    assert views.features(1)[:, 0].tolist() == [10.0, 11.0, 12.0, 13.0]
    assert views.to("cpu").data.device.type == "cpu"
    with pytest.raises(IndexError, match=r"sample index must lie in \[0, 4\); got 4"):
        views.__getitems__(np.array([0, 4]))
    with pytest.raises(TypeError, match="CachedViews keys are ints or augbal Draws; got str"):
        views["a"]
    with pytest.raises(ValueError, match="epoch must be an int >= 0; got -1"):
        views.set_epoch(-1)
    with pytest.raises(ValueError, match=r"labels must have one entry per image \(4\); got 2"):
        CachedViews(torch.zeros(1, 4, 2), [0, 1])
    with pytest.raises(ValueError, match=r"view must be an int in \[0, 2\]; got 3"):
        views.features(3)


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_name_the_value(index, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    model = _model()
    with pytest.raises(ValueError, match="weights_sha256 must be the hex digest .* got None"):
        cache.views(model, None, index, upto="features")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_views must be an int >= 1; got 0"):
        cache.views(model, W, index, upto="features", num_views=0)
    with pytest.raises(ValueError, match="upto must be one of"):
        cache.views(model, W, index, upto="fc")
    with pytest.raises(ValueError, match="a content hash must be a hex string of >= 8 digits; got 'zz'"):
        cache.views(model, W, [("a.png", "zz")], upto="features")
    with pytest.raises(ValueError, match="labels= is for a sequence of items"):
        cache.views(model, W, index, upto="features", labels=[0] * 12)
    with pytest.raises(ValueError, match=r"labels must be 1 integers, one per item"):
        cache.views(model, W, [index.paths[0]], upto="features", labels=[0, 1])
    with pytest.raises(TypeError, match="policy must be an augbal policy"):
        cache.views(model, W, index, upto="features", policy=lambda im: im)
    with pytest.raises(ValueError, match="dtype must be one of 'float16', 'float32'; got 'int8'"):
        FeatureCache(tmp_path, dtype="int8")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        cache.views(model, W, [str(tmp_path / "nope.png")], upto="features")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_path_bf16_channels_last(index, tmp_path: Path) -> None:
    model = _model()
    cpu = FeatureCache(tmp_path / "cpu").views(model, W, index, upto="layer3")
    gpu = FeatureCache(tmp_path / "gpu").views(model, W, index, upto="layer3", device="cuda")
    assert gpu.report["key"] == cpu.report["key"]
    torch.testing.assert_close(gpu.data.float(), cpu.data.float(), rtol=0.05, atol=0.05)
    resident = gpu.to("cuda")
    x, y = resident.__getitems__(DrawBatch(np.array([0, 1]), np.array([0, 0]), epoch=0))
    assert x.device.type == "cuda" and y.device.type == "cuda"
