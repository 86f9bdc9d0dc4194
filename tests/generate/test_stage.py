"""The generate stage: records, content addressing, resume after a kill, failures, OOM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from atlantis.data.paths import image_path
from atlantis.data.records import read_records
from atlantis.errors import StageError
from atlantis.generate.config import GenerateConfig
from atlantis.generate.outputs import read_png_info
from atlantis.generate.stage import generate, load_generated
from atlantis.store.run import Run
from tests.generate.conftest import FakeSource, plan_rows, sd_config, write_plan

ARM = "targeted"
CFG = GenerateConfig(source="retrieve", batch_size=2, device="cpu")  # source given explicitly


def records_of(run: Run) -> list:
    return read_records(run.stage_dir(f"generate/{ARM}") / "records.jsonl")


def test_tiny_sd_makes_one_record_and_file_per_item(run_with_plan: Run, tiny_sd: Path) -> None:
    m = generate(run_with_plan, sd_config(tiny_sd, batch_size=4), ARM, progress=False)
    assert m.status == "done"
    assert m.counts["planned"] == m.counts["made"] == m.counts["images"] == 6
    assert m.counts["failed"] == m.counts["reused"] == 0
    assert m.timings["per_image_s"] > 0
    records = load_generated(run_with_plan, ARM)
    assert [r.meta["plan_id"] for r in records] == [f"{ARM}-r0-{i:04d}" for i in range(6)]
    first, last = records[0], records[-1]
    assert (first.label, first.split, first.source, first.domains) == (
        "cat", "train", "synthetic", ["beach"])  # fmt: skip
    assert first.provenance.model == f"diffusers:{tiny_sd}"
    assert first.provenance.prompt == "a cat on a beach #0"
    assert first.provenance.seed == 100
    assert first.provenance.params["steps"] == 2
    assert first.meta == {"plan_id": f"{ARM}-r0-0000", "arm": ARM, "round": 0,
                          "is_new_class": False, "address": first.meta["address"]}  # fmt: skip
    assert last.meta["is_new_class"] is True
    address = first.meta["address"]
    assert first.path == f"generate/{ARM}/images/{address[:2]}/{address}.png"
    file = image_path(run_with_plan, first)
    with Image.open(file) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    assert read_png_info(file)["seed"] == 100
    assert (run_with_plan.stage_dir(f"generate/{ARM}") / "failures.jsonl").read_text() == ""


def test_rerun_makes_nothing_and_force_reuses_every_image(run_with_plan: Run) -> None:
    first = generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    again = generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    assert again.finished_at == first.finished_at  # up to date: skipped
    source = FakeSource()
    forced = generate(run_with_plan, CFG, ARM, force=True, progress=False, source=source)
    assert source.made == 0
    assert (forced.counts["made"], forced.counts["reused"]) == (0, 6)
    # Runtime keys (batch size, executor, device) do not invalidate the stage.
    bigger = CFG.model_copy(update={"batch_size": 5, "device": "cuda"})
    assert generate(run_with_plan, bigger, ARM, progress=False,
                    source=FakeSource()).finished_at == forced.finished_at  # fmt: skip


def test_kill_and_resume_makes_only_the_remaining_items(run_with_plan: Run) -> None:
    cfg = CFG.model_copy(update={"batch_size": 1})
    with pytest.raises(KeyboardInterrupt):
        generate(run_with_plan, cfg, ARM, progress=False, source=FakeSource(crash_after=4))
    assert run_with_plan.read_manifest(f"generate/{ARM}").status == "failed"
    assert len(records_of(run_with_plan)) == 4
    source = FakeSource()
    m = generate(run_with_plan, cfg, ARM, progress=False, source=source)
    assert source.made == 2  # exactly the two unfinished items
    assert (m.counts["made"], m.counts["reused"], m.counts["images"]) == (2, 4, 6)
    assert [r.meta["plan_id"] for r in records_of(run_with_plan)] == [
        f"{ARM}-r0-{i:04d}" for i in range(6)
    ]


def test_an_image_without_its_record_is_adopted(run_with_plan: Run) -> None:
    generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    path = run_with_plan.stage_dir(f"generate/{ARM}") / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:20])  # lost record + torn tail
    source = FakeSource()
    m = generate(run_with_plan, CFG, ARM, force=True, progress=False, source=source)
    assert source.made == 0
    assert (m.counts["adopted"], m.counts["reused"], m.counts["images"]) == (1, 5, 6)
    assert records_of(run_with_plan)[-1].provenance.seed == 105


def test_a_truncated_image_without_record_is_made_again(run_with_plan: Run) -> None:
    generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    path = run_with_plan.stage_dir(f"generate/{ARM}") / "records.jsonl"
    last = read_records(path)[-1]
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    file = image_path(run_with_plan, last)
    file.write_bytes(file.read_bytes()[:30])
    source = FakeSource()
    m = generate(run_with_plan, CFG, ARM, force=True, progress=False, source=source)
    assert (source.made, m.counts["adopted"], m.counts["made"]) == (1, 0, 1)
    assert read_png_info(file) is not None


def test_deleted_or_cut_images_make_a_finished_stage_run_again(run_with_plan: Run) -> None:
    generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    image_path(run_with_plan, records_of(run_with_plan)[2]).unlink()
    cut = image_path(run_with_plan, records_of(run_with_plan)[3])  # e.g. lost in a power cut
    cut.write_bytes(cut.read_bytes()[:-5])
    source = FakeSource()
    m = generate(run_with_plan, CFG, ARM, progress=False, source=source)
    assert (source.made, m.counts["made"], m.counts["reused"]) == (2, 2, 4)
    assert read_png_info(cut) is not None


def test_a_changed_plan_remakes_only_the_changed_requests(run_with_plan: Run) -> None:
    generate(run_with_plan, CFG, ARM, progress=False, source=FakeSource())
    rows = plan_rows(6)
    rows[1]["description"] = "a dog in the rain"
    rows[4]["class_name"] = "fox"  # not part of the request: the image is reused, relabelled
    write_plan(run_with_plan, rows[:5])
    source = FakeSource()
    m = generate(run_with_plan, CFG, ARM, progress=False, source=source)
    assert source.made == 1
    assert (m.counts["planned"], m.counts["images"], m.counts["reused"]) == (5, 5, 4)
    records = records_of(run_with_plan)
    assert records[4].label == "fox" and records[1].provenance.prompt == "a dog in the rain"
    # Another source identity is another request: everything is made again.
    other = FakeSource(tag="v2")
    generate(run_with_plan, CFG, ARM, progress=False, source=other)
    assert other.made == 5


def test_cuda_oom_halves_the_batch_then_records_the_failure(run_with_plan: Run) -> None:
    source = FakeSource(oom_above=1)
    m = generate(run_with_plan, CFG.model_copy(update={"batch_size": 4}), ARM, progress=False,
                 source=source)  # fmt: skip
    assert source.calls[:3] == [4, 2, 1]
    assert m.counts["made"] == 6 and m.counts["batch_halvings"] == 2
    never = FakeSource(oom_above=0)
    m = generate(run_with_plan, CFG, ARM, force=True, progress=False, source=never)
    # Force re-runs the stage, but every image already exists: nothing reaches the source.
    assert never.calls == [] and m.counts["reused"] == 6
    write_plan(run_with_plan, plan_rows(2, seed0=7))
    m = generate(run_with_plan, CFG, ARM, progress=False, source=never)
    assert (m.counts["failed"], m.counts["images"]) == (2, 0)
    failures = (run_with_plan.stage_dir(f"generate/{ARM}") / "failures.jsonl").read_text()
    reasons = [json.loads(line)["reason"] for line in failures.splitlines()]
    assert reasons == ["CUDA out of memory even at batch size 1"] * 2


def test_an_empty_plan_is_a_clear_error(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    run.root.mkdir()
    write_plan(run, [])
    with pytest.raises(StageError, match="plan of arm 'targeted' is empty"):
        generate(run, CFG, ARM, progress=False, source=FakeSource())


def test_a_missing_plan_says_which_command_makes_it(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="plan/naive"):
        generate(Run(tmp_path / "run"), CFG, "naive", progress=False, source=FakeSource())
    with pytest.raises(StageError, match="arm"):
        generate(Run(tmp_path / "run"), CFG, "../x", progress=False, source=FakeSource())


def test_items_asking_for_the_same_image_are_reported_not_duplicated(tmp_path: Path) -> None:
    run = Run(tmp_path / "run")
    run.root.mkdir()
    rows = plan_rows(3)
    rows[2].update(description=rows[0]["description"], seed=rows[0]["seed"])
    write_plan(run, rows)
    m = generate(run, CFG, ARM, progress=False, source=FakeSource())
    assert (m.counts["images"], m.counts["duplicates"], m.counts["failed"]) == (2, 1, 1)
    failure = json.loads((run.stage_dir(f"generate/{ARM}") / "failures.jsonl").read_text())
    assert failure["plan_id"] == rows[2]["id"] and "duplicate of plan item" in failure["reason"]


def test_img2img_reads_reference_images_of_the_ingested_dataset(tmp_path: Path,
                                                                 tiny_sd: Path) -> None:  # fmt: skip
    from atlantis.config import DataConfig
    from atlantis.data.ingest import ingest

    for cls in ("cat", "dog"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (80 * i, 40, 0)).save(tmp_path / "data" / cls / f"{i}.png")
    run = Run(tmp_path / "run")
    ingest(run, DataConfig(format="imagefolder", root=str(tmp_path / "data"), split="fsl"))
    rows = plan_rows(3)
    rows[0]["reference_image_ids"] = ["cat/1.png", "cat/2.png"]
    rows[1]["reference_image_ids"] = ["cat/404.png"]
    write_plan(run, rows)
    cfg = sd_config(tiny_sd, options={"img2img": True, "strength": 0.5})
    m = generate(run, cfg, ARM, progress=False)
    assert (m.counts["made"], m.counts["failed"]) == (2, 1)
    edited, plain = records_of(run)
    assert edited.provenance.parent_ids == ["cat/1.png"] and plain.provenance.parent_ids == []
    assert edited.provenance.params["strength"] == 0.5
    failure = json.loads((run.stage_dir(f"generate/{ARM}") / "failures.jsonl").read_text())
    assert "'cat/404.png' is not an ingested image" in failure["reason"]
    assert "ingest" in run.require(f"generate/{ARM}").input_hashes


def test_a_full_disk_stops_cleanly_and_the_rerun_resumes(
    run_with_plan: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing an image: a clear error, only finished images are recorded,
    no temp file is left, and the same command resumes once there is space."""
    import errno

    from atlantis.errors import DiskFullError

    real, calls = Path.write_bytes, []

    def filling(self: Path, data: bytes) -> int:
        if self.name.endswith(".tmp"):
            calls.append(self)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", filling)
    cfg = CFG.model_copy(update={"batch_size": 1})
    with pytest.raises(DiskFullError, match="no space left"):
        generate(run_with_plan, cfg, ARM, progress=False, source=FakeSource())
    assert run_with_plan.read_manifest(f"generate/{ARM}").status == "failed"
    assert len(records_of(run_with_plan)) == 2
    images = run_with_plan.stage_dir(f"generate/{ARM}") / "images"
    assert not [p for p in images.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(Path, "write_bytes", real)
    source = FakeSource()
    m = generate(run_with_plan, cfg, ARM, progress=False, source=source)
    assert source.made == 4 and m.counts["images"] == 6


def test_pngs_are_encoded_off_the_render_loop_in_plan_order(
    run_with_plan: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer thread encodes and writes while the next batch renders; order is kept."""
    import threading

    from atlantis.generate import outputs

    threads: list[str] = []
    real = outputs.encode_png

    def spy(image: Image.Image, info: dict) -> bytes:
        threads.append(threading.current_thread().name)
        return real(image, info)

    monkeypatch.setattr(outputs, "encode_png", spy)
    generate(run_with_plan, CFG.model_copy(update={"batch_size": 2}), ARM, progress=False,
             source=FakeSource())  # fmt: skip
    assert len(threads) == 6 and all(t.startswith("atlantis-writer") for t in threads)
    assert [r.meta["plan_id"] for r in records_of(run_with_plan)] == [
        f"{ARM}-r0-{i:04d}" for i in range(6)
    ]
