"""The LLM interface: tasks in, validated pydantic objects out, every exchange recorded.

``LLM.run`` does the parts every model backend shares: render the task's prompt, look the
exchange up in the run's call store (a re-run reuses answers), call the backend, extract
and validate JSON against the task's schema, and on a bad answer send a *repair* turn that
quotes the validation error, up to ``max_repairs`` times. A final failure raises
``LLMOutputError`` naming the function, with the raw answers saved in the store.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from atlantis.errors import AtlantisError
from atlantis.llm.prompts import load_prompt
from atlantis.llm.store import CallStore

M = TypeVar("M", bound=BaseModel)


class LLMOutputError(AtlantisError):
    """The model did not produce a valid answer after the allowed repairs."""


class LLMRequestError(AtlantisError):
    """The backend could not be reached or kept failing (after retries with backoff)."""


@dataclass(frozen=True)
class LLMTask:
    """One structured request: which function, which prompt, what data, what answer shape."""

    name: str  # the calling function, e.g. "dig.domain_infer" (named in errors)
    template: str  # prompt template id, e.g. "dig/domain_infer"
    variables: dict[str, Any]  # JSON-serialisable inputs; rendered as a quoted data block
    schema: type[BaseModel]
    template_version: int | None = None  # None: newest shipped version
    options: dict[str, Any] = field(default_factory=dict)  # e.g. temperature, max_tokens


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the whole text, a fenced block, or the outermost {...}."""
    text = text.strip()
    candidates = [text]
    candidates += re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            candidates.append(text[i : j + 1])
    last: Exception | None = None
    for c in candidates:
        try:
            return json.loads(c)
        except json.JSONDecodeError as e:
            last = e
    raise ValueError(f"no JSON object found ({last})")


class LLM(ABC):
    """A backend that answers ``LLMTask``s. Subclasses implement ``generate``."""

    #: False for deterministic stand-ins (``rules``): reports say no model was used.
    is_language_model: bool = True

    def __init__(self, max_repairs: int = 2) -> None:
        self.max_repairs = max_repairs

    @property
    @abstractmethod
    def identity(self) -> str:
        """Backend + model + decoding settings: part of every cache key."""

    @abstractmethod
    def generate(self, messages: list[dict[str, str]], schema: dict[str, Any],
                 options: dict[str, Any]) -> str:  # fmt: skip
        """One chat completion; returns the raw text of the answer."""

    def run(self, task: LLMTask, store: CallStore | None = None) -> BaseModel:
        """Answer ``task`` with a validated ``task.schema`` instance (see module docstring)."""
        prompt = load_prompt(task.template, task.template_version)
        schema = task.schema.model_json_schema()
        messages = prompt.render(task.variables, schema)
        key = CallStore.key(self.identity, prompt.ref, messages, schema, task.options)
        if store is not None and (hit := store.get(key)) is not None and hit.get("ok"):
            return task.schema.model_validate(hit["parsed"])
        attempts: list[dict[str, Any]] = []
        convo = list(messages)
        for _ in range(self.max_repairs + 1):
            raw = self.generate(convo, schema, task.options)
            try:
                parsed = task.schema.model_validate(extract_json(raw))
            except (ValueError, ValidationError) as e:
                problem = str(e)
                attempts.append({"raw": raw, "error": problem})
                convo = [*convo, {"role": "assistant", "content": raw},
                         {"role": "user", "content": _repair_message(problem)}]  # fmt: skip
                continue
            attempts.append({"raw": raw, "error": None})
            if store is not None:
                store.put(key, task=task.name, prompt=prompt.ref, messages=messages,
                          attempts=attempts, parsed=parsed.model_dump(mode="json"), ok=True)  # fmt: skip
            return parsed
        path = None
        if store is not None:
            path = store.put(key, task=task.name, prompt=prompt.ref, messages=messages,
                             attempts=attempts, parsed=None, ok=False)  # fmt: skip
        raise LLMOutputError(
            f"{task.name}: the model ({self.identity}) gave no valid answer in "
            f"{len(attempts)} attempt(s); last problem: {attempts[-1]['error'][:300]}"
            + (f". Raw answers saved in {path}" if path else "")
        )


def _repair_message(problem: str) -> str:
    return (
        "Your answer could not be used: " + problem[:1500] + "\n"
        "Reply again with only one JSON object that matches the schema exactly, no prose."
    )
