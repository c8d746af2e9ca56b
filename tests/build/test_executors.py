"""Issue 9, item 6: the executor seam (local processes | Ray) — errors naming the file, Ray's connection rules."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from augbal.build import BuildOptionError, BuildTaskError, Item, build_dataset, run_local, run_ray
from augbal.build._ray import RayNotInstalledError, import_ray

SPEC = {"name": "light", "seed": 0}


def _copies(source: Path, n: int, *, start: int = 0) -> list[Item]:
    """``n`` augmented copies of ``source`` (hash ``0a``) as plan items."""
    return [Item("train", 0, str(source), "0a", "g0", f"train/a/{source.stem}.aug{k}.png", k)
            for k in range(start + 1, start + n + 1)]


def test_a_failed_copy_names_its_output_and_source_in_process(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 1})
    gone = tmp_path / "src" / "a" / "gone.png"
    items = _copies(src / "a" / "000.png", 3) + _copies(gone, 1)
    with pytest.raises(BuildTaskError) as info:
        run_local(items, str(tmp_path / "out"), spec=SPEC, size=None, link=False, workers=1)
    assert info.value.out == "train/a/gone.aug1.png" and info.value.source == str(gone)
    assert str(info.value) == (f"cannot write train/a/gone.aug1.png from {gone}: FileNotFoundError: [Errno 2] "
                               f"No such file or directory: '{gone}'")
    assert sorted(p.name for p in (tmp_path / "out" / "train" / "a").iterdir()) == [
        "000.aug1.png", "000.aug2.png", "000.aug3.png"]  # the ones before it are written, nothing torn


def test_a_failed_copy_names_its_output_from_a_worker_process(make_folder, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src", {"a": 1})
    torn = tmp_path / "src" / "a" / "torn.png"
    torn.write_bytes((src / "a" / "000.png").read_bytes()[:60])  # changed since the scan: cut short
    items = _copies(src / "a" / "000.png", 20) + _copies(torn, 2)  # two chunks: the pool runs
    with pytest.raises(BuildTaskError, match=rf"^cannot write train/a/torn.aug1.png from {torn}: ImageLoadError: "):
        run_local(items, str(tmp_path / "out"), spec=SPEC, size=None, link=False, workers=2)


def test_with_worker_processes_the_main_process_copies_no_original(make_folder, tmp_path: Path, monkeypatch) -> None:
    # with 2 workers on 2 cores the main process must stay nearly idle: the workers copy the originals too
    import augbal.build._execute as execute

    src = make_folder(tmp_path / "src", {"a": 3})
    originals = [Item("train", 0, str(p), "0a", "g0", f"train/a/{p.name}", 0) for p in sorted((src / "a").iterdir())]
    items = originals + _copies(src / "a" / "000.png", 40)

    def copy_here(*args, **kwargs):
        raise AssertionError("the main process copied an original")

    monkeypatch.setattr(execute, "copy_original", copy_here)  # the fork-server workers keep the real one
    start = execute._start_workers

    def started(pool):  # the workers are running before the first chunk is handed out (a loaded fork server)
        event = start(pool)
        event.wait()
        return event

    monkeypatch.setattr(execute, "_start_workers", started)
    steps: list[int] = []
    assert run_local(items, str(tmp_path / "out"), spec=SPEC, size=None, link=False, workers=2,
                     advance=steps.append) == 40
    assert sum(steps) == 43
    written = sorted(p.name for p in (tmp_path / "out" / "train" / "a").iterdir())
    assert [n for n in written if ".aug" not in n] == ["000.png", "001.png", "002.png"]
    assert (tmp_path / "out" / "train" / "a" / "001.png").read_bytes() == (src / "a" / "001.png").read_bytes()


def test_while_the_workers_start_the_main_process_writes_the_chunks(make_folder, tmp_path: Path, monkeypatch,
                                                                   tree_bytes) -> None:
    # a fork server still loading torch: the main process writes chunks itself instead of waiting
    import threading

    import augbal.build._execute as execute

    src = make_folder(tmp_path / "src", {"a": 3})
    originals = [Item("train", 0, str(p), "0a", "g0", f"train/a/{p.name}", 0) for p in sorted((src / "a").iterdir())]
    items = originals + _copies(src / "a" / "000.png", 40) + _copies(src / "a" / "001.png", 30)
    run_local(items, str(tmp_path / "one"), spec=SPEC, size=None, link=False, workers=1)

    class NoWorkers:  # a pool whose processes never come up
        def __init__(self, **kwargs) -> None:
            pass

        def submit(self, *args, **kwargs):
            raise AssertionError("a chunk was handed to a worker that had not started")

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            pass

    monkeypatch.setattr(execute, "ProcessPoolExecutor", NoWorkers)
    monkeypatch.setattr(execute, "_start_workers", lambda pool: threading.Event())
    steps: list[int] = []
    assert run_local(items, str(tmp_path / "two"), spec=SPEC, size=None, link=False, workers=2,
                     advance=steps.append) == 70
    assert sum(steps) == 73 and len(steps) == -(-73 // execute.chunk_size(73, 2))
    assert tree_bytes(tmp_path / "two") == tree_bytes(tmp_path / "one")


def test_chunk_sizes_grow_with_the_plan_within_bounds() -> None:
    from augbal.build._execute import _CHUNK, _MAX_CHUNK, chunk_size

    assert chunk_size(0, 2) == chunk_size(2_000, 2) == _CHUNK
    assert chunk_size(50_000, 2) == _MAX_CHUNK and chunk_size(20_000, 2) == 156
    assert chunk_size(20_000, 0) == _MAX_CHUNK  # workers <= 1 counts as one


def test_ray_not_installed_is_a_clear_option_error(small_source: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # "import ray" now raises ImportError
    with pytest.raises(RayNotInstalledError, match=r"^executor 'ray' needs Ray, which is not installed \(pip install augbal\[ray\]\)"):
        import_ray()
    with pytest.raises(BuildOptionError) as info:
        build_dataset(small_source, tmp_path / "out", executor="ray")
    assert info.value.option == "executor" and "pip install augbal[ray]" in str(info.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


def test_bad_executor_options(small_source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^executor must be one of 'local', 'ray'; got 'dask'$"):
        build_dataset(small_source, tmp_path / "out", executor="dask", dry_run=True)
    with pytest.raises(BuildOptionError, match="ray_address needs executor='ray'; got executor='local'") as info:
        build_dataset(small_source, tmp_path / "out", ray_address="auto", dry_run=True)
    assert info.value.option == "ray_address"


class _Ref:
    def __init__(self, value) -> None:
        self.value = value


class _FakeRay(types.ModuleType):
    """Just enough of ``ray`` to run ``run_ray`` in this process and record how it was called."""

    def __init__(self, *, initialized: bool = False) -> None:
        super().__init__("ray")
        self.calls: list[tuple] = []
        self.waited: list[int] = []
        self.sent: list[tuple] = []
        self.initialized = initialized
        self.exceptions = types.SimpleNamespace(RayTaskError=type("RayTaskError", (Exception,), {}),
                                                RayError=type("RayError", (Exception,), {}))

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs) -> None:
        self.calls.append(("init", kwargs))
        self.initialized = True

    def shutdown(self) -> None:
        self.calls.append(("shutdown",))
        self.initialized = False

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 3.0}

    def remote(self, **options):
        self.calls.append(("remote", options))
        def submit(fn):
            def call(*args):
                self.sent.append(args)
                return _Ref(fn(*args))

            return types.SimpleNamespace(remote=call)

        return submit

    def wait(self, refs, num_returns):
        self.waited.append(len(refs))
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref.value

    def cancel(self, ref) -> None:
        pass


@pytest.mark.parametrize(
    ("address", "env", "expected"),
    [
        ("ray://head:10001", "other:6379", {"address": "ray://head:10001"}),
        (None, "head:6379", {"address": "head:6379"}),
        (None, None, {"address": "local", "num_cpus": 2, "include_dashboard": False}),
    ],
)
def test_ray_connects_to_the_address_else_ray_address_else_a_new_local_ray(
    make_folder, tmp_path: Path, monkeypatch, address, env, expected
) -> None:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    if env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", env)
    src = make_folder(tmp_path / "src", {"a": 1})
    n = run_ray(_copies(src / "a" / "000.png", 3), str(tmp_path / "out"), spec=SPEC, size=None, link=False,
                workers=2, address=address)
    assert n == 3 and len(list((tmp_path / "out" / "train" / "a").iterdir())) == 3
    assert fake.calls == [("init", expected), ("remote", {"num_cpus": 1}), ("shutdown",)]


def test_ray_uses_a_connection_it_finds_and_bounds_the_tasks_in_flight(make_folder, tmp_path: Path, monkeypatch) -> None:
    fake = _FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    src = make_folder(tmp_path / "src", {"a": 1})
    n = run_ray(_copies(src / "a" / "000.png", 16 * 9 + 1), str(tmp_path / "out"), spec=SPEC, size=8, link=False)
    assert n == 145
    assert fake.calls == [("remote", {"num_cpus": 1})]  # neither init nor shutdown: not ours
    assert max(fake.waited) == 6 and len(fake.waited) == 10  # 2 x 3 CPUs in flight at most; 10 chunks


def test_a_ray_task_error_surfaces_as_the_build_task_error_it_carries(make_folder, tmp_path: Path, monkeypatch) -> None:
    fake = _FakeRay(initialized=True)
    cause = BuildTaskError("train/a/x.aug1.png", "/src/a/x.png", "OSError: [Errno 28] No space left on device")

    def get(ref):
        error = fake.exceptions.RayTaskError("wrapped")
        error.cause = cause
        raise error

    fake.get = get
    monkeypatch.setitem(sys.modules, "ray", fake)
    src = make_folder(tmp_path / "src", {"a": 1})
    with pytest.raises(BuildTaskError) as info:
        run_ray(_copies(src / "a" / "000.png", 2), str(tmp_path / "out"), spec=SPEC, size=8, link=False)
    assert info.value is cause

    def crashed(ref):
        raise fake.exceptions.RayError("worker died")

    fake.get = crashed
    with pytest.raises(BuildTaskError, match=r"^cannot write train/a/000.aug1.png .. train/a/000.aug2.png \(2 files\) "
                       r"from their sources: the worker failed: RayError: worker died$"):
        run_ray(_copies(src / "a" / "000.png", 2), str(tmp_path / "o2"), spec=SPEC, size=8, link=False)


def test_ray_tasks_get_absolute_paths(make_folder, tmp_path: Path, monkeypatch) -> None:
    """A Ray worker on another node (or cwd) cannot resolve the driver's relative SOURCE and OUT."""
    fake = _FakeRay(initialized=True)
    monkeypatch.setitem(sys.modules, "ray", fake)
    make_folder(tmp_path / "src", {"a": 1})
    monkeypatch.chdir(tmp_path)
    n = run_ray(_copies(Path("src/a/000.png"), 2), "out", spec=SPEC, size=8, link=False)
    assert n == 2 and (tmp_path / "out" / "train" / "a" / "000.aug2.png").is_file()
    ((items, root, spec, size),) = fake.sent
    assert root == str(tmp_path / "out") and [i.source for i in items] == [str(tmp_path / "src/a/000.png")] * 2
