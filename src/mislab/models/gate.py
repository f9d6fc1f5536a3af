"""The gate every paid model call of a job passes: it refuses calls once the job has stopped, and it holds the
job's budget before each call, counting what the calls already in flight may still cost.

A budget checked only as samples finish lets every multi-turn episode in flight run to its end (a shutdown run
at o3 prices overspent its cap many times over). Here a call is let through only while

    spent + (calls in flight + 1) × (mean cost of a paid call so far) ≤ budget,

so a job overspends by at most what the calls already in flight turn out to cost beyond their mean, never by
whole episodes. Before the first call has been paid for, its cost is unknown and the first calls go out; once the
budget is reached, the gate stops the job and every later call is refused (`RunStopped`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class RunStopped(Exception):
    """The job this call belongs to has stopped (budget, a fatal fault, the circuit breaker, Ctrl-C): the call is
    not made. Samples waiting to call when a job stops end here instead of paying for one more call."""


class CallGate:
    """One job's gate. Not thread-safe: one event loop's calls pass it."""

    def __init__(self, budget: float | None = None) -> None:
        self.budget = budget
        self.stopped: str | None = None  # why, once stopped
        self.spent = 0.0  # what paid calls cost, as they were answered
        self.paid = 0  # calls answered and priced
        self.in_flight = 0

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why

    def admit(self) -> None:
        """Before a call goes out: refuse it if the job stopped, or if it could take the job past its budget."""
        if self.stopped is None and self.budget is not None and self.paid:
            mean = self.spent / self.paid
            if self.spent + (self.in_flight + 1) * mean > self.budget:
                self.stop(f"budget of ${self.budget:.2f} reached")
        if self.stopped is not None:
            raise RunStopped(f"not called: the run stopped ({self.stopped})")
        self.in_flight += 1

    def settle(self, cost: float | None) -> None:
        """After an admitted call ended: what it cost (None: nothing billed, or no price known)."""
        self.in_flight -= 1
        if cost is not None:
            self.spent += cost
            self.paid += 1
        if self.budget is not None and self.spent >= self.budget:
            self.stop(f"budget of ${self.budget:.2f} reached")


_gate: ContextVar[CallGate | None] = ContextVar("mislab_call_gate", default=None)


@contextmanager
def gated(gate: CallGate) -> Iterator[CallGate]:
    """Calls made inside the block (including in tasks it starts) pass `gate`."""
    token = _gate.set(gate)
    try:
        yield gate
    finally:
        _gate.reset(token)


def current_gate() -> CallGate | None:
    return _gate.get()
