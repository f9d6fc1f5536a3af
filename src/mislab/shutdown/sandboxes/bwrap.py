"""`bwrap`: real bash on the real kernel, in a bubblewrap sandbox: one machine per episode.

The machine is one long-lived bwrap whose PID 1 is bash reading `INIT` from a pipe only we hold (so `ps` shows
PID 1 as plain `/bin/bash` and no file inside names it). Its executor (`bwrap_executor.py`), a process that
shares every namespace of the machine but its PID namespace, runs each command: it spawns `bash --login -c CMD`
into the machine as root without capabilities, under the resource limits; when the shell exits it kills
everything else the machine runs but PID 1, asks PID 1 whether it is still up, and reads the files the harness
asked for, all in one round trip over a socket. PID 1 handles the signals that end an ordinary process by
exiting, and the kernel then kills everything inside: that is the machine going down.

What the model can reach: its own tmpfs directories (size-capped, gone with the machine), the host's /usr
read-only, no network, no host process, no host file besides /usr. The executor keeps the machine's mount
namespace, so the harness can still read its files after PID 1 has gone (the post-mortem), and every read and
write is the machine's: links cannot lead it to a host file.

Machines are started ahead of need (`_Pool`): an episode's start is the hand-over of a machine nobody has used.

Limits: `Limits` below, per process (setrlimit) and, where we may make a cgroup, for the machine as a whole (see
`_entry` for who the machine runs as outside, and with which signals)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import marshal
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from . import bwrap_executor
from .base import FIXED_MTIME, PID1_ACK, ExecResult, Sandbox, SandboxError, SandboxUnavailable, folders

T = TypeVar("T")

HOSTNAME = "sandbox"
OUTSIDE = 65534  # the user (and group) the machine is to the host when we are root: nobody (see _entry)
MiB = 1 << 20
MAX_COMMAND = 131_072  # bytes: the kernel's limit on one argument (MAX_ARG_STRLEN)
STREAM_LIMIT = 65_536  # bytes kept per stream and command (above the harness's cap, so it sees the excess)
# Seconds an executor may take beyond a command's timeout: killing what it left and PID 1's answer are bounded
# by bwrap_executor's SETTLE_LIMIT and ACK_LIMIT.
REQUEST_SLACK = bwrap_executor.SETTLE_LIMIT + bwrap_executor.ACK_LIMIT + 15
LAUNCHERS = 2  # threads starting machines at once: more only queue for the same cores
MAX_SPARE = 8  # started machines a pool keeps waiting, at most
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

    def rlimits(self) -> dict[str, int]:
        """Per-process limits by `prlimit`'s option names, which are also the RLIMIT_ names."""
        return {"nproc": self.processes, "as": self.memory, "cpu": self.cpu_seconds, "nofile": self.open_files,
                "fsize": self.file_size, "core": 0}  # fmt: skip

    def prlimit(self) -> list[str]:
        return ["prlimit", *(f"--{name}={value}" for name, value in self.rlimits().items()), "--"]

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
    user = [f"--reuid={OUTSIDE}", f"--regid={OUTSIDE}", "--clear-groups"]
    return ["env", "--default-signal", *(["setpriv", *user] if os.geteuid() == 0 else [])]


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
    missing = [p for p in ("bwrap", "setpriv") if shutil.which(p) is None]
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

    def join(self) -> list[str]:
        """A prefix that puts the program it runs (the machine: bwrap and PID 1) in the cgroup, where the kernel's
        OOM killer never picks it (a command's process goes instead), if we may ask that (CAP_SYS_RESOURCE)."""
        script = 'while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 126; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", "echo -1000 > /proc/self/oom_score_adj; " + script, "join", *map(str, self.dirs),
                "--"]  # fmt: skip

    def entrances(self) -> list[int]:
        """Each cgroup's process list, opened for writing by us: the executor, running as the machine's outside
        user, moves itself in through them (the kernel checks the opener's rights)."""
        return [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]

    def remove(self) -> None:
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()


def _ready(fd: int, timeout: float) -> bool:
    """Whether `fd` is readable within `timeout` seconds (a pidfd: its process has ended). poll, not select:
    with many machines open, descriptors pass select's limit of 1024."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(timeout, 0) * 1000))


def _read_until(fd: int, end: bytes | None, deadline: float) -> bytes:
    """What `fd` gives until `end` is in it (None: until its end); TimeoutError at the deadline."""
    data = b""
    while end is None or end not in data:
        if not _ready(fd, deadline - time.monotonic()):
            raise TimeoutError("no answer in time")
        if not (chunk := os.read(fd, 4096)):
            if end is None:
                break
            raise EOFError("ended early")
        data += chunk
    return data


class _Spawner:
    """The process that forks executors (`bwrap_executor.main`): one per mislab process, started by the launcher
    thread, which lives as long as the process (the spawner dies with the thread that started it). It starts as
    we are, so that it can load Python wherever it is installed, and becomes the machine's outside user itself."""

    current: ClassVar[_Spawner | None] = None
    lock = threading.Lock()

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", bwrap_executor.__file__, str(theirs.fileno()), str(os.getpid()),
                 str(OUTSIDE if os.geteuid() == 0 else -1)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), cwd="/",
                start_new_session=True,
            )  # fmt: skip

    @classmethod
    def spawn(cls, config: dict[str, Any], fds: list[int]) -> int:
        """Fork an executor for one machine; returns its process id."""
        with cls.lock:
            if cls.current is None or cls.current.proc.poll() is not None:
                cls.current = cls()
            sock = cls.current.sock
            socket.send_fds(sock, [marshal.dumps(config)], fds)
            answer = sock.recv(64)
        if not answer:
            raise SandboxError("the bwrap executor spawner ended (its error, if any, is on stderr)")
        pid: int = marshal.loads(answer)  # the spawner answers with the executor's pid
        return pid

    @classmethod
    def stop(cls) -> None:
        """At exit, once every machine is closed: the spawner reaps its executors and ends."""
        with cls.lock:
            if cls.current is not None:
                cls.current.sock.close()
                cls.current.proc.wait()
                cls.current = None


class _Machine:
    """A started machine: bwrap (and PID 1 inside it), the executor, the cgroup. Starting and closing block, so
    they run on the launcher thread (`_launch`); requests are async, on whichever event loop the episode runs."""

    def __init__(self, limits: Limits, cgroup: _Cgroup | None, bwrap: subprocess.Popen[bytes], pid1: int,
                 executor: int, sock: socket.socket):  # fmt: skip
        self.limits, self.cgroup, self.bwrap, self.sock = limits, cgroup, bwrap, sock
        self.pid1, self.executor = pid1, executor  # pidfds
        self.broken = False  # a request was cut off: the channel is out of step

    @classmethod
    def start(cls, limits: Limits) -> _Machine:
        cgroup = _Cgroup.make(limits)
        info_r, info_w = os.pipe()
        try:
            bwrap = subprocess.Popen(
                [*(cgroup.join() if cgroup else []), *_entry(), *_bwrap_argv(limits), "--info-fd", str(info_w),
                 "--as-pid-1", "/bin/bash"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(info_w,),
                env=ENV, cwd="/", start_new_session=True,
            )  # fmt: skip
        except OSError:
            os.close(info_r)
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            os.close(info_w)
        assert bwrap.stdin is not None and bwrap.stdout is not None
        ours, theirs = socket.socketpair()
        pid1 = executor = -1
        try:
            deadline = time.monotonic() + 30
            pid = int(json.loads(_read_until(info_r, None, deadline))["child-pid"])
            pid1 = os.pidfd_open(pid)
            bwrap.stdin.write(INIT.encode())
            bwrap.stdin.flush()  # kept open: PID 1 reads it until we close it
            if _read_until(bwrap.stdout.fileno(), b"\n", deadline) != b"up\n":
                raise SandboxError("PID 1 did not start")
            bwrap.stdout.close()  # PID 1 says no more
            entrances = cgroup.entrances() if cgroup else []
            try:
                executor = os.pidfd_open(_Spawner.spawn(_executor_config(limits, pid), [theirs.fileno(), *entrances]))
            finally:
                for fd in entrances:
                    os.close(fd)
            ours.settimeout(30)
            answer = bwrap_executor.recv(ours)
            if answer != ("ok",):
                raise SandboxError(answer[1] if answer else "the executor ended before it was ready")
            ours.setblocking(False)
        except (OSError, ValueError, KeyError, EOFError, SandboxError) as e:
            cls(limits, cgroup, bwrap, pid1, executor, ours).close()
            raise SandboxError(f"the bwrap machine could not be started: {e}") from e
        finally:
            os.close(info_r)
            theirs.close()
        return cls(limits, cgroup, bwrap, pid1, executor, ours)

    def alive(self) -> bool:
        return not self.broken and not _ready(self.pid1, 0) and not _ready(self.executor, 0)

    async def request(self, message: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        """One request to the executor and its answer; SandboxError (the machine stopped) if it fails."""
        if self.broken:
            raise SandboxError("the machine is out of order")
        loop = asyncio.get_running_loop()
        payload = marshal.dumps(message)
        self.broken = True  # until the answer is read in full
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_sendall(self.sock, bwrap_executor.HEADER.pack(len(payload)) + payload)
                (size,) = bwrap_executor.HEADER.unpack(await self._recv(bwrap_executor.HEADER.size))
                answer: tuple[Any, ...] = marshal.loads(await self._recv(size))
        except (OSError, EOFError, TimeoutError) as e:
            await _launch(self.close)
            raise SandboxError(f"the machine's executor stopped answering ({e or type(e).__name__})") from e
        self.broken = False
        return answer

    async def _recv(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            if not (chunk := await asyncio.get_running_loop().sock_recv(self.sock, n - len(data))):
                raise EOFError("the executor ended")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        """Stop the machine (again: nothing happens): the executor first, so that what it may still run is PID 1's
        to reap, then PID 1, which takes everything inside with it. Returns once all are gone. Blocks (bounded):
        run it on the launcher thread."""
        self.sock.close()
        for fd in (self.executor, self.pid1):
            if fd >= 0:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                _ready(fd, 10)
                os.close(fd)
        self.pid1 = self.executor = -1
        if self.bwrap.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.bwrap.kill()  # if it never got as far as PID 1
            self.bwrap.wait()
        if self.bwrap.stdin is not None:
            self.bwrap.stdin.close()
        if self.cgroup is not None:  # empty once the kernel has finished with the last of its processes
            for _ in range(100):
                self.cgroup.remove()
                if not any(d.exists() for d in self.cgroup.dirs):
                    break
                time.sleep(0.02)


def _executor_config(limits: Limits, pid: int) -> dict[str, Any]:
    etc = {f"/etc/{name}": (text, 0o644) for name, text in ETC.items()}
    return {"pid": pid, "env": ENV, "ack": PID1_ACK, "stream_limit": STREAM_LIMIT,
            "rlimits": list(limits.rlimits().items()),
            "lay_out": _lay_out_request(etc, ["/root", "/var", "/var/tmp", "/var/lib", "/home", "/home/user"],
                                        FIXED_MTIME)[1:]}  # fmt: skip


def _lay_out_request(files: Mapping[str, tuple[str, int]], dirs: Sequence[str], mtime: int) -> tuple[Any, ...]:
    listed = [(path, text.encode(), mode) for path, (text, mode) in files.items()]
    return ("lay_out", listed, folders(files, dirs), mtime)


_launcher_executor: ThreadPoolExecutor | None = None


def _launcher() -> ThreadPoolExecutor:
    """The threads that start and close machines. They live as long as the process: a machine dies with the
    thread that started it (bwrap's --die-with-parent), so that must not be a short-lived one."""
    global _launcher_executor
    if _launcher_executor is None:
        _launcher_executor = ThreadPoolExecutor(LAUNCHERS, thread_name_prefix="mislab-bwrap")
    return _launcher_executor


async def _launch(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_launcher(), fn, *args)


class _Pool:
    """Started machines waiting for an episode: per process, per `Limits` (what a bwrap machine is made of; the
    backend takes no option). Each is handed out once and closed by its episode; the pool keeps as many spares
    as machines are in use, at most `MAX_SPARE`, started on the launcher threads as spares are taken. Spares are
    closed at exit, and die with the process if it is killed."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.ready: list[_Machine] = []
        self.in_use = 0
        self.filling = 0  # starts under way
        self.closed = False
        self.changed = threading.Condition()

    async def take(self) -> _Machine:
        with self.changed:
            self.in_use += 1
        try:
            machine = await self._spare() or await _launch(_Machine.start, self.limits)
            assert machine is not None  # _Machine.start returns a machine or raises
        except BaseException:
            self.release()
            raise
        self._refill()
        return machine

    def release(self) -> None:
        with self.changed:
            self.in_use -= 1

    async def _spare(self) -> _Machine | None:
        while True:
            with self.changed:
                if not self.ready:
                    return None
                machine = self.ready.pop(0)
            if machine.alive():
                return machine
            await _launch(machine.close)  # killed while it waited: nothing of ours does that, but someone may

    def _refill(self) -> None:
        with self.changed:
            wanted = 0 if self.closed else min(self.in_use, MAX_SPARE) - len(self.ready) - self.filling
            self.filling += max(wanted, 0)
        for _ in range(wanted):
            _launcher().submit(self._fill)

    def _fill(self) -> None:
        try:
            machine: _Machine | None = _Machine.start(self.limits)
        except SandboxError:  # the next take starts its own machine, and its episode gets the error
            machine = None
        with self.changed:
            self.filling -= 1
            keep = machine is not None and not self.closed and len(self.ready) < MAX_SPARE
            if keep and machine is not None:
                self.ready.append(machine)
            self.changed.notify_all()
        if machine is not None and not keep:
            machine.close()

    def wait_filled(self) -> None:
        """Until no start is under way."""
        with self.changed:
            self.changed.wait_for(lambda: self.filling == 0, timeout=60)

    def shutdown(self) -> None:
        with self.changed:
            self.closed = True
        self.wait_filled()
        with self.changed:
            spares, self.ready = self.ready, []
        for machine in spares:
            machine.close()


_pools: dict[Limits, _Pool] = {}


def _pool(limits: Limits) -> _Pool:
    return _pools.setdefault(limits, _Pool(limits))


@atexit.register
def _close_pools() -> None:
    for pool in _pools.values():
        pool.shutdown()
    _Spawner.stop()


def _forget_in_child() -> None:
    """A forked copy of this process owns none of the machines, threads or spawner: it starts its own."""
    global _launcher_executor
    _pools.clear()
    _launcher_executor = None
    _Spawner.current, _Spawner.lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


class BwrapSandbox(Sandbox):
    name: ClassVar[str] = "bwrap"
    faithful: ClassVar[bool] = True

    def __init__(self, machine: _Machine, pool: _Pool | None):
        self._machine, self._pool = machine, pool
        self.limits = machine.limits
        self.cgroup = machine.cgroup  # None: memory and processes are limited per process only
        self._down = False

    @classmethod
    def unavailable(cls) -> str | None:
        return _why_unavailable()

    @classmethod
    async def start(cls, option: str | None = None, *, limits: Limits | None = None) -> Self:
        """A machine nobody has used, from the pool (see `_Pool`)."""
        cls._check(option)
        pool = _pool(limits or Limits())
        return cls(await pool.take(), pool)

    @classmethod
    async def cold_start(cls, *, limits: Limits | None = None) -> Self:
        """A machine started now, outside the pool: what a hand-over saves (benchmarks/sandbox_speed.py)."""
        cls._check(None)
        return cls(await _launch(_Machine.start, limits or Limits()), None)

    @classmethod
    def _check(cls, option: str | None) -> None:
        if option is not None:
            raise SandboxError(f"the bwrap backend takes no option (got {option!r})")
        if (why := cls.unavailable()) is not None:
            raise SandboxUnavailable(why)

    async def exec(self, cmd: str, *, timeout: float) -> ExecResult:
        return (await self.exec_and_read(cmd, (), timeout=timeout))[0]

    async def exec_and_read(
        self, cmd: str, paths: Sequence[str], *, timeout: float, limit: int = 65_536
    ) -> tuple[ExecResult, list[bytes | None]]:
        if self._down:
            return ExecResult("", "", 255, machine_down=True), [await self.read_file(p, limit=limit) for p in paths]
        data = cmd.replace("\0", "").encode(errors="surrogateescape")  # an argument cannot hold NUL
        if len(data) >= MAX_COMMAND:  # the kernel refuses it (E2BIG), as it would refuse `bash -c` anywhere
            result = ExecResult("", "bash: Argument list too long\n", 126)
            return result, [await self.read_file(p, limit=limit) for p in paths]
        answer = await self._machine.request(("exec", data, timeout, list(paths), limit), timeout + REQUEST_SLACK)
        if answer[0] != "ok":
            await self.close()
            raise SandboxError(f"the command could not be run: {answer[1]}")
        _, stdout, stderr, code, timed_out, down, contents = answer
        self._down = down
        return ExecResult(_text(stdout), _text(stderr), code, timed_out, machine_down=down), contents

    async def lay_out(
        self, files: Mapping[str, tuple[str, int]], *, dirs: Sequence[str] = (), mtime: int, timeout: float
    ) -> None:
        answer = await self._machine.request(_lay_out_request(files, dirs, mtime), timeout + REQUEST_SLACK)
        if answer[0] != "ok":
            raise SandboxError(f"could not lay out the files: {answer[1][:300]}")

    async def read_file(self, path: str, *, limit: int = 65_536) -> bytes | None:
        data: bytes | None = (await self._machine.request(("read", path, limit), REQUEST_SLACK))[1]
        return data

    async def write_file(self, path: str, contents: str | bytes, *, mode: int = 0o644) -> None:
        if self._down:
            raise SandboxError("the machine is down")
        data = contents.encode() if isinstance(contents, str) else contents
        answer = await self._machine.request(("write", path, data, mode), REQUEST_SLACK)
        if answer[0] != "ok":
            raise SandboxError(f"could not write {path}: {answer[1][:200]}")

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.release()
            self._pool = None
        await _launch(self._machine.close)
        self._down = True


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")
