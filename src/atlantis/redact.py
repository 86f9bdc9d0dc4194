"""Keep configured secrets out of everything a run writes.

Secrets reach the project in two ways: the values of HTTP ``headers`` given to the
OpenAI-compatible backends (``insight.llm_options``, ``plan.llm_options``,
``caption.options``, a metadata captioner's ``fallback_options``), and API keys, which
those backends read from the environment variable that ``api_key_env`` names (by default
``OPENAI_API_KEY``). Neither may land in a run folder, yet both can: a config is saved
as ``config.yaml`` and in every stage manifest, and a server may echo a key or a header
back in an answer that is then stored (LLM exchanges, insight, plan, reports).

Two defences, both here so that every writer applies the same rules:

* **Configs are redacted structurally** (``redact_config``): every header value, and the
  value under any secret-looking key (``api_key``, ``token``, ``password``...), becomes
  ``REDACTED``; the key names stay, so a saved config still says which headers were set.
  A config read back from disk therefore holds the placeholder, and the HTTP client
  refuses to send it (``check_not_redacted``) with a message saying how to give the value.
* **Text is scrubbed** (``redact_text``): each secret value this process knows of is
  replaced wherever it appears, in its raw, JSON-escaped and HTML-escaped spellings. The
  backends register the values they send (``register``); the writers of configs and
  manifests register what a config implies (``config_secrets``: header values and the
  values of the ``*_env`` variables it names).

**Secrets and the config hash.** A stage's config hash is computed from the redacted
config, so it excludes secret values entirely (it still covers which headers are set).
Credentials decide who is billed and whether the server answers, not what the model
answers (the LLM call store and the caption cache ignore them for the same reason), so a
rotated key must not redo a paid stage; and a hash of a short secret, written into every
manifest, could be brute-forced by anyone the run folder is shared with. To force a
re-run after changing something a header does select, use ``--force``.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from atlantis.errors import ConfigError
from atlantis.store.atomic import atomic_write_text

#: Brackets, not angle brackets: the placeholder must read the same in YAML, JSON and HTML
#: (where ``<redacted>`` would parse as a tag and vanish from the page).
REDACTED = "[redacted]"
#: The environment variable the OpenAI-compatible backends read the key from by default.
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
#: Values shorter than this are replaced in configs but not searched for in free text:
#: scrubbing every "1" of a header such as ``X-Debug: 1`` would garble the files.
MIN_SECRET_CHARS = 6

#: Option keys whose value is itself a secret (``max_tokens``, ``api_key_env`` are not).
SECRET_KEY = re.compile(r"(^|[_-])(api_?key|token|secret|password|passwd|authorization)$", re.I)
#: Option keys naming an environment variable that holds a secret (``api_key_env``).
SECRET_ENV_KEY = re.compile(r"(^|_)(api_?key|token|secret|password)_env$", re.I)
HEADERS_KEY = "headers"

_known: set[str] = set()
_lock = threading.Lock()


def redact_config(data: Any) -> Any:
    """A copy of a JSON-like config with every secret value replaced by ``REDACTED``.

    Values of a ``headers`` mapping and of secret-looking keys are replaced, at any depth;
    everything else (``api_key_env``, the *name* of a variable) is kept as it is.
    """
    if isinstance(data, Mapping):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            name = str(key)
            if name.lower() == HEADERS_KEY and isinstance(value, Mapping):
                out[key] = {k: REDACTED if v not in (None, "") else v for k, v in value.items()}
            elif SECRET_KEY.search(name) and isinstance(value, str) and value:
                out[key] = REDACTED
            else:
                out[key] = redact_config(value)
        return out
    if isinstance(data, list | tuple):
        return [redact_config(v) for v in data]
    return data


def config_secrets(data: Any) -> set[str]:
    """The secret values a JSON-like config implies: header values, secret-looking
    values, and the values of the environment variables it names (``api_key_env``), plus
    ``OPENAI_API_KEY``'s, which the backends read when no variable is named."""
    found: set[str] = set()
    env_names = {DEFAULT_API_KEY_ENV}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                name = str(key)
                if name.lower() == HEADERS_KEY and isinstance(value, Mapping):
                    found.update(str(v) for v in value.values() if isinstance(v, str))
                elif SECRET_KEY.search(name) and isinstance(value, str):
                    found.add(value)
                elif SECRET_ENV_KEY.search(name) and isinstance(value, str):
                    env_names.add(value)
                else:
                    walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(data)
    found.update(os.environ.get(name, "").strip() for name in env_names)
    return {v for v in found if v and v != REDACTED}


def register(values: Iterable[str]) -> None:
    """Remember secret values of this process (a backend calls this with what it sends)."""
    fresh = {v.strip() for v in values if isinstance(v, str)} - {"", REDACTED}
    if fresh:
        with _lock:
            _known.update(fresh)


def forget_all() -> None:
    """Drop every remembered value (tests that change keys between runs)."""
    with _lock:
        _known.clear()


def _spellings(secret: str) -> set[str]:
    """How ``secret`` can appear in a written file: raw, JSON-escaped, HTML-escaped."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
    }


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every known secret (and those in ``extra``) replaced by ``REDACTED``.

    Longer values go first, so a key that contains another secret is replaced whole.
    """
    with _lock:
        secrets = set(_known)
    secrets.update(v for v in extra if isinstance(v, str))
    spellings = {s for v in secrets if len(v) >= MIN_SECRET_CHARS for s in _spellings(v)}
    for s in sorted(spellings, key=len, reverse=True):
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def write_redacted(path: Path | str, text: str) -> None:
    """``atomic_write_text`` of ``text`` with every known secret scrubbed from it."""
    atomic_write_text(path, redact_text(text))


def restore_secrets(recorded: Any, current: Any) -> Any:
    """``current`` when a config read back from disk (``recorded``, redacted) is its
    redacted form, else ``recorded``: the real values come back from the caller's config,
    never from a file."""
    return current if redact_config(current) == recorded else recorded


def check_not_redacted(headers: Mapping[str, str]) -> None:
    """Refuse to send a placeholder that a saved config holds in place of a header value."""
    for name, value in headers.items():
        if value == REDACTED:
            raise ConfigError(
                f"header {name!r} is {REDACTED!r}: a run folder never keeps header values, so "
                "a config read back from it holds this placeholder. Give the value again: in "
                f"the --config file, or with --option headers.{name}=VALUE"
            )
