"""The run's record of every LLM exchange, keyed by a hash of the request.

One JSON file per request under ``RUN/<stage>/llm/``: messages, every attempt's raw answer,
the parsed result. A re-run with the same backend, prompt version and inputs reuses the
stored answer (no cost, same result), and the folder is an audit trail of what the model
was asked and said. API keys are never part of a request and never stored; a record is
scrubbed of every known secret before it is written (a server may echo a key back).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from atlantis.redact import write_redacted


class CallStore:
    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(identity: str, prompt_ref: str, messages: list[dict[str, str]],
            schema: dict[str, Any], options: dict[str, Any]) -> str:  # fmt: skip
        blob = json.dumps([identity, prompt_ref, messages, schema, options], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        if not p.exists():
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return None  # a damaged record is simply asked again

    def put(self, key: str, **record: Any) -> Path:
        p = self.path(key)
        write_redacted(p, json.dumps({"key": key, **record}, indent=1, ensure_ascii=False) + "\n")
        return p

    def __len__(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.exists() else 0
