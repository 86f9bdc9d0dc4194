"""A content-addressed store of image embeddings, safe to kill at any moment.

Embedding is the slowest CPU step of a run, and the same images (the training set, the
gallery) are embedded again by every stage and every re-run. Vectors are therefore stored
by the sha256 of the image *file bytes* (renaming or moving a file costs nothing), in one
folder per embedder identity: ``<folder>/<sha256(embedder key)[:16]>/``. Vectors from two
embedders can never mix, and ``key.txt`` in the folder records the full key for humans.

Each ``put_many`` writes one small ``.npz`` shard atomically (temp file, fsync, rename), so
a run killed half-way keeps every finished batch and never leaves a half-written shard.
A shard that is unreadable anyway (a disk error, a manual truncation) is skipped with a
warning: its vectors are simply recomputed. When many shards pile up they are merged into
one, so that opening the cache stays fast.

The content digests that identify things live here too: ``content_hash`` for image files and
``weights_fingerprint`` for local checkpoints (which backends fold into their keys).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from atlantis.errors import DataError
from atlantis.store.atomic import atomic_write_bytes, atomic_write_text, file_sha256

SHARD_GLOB = "shard-*.npz"
KEY_FILE = "key.txt"


def cache_dir_name(embedder_key: str) -> str:
    """The per-embedder folder name: a short, filesystem-safe digest of the full key."""
    return hashlib.sha256(embedder_key.encode("utf-8")).hexdigest()[:16]


def content_hash(path: Path) -> str:
    """sha256 of an image file's bytes (the cache's lookup key), or ``DataError`` naming it."""
    try:
        return file_sha256(path)
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror or exc})", path) from exc


def weights_identity(source: str, revision: str | None = None) -> str:
    """Cache-key identity of model weights: a content digest for a local folder or file, the
    hub id and revision otherwise (a model retrained in place then never serves stale vectors)."""
    if Path(source).exists():
        return f"dir:{weights_fingerprint(source)}"
    return f"hub:{source}@{revision or 'main'}"


def weights_fingerprint(path: Path | str) -> str:
    """Short content digest of a local checkpoint file or model folder, for cache keys.

    A path alone would keep serving stale vectors after a checkpoint is retrained in place;
    the digest changes with the bytes and survives moving the file.
    """
    p = Path(path).resolve()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        stamp = tuple(
            (str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in files
        )
    else:
        st = p.stat()
        stamp = ((p.name, st.st_size, st.st_mtime_ns),)
    return _fingerprint(str(p), stamp)


@lru_cache(maxsize=64)
def _fingerprint(root: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    # Keyed on (path, sizes, mtimes) so each checkpoint is hashed once per process.
    base = Path(root)
    h = hashlib.sha256()
    if not base.is_dir():
        return file_sha256(base)[:16]
    for name, _, _ in stamp:
        h.update(name.encode() + b"\0" + file_sha256(base / name).encode())
    return h.hexdigest()[:16]


class EmbeddingCache:
    """Content hash (sha256 hex of the image file) -> float32 vector, for one embedder."""

    def __init__(self, folder: Path | str, embedder_key: str, max_shards: int = 256) -> None:
        self.embedder_key = embedder_key
        self.root = Path(folder) / cache_dir_name(embedder_key)
        # Above this many shards, ``compact_if_needed`` merges them (see ``compact``).
        self.max_shards = max_shards
        self._vectors: dict[str, np.ndarray] | None = None
        self._shards: list[Path] = []

    # ---------------------------------------------------------------- reading

    def _check_key_file(self) -> None:
        key_file = self.root / KEY_FILE
        if key_file.exists():
            recorded = key_file.read_text(encoding="utf-8").strip()
            if recorded != self.embedder_key:
                raise DataError(
                    f"this cache folder belongs to embedder {recorded!r}, not "
                    f"{self.embedder_key!r}; delete the folder or point the cache elsewhere",
                    key_file,
                )

    def _load(self) -> dict[str, np.ndarray]:
        """Read every shard once; later lookups are dictionary hits."""
        if self._vectors is not None:
            return self._vectors
        self._check_key_file()
        vectors: dict[str, np.ndarray] = {}
        self._shards = sorted(self.root.glob(SHARD_GLOB)) if self.root.is_dir() else []
        dim: int | None = None
        for shard in self._shards:
            try:
                keys, array = _read_shard(shard)
            except Exception as exc:  # zip, npy-header, shape and OS errors alike
                warnings.warn(
                    f"ignoring unreadable embedding cache shard {shard} ({exc}); "
                    "its images will be embedded again",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if dim is not None and array.shape[1] != dim:
                warnings.warn(
                    f"ignoring embedding cache shard {shard}: vectors of dimension "
                    f"{array.shape[1]}, expected {dim}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            dim = array.shape[1]
            vectors.update(zip(keys.tolist(), array, strict=True))
        self._vectors = vectors
        return vectors

    def get_many(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``hashes`` (missing ones are simply absent)."""
        vectors = self._load()
        return {h: vectors[h] for h in hashes if h in vectors}

    def __contains__(self, content_hash: object) -> bool:
        return content_hash in self._load()

    def __len__(self) -> int:
        return len(self._load())

    # ---------------------------------------------------------------- writing

    def put_many(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Store one batch durably, as one new shard, before returning."""
        hashes = list(hashes)
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(hashes):
            raise ValueError(f"expected {len(hashes)} vectors, got an array of shape {array.shape}")
        if not hashes:
            return
        existing = self._load()
        self._write_key_file()
        self._write_shard(hashes, array)
        existing.update(zip(hashes, array, strict=True))

    def compact(self) -> None:
        """Merge all shards into one (written first, so a crash loses nothing)."""
        vectors = self._load()
        old = list(self._shards)
        if len(old) <= 1 or not vectors:
            return
        keys = list(vectors)
        merged = self._write_shard(keys, np.stack([vectors[k] for k in keys]))
        for shard in old:
            if shard != merged:
                shard.unlink(missing_ok=True)
        self._shards = [merged]

    def compact_if_needed(self) -> None:
        if len(self._shards) > self.max_shards:
            self.compact()

    def _write_key_file(self) -> None:
        key_file = self.root / KEY_FILE
        if not key_file.exists():
            atomic_write_text(key_file, self.embedder_key + "\n")

    def _write_shard(self, hashes: Sequence[str], array: np.ndarray) -> Path:
        # Named by content, so concurrent writers never clobber each other's shards and
        # writing the same batch twice just replaces a file with an identical one.
        digest = hashlib.sha256("\n".join(hashes).encode("ascii")).hexdigest()[:20]
        path = self.root / f"shard-{digest}.npz"
        buf = io.BytesIO()
        np.savez(buf, keys=np.asarray(hashes, dtype="U64"), vectors=array)
        atomic_write_bytes(path, buf.getvalue())
        if path not in self._shards:
            self._shards.append(path)
        return path


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one shard; any problem raises (the caller decides to skip it)."""
    with np.load(path, allow_pickle=False) as data:
        keys, array = data["keys"], data["vectors"]
    if keys.ndim != 1 or array.ndim != 2 or len(keys) != len(array):
        raise ValueError(f"inconsistent shapes keys={keys.shape} vectors={array.shape}")
    if array.dtype != np.float32:
        raise ValueError(f"vectors have dtype {array.dtype}, expected float32")
    if not np.isfinite(array).all():
        raise ValueError("vectors contain NaN or infinity")
    return keys, array
