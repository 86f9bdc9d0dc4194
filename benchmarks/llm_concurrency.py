"""Benchmark plan descriptions: sequential vs concurrent LLM calls against a slow local server.

Run:  .venv/bin/python benchmarks/llm_concurrency.py [--images 2000] [--classes 100]
      [--latency 1.0] [--concurrency 8] [--per-call 20]

A fake OpenAI-compatible server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1) answers every
``/v1/chat/completions`` request after ``--latency`` seconds with valid JSON: the rules
engine's answer to the request's data block, picked by the ``response_format`` schema name.
The plan is written through the real code path (``describe_rows``: ReferenceDescription
batches, then the description writer per class, the ``openai`` backend over HTTP, the call
store), once with ``llm_concurrency=1`` and once with ``--concurrency``, each into its own
store. It prints both wall times and whether texts, references and store records match.
Goal (issue 13): 2,000 descriptions in <= 2 minutes concurrently, at 1 s per call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from atlantis.insight.schema import Domain, Insight
from atlantis.llm import create_llm
from atlantis.llm.rules import RULES
from atlantis.llm.store import CallStore
from atlantis.plan.config import PlanConfig
from atlantis.plan.items import describe_rows
from atlantis.plan.objective import AugmentationObjective
from atlantis.plan.schema import AllocationRow

TARGET_S = 120.0
TASKS = {"DescriptionBatch": "aps.descriptions",
         "ReferenceDescriptions": "aps.reference_description"}  # fmt: skip
DOMAINS = ("flying", "swimming")


def serve(latency: float) -> tuple[ThreadingHTTPServer, dict[str, int]]:
    stats = {"calls": 0, "in_flight": 0, "most": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with lock:
                stats["calls"] += 1
                stats["in_flight"] += 1
                stats["most"] = max(stats["most"], stats["in_flight"])
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            user = body["messages"][1]["content"]
            data = json.loads(user.split("<data>")[1].split("</data>")[0])
            task = TASKS[body["response_format"]["json_schema"]["name"]]
            text = RULES.get(task)(data).model_dump_json()
            reply = {"choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": text}}]}  # fmt: skip
            payload = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            with lock:
                stats["in_flight"] -= 1

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.request_queue_size = 64
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, stats


def plan_inputs(images: int, classes: int) -> tuple[Insight, list[AllocationRow]]:
    names = [f"Seabird {i:03d}" for i in range(classes)]
    counts = {c: 20 for c in names}
    cells = {c: {d: 10 for d in DOMAINS} for c in names}
    ins = Insight.model_validate({
        "data_overview": f"{20 * classes} photos of seabirds.", "class_names": names,
        "class_imbalance_recommendations": "", "domain_imbalance_recommendations": {},
        "class_counts": counts, "imbalance_ratio": 1.0, "under_represented_classes": [],
        "domain_criterion": "activity",
        "domains": [Domain(name=d, description=f"birds {d}", keywords=[d]) for d in DOMAINS],
        "class_domain_counts": cells, "scarce_cells": [], "new_classes": [], "top_tokens": [],
        "top_tokens_per_class": {c: [{"token": t, "pos": "noun", "count": 3}
                                     for t in ("wing", "beak", "feather")] for c in names},
    })  # fmt: skip
    rows = []
    for i in range(images):  # spread the images over classes, then domains
        c, d = names[i % classes], DOMAINS[(i // classes) % len(DOMAINS)]
        rows.append((c, d))
    counted: dict[tuple[str, str], int] = {}
    for cell in rows:
        counted[cell] = counted.get(cell, 0) + 1
    return ins, [AllocationRow(class_name=c, domain=d, count=n, step="remainder", reason="bench")
                 for (c, d), n in counted.items()]  # fmt: skip


def run(base_url: str, ins: Insight, rows: list[AllocationRow], concurrency: int,
        per_call: int, store: Path) -> tuple[float, Any]:  # fmt: skip
    llm = create_llm("openai", model="fake-writer", base_url=base_url, max_retries=0)
    cfg = PlanConfig(budget=sum(r.count for r in rows), llm="openai",
                     llm_concurrency=concurrency, descriptions_per_call=per_call)  # fmt: skip
    objective = AugmentationObjective(objective="Fill the gaps.", guidelines=["One sentence."])
    start = time.perf_counter()
    out = describe_rows(llm, ins, objective, rows, [], cfg, CallStore(store))
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per call")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--per-call", type=int, default=20, help="plan.descriptions_per_call")
    args = ap.parse_args()
    server, stats = serve(args.latency)
    base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    ins, rows = plan_inputs(args.images, args.classes)
    print(f"{args.images} descriptions, {args.classes} classes, {args.per_call} per call, "
          f"{args.latency:g} s per call")  # fmt: skip
    results, stores = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, args.concurrency):
            stores[n] = Path(tmp) / f"store-{n}"
            before = stats["calls"]
            stats["most"] = 0
            wall, out = run(base_url, ins, rows, n, args.per_call, stores[n])
            results[n] = out
            print(f"  llm_concurrency={n:<3d} {wall:7.1f} s  {stats['calls'] - before} calls, "
                  f"at most {stats['most']} in flight")  # fmt: skip
            if n == 1:
                seq = wall
        texts = sum(len(t) for t in results[1][0].values())
        same_store = all(
            (stores[1] / p.name).read_text() == p.read_text()
            for p in stores[args.concurrency].glob("*.json")
        ) and len(list(stores[1].glob("*.json"))) == len(
            list(stores[args.concurrency].glob("*.json"))
        )
    server.shutdown()
    same = list(results[1][0].items()) == list(results[args.concurrency][0].items())
    same_refs = results[1][1] == results[args.concurrency][1]
    print(f"  descriptions written: {texts}; identical texts and order: {same}; identical "
          f"references: {same_refs}; identical call-store records: {same_store}")  # fmt: skip
    print(f"  speed-up x{seq / wall:.1f}; goal <= {TARGET_S:.0f} s concurrently: "
          f"{'met' if wall <= TARGET_S else 'NOT met'} ({wall:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
