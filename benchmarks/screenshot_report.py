"""Render a bench ``report.html`` in headless Chromium and save a full-page screenshot.

The report is self-contained (plots embedded as data URIs), so it renders from a
``file://`` URL with the network off. Needs Debian's ``chromium`` package
(``apt-get install chromium``); never part of ``make test``.

    python benchmarks/screenshot_report.py bench-seedlike-3/report/report.html benchmarks/seedlike-3-report.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=4200, help="the page height captured, in CSS pixels")
    args = ap.parse_args()
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print("no headless browser found: apt-get install chromium", file=sys.stderr)
        return 2
    if not args.html.is_file():
        print(f"{args.html}: no such report", file=sys.stderr)
        return 2
    args.png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
            f"--window-size={args.width},{args.height}", f"--screenshot={args.png.resolve()}",
            args.html.resolve().as_uri(),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not args.png.is_file():
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    print(f"{args.png} ({args.png.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
