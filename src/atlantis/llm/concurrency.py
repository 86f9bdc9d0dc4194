"""Send independent LLM requests at once, with results in the order of the inputs.

``ordered_map(fn, items, workers)`` is ``[fn(x) for x in items]`` with up to ``workers``
calls in flight (threads: the calls wait on a server, not on the CPU). Results come back in
input order whatever order the answers arrive in, so a concurrent plan is the sequential
plan. A failure raises the error of the *first* failing item in input order (what the
sequential loop would have raised) once the calls in flight end; calls not started yet are
cancelled. ``workers <= 1`` runs the plain loop in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)),
                            thread_name_prefix="atlantis-llm") as pool:  # fmt: skip
        futures: list[Future[R]] = [pool.submit(fn, x) for x in items]
        try:
            return [f.result() for f in futures]  # the first failure in input order
        except BaseException:
            for f in futures:
                f.cancel()
            raise
