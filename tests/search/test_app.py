"""The search page: over HTTP (status codes, messages) and rendered in headless Chromium."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atlantis.errors import ConfigError
from atlantis.search.index import SearchIndex, build_index, gallery_from_folder
from tests.chromium import assert_renders, needs_chromium

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from atlantis.search.app import SearchService, create_app


@pytest.fixture
def index(spies: type, gallery_dir: Path, tmp_path: Path) -> SearchIndex:
    items, _ = gallery_from_folder(gallery_dir)
    return build_index("spy-cosine", items, tmp_path / "index", progress=False)


def png(path: Path) -> bytes:
    return path.read_bytes()


def upload(client: TestClient, data: bytes, name: str = "q.png", route: str = "/api/search",
           **params: object):  # fmt: skip
    return client.post(route, files={"image": (name, data, "image/png")}, params=params)


def test_an_uploaded_gallery_image_finds_its_own_copy_first(index: SearchIndex) -> None:
    client = TestClient(create_app(SearchService(index, k=5)))
    query = index.items[7]
    r = upload(client, png(query.path), k=3)
    assert r.status_code == 200
    body = r.json()
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3]
    first = body["hits"][0]
    assert first["id"] == query.id and first["label"] == query.label
    assert first["distance"] == pytest.approx(0.0, abs=1e-5)
    assert body["embed_ms"] >= 0 and body["search_ms"] >= 0
    thumb = client.get(first["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as im:
        assert max(im.size) <= 160
    page = upload(client, png(query.path), route="/search")
    assert page.status_code == 200 and "5 nearest" in page.text and query.label in page.text


def test_the_home_page_and_picking_a_gallery_image(index: SearchIndex) -> None:
    client = TestClient(create_app(SearchService(index, k=4)))
    home = client.get("/")
    assert home.status_code == 200
    assert "Drop an image here" in home.text and f"{len(index.items)} images" in home.text
    assert home.text.count("/?pick=") == 12  # the gallery to pick from
    picked = client.get("/?pick=3")
    assert picked.status_code == 200 and "4 nearest" in picked.text
    assert picked.text.count("class='card same'") >= 1  # its own copy, same label
    assert client.get("/healthz").json() == {"ok": True, "images": len(index.items)}


def test_bad_requests_get_a_clear_4xx(index: SearchIndex, tmp_path: Path) -> None:
    client = TestClient(create_app(SearchService(index, max_upload_mb=0.01)))
    r = upload(client, b"this is not an image", name="notes.txt")
    assert r.status_code == 415
    assert "'notes.txt' is not an image" in r.json()["error"] and "PNG" in r.json()["error"]
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(
        big, format="PNG"
    )
    r = upload(client, big.getvalue())
    assert r.status_code == 413 and "up to 0.01 MB" in r.json()["error"]
    assert "--max-upload-mb" in r.json()["error"]
    r = client.post("/api/search", data={"other": "x"})
    assert r.status_code == 400 and "multipart form field 'image'" in r.json()["error"]
    r = upload(client, b"", name="empty.png")
    assert r.status_code == 400 and "empty" in r.json()["error"]
    page = upload(client, b"garbage", name="x.bin", route="/search")
    assert page.status_code == 415 and "role=alert" in page.text  # the page shows the message
    for bad in ("/gallery/999", "/?pick=999", "/gallery/-1"):
        r = client.get(bad)
        assert r.status_code == 404 and "no gallery image" in r.text, bad


def test_a_model_other_than_the_index_is_refused(index: SearchIndex, spies: type) -> None:
    from atlantis.embed.registry import create_embedder

    with pytest.raises(
        ConfigError, match=r"built with spy-cosine .*spy-cosine v2.*cannot be compared"
    ):
        SearchService(index, embedder=create_embedder("spy-other"))


@pytest.fixture
def served(index: SearchIndex) -> Iterator[str]:
    """The page on a free local port (uvicorn in a thread), for a real browser."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(create_app(SearchService(index, k=8)), host="127.0.0.1", port=port,
                            log_level="error")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@needs_chromium
def test_chromium_renders_a_results_page(served: str, index: SearchIndex, tmp_path: Path) -> None:
    shot = assert_renders(f"{served}/?pick=0", tmp_path, size=(1100, 900))
    # The result thumbnails arrived: the gallery's colours cover a good part of the page.
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"), np.int16)
    saturated = (rgb.max(axis=2) - rgb.min(axis=2)) > 40
    assert saturated.mean() > 0.05


def test_serve_refuses_a_folder_that_is_not_an_index(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atlantis.cli.main import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "nowhere" in result.output and "atlantis index" in result.output
