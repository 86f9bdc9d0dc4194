"""Fixtures for the generate tests: run folders with a plan, a fake source, a tiny real SD.

Everything runs offline: the tiny Stable Diffusion pipeline is built here and loaded back
through the production loader from a folder (``HF_HUB_OFFLINE=1``, ``local_files_only``).
Plans are written as ``plan.jsonl`` rows of ``plan.schema.PlanItem`` with a ``done``
manifest, as the plan stage leaves them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from atlantis.generate.base import ImageSource, SourceResult
from atlantis.generate.base import PlanItem as ItemFields
from atlantis.generate.config import GenerateConfig
from atlantis.plan.schema import PlanItem
from atlantis.store.run import Run
from tests.generate.tiny_sd import build_tiny_flux, build_tiny_sd, build_tiny_sd3, build_tiny_sdxl

CLASSES = ["cat", "dog", "car"]
DOMAINS = ["beach", "snow"]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run as fast on one thread, and do not spin-wait on two busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd") / "pipeline")


@pytest.fixture(scope="session")
def tiny_family(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_family("sdxl" | "flux" | "flux-dev" | "sd3")``: that architecture, tiny and
    random, saved once per session and loaded back through the production loader."""
    pytest.importorskip("diffusers")
    builders: dict[str, Callable[[Path], Path]] = {
        "sdxl": build_tiny_sdxl, "flux": build_tiny_flux, "sd3": build_tiny_sd3,
        "flux-dev": lambda folder: build_tiny_flux(folder, guidance_embeds=True),
    }  # fmt: skip
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = builders[name](tmp_path_factory.mktemp(f"tiny-{name}") / "pipeline")
        return built[name]

    return get


def sd_config(folder: Path, **overrides: Any) -> GenerateConfig:
    """A generate config for the tiny pipeline: 32 px, 2 steps, CPU."""
    options = {"steps": 2, "local_files_only": True, **overrides.pop("options", {})}
    return GenerateConfig(source=f"diffusers:{folder}", options=options, device="cpu",
                          dtype="float32", **overrides)  # fmt: skip


def plan_rows(n: int, arm: str = "targeted", seed0: int = 100) -> list[dict[str, Any]]:
    """``n`` plan rows (``PlanItem`` dumps) with distinct descriptions and seeds."""
    rows = []
    for i in range(n):
        cls, dom = CLASSES[i % len(CLASSES)], DOMAINS[i % len(DOMAINS)]
        item = PlanItem(
            id=f"{arm}-r0-{i:04d}", arm=arm, round=0, index=i, class_name=cls, domain=dom,
            description=f"a {cls} on a {dom} #{i}", seed=seed0 + i, step="scarce_domains",
            reason="domain scarce", is_new_class=i == n - 1,
        )  # fmt: skip
        rows.append(item.model_dump(mode="json"))
    return rows


def write_plan(run: Run, rows: list[dict[str, Any]], arm: str = "targeted") -> None:
    """Write ``RUN/plan/<arm>/plan.jsonl`` with a done manifest, as the plan stage does."""
    with run.stage(f"plan/{arm}", {"rows": rows}, force=True) as ctx:
        path = ctx.dir / "plan.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        ctx.add_output(path)
        ctx.counts["items"] = len(rows)


@pytest.fixture
def run_with_plan(tmp_path: Path) -> Run:
    run = Run(tmp_path / "run")
    run.root.mkdir()
    write_plan(run, plan_rows(6))
    return run


class FakeSource(ImageSource):
    """Solid-colour images from the seed, with switches to crash, overflow or run out of memory.

    ``crash_after``: raise after making that many images (a killed process, for resume
    tests); ``oom_above``: raise CUDA OOM for batches larger than this; ``calls`` records the
    batch sizes it was given; ``made`` counts images.
    """

    def __init__(self, crash_after: int | None = None, oom_above: int | None = None,
                 tag: str = "v1") -> None:  # fmt: skip
        super().__init__(device="cpu")
        self.crash_after, self.oom_above, self.tag = crash_after, oom_above, tag
        self.calls: list[int] = []
        self.made = 0

    @property
    def identity(self) -> str:
        return f"fake {self.tag}"

    @property
    def model_name(self) -> str:
        return "fake"

    def make(self, items: Sequence[ItemFields],
             references: Mapping[str, Path] | None = None) -> list[SourceResult]:  # fmt: skip
        self.calls.append(len(items))
        if self.oom_above is not None and len(items) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        out = []
        for item in items:
            if self.crash_after is not None and self.made >= self.crash_after:
                raise KeyboardInterrupt("simulated kill")
            rgb = np.random.default_rng(item.seed).integers(0, 256, 3, dtype=np.uint8)
            out.append(SourceResult(image=Image.new("RGB", (8, 8), tuple(int(v) for v in rgb)),
                                    seed=item.seed))  # fmt: skip
            self.made += 1
        return out
