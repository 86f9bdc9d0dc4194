"""Image files damaged the way real ones are: cut short with their headers intact.

A file cut anywhere in its headers fails ``Image.open`` and was always caught; these keep
every header (and, for PNG, valid chunk framing and checksums) and lose pixel data, which
is what ``Image.verify()`` alone lets through.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noisy_image(path: Path, size: int = 48, seed: int = 0) -> Path:
    """Write a noise image (format from the suffix): enough pixel data to cut in half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truncate_jpeg(path: Path) -> Path:
    """Cut a JPEG in the middle of its entropy-coded scan (after the SOS header)."""
    data = path.read_bytes()
    sos = data.index(b"\xff\xda")
    header_end = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    scan = len(data) - header_end
    assert scan > 100, f"{path}: too little scan data to cut ({scan} bytes)"
    path.write_bytes(data[: header_end + scan // 2])
    return path


def truncate_png_pixels(path: Path) -> Path:
    """Keep half of a PNG's compressed pixel data, in well-formed chunks with valid CRCs."""
    data = path.read_bytes()
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    assert len(idat) > 100, f"{path}: too little pixel data to cut ({len(idat)} bytes)"
    out, cut_written = [data[:8]], False
    for kind, body in chunks:
        if kind == b"IDAT":
            if cut_written:
                continue
            body, cut_written = idat[: len(idat) // 2], True
        out.append(struct.pack(">I", len(body)) + kind + body)
        out.append(struct.pack(">I", zlib.crc32(kind + body)))
    path.write_bytes(b"".join(out))
    return path


def truncate(path: Path) -> Path:
    """Cut ``path`` short by its format (JPEG or PNG), first making it a noise image."""
    noisy_image(path)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        return truncate_jpeg(path)
    return truncate_png_pixels(path)
