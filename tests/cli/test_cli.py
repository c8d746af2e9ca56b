import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import augbal
from augbal.cli import cli


def test_version_matches_package():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"augbal, version {augbal.__version__}"


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.commands:
        assert f"  {name} " in result.output


def test_scan_reports_exact_counts_on_demo_set(demo_root):
    result = CliRunner().invoke(cli, ["scan", str(demo_root)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in lines if line.count("│") >= 3}
    assert rows["cat"] == "60" and rows["deer"] == "600" and rows["dog"] == "180"
    assert rows["total"] == "840"
    assert "imbalance ratio (largest/smallest): 10.0" in result.output
    assert "image sizes: 32x32 (840)" in result.output
    assert "modes: RGB (840)" in result.output
    assert "problems: 0" in result.output


def test_scan_lists_problems(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "a" / "notes.txt").write_text("hello")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "problems: 2" in result.output
    assert "broken.jpg" in result.output and "notes.txt" in result.output


def test_scan_missing_path_is_usage_error(tmp_path):
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["scan", str(missing)])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_scan_folder_without_classes_is_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["scan", str(tmp_path)])
    assert result.exit_code == 2
    assert "no class folders" in result.output


def test_unknown_command_exits_2():
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2


def test_demo_writes_images_and_reports(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "out"), "--no-bench"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert len(list((out / "images").rglob("*.jpg"))) == 840
    assert str(out.resolve()) in result.output
    # split manifests: balanced test, skewed val, the rest in train
    lines = {side: (out / "splits" / f"{side}.csv").read_text().splitlines() for side in ("train", "val", "test")}
    assert [len(v) - 1 for v in lines.values()] == [712, 68, 60]
    assert sum(line.endswith(",cat,") for line in lines["test"]) == 20
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") >= 6}
    assert rows["balanced"].split("│")[2:5] == [" 238 ", "  237 ", " 237 "]
    assert rows["instance"].split("│")[2:5] == ["  32 ", "  540 ", " 140 "]
    from PIL import Image

    with Image.open(out / "augment" / "repeats.png") as im:
        assert im.size == (9 * 64, 3 * 64)
    first = (out / "augment" / "repeats.png").read_bytes()
    (out / "augment" / "repeats.png").unlink()
    again = CliRunner().invoke(cli, ["demo", "--out", str(out), "--no-bench"])
    assert again.exit_code == 0
    assert (out / "augment" / "repeats.png").read_bytes() == first  # seeded: byte-identical


def test_demo_builds_and_benches_into_a_report(tmp_path, monkeypatch):
    import augbal._tour

    # the real demo runs 5 strategies x 2 seeds; two runs show the same pipeline
    monkeypatch.setattr(augbal._tour, "DEMO_STRATEGIES", ("ce", "logit-adjust"))
    monkeypatch.setattr(augbal._tour, "DEMO_SEEDS", 1)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-cache"))  # no ImageNet weights cached
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    text = " ".join(result.output.split())
    assert "6. build-dataset" in text and "random weights" in text and "only show the pipeline working" in text
    assert "On demo, " in text and "augbal bench --recipe recipes/seedlike-3-bench.yaml" in text
    built = [line for line in (out / "balanced" / "manifest.csv").read_text().splitlines()[1:] if ",train," in line]
    assert len(built) == 384 + 480 + 480  # cat capped by --max-multiplier 8 (48 originals)
    html = (out / "bench" / "report" / "report.html").read_text()
    assert "ce" in html and "logit-adjust" in html and "random weights" in html
    assert len(list((out / "bench" / "runs").iterdir())) == 2


def test_console_script_and_module_entry_points(demo_root):
    exe = Path(sys.executable).with_name("augbal")
    env = dict(os.environ, COLUMNS="100")
    via_script = subprocess.run([str(exe), "scan", str(demo_root)], capture_output=True, text=True, env=env)
    via_module = subprocess.run(
        [sys.executable, "-m", "augbal", "scan", str(demo_root)], capture_output=True, text=True, env=env
    )
    assert via_script.returncode == 0, via_script.stderr
    assert via_module.returncode == 0, via_module.stderr
    assert "total" in via_script.stdout and "840" in via_script.stdout
    assert via_module.stdout.splitlines()[:8] == via_script.stdout.splitlines()[:8]


def test_import_is_light():
    code = "import sys, augbal; print('torch' in sys.modules, 'augbal.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def _scan_tree(root):
    import shutil

    import numpy as np
    from PIL import Image

    for c, n in (("a", 4), ("b", 3)):
        for i in range(n):
            small = np.random.default_rng(10 * len(c) + i + (100 if c == "b" else 0)).integers(0, 256, (4, 4, 3), dtype=np.uint8)
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(small).resize((32, 32), Image.BICUBIC).save(root / c / f"{i}.png")
    shutil.copy(root / "a" / "0.png", root / "b" / "dup.png")
    (root / "empty").mkdir()
    (root / "b" / "cut.png").write_bytes((root / "a" / "1.png").read_bytes()[:60])
    (root / "a" / ".DS_Store").write_bytes(b"\0")
    (root / "a" / "notes.txt").write_text("x")
    return root


def test_scan_reports_problems_duplicates_and_writes_csv(tmp_path):
    root = _scan_tree(tmp_path / "data")
    report = tmp_path / "problems.csv"
    result = CliRunner().invoke(cli, ["scan", str(root), "--problems-csv", str(report)])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines() if line.count("│") >= 3}
    assert rows["a"] == "4" and rows["b"] == "4" and rows["empty"] == "0" and rows["total"] == "8"
    assert "empty classes: empty" in result.output
    assert "problems: 3   quarantined: 1   skipped: hidden 1, not-image 1" in result.output
    assert "  truncated: 1" in result.output and "cut.png" in result.output
    assert "duplicate groups: 1 (exact 1, near 0)   images in groups: 2   across classes: 1" in result.output
    assert "exact across classes:" in result.output and "dup.png (b)" in result.output
    lines = report.read_text().splitlines()
    assert lines[0] == "path,kind,reason" and len(lines) == 4


def test_scan_fail_on_empty_and_few_images_warning(tmp_path):
    root = _scan_tree(tmp_path)
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-allow-empty"])
    assert result.exit_code == 1
    assert "empty classes in" in result.output and ": empty" in result.output
    (root / "empty" / "only.png").write_bytes((root / "a" / "1.png").read_bytes())
    result = CliRunner().invoke(cli, ["scan", str(root), "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    assert "warning: classes with only 1 or 2 images" in result.output and "empty (1)" in result.output


def test_scan_manifest_and_bad_arguments(tmp_path):
    root = _scan_tree(tmp_path / "data")
    (tmp_path / "m.csv").write_text("path,label\ndata/a/0.png,x\ndata/a/1.png,y\ndata/a/2.png,y\n")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / "m.csv"), "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "imbalance ratio (largest/smallest): 2.0" in result.output
    (tmp_path / "bad.csv").write_text("path,label\nnope.png,x\n")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / "bad.csv")])
    assert result.exit_code == 1 and "lists no images (1 bad row: bad.csv:2: nope.png: no such file)" in result.output
    result = CliRunner().invoke(cli, ["scan", str(root), "--formats", "jpeg", "--no-near-duplicates"])
    assert result.exit_code == 0 and "  format: 9" in result.output and "image format PNG is not allowed" in result.output
    for args in (["--max-distance", "64"], ["--workers", "0"], ["--classes", " , "], ["--formats", ","]):
        result = CliRunner().invoke(cli, ["scan", str(root), *args])
        assert result.exit_code == 2, (args, result.output)
    (tmp_path / "notes.txt").write_text("x")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / "notes.txt")])
    assert result.exit_code == 2 and ".csv or .jsonl" in result.output


def test_scan_progress_bar_starts_no_thread(monkeypatch):
    # scan forks its readers only while the process runs one thread (see data._scan._executor)
    import threading

    from augbal.cli._scan import _progress_bar

    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: stderr is a terminal
    before = threading.active_count()
    with _progress_bar() as update:
        assert update is not None
        update(1, 2)
        assert threading.active_count() == before


def test_scan_prints_class_names_with_brackets_verbatim(tmp_path):
    import numpy as np
    from PIL import Image

    names = ("[background]", "[bold]cat", "dog")
    for k, name in enumerate(names):
        for i in range(3):
            (tmp_path / "d[v2]" / name).mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(10 * k + i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "d[v2]" / name / f"{i}.png")
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / "d[v2]"), "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1].strip() for line in result.output.splitlines() if line.count("│") >= 3]
    assert rows[:3] == list(names)
    assert str(tmp_path / "d[v2]") in result.output


def test_scan_os_errors_are_one_line_errors_not_tracebacks(tmp_path, monkeypatch):
    import augbal.data._scan as scan_module

    # (a problems report that cannot be written: tests/cli/test_cli_errors.py)
    root = _scan_tree(tmp_path / "data")

    def unreadable(path, *args):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(scan_module, "_list_folder", unreadable)
    result = CliRunner().invoke(cli, ["scan", str(root)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"cannot scan {root}" in result.output and "Permission denied" in result.output


def test_scan_formats_are_checked_and_jpg_is_jpeg(demo_root):
    result = CliRunner().invoke(cli, ["scan", str(demo_root), "--formats", "jpg", "--no-near-duplicates"])
    assert result.exit_code == 0, result.output
    assert "problems: 0" in result.output and "total │    840" in result.output
    result = CliRunner().invoke(cli, ["scan", str(demo_root), "--formats", "png,jepg"])
    assert result.exit_code == 2 and "unknown: JEPG" in result.output
