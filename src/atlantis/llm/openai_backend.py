"""``openai``: any OpenAI-compatible chat API (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp).

Two layers:

* ``OpenAICompatibleClient`` speaks the wire protocol: it POSTs JSON to
  ``{base_url}/chat/completions`` with retries, and lists ``/models``. It is public so the
  captioner backends reuse it for vision requests (a message whose ``content`` is a list of
  ``{"type": "text", ...}`` and ``{"type": "image_url", "image_url": {"url": "data:..."}}``
  parts).
* ``OpenAIChat`` is the ``LLM`` backend: it adds decoding settings and *structured output*
  (``response_format``) on top, and ``LLM.run`` does prompts, caching and validation.

The API key is read from an environment variable (``api_key_env``, default
``OPENAI_API_KEY``) at every request and sent only in a header. It is never stored on the
object, logged, put in ``identity``/``repr``, or quoted in an error; a local server needing
no key simply gets no header. The key and the extra ``headers``' values are registered
with ``atlantis.redact`` and scrubbed from every answer and error message, so a server
that echoes them back cannot get them written into a run folder. Transient failures (connection errors, timeouts, 429, 5xx)
are retried with exponential backoff and jitter, honouring ``Retry-After``; other 4xx
answers fail at once with the server's message, because asking again cannot help.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import re
import threading
import time
from typing import Any

import httpx

from atlantis import redact
from atlantis.errors import ConfigError
from atlantis.llm.base import LLM, LLMRequestError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "ATLANTIS_LLM_BASE_URL"
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
#: A server asking for a longer pause than this is treated as down rather than waited on.
MAX_RETRY_AFTER_S = 300.0
STRUCTURED_MODES = ("json_schema", "json_object", "none")


def _sleep(seconds: float) -> None:
    """Module-level so tests can replace the waiting without touching ``time.sleep``."""
    time.sleep(seconds)


class APIStatusError(LLMRequestError):
    """The server answered with an HTTP error that retrying does not fix (or kept failing)."""

    def __init__(self, message: str, *, status: int | None, url: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.detail = detail


class OpenAICompatibleClient:
    """A minimal client for OpenAI-style ``/chat/completions`` and ``/models`` endpoints.

    ``azure=True`` sends the key in Azure's ``api-key`` header instead of
    ``Authorization: Bearer``; ``api_version`` adds Azure's ``api-version`` query parameter
    (for deployment URLs such as ``https://X.openai.azure.com/openai/deployments/NAME``).
    ``headers`` are extra headers sent with every request (e.g. an organisation id).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 4,
        headers: dict[str, str] | None = None,
        *,
        azure: bool = False,
        api_version: str | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        redact.check_not_redacted(self.headers)
        redact.register(self.headers.values())
        self.azure = azure
        self.api_version = api_version
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # names the variable, never its value
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"
        )

    # -- public API ---------------------------------------------------------------------------

    def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> str:
        """One chat completion; returns the answer's text (``params`` go into the JSON body)."""
        body = self.request(
            "POST", "/chat/completions", {"model": model, "messages": messages, **params}
        )
        try:
            message = body["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise LLMRequestError(
                f"{self.base_url}/chat/completions answered without choices[0].message: "
                f"{str(body)[:300]}"
            ) from None
        return self._scrub(_message_text(message))

    def models(self) -> list[str]:
        """The model ids the server offers (``GET /models``): a cheap check of URL and key."""
        body = self.request("GET", "/models")
        return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """Send one request with retries on transient failures; returns the decoded JSON."""
        url = self.base_url + path
        params = {"api-version": self.api_version} if self.api_version else None
        status, last, retry_after = None, "", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = _backoff(attempt - 1, retry_after)
                log.warning("%s %s: %s; retry %d/%d in %.1f s",
                            method, url, last, attempt, self.max_retries, delay)  # fmt: skip
                _sleep(delay)
            try:
                resp = self._client().request(
                    method, url, json=payload, params=params, headers=self._auth_headers()
                )
            except httpx.TransportError as e:  # connection refused/reset, DNS, timeouts
                status, last, retry_after = None, f"{type(e).__name__}: {e}", None
                continue
            status, retry_after = resp.status_code, _retry_after(resp)
            if status < 400:
                with contextlib.suppress(ValueError):
                    return resp.json()
                last = f"the answer is not JSON: {self._scrub(resp.text[:200])!r}"
                continue
            last = self._scrub(_error_detail(resp))
            if status != 429 and status < 500:  # asking again cannot fix these
                raise APIStatusError(
                    f"{method} {url} failed with HTTP {status}: {last}{self._hint(status)}",
                    status=status, url=url, detail=last,
                )  # fmt: skip
        raise APIStatusError(
            f"{method} {url} failed after {self.max_retries + 1} attempt(s); last status: "
            f"{status if status is not None else 'no response'}; last error: {last}",
            status=status, url=url, detail=last,
        )  # fmt: skip

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- internals ----------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        # One pooled client, opened on first use; httpx.Client is safe to share across the
        # captioner's worker threads, but creating it must happen once.
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout)
            return self._http

    def _key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        redact.register([key])  # the variable may change between requests
        return key

    def _auth_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if key := self._key():
            headers.update({"api-key": key} if self.azure else {"Authorization": f"Bearer {key}"})
        return headers

    def _scrub(self, text: str) -> str:
        """Servers sometimes echo the key or a header back, in an error or an answer; never
        let one reach a message or a file."""
        return redact.redact_text(text, extra=[self._key(), *self.headers.values()])

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            state = "is set" if self._key() else "is NOT set"
            return (
                f" (the API key is read from the environment variable {self.api_key_env}, {state})"
            )
        if status == 404:
            return f" (check base_url {self.base_url!r} and the model name)"
        return ""


def _message_text(message: dict[str, Any]) -> str:
    # Some servers send content as a list of parts, or null with a refusal.
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is None:
        return str(message.get("refusal") or "")
    return str(content)


def _error_detail(resp: httpx.Response) -> str:
    """The server's own error message (OpenAI puts it in ``error.message``), else the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500].strip() or resp.reason_phrase
    err = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(err, dict):
        return str(err.get("message") or err)[:500]
    return str(err)[:500]


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, or ``Retry-After`` s / date)."""
    if ms := resp.headers.get("retry-after-ms"):
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unparseable: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (so parallel clients spread out); Retry-After wins."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_S)
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)


class OpenAIChat(LLM):
    """A chat model behind an OpenAI-compatible HTTP API, with structured JSON output.

    ``structured`` picks how the output schema is enforced server-side: ``json_schema``
    (constrained decoding where supported), ``json_object`` (any JSON), ``none`` (prompt
    only; ``LLM.run`` validates either way), or ``auto``: start with ``json_schema`` and step
    down when the server rejects it with a 400, remembering what works for this session.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        structured: str = "auto",
        azure: bool = False,
        api_version: str | None = None,
        headers: dict[str, str] | None = None,
        seed: int | None = None,
        max_repairs: int = 2,
        **unknown: Any,
    ) -> None:
        super().__init__(max_repairs=max_repairs)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the openai LLM backend: {', '.join(sorted(unknown))}; "
                "valid: model, base_url, api_key_env, timeout, max_retries, temperature, "
                "max_tokens, structured, azure, api_version, headers, seed, max_repairs"
            )
        if not model:
            raise ConfigError(
                "the openai LLM backend needs model=<name>, e.g. model=gpt-4o-mini, or the "
                "name a local server (vLLM, Ollama, llama.cpp) lists under GET /v1/models"
            )
        if structured not in ("auto", *STRUCTURED_MODES):
            raise ConfigError(
                f"unknown structured mode {structured!r}; valid: auto, {', '.join(STRUCTURED_MODES)}"
            )
        self.model = model
        self.client = OpenAICompatibleClient(base_url, api_key_env, timeout, max_retries, headers,
                                             azure=azure, api_version=api_version)  # fmt: skip
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.structured = structured
        self.seed = seed
        self._mode = "json_schema" if structured == "auto" else structured

    @property
    def identity(self) -> str:
        # The configured mode, not the one auto fell back to: the cache key must stay stable.
        seed = f" seed={self.seed}" if self.seed is not None else ""
        return (
            f"openai:{self.model}@{self.client.base_url} temperature={self.temperature} "
            f"max_tokens={self.max_tokens} structured={self.structured}{seed}"
        )

    def __repr__(self) -> str:
        return f"OpenAIChat({self.identity!r}, api_key_env={self.client.api_key_env!r})"

    def generate(self, messages, schema, options) -> str:
        params: dict[str, Any] = {
            "temperature": options.get("temperature", self.temperature),
            "max_tokens": options.get("max_tokens", self.max_tokens),
        }
        if self.seed is not None:
            params["seed"] = self.seed
        while True:
            fmt = _response_format(self._mode, schema)
            try:
                return self.client.chat(self.model, messages, **params, **fmt)
            except APIStatusError as e:
                if not self._should_step_down(e):
                    raise
                nxt = STRUCTURED_MODES[STRUCTURED_MODES.index(self._mode) + 1]
                log.info("%s rejected response_format %s (%s); using %s from now on",
                         self.client.base_url, self._mode, e.detail[:200], nxt)  # fmt: skip
                self._mode = nxt

    def _should_step_down(self, e: APIStatusError) -> bool:
        return (
            self.structured == "auto"
            and self._mode != "none"
            and e.status == 400
            and re.search(r"response_format|json_schema|json_object", e.detail, re.I) is not None
        )


def _response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    if mode == "json_schema":
        # OpenAI requires the name to match ^[a-zA-Z0-9_-]{1,64}$.
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "answer"))[:64]
        spec = {"name": name, "schema": schema, "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}
