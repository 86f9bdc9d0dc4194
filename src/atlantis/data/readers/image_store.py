"""Images held as bytes (in Parquet or Arrow tables) become files, once, named by their content.

Every later stage reads images from disk by a path relative to the dataset root, so a reader
whose data keeps the images inside its tables writes them out here: ``<sha256>.<ext>`` under
a two-character fan-out folder, the extension taken from the bytes' own format. The name is
the content, so a re-read finds each file already there and writes nothing; each write is
atomic (temp file, then rename), so a read cut short leaves only whole files behind and the
next one carries on.

The folder is ``<root>/.atlantis-images/`` when the dataset root is writable, so the files
travel with the dataset; otherwise ``<data home>/hf-images/<digest of the root>/`` (data
home: ``$ATLANTIS_HOME`` or ``~/.cache/atlantis``).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from atlantis.data.emoji import data_home
from atlantis.data.readers.common import SKIP_HINT
from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_bytes

FOLDER_NAME = ".atlantis-images"

#: PIL's format name -> the file extension the rest of ATLANTIS reads.
EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",  # a JPEG with extra frames (phone cameras); PIL reads it as JPEG
    "PNG": ".png",
    "GIF": ".gif",
    "BMP": ".bmp",
    "WEBP": ".webp",
    "TIFF": ".tif",
}


class ImageStore:
    """Content-addressed image files for the dataset at ``root``; the folder is made on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written = 0  # files this read wrote (0 on a re-read)
        self._folder: Path | None = None

    @property
    def used(self) -> bool:
        return self._folder is not None

    @property
    def inside_root(self) -> bool:
        """True when the files live under the dataset root (it was writable)."""
        return self._folder is not None and self._folder.is_relative_to(self.root)

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = _choose_folder(self.root)
        return self._folder

    def put(self, data: bytes, where: str) -> Path:
        """The file holding ``data`` (written now unless already there); ``where`` names the row."""
        ext = image_extension(data, where)
        digest = hashlib.sha256(data).hexdigest()
        path = self.folder / digest[:2] / f"{digest}{ext}"
        if not path.is_file():
            atomic_write_bytes(path, data)
            self.written += 1
        return path


def image_extension(data: bytes, where: str) -> str:
    """The extension of the image format ``data`` is in; ``DataError`` when it is not an image."""
    if not data:
        raise DataError(f"image bytes are empty{SKIP_HINT}", where)
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format or ""
    except Exception as e:  # PIL raises many types (UnidentifiedImageError, OSError, ...)
        raise DataError(
            f"image bytes are not a readable image ({type(e).__name__}){SKIP_HINT}", where
        ) from None
    if fmt not in EXTENSIONS:
        raise DataError(
            f"image bytes are in format {fmt or 'unknown'}, which ATLANTIS does not read "
            f"(it reads {', '.join(sorted(set(EXTENSIONS) - {'MPO'}))}){SKIP_HINT}",
            where,
        )
    return EXTENSIONS[fmt]


def _choose_folder(root: Path) -> Path:
    """``<root>/.atlantis-images`` when it can be written, else a per-root cache folder."""
    inside = root / FOLDER_NAME
    try:
        inside.mkdir(exist_ok=True)
        if os.access(inside, os.W_OK | os.X_OK):
            return inside
    except OSError:
        pass
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    outside = data_home() / "hf-images" / digest
    outside.mkdir(parents=True, exist_ok=True)
    return outside
