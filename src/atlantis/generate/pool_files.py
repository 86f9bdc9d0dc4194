"""The retrieval pool's files: which ones are images, their change stamp, opening one.

A pool is a folder of images (recursive; hidden files and folders skipped), named by POSIX
paths relative to it in sort order: that order breaks score ties, so it is part of what a
pick means. A pool is recognised again by a cheap stamp of its files (names, sizes and
modification times), not by its path, so a pool moved with its files reuses earlier picks.
Caches about the pool live under the source's cache folder, else ``default_cache_dir()``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from atlantis.data.images import open_image
from atlantis.errors import ConfigError, DataError
from atlantis.generate.pool_check import check_pool
from atlantis.generate.pool_text import read_captions

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def list_pool(pool: Path) -> list[str]:
    """Image files under ``pool`` (recursive, hidden ones skipped), as sorted POSIX paths."""
    files = (p for p in pool.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    rels = (p.relative_to(pool).as_posix() for p in files)
    return sorted(r for r in rels if not any(part.startswith(".") for part in r.split("/")))


def resolve_pool(pool: str | None) -> Path:
    """The pool folder ``pool`` names, absolute; ``ConfigError`` when unset or not a folder."""
    if not pool:
        raise ConfigError(
            "the retrieve source needs a pool of images: "
            "--set generate.options.pool=/path/to/folder"
        )
    folder = Path(pool).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"retrieve pool {folder} is not a folder")
    return folder


def pool_listing(pool: Path, captions_file: Path | None, only_captioned: bool) -> list[str]:
    """``list_pool(pool)``, or with ``only_captioned`` the files the captions file captions
    (the pool's list, e.g. minus the test classes); ``ConfigError`` when none is left."""
    files = list_pool(pool)
    if only_captioned:
        if captions_file is None:
            raise ConfigError("only_captioned=true needs a captions file: captions=<file>")
        listed = read_captions(captions_file)
        files = [f for f in files if listed.get(f)]
    if not files:
        raise ConfigError(f"retrieve pool {pool} holds no images ({sorted(IMAGE_SUFFIXES)})")
    return files


def default_cache_dir() -> Path:
    """Where a source built without ``cache_dir`` keeps its caches: ``$ATLANTIS_HOME/cache``,
    else ``$XDG_CACHE_HOME/atlantis/cache``, else ``~/.cache/atlantis/cache``."""
    if home := os.environ.get("ATLANTIS_HOME"):
        return Path(home).expanduser() / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "atlantis" / "cache"


def update_stamp(h: Any, files: Iterable[tuple[str, Path]], *, missing_ok: bool = False) -> None:
    """Feed ``h`` (a hashlib object) one ``name\\0size\\0mtime_ns`` line per (name, file).

    A file that cannot be stat'ed raises ``OSError``, or with ``missing_ok`` adds
    ``name\\0missing``. These lines are in stored cache keys and identities: changing their
    wording invalidates every stored pick and leak verdict.
    """
    for name, path in files:
        try:
            st = path.stat()
        except OSError:
            if not missing_ok:
                raise
            h.update(f"{name}\0missing\n".encode())
        else:
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


def files_stamp(paths: Sequence[Path]) -> str:
    """Cheap change detector of files: names, sizes and modification times."""
    h = hashlib.sha256()
    update_stamp(h, ((p.name, p) for p in paths))
    return h.hexdigest()[:16]


def names_digest(files: Sequence[str]) -> str:
    """A short digest of a list of file names (their order counts)."""
    return hashlib.sha256("\n".join(files).encode("utf-8")).hexdigest()[:16]


def unreadable_files(pool: Path, files: list[str], cache_root: Path) -> dict[str, str]:
    """``{file: why}`` for the ``files`` of ``pool`` that are not readable images, with the
    verdicts kept under ``cache_root`` (see ``pool_check``)."""
    key = hashlib.sha256(str(pool).encode()).hexdigest()[:16]
    return check_pool(pool, files, cache_root / "retrieve" / "pool-checks" / f"{key}.json")


def none_readable(pool: Path, bad: dict[str, str]) -> DataError:
    """The error for a pool whose image files are all ``bad`` (file -> why)."""
    first, why = next(iter(bad.items()))
    return DataError(
        f"none of the retrieve pool's {len(bad)} image file(s) can be read (e.g. "
        f"{first}: {why}); replace them, or point generate.options.pool at another "
        "folder",
        pool,
    )


def open_pool_image(path: Path) -> Image.Image:
    """The decoded image at ``path``; ``DataError`` naming it when it fails."""
    try:
        with open_image(path) as im:
            im.load()
            return im.copy()
    except DataError:  # a decompression bomb, worded with the file's name
        raise
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise DataError(f"not a readable image ({type(e).__name__}: {e})", path) from None
