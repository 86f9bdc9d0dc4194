"""Name -> LLM backend. ``create_llm("openai", model=..., base_url=...)``, ``create_llm("rules")``."""

from __future__ import annotations

import importlib
from typing import Any

from atlantis.llm.base import LLM
from atlantis.registry import Registry

LLMS: Registry[LLM] = Registry("llm backend")

# Backends register on import; the heavy ones import their libraries lazily inside.
_MODULES = (
    "atlantis.llm.rules",
    "atlantis.llm.openai_backend",
    "atlantis.llm.transformers_backend",
)


def _load_backends() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def create_llm(name: str, **options: Any) -> LLM:
    _load_backends()
    return LLMS.create(name, **options)
