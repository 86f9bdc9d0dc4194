"""Training data: labelled image files, and seeded m-per-class batches for every epoch.

The pairwise losses learn only from same-class pairs inside a batch, so batches are built
class-first: ``batch_size / m`` classes, ``m`` images each, drawn by
``pytorch_metric_learning.samplers.MPerClassSampler``. ``EpochBatchSampler`` wraps it so
that every epoch's batches are a pure function of ``(seed, epoch)``: a resumed run sees the
same batches as an uninterrupted one, and each process of a multi-GPU run takes its own
share of them.

**Real and synthetic.** ``synthetic_ratio`` caps the share of synthetic images in the pool
the sampler draws from: each epoch keeps every real image and a fresh seeded random subset
of at most ``ratio / (1 - ratio) * n_real`` synthetic ones (so over the epochs all of them
are used). ``None`` (the paper's setting) or 1 uses every kept synthetic image every epoch;
0 uses none. Within a class the sampler draws uniformly, so a class's synthetic share in the
batches follows its share in the pool; classes that only exist synthetically (new classes)
are trained like any other.

**Single-image classes** have no positive pair. They are listed in a warning and gathered
into one sampling group, so they still appear in batches, where they serve only as
negatives (their labels stay distinct). With fewer than ``m`` of them they are left out.

Images are decoded as RGB with transparency composited on white (``open_image_rgb``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from atlantis.data.paths import image_paths
from atlantis.data.records import ImageRecord
from atlantis.embed.preprocess import open_image_rgb
from atlantis.errors import DataError
from atlantis.store.run import Run

log = logging.getLogger(__name__)


@dataclass
class LabelledImages:
    """Image files with integer labels (``classes[label]`` is the class name)."""

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray  # int64 [n]
    synthetic: np.ndarray  # bool [n]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def labelled_images(run: Run, records: Sequence[ImageRecord],
                    classes: Sequence[str] | None = None) -> LabelledImages:  # fmt: skip
    """Resolve image paths and number the classes (sorted names, unless ``classes`` given)."""
    names = list(classes) if classes is not None else sorted({r.label for r in records})
    index = {name: i for i, name in enumerate(names)}
    missing = sorted({r.label for r in records} - index.keys())
    if missing:
        raise DataError(f"labels not in the class list: {', '.join(missing[:10])}")
    return LabelledImages(
        ids=[r.id for r in records],
        paths=image_paths(run, list(records)),
        labels=np.array([index[r.label] for r in records], dtype=np.int64),
        synthetic=np.array([r.source != "real" for r in records], dtype=bool),
        classes=names,
    )


class ImageDataset(Dataset):
    """``(pixels, label)`` items: a transformed image (uint8 ``[3, S, S]``) and its class id.

    Keys are an index, or ``(index, seed)`` as ``EpochBatchSampler`` yields them: the random
    transform then draws from its own seeded generator, so augmentation is a function of the
    epoch plan alone, the same with any number of loader workers and after a resume.
    """

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, transform: Any) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        i, seed = key if isinstance(key, tuple) else (key, None)
        image = open_image_rgb(self.paths[i])
        if seed is None:
            return self.transform(image), int(self.labels[i])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), int(self.labels[i])


class FeatureDataset(Dataset):
    """``(features, label)`` items from precomputed tensors (keys as for ``ImageDataset``)."""

    def __init__(self, features: torch.Tensor, labels: np.ndarray) -> None:
        self.features = features
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        i = key[0] if isinstance(key, tuple) else key
        return self.features[i], int(self.labels[i])


def singleton_classes(labels: np.ndarray) -> list[int]:
    """Class ids with exactly one image: they have no positive pair."""
    return sorted(int(c) for c, n in Counter(labels.tolist()).items() if n == 1)


def warn_singletons(data: LabelledImages) -> list[str]:
    """Warn (once, listing them) about classes that can only serve as negatives."""
    names = [data.classes[c] for c in singleton_classes(data.labels)]
    if names:
        listed = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
        warnings.warn(
            f"{len(names)} training class(es) have a single image and so no positive pair; "
            f"they are kept as negatives only: {listed}",
            UserWarning,
            stacklevel=2,
        )
    return names


@contextlib.contextmanager
def _numpy_random(rng: np.random.RandomState) -> Iterator[None]:
    """Make pytorch-metric-learning draw from ``rng`` instead of the global numpy state."""
    from pytorch_metric_learning.utils import common_functions as c_f

    saved = c_f.NUMPY_RANDOM
    c_f.NUMPY_RANDOM = rng
    try:
        yield
    finally:
        c_f.NUMPY_RANDOM = saved


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.RandomState:
    """An independent numpy generator for ``(seed, epoch, stream)``."""
    return np.random.RandomState(np.random.MT19937(np.random.SeedSequence([seed, epoch, stream])))


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Seeded m-per-class batches of ``(dataset index, augmentation seed)``, fixed per epoch."""

    def __init__(self, labels: np.ndarray, synthetic: np.ndarray | None = None, *, m: int,
                 batch_size: int, seed: int = 0, synthetic_ratio: float | None = None,
                 rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        self.labels = np.asarray(labels, dtype=np.int64)
        self.synthetic = (np.zeros(len(self.labels), bool) if synthetic is None
                          else np.asarray(synthetic, dtype=bool))  # fmt: skip
        self.m, self.requested_batch_size, self.seed = m, batch_size, seed
        self.ratio = synthetic_ratio
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        groups = len(np.unique(self._plan(0)[1]))
        if groups < 2:
            raise DataError(
                f"m-per-class batches need at least 2 classes with 2+ images; got {groups}"
            )
        self.batch_size = self._batch_size(groups)
        if self.batch_size < batch_size:
            log.info("batch size %d -> %d (%d classes x m=%d)", batch_size, self.batch_size,
                     groups, m)  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batch_size(self, groups: int) -> int:
        # Fewer classes than batch_size / m: smaller batches, of every class (a multiple of m).
        return min(self.requested_batch_size, self.m * groups) // self.m * self.m

    def pool(self, epoch: int) -> np.ndarray:
        """Indices the sampler draws from in ``epoch``: all real + the capped synthetic subset."""
        real = np.flatnonzero(~self.synthetic)
        synth = np.flatnonzero(self.synthetic)
        if self.ratio is not None and self.ratio < 1 and len(synth):
            cap = int(self.ratio / (1 - self.ratio) * len(real))
            if cap < len(synth):
                synth = np.sort(epoch_rng(self.seed, epoch, 1).choice(synth, cap, replace=False))
        return np.sort(np.concatenate([real, synth]))

    def _plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's pool and each item's sampling group (its class, or -1: singletons)."""
        pool = self.pool(epoch)
        labels = self.labels[pool]
        counts = Counter(labels.tolist())
        single = np.array([counts[c] == 1 for c in labels.tolist()], dtype=bool)
        if 0 < single.sum() < self.m:  # too few to fill a group without repeating one
            pool, labels, single = pool[~single], labels[~single], single[~single]
        return pool, np.where(single, -1, labels)

    def _n_batches(self, pool_size: int, batch_size: int) -> int:
        total = max(self.world_size, pool_size // batch_size)  # about one pass over the pool
        return total - total % self.world_size  # every process runs as many steps

    def _batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        from pytorch_metric_learning.samplers import MPerClassSampler

        pool, groups = self._plan(epoch)
        b = min(self.batch_size, self._batch_size(len(np.unique(groups))))
        n = self._n_batches(len(pool), b)
        sampler = MPerClassSampler(groups, self.m, batch_size=b, length_before_new_iter=n * b)
        with _numpy_random(epoch_rng(self.seed, epoch)):
            order = pool[np.fromiter(iter(sampler), dtype=np.int64)]
        seeds = epoch_rng(self.seed, epoch, 2).randint(0, 2**62, size=len(order), dtype=np.int64)
        items = list(zip(order.tolist(), seeds.tolist(), strict=True))
        batches = [items[i : i + b] for i in range(0, n * b, b)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self._batches(self.epoch))

    def __len__(self) -> int:
        return self.n_batches(self.epoch)

    def n_batches(self, epoch: int) -> int:
        """This process's number of batches (optimiser steps) in ``epoch``."""
        pool, groups = self._plan(epoch)
        b = min(self.batch_size, self._batch_size(len(np.unique(groups))))
        return self._n_batches(len(pool), b) // self.world_size


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """A fixed number of optimiser steps, in validation periods, over consecutive passes.

    ``train.steps`` mode: the batches form one stream, ``passes``'s epoch 1, then epoch
    2, ... (each a seeded pass, as in the epoch mode), and period ``p`` (``set_epoch(p)``)
    takes the stream's steps ``ends[p - 1]:ends[p]``, which may start or end inside a pass.
    Everything is a function of ``(seed, step)``: a resumed run sees the same batches, and
    with period ends at whole passes the batches are exactly the epoch mode's.
    """

    def __init__(self, passes: EpochBatchSampler, ends: Sequence[int]) -> None:
        self.passes, self.ends = passes, [0, *ends]
        self.period = 1
        self._lengths: dict[int, int] = {}  # pass -> batches (pools may vary by pass)

    @property
    def batch_size(self) -> int:
        return self.passes.batch_size

    def set_epoch(self, period: int) -> None:
        self.period = period

    def _length(self, epoch: int) -> int:
        if epoch not in self._lengths:
            self._lengths[epoch] = self.passes.n_batches(epoch)
        return self._lengths[epoch]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        start, stop = self.ends[self.period - 1], self.ends[self.period]
        epoch, first = 1, 0  # first: the stream position of the pass's batch 0
        while first + self._length(epoch) <= start:
            first += self._length(epoch)
            epoch += 1
        step = start
        while step < stop:
            batches = self.passes._batches(epoch)
            for batch in batches[step - first : stop - first]:
                yield batch
                step += 1
            first += len(batches)
            epoch += 1

    def __len__(self) -> int:
        return self.ends[self.period] - self.ends[self.period - 1]
