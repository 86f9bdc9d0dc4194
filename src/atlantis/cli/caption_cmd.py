"""CLI commands of the caption stage (registered on the shared app).

``atlantis caption RUN --captioner tags`` captions every ingested image; ``atlantis
captioners`` lists the captioner names. Options of a captioner go in with ``--option``
(``--option prompt="a photo of"``), which is ``--set caption.options.KEY=VALUE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from atlantis.cli.app import (
    BackendOptionOpt,
    BatchSizeOpt,
    CaptionerOpt,
    ConfigOpt,
    DeviceOpt,
    ForceOpt,
    RunArg,
    SetOpt,
    app,
)
from atlantis.cli.common import console, friendly_errors, is_tty, run_config, save_run_config
from atlantis.store.run import Run

if TYPE_CHECKING:
    from atlantis.config import AtlantisConfig


@app.command()
@friendly_errors
def caption(
    run_dir: RunArg,
    captioner: CaptionerOpt = None,
    option: BackendOptionOpt = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Caption every ingested image (cached per image; resumable)."""
    from atlantis.caption.stage import caption as run_caption

    run = Run(run_dir)
    pairs = {"captioner": captioner, "batch_size": batch_size, "device": device}
    overrides = [f"caption.{k}={v}" for k, v in pairs.items() if v is not None]
    overrides += [f"caption.options.{item}" for item in option or []]
    full = _caption_config(run, config, [*(set_ or []), *overrides], captioner)
    m = run_caption(run, full.caption, force=force, progress=is_tty())
    save_run_config(run, full)  # only a config that worked becomes the run's config
    c = m.counts
    console.print(f"{m.stage}: {c.get('images', 0)} images, {c.get('captioned', 0)} captioned, "
                  f"{c.get('empty', 0)} empty, {c.get('computed', 0)} computed with "
                  f"{m.info.get('captioner')} ({m.status})")  # fmt: skip
    if c.get("empty"):
        console.print(
            f"[yellow]{c['empty']} image(s) have no caption[/]; caption them with e.g. "
            "--option fallback=tags (metadata captioner) or another --captioner"
        )
    if "tags v" in str(m.info.get("captioner_key", "")):
        console.print(
            "note: tags captions are ImageNet labels, not descriptions from a vision-language "
            "model; they say nothing of pose or background"
        )


def _caption_config(
    run: Run, config: Path | None, overrides: list[str], captioner: str | None
) -> AtlantisConfig:
    """The resolved ``caption`` section, saved into the run's config when it has one.

    Options belong to a captioner: when ``--captioner`` switches to another one, the options
    saved for the previous one are dropped (``top_k`` would make ``metadata`` fail).
    """
    return run_config(run, config, overrides, switch=("caption", "captioner", "options", captioner))


@app.command()
@friendly_errors
def captioners() -> None:
    """List the captioner backends."""
    from atlantis.caption.registry import list_captioners

    for name, help_ in list_captioners().items():
        console.print(f"[bold]{name}[/]  {help_}")
