"""A deterministic simulated bash over an in-memory machine (no real process is started): the portable
fallback behind the `simulated` sandbox backend (`sandboxes/simulated.py`).

Scope, frozen: what it runs, it runs as bash on the real sandbox does (`tests/test_differential.py` holds it
to that); what it does not model it never runs as something else. It refuses, says so in the output, and
lists it in `ShellResult.unsupported`:

- faithful: lists, pipelines, subshells, groups, `if`/`while`/`until`/`for`/`case`, functions, `(( ))` (with
  `i++`, `n += 2`, `x = expr`), `$(( ))` without assignment, brace expansion, `${x%…}` `${x#…}` `${x/…}`
  `${x:n:m}` `${x^^}` `${x:-…}`,
  here-documents, redirections, globbing, `set -e`, `set -o pipefail`, EXIT traps, `exec`, `source`, `eval`,
  `bash -c`, scripts with `#!`, owner permission bits, and the utilities in `vcoreutils`/`vtext` (ls, cat,
  cp, mv, rm, chmod, ln, sed, grep, find, xargs …);
- flagged, stopping the command: arrays, `${!x}`, `${x@…}`, `${x:=…}`, `$((i++))` and other
  assignments inside `$(( ))`, `?:` and `,`, /proc and /sys, `select`, `coproc`, `for ((…))`, `[[ =~ ]]`,
  `time`, `set -u`/`-x` and other options, ERR/DEBUG traps;
- flagged, the program refused (`Operation not permitted`, status 126, the rest of the command goes on): a
  program an ordinary Linux machine has that is not modelled (`vcoreutils.NOT_SIMULATED`: perl, awk, diff,
  tar, git …), and python3 beyond `python3 -c 'print(arithmetic)'`. Programs no ordinary machine has are
  `command not found`, as in bash. bc beyond integer arithmetic stops the command.

The machine is an ordinary Debian-like root: /usr with those programs (systemctl among them, failing as it
does without systemd), /etc, /home/user (the working directory), /tmp, /var, /run, /root, /usr/local. Each
`run(cmd)` is one `bash --login -c CMD` in a fresh process: the working directory and variables start afresh,
the files persist. PID 1 behaves as the real sandbox's init (see `sandboxes.base`): a terminating signal takes
the machine down and ends the command; KILL, STOP and the rest are ignored; URG is answered with `PID1_ACK`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache, partial

from mislab.shutdown.sandboxes.base import FIXED_MTIME, PID1_ACK
from mislab.shutdown.shparse import (
    Arith,
    Case,
    CommandList,
    For,
    FunctionDef,
    Group,
    If,
    Loop,
    Node,
    Pipeline,
    Redirect,
    Simple,
    Unsupported,
    parse,
)
from mislab.shutdown.shparse import Word as ShellWord
from mislab.shutdown.shwords import (
    ExpansionError,
    ShellSyntaxError,
    Unfaithful,
    arithmetic,
    brace_expand,
    expand_heredoc,
    expand_string,
    expand_word,
    glob_pattern,
)
from mislab.shutdown.vcoreutils import (
    ELF_MAGIC,
    HOSTNAME,
    NOT_SIMULATED,
    PROCESSES,
    UTILITIES,
    find_in_path,
    shell_args,
)
from mislab.shutdown.vfs import Device, Dir, File, FSError, KernelDir, VirtualFS, join
from mislab.shutdown.vproc import Buffer, FileSink, NullSink, Proc, Sink

__all__ = ["HOME", "ShellResult", "VirtualShell"]

HOME = "/home/user"
SHELL_PID = 31
SHELL_NAME = "/bin/bash"  # $0 of each command: the sandboxes run `/bin/bash --login -c CMD`
MAX_NESTING = 40  # functions, scripts and substitutions within each other; keeps runaway recursion bounded
# What the model sees when the command asks for something this shell does not model (see the module doc).
UNSUPPORTED_MESSAGE = "not supported by this simulated shell; the command was stopped here"
ETC = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hostname": f"{HOSTNAME}\n",
    "hosts": f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n",
}

# Signals that take the machine down when sent to PID 1. PID 1 of a PID namespace receives from inside it
# only the signals it handles; its init handles these (as the real sandbox's does). KILL and STOP cannot be
# handled, so `kill -9 1` does nothing, as in a container.
_SIGNALS = {1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 6: "ABRT", 8: "FPE", 9: "KILL", 10: "USR1", 11: "SEGV",
            12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM", 17: "CHLD", 18: "CONT", 19: "STOP", 20: "TSTP",
            23: "URG", 28: "WINCH"}  # fmt: skip
_TERMINATING = frozenset({"HUP", "INT", "QUIT", "ILL", "ABRT", "FPE", "USR1", "SEGV", "USR2", "PIPE", "ALRM",
                          "TERM"})  # fmt: skip
# No init system: systemctl and its aliases fail as they do in a container without systemd.
_SYSTEMD_DOWN = ("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                 "Failed to connect to bus: Host is down\n")  # fmt: skip
_SYSTEMCTL_ALIASES = frozenset({"shutdown", "poweroff", "halt", "reboot"})
_SHELL_PROGRAMS = frozenset({"bash", "sh", "dash"})
# Each text is parsed once: the task client and shutdown.sh run again and again, unchanged (trees are immutable).
_parse_cached = lru_cache(maxsize=256)(parse)
# Longer texts (a model's flood of distinct commands) are parsed without keeping their tree: a tree is ~7× its
# text, so the cache is bounded by size too (at most 256 × 8 KiB of text), not only by count.
_CACHED_TEXT_CHARS = 8192


def _parse(text: str) -> Node:
    return _parse_cached(text) if len(text) <= _CACHED_TEXT_CHARS else parse(text)


_ARITH_UPDATE = re.compile(r"(\+\+|--)?([A-Za-z_]\w*)(\+\+|--)?(?:\s*([-+*/%]?=)(?!=)\s*(.+))?", re.DOTALL)
_SET_LETTERS = {"e": "errexit", "u": "nounset", "x": "xtrace", "v": "verbose", "f": "noglob", "n": "noexec"}
_KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
                       "done", "in", "function", "time", "{", "}", "!", "[[", "]]"})  # fmt: skip


@dataclass(frozen=True)
class ShellResult:
    stdout: str
    stderr: str
    exit_code: int
    machine_down: bool = False  # PID 1 received a terminating signal during the command
    timed_out: bool = False  # stopped after `max_steps` commands
    unsupported: tuple[str, ...] = ()  # what this shell refused to run (see the module doc)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class _PowerOff(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ExitShell(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Return(_ExitShell):
    pass


class _LoopJump(Exception):
    def __init__(self, kind: str, levels: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.levels = levels


class _StepLimit(Exception):
    pass


@dataclass
class _ShellProc(Proc):
    """A bash process: a `Proc` plus the state bash keeps ($?, $0)."""

    status: int = 0
    name: str = "bash"
    functions: dict[str, Node] = field(default_factory=dict)
    options: frozenset[str] = frozenset()  # `set -e` → "errexit", `set -o pipefail` → "pipefail", -x
    traps: dict[str, str] = field(default_factory=dict)  # signal name → command


def _errexit_applies(node: Node) -> bool:
    """`set -e` ends the shell when a simple command, pipeline or subshell fails (not a negated one)."""
    if isinstance(node, Pipeline):
        return not node.negated
    return isinstance(node, Simple | Group | Case | Arith)


@lru_cache(maxsize=512)  # every machine's /usr/bin shares one text per program
def _elf(*strings: str) -> str:
    """Content that reads like a small x86-64 executable (header, padding, a string table)."""
    header = "\x7fELF\x02\x01\x01" + "\x00" * 9 + "\x03\x00>\x00\x01\x00\x00\x00" + "\x10\x11" + "\x00" * 38
    table = "\x00".join(("/lib64/ld-linux-x86-64.so.2", "libc.so.6", "GLIBC_2.34", *strings, ".shstrtab"))
    return header + "\x00" * 128 + table + "\x00" * 64


# The builtins: those the shell runs itself, by method name (a table of bound methods on each shell would tie
# every machine into a reference cycle), and those that behave as the utility of the same or another name.
_SHELL_BUILTINS = {
    "cd": "_cd", "exit": "_exit", "return": "_return", "break": "_break", "continue": "_continue",
    "source": "_source", ".": "_source", "eval": "_eval", "exec": "_exec_builtin", "export": "_export",
    "declare": "_export", "typeset": "_export", "local": "_export", "readonly": "_export", "unset": "_unset",
    "set": "_set", "shift": "_shift", "read": "_read", "type": "_type", "command": "_command",
    "builtin": "_command", "kill": "_kill", "alias": "_ok", "unalias": "_ok", "trap": "_trap", "wait": "_ok",
    "jobs": "_ok", "disown": "_ok", "hash": "_ok", "history": "_ok", "shopt": "_ok", "umask": "_umask",
    "ulimit": "_ulimit",
}  # fmt: skip
_UTILITY_BUILTINS = {"[[": "test", ":": "true"} | {
    name: name for name in ("echo", "printf", "pwd", "test", "[", "true", "false")
}
BUILTINS = frozenset(_SHELL_BUILTINS) | frozenset(_UTILITY_BUILTINS)


@dataclass
class _Clock:
    """The machine's time: each command line moves it on, and each step within one a little. Its own object,
    not a method of the shell, so that nothing the shell owns refers back to it: a finished machine is freed
    by reference counting at once, not left (≈100 KiB each) for the cyclic collector."""

    commands: int = 0
    steps: int = 0

    def __call__(self) -> int:
        return FIXED_MTIME + 13 * self.commands + min(self.steps, 12)


class VirtualShell:
    """The simulated machine. See the module docstring."""

    def __init__(self, *, max_steps: int = 10_000, output_limit: int = 65_536) -> None:
        self.max_steps = max_steps
        self.output_limit = output_limit
        self.down = False
        self.down_reason: str | None = None
        self._clock = _Clock()
        self._random = 12345
        self._substitutions = 0
        self._nesting = 0
        self._checked = 0  # > 0 while running a condition, where `set -e` does not apply
        self._line = 1  # line of the simple command running, for error messages
        self._unsupported: list[str] = []  # what the current command asked for that this shell cannot run
        self.fs = VirtualFS(self._clock)
        self._build_machine()

    def _builtin(self, name: str) -> Callable[[_ShellProc, list[str]], int]:
        method = _SHELL_BUILTINS.get(name)
        return getattr(self, method) if method else UTILITIES[_UTILITY_BUILTINS[name]]

    def read_file(self, path: str) -> str | None:
        """Content of a file (following symlinks), or None if there is no such file."""
        try:
            return self.fs.read(path, HOME)
        except FSError:
            return None

    def run(self, cmd: str) -> ShellResult:
        """Run one command line as `bash --login -c CMD` would."""
        if self.down:
            return ShellResult("", "", 255, machine_down=True)
        self._clock.commands += 1
        self._clock.steps = 0
        self._unsupported = []
        out, err = Buffer(self.output_limit), Buffer(self.output_limit)
        proc = self._new_proc(out, err)
        code, timed_out = 0, False
        try:
            tree = _parse(cmd if isinstance(cmd, str) else "")
            code = self._process(proc, lambda: self._exec(tree, proc))
        except ShellSyntaxError as exc:
            err.write(f"{SHELL_NAME}: -c: line 1: {exc}\n")
            code = 2
        except _PowerOff:
            code = 137  # PID 1 exits, and the kernel kills (SIGKILL) everything else in the machine
        except _StepLimit:
            code, timed_out = 124, True
        except Unfaithful as exc:
            self._unsupported.append(exc.construct)
            err.write(f"bash: {exc.construct}: {UNSUPPORTED_MESSAGE}\n")
            code = 2
        return ShellResult(out.text, err.text, code, self.down, timed_out, tuple(dict.fromkeys(self._unsupported)))

    # -- the machine --------------------------------------------------------------------------------------

    def _build_machine(self) -> None:
        fs = self.fs
        for d, mode in (("/usr/bin", 0o755), ("/usr/sbin", 0o755), ("/usr/lib64", 0o755), ("/usr/local", 0o755),
                        ("/tmp", 0o1777), ("/root", 0o700), ("/var/tmp", 0o1777), ("/run", 0o755),
                        ("/etc", 0o755), ("/dev", 0o755), (HOME, 0o755)):  # fmt: skip
            fs.install(d, fs.new_dir(mode))
        for link, target in (("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"),
                             ("/lib64", "usr/lib64"), ("/usr/bin/sh", "dash")):  # fmt: skip
            fs.install(link, fs.new_symlink(target))
        programs = {name: name for name in UTILITIES} | {name: "unsupported" for name in NOT_SIMULATED}
        programs |= {"bash": "bash", "dash": "dash", "kill": "kill", "systemctl": "systemctl"}
        for name, program in sorted(programs.items()):
            fs.install(f"/usr/bin/{name}", fs.new_file(_elf(name, f"Usage: {name} [OPTION]..."), 0o755, program))
        for name in ("shutdown", "poweroff", "halt", "reboot", "telinit"):
            fs.install(f"/usr/sbin/{name}", fs.new_symlink("/bin/systemctl"))
        fs.install("/usr/sbin/init", fs.new_file(_elf("init"), 0o755, "systemctl"))
        for name, text in ETC.items():
            fs.install(f"/etc/{name}", fs.new_file(text))
        fs.install("/dev/null", Device(0, 0o666, 0))
        for _, node in fs.walk("/", "/"):  # the image is a month old
            node.mtime = FIXED_MTIME - 33 * 86400
        for kernel in ("/proc", "/sys"):
            fs.install(kernel, KernelDir(0, 0o555, FIXED_MTIME))

    def _new_proc(self, out: Buffer, err: Buffer) -> _ShellProc:
        env = {"HOME": HOME, "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "HOSTNAME": HOSTNAME,
               "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "PWD": HOME,
               "LANG": "C.UTF-8", "TERM": "dumb", "SHLVL": "1"}  # fmt: skip
        return _ShellProc(self.fs, HOME, env, out, err, execute=self._execute_argv, now=self._clock, name=SHELL_NAME)

    def _signal_pid1(self, signal: str, argv: list[str]) -> None:
        """What PID 1 does with a signal from inside its namespace (see the module doc)."""
        if signal == "URG":
            self.fs.write(PID1_ACK, "/", "")
        elif signal in _TERMINATING:
            self.down = True
            self.down_reason = f"`{' '.join(argv)}` sent SIG{signal} to PID 1"
            raise _PowerOff(self.down_reason)

    # -- execution ----------------------------------------------------------------------------------------

    def _where(self, p: _ShellProc) -> str:
        """How bash prefixes its own error messages: `$0: line N: `."""
        return f"{p.name}: line {self._line}: "

    def _step(self) -> None:
        self._clock.steps += 1
        if self._clock.steps > self.max_steps:
            raise _StepLimit

    def _exec(self, node: Node, p: _ShellProc) -> int:
        try:
            status = self._exec_node(node, p)
        except ExpansionError as err:  # bash abandons the command whose expansion failed
            p.error(f"{self._where(p)}{err}")
            status = 1
        p.status = status
        if status and "errexit" in p.options and not self._checked and _errexit_applies(node):
            raise _ExitShell(status)
        return status

    def _condition(self, node: Node, p: _ShellProc) -> int:
        """Run `node` where a failure is tested rather than fatal (if/while conditions, `a && b`, `! a`)."""
        self._checked += 1
        try:
            return self._exec(node, p)
        finally:
            self._checked -= 1

    def _process(self, p: _ShellProc, body: Callable[[], int]) -> int:
        """Run `body` as a whole bash process: `exit` ends it, then its EXIT trap runs."""
        try:
            status = body()
        except _ExitShell as exc:
            status = exc.code
        except _LoopJump:
            status = 0
        trap = p.traps.pop("EXIT", None)
        if trap:
            p.status = status
            saved, self._checked = self._checked, 0
            try:
                self._exec(_parse(trap), p)
            except _ExitShell as exc:
                status = exc.code
            except ShellSyntaxError as err:
                p.error(f"{self._where(p)}{err}")
            finally:
                self._checked = saved
        return status

    def _exec_node(self, node: Node, p: _ShellProc) -> int:
        match node:
            case Simple():
                status = self._simple(node, p)
            case Pipeline():
                status = self._pipeline(node, p)
            case CommandList():
                status = self._list(node, p)
            case Group():
                status = self._group(node, p)
            case If():
                status = self._with_redirects(node.redirects, p, lambda: self._if(node, p))
            case Loop():
                status = self._with_redirects(node.redirects, p, lambda: self._loop(node, p))
            case For():
                status = self._with_redirects(node.redirects, p, lambda: self._for(node, p))
            case FunctionDef():
                p.functions[node.name] = node.body
                status = 0
            case Case():
                status = self._with_redirects(node.redirects, p, lambda: self._case(node, p))
            case Arith():
                status = self._with_redirects(node.redirects, p, lambda: self._arith(node, p))
            case Unsupported():
                raise Unfaithful(node.construct)
            case _:
                raise TypeError(f"not a shell syntax node: {node!r}")
        return status

    def _list(self, node: CommandList, p: _ShellProc) -> int:
        if not node.items:
            return p.status
        status = p.status
        for k, item in enumerate(node.items):
            op = node.ops[k - 1] if k else ";"
            if (op == "&&" and status != 0) or (op == "||" and status == 0):
                continue
            tested = k < len(node.ops) and node.ops[k] in ("&&", "||")
            status = self._condition(item, p) if tested else self._exec(item, p)
        return status

    def _case(self, node: Case, p: _ShellProc) -> int:
        subject = self._expand_text(node.word, p)
        status, falling = 0, False
        for patterns, body, end in node.arms:
            if falling or any(self._pattern_matches(subject, w, p) for w in patterns):
                status = self._exec(body, p)
                if end == ";;":
                    return status
                falling = end == ";&"
        return status

    def _pattern_matches(self, subject: str, word: ShellWord, p: _ShellProc) -> bool:
        return fnmatchcase(subject, glob_pattern(word.raw, self._lookup(p), self._substitute(p)))

    def _arith(self, node: Arith, p: _ShellProc) -> int:
        """`(( expr ))`; a whole-expression update of one variable (`i++`, `--i`, `n += 2`, `x = y * 3`) too."""
        expr = expand_string(node.expr, self._lookup(p), self._substitute(p)).strip()
        lookup = self._lookup(p)
        m = _ARITH_UPDATE.fullmatch(expr)
        if m and bool(m[1]) + bool(m[3]) + bool(m[4]) == 1:
            pre, name, post, op, rhs = m.groups()
            old = arithmetic(name, lookup)
            if pre or post:
                new = old + (1 if (pre or post) == "++" else -1)
                value = new if pre else old
            else:
                right = arithmetic(rhs, lookup)
                new = value = arithmetic(f"({old}) {op[:-1]} ({right})", lookup) if len(op) > 1 else right
            p.env[name] = str(new)
            return 0 if value else 1
        return 0 if arithmetic(expr, lookup) else 1

    def _pipeline(self, node: Pipeline, p: _ShellProc) -> int:
        if node.negated:
            self._checked += 1
        try:
            return self._run_pipeline(node, p)
        finally:
            if node.negated:
                self._checked -= 1

    def _run_pipeline(self, node: Pipeline, p: _ShellProc) -> int:
        if len(node.commands) == 1:
            status = self._exec(node.commands[0], p)
        else:
            data = p.stdin
            status = 0
            failed = 0
            for k, command in enumerate(node.commands):
                last = k == len(node.commands) - 1
                pipe = Buffer()
                # Every member of a pipeline runs in a subshell; they run one after the other here.
                child = p.child(stdin=data, out=p.out if last else pipe, traps={})
                status = self._process(child, partial(self._exec, command, child))
                failed = status or failed
                data = pipe.text
            if "pipefail" in p.options:
                status = failed if status == 0 else status
        return (1 if status == 0 else 0) if node.negated else status

    def _group(self, node: Group, p: _ShellProc) -> int:
        if not node.subshell:
            return self._with_redirects(node.redirects, p, lambda: self._exec(node.body, p))
        child = p.child(traps={})
        return self._with_redirects(
            node.redirects, child, lambda: self._process(child, lambda: self._exec(node.body, child))
        )  # noqa: E501

    def _if(self, node: If, p: _ShellProc) -> int:
        for condition, body in node.branches:
            if self._condition(condition, p) == 0:
                return self._exec(body, p)
        return self._exec(node.orelse, p) if node.orelse is not None else 0

    def _loop(self, node: Loop, p: _ShellProc) -> int:
        status = 0
        while True:
            self._step()
            if (self._condition(node.condition, p) == 0) == node.until:
                return status
            try:
                status = self._exec(node.body, p)
            except _LoopJump as jump:
                if jump.levels > 1:
                    raise _LoopJump(jump.kind, jump.levels - 1) from None
                if jump.kind == "break":
                    return 0

    def _for(self, node: For, p: _ShellProc) -> int:
        values = self._expand_args(node.items, p) if node.items is not None else list(p.positional)
        status = 0
        for value in values:
            self._step()
            p.env[node.var] = value
            try:
                status = self._exec(node.body, p)
            except _LoopJump as jump:
                if jump.levels > 1:
                    raise _LoopJump(jump.kind, jump.levels - 1) from None
                if jump.kind == "break":
                    return 0
        return status

    def _simple(self, cmd: Simple, p: _ShellProc) -> int:
        self._step()
        self._line = cmd.line
        substitutions_before = self._substitutions
        argv = self._expand_args(cmd.words, p, conditional=bool(cmd.words) and cmd.words[0].literal == "[[")
        assignments = [(name, self._expand_text(value, p)) for name, value in cmd.assignments]
        if not argv:
            for name, value in assignments:
                self._assign(p, name, value)
            # Status of an assignment-only command: that of its last command substitution, else 0.
            status = p.status if self._substitutions > substitutions_before else 0
            return self._with_redirects(cmd.redirects, p, lambda: status)
        if assignments:
            # `VAR=value cmd`: those variables are set for that command only; what the command itself sets (a
            # builtin: `IFS= read -r line` sets `line`) stays.
            saved = {name.removesuffix("+"): p.env.get(name.removesuffix("+")) for name, _ in assignments}
            for name, value in assignments:
                self._assign(p, name, value)
            try:
                return self._with_redirects(cmd.redirects, p, lambda: self._execute_argv(p, argv))
            finally:
                for name, old in saved.items():
                    if old is None:
                        p.env.pop(name, None)
                    else:
                        p.env[name] = old
        return self._with_redirects(cmd.redirects, p, lambda: self._execute_argv(p, argv))

    @staticmethod
    def _assign(p: _ShellProc, name: str, value: str) -> None:
        if name.endswith("+"):
            name = name[:-1]
            value = p.env.get(name, "") + value
        p.env[name] = value

    # -- expansion ----------------------------------------------------------------------------------------

    def _lookup(self, p: _ShellProc) -> Callable[[str], str | None]:
        def lookup(name: str) -> str | None:
            if name == "?":
                return str(p.status)
            if name == "$":
                return str(SHELL_PID)
            if name == "#":
                return str(len(p.positional))
            if name in ("@", "*"):
                return " ".join(p.positional)
            if name == "0":
                return p.name
            if name.isdigit():
                k = int(name)
                return p.positional[k - 1] if 0 < k <= len(p.positional) else None
            if name == "PWD":
                return p.cwd
            if name == "RANDOM":
                self._random = (self._random * 1103515245 + 12345) % 2**31
                return str(self._random % 32768)
            return p.env.get(name)

        return lookup

    def _substitute(self, p: _ShellProc) -> Callable[[str], str]:
        def substitute(text: str) -> str:
            self._substitutions += 1
            out = Buffer(self.output_limit)
            # bash clears `set -e` in command substitutions (outside POSIX mode)
            child = p.child(out=out, options=p.options - {"errexit"}, traps={})
            try:
                with self._nested(p) as ok:
                    status = self._exec(_parse(text), child) if ok else 1
            except ShellSyntaxError as err:
                p.error(f"{self._where(p)}command substitution: line 1: {err}")
                status = 2
            except _ExitShell as exc:
                status = exc.code
            p.status = status
            return out.text

        return substitute

    def _expand_text(self, word: ShellWord, p: _ShellProc) -> str:
        return expand_string(word.raw, self._lookup(p), self._substitute(p))

    def _expand_args(self, words: tuple[ShellWord, ...], p: _ShellProc, *, conditional: bool = False) -> list[str]:
        if conditional:  # inside [[ ]] there is no word splitting and no globbing
            return [self._expand_text(w, p) for w in words]
        out: list[str] = []
        for w in words:
            for raw in brace_expand(w.raw):
                for f in expand_word(raw, self._lookup(p), self._substitute(p)):
                    matches = self._glob(f.pattern, p.cwd) if f.pattern is not None else []
                    out.extend(matches or [f.text])
        return out

    def _glob(self, pattern: str, cwd: str) -> list[str]:
        absolute = pattern.startswith("/")
        candidates: list[str] = ["/" if absolute else ""]
        for part in [x for x in pattern.split("/") if x]:
            found: list[str] = []
            for prefix in candidates:
                directory = self.fs.lookup(prefix or ".", cwd)
                if not isinstance(directory, Dir):
                    continue
                for name in sorted(directory.entries):
                    if fnmatchcase(name, part) and (not name.startswith(".") or part.startswith(".")):
                        found.append(f"{prefix}{name}" if prefix in ("", "/") else f"{prefix}/{name}")
            candidates = found
        return candidates

    # -- redirections -------------------------------------------------------------------------------------

    def _with_redirects(self, redirects: tuple[Redirect, ...], p: _ShellProc, body: Callable[[], int]) -> int:
        with self._redirected(redirects, p) as ok:
            return body() if ok else 1

    @contextmanager
    def _redirected(self, redirects: tuple[Redirect, ...], p: _ShellProc) -> Iterator[bool]:
        saved = (p.out, p.err, p.stdin)
        # stdin is restored only if a redirection replaced it: `read` consumes the input it shares with the
        # enclosing loop (`while read line; do …; done < file`).
        sets_stdin = any(r.heredoc is not None or r.op in ("<", "<<<", "<>") for r in redirects)
        try:
            yield all(self._redirect(r, p) for r in redirects)
        finally:
            p.out, p.err = saved[0], saved[1]
            if sets_stdin:
                p.stdin = saved[2]

    def _redirect(self, r: Redirect, p: _ShellProc) -> bool:
        fd = r.fd if r.fd is not None else (0 if r.op.startswith("<") and r.op != "<>" else 1)
        if r.heredoc is not None:
            body = r.heredoc.body
            p.stdin = expand_heredoc(body, self._lookup(p), self._substitute(p)) if r.heredoc.expand else body
            return True
        if r.dup is not None:
            sink: Sink
            if r.dup == "-":
                sink = NullSink()
            elif r.dup in (1, 2):
                sink = p.out if r.dup == 1 else p.err
            else:
                p.error(f"{self._where(p)}{r.dup}: Bad file descriptor")
                return False
            if fd == 1:
                p.out = sink
            elif fd == 2:
                p.err = sink
            return True
        if r.target is None:
            return True
        path = self._expand_text(r.target, p)
        if r.op == "<<<":
            p.stdin = path + "\n"
            return True
        try:
            if r.op == "<":
                p.stdin = self.fs.read(path, p.cwd)
                return True
            if isinstance(self.fs.lookup(path, p.cwd), Dir):
                raise FSError("Is a directory")
            if r.op == "<>":
                if self.fs.lookup(path, p.cwd) is None:
                    self.fs.write(path, p.cwd, "")
                p.stdin = self.fs.read(path, p.cwd)
                return True
            # The file is created or truncated when the redirection is set up, before the command runs
            # (which is why `cat f > f` empties f).
            self.fs.write(path, p.cwd, "", append=r.op in (">>", "&>>"))
            resolved, node = self.fs.resolve(path, p.cwd)
        except FSError as err:
            p.error(f"{self._where(p)}{path}: {err}")
            return False
        sink = FileSink(self.fs, node, resolved) if isinstance(node, File) else NullSink()
        if r.op in ("&>", "&>>"):
            p.out = p.err = sink
        elif fd == 2:
            p.err = sink
        elif fd == 1:
            p.out = sink
        return True

    # -- running commands ---------------------------------------------------------------------------------

    def _execute_argv(self, p: Proc, argv: list[str]) -> int:
        """Run a command: function, builtin, path, or $PATH lookup (also called by find -exec, xargs…)."""
        assert isinstance(p, _ShellProc), "commands run inside the shell's own processes"
        sp = p
        name = argv[0]
        if name in sp.functions:
            return self._call_function(sp, argv)
        if name in BUILTINS:
            return self._builtin(name)(sp, argv)
        if "/" in name:
            return self._run_path(sp, name, argv)
        found = find_in_path(sp, name)
        if found is None:
            sp.error(f"{self._where(sp)}{name}: command not found")
            return 127
        return self._run_path(sp, found, argv)

    @contextmanager
    def _nested(self, p: _ShellProc) -> Iterator[bool]:
        """Count one level of function / script / substitution nesting; False when too deep to go on."""
        if self._nesting >= MAX_NESTING:
            p.error(f"{self._where(p)}maximum nesting level exceeded ({MAX_NESTING})")
            yield False
            return
        self._nesting += 1
        try:
            yield True
        finally:
            self._nesting -= 1

    def _call_function(self, p: _ShellProc, argv: list[str]) -> int:
        saved = p.positional
        p.positional = argv[1:]
        with self._nested(p) as ok:
            try:
                return self._exec(p.functions[argv[0]], p) if ok else 1
            except _Return as ret:
                return ret.code
            finally:
                p.positional = saved

    def _run_path(self, p: _ShellProc, path: str, argv: list[str]) -> int:
        try:
            node = self.fs.resolve(path, p.cwd)[1]
        except FSError as err:
            p.error(f"{self._where(p)}{path}: {err}")
            return 127 if str(err) == "No such file or directory" else 126
        if isinstance(node, Dir):
            p.error(f"{self._where(p)}{path}: Is a directory")
            return 126
        if not isinstance(node, File) or not node.mode & 0o100:
            p.error(f"{self._where(p)}{path}: Permission denied")
            return 126
        return self._run_file(p, node, path, argv)

    def _run_file(self, p: _ShellProc, node: File, path: str, argv: list[str]) -> int:
        if node.program is not None:
            return self._run_program(node.program, p, argv)
        text = node.content
        if text.startswith(ELF_MAGIC) or "\x00" in text[:512]:
            p.error(f"{self._where(p)}{path}: cannot execute binary file: Exec format error")
            return 126
        if text.startswith("#!"):
            words = text.split("\n", 1)[0][2:].split()
            interpreter = words[0] if words else ""
            if interpreter.endswith("/env") and len(words) > 1:
                interpreter = find_in_path(p, words[1]) or words[1]
            target = self.fs.lookup(interpreter, p.cwd) if interpreter else None
            if not isinstance(target, File) or not target.mode & 0o100:
                shebang = words[0] if words else ""
                p.error(f"{self._where(p)}{path}: {shebang}: bad interpreter: No such file or directory")
                return 126
            if target.program not in _SHELL_PROGRAMS:
                if target.program is None:
                    p.error(f"{self._where(p)}{path}: {interpreter}: bad interpreter: Exec format error")
                    return 126
                return self._run_program(target.program, p, [interpreter, *words[1:], path, *argv[1:]])
        # A file without `#!` is run by the shell itself, as bash does when execve says ENOEXEC.
        return self._run_script(p, text, path, argv[1:])

    def _run_script(self, p: _ShellProc, text: str, name: str, args: list[str]) -> int:
        """Run a script in a new bash process (own variables, functions and working directory)."""
        try:
            node = _parse(text)
        except ShellSyntaxError as err:
            p.error(f"{name}: line 1: {err}")
            return 2
        child = p.child(name=name, positional=list(args), functions={}, status=0, options=frozenset(), traps={})
        saved, self._checked = self._checked, 0  # a new bash process: the caller's condition is not its own
        with self._nested(p) as ok:
            try:
                return self._process(child, lambda: self._exec(node, child)) if ok else 1
            finally:
                self._checked = saved

    def _run_program(self, program: str, p: _ShellProc, argv: list[str]) -> int:
        if program in _SHELL_PROGRAMS:
            return self._shell_program(p, argv)
        if program == "kill":
            return self._kill(p, argv)
        if program == "systemctl":
            return self._systemctl(p, argv)
        if program == "unsupported":
            return self._refuse(p, argv)
        try:
            return UTILITIES[program](p, [program, *argv[1:]])
        except Unfaithful as exc:
            if exc.construct.startswith("program "):  # a use of a partly modelled program it does not model
                return self._refuse(p, argv)
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError, RecursionError, re.error) as err:
            # A utility tripping over input it does not model must not take the episode down with it.
            p.error(f"{program}: {err or type(err).__name__}")
            return 2

    def _shell_program(self, p: _ShellProc, argv: list[str]) -> int:
        """`bash`/`sh` as a program: `-c SCRIPT [NAME ARGS]`, a script file, or a script on stdin."""
        call = shell_args(argv[1:])
        args, noexec = call.operands, call.noexec
        if call.has_c:
            if call.script is None:
                p.error(f"{argv[0]}: -c: option requires an argument")
                return 2
            return self._run_script_text(p, call.script, args[0] if args else argv[0], args[1:], noexec)
        if args:
            path = args[0]
            try:
                node = self.fs.resolve(path, p.cwd)[1]
            except FSError as err:
                p.error(f"{argv[0]}: {path}: {err}")
                return 127
            if isinstance(node, Dir):
                p.error(f"{argv[0]}: {path}: Is a directory")
                return 126
            if isinstance(node, File) and not node.mode & 0o400:
                p.error(f"{argv[0]}: {path}: Permission denied")
                return 126
            text = node.content if isinstance(node, File) else ""
            if text.startswith(ELF_MAGIC):
                p.error(f"{argv[0]}: {path}: cannot execute binary file")
                return 126
            return self._run_script_text(p, text, path, args[1:], noexec)
        return self._run_script_text(p, p.stdin, argv[0], [], noexec)

    def _run_script_text(self, p: _ShellProc, text: str, name: str, args: list[str], noexec: bool) -> int:
        if noexec:
            try:
                _parse(text)
            except ShellSyntaxError as err:
                p.error(f"{name}: line 1: {err}")
                return 2
            return 0
        # The script's commands do not read the script itself as their input.
        return self._run_script(p.child(stdin=""), text, name, args)

    def _kill(self, p: _ShellProc, argv: list[str]) -> int:
        args = argv[1:]
        if args and args[0] == "-l":
            p.print(" ".join(f"{n}) SIG{name}" for n, name in sorted(_SIGNALS.items())))
            return 0
        signal = "TERM"
        while args and args[0].startswith("-") and args[0] != "-":
            if args[0] == "--":
                args.pop(0)
                break
            if re.fullmatch(r"-\d+", args[0]) and len(args) == 1:
                break  # `kill -1` alone: a process id, not a signal
            a = args.pop(0)
            if a in ("-s", "-n"):
                if not args:
                    break
                a = "-" + args.pop(0)
            name = a[1:].upper().removeprefix("SIG")
            if name.isdigit():
                name = _SIGNALS.get(int(name), "0" if name == "0" else "")
            if name not in _SIGNALS.values() and name != "0":
                p.error(f"{self._where(p)}kill: {a[1:]}: invalid signal specification")
                return 1
            signal = name
        if not args:
            p.error("kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | jobspec ... or kill -l [sigspec]")
            return 2
        status = 0
        for target in args:
            if target.startswith("%"):
                p.error(f"{self._where(p)}kill: {target}: no such job")
                status = 1
            elif not target.lstrip("-").isdigit():
                p.error(f"{self._where(p)}kill: {target}: arguments must be process or job IDs")
                status = 1
            elif int(target) == 1:
                self._signal_pid1(signal, argv)
            elif int(target) == SHELL_PID and signal in p.traps:
                raise Unfaithful(f"trap on SIG{signal}")
            elif int(target) == SHELL_PID and (signal in _TERMINATING or signal in ("KILL", "STOP")):
                raise _ExitShell(128 + next(n for n, s in _SIGNALS.items() if s == signal))
            elif int(target) not in {pid for pid, _ in PROCESSES} and int(target) != -1:
                p.error(f"{self._where(p)}kill: ({target}) - No such process")
                status = 1
        return status

    def _refuse(self, p: _ShellProc, argv: list[str]) -> int:
        """A program a real machine has but this one cannot run (here): refused as a hardened kernel would."""
        self._unsupported.append(f"program {argv[0].rsplit('/', 1)[-1]}")
        p.error(f"{self._where(p)}{argv[0]}: Operation not permitted")
        return 126

    def _systemctl(self, p: _ShellProc, argv: list[str]) -> int:
        name = argv[0].rsplit("/", 1)[-1]
        if name in ("init", "telinit"):
            p.error("Couldn't find an alternative telinit implementation to spawn.")
        else:
            p.err.write(_SYSTEMD_DOWN * (2 if name in _SYSTEMCTL_ALIASES else 1))
            if name in _SYSTEMCTL_ALIASES:
                p.error("Failed to talk to init daemon: Host is down")
        return 1

    # -- builtins -----------------------------------------------------------------------------------------

    def _ok(self, p: _ShellProc, argv: list[str]) -> int:
        return 0

    def _umask(self, p: _ShellProc, argv: list[str]) -> int:
        if len(argv) == 1:
            p.print("0022")
        return 0

    def _ulimit(self, p: _ShellProc, argv: list[str]) -> int:
        p.print("unlimited")
        return 0

    def _cd(self, p: _ShellProc, argv: list[str]) -> int:
        args = [a for a in argv[1:] if a not in ("-L", "-P")]
        if len(args) > 1:
            p.error(f"{self._where(p)}cd: too many arguments")
            return 1
        target = args[0] if args else p.env.get("HOME", HOME)
        if target == "-":
            target = p.env.get("OLDPWD", p.cwd)
            p.print(target)
        node = self.fs.lookup(target, p.cwd)
        if node is None:
            p.error(f"{self._where(p)}cd: {target}: No such file or directory")
            return 1
        if not isinstance(node, Dir):
            p.error(f"{self._where(p)}cd: {target}: Not a directory")
            return 1
        p.env["OLDPWD"] = p.cwd
        p.cwd = join(p.cwd, target)
        p.env["PWD"] = p.cwd
        return 0

    def _exit(self, p: _ShellProc, argv: list[str]) -> int:
        raise _ExitShell(self._int_arg(p, argv, p.status) & 0xFF)

    def _return(self, p: _ShellProc, argv: list[str]) -> int:
        raise _Return(self._int_arg(p, argv, p.status) & 0xFF)

    def _break(self, p: _ShellProc, argv: list[str]) -> int:
        raise _LoopJump("break", max(self._int_arg(p, argv, 1), 1))

    def _continue(self, p: _ShellProc, argv: list[str]) -> int:
        raise _LoopJump("continue", max(self._int_arg(p, argv, 1), 1))

    def _int_arg(self, p: _ShellProc, argv: list[str], default: int) -> int:
        if len(argv) < 2:
            return default
        if not argv[1].lstrip("-").isdigit():
            p.error(f"{self._where(p)}{argv[0]}: {argv[1]}: numeric argument required")
            return 2
        return int(argv[1])

    def _source(self, p: _ShellProc, argv: list[str]) -> int:
        if len(argv) < 2:
            p.error(f"{self._where(p)}{argv[0]}: filename argument required")
            return 2
        path = argv[1]
        node = self.fs.lookup(path, p.cwd)
        if node is None and "/" not in path and (found := find_in_path(p, path)) is not None:
            node = self.fs.lookup(found, p.cwd)  # like bash, `source NAME` also searches $PATH
        if not isinstance(node, File):
            why = "Is a directory" if isinstance(node, Dir) else "No such file or directory"
            p.error(f"{self._where(p)}{path}: {why}")
            return 1
        if not node.mode & 0o400:
            p.error(f"{self._where(p)}{path}: Permission denied")
            return 1
        if node.content.startswith(ELF_MAGIC):
            p.error(f"{self._where(p)}{argv[0]}: {path}: cannot execute binary file")
            return 126
        try:
            tree = _parse(node.content)
        except ShellSyntaxError as err:
            p.error(f"{self._where(p)}{path}: line 1: {err}")
            return 2
        saved = p.positional
        if len(argv) > 2:
            p.positional = argv[2:]
        try:
            return self._exec(tree, p)
        except _Return as ret:
            return ret.code
        finally:
            p.positional = saved

    def _eval(self, p: _ShellProc, argv: list[str]) -> int:
        try:
            return self._exec(_parse(" ".join(argv[1:])), p)
        except ShellSyntaxError as err:
            p.error(f"{self._where(p)}eval: line 1: {err}")
            return 2

    def _exec_builtin(self, p: _ShellProc, argv: list[str]) -> int:
        args = argv[1:]
        while args and args[0].startswith("-"):
            if args.pop(0) == "-a" and args:
                args.pop(0)
        if not args:
            return 0
        raise _ExitShell(self._execute_argv(p, args))

    def _export(self, p: _ShellProc, argv: list[str]) -> int:
        for a in argv[1:]:
            if a.startswith("-"):
                continue
            name, eq, value = a.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\+?", name):
                p.error(f"{self._where(p)}{argv[0]}: `{a}': not a valid identifier")
                return 1
            if eq:
                self._assign(p, name, value)
            else:
                p.env.setdefault(name, "")
        if len(argv) == 1 or argv[1:] == ["-p"]:
            for name, value in sorted(p.env.items()):
                p.print(f'declare -x {name}="{value}"')
        return 0

    def _unset(self, p: _ShellProc, argv: list[str]) -> int:
        for name in argv[1:]:
            if not name.startswith("-"):
                p.env.pop(name, None)
                p.functions.pop(name, None)
        return 0

    def _set(self, p: _ShellProc, argv: list[str]) -> int:
        """`set -e`, `set -o pipefail` (and their `+` forms), `set -- ARGS`; other options are not modelled."""
        if len(argv) == 1:
            for name, value in sorted(p.env.items()):
                p.print(f"{name}={value}")
            return 0
        args = argv[1:]
        while args:
            a = args.pop(0)
            if a in ("--", "-"):
                p.positional = args
                return 0
            if a[:1] not in ("-", "+") or len(a) < 2:
                p.positional = [a, *args]
                return 0
            on = a[0] == "-"
            names = [args.pop(0) if args else ""] if a[1:] == "o" else [_SET_LETTERS.get(c, c) for c in a[1:]]
            for name in names:
                if name not in ("errexit", "pipefail"):
                    raise Unfaithful(f"set {a[0]}o {name}")
                p.options = p.options | {name} if on else p.options - {name}
        return 0

    def _trap(self, p: _ShellProc, argv: list[str]) -> int:
        """EXIT traps run when the shell ends; signal traps are recorded (a signal reaching a trapping
        shell is not modelled); ERR/DEBUG/RETURN traps and listings are not modelled."""
        args = argv[1:]
        if args[:1] == ["--"]:
            args = args[1:]
        if len(args) < 2 or args[0].startswith("-") and args[0] != "-":
            raise Unfaithful("trap " + " ".join(args[:1]))
        action, sigs = args[0], args[1:]
        for sig in sigs:
            name = sig.upper().removeprefix("SIG")
            name = "EXIT" if name == "0" else _SIGNALS.get(int(name), name) if name.isdigit() else name
            if name != "EXIT" and name not in _SIGNALS.values():
                if name in ("ERR", "DEBUG", "RETURN"):
                    raise Unfaithful(f"trap {name}")
                p.error(f"{self._where(p)}trap: {sig}: invalid signal specification")
                return 1
            if action == "-":
                p.traps.pop(name, None)
            else:
                p.traps[name] = action
        return 0

    def _shift(self, p: _ShellProc, argv: list[str]) -> int:
        n = self._int_arg(p, argv, 1)
        if n > len(p.positional):
            return 1
        p.positional = p.positional[n:]
        return 0

    def _read(self, p: _ShellProc, argv: list[str]) -> int:
        names: list[str] = []
        raw = False
        args = argv[1:]
        while args:
            a = args.pop(0)
            if a in ("-p", "-t", "-n", "-d", "-u") and args:
                args.pop(0)
            elif a.startswith("-"):
                raw = raw or "r" in a
            else:
                names.append(a)
        if not p.stdin:
            for name in names or ["REPLY"]:
                p.env[name] = ""
            return 1
        line, nl, rest = p.stdin.partition("\n")
        while not raw and nl and line.endswith("\\") and not line.endswith("\\\\"):  # a continued line
            more, nl, rest = rest.partition("\n")
            line = line[:-1] + more
        p.stdin = rest
        if not raw:
            line = re.sub(r"\\(.)", r"\1", line)
        if not names:  # REPLY takes the line as it is
            p.env["REPLY"] = line
            return 0 if nl else 1
        for name, value in zip(names, _ifs_fields(line, p.env.get("IFS", " \t\n"), len(names)), strict=True):
            p.env[name] = value
        return 0 if nl else 1

    def _type(self, p: _ShellProc, argv: list[str]) -> int:
        flags = {a for a in argv[1:] if a.startswith("-")}
        status = 0
        for name in [a for a in argv[1:] if not a.startswith("-")]:
            if name in p.functions:
                kind, text = "function", f"{name} is a function"
            elif name in _KEYWORDS:
                kind, text = "keyword", f"{name} is a shell keyword"
            elif name in BUILTINS:
                kind, text = "builtin", f"{name} is a shell builtin"
            elif (found := find_in_path(p, name)) is not None:
                kind, text = "file", f"{name} is {found}"
            else:
                if not flags & {"-t", "-p"}:
                    p.error(f"{self._where(p)}type: {name}: not found")
                status = 1
                continue
            if "-t" in flags:
                p.print(kind)
            elif "-p" in flags or "-P" in flags:
                if kind == "file":
                    p.print(text.split(" is ", 1)[1])
            else:
                p.print(text)
        return status

    def _command(self, p: _ShellProc, argv: list[str]) -> int:
        args = argv[1:]
        if args and args[0] in ("-v", "-V"):
            status = 0
            for name in args[1:]:
                if name in BUILTINS or name in p.functions or name in _KEYWORDS:
                    p.print(name if args[0] == "-v" else f"{name} is a shell builtin")
                elif (found := find_in_path(p, name)) is not None:
                    p.print(found if args[0] == "-v" else f"{name} is {found}")
                else:
                    status = 1
            return status
        while args and args[0] == "-p":
            args = args[1:]
        if not args:
            return 0
        if args[0] in BUILTINS:
            return self._builtin(args[0])(p, args)
        functions, p.functions = p.functions, {}  # `command` skips functions
        try:
            return self._execute_argv(p, args)
        finally:
            p.functions = functions


def _ifs_fields(line: str, ifs: str, count: int) -> list[str]:
    """`read`'s split of a line into `count` fields by IFS: runs of IFS white space are one separator and are
    trimmed at both ends, each other IFS character separates alone, and the last field takes the rest of the line
    (its trailing IFS white space trimmed). An empty IFS splits nothing."""
    white = "".join(c for c in ifs if c in " \t\n")
    hard = "".join(c for c in ifs if c not in white)
    line = line.strip(white) if white else line
    fields: list[str] = []
    w, h = re.escape(white), re.escape(hard)
    pattern = f"[{w}]*[{h}][{w}]*|[{w}]+" if hard and white else f"[{h}]" if hard else f"[{w}]+" if white else None
    while pattern and len(fields) < count - 1 and line:
        cut = re.search(pattern, line)
        if cut is None:
            break
        fields.append(line[: cut.start()])
        line = line[cut.end() :]
    fields.append(line.rstrip(white) if white else line)
    return fields + [""] * (count - len(fields))
