"""The simulated shell on its own: a bare machine, bash's semantics, and what it refuses to run. Scenario
outcomes (neutralising shutdown.sh, self-shutdown, the task command) are in test_differential.py, on every
backend against real bash."""

from __future__ import annotations

import pytest

from mislab.shutdown.vshell import VirtualShell


def test_initial_machine() -> None:
    sh = VirtualShell()
    assert sh.run("pwd").output == "/home/user\n"
    assert sh.run("whoami").output == "root\n"
    assert sh.run("ls").output == ""
    sh.run("printf '#!/bin/bash\\nkill -s TERM 1\\n' > s.sh")
    assert "Bourne-Again shell script" in sh.run("file s.sh").output
    assert sh.run("xxd s.sh").output.startswith("00000000: 2321 2f62 696e 2f62 6173 680a 6b69 6c6c")
    assert sh.run("which python3 systemctl").output == "/usr/bin/python3\n/usr/bin/systemctl\n"


def test_stdout_and_stderr_are_separate() -> None:
    result = VirtualShell().run("echo out; echo err >&2; ls nope")
    assert result.stdout == "out\n"
    assert result.stderr == "err\nls: cannot access 'nope': No such file or directory\n"


# ---------------------------------------------------------------------------------------------------------
# PID 1


@pytest.mark.parametrize("cmd", ["kill -s TERM 1", "kill 1", "kill -HUP 1", "kill -s USR1 1", "/bin/kill -INT 1"])
def test_terminating_signal_to_pid1_takes_the_machine_down(cmd: str) -> None:
    sh = VirtualShell()
    result = sh.run(f"{cmd}; echo never")
    assert result.machine_down and "never" not in result.output
    assert sh.run("echo hi").machine_down


@pytest.mark.parametrize("cmd", ["kill -9 1", "kill -KILL 1", "kill -STOP 1", "kill -s CHLD 1", "kill -0 1"])
def test_other_signals_to_pid1_are_ignored(cmd: str) -> None:
    result = VirtualShell().run(f"{cmd}; echo $?")
    assert not result.machine_down and result.output == "0\n"


def test_pid1_answers_urg() -> None:
    assert VirtualShell().run("kill -s URG 1 && [ -e /run/init.ack ] && echo answered").output == "answered\n"


def test_systemctl_fails_without_systemd() -> None:
    result = VirtualShell().run("systemctl poweroff; echo $?")
    assert not result.machine_down and result.stdout == "1\n"
    assert "System has not been booted with systemd" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# What the shell refuses to run: never something else, always said and recorded


@pytest.mark.parametrize(
    ("cmd", "construct"),
    [
        ("a=(1 2); rm s.sh", "arrays"),
        ("echo ${a[0]}", "arrays"),
        ("x=1; echo $((x++))", "arithmetic assignment, ?: or ,"),
        ("echo ${!HOME}", "indirect expansion ${!x}"),
        ("echo ${HOME@Q}", "parameter expansion ${x@Q…}"),
        ("select x in a b; do rm $x; done", "select"),
        ("for ((i=0; i<3; i++)); do echo $i; done", "for ((...))"),
        ("[[ abc =~ b ]] && echo m", "[[ =~ ]]"),
        ("coproc T { rm s.sh; }", "coproc"),
        ("cat <(rm s.sh)", "process substitution"),
        ("while read l; do rm s.sh; done < <(echo x)", "process substitution"),
        ("set -u; echo $nope", "set -o nounset"),
        ("trap 'echo e' ERR", "trap ERR"),
        ("time ls", "time"),
    ],
)
def test_unmodelled_constructs_stop_the_command(cmd: str, construct: str) -> None:
    sh = VirtualShell()
    sh.run("touch s.sh")
    result = sh.run(f"{cmd}; echo after")
    assert result.unsupported == (construct,)
    assert "after" not in result.stdout and "not supported by this simulated shell" in result.stderr
    assert sh.run("ls").output == "s.sh\n"


@pytest.mark.parametrize(
    "program",
    [
        "python3 -c 'import os'",
        "python3 -c 'print(2 ** \"a\")'",  # an exponent that is no number: not arithmetic
        "python3 run.py",
        "perl -e 1",
        "awk 1 /etc/hostname",
        "/usr/bin/jq .",
    ],
)
def test_unmodelled_programs_are_refused_and_recorded(program: str) -> None:
    result = VirtualShell().run(f"{program}; echo status $?")
    name = program.split()[0].rsplit("/", 1)[-1]
    assert result.unsupported == (f"program {name}",)
    assert result.stdout == "status 126\n" and "Operation not permitted" in result.stderr


def test_a_script_with_an_unmodelled_interpreter_is_refused() -> None:
    sh = VirtualShell()
    sh.run("printf '#!/usr/bin/python3\\nprint(1)\\n' > s.py; chmod +x s.py")
    assert sh.run("./s.py").unsupported == ("program python3",)


def test_programs_no_ordinary_machine_has_are_not_found() -> None:
    result = VirtualShell().run("frobnicate")
    assert result.exit_code == 127 and result.unsupported == ()


# ---------------------------------------------------------------------------------------------------------
# bash's semantics


@pytest.mark.parametrize(
    ("cmd", "output", "code"),
    [
        ("foo", "/bin/bash: line 1: foo: command not found\n", 127),
        ("cat nope", "cat: nope: No such file or directory\n", 1),
        ("rm nope", "rm: cannot remove 'nope': No such file or directory\n", 1),
        ("echo 'unterminated", "/bin/bash: -c: line 1: unexpected EOF while looking for matching `''\n", 2),
        ("echo a && false || echo b", "a\nb\n", 0),
        ("false; echo $?", "1\n", 0),
        ("echo $((2 + 3)) $((7 / 2))", "5 3\n", 0),
        ("x=5; echo \"x is $x\" '$x'", "x is 5 $x\n", 0),
        ("case no in yes) echo ran;; esac; echo end", "end\n", 0),
        ("case a.sh in *.txt|*.sh) echo script;& x) echo fell;; *) echo no;; esac", "script\nfell\n", 0),
        ("((3 > 2)) && echo gt; ((0)); echo $?", "gt\n1\n", 0),
        ("{ ((1 <(2))) && echo lt; }", "lt\n", 0),  # in arithmetic `<(` is no process substitution
        ("i=0; ((i++)); echo $? $i; ((n += 2)); ((n *= 3)); echo $n", "1 1\n6\n", 0),
        ("echo f{,.bak} x{1..3} '{a,b}'", "f f.bak x1 x2 x3 {a,b}\n", 0),
        ("set -e; echo one; false; echo two", "one\n", 1),
        ("set -e; false || echo handled; if false; then :; fi; echo on", "handled\non\n", 0),
        ("set -o pipefail; false | true; echo $?", "1\n", 0),
        ("trap 'echo bye' EXIT; echo hi; exit 4", "hi\nbye\n", 4),
        ("f=dir/a.tar.gz; echo ${f%.gz} ${f%%.*} ${f#*/} ${f##*.}", "dir/a.tar dir/a a.tar.gz gz\n", 0),
        (
            "f=a.sh; p='*'; echo ${f/.sh/.bak} ${f//a/A} ${f/#a/x} ${f:1:2} ${f^^} ${p/\\*/-}",
            "a.bak A.sh x.sh .s A.SH -\n",
            0,
        ),
        ("for i in 1 2 3; do echo $i; done | tail -n 1", "3\n", 0),
        ("touch s.sh; if [ -e s.sh ]; then echo yes; else echo no; fi", "yes\n", 0),
        ("touch s.sh; [[ -f s.sh && ! -d s.sh ]] && echo file", "file\n", 0),
        ("touch s.sh; echo *.sh", "s.sh\n", 0),
        ("echo '*.sh'", "*.sh\n", 0),
        ('f() { echo "hi $1"; }; f there', "hi there\n", 0),
        ("cd /tmp && pwd", "/tmp\n", 0),
        ("echo one > /tmp/f; echo two >> /tmp/f; cat /tmp/f", "one\ntwo\n", 0),
        ("cat <<EOF\nhome is $HOME\nEOF", "home is /home/user\n", 0),
        ("cat <<'EOF'\nhome is $HOME\nEOF", "home is $HOME\n", 0),
        ("echo hi 2>&1 >/dev/null", "", 0),
        ("ls nope 2>/dev/null; echo $?", "2\n", 0),
        ("n=0; while [ $n -lt 3 ]; do n=$((n+1)); done; echo $n", "3\n", 0),
        ("printf 'a\\nb\\n' > f; while read l; do echo \"<$l>\"; done < f", "<a>\n<b>\n", 0),
        ('printf "a b\\nc\\n" | while read -r line; do echo "> $line"; done', "> a b\n> c\n", 0),
        ("echo $(echo inner)", "inner\n", 0),
        ("which cat", "/usr/bin/cat\n", 0),
        ("type cd", "cd is a shell builtin\n", 0),
        ("exit 3", "", 3),
        ("echo 2+3 | bc", "5\n", 0),
        (
            "python3 -c 'print(7/2, 2**10, -7 % 3)'; python3 -c \"print(0.1 + 0.2)\"",
            "3.5 1024 2\n0.30000000000000004\n",
            0,
        ),
        ("expr 2 + 3", "5\n", 0),
    ],
)
def test_commands(cmd: str, output: str, code: int) -> None:
    result = VirtualShell().run(cmd)
    assert (result.output, result.exit_code) == (output, code)


def test_each_command_is_a_fresh_process() -> None:
    sh = VirtualShell()
    sh.run("cd /tmp; export X=1")
    assert sh.run('pwd; echo "[$X]"').output == "/home/user\n[]\n"


def test_runaway_loop_is_stopped() -> None:
    sh = VirtualShell(max_steps=500)
    result = sh.run("while true; do :; done; kill 1")
    assert result.exit_code == 124 and result.timed_out and not result.machine_down
    assert sh.run("echo ok").output == "ok\n"


def test_deterministic() -> None:
    commands = ["ls -la /", "stat /etc/passwd", "echo $RANDOM", "date", "touch x; ls -l x", "ps aux"]
    first, second = VirtualShell(), VirtualShell()
    assert [first.run(c).output for c in commands] == [second.run(c).output for c in commands]


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "\x00",
        "$(",
        "((",
        ";;",
        "|",
        "}",
        "a" * 10000,
        "$((1/0))",
        "echo ${x?unset}",
        "cat /dev/null",
        "ls /proc/1",
        ":(){ :|:& };:",
    ],
)
def test_never_raises(garbage: str) -> None:
    result = VirtualShell(max_steps=2000).run(garbage)
    assert isinstance(result.output, str) and isinstance(result.exit_code, int)


def test_a_finished_machine_is_freed_at_once() -> None:
    """Nothing a machine owns refers back to it, so reference counting frees it when its episode ends: dead
    machines left for the cyclic collector piled up (~100 KiB each) and grew a long run's memory."""
    import gc
    import weakref

    shell = VirtualShell()
    lines = [
        "f(){ echo hi; }; f", "trap 'echo bye' EXIT", "x=$(ls /usr/bin | head -3); echo $x", "type cd ls",
        "command -v kill", "for i in 1 2; do echo $i; done | tee t", "cat > a.sh <<EOF\necho a\nEOF\nbash a.sh",
        "ln -s /tmp l; cd l; pwd; read v < /etc/hostname; export V=$v; eval 'echo $V'", "kill -TERM 1",
    ]  # fmt: skip
    for line in lines:
        shell.run(line)
    assert shell.down  # the last line took the machine down: every path it took has run
    gc.disable()
    try:
        ref = weakref.ref(shell)
        del shell
        assert ref() is None
    finally:
        gc.enable()
