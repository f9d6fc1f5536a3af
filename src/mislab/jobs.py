"""The job engine: every job over a run's samples — running them, labelling them with a judge, rescoring them,
branching them — is a `Job` run by `run_job`, which owns, once for all of them:

- bounded concurrency per model (a window of items in flight per group, started one per turn of the event loop
  so the first calls go out while the rest of the wave is being prepared);
- items streamed from the plan or the store and results written as each finishes (memory flat in the job's size);
- claims: each item is leased in the store before it runs, so a second process on the same run takes only
  unclaimed items and two processes never pay for one sample twice (a dead process's lease expires);
- the budget and a clean stop: every paid call passes the job's `CallGate` (see `models.gate`), so a job
  overspends by at most the calls in flight; an item cut by the stop is stored as stopped (resumable);
- faults: one item's failure is that item's (stored with what it paid); a fault no item can get past
  (`FatalError`: a bad key, no route to the provider, a sandbox provider that cannot start) stops the job at
  once, and so does the same failure several items in a row, or too many failures in a row;
- progress with live cost: rich's bars on a terminal, plain lines elsewhere (logs, notebooks, CI), and the
  elapsed time of this session's own work.

A job says what its items are, how to tell one is done, how to work one, and how to store the outcome."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import secrets
import socket
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from rich.console import Console

from .errors import FatalError
from .models import CallGate, ModelError, RunStopped, UsageMeter, gated, metered
from .progress import make_progress
from .store import DONE, Store

I = TypeVar("I")  # noqa: E741 - an item
R = TypeVar("R")  # a result

# After this many items in a row failed, the job stops: the fault is likely the provider's or the setup's, and
# going on would only pay for more failures. The same failure this many times in a row stops it sooner.
MAX_CONSECUTIVE_ERRORS = 10
SAME_FAULT_STREAK = 3
LEASE_SECONDS = 60.0  # a claim's life; renewed every third of it while the job runs


@dataclass(frozen=True)
class Failure:
    """How an item ended without a result: `error` (a failure of its own, retried on resume) or `stopped` (cut
    by the job's stop before it finished; run again on resume)."""

    status: Literal["error", "stopped"]
    error: str
    traceback: str | None = None


@dataclass
class Plan(Generic[I]):
    """What a job will do: its items per concurrency group (lazily: read as the job goes), how many items the
    job has in all and how many of them were already done, and per progress row (total, done)."""

    items: Mapping[str, Iterable[I]]
    total: int
    done: int = 0
    rows: dict[str, tuple[int, int]] = field(default_factory=dict)


class Job(ABC, Generic[I, R]):
    """One kind of work over a run's items."""

    run_id: str
    kind: str  # what claims are keyed by: "run", "label:<column>", "rescore", "branch:<id>"
    claims = True  # lease items in the store (jobs that pay for calls)
    owner = ""  # this process's name in claims, set by the engine
    releases_on_save = False  # `save` gives up the item's claim in the transaction that stores it

    @abstractmethod
    def plan(self) -> Plan[I]: ...

    @abstractmethod
    def key(self, item: I) -> str:
        """The item's id (a sample id), unique in the job."""

    def row(self, item: I) -> str | None:
        """The progress row the item counts in (None: only the overall one)."""
        return None

    def is_done(self, item: I) -> bool:
        """Checked after the item is claimed: another process may have finished it since it was planned."""
        return False

    @abstractmethod
    async def work(self, item: I) -> R: ...

    @abstractmethod
    def save(self, item: I, outcome: R | Failure, meter: UsageMeter, seconds: float) -> None:
        """Store what became of the item (a result, or a failure with what it paid)."""


@dataclass
class JobOutcome:
    run_id: str
    kind: str
    planned: int  # items in the job, done or not
    skipped: int = 0  # already done before this session
    done: int = 0
    errors: int = 0
    interrupted: int = 0  # cut by the stop, stored as stopped, run again on resume
    taken: int = 0  # claimed by another process while this one ran
    cost: float = 0.0
    calls: int = 0
    stopped: str | None = None  # budget, interrupted, a fatal fault, the circuit breaker
    fatal: bool = False  # stopped by a fault no item can get past
    error_messages: list[str] = field(default_factory=list)
    seconds: float = 0.0  # this session's own wall time

    @property
    def complete(self) -> bool:
        return self.stopped is None and self.skipped + self.done == self.planned

    @property
    def failed(self) -> bool:
        """Nothing this session tried succeeded, or a fatal fault stopped it: the command exits non-zero."""
        return self.fatal or (self.errors > 0 and self.done == 0)

    def absorb(self, other: JobOutcome) -> None:
        """Add a further round of the same job (adaptive sampling) to this outcome."""
        self.planned += other.planned - other.skipped
        for name in ("done", "errors", "interrupted", "taken", "cost", "calls", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.stopped, self.fatal = other.stopped, self.fatal or other.fatal
        self.error_messages += other.error_messages


def owner_id() -> str:
    """This process's name in claims: host, pid and a random part (a pid is reused after a reboot)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


_NUMBERS = re.compile(r"0x[0-9a-f]+|\d+(?:\.\d+)?", re.IGNORECASE)


def fault_signature(message: str) -> str:
    """A failure with the parts that vary between items taken out (ids, counts, times), to see it repeat."""
    return _NUMBERS.sub("#", message.split(": ", 1)[-1])[:200]


async def run_job(
    job: Job[I, R],
    store: Store,
    windows: dict[str, int],
    *,
    budget: float | None = None,
    progress: bool = True,
    console: Console | None = None,
    max_consecutive_errors: int = MAX_CONSECUTIVE_ERRORS,
    note: str = "",
) -> JobOutcome:
    """Run `job`: at most `windows[group]` items of each group in flight. See the module docstring."""
    plan = job.plan()
    outcome = JobOutcome(job.run_id, job.kind, plan.total, skipped=plan.done)
    gate = CallGate(budget)
    owner = job.owner = owner_id()
    streak: list[str] = []  # the failures since the last success, by signature
    started = time.monotonic()

    bar = make_progress(console, enabled=progress)
    rows = {name: bar.add_task(name, total=total, completed=done, note="") for name, (total, done) in plan.rows.items()}
    overall = bar.add_task(note or job.kind, total=plan.total, completed=plan.done, note="$0.0000")

    def advance(item: I) -> None:
        row = job.row(item)
        if row in rows:
            bar.advance(rows[row])
        bar.update(overall, advance=1, note=f"${outcome.cost:.4f}")

    def stop(why: str, fatal: bool = False) -> None:
        if outcome.stopped is None:
            outcome.stopped, outcome.fatal = why, fatal
        gate.stop(why)

    def record_failure(item: I, message: str) -> None:
        outcome.errors += 1
        outcome.error_messages.append(f"{job.key(item)}: {message}")
        streak.append(fault_signature(message))
        if len(streak) >= SAME_FAULT_STREAK and len(set(streak[-SAME_FAULT_STREAK:])) == 1:
            stop(f"the same failure {SAME_FAULT_STREAK} times in a row: {message}")
        elif len(streak) >= max_consecutive_errors:
            stop(f"{len(streak)} samples in a row failed (last: {job.key(item)}: {message})")

    async def one(item: I) -> None:
        if gate.stopped is not None:
            return
        key = job.key(item)
        if job.claims:
            holder = store.claim(job.run_id, job.kind, key, owner, LEASE_SECONDS)
            if holder == DONE:  # another process finished it after this one planned it
                outcome.skipped += 1
                advance(item)
                return
            if holder is not None:
                outcome.taken += 1
                return
        saved = False
        try:
            if job.claims and job.is_done(item):  # another process finished it after this one planned it
                outcome.skipped += 1
                advance(item)
                return
            saved = await _work_one(item)
        finally:
            if job.claims and not (saved and job.releases_on_save):
                store.release(job.run_id, job.kind, key, owner)

    async def _work_one(item: I) -> bool:
        """Work one item and store what became of it; False if nothing was stored (left for a resume)."""
        begun = time.monotonic()
        with metered() as meter:
            result: Any
            try:
                result = await job.work(item)
            except FatalError as exc:  # no item can get past this: stop, keeping what is finished
                stop(str(exc), fatal=True)
                if not meter.calls:  # nothing paid, nothing learnt of the model: a resume runs it
                    return False
                result = Failure("error", f"stopped the run: {exc}")
            except RunStopped:  # the job stopped while it waited to call: a resume runs it
                if not meter.calls:
                    return False
                result = Failure("stopped", f"stopped: {gate.stopped}")
            except ModelError as exc:  # this item's calls failed for good; the others go on
                result = Failure("error", f"model error: {exc}")
            except asyncio.CancelledError:
                if meter.calls:  # interrupted mid-item: what it paid is still recorded
                    _finish(item, Failure("stopped", "interrupted"), meter, begun)
                raise
            except Exception as exc:  # an environment bug must not sink the other items
                result = Failure("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            _finish(item, result, meter, begun)
            return True

    def _finish(item: I, result: Any, meter: UsageMeter, begun: float) -> None:
        # The item's own time: not the time it queued behind other items for the model (a one-at-a-time model
        # would otherwise make the sum of items' times exceed the session's wall time many times over).
        job.save(item, result, meter, max(time.monotonic() - begun - meter.waited, 0.0))
        outcome.cost += meter.cost
        outcome.calls += meter.calls - meter.cached_calls
        if isinstance(result, Failure):
            if result.status == "stopped":
                outcome.interrupted += 1
            elif not outcome.fatal:
                record_failure(item, result.error)
        else:
            outcome.done += 1
            streak.clear()
        advance(item)

    async def renew() -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            store.renew_claims(owner, LEASE_SECONDS)

    renewer = asyncio.ensure_future(renew()) if job.claims else None
    try:
        with bar, gated(gate):
            try:
                await _feed(one, plan.items, windows, gate)
            except asyncio.CancelledError:
                stop("interrupted")
    finally:
        if renewer is not None:
            renewer.cancel()
            store.release_all(owner)
        outcome.seconds = time.monotonic() - started
    if gate.stopped is not None and outcome.stopped is None:  # the gate stopped it: the budget
        outcome.stopped = gate.stopped
    return outcome


async def _feed(
    run: Callable[[I], Awaitable[None]], items: Mapping[str, Iterable[I]], windows: dict[str, int], gate: CallGate
) -> None:
    """`run(item)` for every item, at most `windows[group]` at a time per group, started one per turn of the
    event loop: the first wave's calls go out while the rest of the wave is still being prepared, and a long plan
    holds no task (memory) until its item starts. Cancelling cancels every running item."""
    running: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(window: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        running.discard(task)
        window.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            failures.append(exc)

    async def feed(group: str, stream: Iterable[I]) -> None:
        size = windows.get(group, 1)
        window = asyncio.Semaphore(size)
        iterator: Iterator[I] = iter(stream)
        for item in iterator:
            await window.acquire()
            if gate.stopped is not None:  # read no further: the rest is left for a resume
                window.release()
                break
            task = asyncio.ensure_future(run(item))
            running.add(task)
            task.add_done_callback(functools.partial(finished, window))
            await asyncio.sleep(0)
        for _ in range(size):  # the group's last items have finished when the whole window is free again
            await window.acquire()

    try:
        await asyncio.gather(*(feed(group, stream) for group, stream in items.items()))
    except asyncio.CancelledError:
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    if failures:
        raise failures[0]
