"""Running a source over the plan: in this process, or on Ray actors (``--executor ray``).

Both executors do the same thing and write the same bytes: they cut the items into batches
of ``batch_size`` *in plan order on the driver*, run each batch through one ``make`` call
(``Renderer``), encode each image as a PNG carrying its provenance, and hand every outcome
to the driver's ``OutputSink``, which writes the image file and then its record. Locally,
encoding and writing run on one writer thread while the next batch renders: PNG
compression of a batch of 512 px images takes a noticeable share of a fast GPU's batch
time, and the GPU should not wait for zlib or the disk (both release the GIL). At most
two batches wait for the writer, which keeps memory bounded and the order of records the
plan's. Cutting
the batches on the driver (rather than letting Ray split blocks) keeps batch composition,
and hence every pixel, identical between executors: batched float kernels can differ in
the last bit from unbatched ones.

CUDA out-of-memory: the batch is halved and the work goes on (the smaller size sticks for
the rest of the run); an item that does not fit even alone is recorded as a failure.

Ray: ``ray.data.from_items(batches).map_batches(RayWorker, concurrency=num_actors,
num_gpus=num_gpus_per_actor)``; each actor loads the source once. Images travel back to the
driver as PNG bytes, so workers need no shared filesystem (except for img2img reference
images, which they read).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atlantis.embed.base import import_optional, progress_bar
from atlantis.errors import ConfigError
from atlantis.generate.base import ImageSource, ItemSpec, SourceResult
from atlantis.generate.config import GenerateConfig
from atlantis.generate.outputs import Outcome, OutputSink, provenance_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One item to make, with the address its image will be stored under."""

    item: ItemSpec
    address: str


class Renderer:
    """Runs a source over tasks batch by batch; on CUDA OOM halves the batch and goes on."""

    def __init__(self, source: ImageSource, batch_size: int) -> None:
        self.source = source
        self.batch_size = batch_size
        self.halvings = 0

    def run(self, tasks: Sequence[Task], references: Mapping[str, Path]) -> Iterator[Outcome]:
        import torch

        self.source.load()
        start = 0
        while start < len(tasks):
            chunk = tasks[start : start + self.batch_size]
            t0 = time.perf_counter()
            try:
                results = self.source.make([t.item for t in chunk], references)
            except torch.cuda.OutOfMemoryError:
                results = None  # leave the except block first: its traceback pins the tensors
            if results is None:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if len(chunk) == 1:
                    yield Outcome(chunk[0].item.id, chunk[0].address, None, {},
                                  "CUDA out of memory even at batch size 1")  # fmt: skip
                    start += 1
                    continue
                self.batch_size = max(1, len(chunk) // 2)
                self.halvings += 1
                log.warning("CUDA out of memory: batch size halved to %d", self.batch_size)
                continue
            if len(results) != len(chunk):
                raise RuntimeError(
                    f"{self.source!r} returned {len(results)} results for {len(chunk)} items"
                )
            share = (time.perf_counter() - t0) / len(chunk)
            for task, result in zip(chunk, results, strict=True):
                yield self._outcome(task, result, share)
            start += len(chunk)

    def _outcome(self, task: Task, result: SourceResult, seconds: float) -> Outcome:
        if not result.ok:
            info = {"attempts": result.attempts, **result.params}
            return Outcome(task.item.id, task.address, None, info, result.error, seconds)
        info = provenance_info(task.address, self.source.model_name, task.item, result,
                               self.source.params)  # fmt: skip
        return Outcome(task.item.id, task.address, None, info, None, seconds, result.image)


class Executor(ABC):
    """Runs ``source`` over ``tasks`` and hands each outcome to ``sink``."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.halvings = 0

    @abstractmethod
    def run(self, source: ImageSource, tasks: Sequence[Task], references: Mapping[str, Path],
            sink: OutputSink, progress: bool = True) -> None:  # fmt: skip
        """Make every task; outcomes reach ``sink`` as they finish."""


class LocalExecutor(Executor):
    """In this process, one batch at a time, with a progress bar and ETA."""

    def run(self, source: ImageSource, tasks: Sequence[Task], references: Mapping[str, Path],
            sink: OutputSink, progress: bool = True) -> None:  # fmt: skip
        renderer = Renderer(source, self.batch_size)
        pending: deque[Future[None]] = deque()
        with (
            progress_bar(progress) as bar,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="atlantis-writer") as writer,
        ):
            bar_task = bar.add_task(f"generating ({source.model_name})", total=len(tasks))

            write_failed: list[BaseException] = []

            def write(outcome: Outcome) -> None:
                if write_failed:  # after a write error (disk full) nothing more is written
                    return
                try:
                    sink.accept(outcome)  # encodes the PNG, publishes the file, appends the record
                except BaseException as exc:
                    write_failed.append(exc)
                    raise
                bar.advance(bar_task)

            # On an interrupt or a render error the writer still finishes the images already
            # made (leaving the pool waits for it): a killed run keeps all its done work.
            for outcome in renderer.run(tasks, references):
                pending.append(writer.submit(write, outcome))
                while pending and (pending[0].done() or
                                   len(pending) > 2 * renderer.batch_size):  # fmt: skip
                    pending.popleft().result()  # a write error (disk full) stops the run
            while pending:
                pending.popleft().result()
        self.halvings = renderer.halvings


class RayWorker:
    """A Ray Data actor: loads the source once, then renders whole pre-cut batches."""

    def __init__(self, source: ImageSource, batch_size: int, references: dict[str, str],
                 expected_params: dict[str, Any]) -> None:  # fmt: skip
        if source.params != expected_params:
            raise ConfigError(
                f"a Ray worker would make images with {source.params}, but their addresses "
                f"were computed for {expected_params}; set generate.device and generate.dtype "
                "explicitly"
            )
        self.renderer = Renderer(source, batch_size)
        self.references = {k: Path(v) for k, v in references.items()}
        source.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes, pngs = [], []
        for chunk in batch["chunk"]:
            tasks = [Task(ItemSpec(**t["item"]), t["address"]) for t in json.loads(chunk)]
            for o in map(Outcome.encoded, self.renderer.run(tasks, self.references)):
                row = {"plan_id": o.plan_id, "address": o.address, "info": o.info,
                       "error": o.error, "seconds": o.seconds}  # fmt: skip
                outcomes.append(json.dumps(row))
                pngs.append(o.png or b"")
        return {"outcome": np.array(outcomes, dtype=object), "png": np.array(pngs, dtype=object)}


class RayExecutor(Executor):
    """On Ray actors (one model copy each); joins ``address`` or starts a local Ray."""

    def __init__(self, batch_size: int, *, num_actors: int = 1, num_gpus_per_actor: float = 1.0,
                 num_cpus_per_actor: float = 1.0, address: str | None = None) -> None:  # fmt: skip
        super().__init__(batch_size)
        self.num_actors = num_actors
        self.num_gpus = num_gpus_per_actor
        self.num_cpus = num_cpus_per_actor
        self.address = address

    def run(self, source: ImageSource, tasks: Sequence[Task], references: Mapping[str, Path],
            sink: OutputSink, progress: bool = True) -> None:  # fmt: skip
        ray = import_optional("ray", "ray[data]", "ray", "the Ray executor")
        import_optional("ray.data", "ray[data]", "ray", "the Ray executor")
        if not source.parallel_safe:
            raise ConfigError(
                f"image source {source.model_name!r} picks items arm-wide (no pool image used "
                "twice) and cannot be split across Ray actors; use --executor local"
            )
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            self._check_resources(ray)
            self._stream(ray, source, tasks, references, sink, progress)
        finally:
            if started:
                ray.shutdown()

    def _check_resources(self, ray: Any) -> None:
        gpus = ray.cluster_resources().get("GPU", 0)
        if self.num_gpus > gpus:
            raise ConfigError(
                f"generate.ray.num_gpus_per_actor={self.num_gpus:g}, but the Ray cluster has "
                f"{gpus:g} GPU(s); set it to 0 for CPU actors"
            )

    def _stream(self, ray: Any, source: ImageSource, tasks: Sequence[Task],
                references: Mapping[str, Path], sink: OutputSink, progress: bool) -> None:  # fmt: skip
        if not tasks:
            return
        b = self.batch_size
        chunks = [
            json.dumps([{"item": asdict(t.item), "address": t.address} for t in tasks[i : i + b]])
            for i in range(0, len(tasks), b)
        ]
        ds = ray.data.from_items([{"chunk": c} for c in chunks], override_num_blocks=len(chunks))
        worker_args = {"source": source, "batch_size": b, "expected_params": source.params,
                       "references": {k: str(v) for k, v in references.items()}}  # fmt: skip
        ds = ds.map_batches(
            RayWorker, fn_constructor_kwargs=worker_args, batch_size=1, batch_format="numpy",
            concurrency=self.num_actors, num_gpus=self.num_gpus, num_cpus=self.num_cpus,
        )  # fmt: skip
        with progress_bar(progress) as bar:
            bar_task = bar.add_task(f"generating on Ray ({source.model_name})", total=len(tasks))
            for row in ds.iter_rows():
                data = json.loads(row["outcome"])
                sink.accept(Outcome(data["plan_id"], data["address"], bytes(row["png"]) or None,
                                    data["info"], data["error"], data["seconds"]))  # fmt: skip
                bar.advance(bar_task)


def create_executor(cfg: GenerateConfig) -> Executor:
    if cfg.executor == "ray":
        r = cfg.ray
        return RayExecutor(cfg.batch_size, num_actors=r.num_actors, address=r.address,
                           num_gpus_per_actor=r.num_gpus_per_actor,
                           num_cpus_per_actor=r.num_cpus_per_actor)  # fmt: skip
    return LocalExecutor(cfg.batch_size)
