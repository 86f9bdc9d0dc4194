"""The redaction rules every writer shares: what counts as a secret, how it is replaced."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from atlantis import redact
from atlantis.config import AtlantisConfig, save_config
from atlantis.errors import ConfigError
from atlantis.redact import REDACTED
from atlantis.store.run import Run, config_hash

SECRET = 'tok-"quoted"<&>-ü-0123'


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def test_configs_keep_key_names_and_lose_secret_values() -> None:
    options = {
        "model": "m", "api_key_env": "MY_KEY", "max_tokens": 5, "api_key": "sk-1",
        "headers": {"Authorization": "Bearer x", "X-Empty": ""},
        "fallback_options": {"headers": {"X-Org": "org-1"}, "hf_token": "hf_abc"},
    }  # fmt: skip
    assert redact.redact_config({"caption": {"options": options}}) == {"caption": {"options": {
        "model": "m", "api_key_env": "MY_KEY", "max_tokens": 5, "api_key": REDACTED,
        "headers": {"Authorization": REDACTED, "X-Empty": ""},
        "fallback_options": {"headers": {"X-Org": REDACTED}, "hf_token": REDACTED},
    }}}  # fmt: skip
    assert options["headers"]["Authorization"] == "Bearer x"  # a copy: the input is untouched


def test_config_secrets_include_the_named_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "sk-from-my-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default-var")
    data = {"insight": {"llm_options": {"api_key_env": "MY_KEY", "headers": {"X-A": "hdr-a"}}},
            "plan": {"llm_options": {"headers": {"X-B": REDACTED}}}}  # fmt: skip
    assert redact.config_secrets(data) == {"sk-from-my-key", "sk-default-var", "hdr-a"}


def test_text_is_scrubbed_in_every_spelling_a_writer_uses() -> None:
    redact.register([SECRET, "1"])
    raw = f"key {SECRET}; 1 + 1"
    as_json = json.dumps({"k": SECRET})
    for text in (raw, as_json, json.dumps({"k": SECRET}, ensure_ascii=False),
                 html.escape(raw), html.escape(raw, quote=False)):  # fmt: skip
        out = redact.redact_text(text)
        assert REDACTED in out and SECRET not in out and html.escape(SECRET) not in out
        assert json.dumps(SECRET)[1:-1] not in out
    assert redact.redact_text(raw).endswith("1 + 1")  # too short to search for in free text
    assert json.loads(redact.redact_text(as_json)) == {"k": REDACTED}  # still valid JSON
    assert redact.redact_text("abcdefghi", extra=["cdefgh"]) == f"ab{REDACTED}i"


def test_save_config_writes_the_placeholder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-value-123")
    cfg = AtlantisConfig.model_validate({"insight": {"llm": "openai", "llm_options": {
        "model": "m", "headers": {"X-Secret": "hdr-config-1"},
        "base_url": "http://h/v1?echo=sk-env-value-123"}}})  # fmt: skip
    save_config(cfg, tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert "hdr-config-1" not in text and "sk-env-value-123" not in text
    saved = yaml.safe_load(text)["insight"]["llm_options"]
    assert saved["headers"] == {"X-Secret": REDACTED} and saved["model"] == "m"
    assert AtlantisConfig.model_validate(yaml.safe_load(text))  # reads back as a config


def test_the_config_hash_ignores_secret_values_only() -> None:
    plain = {"llm": "openai", "llm_options": {"model": "m"}}
    assert config_hash(plain) == config_hash(dict(plain))  # unchanged for configs without any
    a = {"llm": "openai", "llm_options": {"model": "m", "headers": {"X-Secret": "one-1234"}}}
    b = {"llm": "openai", "llm_options": {"model": "m", "headers": {"X-Secret": "two-5678"}}}
    assert config_hash(a) == config_hash(b) != config_hash(plain)  # a header is set, or not


def test_a_stage_manifest_records_the_redacted_config(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    cfg = {"llm_options": {"headers": {"X-Secret": "hdr-manifest-1"}}}
    with pytest.raises(RuntimeError), run.stage("probe", cfg):
        raise RuntimeError("the server said hdr-manifest-1")
    text = run.manifest_path("probe").read_text()
    assert "hdr-manifest-1" not in text
    m = run.read_manifest("probe")
    assert m.config == {"llm_options": {"headers": {"X-Secret": REDACTED}}}
    assert m.error == f"RuntimeError: the server said {REDACTED}"


def test_restore_and_refuse_the_placeholder() -> None:
    real = {"headers": {"X-Secret": "hdr-real-value"}}
    assert redact.restore_secrets(redact.redact_config(real), real) == real
    other = {"headers": {"X-Secret": "hdr-real-value"}, "model": "n"}
    assert redact.restore_secrets(redact.redact_config(real), other) == redact.redact_config(real)
    redact.check_not_redacted({"X-Secret": "hdr-real-value"})
    with pytest.raises(ConfigError, match=r"header 'X-Secret' is '\[redacted\]'.*--config"):
        redact.check_not_redacted({"X-Secret": REDACTED})
