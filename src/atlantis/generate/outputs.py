"""Where made images go: content-addressed PNG files, then their records (the resume log).

Layout of ``RUN/generate/<arm>/``: ``images/<aa>/<address>.png`` (``aa``: the address's
first two hex digits, so no folder holds more than a few thousand files),
``records.jsonl`` (one ``ImageRecord`` per image) and ``failures.jsonl`` (one line per item
that gave no image, with the reason).

Order of writes, which is what makes resume exact: the image file is published (written
to a temporary name, then renamed into place, so it is never seen half-written) *before*
its record is appended. After a crash an item is in one of three states: record + complete
file (finished: skipped), file without record (adopted: the file is verified to decode and
its record is rebuilt from the provenance stored inside the PNG), or neither (made again).

Images are not fsync'ed one by one: that cost ~6 ms per image here, more than the rest of
the bookkeeping together. A killed process loses nothing the kernel already holds; against
power loss, a file that did not reach the disk fails the cheap completeness check
(``png_complete``: the PNG end marker is there) and is made again. The record log is
fsync'ed once per batch.

Every PNG carries its provenance in a text chunk (``atlantis``: seed actually used,
attempts, parent images, parameters). That is what makes adoption exact, and it keeps an
image file self-describing when it is copied out of the run. The chunk holds nothing that
depends on how the image was run (no time, batch or worker), so local and Ray executors
write byte-identical files.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, PngImagePlugin

from atlantis.data.records import ImageRecord, Provenance, RecordAppender, Source
from atlantis.errors import raise_if_disk_full
from atlantis.generate.base import PlanItem, SourceResult

PNG_KEY = "atlantis"
#: The last 12 bytes of every complete PNG: the zero-length IEND chunk and its CRC.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def image_relpath(arm: str, address: str) -> str:
    """Path of an address's image, relative to the run root (``data.paths`` rule)."""
    return f"generate/{arm}/images/{address[:2]}/{address}.png"


def record_id(kind: Source, arm: str, plan_id: str) -> str:
    return f"{kind}/{arm}/{plan_id}"


@dataclass
class Outcome:
    """One item's finished work. ``png`` is what crosses process boundaries (Ray); in this
    process a made image may travel as ``image`` and be encoded where it is written (off the
    render loop: ``encoded``)."""

    plan_id: str
    address: str
    png: bytes | None  # the encoded image, or None on failure (or while ``image`` holds it)
    info: dict[str, Any]  # provenance written into the PNG (or the failure's details)
    error: str | None = None
    seconds: float = 0.0  # this item's share of its batch's compute time
    image: Image.Image | None = None  # the made image, not yet encoded

    def encoded(self) -> Outcome:
        """This outcome with its image as PNG bytes carrying its provenance."""
        if self.image is None:
            return self
        png = encode_png(self.image, self.info)
        return Outcome(self.plan_id, self.address, png, self.info, self.error, self.seconds)


def provenance_info(address: str, model: str, item: PlanItem, result: SourceResult,
                    params: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """What the PNG chunk and the record's provenance say about one made image."""
    return {
        "address": address, "model": model, "prompt": item.description,
        "negative_prompt": item.negative_prompt, "seed": result.seed, "plan_seed": item.seed,
        "attempts": result.attempts, "parent_ids": list(result.parent_ids),
        "params": {**params, **result.params}, "caption": result.caption,
    }  # fmt: skip


def encode_png(image: Image.Image, info: dict[str, Any]) -> bytes:
    """Deterministic PNG bytes with ``info`` as JSON in a text chunk."""
    meta = PngImagePlugin.PngInfo()
    meta.add_text(PNG_KEY, json.dumps(info, sort_keys=True, ensure_ascii=False))
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def publish(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_if_disk_full(exc, path)
        raise


def png_complete(path: Path) -> bool:
    """True when ``path`` exists and ends with the PNG end marker (cheap: reads 12 bytes)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-len(PNG_END), os.SEEK_END)
            return fh.read() == PNG_END
    except OSError:
        return False


def read_png_info(path: Path) -> dict[str, Any] | None:
    """The provenance inside a made image, or None if the file does not decode fully."""
    try:
        with Image.open(path) as im:
            im.verify()  # chunk structure and checksums, up to the end marker
        with Image.open(path) as im:
            im.load()  # and every pixel decodes
            text = im.text.get(PNG_KEY) if hasattr(im, "text") else None
        return json.loads(text) if text else None
    except (OSError, SyntaxError, ValueError):
        return None


def build_record(item: PlanItem, arm: str, kind: Source, info: dict[str, Any],
                 plan_meta: dict[str, Any]) -> ImageRecord:  # fmt: skip
    """The record of one made image (``plan_meta``: round, is_new_class of the plan item)."""
    params = dict(info.get("params") or {})
    if info.get("negative_prompt"):
        params["negative_prompt"] = info["negative_prompt"]
    if info.get("attempts", 1) != 1:
        params["attempts"] = info["attempts"]
        params["plan_seed"] = info.get("plan_seed")
    caption = info.get("caption") if kind == "retrieved" else item.description
    return ImageRecord(
        id=record_id(kind, arm, item.id),
        path=image_relpath(arm, info["address"]),
        label=item.class_name,
        split="train",
        captions=[caption] if caption else [],
        domains=[item.domain] if item.domain else [],
        source=kind,
        provenance=Provenance(
            model=info.get("model"),
            prompt=item.description,
            seed=info.get("seed"),
            parent_ids=list(info.get("parent_ids") or []),
            params=params,
        ),
        meta={"plan_id": item.id, "arm": arm, **plan_meta, "address": info["address"]},
    )


class OutputSink:
    """Receives outcomes on the driver: image file first, then record; or a failure line.

    ``record_for(outcome)`` builds the record: the stage knows the plan items.
    """

    def __init__(self, run_root: Path, records: RecordAppender, failures: IO[str],
                 record_for: Any) -> None:  # fmt: skip
        self.run_root = Path(run_root)
        self.records = records
        self.failures = failures
        self.record_for = record_for
        self.made: dict[str, ImageRecord] = {}  # plan id -> record
        self.failed: dict[str, dict[str, Any]] = {}  # plan id -> failure line
        self.compute_s = 0.0

    def accept(self, outcome: Outcome) -> None:
        outcome = outcome.encoded()
        self.compute_s += outcome.seconds
        if outcome.png is None:
            line = {"plan_id": outcome.plan_id, "address": outcome.address,
                    "reason": outcome.error or "no image", **outcome.info}  # fmt: skip
            self.failures.write(json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n")
            self.failures.flush()
            self.failed[outcome.plan_id] = line
            return
        record = self.record_for(outcome)
        publish(self.run_root / record.path, outcome.png)
        self.records.append(record)
        self.made[outcome.plan_id] = record
