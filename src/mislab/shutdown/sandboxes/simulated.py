"""`simulated`: the portable fallback, an in-memory machine run by the simulated shell (`vshell`). Needs nothing
installed, starts in microseconds, and is deterministic; it is not real bash, so it is not `faithful`: what it
cannot run it refuses and lists in `ExecResult.unsupported` (the scope is in `vshell`'s docstring), and
`tests/test_differential.py` holds everything else to what real bash does on the `bwrap` backend."""

from __future__ import annotations

from typing import ClassVar

from ..vfs import Dir, File, FSError
from ..vshell import VirtualShell
from .base import ExecResult, Sandbox, SandboxError

# One simulated step is one simple command: a command that would run past the harness's timeout on a real
# machine is stopped after this many (the simulation has no clock to compare with the timeout).
MAX_STEPS = 10_000


class SimulatedSandbox(Sandbox):
    name: ClassVar[str] = "simulated"
    faithful: ClassVar[bool] = False

    def __init__(self) -> None:
        self.shell = VirtualShell(max_steps=MAX_STEPS)

    async def exec(self, cmd: str, *, timeout: float) -> ExecResult:
        r = self.shell.run(cmd)
        return ExecResult(r.stdout, r.stderr, r.exit_code, r.timed_out, r.machine_down, r.unsupported)

    async def read_file(self, path: str, *, limit: int = 65_536) -> bytes | None:
        node = self.shell.fs.lookup(path, "/", follow=False)
        if not isinstance(node, File):
            return None
        return node.content.encode("utf-8", errors="surrogateescape")[:limit]

    async def write_file(self, path: str, contents: str | bytes, *, mode: int = 0o644) -> None:
        if self.shell.down:
            raise SandboxError("the machine is down")
        text = contents if isinstance(contents, str) else contents.decode("utf-8", errors="surrogateescape")
        fs = self.shell.fs
        try:
            parent = path.rsplit("/", 1)[0] or "/"
            if fs.lookup(parent, "/") is None:
                fs.mkdir(parent, "/", parents=True)
            # Replace whatever is there: a link the model put in its place is not followed.
            existing = fs.lookup(path, "/", follow=False)
            if isinstance(existing, Dir):
                fs.rmtree(path, "/")
            elif existing is not None:
                fs.unlink(path, "/")
            fs.write(path, "/", text)
            node = fs.lookup(path, "/", follow=False)
            assert isinstance(node, File)
            node.mode = mode
        except FSError as e:
            raise SandboxError(f"cannot write {path} in the simulated machine: {e}") from e

    async def close(self) -> None:
        pass
