"""A small slice of the real emoji data (fetched by scripts/setup.sh) for whole-loop tests.

The first classes of the dataset with their pool rows (the pool holds images of every
class, see ``atlantis.data.emoji``): a real dataset with domains and a retrieval pool that
can serve every class, in seconds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from atlantis.data.emoji import DONE_MARKER, fetch_emoji

N_CLASSES, POOL_PER_CLASS = 8, 12


@pytest.fixture(scope="session", autouse=True)
def two_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


def make_slice(src: Path, dest: Path) -> Path:
    rows = [json.loads(x) for x in (src / "manifest.jsonl").read_text().splitlines() if x]
    pool = [json.loads(x) for x in (src / "pool.jsonl").read_text().splitlines() if x]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    keep = labels[:N_CLASSES]
    rows = [r for r in rows if r["label"] in keep]
    picked, count = [], dict.fromkeys(keep, 0)
    for p in pool:
        if p["subcategory"] in count and count[p["subcategory"]] < POOL_PER_CLASS:
            count[p["subcategory"]] += 1
            picked.append(p)
    for rel in [r["path"] for r in rows] + [f"images/{p['file']}" for p in picked]:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)
    (dest / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dest / "pool.jsonl").write_text("".join(json.dumps(p) + "\n" for p in picked))
    if (src / "dataset.json").exists():
        shutil.copyfile(src / "dataset.json", dest / "dataset.json")
    (dest / DONE_MARKER).write_text("slice\n")
    return dest


@pytest.fixture(scope="session")
def emoji_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slice(fetch_emoji(), tmp_path_factory.mktemp("emoji-slice"))
