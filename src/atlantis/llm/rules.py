"""``rules``: the offline, deterministic stand-in for an LLM. It is NOT a language model.

Each task name has a handler registered by the module that defines the task (e.g.
``atlantis.insight.domains`` registers ``dig.domain_infer``); the handler fills the task's
schema from the structured variables alone (frequency tables, counts, WordNet). Reports
label its output "rules (no LLM)". Use a real backend (``openai``, ``transformers``) for
model-written text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from atlantis.llm.base import LLM, LLMTask
from atlantis.llm.store import CallStore
from atlantis.registry import Registry

RuleHandler = Callable[[dict[str, Any]], BaseModel | dict[str, Any]]
RULES: Registry[BaseModel] = Registry("rules task")


def rule(task_name: str) -> Callable[[RuleHandler], RuleHandler]:
    """Register the deterministic handler of ``task_name``."""
    return RULES.register(task_name)


class RulesEngine(LLM):
    """Answers tasks with registered deterministic handlers (statistics, WordNet), no model."""

    is_language_model = False

    def __init__(self, **_: Any) -> None:
        super().__init__(max_repairs=0)

    @property
    def identity(self) -> str:
        return "rules"

    def generate(self, messages, schema, options) -> str:  # pragma: no cover - never called
        raise NotImplementedError("the rules engine answers tasks, not chat messages")

    def run(self, task: LLMTask, store: CallStore | None = None) -> BaseModel:
        handler = RULES.get(task.name)
        out = handler(task.variables)
        return task.schema.model_validate(out.model_dump() if isinstance(out, BaseModel) else out)
