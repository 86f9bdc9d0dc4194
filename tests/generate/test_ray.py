"""The Ray executor: a local Ray with 2 CPUs gives the same files as the local executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atlantis.data.records import read_records
from atlantis.errors import ConfigError
from atlantis.generate.config import RayOptions
from atlantis.generate.stage import generate
from atlantis.store.atomic import file_sha256
from atlantis.store.run import Run
from tests.generate.conftest import FakeSource, plan_rows, sd_config, write_plan

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def files_of(run: Run) -> dict[str, str]:
    folder = run.stage_dir("generate/targeted")
    return {p.relative_to(folder).as_posix(): file_sha256(p)
            for p in sorted(folder.rglob("*.png"))}  # fmt: skip


def new_run(root: Path) -> Run:
    run = Run(root)
    run.root.mkdir()
    write_plan(run, plan_rows(7))
    return run


def test_ray_and_local_executors_write_identical_files(
    local_ray: None, tiny_sd: Path, tmp_path: Path
) -> None:
    local, remote = new_run(tmp_path / "local"), new_run(tmp_path / "ray")
    generate(local, sd_config(tiny_sd, batch_size=3), "targeted", progress=False)
    ray_cfg = sd_config(tiny_sd, batch_size=3, executor="ray",
                        ray=RayOptions(num_actors=2, num_gpus_per_actor=0))  # fmt: skip
    m = generate(remote, ray_cfg, "targeted", progress=False)
    assert m.counts["made"] == 7 and m.info["executor"] == "ray"
    assert len(files_of(local)) == 7
    assert files_of(remote) == files_of(local)  # same names, same bytes
    stage = "generate/targeted/records.jsonl"
    assert read_records(remote.root / stage) == read_records(local.root / stage)
    # The executor is a runtime choice: switching back to local reuses the Ray images.
    forced = generate(remote, sd_config(tiny_sd), "targeted", force=True, progress=False)
    assert (forced.counts["made"], forced.counts["reused"]) == (0, 7)


def test_ray_refuses_what_it_cannot_run(local_ray: None, tmp_path: Path) -> None:
    run = new_run(tmp_path / "run")
    cfg = sd_config(Path("unused"), executor="ray", ray=RayOptions(num_gpus_per_actor=1))
    with pytest.raises(ConfigError, match="has 0 GPU"):
        generate(run, cfg, "targeted", progress=False, source=FakeSource())
    stateful = FakeSource()
    stateful.parallel_safe = False  # type: ignore[misc]
    cfg = sd_config(Path("unused"), executor="ray", ray=RayOptions(num_gpus_per_actor=0))
    with pytest.raises(ConfigError, match="cannot be split across Ray actors"):
        generate(run, cfg, "targeted", progress=False, source=stateful)
