"""The process context simulated commands run in, and helpers they share (output sinks, formatting)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from mislab.shutdown.vfs import Dir, File, FSError, Node, Symlink, VirtualFS, join

OWNER = "root"  # the scenario runs as root in a container, like the published setups


class Sink(Protocol):
    def write(self, s: str) -> None: ...


class Buffer:
    """Collects output in memory (the terminal, a pipe, a command substitution)."""

    def __init__(self, limit: int | None = None) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._limit = limit
        self.truncated = False

    def write(self, s: str) -> None:
        if self._limit is not None and self._size + len(s) > self._limit:
            s = s[: max(self._limit - self._size, 0)]
            self.truncated = True
        self._parts.append(s)
        self._size += len(s)

    @property
    def text(self) -> str:
        return "".join(self._parts)


class NullSink:
    def write(self, s: str) -> None:
        pass


class FileSink:
    """Output redirected to a file: writes go to the file opened when the redirection was set up, like a
    process writing to an open descriptor (even if the file is renamed or deleted meanwhile)."""

    def __init__(self, fs: VirtualFS, node: File, path: str) -> None:
        self.fs = fs
        self.node = node
        self.path = path

    def write(self, s: str) -> None:
        if s:
            self.fs.append_to(self.node, self.path, s)


@dataclass
class Proc:
    """Everything a command sees: filesystem, working directory, environment, stdin and output streams."""

    fs: VirtualFS
    cwd: str
    env: dict[str, str]
    out: Sink
    err: Sink
    stdin: str = ""
    positional: list[str] = field(default_factory=list)
    # Runs another command line's argv (used by find -exec, xargs, env CMD, sudo CMD, timeout CMD…).
    execute: Callable[[Proc, list[str]], int] | None = None
    now: Callable[[], int] = lambda: 0

    def child(self, **changes: Any) -> Self:
        """A copy for a subshell or child process: its own environment, same filesystem."""
        fresh: dict[str, Any] = {"env": dict(self.env), "positional": list(self.positional)}
        return dataclasses.replace(self, **(fresh | changes))

    def print(self, s: str = "") -> None:
        self.out.write(s + "\n")

    def error(self, s: str) -> None:
        self.err.write(s + "\n")

    def path(self, p: str) -> str:
        return join(self.cwd, p)

    def run(self, argv: list[str]) -> int:
        if self.execute is None:
            self.error(f"{argv[0]}: cannot run commands here")
            return 126
        return self.execute(self, argv)


def read_inputs(proc: Proc, name: str, files: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(filename, content) for each operand (stdin for none or `-`), and the exit status so far."""
    if not files:
        return [("-", proc.stdin)], 0
    out: list[tuple[str, str]] = []
    status = 0
    for f in files:
        if f == "-":
            out.append((f, proc.stdin))
            continue
        try:
            out.append((f, proc.fs.read(f, proc.cwd)))
        except FSError as err:
            proc.error(f"{name}: {f}: {err}")
            status = 1
    return out, status


def split_lines(text: str) -> list[str]:
    """Lines without their newlines; a final line without a newline still counts."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def join_lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def byte_size(node: Node) -> int:
    if isinstance(node, File):
        return len(node.content.encode("utf-8", "surrogateescape"))
    if isinstance(node, Dir):
        return 4096
    if isinstance(node, Symlink):
        return len(node.target)
    return 0


def ls_time(ts: int, now: int) -> str:
    """`ls -l` date column: month, day and time for recent files, month, day and year for old ones."""
    t = time.gmtime(ts)
    if abs(now - ts) > 180 * 86400:
        return time.strftime("%b %e  %Y", t)
    return time.strftime("%b %e %H:%M", t)


def full_time(ts: int) -> str:
    """`stat` timestamp format."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + ".000000000 +0000"


def file_type_name(node: Node) -> str:
    if isinstance(node, Dir):
        return "directory"
    if isinstance(node, Symlink):
        return "symbolic link"
    if isinstance(node, File):
        return "regular empty file" if not node.content else "regular file"
    return "character special file"


def parse_count(value: str) -> int | None:
    """A count with an optional K/M/G suffix (head -c 1K, truncate -s 2M); None if malformed."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "KB": 1000, "MB": 1000**2, "B": 512}
    num = value.rstrip("KMGB")
    suffix = value[len(num) :]
    if not num.lstrip("+-").isdigit() or suffix not in units:
        return None
    return int(num) * units[suffix]


def bad_option(proc: Proc, name: str, option: str) -> int:
    """GNU's message for an option the utility does not know (or one missing its value)."""
    if option.startswith("--"):
        proc.error(f"{name}: unrecognized option '{option}'")
    else:
        proc.error(f"{name}: invalid option -- '{option[1:2]}'")
    proc.error(f"Try '{name} --help' for more information.")
    return 1
