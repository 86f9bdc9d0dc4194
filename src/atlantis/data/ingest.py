"""The ingest stage: read a dataset's native layout, assign splits, write validated records.

Outputs (``RUN/ingest/``): ``records.jsonl`` (one ``ImageRecord`` per image, split set) and
``dataset.json`` (format, absolute root, class list in dataset order, skipped items).
Nothing is written until everything has been read and validated, so a failing re-run
leaves the previous ingest intact.

A scenario (``data.scenario``, :mod:`atlantis.data.scenarios`) is applied after the split:
``records.jsonl`` then holds the kept records, ``dropped.jsonl`` the training records it
took away and ``scenario.json`` its summary. Under ``kind: none`` none of that exists and
the stage's config hash and outputs are exactly those of a run made before scenarios were,
so existing run folders stay up to date.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from atlantis.config import DataConfig
from atlantis.data.dataset import Dataset
from atlantis.data.readers import read_dataset
from atlantis.data.readers.image_store import FOLDER_NAME as IMAGE_STORE
from atlantis.data.records import ImageRecord, read_records, write_records
from atlantis.data.scenarios import apply_scenario
from atlantis.data.splits import assign_splits, split_summary
from atlantis.errors import ConfigError, DataError, StageError
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run, StageManifest

STAGE = "ingest"
SCENARIO_FILES = ("dropped.jsonl", "scenario.json")


def ingest(run: Run, cfg: DataConfig, *, force: bool = False) -> StageManifest:
    """Run (or skip, when up to date) the ingest stage of ``run``."""
    if not cfg.root:
        raise ConfigError("data.root is not set: pass --root DIR (the dataset folder)")
    root = Path(cfg.root).expanduser().resolve()
    # The dataset's files are inputs too: a changed listing or annotation file re-ingests.
    inputs = {"dataset": _dataset_fingerprint(root)}
    scenario_on = cfg.scenario.kind != "none"
    exclude = None if scenario_on else {"scenario"}  # keeps pre-scenario runs up to date
    with run.stage(STAGE, cfg, inputs, exclude=exclude, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        with ctx.timer("read_s"):
            options = cfg.hf if cfg.format.lower() == "hf" else None
            dataset = read_dataset(cfg.format, root, skip_bad=cfg.skip_bad,
                                   verify_images=cfg.verify_images, options=options)  # fmt: skip
        with ctx.timer("split_s"):
            records = assign_splits(
                dataset, cfg.split, val_fraction=cfg.val_fraction, seed=cfg.seed
            )
        if scenario_on:
            with ctx.timer("scenario_s"):
                result = apply_scenario(records, cfg.scenario)
            records = result.kept
        ctx.add_output(ctx.dir / "records.jsonl")
        write_records(ctx.dir / "records.jsonl", records)
        ctx.add_output(ctx.dir / "dataset.json")
        atomic_write_text(ctx.dir / "dataset.json", json.dumps(_describe(dataset), indent=2) + "\n")
        summary = split_summary(records)
        ctx.counts.update(images=len(records), classes=len(dataset.classes),
                          skipped=len(dataset.skipped))  # fmt: skip
        for split, s in summary.items():
            ctx.counts[f"{split}_images"] = s["images"]
            ctx.counts[f"{split}_classes"] = s["classes"]
        ctx.info["skipped"] = [s.to_dict() for s in dataset.skipped]
        if scenario_on:
            _write_scenario(ctx.dir, result.dropped, result.summary, ctx.add_output)
            ctx.counts["dropped_images"] = len(result.dropped)
            ctx.info["scenario"] = _scenario_info(result.summary)
        else:  # a scenario of an earlier ingest no longer applies
            for name in SCENARIO_FILES:
                (ctx.dir / name).unlink(missing_ok=True)
    return run.require(STAGE)


def _write_scenario(
    out: Path, dropped: list[ImageRecord], summary: dict, add_output: Callable[[Path], Path]
) -> None:
    write_records(add_output(out / "dropped.jsonl"), dropped)
    text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(add_output(out / "scenario.json"), text)


def _scenario_info(summary: dict) -> dict:
    """The manifest's short form of ``scenario.json``: what kind, how many classes, domains."""
    return {
        "kind": summary["kind"],
        "classes": len(summary["classes"]),
        "domains": summary["domains"],
        "keep": summary["keep"],
        "dropped_images": summary["dropped_images"],
    }


def _describe(dataset: Dataset) -> dict:
    return {
        "format": dataset.format,
        "root": str(dataset.root),
        "classes": dataset.classes,
        "official_split": dataset.official_split,
        "skipped": [s.to_dict() for s in dataset.skipped],
    }


def _dataset_fingerprint(root: Path) -> str:
    """Cheap change detector: names, sizes and mtimes of the root folder's top-level entries.

    A root given as a file (a manifest, ``cars_annos.mat``) stands for its folder, which
    holds that file too. A root that is missing fingerprints as such: the reader then says
    what the root should be.
    """
    import hashlib

    folder = root if root.is_dir() else root.parent
    if not root.exists():
        return "missing"
    h = hashlib.sha256()
    try:
        for p in sorted(folder.iterdir()):
            if p.name == IMAGE_STORE:  # images the hf reader extracted: made, not read
                continue
            st = p.stat() if p.exists() else p.lstat()  # a dangling link counts as itself
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError as e:  # no permission to list it, a broken link in it, ...
        raise DataError(
            f"cannot read the dataset folder ({e.strerror or e}); check its permissions", folder
        ) from None
    return h.hexdigest()[:16]


def load_ingested(run: Run) -> tuple[list[ImageRecord], dict]:
    """Records and dataset description of an ingested run (``StageError`` if not ingested)."""
    run.require(STAGE)
    desc_path = run.stage_dir(STAGE) / "dataset.json"
    if not desc_path.exists():
        raise StageError(f"{desc_path} is missing; re-run: atlantis ingest ... --out {run.root}")
    desc = json.loads(desc_path.read_text(encoding="utf-8"))
    return read_records(run.stage_dir(STAGE) / "records.jsonl"), desc


def _optional_output(run: Run, name: str) -> Path | None:
    """An ingest output that only a scenario writes: its path, or None without a scenario."""
    if name not in run.require(STAGE).outputs:
        return None
    path = run.stage_dir(STAGE) / name
    if not path.exists():
        raise StageError(f"{path} is missing; re-run: atlantis ingest ... --out {run.root} --force")
    return path


def load_scenario(run: Run) -> dict | None:
    """The ingest scenario's summary (``scenario.json``), or None when no scenario was applied."""
    path = _optional_output(run, "scenario.json")
    return None if path is None else json.loads(path.read_text(encoding="utf-8"))


def load_dropped(run: Run) -> list[ImageRecord] | None:
    """The training records the ingest scenario withheld (``dropped.jsonl``), in input order.

    None when no scenario was applied (``kind: none``): then nothing was withheld, which is
    not the same as a scenario that happened to drop no image (an empty list). The oracle
    arm (``atlantis.train.stage``) restores exactly these records to training.
    """
    path = _optional_output(run, "dropped.jsonl")
    return None if path is None else read_records(path)
