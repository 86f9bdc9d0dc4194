"""Pool images that are dataset images: found before any is picked, then dropped or refused.

A retrieval pool is a folder the user filled, and nothing stops it from holding the
dataset's own images: a test image picked into training leaks the answer into the model, and
a train image counts twice. Each pool image is compared with every ingested image of the
run (train, val, test, and the images a scenario withheld) by two signatures of its pixels,
both taken after compositing transparency on white and applying the EXIF orientation:

* **exact**: the sha256 of the RGB pixels (and size). The same picture saved as another
  format, or with other metadata, matches; one changed pixel does not.
* **near**: a ``THUMB`` x ``THUMB`` colour thumbnail (box filter: the mean colour of each
  cell), smoothed by a 3 x 3 mean over cells. A pool image is a near copy when its smoothed
  thumbnail and a dataset image's differ by at most ``NEAR_MAX`` grey levels (of 255) in
  every cell and channel. Resampling and JPEG only move colour across nearby edges, which
  the smoothing cancels; a different picture changes a region's colour, which it does not.
  Measured on the demo's 64-pixel emoji: 2x upscaled (JPEG q90) and 1.5x (q75) copies are
  all found, 3/4-size q85 copies 86 %, half-size q95 copies 70 % (a 32-pixel copy of a
  64-pixel drawing has lost its detail); of the 5,381 pool images that are not exact copies
  only one is flagged, a skin-tone variant whose skin is three pixels. Bigger pictures fare
  better: a 256-pixel drawing's half-size JPEG q75 copy differs by 7 levels, a textured
  one's by 4, its quarter-size copy by 10. Crops, flips and heavy edits are not detected.

The verdict is stored once per (pool files, dataset files) under the run's cache, keyed by
file names, sizes and modification times, so the second arm and a re-run only stat both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from atlantis.data.images import open_image
from atlantis.embed.base import progress_bar
from atlantis.embed.preprocess import to_rgb
from atlantis.generate.pool_files import update_stamp
from atlantis.store.atomic import atomic_write_text

#: Bump when the signatures or the thresholds change, so stored verdicts are not reused.
LEAK_VERSION = 1
#: Thumbnail side, in cells.
THUMB = 16
#: Near copy: no cell/channel of the smoothed thumbnails differs by more (grey levels).
NEAR_MAX = 10.0
#: Pool rows compared with the whole dataset at once (memory: rows x dataset images floats).
_CHUNK = 256


@dataclass(frozen=True)
class Leak:
    """One pool image that is a dataset image."""

    file: str  # relative to the pool
    image_id: str  # the dataset record it copies
    split: str
    kind: str  # "exact" or "near"
    diff: float  # largest smoothed-thumbnail difference, grey levels (0 for exact)

    def describe(self) -> str:
        how = "the same pixels" if self.kind == "exact" else f"a near copy ({self.diff:.1f} levels)"
        return f"{self.file} = {self.split} image {self.image_id!r} ({how})"


def signature(path: Path) -> tuple[str, np.ndarray] | None:
    """(sha256 of the RGB pixels on white, uint8 thumbnail) of ``path``; None if unreadable."""
    try:
        with open_image(path, warn=False) as im:
            rgb = to_rgb(ImageOps.exif_transpose(im))
    except Exception:  # an unreadable file is the decode check's business, not a leak
        return None
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}\0".encode() + rgb.tobytes()).hexdigest()
    thumb = rgb.resize((THUMB, THUMB), Image.Resampling.BOX)
    return digest, np.asarray(thumb, dtype=np.uint8)


def smoothed(thumb: np.ndarray) -> np.ndarray:
    """The 3 x 3 mean over cells (edges repeated) of a thumbnail, flattened, float32."""
    a = np.pad(thumb.astype(np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    n = thumb.shape[0]
    return (sum(a[i : i + n, j : j + n] for i in range(3) for j in range(3)) / 9).reshape(-1)


def find_leaks(
    pool: Path,
    files: Sequence[str],
    dataset: Sequence[tuple[str, str, Path]],
    cache_file: Path | None = None,
    progress: bool = False,
) -> list[Leak]:
    """The pool ``files`` (relative to ``pool``) that copy an image of ``dataset``.

    ``dataset``: (record id, split, file) per ingested image. ``cache_file`` holds the
    verdict of an earlier call over the same files (None: compute, store nothing).
    """
    key = _stamp(pool, files, dataset)
    if cache_file is not None and (stored := _read(cache_file, key)) is not None:
        return stored
    with progress_bar(progress) as bar:
        task = bar.add_task("pool leak check", total=len(files) + len(dataset))
        paths = [pool / f for f in files] + [p for _, _, p in dataset]
        with ThreadPoolExecutor(4) as threads:  # PIL decodes without the GIL
            sigs = []
            for sig in threads.map(signature, paths):
                sigs.append(sig)
                bar.advance(task)
    pool_sigs, data_sigs = sigs[: len(files)], sigs[len(files) :]
    leaks = _match(files, pool_sigs, dataset, data_sigs)
    if cache_file is not None:
        body = {"version": LEAK_VERSION, "key": key, "leaks": [asdict(x) for x in leaks]}
        atomic_write_text(cache_file, json.dumps(body, ensure_ascii=False) + "\n")
    return leaks


def _match(files: Sequence[str], pool_sigs: list, dataset: Sequence[tuple[str, str, Path]],
           data_sigs: list) -> list[Leak]:  # fmt: skip
    known = [i for i, s in enumerate(data_sigs) if s is not None]
    exact: dict[str, int] = {}
    for i in known:
        exact.setdefault(data_sigs[i][0], i)
    leaks: list[Leak] = []
    near_rows = []
    for j, sig in enumerate(pool_sigs):
        if sig is None:
            continue
        if (i := exact.get(sig[0])) is not None:
            leaks.append(Leak(files[j], dataset[i][0], dataset[i][1], "exact", 0.0))
        else:
            near_rows.append(j)
    if known and near_rows:
        thumbs = np.stack([smoothed(data_sigs[i][1]) for i in known])
        norms = (thumbs**2).sum(axis=1)
        # Every value within NEAR_MAX bounds the distance: a cheap screen, exact after.
        limit = NEAR_MAX**2 * thumbs.shape[1] + 1.0  # + float slack
        for start in range(0, len(near_rows), _CHUNK):
            rows = near_rows[start : start + _CHUNK]
            q = np.stack([smoothed(pool_sigs[j][1]) for j in rows])
            d2 = (q**2).sum(axis=1)[:, None] + norms[None, :] - 2.0 * (q @ thumbs.T)
            for r, j in enumerate(rows):
                candidates = np.flatnonzero(d2[r] <= limit)
                for c in candidates[np.argsort(d2[r][candidates], kind="stable")]:
                    worst = float(np.abs(thumbs[c] - q[r]).max())
                    if worst <= NEAR_MAX:
                        i = known[int(c)]
                        leaks.append(Leak(files[j], dataset[i][0], dataset[i][1], "near",
                                          round(worst, 2)))  # fmt: skip
                        break
    return sorted(leaks, key=lambda x: x.file)


def _stamp(pool: Path, files: Sequence[str], dataset: Sequence[tuple[str, str, Path]]) -> str:
    """Names, sizes and modification times of both sides (and this module's settings)."""
    h = hashlib.sha256(f"{LEAK_VERSION}|{THUMB}|{NEAR_MAX}|{pool}\n".encode())
    named = [(f, pool / f) for f in files] + [(f"{i}|{s}", p) for i, s, p in dataset]
    update_stamp(h, named, missing_ok=True)
    return h.hexdigest()


def _read(cache_file: Path, key: str) -> list[Leak] | None:
    try:
        body = json.loads(cache_file.read_text(encoding="utf-8"))
        if body.get("version") != LEAK_VERSION or body.get("key") != key:
            return None
        return [Leak(**row) for row in body["leaks"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
