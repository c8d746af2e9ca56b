import os
import stat
import subprocess
import sys
import threading

import pytest

import augbal

from augbal._atomic import atomic_write, atomic_write_bytes, atomic_write_text

_SIZE = 256 * 1024  # large enough that a torn write would show as a mixture


def _payload(i: int) -> bytes:
    return bytes([65 + i]) * _SIZE


def _write_many(path: str, i: int, rounds: int) -> None:
    for _ in range(rounds):
        with atomic_write(path, "wb", fsync=False) as fh:
            # several writes per version: a shared temp name would interleave them
            for k in range(0, _SIZE, 4096):
                fh.write(_payload(i)[k : k + 4096])


def _check_one_version(path, writers: int) -> None:
    data = path.read_bytes()
    assert len(data) == _SIZE
    assert data in {_payload(i) for i in range(writers)}
    assert os.listdir(path.parent) == [path.name]  # no temporary file left


def test_concurrent_threads_leave_one_complete_version(tmp_path):
    target = tmp_path / "out.bin"
    threads = [threading.Thread(target=_write_many, args=(str(target), i, 15)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_one_version(target, 4)


_CHILD = """
import sys
from augbal._atomic import atomic_write
path, i, rounds, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = bytes([65 + i]) * size
for _ in range(rounds):
    with atomic_write(path, "wb", fsync=False) as fh:
        for k in range(0, size, 4096):
            fh.write(data[k : k + 4096])
"""


def test_concurrent_processes_leave_one_complete_version(tmp_path):
    target = tmp_path / "out.bin"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(augbal.__file__))]
                                                       + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(target), str(i), "20", str(_SIZE)], env=env)
        for i in range(3)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    _check_one_version(target, 3)


def test_readers_never_see_a_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, _payload(0))
    stop = threading.Event()
    seen = set()

    def read():
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        _write_many(str(target), 1, 10)
        _write_many(str(target), 2, 10)
    finally:
        stop.set()
        reader.join()
    assert seen <= {_payload(0), _payload(1), _payload(2)}


def test_exception_mid_write_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "m.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as fh:
            fh.write("new, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["m.csv"]


def test_exception_before_any_file_exists_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "x.txt") as fh:
            fh.write("x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_creates_parents_text_options_and_umask_permissions(tmp_path):
    target = tmp_path / "a" / "b" / "t.csv"
    old = os.umask(0o027)
    try:
        atomic_write_text(target, "x\ny\n", newline="\r\n")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"x\r\ny\r\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # not mkstemp's 0600
    atomic_write_text(target, "\udcff", errors="surrogateescape")
    assert target.read_bytes() == b"\xff"


def test_replaces_an_existing_file_and_keeps_a_symlink_free_folder(tmp_path):
    target = tmp_path / "t.bin"
    atomic_write_bytes(target, b"1")
    atomic_write_bytes(target, b"22")
    assert target.read_bytes() == b"22" and os.listdir(tmp_path) == ["t.bin"]


def test_bad_mode():
    with pytest.raises(ValueError, match=r"mode must be 'w' or 'wb'; got 'a'"):
        with atomic_write("x", "a"):
            pass


def test_a_folder_that_refuses_new_files_is_reported_against_the_target(tmp_path, monkeypatch):
    # the temporary name (".a.txt.<random>.part") is no name the caller gave: the CLI's
    # one-line error read "Permission denied: /data/.a.txt.k2j3_x.part"
    import tempfile

    def refuse(*, dir, prefix, suffix):
        name = os.path.join(dir, f"{prefix}k2j3_x{suffix}")
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    target = tmp_path / "a.txt"
    with pytest.raises(PermissionError) as info:
        atomic_write_text(target, "x")
    assert info.value.filename == str(target) and info.value.errno == 13
    assert str(info.value) == f"[Errno 13] Permission denied: '{target}'"
    assert os.listdir(tmp_path) == []


def test_replacing_a_file_keeps_its_permission_bits(tmp_path):
    target = tmp_path / "run.sh"
    target.write_text("old")
    os.chmod(target, 0o750)
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750


def test_writing_through_a_symlink_replaces_the_file_it_points_to_and_keeps_the_link(tmp_path):
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    assert sorted(os.listdir(real.parent)) == ["real.txt"] and sorted(os.listdir(tmp_path)) == ["data", "link.txt"]
