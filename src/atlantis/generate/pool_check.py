"""Which files of a retrieval pool are usable images, remembered per file between runs.

A pool is a folder the user filled (a web scrape, a photo dump), so some files are empty,
cut short or not images at all. Each is found before the pool is captioned, embedded or
picked from: a bad file caught only when picked would abort the stage (or, skipped then,
would already have cost a caption and a slot in the scores). Every file's pixels are
decoded once (``check_decodes``); the verdict is kept in a small JSON file keyed by the
file's size and modification time, so the next run (the other arm, a resume) only stats
the pool, and a file that changes is checked again.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from atlantis.data.images import check_decodes, require_strict_decoding
from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_text

#: Bump when what counts as usable changes, so stored verdicts are not reused.
CHECK_VERSION = 1


def check_pool(pool: Path, files: list[str], cache_file: Path | None) -> dict[str, str]:
    """``{file: why it is unusable}`` for the bad ones among ``files`` (relative to ``pool``).

    ``cache_file`` holds earlier verdicts (None: check everything, store nothing); an
    unreadable or foreign cache file is simply checked again and rewritten.
    """
    require_strict_decoding(pool)  # else every cut-short file would be stored as usable
    known = _read_verdicts(cache_file) if cache_file is not None else {}
    verdicts: dict[str, list] = {}
    for file in files:
        path = pool / file
        try:
            st = path.stat()
        except OSError as e:  # vanished since the listing, a dangling link, no permission
            verdicts[file] = [None, None, f"cannot be read ({e.strerror or e})"]
            continue
        previous = known.get(file)
        if previous and previous[:2] == [st.st_size, st.st_mtime_ns]:
            verdicts[file] = previous
            continue
        verdicts[file] = [st.st_size, st.st_mtime_ns, _why_unusable(path, st.st_size)]
    if cache_file is not None and verdicts != {f: known.get(f) for f in verdicts}:
        body = {"version": CHECK_VERSION, "max_pixels": Image.MAX_IMAGE_PIXELS, "pool": str(pool),
                "files": verdicts}  # fmt: skip
        atomic_write_text(cache_file, json.dumps(body, ensure_ascii=False) + "\n")
    return {f: v[2] for f, v in verdicts.items() if v[2] is not None}


def _why_unusable(path: Path, size: int) -> str | None:
    if size == 0:
        return "an empty (zero-byte) file"
    try:
        check_decodes(path)
    except DataError as e:  # a decompression bomb, worded with the file's name
        return str(e).removeprefix(f"{path}: ")
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...
        detail = type(e).__name__ if str(path) in str(e) else f"{type(e).__name__}: {e}"
        return f"not a readable image ({detail})"
    return None


def _read_verdicts(cache_file: Path) -> dict[str, list]:
    try:
        body = json.loads(cache_file.read_text(encoding="utf-8"))
        # The bomb limit decides what is refused: verdicts under another limit do not count.
        same = (body.get("version"), body.get("max_pixels")) == (
            CHECK_VERSION,
            Image.MAX_IMAGE_PIXELS,
        )
        files = body["files"] if same else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {f: v for f, v in files.items() if isinstance(v, list) and len(v) == 3}
