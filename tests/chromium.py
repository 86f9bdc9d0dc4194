"""Headless Chromium (Debian's ``chromium``, installed by scripts/setup.sh) for render tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="/usr/bin/chromium is not installed")  # fmt: skip


def assert_renders(page: Path | str, tmp_path: Path, size: tuple[int, int] = (1200, 1600),
                   min_colours: int = 20) -> Path:  # fmt: skip
    """Screenshot ``page`` (a file, or an ``http://127.0.0.1`` URL of a test server) and
    check it is a real page: not blank, not an error. Returns the screenshot."""
    from PIL import Image

    url = page if isinstance(page, str) else page.resolve().as_uri()
    shot = tmp_path / "shot.png"
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
        f"--window-size={size[0]},{size[1]}", url,
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    assert shot.exists() and shot.stat().st_size > 10_000
    with Image.open(shot) as im:
        assert im.size == size
        colours = im.convert("RGB").resize((120, 160)).getcolors(maxcolors=100_000) or []
        assert len(colours) > min_colours  # text, tables and charts: not a blank page
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    return shot
