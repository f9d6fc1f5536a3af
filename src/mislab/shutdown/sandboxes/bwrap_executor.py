"""The bwrap backend's executor: one process per machine that runs its commands and touches its files, so a
command costs a spawn (vfork) and an exec of bash instead of a chain of `nsenter`, `setpriv` and `prlimit`.

The executor sits in the machine's user, mount, UTS, IPC, network and cgroup namespaces but stays in the host's
PID namespace; only the processes it starts land in the machine's. So nothing inside can see it (`ps`, /proc)
or signal it, as with `nsenter` before: a command's parent is outside (PPID 0). Being root in the machine's user
namespace, it reads and writes the machine's files without following links out of it (its root is the
machine's), kills every process the machine has but PID 1, and keeps working after PID 1 has gone (it holds the
mount namespace), for the harness's post-mortem. It empties its capability bounding set, sets no_new_privs and
takes the per-process limits once, so every command it spawns starts as root without capabilities under those
limits, as `setpriv` and `prlimit` made it; it is in the machine's cgroups, so every command is born in them.

Executors are forked from one spawner per mislab process (`main`), a Python that has imported everything once:
a fork costs a millisecond where a fresh interpreter costs twenty. The spawner runs as the machine's outside user
(nobody when mislab is root: it changes to it once everything is imported) and is single-threaded, which
entering a user namespace requires. It is started with `python -I -S` on this file, so it imports nothing but the
standard library; mislab imports it only for the message format.

Messages are marshal'd tuples, each prefixed with its length (`HEADER`); the spawner's socket is a SOCK_SEQPACKET
carrying descriptors. Requests to an executor: ("exec", cmd, timeout, paths, limit), ("read", path, limit),
("write", path, data, mode), ("lay_out", files, folders, mtime); every answer starts with "ok" or "error"."""

from __future__ import annotations

import array  # noqa: F401 - socket.recv_fds imports it on first use, when Python's files may be out of reach
import contextlib
import ctypes
import marshal
import os
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from typing import Any

HEADER = struct.Struct("!I")
NAMESPACES = ("user", "mnt", "uts", "ipc", "net", "cgroup", "pid")  # the user namespace first: it gives the rights
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
SETTLE_LIMIT = 10.0  # seconds for the machine's other processes to be gone once killed
ACK_LIMIT = 5.0  # seconds for PID 1 to answer SIGURG
ASK_AGAIN = 0.05  # seconds between SIGURGs while no answer has come
_libc = ctypes.CDLL(None, use_errno=True)


class MachineError(Exception):
    """The machine is not in a state to go on: the request fails, and mislab stops the machine."""


def _check(result: int) -> int:
    if result == -1:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def send(sock: socket.socket, message: Any) -> None:
    payload = marshal.dumps(message)
    sock.sendall(HEADER.pack(len(payload)) + payload)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def recv(sock: socket.socket) -> Any:
    """The next message; None when the other side has gone."""
    header = _recv_exactly(sock, HEADER.size)
    payload = header and _recv_exactly(sock, HEADER.unpack(header)[0])
    return None if payload is None else marshal.loads(payload)


class Executor:
    def __init__(self, sock: socket.socket, cgroups: list[int], config: dict[str, Any]):
        # Into the machine's cgroups now, once, so that every command is born there: moving a process between
        # cgroups waits for an RCU grace period, up to 20 ms here when the machine has been idle.
        for fd in cgroups:
            os.write(fd, b"0")  # descriptors opened by root: writing 0 moves the writer
            os.close(fd)
        self.sock = sock
        self.env: dict[str, str] = config["env"]
        self.ack: str = config["ack"]
        self.stream_limit: int = config["stream_limit"]
        self.down = False
        self.pid1 = os.pidfd_open(config["pid"])  # in the host's numbering, where we are
        namespaces = [os.open(f"/proc/{config['pid']}/ns/{ns}", os.O_RDONLY) for ns in NAMESPACES]
        for fd in namespaces:
            _check(_libc.setns(fd, 0))  # the PID namespace last: it applies to the processes we start from now on
            os.close(fd)
        # From here on every path is the machine's: its root, its /proc (where PID 1 is 1).
        os.chdir("/proc/1/cwd")  # where commands run (they inherit it), as `nsenter -w` made it
        self.null = os.open("/dev/null", os.O_RDWR)
        cap = 0
        while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:  # until EINVAL, past the kernel's last capability
            cap += 1
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        self._lay_out(*config["lay_out"])  # its /etc
        # The per-process limits, ours for the commands to inherit: a spawn (vfork) cannot set them in between,
        # and a fork of this Python costs a command twice the time. Harmless to us but for CPU time, of which we
        # take well under a millisecond a command (30 s last tens of thousands). A write over the size limit
        # fails instead of ending us; commands get SIGXFSZ back at its default (Popen's restore_signals).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        for name, value in config["rlimits"]:
            resource.setrlimit(getattr(resource, f"RLIMIT_{name.upper()}"), (value, value))

    def serve(self) -> None:
        send(self.sock, ("ok",))
        while (request := recv(self.sock)) is not None:
            kind, *args = request
            try:
                answer = getattr(self, f"_{kind}")(*args)
            except (OSError, MachineError) as e:
                answer = ("error", str(e))
            send(self.sock, answer)

    # -- requests ------------------------------------------------------------------------------------------------

    def _exec(self, cmd: bytes, timeout: float, paths: list[str], limit: int) -> tuple[object, ...]:
        if self.down:
            return ("ok", b"", b"", 255, False, True, [self.read(p, limit) for p in paths])
        if self._pid1_gone():  # killed from outside (no command of the machine was running): not the model's doing
            raise MachineError("the machine's PID 1 ended between two commands")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:  # root without capabilities (our bounding set is empty), in its own session, under our limits
            shell = subprocess.Popen([b"/bin/bash", b"--login", b"-c", cmd], stdin=self.null, stdout=out_w,
                                     stderr=err_w, env=self.env, start_new_session=True)  # fmt: skip
        except OSError:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        pid = shell.pid
        child = os.pidfd_open(pid)
        output = {out_r: bytearray(), err_r: bytearray()}
        poller = select.poll()
        for fd in (out_r, err_r, child):
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        timed_out = exited = False
        # Until the command's shell exits, not until its pipes close: what it left behind may hold them.
        while not exited:
            wait = deadline - time.monotonic()
            if wait <= 0:
                timed_out = True
                break
            for fd, _ in poller.poll(wait * 1000):
                if fd == child:
                    exited = True
                elif not self._take(fd, output[fd]):
                    poller.unregister(fd)
        os.close(child)
        up, status = self._settle(pid)
        shell.returncode = status  # reaped: subprocess must never wait for its process id, which may be reused
        for fd, kept in output.items():  # every writer is gone: read to the end
            while self._take(fd, kept):
                pass
            os.close(fd)
        code = 124 if timed_out else os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
        self.down = not up
        return ("ok", bytes(output[out_r]), bytes(output[err_r]), code, timed_out, not up,
                [self.read(p, limit) for p in paths])  # fmt: skip

    def _read(self, path: str, limit: int) -> tuple[object, ...]:
        return ("ok", self.read(path, limit))

    def _write(self, path: str, data: bytes, mode: int) -> tuple[object, ...]:
        self.write(path, data, mode)
        return ("ok",)

    def _lay_out(self, files: list[tuple[str, bytes, int]], folders: list[str], mtime: int) -> tuple[object, ...]:
        """`Sandbox.lay_out`, with the folders it makes and stamps worked out by base.folders."""
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        for path, data, mode in files:
            self.write(path, data, mode)
        for path in [*folders, *(path for path, _, _ in files)]:  # as `touch -h`, once all are written
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        return ("ok",)

    # -- the machine -----------------------------------------------------------------------------------------------

    def _take(self, fd: int, kept: bytearray) -> bool:
        """Read what `fd` has, keeping up to the stream limit and dropping the rest (no writer ever blocks);
        False at its end."""
        data = os.read(fd, 65_536)
        kept += data[: max(self.stream_limit - len(kept), 0)]
        return bool(data)

    def _others(self) -> list[str]:
        return [name for name in os.listdir("/proc") if name.isdigit() and name != "1"]

    def _signal(self, pid: str, sig: int) -> None:
        try:  # a /proc/PID folder is a handle on that very process: a reused PID is never hit
            fd = os.open(f"/proc/{pid}", os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)

    def _pid1_gone(self, timeout: float = 0) -> bool:
        return bool(select.select([self.pid1], [], [], timeout)[0])

    def _settle(self, shell: int) -> tuple[bool, int]:
        """Kill everything but PID 1 and reap the command's shell; then ask PID 1 whether it is still up. Returns
        whether it is, and the shell's wait status. A signal sent to PID 1 during the command is pending by now,
        and PID 1 handles it before our SIGURG (see base.py): if it stops the machine, no answer comes."""
        status: int | None = None
        stopped: set[str] = set()
        deadline = time.monotonic() + SETTLE_LIMIT
        while not self._pid1_gone():
            if status is None:
                reaped, status = os.waitpid(shell, os.WNOHANG)
                status = status if reaped else None
            if not (others := self._others()):
                assert status is not None  # the shell is one of the others until reaped
                return self._ask_pid1(), status
            if time.monotonic() > deadline:
                raise MachineError("a process inside the machine outlived its command")
            fresh = [p for p in others if p not in stopped]
            for pid in fresh:  # first freeze them all, so that none acts on another's death
                self._signal(pid, signal.SIGSTOP)
            stopped.update(fresh)
            if not fresh:  # all frozen: kill them, then wait for their reapers (PID 1, and us for the shell)
                for pid in others:
                    self._signal(pid, signal.SIGKILL)
                time.sleep(0.001)
        return False, status if status is not None else os.waitpid(shell, 0)[1]  # the kernel kills them all

    def _ask_pid1(self) -> bool:
        _remove(self.ack)  # nothing but PID 1 can make it now
        try:
            signal.pidfd_send_signal(self.pid1, signal.SIGURG)
        except ProcessLookupError:  # exiting: the kernel is taking the machine down
            return False
        # Look for the answer at growing intervals (it comes within a fraction of a millisecond unless the cores
        # are busy), sleeping on PID 1's end. Not inotify: its instances are few per user (128 here), and every
        # machine's executor is the same user. Asked again every ASK_AGAIN: bash may lose a signal (base.py).
        start = time.monotonic()
        asked, wait = start, 0.0001
        while (now := time.monotonic()) < start + ACK_LIMIT:
            if now - asked >= ASK_AGAIN:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self.pid1, signal.SIGURG)
                asked = now
            if self._pid1_gone(wait):
                return False
            if os.path.lexists(self.ack):
                _remove(self.ack)
                return True
            wait = min(2 * wait, 0.005)
        # PID 1 neither answered nor went down (it cannot write its answer): the machine is stopped.
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pid1, signal.SIGKILL)
        self._pid1_gone(SETTLE_LIMIT)
        return False

    def read(self, path: str, limit: int) -> bytes | None:
        """A regular file's first `limit` bytes: the last link not followed, a FIFO never waited on."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = bytearray()
            while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
                data += chunk
            return bytes(data)
        except OSError:
            return None
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes, mode: int) -> None:
        """Replace whatever is at `path` (a link is not followed, a FIFO not opened) with a new file."""
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        _remove(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def _remove(path: str) -> None:
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _default_signals() -> None:
    """Every signal at its default and none blocked: the machine's processes inherit both, and bash cannot trap a
    signal it was started with ignored (Python ignores SIGPIPE and SIGXFSZ)."""
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):  # signals the C library keeps for itself
                signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def main(fd: int, parent: int, user: int) -> None:
    """The spawner: for each request (a config, then descriptors: the executor's socket and the machine's cgroup
    files), fork an executor. Becomes `user` first (-1: stays who it is), as the machine is to the host. Dies with
    mislab (PR_SET_PDEATHSIG), and its executors with it."""
    if user >= 0:  # everything is imported: no file of Python's is opened again, wherever it is installed
        os.setgroups([])
        os.setresgid(user, user, user)
        os.setresuid(user, user, user)
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))  # after the change of user, which clears it
    if os.getppid() != parent:  # mislab died before the line above took effect
        return
    _default_signals()
    sock = socket.socket(fileno=fd)
    executors: set[int] = set()
    while True:
        data, fds, _, _ = socket.recv_fds(sock, 65_536, 16)
        if not data:
            break
        for f in fds:  # none may reach a command (recv_fds of Python 3.11 drops MSG_CMSG_CLOEXEC)
            os.set_inheritable(f, False)
        executors -= {pid for pid in executors if os.waitpid(pid, os.WNOHANG)[0]}
        pid = os.fork()
        if pid == 0:
            sock.close()
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0))
            channel = socket.socket(fileno=fds[0])
            try:
                Executor(channel, fds[1:], marshal.loads(data)).serve()
            except OSError as e:
                send(channel, ("error", f"the machine could not be entered: {e}"))
            finally:
                os._exit(0)
        executors.add(pid)
        for f in fds:
            os.close(f)
        sock.send(marshal.dumps(pid))
    for pid in executors:  # reaped, so that their CPU time is counted as ours
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main(*map(int, sys.argv[1:4]))
