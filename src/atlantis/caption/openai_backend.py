"""Vision chat APIs: ``openai:<model>`` on any OpenAI-compatible endpoint.

OpenAI itself (``openai:gpt-4o-mini``), or a local server such as vLLM, Ollama or
llama.cpp serving a vision-language model (``base_url="http://localhost:8000/v1"``). Each
image is sent inline as a ``data:image/png;base64,...`` URL, downscaled so its longer side
is at most ``max_side`` pixels (512 by default: enough for a one-sentence caption, and it
keeps request size and per-image token cost low).

The default instruction asks for one factual sentence on the subject, its action or pose,
and the setting: exactly the attributes the insight stage looks for. Decoding is
``temperature=0``; APIs are still not bit-for-bit deterministic, which is why every caption
is cached per image content and never requested twice.

The HTTP client (retries with backoff, the API key read from the environment variable
named by ``api_key_env`` and never logged, the key and ``headers`` values scrubbed from
every answer so that an echoing server cannot put them into a caption) is
``atlantis.llm.openai_backend``'s. Images of a
batch are sent concurrently (``concurrency`` requests at a time) because a remote API's
latency, not computation, dominates.
"""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from atlantis.caption.base import Captioner
from atlantis.embed.preprocess import to_rgb
from atlantis.errors import ConfigError

#: Bump when the request format changes, so cached captions are not reused.
KEY_VERSION = 1
DEFAULT_PROMPT = (
    "Describe this image in one factual sentence: the main subject, what it is doing or "
    "its pose, and the setting or background. Answer with the sentence only."
)


def image_data_url(image: Image.Image, max_side: int) -> str:
    """``image`` as a PNG data URL, downscaled (never upscaled) to ``max_side`` pixels;
    transparency on white, as the embedder sees it."""
    image = to_rgb(image)
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAICaptioner(Captioner):
    """One caption per image from an OpenAI-compatible ``/chat/completions`` vision model."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        prompt: str = DEFAULT_PROMPT,
        max_side: int = 512,
        max_tokens: int = 100,
        temperature: float = 0.0,
        timeout: float = 120.0,
        max_retries: int = 4,
        concurrency: int = 4,
        headers: dict[str, str] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if int(max_side) != max_side or max_side < 16:
            raise ConfigError(f"max_side must be an integer >= 16, got {max_side!r}")
        if int(concurrency) != concurrency or concurrency < 1:
            raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if not prompt.strip():
            raise ConfigError("prompt must not be empty")
        from atlantis.llm.openai_backend import OpenAICompatibleClient

        self.model = model
        self.prompt = prompt
        self.max_side = int(max_side)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.concurrency = int(concurrency)
        self.client = OpenAICompatibleClient(base_url, api_key_env, timeout, max_retries, headers)

    @property
    def key(self) -> str:
        # The endpoint and everything sent; never the key, timeouts or concurrency.
        settings = {"prompt": self.prompt, "max_side": self.max_side,
                    "max_tokens": self.max_tokens, "temperature": self.temperature}  # fmt: skip
        return f"openai-caption v{KEY_VERSION} {self.model}@{self.client.base_url} " + json.dumps(
            settings, sort_keys=True
        )

    def __repr__(self) -> str:
        return f"OpenAICaptioner({self.model!r}, {self.client!r})"

    def caption_one(self, image: Image.Image) -> str:
        """One request: the instruction and the image, answered with a sentence."""
        content = [
            {"type": "text", "text": self.prompt},
            {"type": "image_url", "image_url": {"url": image_data_url(image, self.max_side)}},
        ]
        answer = self.client.chat(
            self.model, [{"role": "user", "content": content}],
            max_tokens=self.max_tokens, temperature=self.temperature,
        )  # fmt: skip
        return answer.strip()

    def caption_batch(self, images: list[Image.Image]) -> list[str]:
        if self.concurrency == 1 or len(images) == 1:
            return [self.caption_one(im) for im in images]
        with ThreadPoolExecutor(min(self.concurrency, len(images))) as pool:
            return list(pool.map(self.caption_one, images))  # keeps input order
