"""Spreading pure work over forked processes, with no state kept between calls.

Each process is forked with the work in its memory (nothing is pickled on the way in), computes
an interleaved share of the indices, and sends its results back through a pipe once.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from teich.errors import TeichError

T = TypeVar("T")


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def fork_map(work: Callable[[int], T], count: int, processes: int) -> list[T]:
    """``[work(i) for i in range(count)]``, computed in ``processes`` forked processes."""
    context = multiprocessing.get_context("fork")
    pipes, workers = [], []
    for share in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        worker = context.Process(target=_compute, args=(work, range(share, count, processes), sender), daemon=True)
        worker.start()
        sender.close()
        pipes.append(receiver)
        workers.append(worker)
    try:
        shares = [_received(pipe, worker) for pipe, worker in zip(pipes, workers, strict=True)]
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    results: list[T] = [None] * count  # type: ignore[list-item]
    for share, values in enumerate(shares):
        results[share::processes] = values
    return results


def _compute(work: Callable[[int], T], indices: range, sender: Connection) -> None:
    try:
        sender.send((True, [work(i) for i in indices]))
    except BaseException as error:  # noqa: BLE001 - sent back to be raised in the parent
        sender.send((False, error))
    finally:
        sender.close()


def _received(pipe: Connection, worker: multiprocessing.process.BaseProcess) -> list[Any]:
    try:
        done, value = pipe.recv()
    except EOFError:
        worker.join()
        raise TeichError(f"a worker process died (exit code {worker.exitcode}); try a smaller num_proc") from None
    if not done:
        raise value
    rows: list[Any] = value
    return rows
