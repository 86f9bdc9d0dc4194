"""build_index -> SearchIndex: self-retrieval, incremental, resume, skips, approximate kinds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from atlantis.embed.registry import create_embedder
from atlantis.errors import ConfigError, DataError
from atlantis.evaluation.distances import pairwise_distances
from atlantis.search.index import (
    GalleryItem,
    SearchIndex,
    build_index,
    gallery_from_folder,
)

from .conftest import CURVATURE, write_image


def _images(items: list[GalleryItem]) -> list[Image.Image]:
    return [Image.open(it.path).convert("RGB") for it in items]


@pytest.mark.parametrize("spec", ["spy-cosine", "spy-ball"])
def test_each_gallery_image_finds_itself_first(spies, gallery_dir: Path, tmp_path: Path,
                                               spec: str) -> None:  # fmt: skip
    items, skipped = gallery_from_folder(gallery_dir)
    assert len(items) == 20 and not skipped
    assert {it.label for it in items} == {f"class{c}" for c in range(4)}
    build_index(spec, items, tmp_path / "idx", progress=False)
    index = SearchIndex.load(tmp_path / "idx")
    assert index.meta.kind == "flat" and index.meta.recall_at_10 is None
    assert index.meta.distance == ("poincare" if spec == "spy-ball" else "cosine")
    hits = index.search_images(_images(items), k=5)
    for item, row in zip(items, hits, strict=True):
        assert row[0].id == item.id and row[0].path == item.path and row[0].rank == 1
        # ~0, not arccosh's float32 floor (~1e-3): found distances are re-measured exactly
        assert row[0].distance == pytest.approx(0.0, abs=1e-5)
        assert [h.distance for h in row] == sorted(h.distance for h in row)
    if spec == "spy-ball":  # the true Poincaré distance, as the evaluation computes it
        assert index.meta.curvature == CURVATURE
        q = index.vectors[:3] * 0.9
        want = pairwise_distances(torch.from_numpy(q), torch.from_numpy(index.vectors),
                                  "poincare", CURVATURE).numpy()  # fmt: skip
        got = index.search_vectors(q, k=20)
        for row, ref in zip(got, want, strict=True):
            assert [h.distance for h in row] == pytest.approx(np.sort(ref), rel=1e-4, abs=1e-4)


def test_reindex_embeds_only_new_files_and_drops_removed_ones(spies, gallery_dir: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "idx"
    build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], out, progress=False)
    assert sum(spies.embedded) == 20
    rng = np.random.default_rng(7)
    for i in range(3):
        write_image(gallery_dir / "class9" / f"new{i}.png", rng, np.array([200, 20, 20]))
    (gallery_dir / "class0" / "0.png").unlink()
    spies.embedded.clear()
    index = build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], out, progress=False)
    assert sum(spies.embedded) == 3  # only the new files
    assert index.meta.counts["embedded"] == 3 and index.meta.counts["cached"] == 19
    ids = {it.id for it in SearchIndex.load(out).items}
    assert "class0/0.png" not in ids and "class9/new2.png" in ids and len(ids) == 22
    spies.embedded.clear()
    build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], out, progress=False)
    assert spies.embedded == []  # nothing new: nothing embedded


def test_a_killed_build_resumes_where_it_stopped(spies, gallery_dir: Path, tmp_path: Path) -> None:
    items = gallery_from_folder(gallery_dir)[0]
    spies.kill_after = 2
    with pytest.raises(KeyboardInterrupt):
        build_index("spy-cosine", items, tmp_path / "idx", batch_size=4, progress=False)
    assert spies.embedded == [4, 4] and not (tmp_path / "idx" / "index.json").exists()
    spies.kill_after = None
    index = build_index("spy-cosine", items, tmp_path / "idx", batch_size=4, progress=False)
    assert sum(spies.embedded) == 20  # 8 before the kill + the 12 left, none twice
    assert index.meta.counts == {"embedded": 12, "cached": 8, "skipped": 0, "items": 20}


def test_unreadable_files_are_skipped_and_listed(spies, gallery_dir: Path, tmp_path: Path) -> None:
    (gallery_dir / "class1" / "page.jpg").write_text("<html>not an image</html>")
    (gallery_dir / "class1" / "empty.png").write_bytes(b"")
    good = (gallery_dir / "class2" / "0.png").read_bytes()
    (gallery_dir / "class2" / "cut.png").write_bytes(good[: len(good) // 2])  # header parses
    (gallery_dir / "notes.txt").write_text("not an image name: ignored")
    items, skipped = gallery_from_folder(gallery_dir)
    assert sorted(p.name for p, _ in skipped) == ["empty.png", "page.jpg"]
    index = build_index("spy-cosine", items, tmp_path / "idx", skipped=skipped, progress=False)
    names = sorted(Path(p).name for p, _ in index.meta.skipped)
    assert names == ["cut.png", "empty.png", "page.jpg"]
    assert index.meta.size == 20 and index.meta.counts["skipped"] == 3
    # a file that vanished between listing and building is skipped too
    gone = GalleryItem("gone", gallery_dir / "gone.png", None)
    index = build_index("spy-cosine", [*items, gone], tmp_path / "idx", progress=False)
    reasons = {Path(p).name: why for p, why in index.meta.skipped}
    assert set(reasons) == {"cut.png", "gone.png"} and "cannot read file" in reasons["gone.png"]


@pytest.mark.parametrize(("spec", "kind"), [("spy-cosine", "hnsw"), ("spy-cosine", "ivf"),
                                            ("spy-ball", "hnsw"), ("spy-ball", "ivf")])  # fmt: skip
def test_approximate_index_reports_recall_and_finds_self_copies(spies, tmp_path: Path, spec: str,
                                                                kind: str) -> None:  # fmt: skip
    rng = np.random.default_rng(1)
    folder = tmp_path / "many"
    for i in range(160):
        write_image(folder / f"c{i % 8}" / f"{i}.png", rng, rng.integers(30, 225, 3))
    items = gallery_from_folder(folder)[0]
    build_index(spec, items, tmp_path / "idx", kind=kind, progress=False)
    index = SearchIndex.load(tmp_path / "idx")
    assert index.meta.kind == kind and index.meta.recall_queries == 160
    assert index.meta.recall_at_10 is not None and index.meta.recall_at_10 >= 0.8
    hits = index.search_vectors(index.vectors, k=10)
    first = np.mean([row[0].id == it.id for row, it in zip(hits, items, strict=True)])
    assert first >= 0.9
    assert all(len(row) == 10 for row in hits)


def test_model_mismatch_is_refused_naming_both(spies, gallery_dir: Path, tmp_path: Path) -> None:
    index = build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], tmp_path / "idx",
                        progress=False)  # fmt: skip
    other = create_embedder("spy-other")
    with pytest.raises(ConfigError, match=r"spy-cosine v1.*spy-cosine v2"):
        index.check_embedder(other)
    with pytest.raises(ConfigError, match="cannot be compared"):
        index.search_images([Image.new("RGB", (8, 8))], k=3, embedder=other)
    index.check_embedder(index.embedder("cpu"))  # its own model passes


def test_k_is_clamped_and_bad_queries_are_refused(spies, gallery_dir: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    index = build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], tmp_path / "idx",
                        progress=False)  # fmt: skip
    assert len(index.search_vectors(index.vectors[:2], k=500)[0]) == 20
    with pytest.raises(ValueError, match=r"shape \[n, 12\]"):
        index.search_vectors(np.zeros((1, 5)), k=3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search_vectors(index.vectors[:1], k=0)


def test_interrupted_write_and_missing_index_are_reported(spies, gallery_dir: Path,
                                                          tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "idx"
    with pytest.raises(DataError, match="atlantis index"):
        SearchIndex.load(out)
    build_index("spy-cosine", gallery_from_folder(gallery_dir)[0], out, progress=False)
    items = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text("\n".join(items[:-1]) + "\n")  # as if killed mid-write
    with pytest.raises(DataError, match=r"does not match index\.json"):
        SearchIndex.load(out)
    meta = json.loads((out / "index.json").read_text())
    assert set(meta["files"]) == {"vectors.npy", "items.jsonl", "index.faiss"}


def test_gallery_folder_without_class_folders_has_no_labels(spies, gallery_dir: Path,
                                                            tmp_path: Path) -> None:  # fmt: skip
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list(gallery_dir.rglob("*.png"))[:4]:
        shutil.copy(p, flat / f"{p.parent.name}-{p.name}")
    (flat / ".hidden.png").write_bytes(b"junk")
    items, skipped = gallery_from_folder(flat)
    assert len(items) == 4 and not skipped and {it.label for it in items} == {None}
