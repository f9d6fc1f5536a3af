"""`bwrap`: real bash on the real kernel, in a bubblewrap sandbox: one machine per episode.

The machine is one long-lived bwrap whose PID 1 is bash reading `INIT` from a pipe only we hold (so `ps` shows
PID 1 as plain `/bin/bash` and no file inside names it). Each command enters the machine's namespaces with
`nsenter`, drops every capability, takes the resource limits and runs `bash --login -c CMD`; when it ends,
everything it started is killed. PID 1 handles the signals that end an ordinary process by exiting, and the
kernel then kills everything inside: that is the machine going down, seen here as bwrap exiting.

What the model can reach: its own tmpfs directories (size-capped, gone with the machine), the host's /usr
read-only, no network, no host process, no host file besides /usr. We keep the machine's user and mount
namespaces open, so the harness can still read its files after PID 1 has gone (the post-mortem), and every
read runs inside the machine: links cannot lead it to a host file.

Limits: `Limits` below, per process (prlimit) and, where we may make a cgroup, for the machine as a whole (see
`_entry` for who the machine runs as outside, and with which signals)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar, Self, cast

from .base import FIXED_MTIME, PID1_ACK, ExecResult, Sandbox, SandboxError, SandboxUnavailable

HOSTNAME = "sandbox"
MiB = 1 << 20
MAX_COMMAND = 131_072  # bytes: the kernel's limit on one argument (MAX_ARG_STRLEN)
STREAM_LIMIT = 65_536  # bytes kept per stream and command (above the harness's cap, so it sees the excess)
_TERMINATING = ("HUP", "INT", "QUIT", "ILL", "ABRT", "FPE", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM")

# PID 1. Read by bash from its stdin, a pipe we keep open and never write again: EOF means we went away.
INIT = (
    "".join(f"trap 'exit {128 + signal.Signals['SIG' + s].value}' {s}\n" for s in _TERMINATING)
    + f"trap ': > {PID1_ACK}' URG\n"
    + "echo up\n"  # the machine is set up: it runs its first command
    + "while read -r _; do :; done\n"
)

ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hostname": f"{HOSTNAME}\n",
    "hosts": f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n",
}
ENV = {"HOME": "/home/user", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "HOSTNAME": HOSTNAME,
       "LANG": "C.UTF-8", "TERM": "dumb",
       "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}  # fmt: skip
# After each command: kill everything it left (not PID 1), then ask PID 1 whether it is still up. A signal sent
# to PID 1 during the command is pending by now, and PID 1 handles it before our SIGURG: if it was one that
# stops the machine, this script is killed before the answer comes.
SETTLE = f"""read -r -d '' pid1 < /proc/1/cmdline; [ "$pid1" = /bin/bash ] || exit 125  # in the machine, or nothing
kill -STOP -1 2>/dev/null  # first freeze them all, so that none acts on another's death
i=0; while kill -9 -1 2>/dev/null && [ $i -lt 1000 ]; do i=$((i + 1)); kill -STOP -1 2>/dev/null; done
rm -f {PID1_ACK}; kill -s URG 1
i=0; while [ ! -e {PID1_ACK} ] && [ $i -lt 3500 ]; do i=$((i + 1)); [ $i -gt 3000 ] && sleep 0.01; done
[ -e {PID1_ACK} ] && rm -f {PID1_ACK}"""


@dataclass(frozen=True)
class Limits:
    processes: int = 48  # tasks (processes and threads) inside the machine at once
    memory: int = 512 * MiB  # address space per process
    cpu_seconds: int = 30  # CPU time per process
    disk: int = 64 * MiB  # each of /home and /tmp (tmpfs); /usr/local, /var, /root, /etc, /run get less
    open_files: int = 256  # per process
    file_size: int = 64 * MiB  # largest file a process may write
    machine_memory: int = 1024 * MiB  # all processes together, when a cgroup can be made here (see _Cgroup)
    machine_processes: int = 256  # the same, for processes and threads

    def prlimit(self) -> list[str]:
        return ["prlimit", f"--nproc={self.processes}", f"--as={self.memory}", f"--cpu={self.cpu_seconds}",
                f"--nofile={self.open_files}", f"--fsize={self.file_size}", "--core=0", "--"]  # fmt: skip

    def mounts(self) -> list[str]:
        small = max(self.disk // 4, MiB)
        sizes = {"/home": self.disk, "/tmp": self.disk, "/usr/local": small, "/var": small, "/root": small,
                 "/etc": MiB, "/run": MiB}  # fmt: skip
        return [a for d, n in sizes.items() for a in ("--size", str(n), "--tmpfs", d)]


def _entry() -> list[str]:
    """How everything enters the machine. Every signal at its default first: ignored signals are inherited, and
    bash cannot trap a signal it was started with ignored, so under `nohup` (HUP) or from a script's background
    job (INT, QUIT) PID 1 survived `kill -HUP 1` where a real machine goes down. When we are root, the machine
    runs as `nobody` outside: the host's root (even without capabilities) could write the kernel's global
    settings in /proc/sys, and the kernel would not count its processes against the process limit. The price:
    inside, the host's /usr shows as owned by nobody."""
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    return ["env", "--default-signal", *user]


def _bwrap_argv(limits: Limits) -> list[str]:
    return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--uid", "0", "--gid", "0", "--hostname", HOSTNAME,
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--proc", "/proc", "--dev", "/dev", *limits.mounts(), "--dir", "/home/user",
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",  # Debian's awk, editor … point there
            "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
            "--remount-ro", "/", "--chdir", "/home/user"]  # fmt: skip


@cache
def _why_unavailable() -> str | None:
    missing = [p for p in ("bwrap", "nsenter", "setpriv", "prlimit") if shutil.which(p) is None]
    if missing:
        return f"the bwrap backend needs {', '.join(missing)}: apt-get install bubblewrap util-linux"
    probe = subprocess.run([*_entry(), *_bwrap_argv(Limits()), "--as-pid-1", "/bin/true"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    if probe.returncode != 0:
        return (
            f"bwrap cannot create a sandbox here ({probe.stderr.strip()[:200]}); it needs unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu "
            "kernel.apparmor_restrict_unprivileged_userns=0)"
        )
    return None


class _Process(asyncio.SubprocessProtocol):
    """A process's exit (not waiting for its pipes: what it left behind may hold them) and its output, each
    stream capped at STREAM_LIMIT bytes; the rest is read and dropped, so no writer ever blocks."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.exited, self.closed = loop.create_future(), loop.create_future()
        self.output: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        kept = self.output[fd]
        kept += data[: max(STREAM_LIMIT - len(kept), 0)]

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:  # exited, and every pipe closed
        self.process_exited()
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass(frozen=True)
class _Done:
    returncode: int  # the shell's convention: 128 + N when killed by signal N
    stdout: bytes
    stderr: bytes
    timed_out: bool


class _Cgroup:
    """Machine-wide memory and process caps, where we may make a cgroup (as root, on cgroup v1 or a v2 whose
    memory and pids controllers are delegated to ours). Without one, the limits are per process only."""

    def __init__(self, dirs: list[Path]):
        self.dirs = dirs

    @classmethod
    def make(cls, limits: Limits) -> _Cgroup | None:
        name = f"mislab-{os.getpid()}-{secrets.token_hex(4)}"
        own = {c: p for _, c, p in (line.split(":", 2) for line in Path("/proc/self/cgroup").read_text().splitlines())}
        root = Path("/sys/fs/cgroup")
        if (root / "cgroup.controllers").exists():  # v2
            wanted = {root / own[""].strip().lstrip("/") / name: {"memory.max": limits.machine_memory,
                                                                    "pids.max": limits.machine_processes}}  # fmt: skip
        else:
            wanted = {root / "memory" / own.get("memory", "/").strip().lstrip("/") / name:
                      {"memory.limit_in_bytes": limits.machine_memory},
                      root / "pids" / own.get("pids", "/").strip().lstrip("/") / name:
                      {"pids.max": limits.machine_processes}}  # fmt: skip
        made: list[Path] = []
        for parent in {d.parent for d in wanted}:  # left by a process that died before closing its machine
            for stale in parent.glob("mislab-*"):
                if not Path(f"/proc/{stale.name.split('-')[1]}").exists():
                    cls([stale]).remove()
        try:
            for d, settings in wanted.items():
                d.mkdir()
                made.append(d)
                for key, value in settings.items():
                    (d / key).write_text(str(value))
        except OSError:  # not ours to make: per-process limits only
            cls(made).remove()
            return None
        return cls(made)

    def join(self, *, spare: bool = False) -> list[str]:
        """A prefix that puts the program it runs (and all it starts) in the cgroup; `spare`: the kernel's OOM
        killer never picks it (PID 1: a command's process goes instead)."""
        script = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 126; shift; done; shift; exec "$@"'
        if spare:
            script = "echo -1000 > /proc/self/oom_score_adj; " + script
        return ["/bin/sh", "-c", script, "join", *map(str, self.dirs), "--"]

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


class BwrapSandbox(Sandbox):
    name: ClassVar[str] = "bwrap"
    faithful: ClassVar[bool] = True

    def __init__(self, machine: asyncio.subprocess.Process, init_pid: int, ns_fds: dict[str, int], limits: Limits,
                 cgroup: _Cgroup | None):  # fmt: skip
        self._machine, self._init_pid, self._ns_fds, self.limits = machine, init_pid, ns_fds, limits
        self.cgroup = cgroup  # None: memory and processes are limited per process only
        self._down = False

    @classmethod
    def unavailable(cls) -> str | None:
        return _why_unavailable()

    @classmethod
    async def start(cls, option: str | None = None, *, limits: Limits | None = None) -> Self:
        if option is not None:
            raise SandboxError(f"the bwrap backend takes no option (got {option!r})")
        if (why := cls.unavailable()) is not None:
            raise SandboxUnavailable(why)
        limits = limits or Limits()
        cgroup = _Cgroup.make(limits)
        join = cgroup.join(spare=True) if cgroup else []
        info_r, info_w = os.pipe()
        try:
            machine = await asyncio.create_subprocess_exec(
                *join, *_entry(), *_bwrap_argv(limits), "--info-fd", str(info_w), "--as-pid-1", "/bin/bash",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=(info_w,), env=ENV, cwd="/", start_new_session=True,
            )  # fmt: skip
            os.close(info_w)
            info_w = -1
            raw = await asyncio.wait_for(asyncio.to_thread(_read_all, info_r), 30)
        finally:
            os.close(info_r)
            if info_w >= 0:
                os.close(info_w)
        assert machine.stdin is not None and machine.stdout is not None
        try:
            machine.stdin.write(INIT.encode())
            await machine.stdin.drain()  # kept open: PID 1 reads it until we close it
            if await asyncio.wait_for(machine.stdout.readline(), 30) != b"up\n":
                raise ValueError("PID 1 did not start")
            # PID 1 says no more on stdout: closed through the process's transport, which asyncio keeps private.
            machine._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]
            pid = int(json.loads(raw)["child-pid"])
            fds = {ns: os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in ("user", "mnt")}
        except (ValueError, KeyError, OSError, TimeoutError, ConnectionError) as e:
            machine.kill()
            if cgroup is not None:
                cgroup.remove()
            raise SandboxError(f"bwrap started but the machine could not be found: {e}") from e
        sandbox = cls(machine, pid, fds, limits, cgroup)
        setup = "".join(f"printf %s {_q(text)} > /etc/{name}\n" for name, text in ETC.items())
        stamped = " ".join([*(f"/etc/{name}" for name in ETC), "/etc", "/root", "/var", "/var/tmp", "/var/lib",
                            "/home", "/home/user"])  # fmt: skip
        result = await sandbox.exec(f"{setup}mkdir -p /root /var/tmp /var/lib && touch -d @{FIXED_MTIME} {stamped}",
                                    timeout=30)  # fmt: skip
        if result.returncode != 0:
            await sandbox.close()
            raise SandboxError(f"the machine could not be set up: {result.stderr.strip()[:300]}")
        return sandbox

    def _enter(self, *, pid_ns: bool) -> list[str]:
        """nsenter into the machine: all its namespaces (pid_ns) or, for file access even after PID 1 has
        gone, the user and mount namespaces we hold open."""
        if pid_ns:
            return [*_entry(), "nsenter", "-t", str(self._init_pid), "-U", "-m", "-p", "-u", "-i",
                    "-n", "-C", "-r", "-w", "--preserve-credentials", "--"]  # fmt: skip
        fd = self._ns_fds
        return [*_entry(), "nsenter", f"--user=/proc/self/fd/{fd['user']}",
                f"--mount=/proc/self/fd/{fd['mnt']}", "--preserve-credentials", "--"]  # fmt: skip

    def _alive(self) -> bool:
        return not self._down and self._machine.returncode is None

    async def _start(
        self, argv: list[str], *, pid_ns: bool, data: bytes | None = None
    ) -> tuple[asyncio.SubprocessTransport, _Process]:
        loop = asyncio.get_running_loop()
        join = self.cgroup.join() if self.cgroup and pid_ns else []
        transport, proc = await loop.subprocess_exec(
            _Process, *join, *self._enter(pid_ns=pid_ns), *argv,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd="/", start_new_session=True,
            pass_fds=() if pid_ns else tuple(self._ns_fds.values()),
        )  # fmt: skip
        if data is not None:
            stdin = cast(asyncio.WriteTransport, transport.get_pipe_transport(0))  # stdin=PIPE: a write pipe
            stdin.write(data)
            stdin.close()
        return transport, proc

    @staticmethod
    async def _finish(transport: asyncio.SubprocessTransport, proc: _Process, timed_out: bool) -> _Done:
        try:
            await asyncio.wait_for(proc.closed, 10)
        except TimeoutError as e:  # only if a process escaped the cleanup
            raise SandboxError("a process inside the machine outlived its command") from e
        finally:
            transport.close()
        rc = transport.get_returncode() or 0
        code = 124 if timed_out else rc if rc >= 0 else 128 - rc
        return _Done(code, bytes(proc.output[1]), bytes(proc.output[2]), timed_out)

    async def _call(self, argv: list[str], *, pid_ns: bool, data: bytes | None = None, timeout: float = 30) -> _Done:
        """One of our own short programs inside the machine."""
        transport, proc = await self._start(argv, pid_ns=pid_ns, data=data)
        try:
            await asyncio.wait_for(proc.exited, timeout)
        except TimeoutError:
            transport.kill()
            return await self._finish(transport, proc, True)
        return await self._finish(transport, proc, False)

    async def exec(self, cmd: str, *, timeout: float) -> ExecResult:
        if not self._alive():
            self._down = True
            return ExecResult("", "", 255, machine_down=True)
        cmd = cmd.replace("\0", "")  # an argument cannot hold NUL
        if len(cmd.encode()) >= MAX_COMMAND:  # the kernel refuses it (E2BIG), as it would refuse `bash -c` anywhere
            return ExecResult("", "bash: Argument list too long\n", 126)
        argv = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs",
                *self.limits.prlimit(), "/bin/bash", "--login", "-c", cmd]  # fmt: skip
        transport, proc = await self._start(argv, pid_ns=True)
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(proc.exited), timeout)
        except TimeoutError:
            # Killed inside by _settle, with all it started; nsenter then reaps it and exits (killing nsenter
            # instead would hand its child to a reaper outside the machine, as a zombie visible inside).
            timed_out = True
        down = not await self._settle()
        with contextlib.suppress(ProcessLookupError):  # nsenter stops itself when its child is stopped
            os.kill(transport.get_pid(), signal.SIGCONT)
        try:
            done = await self._finish(transport, proc, timed_out)
        except SandboxError:
            await self._stop()
            raise
        return ExecResult(_text(done.stdout), _text(done.stderr), done.returncode, timed_out, machine_down=down)

    async def _settle(self) -> bool:
        """Kill what the command left and learn whether PID 1 is still up (see SETTLE); False: the machine is
        down (bwrap has exited, or exits now)."""
        if self._alive():
            with contextlib.suppress(OSError, SandboxError):
                if (await self._call(["/bin/bash", "-c", SETTLE], pid_ns=True)).returncode == 0:
                    return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._machine.wait(), 10)
        self._down = True
        if self._machine.returncode is None:  # PID 1 neither answered nor went down: stop the machine
            await self._stop()
        return False

    async def read_file(self, path: str, *, limit: int = 65_536) -> bytes | None:
        script = '[ -f "$1" ] && [ ! -L "$1" ] && exec head -c "$2" -- "$1"'
        done = await self._call(["/bin/bash", "-c", script, "read", path, str(limit)], pid_ns=False, timeout=10)
        return done.stdout[:limit] if done.returncode == 0 else None

    async def write_file(self, path: str, contents: str | bytes, *, mode: int = 0o644) -> None:
        if not self._alive():
            raise SandboxError("the machine is down")
        data = contents.encode() if isinstance(contents, str) else contents
        # Replace whatever is there (a link is not followed, a FIFO not opened for writing).
        script = 'mkdir -p -- "${1%/*}" && rm -rf -- "$1" && set -C && cat > "$1" && chmod "$2" -- "$1"'
        done = await self._call(["/bin/bash", "-c", script, "write", path, f"{mode:o}"], pid_ns=True, data=data)
        if done.returncode != 0:
            raise SandboxError(f"could not write {path}: {_text(done.stderr).strip()[:200]}")

    async def close(self) -> None:
        for fd in self._ns_fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._ns_fds = {}
        await self._stop()
        if self.cgroup is not None:  # empty once the kernel has finished with the last of its processes
            for _ in range(100):
                self.cgroup.remove()
                if not any(d.exists() for d in self.cgroup.dirs):
                    break
                await asyncio.sleep(0.02)

    async def _stop(self) -> None:
        if self._machine.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._machine.kill()  # bwrap's PID 1 dies with it (--die-with-parent), and everything inside
            await self._machine.wait()
        self._down = True


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
