"""Versioned prompt templates shipped with the package (``atlantis/llm/prompts/``).

A template file ``<group>/<name>.v<N>.md`` holds a system part and a user part separated by
a line ``---user---``. Placeholders ``$name`` are filled by ``string.Template``; the task's
structured input always goes in ``$data`` as indented JSON, fenced and labelled as data, so
text inside captions or class names is quoted content, never instructions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from atlantis.errors import ConfigError

SEPARATOR = "---user---"
_NAME = re.compile(r"^(?P<id>[\w/-]+)\.v(?P<version>\d+)\.md$")


@dataclass(frozen=True)
class PromptTemplate:
    id: str  # e.g. "dig/domain_infer"
    version: int
    system: str
    user: str

    @property
    def ref(self) -> str:
        return f"{self.id}.v{self.version}"

    def render(self, variables: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, str]]:
        data = json.dumps(variables, indent=1, ensure_ascii=False, sort_keys=True, default=str)
        values = {
            "data": f"<data>\n{data}\n</data>",
            "schema": json.dumps(schema, indent=1, sort_keys=True),
            **{k: v for k, v in variables.items() if isinstance(v, str | int | float)},
        }
        return [
            {"role": "system", "content": Template(self.system).safe_substitute(values).strip()},
            {"role": "user", "content": Template(self.user).safe_substitute(values).strip()},
        ]


@cache
def _index() -> dict[str, dict[int, str]]:
    root = resources.files("atlantis.llm") / "prompts"
    found: dict[str, dict[int, str]] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif m := _NAME.match(prefix + child.name):
                found.setdefault(m["id"], {})[int(m["version"])] = child.read_text(encoding="utf-8")

    walk(root, "")
    return found


def load_prompt(template_id: str, version: int | None = None) -> PromptTemplate:
    """The template ``template_id`` at ``version`` (default: the newest)."""
    versions = _index().get(template_id)
    if not versions:
        raise ConfigError(f"no prompt template {template_id!r}; available: {sorted(_index())}")
    v = max(versions) if version is None else version
    if v not in versions:
        raise ConfigError(f"prompt {template_id!r} has no version {v}; versions: {sorted(versions)}")
    text = versions[v]
    if SEPARATOR not in text:
        raise ConfigError(f"prompt {template_id}.v{v}: missing the '{SEPARATOR}' line")
    system, user = text.split(SEPARATOR, 1)
    return PromptTemplate(template_id, v, system, user)
