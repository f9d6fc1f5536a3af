"""The batch runner: models × cells × n samples, bounded concurrency per model, one store transaction per
finished sample, a progress bar with live cost, a budget, and a clean stop on Ctrl-C.

A run is resumable: its samples have deterministic ids, and those already done are skipped."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console

from . import __version__
from .models import ChatModel, ModelError, metered
from .progress import make_progress
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
    limits = {name: asyncio.Semaphore(m.max_concurrency) for name, m in models.items()}
    stop = asyncio.Event()

    bar = make_progress(console, enabled=progress)  # live bars on a terminal, plain lines in logs
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

    tasks = [asyncio.ensure_future(one(s)) for s in todo]
    with bar:
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            outcome.stopped = "interrupted"
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    status = "complete" if outcome.complete else ("stopped" if outcome.stopped else "incomplete")
    store.update_run(run_id, status=status)
    return outcome


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
