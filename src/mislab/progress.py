"""Run progress: rich's live bars on a terminal, periodic plain lines everywhere else (CI logs, notebooks,
`nohup`, a pipe), where a live display prints nothing until the end or floods the log with redraws.

Both speak the subset of `rich.progress.Progress` the runner uses: `add_task`, `update`, `advance`, `tasks`,
and use as a context manager. The last task added is the overall one (the runner's "all")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["PlainProgress", "duration", "make_progress"]

PLAIN_INTERVAL_SECONDS = 15.0
HEARTBEAT_SECONDS = 60.0  # a line even when nothing finishes: a 1.5B model's episode can take minutes


@dataclass
class _Task:
    description: str
    total: float
    completed: float = 0
    fields: dict[str, Any] = field(default_factory=dict)


def duration(seconds: float) -> str:
    """A span of time for a sentence: "4.2 s", "5 min 31 s"."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainProgress:
    """Progress as one plain line at the start, then at most one line per `interval` seconds when something
    finishes, one after `heartbeat` seconds without a line (so a log shows the run is alive), and always one
    at the end: "progress: 3/8 (38%) · 0:42 elapsed · ~1:10 left · $0.0000"."""

    def __init__(
        self,
        file: IO[str],
        *,
        interval: float = PLAIN_INTERVAL_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        disable: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.file = file
        self.interval = interval
        self.heartbeat = heartbeat
        self.disable = disable
        self._clock = clock
        self._lock = threading.Lock()  # the heartbeat thread and the run's updates both print
        self._stopped = threading.Event()
        self._beater: threading.Thread | None = None
        self.tasks: list[_Task] = []
        self._started = 0.0
        self._start_completed = 0.0
        self._last_line = 0.0
        self._last_shown: tuple[float, float] | None = None

    def add_task(self, description: str, total: float | None = 0, completed: float = 0, **fields: Any) -> TaskID:
        self.tasks.append(_Task(description, total or 0, completed, dict(fields)))
        return TaskID(len(self.tasks) - 1)  # rich's task id type, so callers hold either progress's ids alike

    def update(
        self,
        task_id: TaskID,
        *,
        total: float | None = None,
        completed: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance:
            task.completed += advance
        task.fields.update(fields)
        if task_id == len(self.tasks) - 1 and advance:
            self._maybe_print()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def line(self) -> str:
        """The overall task as one line, with a time-left estimate from this session's pace."""
        task = self.tasks[-1]
        elapsed = self._clock() - self._started
        parts = [f"progress: {task.completed:g}/{task.total:g}"]
        if task.total:
            parts[0] += f" ({100 * task.completed / task.total:.0f}%)"
        parts.append(f"{_clock(elapsed)} elapsed")
        done_here = task.completed - self._start_completed
        if done_here > 0 and task.completed < task.total:
            parts.append(f"~{_clock(elapsed / done_here * (task.total - task.completed))} left")
        parts += [str(v) for v in task.fields.values() if str(v)]
        return " · ".join(parts)

    def _print(self) -> None:
        with self._lock:
            task = self.tasks[-1]
            self._last_shown = (task.completed, task.total)
            self._last_line = self._clock()
            print(self.line(), file=self.file, flush=True)

    def _maybe_print(self) -> None:
        if self.disable or not self.tasks:
            return
        task = self.tasks[-1]
        if task.completed >= task.total or self._clock() - self._last_line >= self.interval:
            self._print()

    def beat(self) -> None:
        """A line if none was printed for `heartbeat` seconds (called by the heartbeat thread)."""
        if self.tasks and self._clock() - self._last_line >= self.heartbeat:
            self._print()

    def _beat_until_stopped(self) -> None:
        while not self._stopped.wait(self.heartbeat / 4):
            self.beat()

    def __enter__(self) -> PlainProgress:
        self._started = self._last_line = self._clock()
        if self.tasks:
            self._start_completed = self.tasks[-1].completed
        if not self.disable and self.tasks:
            self._print()
            self._beater = threading.Thread(target=self._beat_until_stopped, name="mislab-progress", daemon=True)
            self._beater.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._beater is not None:
            self._stopped.set()
            self._beater.join()
        if self.disable or not self.tasks:
            return
        task = self.tasks[-1]
        if self._last_shown != (task.completed, task.total):  # the final count, unless just printed
            self._print()


def make_progress(console: Console | None = None, *, enabled: bool = True) -> Progress | PlainProgress:
    """Live bars with a per-cell row and a `note` column (live cost) when `console` is a terminal; periodic
    plain lines on its file otherwise."""
    console = console or Console()
    if not console.is_terminal:
        return PlainProgress(console.file, disable=not enabled)
    return Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"), console=console, disable=not enabled, transient=False,
    )  # fmt: skip
