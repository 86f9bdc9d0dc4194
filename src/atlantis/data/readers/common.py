"""Helpers every dataset reader shares: safe paths, image checks, and ``--skip-bad``.

Readers parse untrusted files written by other people's tools, so each one answers the same
three questions the same way: does this path stay inside the dataset root, is the file a
readable image, and should a bad item stop the run or be skipped and listed? Keeping the
answers here means every format reports problems with the same wording (file, line, reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atlantis.data.dataset import SkippedItem
from atlantis.data.images import check_decodes
from atlantis.data.records import safe_relative_path
from atlantis.errors import DataError

#: The way on after a bad or missing image, appended to its error (and dropped from the
#: skipped list, whose items *were* left out).
SKIP_HINT = "; fix or remove the file, or pass --skip-bad to leave it out"
MISSING_HINT = "; correct the path, or pass --skip-bad to leave it out"

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(name: str) -> bool:
    """True when the file name has an image extension (case-insensitive)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def resolve_under_root(
    root: Path, relative: str, source: Path | str, line: int | None = None
) -> tuple[str, Path]:
    """Return ``(normalised POSIX path, absolute path)`` for ``relative`` under ``root``.

    Rejects absolute paths, ``..`` and symlinks that resolve outside ``root``: a manifest
    must never make the tool read (or later copy) files it was not pointed at. ``source`` and
    ``line`` say where the path was written, so the error can point there.
    """
    try:
        rel = safe_relative_path(relative)
    except ValueError as e:
        raise DataError(str(e), source, line) from None
    full = root / rel
    real_root = root.resolve()
    if not full.resolve().is_relative_to(real_root):
        raise DataError(
            f"path {rel!r} resolves outside the dataset root {real_root} (through a symlink); "
            "copy the file into the dataset instead",
            source,
            line,
        )
    return rel, full


def check_image(
    path: Path | str, source: Path | str, line: int | None = None, *, verify: bool = True
) -> None:
    """Raise ``DataError`` unless ``path`` is an existing file whose pixels decode.

    The pixels are decoded (``check_decodes``), not just the headers parsed: a JPEG cut short
    has intact headers, and would otherwise pass here and fail hours later in ``embed``. The
    error names the image, and ``source`` / ``line`` where it was listed, and says how to go
    on (fix the file, or ``--skip-bad`` to leave it out).
    """
    path = Path(path)
    # Name the image only when the error does not already point at it (imagefolder's does).
    name = "" if Path(source) == path else f"{str(path)!r} "
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise DataError(f"image file {name}{what}{MISSING_HINT}", source, line)
    if not verify:
        return
    try:
        check_decodes(path)
    except DataError as e:  # a decompression bomb: its message already says what it is
        reason = str(e).removeprefix(f"{path}: ")
        raise DataError(f"image {name}{reason}{SKIP_HINT}", source, line) from None
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        detail = type(e).__name__ if str(path) in str(e) else f"{type(e).__name__}: {e}"
        what = f"{name}is not" if name else "not"
        raise DataError(f"{what} a readable image ({detail}){SKIP_HINT}", source, line) from None


@contextmanager
def utf8_text(file: Path) -> Iterator[None]:
    """Turn a text file's bad encoding, met while reading it, into a ``DataError``.

    Index files and manifests are often saved by spreadsheet programs in a legacy code page
    (``caf\xe9`` in cp1252); Python's error gives a byte offset into an internal buffer, so the
    line is found again here, on this error path only.
    """
    try:
        yield
    except UnicodeDecodeError as e:
        bad = f"byte {e.object[e.start]:#04x}" if e.start < len(e.object) else "a byte"
        raise DataError(
            f"not UTF-8 text ({bad} cannot be decoded); save the file as UTF-8",
            file,
            _first_non_utf8_line(file),
        ) from None


def _first_non_utf8_line(file: Path) -> int | None:
    with open(file, "rb") as fh:
        for line, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line
    return None


class BadItems:
    """Collects bad items under ``skip_bad``; otherwise lets the first one stop the read.

    Usage, per item::

        with bad.guard(path=rel):
            ...  # parse, check, then append the record last
    """

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.skipped: list[SkippedItem] = []
        self._first_seen: dict[str, str] = {}

    @contextmanager
    def guard(self, path: str | None = None) -> Iterator[None]:
        """Run one item's checks; a ``DataError`` inside is recorded (skip_bad) or re-raised."""
        try:
            yield
        except DataError as e:
            if not self.skip_bad:
                raise
            self.skipped.append(_skipped_from(e, path))

    def claim_id(self, record_id: str, source: Path | str, line: int | None = None) -> None:
        """Reserve ``record_id``; a second use is an error pointing at both places."""
        where = f"{source}:{line}" if line is not None else str(source)
        if record_id in self._first_seen:
            raise DataError(
                f"duplicate id {record_id!r} (first used at {self._first_seen[record_id]}); "
                "ids must be unique",
                source,
                line,
            )
        self._first_seen[record_id] = where


def _skipped_from(err: DataError, path: str | None) -> SkippedItem:
    """Split a ``DataError`` back into where it happened and why."""
    message = str(err).removesuffix(SKIP_HINT).removesuffix(MISSING_HINT)
    if err.path is None:
        return SkippedItem(source="", reason=message, path=path)
    source = str(err.path) if err.line is None else f"{err.path}:{err.line}"
    return SkippedItem(source=source, reason=message.removeprefix(source + ": "), path=path)
