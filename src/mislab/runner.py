"""The batch runner: models × cells × n samples, bounded concurrency per model, one store transaction per
finished sample, a progress bar with live cost, a budget, and a clean stop on Ctrl-C.

A run is resumable: its samples have deterministic ids, and those already done are skipped."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .models import ChatModel, ModelError, metered
from .store import SampleRecord, Store
from .study import CaseStudy, Cell

T = TypeVar("T")


@dataclass(frozen=True)
class PlannedSample:
    model: str
    cell: Cell
    epoch: int

    @property
    def sample_id(self) -> str:
        return f"{self.model}::{self.cell.id}::{self.epoch}"


def plan(models: list[str], cells: list[Cell], n: int) -> list[PlannedSample]:
    # Epoch-major order, so a run stopped early has a balanced sample of every cell.
    return [PlannedSample(m, c, e) for e in range(n) for m in models for c in cells]


@dataclass
class RunOutcome:
    run_id: str
    planned: int
    skipped: int = 0  # already done in an earlier session of this run
    done: int = 0
    errors: int = 0
    cost: float = 0.0
    stopped: str | None = None  # "budget", "interrupted", or a model error that made going on pointless
    error_messages: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.stopped is None and self.skipped + self.done == self.planned


async def run_samples(
    store: Store,
    run_id: str,
    study: CaseStudy,
    models: dict[str, ChatModel],
    samples: list[PlannedSample],
    options: dict[str, Any],
    *,
    budget: float | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> RunOutcome:
    done_ids = store.done_sample_ids(run_id)
    todo = [s for s in samples if s.sample_id not in done_ids]
    outcome = RunOutcome(run_id, len(samples), skipped=len(samples) - len(todo))
    # Twice the model's concurrency in samples: the model's own limit keeps exactly that many calls in flight,
    # and a sample ready to call takes a freed slot at once instead of waiting for another to be scored and
    # stored (a fifth of the throughput). Under a budget, no more samples than calls: a sample waiting for a slot
    # would make its call even after the budget is reached.
    headroom = 1 if budget is not None else 2
    windows = {name: headroom * m.max_concurrency for name, m in models.items()}
    limits = {name: asyncio.Semaphore(size) for name, size in windows.items()}
    stop = asyncio.Event()

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"), console=console, disable=not progress, transient=False,
    )  # fmt: skip
    cell_tasks = {}
    for s in samples:
        key = (s.model, s.cell.id)
        if key not in cell_tasks:
            cell_tasks[key] = bar.add_task(f"{s.model} · {s.cell.id}", total=0, note="")
        bar.update(cell_tasks[key], total=bar.tasks[cell_tasks[key]].total + 1)
        if s.sample_id in done_ids:
            bar.advance(cell_tasks[key])
    total_task = bar.add_task("all", total=len(samples), completed=outcome.skipped, note="$0.0000")

    async def one(sample: PlannedSample) -> None:
        async with limits[sample.model]:
            if stop.is_set():
                return
            started = time.monotonic()
            with metered() as meter:
                try:
                    result = await study.run_sample(models[sample.model], sample.cell, sample.epoch, options)
                    status, error, scores, transcript, metadata, labels = (
                        "done", None, result.scores, result.transcript, result.metadata, result.labels,
                    )  # fmt: skip
                except ModelError as exc:
                    # Retrying could not help (bad key, unknown model, retries exhausted): stop the run,
                    # keeping what is finished; a rerun resumes here, its calls so far served from the cache.
                    outcome.cost += meter.cost  # what this sample paid still counts against the budget
                    outcome.stopped = f"model error: {exc}"
                    stop.set()
                    return
                except Exception as exc:  # an environment bug must not sink the other samples
                    status, error, scores, transcript, metadata, labels = (
                        "error", f"{type(exc).__name__}: {exc}", {}, [], {"traceback": traceback.format_exc()}, [],
                    )  # fmt: skip
            record = SampleRecord(
                sample.sample_id, sample.model, sample.cell.id, sample.cell.factors, sample.epoch, scores,
                transcript, metadata, status, error, meter.calls, meter.cached_calls, meter.usage.prompt_tokens,
                meter.usage.completion_tokens, meter.usage.cached_prompt_tokens, meter.cost,
                time.monotonic() - started,
            )  # fmt: skip
            for label in labels:
                label.sample_id = sample.sample_id
            store.add_sample(run_id, record, labels)
            outcome.cost += meter.cost
            if status == "done":
                outcome.done += 1
            else:
                outcome.errors += 1
                outcome.error_messages.append(f"{sample.sample_id}: {error}")
            bar.advance(cell_tasks[(sample.model, sample.cell.id)])
            bar.update(total_task, advance=1, note=f"${outcome.cost:.4f}")
            if budget is not None and outcome.cost >= budget and not stop.is_set():
                outcome.stopped = f"budget of ${budget:.2f} reached"
                stop.set()

    with bar:
        try:
            await start_gradually(one, todo, windows)
        except asyncio.CancelledError:
            outcome.stopped = "interrupted"
    status = "complete" if outcome.complete else ("stopped" if outcome.stopped else "incomplete")
    store.update_run(run_id, status=status)
    return outcome


async def start_gradually(
    run: Callable[[PlannedSample], Awaitable[None]], todo: list[PlannedSample], windows: dict[str, int]
) -> None:
    """`run(s)` for every sample, at most `windows[model]` at a time per model, started one per turn of the
    event loop: the first wave's calls go out while the rest of the wave is still being prepared, and a long
    plan holds no task (memory) until its sample starts. Cancelling cancels every running sample."""
    running: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(window: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        running.discard(task)
        window.release()
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]

    async def feed(model: str, size: int) -> None:
        window = asyncio.Semaphore(size)
        for sample in (s for s in todo if s.model == model):
            await window.acquire()
            task = asyncio.ensure_future(run(sample))
            running.add(task)
            task.add_done_callback(functools.partial(finished, window))
            await asyncio.sleep(0)
        for _ in range(size):  # the model's last samples have finished when the whole window is free again
            await window.acquire()

    try:
        await asyncio.gather(*(feed(model, size) for model, size in windows.items()))
    except asyncio.CancelledError:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    if failures:
        raise failures[0]


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from sync code, also from inside Jupyter's running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    # A new thread starts with an empty context: carry the caller's (cache scope, meters) across.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,))
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def new_run_id(study: str) -> str:
    return f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"


def start_run(
    store: Store,
    study: CaseStudy,
    models: dict[str, ChatModel],
    cells: list[Cell],
    options: dict[str, Any],
    spec: dict[str, Any],
    run_id: str | None = None,
) -> str:
    """Create (or reopen, for a resume) the run record with everything needed to reproduce it."""
    run_id = run_id or new_run_id(study.name)
    store.create_run(
        run_id, study.name, spec, study.prompts(cells, options),
        {name: m.describe() for name, m in models.items()}, __version__,
    )  # fmt: skip
    return run_id
