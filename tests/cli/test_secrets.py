"""No configured secret reaches a run folder, even from a server that echoes them back.

``atlantis insight`` and ``atlantis plan`` run against a local OpenAI-compatible server
that answers every task validly (the offline rules engine fills the task's schema from the
data block it is sent) and then repeats the API key and the ``X-Secret`` header into
every sentence of its answer. The key comes from an environment variable named with
``-O api_key_env=...``, the header from ``-O headers.X-Secret=...``. Afterwards every file
under the run folder is searched, as bytes, for both values.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from pydantic import BaseModel
from typer.testing import CliRunner

from atlantis import redact
from atlantis.cli.main import app
from atlantis.insight import classes, context, domains, extract, new_classes
from atlantis.llm.rules import RULES
from atlantis.plan import descriptions, objective, reference

KEY = "sk-echo-7Hq2-never-on-disk"
HEADER = "hdr-Secret-9f8e7d6c"
KEY_ENV = "ATLANTIS_TEST_SECRET_KEY"
#: schema title (the ``response_format`` name) -> the rules task that answers it
TASKS = {
    "DataContext": context.TASK,
    "ProposedClasses": classes.TASK,
    "DomainSet": domains.TASK,
    "NewClasses": new_classes.TASK,
    "Recommendations": extract.TASK,
    "AugmentationObjective": objective.TASK,
    "ReferenceDescriptions": reference.TASK,
    "DescriptionBatch": descriptions.TASK,
}

DATA = {
    "Laysan Albatross": ["a laysan albatross flying over the sea"] * 6
    + ["an albatross sitting on a nest"] * 2,
    "Herring Gull": ["a gull flying over a harbour"] * 3 + ["a gull swimming in the water"],
    "Arctic Tern": ["a tern flying above waves"] * 2,
    "Mallard": ["a duck swimming on a pond"] * 3 + ["a duck sitting on the grass"] * 2,
    "Black Tern": ["a black tern flying"] * 3,
    "Mute Swan": ["a swan swimming"] * 3,
}  # train: the first half of the classes (zsl), test: the rest


def make_dataset(root: Path, data: dict[str, list[str]] = DATA) -> Path:
    """A manifest dataset of tiny images, captions by class as in ``data``."""
    rows = []
    for i, (label, cap) in enumerate((lab, c) for lab, caps in data.items() for c in caps):
        path = root / "images" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), ((i * 37) % 256, (i * 91) % 256, 80)).save(path)
        rows.append({"id": f"img{i}", "path": f"images/{i}.png", "label": label, "caption": cap})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def echoed(value: Any, echo: str, quoted: str) -> Any:
    """``value`` with ``echo`` appended to every sentence the model wrote itself (a string
    with a space that the request did not contain: names and keywords stay valid)."""
    if isinstance(value, dict):
        return {k: echoed(v, echo, quoted) for k, v in value.items()}
    if isinstance(value, list):
        return [echoed(v, echo, quoted) for v in value]
    if isinstance(value, str) and " " in value and value not in quoted:
        return f"{value} {echo}"
    return value


class EchoServer:
    """An OpenAI-compatible chat server that answers validly and leaks what it was sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = 200
                try:
                    text = server.answer(body, headers)
                    reply: dict[str, Any] = {"choices": [{"message": {"role": "assistant",
                                                                      "content": text}}]}  # fmt: skip
                except Exception as e:  # a broken fake must fail the test, not be retried
                    status, reply = 400, {"error": {"message": f"fake server: {e!r}"}}
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def answer(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        self.requests.append({"headers": headers, "body": body})
        echo = f"(you sent {headers.get('authorization')} and X-Secret {headers.get('x-secret')})"
        if "response_format" not in body:  # a captioner's vision request: one sentence
            self.answers.append(f"A small bird on a branch {echo}.")
            return self.answers[-1]
        user = body["messages"][1]["content"]
        block = re.search(r"\n<data>\n(.*?)\n</data>", user, flags=re.S)
        assert block is not None, user
        task = TASKS[body["response_format"]["json_schema"]["name"]]
        out = RULES.get(task)(json.loads(block[1]))
        data = out.model_dump(mode="json") if isinstance(out, BaseModel) else out
        text = json.dumps(echoed(data, echo, user))
        self.answers.append(text)
        return text

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def server() -> Iterator[EchoServer]:
    fake = EchoServer()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(KEY_ENV, KEY)
    yield
    redact.forget_all()  # the next test's process state starts clean, as a new CLI call would


def files_holding(root: Path, *secrets: str) -> list[str]:
    return sorted(
        f"{p.relative_to(root)} holds {s!r}"
        for p in root.rglob("*")
        if p.is_file()
        for s in secrets
        if s.encode() in p.read_bytes()
    )


def test_insight_and_plan_write_no_secret(server: EchoServer, tmp_path: Path) -> None:
    cli = CliRunner()
    run = tmp_path / "run"
    root = make_dataset(tmp_path / "birds")
    llm = ["--llm", "openai", "-O", "model=echo-model", "-O", f"base_url={server.base_url}",
           "-O", f"api_key_env={KEY_ENV}", "-O", f"headers.X-Secret={HEADER}"]  # fmt: skip
    for args in (
        ["ingest", "--format", "manifest", "--root", str(root), "--out", str(run),
         "--val-fraction", "0"],
        ["caption", str(run), "--captioner", "metadata"],
        ["insight", str(run), *llm],
        ["plan", str(run), "--budget", "12", *llm],
    ):  # fmt: skip
        res = cli.invoke(app, args)
        assert res.exit_code == 0, (args[0], res.output)
        assert KEY not in res.output and HEADER not in res.output

    # The secrets were sent, and echoed back into answers of both stages...
    assert server.requests and all(
        r["headers"]["authorization"] == f"Bearer {KEY}" and r["headers"]["x-secret"] == HEADER
        for r in server.requests
    )
    tasks = {r["body"]["response_format"]["json_schema"]["name"] for r in server.requests}
    assert {"DataContext", "Recommendations", "AugmentationObjective"} <= tasks
    assert all(KEY in a and HEADER in a for a in server.answers)
    # ...yet no file of the run holds either, in any spelling the writers use.
    assert files_holding(run, KEY, HEADER, json.dumps(KEY)[1:-1]) == []
    # What is there instead: the placeholder, where the echoes and the header were.
    ins = json.loads((run / "insight" / "insight.json").read_text())
    assert redact.REDACTED in ins["data_overview"]
    assert ins["metadata"]["llm"]["options"]["headers"] == {"X-Secret": redact.REDACTED}
    assert redact.REDACTED in (run / "insight" / "report.html").read_text()
    assert redact.REDACTED in (run / "plan" / "targeted" / "plan.json").read_text()
    exchanges = list((run / "insight" / "llm").glob("*.json"))
    assert exchanges and all(redact.REDACTED in p.read_text() for p in exchanges)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    for section in ("insight", "plan"):
        options = saved[section]["llm_options"]
        assert options["headers"] == {"X-Secret": redact.REDACTED}  # the name stays: it is set
        assert options["api_key_env"] == KEY_ENV  # a variable's name is no secret
    manifest = json.loads((run / "plan" / "targeted" / "manifest.json").read_text())
    assert manifest["config"]["llm_options"]["headers"] == {"X-Secret": redact.REDACTED}


def test_a_saved_placeholder_is_never_sent(server: EchoServer, tmp_path: Path) -> None:
    """A later command that reads the run's config gets the placeholder, not the secret:
    it says how to give the value again instead of sending ``[redacted]`` to the server."""
    cli = CliRunner()
    run = tmp_path / "run"
    root = make_dataset(tmp_path / "birds")
    for args in (
        ["ingest", "--format", "manifest", "--root", str(root), "--out", str(run)],
        ["caption", str(run)],
        ["insight", str(run), "--llm", "openai", "-O", "model=echo-model", "-O",
         f"base_url={server.base_url}", "-O", f"headers.X-Secret={HEADER}"],
    ):  # fmt: skip
        assert cli.invoke(app, args).exit_code == 0, args
    n = len(server.requests)
    res = cli.invoke(app, ["insight", str(run)])  # up to date: the redacted config still matches
    assert res.exit_code == 0 and len(server.requests) == n
    res = cli.invoke(app, ["insight", str(run), "--force"])
    assert res.exit_code == 2 and len(server.requests) == n
    msg = " ".join(res.output.split())
    assert "header 'X-Secret' is '[redacted]'" in msg and "--option headers.X-Secret=VALUE" in msg
    # Given again, it works (the answers come from the run's LLM exchange store).
    res = cli.invoke(app, ["insight", str(run), "--force", "-O", f"headers.X-Secret={HEADER}"])
    assert res.exit_code == 0, res.output
    assert files_holding(run, HEADER) == []


def test_openai_captions_write_no_secret(server: EchoServer, tmp_path: Path) -> None:
    """The captioner's OpenAI backend: the same client, the same rules (its answers are
    the captions themselves, cached and written into the records)."""
    cli = CliRunner()
    run = tmp_path / "run"
    root = make_dataset(tmp_path / "birds")
    res = cli.invoke(
        app, ["ingest", "--format", "manifest", "--root", str(root), "--out", str(run)]
    )
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["caption", str(run), "--captioner", "openai:echo-vision",
                           "-O", f"base_url={server.base_url}", "-O", f"api_key_env={KEY_ENV}",
                           "-O", f"headers.X-Secret={HEADER}", "-O", "concurrency=1",
                           "--set", "caption.splits=[all]"])  # fmt: skip
    assert res.exit_code == 0, res.output  # every split captioned: every image is sent
    assert len(server.answers) == sum(len(c) for c in DATA.values())
    assert all(KEY in a and HEADER in a for a in server.answers)
    assert files_holding(run, KEY, HEADER) == []
    records = (run / "caption" / "records.jsonl").read_text()
    assert f"A small bird on a branch (you sent Bearer {redact.REDACTED}" in records
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["caption"]["options"]["headers"] == {"X-Secret": redact.REDACTED}
