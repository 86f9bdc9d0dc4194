"""Helpers shared by the CLI commands: config resolution, error display, number parsing."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from atlantis.config import AtlantisConfig, load_config, save_config
from atlantis.errors import AtlantisError
from atlantis.registry import UnknownNameError
from atlantis.store.run import Run

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Show user-fixable errors as one red message and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (AtlantisError, UnknownNameError) as e:
            # soft_wrap: long paths in messages must stay on one line (greppable, copyable).
            err_console.print(
                f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def run_config(
    run: Run,
    config_file: Path | None,
    overrides: list[str] | None,
    switch: tuple[str, str, str, str | None] | None = None,
) -> AtlantisConfig:
    """The run's saved config, then ``--config`` file, then ``--set`` overrides.

    ``switch = (section, name_key, options_key, new_name)``: options belong to a backend, so
    when a command switches ``section.name_key`` to another backend, the saved
    ``section.options_key`` of the previous one are dropped (``top_k`` of one captioner
    would make another fail).
    """
    base: dict[str, Any] = {}
    if run.config_path.exists():
        base = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    if switch is not None:
        section, name_key, options_key, new_name = switch
        saved = base.get(section)
        if new_name and isinstance(saved, dict) and saved.get(name_key) != new_name:
            saved.pop(options_key, None)
    return load_config(config_file, overrides or [], base=base)


def save_run_config(run: Run, cfg: AtlantisConfig) -> None:
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run.config_path)


def parse_ks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ks = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r}: expected comma-separated integers, e.g. 1,2,4,8"
        ) from None
    if not ks or any(k < 1 for k in ks):
        raise typer.BadParameter(f"{text!r}: K values must be positive integers")
    return ks


def is_tty() -> bool:
    return sys.stderr.isatty()
