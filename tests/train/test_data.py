"""Seeded m-per-class batches, the synthetic cap, single-image classes, image decoding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from atlantis.data.records import ImageRecord
from atlantis.errors import DataError
from atlantis.store.run import Run
from atlantis.train.data import (
    EpochBatchSampler,
    ImageDataset,
    labelled_images,
    warn_singletons,
)
from atlantis.train.model import image_transforms


def test_batches_are_m_per_class_and_a_function_of_seed_and_epoch() -> None:
    labels = np.repeat(np.arange(10), 6)
    a = EpochBatchSampler(labels, m=3, batch_size=12, seed=0)
    b = EpochBatchSampler(labels, m=3, batch_size=12, seed=0)
    a.set_epoch(4)
    b.set_epoch(1)
    list(b)  # another epoch drawn first must not matter
    b.set_epoch(4)
    batches = list(a)
    assert batches == list(b) and len(batches) == len(a) == 5
    for batch in batches:
        counts = Counter(labels[i] for i, _ in batch)
        assert len(batch) == 12 and set(counts.values()) == {3}
    a.set_epoch(5)
    assert list(a) != batches
    assert EpochBatchSampler(labels, m=3, batch_size=12, seed=1).__iter__().__next__() != batches[0]


def test_processes_take_disjoint_shares_of_the_same_plan() -> None:
    labels = np.repeat(np.arange(8), 8)
    whole = list(EpochBatchSampler(labels, m=4, batch_size=16, seed=3))
    shares = [list(EpochBatchSampler(labels, m=4, batch_size=16, seed=3, rank=r, world_size=2))
              for r in range(2)]  # fmt: skip
    assert len(shares[0]) == len(shares[1]) == len(whole) // 2
    assert shares[0] == whole[0::2] and shares[1] == whole[1::2]


def test_batch_shrinks_to_the_classes_available() -> None:
    sampler = EpochBatchSampler(np.repeat(np.arange(3), 5), m=2, batch_size=64)
    assert sampler.batch_size == 6
    with pytest.raises(DataError, match="at least 2 classes"):
        EpochBatchSampler(np.zeros(5, dtype=int), m=2, batch_size=4)


def test_synthetic_ratio_caps_the_share_and_rotates_the_subset() -> None:
    labels = np.repeat(np.arange(4), 20)
    synthetic = np.tile(np.arange(20) >= 5, 4)  # 5 real + 15 synthetic per class
    sampler = EpochBatchSampler(labels, synthetic, m=2, batch_size=8, synthetic_ratio=0.5)
    pools = [sampler.pool(e) for e in range(3)]
    for pool in pools:
        assert synthetic[pool].sum() == (~synthetic).sum() == 20  # at most half synthetic
        assert set(np.flatnonzero(~synthetic)) <= set(pool)  # every real image, every epoch
    assert not np.array_equal(pools[0], pools[1])
    assert len(EpochBatchSampler(labels, synthetic, m=2, batch_size=8).pool(0)) == 80
    none = EpochBatchSampler(labels, synthetic, m=2, batch_size=8, synthetic_ratio=0.0)
    assert synthetic[none.pool(0)].sum() == 0


def test_single_image_classes_are_warned_and_sampled_as_negatives(tmp_path) -> None:
    labels = np.concatenate([np.repeat(np.arange(4), 4), np.arange(4, 8)])  # 4 singletons
    sampler = EpochBatchSampler(labels, m=2, batch_size=8, seed=0)
    seen = set()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        seen |= {int(labels[i]) for batch in sampler for i, _ in batch}
    assert seen & {4, 5, 6, 7}  # they appear in batches (as negatives: labels stay distinct)
    few = EpochBatchSampler(np.concatenate([np.repeat(np.arange(4), 4), [4]]), m=2, batch_size=8)
    assert all(i != 16 for batch in few for i, _ in batch)  # one singleton < m: left out
    images = labelled_images(Run(tmp_path), [], classes=[])
    images.labels, images.classes = labels, [f"c{i}" for i in range(8)]
    with pytest.warns(UserWarning, match=r"4 training class.*c4, c5, c6, c7"):
        assert warn_singletons(images) == ["c4", "c5", "c6", "c7"]


def test_images_decode_with_white_background_and_seeded_augmentation(run: Run) -> None:
    from atlantis.data.ingest import load_ingested

    records, _ = load_ingested(run)
    rgba = [r for r in records if r.path.endswith("/0.png")][:1]  # written with alpha
    data = labelled_images(run, rgba)
    eval_set = ImageDataset(data.paths, data.labels, image_transforms(24, train=False))
    pixels, label = eval_set[0]
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 24, 24) and label == 0
    assert (pixels[:, 0, 0] == 255).all()  # transparent corner -> white
    train_set = ImageDataset(data.paths, data.labels, image_transforms(24, train=True))
    assert torch.equal(train_set[(0, 7)][0], train_set[(0, 7)][0])
    assert not torch.equal(train_set[(0, 7)][0], train_set[(0, 8)][0])


def test_labelled_images_resolve_paths_and_number_classes(run: Run, tmp_path) -> None:
    from atlantis.data.ingest import load_ingested

    records, _ = load_ingested(run)
    train = [r for r in records if r.split == "train"]
    synth = ImageRecord(id="s1", path="generate/x/images/s1.png", label=train[0].label,
                        split="train", source="synthetic")  # fmt: skip
    data = labelled_images(run, [*train, synth])
    assert data.paths[0].is_file() and data.paths[-1] == run.root.resolve() / synth.path
    assert data.synthetic.tolist() == [False] * len(train) + [True]
    assert data.classes == sorted({r.label for r in train})
    with pytest.raises(DataError, match="not in the class list"):
        labelled_images(run, train, classes=["other"])
