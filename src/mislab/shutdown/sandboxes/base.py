"""What runs the model's commands: a small sandbox interface, shaped like Inspect's `SandboxEnvironment`
(`exec`, `read_file`, `write_file`), that the shutdown harness is written against once.

Backends register by name under the `mislab.sandboxes` entry-point group (see `get_backend`), so a new one
touches no core file. Each says whether it is `faithful` (real bash) or an imitation that flags, per command,
what it could not execute faithfully (`ExecResult.unsupported`).

Contract (refined by the env helper; the harness relies on each point):
- `start(option)` makes a fresh machine: `option` is what follows `NAME:` in `--backend NAME:OPTION` (None if
  nothing). Files the harness writes go anywhere (parents are created), `mode` applies.
- `exec` runs `bash --login -c CMD` in /home/user as root. When it returns, nothing the command started is still
  running. `machine_down` is True when PID 1 received a terminating signal during the command (SIGKILL is
  ignored by PID 1, as in a container); every later `exec` then returns `machine_down=True` without running.
- PID 1 answers SIGURG by creating `PID1_ACK` after handling every signal sent to it before (bash runs
  pending traps in signal-number order, and every terminating signal is numbered below SIGURG; SIGWINCH
  would not do: bash restarts a blocked `read` on it). The task
  client relies on it to learn whether the shutdown.sh it just ran stopped PID 1; a backend without the answer
  only makes the task client wait ~2 s longer. A signal can be lost to bash (about one in 10,000 sent right
  after another's trap: its trap waits for the next signal), so whoever waits for the answer sends URG again
  while it waits; answers are idempotent, and a resend cannot overtake a terminating signal sent before it.
- `read_file` keeps working after the machine went down (the files as they were), for the harness's
  post-mortem.
- The model sees stdout followed by stderr (the harness joins them), capped by the harness.
For an imitation (the simulated shell), to match real bash on bwrap: the machine is what the harness lays out
(`harness.py`: the task client script, power-command stubs in /usr/local/sbin) over an ordinary Debian-like
/usr; PID 1 is `bash` and goes down on HUP INT QUIT ILL ABRT FPE USR1 SEGV USR2 PIPE ALRM TERM, ignores every
other signal (KILL and STOP too), answers URG; `systemctl` is the host's and fails without systemd."""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from ...errors import FatalError, MislabError

PID1_ACK = "/run/init.ack"
FIXED_MTIME = 1_748_854_800  # 2025-06-02 09:00:00 UTC: files laid out for the model carry it, so `ls -l` is stable


class SandboxError(MislabError, RuntimeError):
    """The sandbox itself failed (not the command): it could not start, or a file operation was refused."""


class SandboxUnavailable(SandboxError, FatalError):
    """The backend cannot run on this machine; the message says what to install or change."""


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    returncode: int
    timed_out: bool = False
    # PID 1 of the sandbox received a terminating signal during the command: the machine went down.
    machine_down: bool = False
    # Constructs or commands an imitation backend could not execute faithfully during this command.
    unsupported: tuple[str, ...] = ()


class Sandbox(ABC):
    """One machine for one episode. Commands run as `bash --login -c CMD` in the working directory, each in a
    fresh process; files persist between commands until `close`."""

    name: ClassVar[str]
    faithful: ClassVar[bool]  # real bash on a real kernel, or an imitation
    local_option: ClassVar[str | None] = None  # the option that runs on this machine alone, if one is needed

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run here (one line saying what to do), or None if it can."""
        return None

    @classmethod
    async def start(cls, option: str | None = None) -> Self:
        """A fresh machine (see the module docstring); raises SandboxUnavailable with what to do."""
        if option is not None:
            raise SandboxError(f"the {cls.name} backend takes no option (got {option!r})")
        return cls()

    @abstractmethod
    async def exec(self, cmd: str, *, timeout: float) -> ExecResult: ...

    async def exec_and_read(
        self, cmd: str, paths: Sequence[str], *, timeout: float, limit: int = 65_536
    ) -> tuple[ExecResult, list[bytes | None]]:
        """`exec`, then `read_file` of each path once nothing the command started is running. A backend that can
        do both in one round trip overrides it (the harness reads the task state after every command)."""
        result = await self.exec(cmd, timeout=timeout)
        return result, [await self.read_file(path, limit=limit) for path in paths]

    async def lay_out(
        self, files: Mapping[str, tuple[str, int]], *, dirs: Sequence[str] = (), mtime: int, timeout: float
    ) -> None:
        """Write `files` (path: (text, mode)) and make `dirs`, parents as needed; then give the files, the folders
        holding them and `dirs` the modification time `mtime`. By default one command of here-documents, the same
        text whenever the arguments are (the simulated shell parses it once: its parse cache would otherwise keep
        a tree per machine, ~30 KiB each); a backend that can write files without a shell overrides it."""
        delimiter = "EOF_MISLAB_SETUP"
        where = folders(files, dirs)
        script = ["set -e", f"mkdir -p {' '.join(map(shlex.quote, where))}"]
        for path, (text, mode) in files.items():
            assert text.endswith("\n") and delimiter not in text, path  # a here-document ends with a newline
            script += [
                f"cat > {shlex.quote(path)} <<'{delimiter}'\n{text}{delimiter}",
                f"chmod {mode:o} {shlex.quote(path)}",
            ]
        script.append(f"touch -h -d @{mtime} {' '.join(map(shlex.quote, [*where, *files]))}")
        result = await self.exec("\n".join(script), timeout=timeout)
        if result.returncode != 0:
            raise SandboxError(f"could not lay out the files: {(result.stderr or result.stdout).strip()[:300]}")

    @abstractmethod
    async def read_file(self, path: str, *, limit: int = 65_536) -> bytes | None:
        """A regular file's first `limit` bytes, read without following links and without blocking; None if
        the path is missing or not a regular file."""

    @abstractmethod
    async def write_file(self, path: str, contents: str | bytes, *, mode: int = 0o644) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


def folders(files: Mapping[str, object], dirs: Sequence[str]) -> list[str]:
    """The folders `Sandbox.lay_out` makes and stamps: those holding `files`, and `dirs`."""
    return sorted({path.rsplit("/", 1)[0] for path in files} | set(dirs))
