"""The one interface every image embedder implements: PIL images in, float32 vectors out.

Backends (EfficientNet-Lite, timm, open_clip, transformers) only say how to load a model and
how to embed one batch. Everything a pipeline stage relies on lives here, once: batching,
parallel image decoding, the content-hash cache, the progress bar, and the guarantees on
the output (float32, C-contiguous, finite, rows in input order).

Construction must stay cheap: ``--help`` and config validation build embedders, so models
are loaded by ``_load`` on first use and torch is imported only inside functions.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from atlantis.embed.cache import EmbeddingCache, content_hash
from atlantis.embed.preprocess import open_image_rgb, to_rgb
from atlantis.errors import AtlantisError, ConfigError, MissingDependencyError

log = logging.getLogger(__name__)
T = TypeVar("T")


class NonFiniteEmbeddingError(AtlantisError):
    """The model produced NaN or infinite vectors; the message names the images."""


@dataclass(frozen=True)
class EmbedStats:
    """What the last ``embed_files`` call did (useful for logs and resume tests)."""

    files: int = 0
    unique: int = 0  # distinct file contents (duplicates are embedded once)
    cached: int = 0  # distinct contents found in the cache
    computed: int = 0  # distinct contents run through the model


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; validates the rest."""
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} requested, but no CUDA GPU is available; "
                "use device='cpu' or 'auto'"
            )
        return device
    if device == "mps":
        return device
    raise ConfigError(f"unknown device {device!r}; valid: cpu, cuda, cuda:<index>, mps, auto")


def import_optional(module: str, package: str, extra: str, feature: str) -> Any:
    """Import an optional backend's package, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra, feature) from None


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress]:
    """A rich progress display with ETA, on stderr; silent when disabled or not a terminal."""
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not (enabled and console.is_terminal)) as bar:
        yield bar


class Embedder(ABC):
    """Images -> float32 ``[N, dim]`` vectors. Subclasses register in ``embed.registry``."""

    def __init__(self, *, device: str = "cpu", batch_size: int = 32, num_workers: int = 0) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.requested_device = device
        self.batch_size = batch_size
        self.num_workers = num_workers  # threads decoding images while the model runs
        self.last_stats = EmbedStats()
        self._device: str | None = None
        self._loaded = False

    # ------------------------------------------------------------ backend contract

    @property
    @abstractmethod
    def key(self) -> str:
        """Identity of the vectors (backend, model, weights, preprocessing): the cache key.

        Two embedders that can give different vectors must have different keys; device,
        batch size and worker count must not appear (they do not change the vectors).
        """

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension (may load the model when only the model knows it)."""

    @abstractmethod
    def _load(self) -> None:
        """Load the model and preprocessing onto ``self.device``; called once, on first use."""

    @abstractmethod
    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        """One batch of RGB images -> float32 ``[B, dim]``, in inference mode without grad."""

    # ------------------------------------------------------------ shared behaviour

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    def load(self) -> Embedder:
        """Load the model now (otherwise it happens on the first batch)."""
        if not self._loaded:
            self._load()
            self._loaded = True
        return self

    def _probe_dim(self) -> int:
        """Output width measured on one blank image, for backends whose config does not say."""
        self.load()
        return int(self.embed_batch([Image.new("RGB", (64, 64), "white")]).shape[1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, device={self.requested_device!r})"

    def embed_images(self, images: Sequence[Image.Image], progress: bool = True) -> np.ndarray:
        """Embed in-memory images, in batches of ``batch_size``."""
        out: list[np.ndarray] = []
        with progress_bar(progress) as bar:
            task = bar.add_task("embedding", total=len(images))
            for start in range(0, len(images), self.batch_size):
                batch = [to_rgb(im) for im in images[start : start + self.batch_size]]
                names = [f"image #{start + i}" for i in range(len(batch))]
                out.append(self._checked(self.embed_batch(batch), names))
                bar.advance(task, len(batch))
        return self._stack(out)

    def embed_files(
        self,
        paths: Sequence[Path | str],
        cache: EmbeddingCache | None = None,
        progress: bool = True,
    ) -> np.ndarray:
        """Embed image files; rows follow ``paths``. Only files missing from ``cache`` are run.

        Files are identified by the sha256 of their bytes, so duplicates are embedded once and
        renamed files hit the cache. Each finished batch is written to the cache before the
        next one starts: a killed run loses at most one batch.
        """
        files = [Path(p) for p in paths]
        if cache is not None and cache.embedder_key != self.key:
            raise ValueError(f"cache is for embedder {cache.embedder_key!r}, not {self.key!r}")
        with progress_bar(progress) as bar:
            hash_task = bar.add_task("hashing", total=len(files))
            hashes = self._map(content_hash, files, lambda: bar.advance(hash_task))
            first_path: dict[str, Path] = {}
            for h, p in zip(hashes, files, strict=True):
                first_path.setdefault(h, p)
            vectors = cache.get_many(first_path) if cache is not None else {}
            todo = [(h, p) for h, p in first_path.items() if h not in vectors]
            task = bar.add_task(f"embedding ({len(vectors)} cached)", total=len(todo))
            for batch, images in self._decoded_batches(todo):
                batch_hashes = [h for h, _ in batch]
                array = self._checked(self.embed_batch(images), [str(p) for _, p in batch])
                if cache is not None:
                    cache.put_many(batch_hashes, array)
                vectors.update(zip(batch_hashes, array, strict=True))
                bar.advance(task, len(batch))
        if cache is not None:
            cache.compact_if_needed()
        cached = len(first_path) - len(todo)
        self.last_stats = EmbedStats(len(files), len(first_path), cached, len(todo))
        log.info("embedded %d files with %s: %s", len(files), self.key, self.last_stats)
        return self._stack([vectors[h][None] for h in hashes])

    # ------------------------------------------------------------ helpers

    def _checked(self, vectors: Any, names: Sequence[str]) -> np.ndarray:
        """Enforce the output contract on one batch, naming the culprits when it fails."""
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(names) or array.shape[1] != self.dim:
            raise RuntimeError(
                f"{self!r} returned an array of shape {array.shape} for {len(names)} images; "
                f"expected ({len(names)}, {self.dim})"
            )
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        if bad.size:
            listed = ", ".join(names[i] for i in bad[:5]) + (" ..." if bad.size > 5 else "")
            raise NonFiniteEmbeddingError(
                f"embedder {self.key!r} produced NaN/inf vectors for {bad.size} image(s): "
                f"{listed}. The model is numerically unstable on these inputs; try another "
                "embedder or run in full precision on CPU."
            )
        return array

    def _stack(self, parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)

    def _map(self, fn: Callable[[Path], T], items: list[Path], tick: Callable[[], Any]) -> list[T]:
        """``[fn(x) for x in items]``, on ``num_workers`` threads when there are any."""
        if self.num_workers == 0:
            results = []
            for item in items:
                results.append(fn(item))
                tick()
            return results
        with ThreadPoolExecutor(self.num_workers) as pool:
            futures = [pool.submit(fn, item) for item in items]
            for future in futures:
                future.add_done_callback(lambda _: tick())
            return [f.result() for f in futures]

    def _decoded_batches(
        self, todo: list[tuple[str, Path]]
    ) -> Iterator[tuple[list[tuple[str, Path]], list[Image.Image]]]:
        """Yield (batch, decoded images); with workers, the next batches decode meanwhile."""
        batches = [todo[i : i + self.batch_size] for i in range(0, len(todo), self.batch_size)]
        if self.num_workers == 0:
            for batch in batches:
                yield batch, [open_image_rgb(p) for _, p in batch]
            return
        pool = ThreadPoolExecutor(self.num_workers)
        try:
            ahead: deque[tuple[list[tuple[str, Path]], list[Future[Image.Image]]]] = deque()
            for batch in batches:
                ahead.append((batch, [pool.submit(open_image_rgb, p) for _, p in batch]))
                if len(ahead) > 2:  # keep two batches in flight, not the whole dataset
                    done, futures = ahead.popleft()
                    yield done, [f.result() for f in futures]
            while ahead:
                done, futures = ahead.popleft()
                yield done, [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def torch_embed(
    forward: Callable[[Any], Any],
    transform: Callable[[Image.Image], Any],
    images: Sequence[Image.Image],
    device: str,
) -> np.ndarray:
    """The common body of ``embed_batch`` for torch backends: transform, stack, forward."""
    import torch

    pixels = torch.stack([transform(to_rgb(im)) for im in images]).to(device)
    with torch.inference_mode():
        features = forward(pixels)
    return features.float().cpu().numpy()
