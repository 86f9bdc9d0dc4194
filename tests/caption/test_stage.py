"""The caption stage and ``atlantis caption`` on a tiny ingested manifest dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atlantis.caption.config import CaptionConfig
from atlantis.caption.stage import caption, load_captioned
from atlantis.cli.main import app
from atlantis.config import DataConfig
from atlantis.data.ingest import ingest, load_ingested
from atlantis.errors import ConfigError, StageError
from atlantis.store.run import Run

from .conftest import noise_images, write_images


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """4 classes x 2 images; the first image of each class has a dataset caption."""
    root = tmp_path / "data"
    paths = write_images(root / "images", noise_images(8, seed=3))
    rows = [{"path": p.relative_to(root).as_posix(), "label": f"class{i // 2}"}
            | ({"caption": f"thing number {i}"} if i % 2 == 0 else {})
            for i, p in enumerate(paths)]  # fmt: skip
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def run(dataset: Path, tmp_path: Path) -> Run:
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="manifest", root=str(dataset), val_fraction=0.0))
    return run


def test_stage_needs_ingest_and_caption_before_loading(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="atlantis ingest"):
        caption(Run(tmp_path / "empty"), CaptionConfig(), progress=False)
    with pytest.raises(StageError, match="atlantis caption"):
        load_captioned(Run(tmp_path / "empty"))


def test_metadata_captions_and_empty_count(run: Run) -> None:
    m = caption(run, CaptionConfig(splits=["all"]), progress=False)
    assert m.status == "done" and m.counts["images"] == 8
    assert (m.counts["captioned"], m.counts["empty"]) == (4, 4)
    assert m.info["captioner"] == "metadata" and m.info["is_model"] is False
    records = load_captioned(run)
    ingested, _ = load_ingested(run)
    assert [r.id for r in records] == [r.id for r in ingested]  # all splits, same order
    assert {r.split for r in records} == {"train", "test"}
    by_path = {r.path: r for r in records}
    assert by_path["images/0.png"].captions == ["thing number 0"]
    assert by_path["images/1.png"].captions == []
    assert "metadata_captions" not in by_path["images/0.png"].meta  # unchanged: not copied


def test_tags_stage_keeps_dataset_text_skips_and_resumes(run: Run) -> None:
    cfg = CaptionConfig(captioner="tags", batch_size=4, splits=["all"])
    m = caption(run, cfg, progress=False)
    assert (m.counts["captioned"], m.counts["empty"], m.counts["computed"]) == (8, 0, 8)
    assert m.info["is_model"] is False and m.info["captioner_key"].startswith("tags v1")
    records = {r.path: r for r in load_captioned(run)}
    first = records["images/0.png"]
    assert first.captions[0].startswith("a picture of ")
    assert first.meta["metadata_captions"] == ["thing number 0"]

    # Up to date (batch size and device do not count); forced, everything comes from the cache.
    again = caption(run, cfg.model_copy(update={"batch_size": 2}), progress=False)
    assert again.finished_at == m.finished_at
    forced = caption(run, cfg, force=True, progress=False)
    assert (forced.counts["computed"], forced.counts["cached"]) == (0, 8)
    assert load_captioned(run) == list(records.values())

    # A metadata run whose fallback is the same tagger reuses that cache as well.
    mixed = caption(run, CaptionConfig(options={"fallback": "tags"}, splits=["all"]),
                    progress=False)  # fmt: skip
    assert (mixed.counts["empty"], mixed.counts["fallback"], mixed.counts["computed"]) == (0, 4, 0)
    mixed_records = {r.path: r for r in load_captioned(run)}
    assert mixed_records["images/0.png"].captions == ["thing number 0"]
    assert mixed_records["images/1.png"].captions == records["images/1.png"].captions


def test_only_the_train_split_is_captioned_by_default(run: Run) -> None:
    """The insight stage reads train captions only: other splits are copied, not captioned."""
    m = caption(run, CaptionConfig(captioner="tags"), progress=False)
    ingested, _ = load_ingested(run)
    train = [r for r in ingested if r.split == "train"]
    assert 0 < len(train) < len(ingested)
    assert (m.counts["images"], m.counts["computed"]) == (len(train), len(train))
    assert m.counts["skipped"] == len(ingested) - len(train) and m.info["splits"] == ["train"]
    records = load_captioned(run)
    assert [r.id for r in records] == [r.id for r in ingested]  # every split, same order
    for got, was in zip(records, ingested, strict=True):
        if was.split == "train":
            assert got.captions[0].startswith("a picture of ")
        else:
            assert got == was  # as ingested: no captioner ran on it

    # Asking for every split later captions only the missing ones (the cache resumes).
    more = caption(run, CaptionConfig(captioner="tags", splits=["all"]), progress=False)
    assert (more.counts["cached"], more.counts["computed"]) == (
        len(train),
        len(records) - len(train),
    )
    assert more.counts["skipped"] == 0


def test_bad_captioner_config_is_a_config_error(run: Run) -> None:
    with pytest.raises(ConfigError, match="valid names"):
        caption(run, CaptionConfig(captioner="nope"), progress=False)
    with pytest.raises(ValueError, match="extra"):
        CaptionConfig(captionr="tags")  # type: ignore[call-arg]


def test_cli_caption_and_captioners(dataset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-run"

    def invoke(*args: object):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    res = invoke("caption", out, "--captioner", "tags")
    assert res.exit_code == 2 and "atlantis ingest" in res.output
    assert invoke("ingest", "-f", "manifest", "--root", dataset, "--out", out).exit_code == 0

    res = invoke("caption", out, "--captioner", "tags", "-O", "top_k=1", "--batch-size", "4")
    assert res.exit_code == 0, res.output
    assert "4 images, 4 captioned, 0 empty, 4 computed with tags" in res.output  # train only
    assert "ImageNet labels, not descriptions" in res.output
    records = load_captioned(Run(out))
    assert all("possibly" not in r.captions[0] for r in records if r.split == "train")  # top_k=1

    res = invoke("caption", out, "--captioner", "metadata")  # tags' top_k is not carried over
    assert res.exit_code == 0 and "2 empty" in res.output and "fallback=tags" in res.output

    res = invoke("caption", out, "--captioner", "nope")
    assert res.exit_code == 2 and "valid names: metadata, openai, tags" in res.output
    listing = invoke("captioners").output
    assert "tags" in listing and "transformers:<model>" in listing
