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

Time is bounded twice: each attempt by ``timeout`` (seconds to wait for the answer; a
connection gets ``connect_timeout``), and a whole call, retries and waits included, by
``max_call_seconds``: a dead or overloaded server fails the call with an error naming the
server, the model and the setting to change, instead of stalling the run for ten minutes.

Reasoning models (OpenAI o-series, gpt-5) reject ``max_tokens`` and any ``temperature``
but the default: ``token_param`` (``auto``: ask with ``max_tokens``; on a 400 that names it
as unsupported, ask again with ``max_completion_tokens`` and no temperature, and keep that
for the session) says how the answer's length limit is sent.
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
TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_CALL_S = 300.0


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
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 4,
        headers: dict[str, str] | None = None,
        *,
        azure: bool = False,
        api_version: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_call_seconds: float | None = DEFAULT_MAX_CALL_S,
    ) -> None:
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.max_call_seconds = None if max_call_seconds is None else float(max_call_seconds)
        limits = {"timeout": self.timeout, "connect_timeout": self.connect_timeout,
                  "max_call_seconds": self.max_call_seconds}  # fmt: skip
        for name, value in limits.items():
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value}")
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
        payload = {"model": model, "messages": messages, **params}
        body = self.request("POST", "/chat/completions", payload, model=model)
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

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                *, model: str | None = None) -> Any:  # fmt: skip
        """Send one request with retries on transient failures; returns the decoded JSON.

        The whole call, retries and backoff waits included, ends by ``max_call_seconds``."""
        url = self.base_url + path
        params = {"api-version": self.api_version} if self.api_version else None
        start = time.monotonic()
        status, last, retry_after, attempts = None, "", None, 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = _backoff(attempt - 1, retry_after)
                if self._left(start) is not None and self._left(start) <= delay:
                    break  # the wait alone would pass the deadline
                log.warning("%s %s: %s; retry %d/%d in %.1f s",
                            method, url, last, attempt, self.max_retries, delay)  # fmt: skip
                _sleep(delay)
            left = self._left(start)
            if left is not None and left <= 0:
                break
            attempts += 1
            try:
                resp = self._client().request(
                    method, url, json=payload, params=params, headers=self._auth_headers(),
                    timeout=self._timeout(left),
                )  # fmt: skip
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
        who = f" (model {model!r})" if model else ""
        if attempts <= self.max_retries:  # stopped by the deadline, not by the retry count
            raise APIStatusError(
                f"{method} {url}{who} gave no usable answer within max_call_seconds="
                f"{self.max_call_seconds:g} ({attempts} attempt(s), {time.monotonic() - start:.0f}"
                f" s); last status: {status if status is not None else 'no response'}; last "
                f"error: {last}. Check that the server is up and not overloaded, or raise the "
                "LLM option max_call_seconds (per attempt: timeout, connect_timeout)",
                status=status, url=url, detail=last,
            )  # fmt: skip
        raise APIStatusError(
            f"{method} {url}{who} failed after {self.max_retries + 1} attempt(s); last status: "
            f"{status if status is not None else 'no response'}; last error: {last}"
            + (" (each attempt waits up to timeout="
               f"{self.timeout:g} s; the LLM options timeout / max_retries change this)"
               if status is None else ""),
            status=status, url=url, detail=last,
        )  # fmt: skip

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # -- internals ----------------------------------------------------------------------------

    def _left(self, start: float) -> float | None:
        """Seconds left of this call's ``max_call_seconds`` (None: no overall deadline)."""
        if self.max_call_seconds is None:
            return None
        return self.max_call_seconds - (time.monotonic() - start)

    def _timeout(self, left: float | None) -> httpx.Timeout:
        read = self.timeout if left is None else max(0.001, min(self.timeout, left))
        return httpx.Timeout(read, connect=min(self.connect_timeout, read))

    def _client(self) -> httpx.Client:
        # One pooled client, opened on first use; httpx.Client is safe to share across the
        # captioner's worker threads, but creating it must happen once.
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout(None))
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
    ``token_param`` does the same for the length limit (see the module docstring). Both
    fallbacks are safe when many threads share the backend (plan descriptions are sent
    concurrently): each steps down from the setting its own request used.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        structured: str = "auto",
        azure: bool = False,
        api_version: str | None = None,
        headers: dict[str, str] | None = None,
        seed: int | None = None,
        max_repairs: int = 2,
        token_param: str = "auto",
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        max_call_seconds: float | None = DEFAULT_MAX_CALL_S,
        **unknown: Any,
    ) -> None:
        super().__init__(max_repairs=max_repairs)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for the openai LLM backend: {', '.join(sorted(unknown))}; "
                "valid: model, base_url, api_key_env, timeout, connect_timeout, "
                "max_call_seconds, max_retries, temperature, max_tokens, token_param, "
                "structured, azure, api_version, headers, seed, max_repairs"
            )
        if token_param not in TOKEN_PARAMS:
            raise ConfigError(
                f"unknown token_param {token_param!r}; valid: {', '.join(TOKEN_PARAMS)} "
                "(max_completion_tokens for reasoning models such as OpenAI's o-series)"
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
        self.client = OpenAICompatibleClient(
            base_url, api_key_env, timeout, max_retries, headers, azure=azure,
            api_version=api_version, connect_timeout=connect_timeout,
            max_call_seconds=max_call_seconds,
        )  # fmt: skip
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.structured = structured
        self.seed = seed
        self._mode = "json_schema" if structured == "auto" else structured
        self.token_param = token_param
        self._token = "max_tokens" if token_param == "auto" else token_param
        self._send_temperature = self._token == "max_tokens"
        self._state = threading.Lock()  # the fallbacks above, shared by concurrent calls

    @property
    def identity(self) -> str:
        # The configured mode, not the one auto fell back to: the cache key must stay stable.
        # Timeouts never change an answer; token_param only when set by hand (auto keeps the
        # keys that earlier runs stored).
        seed = f" seed={self.seed}" if self.seed is not None else ""
        token = f" token_param={self.token_param}" if self.token_param != "auto" else ""
        return (
            f"openai:{self.model}@{self.client.base_url} temperature={self.temperature} "
            f"max_tokens={self.max_tokens} structured={self.structured}{seed}{token}"
        )

    def __repr__(self) -> str:
        return f"OpenAIChat({self.identity!r}, api_key_env={self.client.api_key_env!r})"

    def generate(self, messages, schema, options) -> str:
        limit = options.get("max_tokens", self.max_tokens)
        temperature = options.get("temperature", self.temperature)
        while True:
            with self._state:
                mode, token, send_temperature = self._mode, self._token, self._send_temperature
            params: dict[str, Any] = {token: limit, **_response_format(mode, schema)}
            if send_temperature:
                params["temperature"] = temperature
            if self.seed is not None:
                params["seed"] = self.seed
            try:
                return self.client.chat(self.model, messages, **params)
            except APIStatusError as e:
                if not self._fall_back(e, mode, token, send_temperature):
                    raise

    def _fall_back(self, e: APIStatusError, mode: str, token: str, temperature: bool) -> bool:
        """Step down from what the failed request sent, if the 400 names it; False: give up."""
        if e.status != 400:
            return False
        with self._state:
            if self.token_param == "auto" and token == "max_tokens" and _rejects("max_tokens", e):
                log.info("%s rejected max_tokens (%s); using max_completion_tokens without "
                         "temperature from now on", self.client.base_url, e.detail[:200])  # fmt: skip
                self._token, self._send_temperature = "max_completion_tokens", False
                return True
            if self.token_param == "auto" and temperature and _rejects("temperature", e):
                log.info("%s rejected temperature (%s); sending none from now on",
                         self.client.base_url, e.detail[:200])  # fmt: skip
                self._send_temperature = False
                return True
            if (
                self.structured == "auto"
                and mode != "none"
                and re.search(r"response_format|json_schema|json_object", e.detail, re.I)
            ):
                nxt = STRUCTURED_MODES[STRUCTURED_MODES.index(mode) + 1]
                if self._mode == mode:  # another thread may have stepped down already
                    log.info("%s rejected response_format %s (%s); using %s from now on",
                             self.client.base_url, mode, e.detail[:200], nxt)  # fmt: skip
                    self._mode = nxt
                return True
        return False


def _rejects(param: str, e: APIStatusError) -> bool:
    """A 400 that names ``param`` as unsupported (OpenAI: "Unsupported parameter: 'max_tokens'
    is not supported with this model. Use 'max_completion_tokens' instead.")."""
    detail = e.detail.lower()
    named = re.search(rf"(?<![a-z_]){param}(?![a-z_])", detail) is not None
    return named and re.search(r"unsupported|not supported|does not support|"
                               r"max_completion_tokens", detail) is not None  # fmt: skip


def _response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    if mode == "json_schema":
        # OpenAI requires the name to match ^[a-zA-Z0-9_-]{1,64}$.
        name = re.sub(r"[^a-zA-Z0-9_-]", "_", str(schema.get("title") or "answer"))[:64]
        spec = {"name": name, "schema": schema, "strict": False}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}
