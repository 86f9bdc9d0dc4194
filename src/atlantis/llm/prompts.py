"""Versioned prompt templates shipped with the package (``atlantis/llm/prompts/``).

A template file ``<group>/<name>.v<N>.md`` holds a system part and a user part separated by
a line ``---user---``. Placeholders ``$name`` are filled by ``string.Template``; the task's
structured input always goes in ``$data`` as indented JSON, fenced and labelled as data, so
text inside captions or class names is quoted content, never instructions. Data cannot
close the fence: angle brackets inside the JSON are escaped (``quote_json``), and a
delimiter tag in a named placeholder is defused (``_inline``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from atlantis.errors import ConfigError

SEPARATOR = "---user---"
_NAME = re.compile(r"^(?P<id>[\w/-]+)\.v(?P<version>\d+)\.md$")
#: Extra template folders (tests, plugins), searched after the shipped ones; see ``add_prompt_dir``.
_EXTRA_DIRS: list[Path] = []


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
            **{k: _inline(v) for k, v in variables.items() if isinstance(v, str | int | float)},
            # Last, so that a variable called "data" or "schema" cannot replace the data block.
            "data": f"<data>\n{quote_json(data)}\n</data>",
            "schema": json.dumps(schema, indent=1, sort_keys=True),
        }
        return [
            {"role": "system", "content": Template(self.system).safe_substitute(values).strip()},
            {"role": "user", "content": Template(self.user).safe_substitute(values).strip()},
        ]


def quote_json(text: str) -> str:
    """JSON text with every ``<`` and ``>`` written as ``\\u003c`` / ``\\u003e``.

    The data block ends at the first ``</data>``: a class label or caption holding that text
    would otherwise close the block early and have what follows read as instructions.
    Outside strings JSON has no angle brackets, so the escapes land only inside strings,
    where any JSON reader (and a model) reads them back as the same characters.
    """
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


_TAG = re.compile(r"<(\s*/?\s*data\b[^<>]*)>", re.I)


def _inline(value: str | int | float) -> str | int | float:
    """A variable named in the template text (``$domain``), with delimiter tags defused.

    It stands outside the data block, as plain text, so JSON escapes would show; instead a
    ``<data>`` or ``</data>`` in it gets single angle quotes (``‹/data›``), which no reader
    takes for the block's delimiters. Other text is left as it is.
    """
    return _TAG.sub(r"‹\1›", value) if isinstance(value, str) else value


def add_prompt_dir(path: Path | str) -> None:
    """Also load templates from ``path`` (same ``<group>/<name>.v<N>.md`` layout).

    For tests and plugins that bring their own tasks. A shipped template of the same id and
    version wins, so an extra folder can add templates but never silently change one.
    """
    folder = Path(path).resolve()
    if folder not in _EXTRA_DIRS:
        _EXTRA_DIRS.append(folder)
        _index.cache_clear()


def remove_prompt_dir(path: Path | str) -> None:
    """Undo ``add_prompt_dir`` (tests clean up after themselves)."""
    folder = Path(path).resolve()
    if folder in _EXTRA_DIRS:
        _EXTRA_DIRS.remove(folder)
        _index.cache_clear()


@cache
def _index() -> dict[str, dict[int, str]]:
    found: dict[str, dict[int, str]] = {}

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif m := _NAME.match(prefix + child.name):
                versions = found.setdefault(m["id"], {})
                versions.setdefault(int(m["version"]), child.read_text(encoding="utf-8"))

    for root in [resources.files("atlantis.llm") / "prompts", *_EXTRA_DIRS]:
        if root.is_dir():  # the shipped folder may be empty (no tasks yet) or absent
            walk(root, "")
    return found


def load_prompt(template_id: str, version: int | None = None) -> PromptTemplate:
    """The template ``template_id`` at ``version`` (default: the newest)."""
    versions = _index().get(template_id)
    if not versions:
        raise ConfigError(f"no prompt template {template_id!r}; available: {sorted(_index())}")
    v = max(versions) if version is None else version
    if v not in versions:
        raise ConfigError(
            f"prompt {template_id!r} has no version {v}; versions: {sorted(versions)}"
        )
    text = versions[v]
    if SEPARATOR not in text:
        raise ConfigError(f"prompt {template_id}.v{v}: missing the '{SEPARATOR}' line")
    system, user = text.split(SEPARATOR, 1)
    return PromptTemplate(template_id, v, system, user)
