"""The generate stage: one image per plan item, made by the configured source.

Reads ``RUN/plan/<arm>/plan.jsonl`` (every round, ``plan.stage.load_plan``); writes ``RUN/generate/<arm>/``:
``records.jsonl`` (an ``ImageRecord`` per image, in plan order), ``failures.jsonl`` (items
that gave no image, with the reason) and ``images/`` (see ``outputs`` for the layout and
the write order that makes resume exact).

Nothing is made twice. Each image is named by its request's address (``base``), so:
a finished item (record + file) is reused; a file whose record a crash lost is adopted;
a plan that changes only re-makes the items whose request changed; and switching executor,
batch size or device resumes rather than restarts (they are not in the config hash).

A retrieval source's pool is checked first against the run's dataset (``pool_leak``: its
copies of train, val, test or withheld images are dropped, or the pool refused), and a plan
asking for more images than the pool can give is refused before anything is sourced.

Counts: ``planned`` items, ``made`` now, ``reused`` (finished before), ``adopted``,
``failed``, ``duplicates`` (items asking for exactly the image another item asks for) and
``images`` in the records. Timings: ``per_image_s`` is compute seconds per made image (the
cost model's ``k_s``); ``wall_per_image_s`` includes loading and, on Ray, the parallelism.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from typing import Any

from atlantis.data.records import ImageRecord, RecordAppender, iter_records, read_records
from atlantis.data.records import write_records as write_record_file
from atlantis.errors import DataError, StageError
from atlantis.generate.base import ImageSource, ItemSpec, PlanItem
from atlantis.generate.config import RUNTIME_KEYS, GenerateConfig
from atlantis.generate.executor import Task, create_executor
from atlantis.generate.outputs import (
    Outcome,
    OutputSink,
    build_record,
    image_relpath,
    png_complete,
    read_png_info,
    record_id,
)
from atlantis.generate.registry import build_source
from atlantis.plan.stage import load_plan
from atlantis.store.atomic import atomic_write_text
from atlantis.store.run import Run, StageContext, StageManifest

RECORDS_FILE = "records.jsonl"
FAILURES_FILE = "failures.jsonl"
_ARM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def stage_name(arm: str) -> str:
    if not _ARM.match(arm):
        raise StageError(f"arm {arm!r}: use letters, digits, '-', '_' or '.' (e.g. targeted)")
    return f"generate/{arm}"


def generate(run: Run, cfg: GenerateConfig, arm: str, *, force: bool = False,
             progress: bool = True, source: ImageSource | None = None) -> StageManifest:  # fmt: skip
    """Run (or skip, when up to date) the generate stage of ``arm``.

    ``source`` overrides the one ``cfg`` names (an API user's own ``ImageSource``); its
    ``identity`` is part of the stage's inputs either way.
    """
    name = stage_name(arm)
    items: list[PlanItem] = list(load_plan(run, arm))
    if not items:
        raise StageError(
            f"run {run.root}: the plan of arm {arm!r} is empty, so there is nothing to "
            f"generate; re-run `atlantis plan {run.root} --arm {arm}` with a budget above 0"
        )
    source = source or build_source(cfg, cache_dir=run.root / "cache")
    source.show_progress = progress
    if cfg.executor == "ray" and source.requested_device == "auto":
        # Addresses depend on precision, which "auto" picks per device: decide it for the
        # actors' device here, on the driver, which may have no GPU of its own.
        source.requested_device = "cuda" if cfg.ray.num_gpus_per_actor > 0 else "cpu"
    leaks = _drop_pool_leaks(run, source, progress)
    inputs = {"plan": run.output_hash(f"plan/{arm}"),
              "source": hashlib.sha256(source.identity.encode()).hexdigest()[:16]}  # fmt: skip
    if source.uses_references and any(source.parents(it) for it in items):
        inputs["ingest"] = run.output_hash("ingest")
    force = force or _images_missing(run, name)
    with run.stage(name, cfg, inputs, exclude=RUNTIME_KEYS, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        _execute(ctx, cfg, arm, items, source, progress)
        if leaks is not None:
            ctx.info["pool_leaks_dropped"] = leaks
    return run.require(name)


def _execute(ctx: StageContext, cfg: GenerateConfig, arm: str, items: list[PlanItem],
             source: ImageSource, progress: bool) -> None:  # fmt: skip
    run = ctx.run
    by_id = {it.id: it for it in items}
    if len(by_id) != len(items):
        raise StageError(f"the plan of arm {arm!r} repeats item ids; re-run `atlantis plan`")
    tasks, duplicates = _tasks(items, source)
    refs, missing = _references(run, arm, items, source) if source.uses_references else ({}, {})
    _check_capacity(run, arm, source, sum(t.item.id not in missing for t in tasks))
    records_path = ctx.dir / RECORDS_FILE
    done, adopted = _resume(run, arm, tasks, by_id, source)
    write_record_file(records_path, [done[t.item.id] for t in tasks if t.item.id in done])
    source.restore(list(done.values()))
    source.prepare(items)
    todo = [t for t in tasks if t.item.id not in done and t.item.id not in missing]
    _check_reference_files(run, arm, todo, refs, source)

    def record_for(outcome: Outcome) -> ImageRecord:
        item = by_id[outcome.plan_id]
        return build_record(item, arm, source.kind, outcome.info, _plan_meta(item))

    executor = create_executor(cfg)
    with (
        RecordAppender(records_path, sync_every=cfg.batch_size) as appender,
        open(ctx.dir / FAILURES_FILE, "w", encoding="utf-8") as fh,
    ):
        sink = OutputSink(run.root, appender, fh, record_for)
        for pid, reason in {**duplicates, **missing}.items():
            sink.accept(Outcome(pid, source.address(by_id[pid]), None, {}, reason))
        if todo:
            if cfg.executor == "local":
                with ctx.timer("load_s"):
                    source.load()
            with ctx.timer("generate_s"):
                executor.run(source, todo, refs, sink, progress)
    _finish(ctx, items, {**done, **sink.made}, sink.failed)
    made = len(sink.made)
    ctx.counts.update(planned=len(items), made=made, reused=len(done) - adopted,
                      adopted=adopted, failed=len(sink.failed), duplicates=len(duplicates),
                      batch_halvings=executor.halvings)  # fmt: skip
    if made:  # compute spent on failed attempts counts too: it is the cost of a kept image
        ctx.timings["per_image_s"] = sink.compute_s / made
        wall = ctx.timings.get("generate_s", 0.0) + ctx.timings.get("load_s", 0.0)
        ctx.timings["wall_per_image_s"] = wall / made
    ctx.info.update(source=source.model_name, kind=source.kind, identity=source.identity,
                    executor=cfg.executor, batch_size=cfg.batch_size)  # fmt: skip


def _finish(ctx: StageContext, items: list[PlanItem], records: dict[str, ImageRecord],
            failed: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """Rewrite both logs in plan order: the same bytes whatever order work finished in."""
    ctx.add_output(ctx.dir / RECORDS_FILE)
    write_record_file(ctx.dir / RECORDS_FILE, [records[it.id] for it in items if it.id in records])
    ctx.add_output(ctx.dir / FAILURES_FILE)
    lines = [json.dumps(failed[it.id], sort_keys=True, ensure_ascii=False) + "\n"
             for it in items if it.id in failed]  # fmt: skip
    atomic_write_text(ctx.dir / FAILURES_FILE, "".join(lines))
    ctx.counts["images"] = len(records)


def _tasks(items: Sequence[PlanItem], source: ImageSource) -> tuple[list[Task], dict[str, str]]:
    """One task per distinct request, in plan order; later items asking the same are duplicates."""
    first: dict[str, str] = {}
    tasks, duplicates = [], {}
    for item in items:
        address = source.address(item)
        if address in first:
            duplicates[item.id] = (
                f"duplicate of plan item {first[address]!r}: same description, negative "
                "prompt, seed and source, so the same image; give the items different seeds"
            )
            continue
        first[address] = item.id
        tasks.append(Task(ItemSpec.of(item), address))
    return tasks, duplicates


def _resume(run: Run, arm: str, tasks: list[Task], by_id: dict[str, PlanItem],
            source: ImageSource) -> tuple[dict[str, ImageRecord], int]:  # fmt: skip
    """Records of tasks already finished (plan id -> record) and how many were adopted."""
    path = run.stage_dir(stage_name(arm)) / RECORDS_FILE
    existing = {r.path: r for r in iter_records(path)} if path.exists() else {}
    done: dict[str, ImageRecord] = {}
    adopted = 0
    for task in tasks:
        rel = image_relpath(arm, task.address)
        if not png_complete(run.root / rel):
            continue
        item = by_id[task.item.id]
        if rel in existing:  # finished: refresh what the plan says about it (id, label, meta)
            old = existing[rel]
            done[item.id] = old.model_copy(update={
                "id": record_id(source.kind, arm, item.id), "label": item.class_name,
                "domains": [item.domain] if item.domain else [],
                "meta": {**old.meta, "plan_id": item.id, "arm": arm, **_plan_meta(item)},
            })  # fmt: skip
            continue
        info = read_png_info(run.root / rel)  # a crash between file and record: adopt it
        if info is not None and info.get("address") == task.address:
            done[item.id] = build_record(item, arm, source.kind, info, _plan_meta(item))
            adopted += 1
    return done, adopted


def _references(run: Run, arm: str, items: Sequence[PlanItem],
                source: ImageSource) -> tuple[dict, dict]:  # fmt: skip
    """Reference image id -> file (ingested records), and items whose reference is unknown."""
    from atlantis.data.ingest import load_ingested
    from atlantis.data.paths import image_paths

    wanted = {ref for it in items for ref in source.parents(it)}
    if not wanted:
        return {}, {}
    records = [r for r in load_ingested(run)[0] if r.id in wanted]
    refs = dict(zip([r.id for r in records], image_paths(run, records), strict=True))
    plan = run.stage_dir(f"plan/{arm}") / "plan.jsonl"
    missing = {
        it.id: f"reference image {ref!r} is not an ingested image of this run (named in {plan}); "
        f"the plan was made from another ingest: re-run `atlantis plan {run.root} --arm {arm}`"
        for it in items
        for ref in reversed(source.parents(it))  # the first unknown one names the item
        if ref not in refs
    }
    return refs, missing


def _check_reference_files(run: Run, arm: str, todo: Sequence[Task], refs: dict,
                           source: ImageSource) -> None:  # fmt: skip
    """Fail before sourcing when a reference image's file is gone from disk, naming it."""
    for task in todo:
        for ref in source.parents(task.item):
            if not refs[ref].is_file():
                raise DataError(
                    f"reference image {ref!r} of plan item {task.item.id!r} (arm {arm!r}) is "
                    "missing on disk; the dataset folder moved or lost files since `atlantis "
                    f"ingest`: restore it, or re-run ingest and `atlantis plan {run.root} --arm "
                    f"{arm}`",
                    refs[ref],
                )


def _check_capacity(run: Run, arm: str, source: ImageSource, wanted: int) -> None:
    """Refuse a plan that asks one arm for more images than the source can give."""
    capacity = source.capacity
    if capacity is None or wanted <= capacity:
        return
    pool = source.pool_view()
    where = f"the retrieve pool {pool.folder}" if pool else source.model_name
    raise StageError(
        f"the plan of arm {arm!r} ({run.stage_dir(f'plan/{arm}') / 'plan.jsonl'}) asks for "
        f"{wanted} images, but {where} has only {capacity} usable ones, and retrieval never "
        "uses an image twice in an arm; give a bigger pool (generate.options.pool) or a "
        f"smaller plan.budget (then re-run `atlantis plan {run.root} --arm {arm}`)"
    )


def _drop_pool_leaks(run: Run, source: ImageSource, progress: bool) -> int | None:
    """Compare a retrieval pool with the run's dataset; drop the copies or refuse the pool.

    Returns how many were dropped (None: no pool, or no dataset to compare with).
    Once per pool and dataset: the verdict is cached under ``RUN/cache/retrieve/pool-leaks``.
    A run without an ingest stage has no dataset to leak.
    """
    pool = source.pool_view()
    if pool is None or run.read_manifest("ingest") is None:
        return None
    from atlantis.data.ingest import load_dropped, load_ingested
    from atlantis.data.paths import image_paths
    from atlantis.generate.pool_leak import find_leaks

    records = load_ingested(run)[0]
    withheld = load_dropped(run) or []
    splits = [r.split for r in records] + ["withheld train"] * len(withheld)
    paths = image_paths(run, records + withheld)
    dataset = [(r.id, s, p) for r, s, p in zip(records + withheld, splits, paths, strict=True)]
    key = hashlib.sha256(str(pool.folder).encode()).hexdigest()[:16]
    cache = run.root / "cache" / "retrieve" / "pool-leaks" / f"{key}.json"
    leaks = find_leaks(pool.folder, pool.files, dataset, cache, progress)
    if not leaks:
        return 0
    named = "; ".join(x.describe() for x in leaks[:5]) + (" ..." if len(leaks) > 5 else "")
    what = (f"{len(leaks)} of the retrieve pool's {len(pool.files)} images are copies of this "
            f"run's dataset images (e.g. {named})")  # fmt: skip
    if pool.on_leak == "refuse":
        raise DataError(
            f"{what}; picked into training they would leak the dataset into the model. Remove "
            "them from the pool (or leave them out of an only_captioned captions file), or set "
            "generate.options.pool_leaks=drop to skip them",
            pool.folder,
        )
    warnings.warn(f"{pool.folder}: {what}; they are never picked (generate.options."
                  "pool_leaks=refuse stops instead)", RuntimeWarning, stacklevel=3)  # fmt: skip
    source.exclude({x.file: x.describe() for x in leaks})
    return len(leaks)


def _plan_meta(item: PlanItem) -> dict[str, Any]:
    return {"round": int(getattr(item, "round", 0) or 0),
            "is_new_class": bool(getattr(item, "is_new_class", False))}  # fmt: skip


def _images_missing(run: Run, name: str) -> bool:
    """True when a finished stage's records point at image files that are gone or cut short."""
    m = run.read_manifest(name)
    path = run.stage_dir(name) / RECORDS_FILE
    if m is None or m.status != "done" or not path.exists():
        return False
    return any(not png_complete(run.root / r.path) for r in iter_records(path))


def load_generated(run: Run, arm: str) -> list[ImageRecord]:
    """The records of a finished generate stage (``StageError`` says how to make it)."""
    name = stage_name(arm)
    run.require(name)
    return read_records(run.stage_dir(name) / RECORDS_FILE)
