"""The caption stage: one caption per ingested image, for the insight stage to read.

Output (``RUN/caption/records.jsonl``): the ingested records of every split, in the same
order; those of the captioned splits (``cfg.splits``: only ``train`` by default, the one split
the insight stage reads captions of) have ``captions`` replaced by the captioner's text
(``[text]``, or ``[]`` when it is empty), the others are copied as ingested. Captions the dataset had are kept under ``meta["metadata_captions"]`` when they
differ, so nothing the dataset said is lost. The manifest counts the images of
the captioned splits, captioned and empty ones (``skipped``: images of other splits), and records which captioner wrote them and whether it is a vision-language
model (``info["is_model"]``: False for ``metadata`` and ``tags``, whose captions cannot
describe pose or background).

Captions are cached per image content hash in ``RUN/cache/captions`` and written batch by
batch, so a killed stage resumes with only the missing images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from atlantis.caption.base import Captioner
from atlantis.caption.config import RUNTIME_KEYS, CaptionConfig
from atlantis.caption.registry import create_captioner
from atlantis.data.ingest import load_ingested
from atlantis.data.records import ImageRecord, read_records, write_records
from atlantis.store.run import Run, StageManifest

STAGE = "caption"
RECORDS_FILE = "records.jsonl"


def build_captioner(cfg: CaptionConfig) -> Captioner:
    return create_captioner(cfg.captioner, device=cfg.device, batch_size=cfg.batch_size,
                            **cfg.options)  # fmt: skip


def caption(
    run: Run, cfg: CaptionConfig, *, force: bool = False, progress: bool = True
) -> StageManifest:
    """Run (or skip, when up to date) the caption stage of ``run``."""
    inputs = {"ingest": run.output_hash("ingest")}
    with run.stage(STAGE, cfg, inputs, exclude=RUNTIME_KEYS, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        records, desc = load_ingested(run)
        chosen = [i for i, r in enumerate(records) if "all" in cfg.splits or r.split in cfg.splits]
        captioner = build_captioner(cfg)
        with ctx.timer("caption_s"):
            texts = captioner.caption_records(
                [records[i] for i in chosen], Path(desc["root"]),
                run.root / "cache" / "captions", progress,
            )  # fmt: skip
        captioned = list(records)
        for i, record in zip(chosen, with_captions([records[i] for i in chosen], texts),
                             strict=True):  # fmt: skip
            captioned[i] = record
        ctx.add_output(ctx.dir / RECORDS_FILE)
        write_records(ctx.dir / RECORDS_FILE, captioned)
        stats = captioner.last_stats
        empty = sum(1 for t in texts if not t)
        ctx.counts.update(images=len(chosen), captioned=len(chosen) - empty, empty=empty,
                          computed=stats.computed, cached=stats.cached,
                          skipped=len(records) - len(chosen))  # fmt: skip
        if stats.fallback:
            ctx.counts["fallback"] = stats.fallback
        ctx.info.update(captioner=cfg.captioner, splits=list(cfg.splits), captioner_key=captioner.key,
                        is_model=captioner.is_model)  # fmt: skip
        ctx.timings["per_image_s"] = ctx.timings["caption_s"] / max(1, stats.computed)
    return run.require(STAGE)


def with_captions(records: Sequence[ImageRecord], texts: Sequence[str]) -> list[ImageRecord]:
    """Copies of ``records`` carrying ``texts`` as their captions (dataset text kept in meta)."""
    out = []
    for record, text in zip(records, texts, strict=True):
        captions = [text] if text else []
        meta = dict(record.meta)
        if record.captions and record.captions != captions:
            meta["metadata_captions"] = list(record.captions)
        out.append(record.model_copy(update={"captions": captions, "meta": meta}, deep=True))
    return out


def load_captioned(run: Run) -> list[ImageRecord]:
    """The captioned records of a finished caption stage (``StageError`` says how to make it)."""
    run.require(STAGE)
    return read_records(run.stage_dir(STAGE) / RECORDS_FILE)
