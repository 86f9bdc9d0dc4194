"""CLI commands of the insight stage (registered on the shared app).

``atlantis insight RUN --llm rules`` runs the Data Insight Generator on a captioned run and
prints what it found; ``atlantis analyze`` does ingest, caption and insight in one go for
someone who only wants to understand a dataset. ``rules`` is the offline deterministic
backend, not a language model; ``--llm openai --option model=gpt-4o-mini`` uses one
(``--option KEY=VALUE`` is ``--set insight.llm_options.KEY=VALUE``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from atlantis.cli.app import (
    BackendOptionOpt,
    CaptionerOpt,
    ConfigOpt,
    ForceOpt,
    FormatOpt,
    LlmOpt,
    OutOpt,
    RootOpt,
    RunArg,
    SetOpt,
    app,
)
from atlantis.cli.common import console, friendly_errors, is_tty, run_config, save_run_config
from atlantis.store.run import Run

if TYPE_CHECKING:
    from atlantis.config import AtlantisConfig
    from atlantis.insight.schema import Insight


@app.command()
@friendly_errors
def insight(
    run_dir: RunArg,
    llm: LlmOpt = None,
    option: BackendOptionOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Find what the training data over- and under-represents (the DIG); writes a report."""
    from atlantis.insight.stage import insight as run_insight
    from atlantis.insight.stage import load_insight

    run = Run(run_dir)
    overrides = [*(set_ or []), *([f"insight.llm={llm}"] if llm else [])]
    overrides += [f"insight.llm_options.{item}" for item in option or []]
    full = _insight_config(run, config, overrides, llm)
    m = run_insight(run, full.insight, force=force, progress=is_tty())
    save_run_config(run, full)  # only a config that worked becomes the run's config
    print_summary(load_insight(run), run.stage_dir("insight") / "report.html", m.status)


@app.command()
@friendly_errors
def analyze(
    format: FormatOpt,
    root: RootOpt,
    out: OutOpt,
    captioner: CaptionerOpt = "metadata",
    llm: LlmOpt = "rules",
    option: BackendOptionOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Understand a dataset in one go: ingest (zsl split), caption, insight, report."""
    from atlantis.caption.stage import caption as run_caption
    from atlantis.data.ingest import ingest as run_ingest
    from atlantis.insight.stage import insight as run_insight
    from atlantis.insight.stage import load_insight

    run = Run(out)
    overrides = [f"data.format={format}", f"data.root={root.expanduser().resolve()}",
                 "data.split=zsl", f"caption.captioner={captioner}"]  # fmt: skip
    cfg = run_config(run, config, [*(set_ or []), *overrides])
    save_run_config(run, cfg)
    m = run_ingest(run, cfg.data)
    console.print(f"ingest: {m.counts.get('images', 0)} images, {m.counts.get('classes', 0)} "
                  f"classes; the statistics below use the {m.counts.get('train_images', 0)} "
                  "training images")  # fmt: skip
    c = run_caption(run, cfg.caption, progress=is_tty()).counts
    console.print(f"caption: {c.get('captioned', 0)} captioned, {c.get('empty', 0)} empty "
                  f"({captioner})")  # fmt: skip
    options = [f"insight.llm_options.{item}" for item in option or []]
    full = _insight_config(run, None, [*(set_ or []), f"insight.llm={llm}", *options], llm)
    mi = run_insight(run, full.insight, progress=is_tty())
    save_run_config(run, full)
    print_summary(load_insight(run), run.stage_dir("insight") / "report.html", mi.status)


def _insight_config(
    run: Run, config: Path | None, overrides: list[str], llm: str | None
) -> AtlantisConfig:
    """The resolved ``insight`` section (saved into the run's config when it has one).

    Options belong to a backend: when ``--llm`` switches to another one, the saved
    ``llm_options`` of the previous one are dropped.
    """
    return run_config(run, config, overrides, switch=("insight", "llm", "llm_options", llm))


def print_summary(ins: Insight, report: Path, status: str = "done") -> None:
    """A screenful: who wrote the text, the gaps found, where the report is (unwrapped lines,
    so names and paths stay whole for copying and grepping)."""
    md = ins.metadata
    say = functools.partial(console.print, soft_wrap=True)
    who = "rules (no LLM)" if md.get("is_language_model") is False else f"LLM {md.get('llm')}"
    n_images = sum(ins.class_counts.values())
    say(f"[bold]insight[/] ({status}): {n_images} training images, "
                  f"{len(ins.class_names)} classes, text by {who}")  # fmt: skip
    under = ", ".join(f"{c} ({ins.class_counts[c]})" for c in ins.under_represented_classes[:10])
    more = len(ins.under_represented_classes) - 10
    say(f"under-represented classes ({len(ins.under_represented_classes)}): "
                  f"{under or 'none'}{f', +{more} more' if more > 0 else ''}")  # fmt: skip
    say(f"domains ({ins.domain_criterion}): {', '.join(d.name for d in ins.domains)}")
    cells = ", ".join(f"{s.class_name} x {s.domain} ({s.count} of ~{s.expected:g})"
                      for s in ins.scarce_cells[:8])  # fmt: skip
    say(f"scarce class x domain cells ({len(ins.scarce_cells)}): {cells or 'none'}")
    say(f"new classes ({len(ins.new_classes)}): {', '.join(ins.new_classes) or 'none'}")
    say(f"report: {report}")
