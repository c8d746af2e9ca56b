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
    result = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out" / "images").rglob("*.jpg"))) == 840
    assert str((tmp_path / "out").resolve()) in result.output


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
