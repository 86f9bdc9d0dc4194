"""The ``openai`` backend's limits: reasoning models' length parameter and the call deadline.

A fake server that behaves like OpenAI's reasoning models (o-series, gpt-5): a 400 naming
``max_tokens`` as unsupported, and a 400 for any temperature but the default. The client must
recover once and remember it; a slow server must fail a call by ``max_call_seconds``.
"""

from __future__ import annotations

import threading
import time

import pytest

from atlantis.errors import ConfigError
from atlantis.llm.openai_backend import APIStatusError, OpenAIChat

from .conftest import FakeOpenAI, Label, Reply, Request, answer, error, label_task

GOOD = '{"label": "sports car", "confidence": 0.9}'
NO_MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)
NO_TEMPERATURE = (
    "Unsupported value: 'temperature' does not support 0 with this model. "
    "Only the default (1) value is supported."
)


def reasoning_model(req: Request) -> Reply:
    """What OpenAI's reasoning models answer."""
    if "max_tokens" in req.body:
        return error(400, NO_MAX_TOKENS)
    if "temperature" in req.body:
        return error(400, NO_TEMPERATURE)
    return answer(GOOD)


def chat(server: FakeOpenAI, **options) -> OpenAIChat:
    return OpenAIChat(model="o4-mini", base_url=server.base_url, **options)


def test_auto_switches_to_max_completion_tokens_once_and_remembers(server: FakeOpenAI) -> None:
    server.queue(*[reasoning_model] * 3)
    llm = chat(server, max_tokens=300)
    assert llm.run(label_task()) == Label(label="sports car", confidence=0.9)
    first, second = (r.body for r in server.requests)
    assert first["max_tokens"] == 300 and first["temperature"] == 0
    assert second["max_completion_tokens"] == 300
    assert "max_tokens" not in second and "temperature" not in second
    llm.run(label_task("a blue bus"))  # remembered: one request, no second 400
    assert len(server.requests) == 3 and "max_tokens" not in server.requests[2].body
    assert "token_param" not in llm.identity  # auto keeps the stored calls' keys


def test_auto_drops_a_rejected_temperature(server: FakeOpenAI) -> None:
    def no_temperature(req: Request) -> Reply:
        return error(400, NO_TEMPERATURE) if "temperature" in req.body else answer(GOOD)

    server.queue(no_temperature, no_temperature)
    chat(server).run(label_task())
    first, second = (r.body for r in server.requests)
    assert "temperature" in first and "temperature" not in second
    assert second["max_tokens"] == 2048  # the length parameter was accepted: kept


def test_max_completion_tokens_by_setting(server: FakeOpenAI) -> None:
    server.queue(reasoning_model)
    llm = chat(server, token_param="max_completion_tokens", max_tokens=64)
    llm.run(label_task())
    (req,) = server.requests
    assert req.body["max_completion_tokens"] == 64 and "temperature" not in req.body
    assert "token_param=max_completion_tokens" in llm.identity


def test_fixed_max_tokens_fails_with_the_servers_words(server: FakeOpenAI) -> None:
    server.queue(reasoning_model)
    with pytest.raises(APIStatusError, match=r"HTTP 400.*'max_tokens' is not supported"):
        chat(server, token_param="max_tokens").run(label_task())
    assert len(server.requests) == 1


def test_other_400s_are_not_retried(server: FakeOpenAI) -> None:
    server.queue(error(400, "max_tokens is too large: 99999. This model supports at most 4096"))
    with pytest.raises(APIStatusError, match="too large"):
        chat(server, max_tokens=99999).run(label_task())
    assert len(server.requests) == 1


def test_unknown_token_param_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="auto, max_tokens, max_completion_tokens"):
        OpenAIChat(model="m", token_param="tokens")
    with pytest.raises(ConfigError, match="max_call_seconds must be a positive"):
        OpenAIChat(model="m", max_call_seconds=0)


def test_concurrent_fallbacks_step_down_once(server: FakeOpenAI) -> None:
    """Eight threads hit the same 400s at once: each format is dropped once, not twice."""

    def picky(req: Request) -> Reply:
        time.sleep(0.05)  # let the threads overlap
        if req.body.get("response_format", {}).get("type") == "json_schema":
            return error(400, "response_format json_schema is not supported")
        return reasoning_model(req)

    server.queue(*[picky] * 40)
    llm = chat(server)
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            llm.run(label_task(f"car number {i}"))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert llm._mode == "json_object" and llm._token == "max_completion_tokens"
    last = server.requests[-1].body
    assert last["response_format"] == {"type": "json_object"} and "max_tokens" not in last


def test_a_slow_server_fails_the_call_by_the_deadline(
    server: FakeOpenAI, sleeps: list[float]
) -> None:
    def slow(req: Request) -> Reply:
        time.sleep(1.0)
        return answer(GOOD)

    server.queue(*[slow] * 20)
    llm = chat(server, timeout=0.2, max_retries=10, max_call_seconds=0.5)
    start = time.monotonic()
    with pytest.raises(APIStatusError) as info:
        llm.run(label_task())
    assert time.monotonic() - start < 1.5  # not 11 attempts x 0.2 s plus backoff
    message = str(info.value)
    assert server.base_url in message and "'o4-mini'" in message
    assert "max_call_seconds=0.5" in message and "timeout" in message


def test_retries_exhausted_name_the_timeout(closed_port: int, sleeps: list[float]) -> None:
    llm = OpenAIChat(model="m", base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=1)
    with pytest.raises(APIStatusError, match=r"2 attempt\(s\).*timeout=120"):
        llm.run(label_task())
