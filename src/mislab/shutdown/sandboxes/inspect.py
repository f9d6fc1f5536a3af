"""`inspect:PROVIDER[:CONFIG]`: any Inspect sandbox provider (docker, k8s, local, …) as the machine.

Inspect's providers give a container whose PID 1 is the image's (often `tail -f /dev/null`, which ignores
SIGTERM), so each command runs as PID 1 of its own PID namespace: a one-shot init (`ONE_SHOT`) that runs
`bash --login -c CMD`, goes down on the signals that end an ordinary process, answers SIGURG, and kills what the
command left when it ends. It tells us how it ended on stderr, in a line carrying a random token the command
never sees. The machine's files persist in the container between commands (and after it went down, for the
harness's post-mortem); every file access runs through the same wrapper, without following links.

The model's commands run as the bwrap backend's do: root without capabilities, no new privileges, its
per-process limits (`UNPRIVILEGED`); the harness's own file access keeps the container's rights.

Providers:
- docker / k8s: the container runs as root and needs to allow `unshare --pid` (docker: `cap_add: [SYS_ADMIN]`
  or `security_opt: [seccomp=unconfined]`; see docs/environments.md) and keep CAP_SETPCAP (docker's default), which
  `setpriv` needs to empty the bounding set. Cap the container's process count yourself (docker: `pids_limit`).
  The image needs bash, coreutils and util-linux.
- local: for tests. Each command runs in bwrap (the host's /usr and /etc read-only, the machine's directories
  bound from the provider's directory, no network, its own PID 1), so `kill 1` never reaches the host's PID 1.
  It runs as you (root: the host's root, without capabilities), with no cap on the process count."""

from __future__ import annotations

import secrets
import shlex
import shutil
from typing import Any, ClassVar, Self

from .base import PID1_ACK, ExecResult, Sandbox, SandboxError, SandboxUnavailable
from .bwrap import Limits

TASK_NAME = "mislab-shutdown"
MACHINE_DIRS = ("/home/user", "/usr/local", "/var/lib/tasks", "/run", "/tmp", "/root")  # local: bound per command
# The command runs as the bwrap backend's does: root without capabilities (so a file's owner bits bind root too,
# and /proc refuses what it refuses an unprivileged process), no new privileges, the per-process limits.
DROP_PRIVILEGES = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs")
# Not the process count: RLIMIT_NPROC counts every process of the same user outside too (for the container's
# root, often the host's), so it is the provider's to cap (docker: `pids_limit`).
LIMITS = tuple(a for a in Limits().prlimit() if not a.startswith("--nproc"))
UNPRIVILEGED = " ".join((*DROP_PRIVILEGES, *LIMITS))
_TERMINATING = ("HUP", "INT", "QUIT", "ILL", "ABRT", "FPE", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM")

# Runs as PID 1 of a fresh PID namespace, read by bash from stdin; @TOKEN@, @AS@ (`UNPRIVILEGED` for the model's
# commands, nothing for the harness's own file access, which keeps the machine's rights as bwrap's does) and @CMD@
# are filled per command.
ONE_SHOT = (
    # It kills every process it can see when the command ends: only ever as PID 1 of its own PID namespace.
    '[ "$$" = 1 ] || { echo "refusing to run: not PID 1 of a fresh PID namespace" >&2; exit 125; }\n'
    "T=@TOKEN@\n"
    + "".join(f"trap 'echo \"$T down {s}\" >&2; exit 0' {s}\n" for s in _TERMINATING)
    + f"trap ': > {PID1_ACK}' URG\n"
    + "cd /home/user 2>/dev/null\n"
    + "@AS@ bash --login -c @CMD@ </dev/null &\n"
    + "c=$!\n"
    # Not blocked in `wait`: a trapped signal arriving there while another's trap runs (URG right after TERM, as
    # the task client sends them) cuts that trap short, and PID 1 stays up. A `read` on a pipe nobody writes
    # to (open both ways, never at EOF) waits instead, as bwrap's PID 1 does; `wait` then only collects the
    # status of a command already gone.
    + "exec 3<> <(:)\n"
    + 'while kill -0 "$c" 2>/dev/null; do read -r -t 0.01 -u 3 _; done\n'
    + 'wait "$c"; s=$?\n'
    + "kill -STOP -1 2>/dev/null; i=0; while kill -9 -1 2>/dev/null && [ $i -lt 1000 ]; do i=$((i + 1)); done\n"
    + 'echo "$T done $s" >&2\n'
)


class InspectSandbox(Sandbox):
    name: ClassVar[str] = "inspect"
    faithful: ClassVar[bool] = True
    local_option: ClassVar[str | None] = "local"

    def __init__(self, provider: str, env_cls: Any, config: Any, env: Any, envs: dict[str, Any]):
        self.provider, self._cls, self._config, self._env, self._envs = provider, env_cls, config, env, envs
        self._down = False

    @classmethod
    def unavailable(cls) -> str | None:
        """Whether `inspect:local` can run here (other providers are checked when they start)."""
        if shutil.which("bwrap") is None:
            return "inspect:local runs each command in bwrap: apt-get install bubblewrap"
        return _missing_inspect()

    @classmethod
    async def start(cls, option: str | None = None) -> Self:
        if not option:
            raise SandboxError("say which Inspect provider: --backend inspect:docker (or inspect:k8s, inspect:local)")
        if (why := _missing_inspect()) is not None:
            raise SandboxUnavailable(why)
        from inspect_ai.util._sandbox.registry import registry_find_sandboxenv

        provider, _, config = option.partition(":")
        try:
            env_cls = registry_find_sandboxenv(provider)
        except Exception as e:  # Inspect raises its own lookup errors
            raise SandboxUnavailable(f"no Inspect sandbox provider {provider!r}: {e}") from e
        cfg = config or None
        try:
            await env_cls.task_init(TASK_NAME, cfg)
            envs = await env_cls.sample_init(TASK_NAME, cfg, {})
        except Exception as e:  # e.g. Docker installed with no engine running: no sample could start a machine
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise SandboxUnavailable(f"inspect:{provider} could not start a machine: {first}") from e
        env = envs.get("default") or next(iter(envs.values()))
        sandbox = cls(provider, env_cls, cfg, env, envs)
        if provider == "local":
            root = sandbox._local_root()
            made = await env.exec(["mkdir", "-p", *(f"{root}{d}" for d in MACHINE_DIRS)])
            if not made.success:
                raise SandboxError(f"could not lay out the local machine: {made.stderr.strip()[:200]}")
        # Harmless unless PID 1 is our one-shot init: nothing is signalled otherwise. It takes its answer away
        # again (/run persists between commands): a stale one would let the task client take an answer as PID 1's.
        probe = await sandbox._wrapped(
            f'rm -f {PID1_ACK}; [ "$(tr "\\0" " " < /proc/1/cmdline)" = "/bin/bash -s " ] && kill -s URG 1 && '
            f"for i in $(seq 500); do [ -e {PID1_ACK} ] && rm -f {PID1_ACK} && echo pid1-ok && break; sleep 0.01; done",
            timeout=30,
        )
        if probe.stdout.strip() != "pid1-ok" or probe.machine_down:
            await sandbox.close()
            raise SandboxUnavailable(
                f"inspect:{provider}: commands cannot run as PID 1 of their own PID namespace "
                f"({(probe.stderr or probe.stdout).strip()[:200]}); the container needs `unshare --pid` "
                "(docker: cap_add SYS_ADMIN)"
            )
        return sandbox

    def _local_root(self) -> str:
        return str(self._env.directory.name) + "/machine"

    def _wrapper(self, timeout: float) -> list[str]:
        kill_after = ["timeout", "-s", "KILL", f"{timeout:g}"]
        if self.provider == "local":  # our own PID 1, the host read-only, the machine's directories bound
            root = self._local_root()
            binds = [a for d in MACHINE_DIRS for a in ("--bind", f"{root}{d}", d)]
            return [*kill_after, "bwrap", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                    "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--symlink", "usr/lib", "/lib",
                    "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--proc", "/proc", *binds,
                    "--unshare-pid", "--unshare-net", "--unshare-ipc", "--die-with-parent", "--as-pid-1",
                    "/bin/bash", "-s"]  # fmt: skip
        return [*kill_after, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "/bin/bash", "-s"]

    async def _wrapped(self, cmd: str, *, timeout: float, model: bool = False) -> ExecResult:
        token = secrets.token_hex(16)
        script = ONE_SHOT.replace("@TOKEN@", token).replace("@AS@", UNPRIVILEGED if model else "")
        script = script.replace("@CMD@", shlex.quote(cmd.replace("\0", "")))
        try:
            result = await self._env.exec(self._wrapper(timeout), input=script, timeout=int(timeout) + 30,
                                          timeout_retry=False)  # fmt: skip
        except TimeoutError:
            return ExecResult("", "", 124, timed_out=True)
        # The ending line may follow output left without a newline (`select`'s prompt): found anywhere.
        text, at = result.stderr, result.stderr.rfind(token)
        end = text.find("\n", at) + 1 or len(text)
        ending, stderr = (text[at:end].split()[1:], text[:at] + text[end:]) if at >= 0 else ([], text)
        if ending[:1] == ["down"]:
            return ExecResult(result.stdout, stderr, 128 + 15, machine_down=True)
        if ending[:1] == ["done"]:
            return ExecResult(result.stdout, stderr, int(ending[1]))
        return ExecResult(result.stdout, stderr, 124, timed_out=True)  # killed by `timeout`

    async def exec(self, cmd: str, *, timeout: float) -> ExecResult:
        if self._down:
            return ExecResult("", "", 255, machine_down=True)
        result = await self._wrapped(cmd, timeout=timeout, model=True)
        self._down = result.machine_down
        return result

    async def read_file(self, path: str, *, limit: int = 65_536) -> bytes | None:
        script = f"[ -f {shlex.quote(path)} ] && [ ! -L {shlex.quote(path)} ] && head -c {limit} -- {shlex.quote(path)}"
        result = await self._wrapped(script, timeout=10)
        return result.stdout.encode()[:limit] if result.returncode == 0 else None

    async def write_file(self, path: str, contents: str | bytes, *, mode: int = 0o644) -> None:
        if self._down:
            raise SandboxError("the machine is down")
        text = contents.decode() if isinstance(contents, bytes) else contents
        p, delim = shlex.quote(path), f"EOF_{secrets.token_hex(8)}"
        parent = shlex.quote(path.rsplit("/", 1)[0] or "/")
        body = text if text.endswith("\n") else text + "\n"  # a here-document ends with a newline
        script = f"mkdir -p -- {parent} && rm -rf -- {p} && set -C && cat > {p} <<'{delim}'\n{body}{delim}\n"
        script += f"chmod {mode:o} -- {p}"
        if body != text:  # take the added newline off again
            script += f" && truncate -s -1 -- {p}"
        result = await self._wrapped(script, timeout=30)
        if result.returncode != 0:
            raise SandboxError(f"could not write {path}: {result.stderr.strip()[:200]}")

    async def close(self) -> None:
        try:
            await self._cls.sample_cleanup(TASK_NAME, self._config, self._envs, False)
        finally:
            await self._cls.task_cleanup(TASK_NAME, self._config, True)


def _missing_inspect() -> str | None:
    try:
        import inspect_ai  # noqa: F401
    except ImportError:
        return "the inspect backend needs inspect_ai: pip install inspect_ai"
    return None
