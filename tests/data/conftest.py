"""Fixtures that write tiny real images, so reader tests exercise PIL on actual files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

MakeImage = Callable[..., Path]


def write_image(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    """Write an 8x8 image whose format follows the extension (.png, .jpg, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def make_image() -> MakeImage:
    """``make_image(path, color=...)``: write a tiny real image and return its path."""
    return write_image


@pytest.fixture
def make_text() -> Callable[[Path, str], Path]:
    """``make_text(path, text)``: write a text file (creating folders) and return its path."""
    return write_text
