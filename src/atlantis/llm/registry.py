"""Name -> LLM backend. ``create_llm("openai", model=..., base_url=...)``, ``create_llm("rules")``.

The factories import their backend module only when called: listing the backends imports
neither httpx nor transformers, and no backend module imports this one back (a backend that
registered itself here would make the two modules import each other).
"""

from __future__ import annotations

from typing import Any

from atlantis.llm.base import LLM
from atlantis.registry import Registry

LLMS: Registry[LLM] = Registry("llm backend")


@LLMS.register("rules", help="offline deterministic rules from statistics (not an LLM)")
def _rules(**options: Any) -> LLM:
    from atlantis.llm.rules import RulesEngine

    return RulesEngine(**options)


@LLMS.register(
    "openai", help="any OpenAI-compatible chat API (OpenAI, Azure, vLLM, Ollama, llama.cpp)"
)
def _openai(**options: Any) -> LLM:
    from atlantis.llm.openai_backend import OpenAIChat

    return OpenAIChat(**options)


@LLMS.register("transformers", help="a local Hugging Face chat model (transformers, in-process)")
def _transformers(**options: Any) -> LLM:
    from atlantis.llm.transformers_backend import TransformersChat

    return TransformersChat(**options)


def create_llm(name: str, **options: Any) -> LLM:
    return LLMS.create(name, **options)
