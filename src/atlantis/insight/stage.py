"""The insight stage: the six DIG functions and the detectors over the captioned training split.

Order: FrequencyEval -> ContextMaker -> ClassInfer -> DomainInfer -> domain assignment ->
detectors -> NewClassSearch -> InsightExtract. Statistics use the TRAIN split only; the
test split contributes its class *names*, so NewClassSearch never proposes a test class.

Outputs (``RUN/insight/``): ``insight.json`` (the validated ``Insight``), ``frequency.json``,
``detectors.json``, ``assignments.jsonl`` (record id -> domains, and by which rule),
``report.html``; every LLM exchange under ``llm/`` (a re-run reuses the answers). Inputs:
the caption stage, and the newest finished embed stage when there is one (the
embedding-based detectors need it; without it they are skipped, not failed).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.caption.stage import load_captioned
from atlantis.data.records import ImageRecord
from atlantis.errors import ConfigError, StageError
from atlantis.insight.assign import assign_domains, minilm_embedder, scarce_cells
from atlantis.insight.classes import class_report, has_labels, infer_classes
from atlantis.insight.config import InsightConfig
from atlantis.insight.context import dataset_summary, make_context
from atlantis.insight.domains import infer_domains
from atlantis.insight.extract import assemble_insight, findings_view, write_recommendations
from atlantis.insight.frequency import domain_tokens, frequency_eval, tag_records
from atlantis.insight.new_classes import search_new_classes
from atlantis.insight.schema import Insight
from atlantis.insight.text import normalise_name
from atlantis.llm import create_llm
from atlantis.llm.prompts import load_prompt
from atlantis.llm.store import CallStore
from atlantis.redact import redact_config, write_redacted
from atlantis.store.run import Run, StageManifest

STAGE = "insight"
TEMPLATES = ("dig/context_maker", "dig/class_infer", "dig/domain_infer",
             "dig/new_class_search", "dig/insight_extract")  # fmt: skip


def insight(
    run: Run,
    cfg: InsightConfig,
    llm_name: str | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> StageManifest:
    """Run (or skip, when up to date) the insight stage; ``llm_name`` overrides ``cfg.llm``."""
    if llm_name is not None and llm_name != cfg.llm:
        cfg = cfg.model_copy(update={"llm": llm_name})
    inputs = {"caption": run.output_hash("caption")}
    embed_stage = newest_embed_stage(run)
    if embed_stage:
        inputs[embed_stage] = run.output_hash(embed_stage)
    with run.stage(STAGE, cfg, inputs, force=force) as ctx:
        if ctx.up_to_date:
            return ctx.previous  # type: ignore[return-value]
        say = _reporter(progress)
        records = load_captioned(run)
        train = [r for r in records if r.split == "train"]
        if not train:
            raise StageError(
                f"run {run.root}: no training images; re-ingest with a split that has some"
            )
        test_names = list(dict.fromkeys(r.label for r in records if r.split == "test" and r.label))
        llm = create_llm(cfg.llm, **cfg.llm_options)
        store = CallStore(ctx.dir / "llm")

        say("FrequencyEval")
        with ctx.timer("frequency_eval_s"):
            tagged = tag_records(train, cfg.tagger)
            table = frequency_eval(tagged, cfg.top_n, cfg.per_class_top_n)
        dataset_name, dataset_format = _dataset(run)
        summary = dataset_summary(train, dataset_format=dataset_format, captioner=_captioner(run))
        say("ContextMaker")
        with ctx.timer("context_maker_s"):
            context = make_context(llm, summary, table, store)
        say("ClassInfer")
        with ctx.timer("class_infer_s"):
            proposed = None
            if cfg.infer_classes or not has_labels(tagged.labels):
                proposed, labels = infer_classes(
                    llm, context, table, tagged, cfg.n_inferred_classes, store
                )
                tagged = tagged.relabelled(labels)
                table = frequency_eval(tagged, cfg.top_n, cfg.per_class_top_n)
                train = [
                    r.model_copy(update={"label": lab})
                    for r, lab in zip(train, labels, strict=True)
                ]
            report = class_report(tagged.labels, cfg.under_threshold)
        say("DomainInfer")
        with ctx.timer("domain_infer_s"):
            domains = infer_domains(llm, context, table, summary["provided_domains"],
                                    report.class_names, cfg.n_domains, store)  # fmt: skip
        say("domain assignment")
        with ctx.timer("assign_s"):
            embedder = minilm_embedder() if cfg.embedding_assign else None
            assignment = assign_domains(train, tagged, domains, text_embedder=embedder)
            cells = scarce_cells(assignment.class_domain_counts, cfg.scarce_fraction)
            skip = {w for c in report.class_names for w in normalise_name(c).split()}
            skip |= {w for d in domains.domains for w in [*d.name.lower().split(), *d.keywords]}
            per_domain = domain_tokens(tagged, assignment.domains, skip)
        say("detectors")
        with ctx.timer("detectors_s"):
            detector_dicts = _run_detectors(
                run, embed_stage, train, assignment.class_domain_counts, cfg
            )
        say("NewClassSearch")
        with ctx.timer("new_class_search_s"):
            new, dropped = search_new_classes(
                llm, context, report, test_names, cfg.n_new_classes, store
            )
        say("InsightExtract")
        with ctx.timer("insight_extract_s"):
            view = findings_view(context, report, domains, assignment.class_domain_counts, cells,
                                 new, detector_dicts, assignment.method_counts())  # fmt: skip
            recs, dropped_keys = write_recommendations(llm, view, report.class_names, store)
            metadata = {
                "dataset": dataset_name,
                "split": "train",
                "n_images": len(train),
                "n_test_classes": len(test_names),
                "captioner": summary["captioner"],
                "llm": {
                    "backend": cfg.llm,
                    "identity": llm.identity,
                    "options": redact_config(cfg.llm_options),
                },
                "is_language_model": llm.is_language_model,
                "prompts": {t: load_prompt(t).ref for t in TEMPLATES}
                if llm.is_language_model
                else {},
                "tagger": table.tagger,
                "context": context.model_dump(),
                "inferred_classes": proposed.model_dump() if proposed else None,
                "domain_assignment": assignment.method_counts(),
                "new_classes_dropped": dropped,
                "recommendation_keys_dropped": dropped_keys,
                "new_classes_rationale": new.rationale,
                "embeddings": embed_stage,
                "timings_s": {k: round(v, 3) for k, v in ctx.timings.items()},
            }
            result = assemble_insight(recs, report, domains, assignment.class_domain_counts,
                                      cells, new, table, detector_dicts, metadata,
                                      per_domain)  # fmt: skip
        _write_outputs(ctx, result, table, detector_dicts, train, assignment)
        ctx.counts.update(
            train_images=len(train), classes=len(report.class_names), test_classes=len(test_names),
            captions=table.n_captions, domains=len(domains.domains), scarce_cells=len(cells),
            under_represented=len(report.under_represented), new_classes=len(new.new_classes),
            new_classes_dropped=len(dropped), llm_exchanges=len(store),
            unassigned=assignment.method_counts()["none"],
            detectors_failed=sum(d.get("status") == "failed" for d in detector_dicts),
        )  # fmt: skip
        ctx.info.update(llm=llm.identity, is_language_model=llm.is_language_model,
                        tagger=table.tagger, embeddings=embed_stage)  # fmt: skip
    return run.require(STAGE)


def _write_outputs(ctx, result: Insight, table, detector_dicts, train, assignment) -> None:
    from atlantis.insight.report import render_insight_report

    d: Path = ctx.dir
    for name, text in (
        ("insight.json", result.model_dump_json(indent=2)),
        ("frequency.json", table.model_dump_json(indent=2)),
        ("detectors.json", json.dumps(detector_dicts, indent=2, ensure_ascii=False)),
        ("assignments.jsonl", "".join(json.dumps({"id": r.id, "domains": assignment.domains[r.id],
                                                   "by": assignment.method[r.id]}) + "\n"
                                      for r in train)),
    ):  # fmt: skip
        write_redacted(d / name, text + ("" if text.endswith("\n") else "\n"))
        ctx.add_output(d / name)
    ctx.add_output(render_insight_report(result, detector_dicts, d / "report.html"))


def _run_detectors(run: Run, embed_stage: str | None, train: list[ImageRecord],
                   counts: dict[str, dict[str, int]], cfg: InsightConfig) -> list[dict[str, Any]]:  # fmt: skip
    from atlantis.insight.detectors import DetectorInputs, run_detectors

    vectors, ids = None, None
    if embed_stage:
        folder = run.stage_dir(embed_stage)
        all_ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        keep = {r.id for r in train}
        rows = [i for i, rid in enumerate(all_ids) if rid in keep]
        if rows:
            vectors = np.load(folder / "embeddings.npy")[rows]
            ids = [all_ids[i] for i in rows]
    inputs = DetectorInputs(records=train, class_domain_counts=counts, embeddings=vectors,
                            embedding_ids=ids)  # fmt: skip
    try:
        results = run_detectors(inputs, cfg.detectors, cfg.detector_options)
    except ValueError as e:  # options for a detector that will not run: a config typo
        raise ConfigError(f"insight.detector_options: {e}") from None
    return [r.to_dict() for r in results]


def newest_embed_stage(run: Run) -> str | None:
    """The most recently finished ``embed/<embedder>`` stage of the run, if any."""
    best: tuple[str, str] | None = None
    for path in sorted((run.root / "embed").glob("*/manifest.json")):
        name = path.parent.relative_to(run.root).as_posix()
        m = run.read_manifest(name)
        if (
            m is not None
            and m.status == "done"
            and (best is None or (m.finished_at or "") > best[0])
        ):
            best = (m.finished_at or "", name)
    return best[1] if best else None


def _reporter(progress: bool) -> Callable[[str], None]:
    """Step names on stderr when a person is watching (the stage takes seconds to minutes)."""
    if not progress:
        return lambda _: None
    return lambda step: print(f"insight: {step}", file=sys.stderr, flush=True)


def _dataset(run: Run) -> tuple[str, str]:
    """(``<root folder> (<format>)``, format) of the ingested dataset, for provenance."""
    path = run.stage_dir("ingest") / "dataset.json"
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "unknown", ""
    fmt = str(desc.get("format", ""))
    return f"{Path(str(desc.get('root', '?'))).name} ({fmt})", fmt


def _captioner(run: Run) -> str:
    m = run.read_manifest("caption")
    return str(m.info.get("captioner") or m.config.get("captioner", "")) if m else ""


def load_insight(run: Run) -> Insight:
    """The insight of a finished insight stage (``StageError`` says how to make it)."""
    run.require(STAGE)
    return Insight.model_validate_json(
        (run.stage_dir(STAGE) / "insight.json").read_text(encoding="utf-8")
    )
