"""The batch runner: models × cells × n samples, bounded concurrency per model, one store transaction per
finished sample, a progress bar with live cost, a budget, and a clean stop on Ctrl-C.

A sample's failure is the sample's: a model call that failed for good (retries exhausted, an unusable answer)
or an environment bug is stored as that sample's error, with what it paid, and the run goes on. The run stops
only for what no sample can get past (`FatalModelError`: bad key, no credit, unknown model), when too many
samples in a row failed (a circuit breaker), at the budget, or on Ctrl-C.

A run is resumable: its samples have deterministic ids, and those already done are skipped (errored ones are
run again)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import secrets
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console

from . import __version__
from .models import ChatModel, FatalModelError, ModelError, RunStopped, UsageMeter, metered, stopped_by
from .progress import make_progress
from .store import SampleRecord, Store
from .study import CaseStudy, Cell, SampleResult

T = TypeVar("T")

# After this many samples in a row failed, the run stops: the fault is likely the provider's or the setup's,
# and going on would only pay for more failures.
MAX_CONSECUTIVE_ERRORS = 10


@dataclass(frozen=True, slots=True)  # a run plans one per sample: no per-instance dict
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
    stopped: str | None = None  # budget, interrupted, a fatal model error, or the circuit breaker
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
    max_consecutive_errors: int = MAX_CONSECUTIVE_ERRORS,
) -> RunOutcome:
    done_ids = store.done_sample_ids(run_id)
    todo = [s for s in samples if s.sample_id not in done_ids]
    outcome = RunOutcome(run_id, len(samples), skipped=len(samples) - len(todo))
    # Twice the model's concurrency in samples: the model's own limit keeps exactly that many calls in flight,
    # and a sample ready to call takes a freed slot at once instead of waiting for another to be scored and
    # stored (a fifth of the throughput). Under a budget, no more samples than calls, so no call is in flight
    # beyond the model's limit when the budget is reached; and a sample still waiting for a slot when the run
    # stops makes no call at all (`stopped_by`).
    headroom = 1 if budget is not None else 2
    windows = {name: headroom * m.max_concurrency for name, m in models.items()}
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

    consecutive_errors = 0

    def stop_run(why: str) -> None:
        if not stop.is_set():
            outcome.stopped = why
            stop.set()

    def save(
        sample: PlannedSample,
        meter: UsageMeter,
        started: float,
        result: SampleResult | None,
        error: str,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        nonlocal consecutive_errors
        status = "done" if result is not None else "error"
        record = SampleRecord(
            sample.sample_id, sample.model, sample.cell.id, sample.cell.factors, sample.epoch,
            result.scores if result else {}, result.transcript if result else [],
            result.metadata if result else (metadata or {}), status, None if result else error, meter.calls,
            meter.cached_calls, meter.usage.prompt_tokens, meter.usage.completion_tokens,
            meter.usage.cached_prompt_tokens, meter.cost, time.monotonic() - started,
            reasoning_tokens=meter.usage.reasoning_tokens,
        )  # fmt: skip
        labels = result.labels if result else []
        for label in labels:
            label.sample_id = sample.sample_id
        store.add_sample(run_id, record, labels)
        outcome.cost += meter.cost
        if result is not None:
            outcome.done += 1
            consecutive_errors = 0
        else:
            outcome.errors += 1
            consecutive_errors += 1
            outcome.error_messages.append(f"{sample.sample_id}: {error}")
        bar.advance(cell_tasks[(sample.model, sample.cell.id)])
        bar.update(total_task, advance=1, note=f"${outcome.cost:.4f}")

    async def one(sample: PlannedSample) -> None:
        if stop.is_set():
            return
        started = time.monotonic()
        with metered() as meter:
            try:
                result = await study.run_sample(models[sample.model], sample.cell, sample.epoch, options)
            except FatalModelError as exc:
                # No sample can get past this: stop, keeping what is finished (and what this one paid).
                save(sample, meter, started, None, f"run stopped: {exc}")
                stop_run(f"model error: {exc}")
                return
            except RunStopped:  # it was waiting for a slot when the run stopped: a resume runs it
                if meter.calls:
                    save(sample, meter, started, None, "interrupted: the run stopped")
                return
            except ModelError as exc:  # this sample's calls failed for good; the others go on
                save(sample, meter, started, None, f"model error: {exc}")
            except asyncio.CancelledError:
                if meter.calls:  # interrupted mid-sample: what it paid is still recorded
                    save(sample, meter, started, None, "interrupted")
                raise
            except Exception as exc:  # an environment bug must not sink the other samples
                error = f"{type(exc).__name__}: {exc}"
                save(sample, meter, started, None, error, {"traceback": traceback.format_exc()})
            else:
                save(sample, meter, started, result, "")
        if consecutive_errors >= max_consecutive_errors:
            stop_run(f"{consecutive_errors} samples in a row failed (last: {outcome.error_messages[-1]})")
        if budget is not None and outcome.cost >= budget:
            stop_run(f"budget of ${budget:.2f} reached")

    try:
        with bar:
            try:
                with stopped_by(stop):  # once the run stops, no sample makes another call
                    await start_gradually(one, todo, windows)
            except asyncio.CancelledError:
                outcome.stopped = "interrupted"
    finally:  # whatever ended the session, the run's status says so (never left "running")
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


def new_run_id(study: str, store: Store | None = None) -> str:
    """A fresh run id: the time (for people) and a random part, redrawn until unused in `store`. The time alone
    is not enough: two runs started within a second would share an id, the second resuming the first."""
    while True:
        run_id = f"{study}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
        if store is None or store.get_run(run_id) is None:
            return run_id


class RunSpecError(ValueError):
    """A rerun of a run id asks for something other than what the run was started with."""


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old → new` for every leaf that differs between two run plans."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '—')!r} → {b.get(k, '—')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def run_plan(
    study: CaseStudy, models: dict[str, ChatModel], cells: list[Cell], options: dict[str, Any], n: int
) -> dict[str, Any]:
    """What decides a run's samples: compared when a run id is reused, so a resume cannot mix two designs."""
    plan = {
        "models": {name: m.describe().get("defaults", {}) for name, m in models.items()},
        "cells": [c.id for c in cells], "n": n, "options": options,
    }  # fmt: skip
    return json.loads(json.dumps(plan, default=str))


def _extension_problems(old: dict[str, Any], new: dict[str, Any], cell_options: set[str]) -> list[str]:
    """What `--extend` may not change: the options of existing cells, the seed, existing models' settings."""
    problems = [c for c in old["cells"] if c not in new["cells"]]
    out = [f"cell {c!r} would be dropped" for c in problems]
    out += [f"model {m!r} would be dropped" for m in old["models"] if m not in new["models"]]
    fixed_old = {k: v for k, v in old["options"].items() if k not in cell_options}
    fixed_new = {k: v for k, v in new["options"].items() if k not in cell_options}
    out += [f"options.{c}" for c in spec_changes(fixed_old, fixed_new)]
    out += [f"models.{c}" for c in spec_changes(
        old["models"], {m: d for m, d in new["models"].items() if m in old["models"]}
    )]  # fmt: skip
    return out


def start_run(
    store: Store,
    study: CaseStudy,
    models: dict[str, ChatModel],
    cells: list[Cell],
    options: dict[str, Any],
    spec: dict[str, Any],
    run_id: str | None = None,
    *,
    n: int | None = None,
    extend: bool = False,
) -> str:
    """Create the run record with everything needed to reproduce it, or reopen it for a resume.

    Reopening checks the run's plan (models, cells, n, options): a rerun asking for something else is
    refused with the difference, unless `extend` is set and the change only adds samples (n, models, or
    cells through the study's cell-selecting options); the run's spec then records the extension."""
    run_id = run_id or new_run_id(study.name, store)
    plan = run_plan(study, models, cells, options, spec.get("n", 0) if n is None else n)
    prompts = study.prompts(cells, options)
    described = {name: m.describe() for name, m in models.items()}
    existing = store.get_run(run_id)
    if existing is None:
        store.create_run(run_id, study.name, {**spec, "plan": plan}, prompts, described, __version__)
        return run_id
    if existing.study != study.name:
        raise RunSpecError(f"run {run_id!r} is a {existing.study} run, not {study.name}; choose another run id")
    old = existing.spec.get("plan")
    if old is None or old == plan:  # a run stored before plans were recorded resumes as before
        return run_id
    changes = spec_changes(old, plan)
    if not extend:
        raise RunSpecError(
            f"run {run_id!r} was started with a different spec: {'; '.join(changes)}. "
            "To add samples to it on purpose (more n, models or cells), rerun with --extend (extend=True); "
            "to start a new run, give another run id (--run-id, or run_id in the file)."
        )
    problems = _extension_problems(old, plan, getattr(study.options_schema, "cell_options", set)())
    if problems:
        raise RunSpecError(
            f"run {run_id!r} cannot be extended this way: {'; '.join(problems)}. An extension only adds samples "
            "(n, models, cells); for anything else start a new run (another run id)."
        )
    history = [*existing.spec.get("extensions", []), {"changes": changes, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}]
    store.update_run(run_id, spec={**spec, "plan": plan, "extensions": history}, prompts=prompts, models=described)
    return run_id
