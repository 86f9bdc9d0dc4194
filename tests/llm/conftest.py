"""Shared pieces of the LLM-layer tests: test-only prompt templates, a schema, and a real
local HTTP server speaking the OpenAI chat API, scripted per test.

The server is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 with a random free port, so the
``openai`` backend is exercised over real sockets (headers, status codes, retries) without
any network access or mock of ``httpx``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from atlantis.llm import openai_backend
from atlantis.llm.base import LLMTask
from atlantis.llm.prompts import add_prompt_dir, remove_prompt_dir

PROMPTS = Path(__file__).parent / "prompts"
TASK_NAME = "tests.label_caption"


class Label(BaseModel):
    """The test tasks' answer: a class label with a bounded confidence."""

    label: str
    confidence: float = Field(ge=0, le=1)


def label_task(caption: str = "a red sports car on a road", **overrides: Any) -> LLMTask:
    fields: dict[str, Any] = {
        "name": TASK_NAME,
        "template": "tests/label",
        "variables": {"caption": caption},
        "schema": Label,
        "template_version": 1,
    }
    return LLMTask(**{**fields, **overrides})


@pytest.fixture(autouse=True)
def llm_test_prompts() -> Iterator[Path]:
    """Make ``tests/label`` loadable for every test here, and only while it runs."""
    add_prompt_dir(PROMPTS)
    yield PROMPTS
    remove_prompt_dir(PROMPTS)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits the client asked for, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(openai_backend, "_sleep", waited.append)
    return waited


# -- the scripted OpenAI-compatible server ----------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON; str -> sent as text
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body["messages"]


def answer(text: str) -> Reply:
    """A chat completion whose assistant message is ``text``."""
    return Reply(
        body={
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
        }
    )


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An OpenAI-style error body."""
    return Reply(status, {"error": {"message": message, "type": "test_error"}}, headers or {})


ScriptItem = Reply | Callable[[Request], Reply]


class FakeOpenAI:
    """Answers each request with the next scripted reply and records what it was sent."""

    def __init__(self) -> None:
        self.script: list[ScriptItem] = []
        self.requests: list[Request] = []
        self.models = ["tiny-test-model"]
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def queue(self, *items: ScriptItem) -> None:
        self.script.extend(items)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            if req.method == "GET" and req.path == "/v1/models":
                return Reply(body={"object": "list", "data": [{"id": m} for m in self.models]})
            if req.path != "/v1/chat/completions":
                return error(404, f"no route {req.path}")
            if not self.script:
                return error(418, "test script exhausted: the client sent an unexpected request")
            item = self.script.pop(0)
        return item(req) if callable(item) else item

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(size) if size else b""
                req = Request(self.command, self.path.split("?")[0],
                              {k.lower(): v for k, v in self.headers.items()},
                              json.loads(raw) if raw else None)  # fmt: skip
                reply = fake._reply(req)
                data = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                payload = data.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
