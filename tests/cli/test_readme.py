"""The README's claims that the CLI makes: links stay in the repository; the error example is real output."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from augbal.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
pytestmark = pytest.mark.skipif(not README.is_file(), reason="needs the source tree's README.md")


def test_readme_points_only_inside_the_repository():
    text = README.read_text()
    assert "../" not in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert "docs/ROADMAP.md" in local
    for link in local:
        assert (README.parent / link).exists(), link


def test_readme_cli_error_example_is_real_output(demo_root):
    text = README.read_text()
    block = text.split("$ augbal scan mydata --classes cat,cat\n", 1)[1].split("```", 1)[0]
    result = CliRunner().invoke(cli, ["scan", str(demo_root), "--classes", "cat,cat"], prog_name="augbal")
    assert result.exit_code == 2
    assert result.output == block
