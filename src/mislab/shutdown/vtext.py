"""Simulated text utilities: cat, head, tail, wc, grep, sed, sort, uniq, cut, tr, xxd, hexdump, strings, …

Each takes a `Proc` and argv (argv[0] is the name) and returns an exit status, writing like GNU coreutils
would. Only the options models commonly use are implemented; an unknown option gets GNU's error message.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from mislab.shutdown.shwords import Unfaithful
from mislab.shutdown.syntax import SYNTAX, read_args
from mislab.shutdown.vfs import Dir, FSError
from mislab.shutdown.vproc import Proc, bad_option, join_lines, parse_count, read_inputs, split_lines

Utility = Callable[[Proc, list[str]], int]


def cat(proc: Proc, argv: list[str]) -> int:
    number = show_ends = False
    files = []
    for a in argv[1:]:
        if a.startswith("-") and len(a) > 1:
            number = number or "n" in a
            show_ends = show_ends or "A" in a or "E" in a
        else:
            files.append(a)
    inputs, status = read_inputs(proc, "cat", files)
    for f, text in inputs:
        if isinstance(proc.fs.lookup(f, proc.cwd), Dir):
            proc.error(f"cat: {f}: Is a directory")
            status = 1
            continue
        if number or show_ends:
            lines = text.split("\n")
            trailing = lines.pop() if lines else ""
            body = [
                (f"{k:6d}\t" if number else "") + line + ("$" if show_ends else "") for k, line in enumerate(lines, 1)
            ]
            text = join_lines(body) + trailing
        proc.out.write(text)
    return status


def tac(proc: Proc, argv: list[str]) -> int:
    inputs, status = read_inputs(proc, "tac", argv[1:])
    for _, text in inputs:
        proc.out.write(join_lines(list(reversed(split_lines(text)))))
    return status


def _head_tail_count(argv: list[str], name: str) -> tuple[str, str, list[str]] | None:
    """(unit "n"/"c", count text, files) from `-n N`, `-N`, `-c N`, `--lines=N`."""
    unit, count, files = "n", "10", []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-n", "-c", "--lines", "--bytes") and i + 1 < len(args):
            unit, count = ("c" if a in ("-c", "--bytes") else "n"), args[i + 1]
            i += 2
            continue
        if re.fullmatch(r"-[nc][+-]?\d+[KMG]?", a):
            unit, count = a[1], a[2:]
        elif re.fullmatch(r"-\d+", a):
            count = a[1:]
        elif a.startswith(("--lines=", "--bytes=")):
            unit, count = ("c" if a.startswith("--bytes") else "n"), a.split("=", 1)[1]
        elif a in ("-f", "-F", "-q", "-v", "--follow"):
            pass
        elif a.startswith("-") and len(a) > 1:
            return None
        else:
            files.append(a)
        i += 1
    return unit, count, files


def head(proc: Proc, argv: list[str]) -> int:
    return _head_tail(proc, argv, "head")


def tail(proc: Proc, argv: list[str]) -> int:
    return _head_tail(proc, argv, "tail")


def _head_tail(proc: Proc, argv: list[str], name: str) -> int:
    parsed = _head_tail_count(argv, name)
    if parsed is None:
        return bad_option(proc, name, next(a for a in argv[1:] if a.startswith("-")))
    unit, count, files = parsed
    n = parse_count(count.lstrip("+"))
    if n is None:
        proc.error(f"{name}: invalid number of {'bytes' if unit == 'c' else 'lines'}: '{count}'")
        return 1
    inputs, status = read_inputs(proc, name, files)
    for k, (f, text) in enumerate(inputs):
        if len(inputs) > 1:
            proc.out.write(("\n" if k else "") + f"==> {f} <==\n")
        if unit == "c":
            data = text[:n] if name == "head" else (text[n - 1 :] if count.startswith("+") else text[-n:] if n else "")
            proc.out.write(data)
            continue
        lines = text.splitlines(keepends=True)
        if name == "head":
            chosen = lines[:n] if not count.startswith("-") else lines[: len(lines) - n]
        elif count.startswith("+"):
            chosen = lines[max(n - 1, 0) :]
        else:
            chosen = lines[-n:] if n else []
        proc.out.write("".join(chosen))
    return status


def wc(proc: Proc, argv: list[str]) -> int:
    long_names = {"--lines": "l", "--words": "w", "--chars": "m", "--bytes": "c"}
    flags = "".join(
        long_names.get(a, "") if a.startswith("--") else a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1
    )
    want = [c for c in "lwmc" if c in flags] or ["l", "w", "c"]
    files = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    inputs, status = read_inputs(proc, "wc", files)
    rows: list[tuple[list[int], str]] = []
    for f, text in inputs:
        counts = {
            "l": text.count("\n"),
            "w": len(text.split()),
            "m": len(text),
            "c": len(text.encode("utf-8", "surrogateescape")),
        }
        rows.append(([counts[c] for c in want], "" if f == "-" and not files else f))
    if len(rows) > 1:
        rows.append(([sum(r[0][k] for r in rows) for k in range(len(want))], "total"))
    single = len(want) == 1 and len(rows) == 1
    width = 1 if single else max(len(str(v)) for r in rows for v in r[0])
    if not files and not single:
        width = max(width, 7)
    for values, label in rows:
        line = " ".join(str(v).rjust(width) for v in values)
        proc.print(f"{line} {label}" if label else line)
    return status


# ---------------------------------------------------------------------------------------------------------
# Regular expressions: POSIX basic/extended syntax → Python.

_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "word": r"\w",
    "print": r" -~",
    "graph": r"!-~",
    "cntrl": r"\x00-\x1f",
}


def posix_regex(pattern: str, *, extended: bool) -> str:
    """Translate a POSIX BRE (or ERE with `extended`) to Python's `re` syntax."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            end, body = _bracket(pattern, i)
            out.append(body)
            i = end
            continue
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            if not extended and n in "(){}+?|":
                out.append(n)
            elif n in "<>":
                out.append(r"\b")
            else:
                out.append("\\" + n)
            i += 2
            continue
        if not extended and c in "(){}+?|":
            out.append("\\" + c)
        elif extended and c == "{" and not re.match(r"\{\d*(,\d*)?\}", pattern[i:]):
            out.append(r"\{")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _bracket(pattern: str, i: int) -> tuple[int, str]:
    j = i + 1
    body = ["["]
    if j < len(pattern) and pattern[j] == "^":
        body.append("^")
        j += 1
    first = True
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and not first:
            body.append("]")
            return j + 1, "".join(body)
        m = re.match(r"\[:(\w+):\]", pattern[j:])
        if m and m.group(1) in _POSIX_CLASSES:
            body.append(_POSIX_CLASSES[m.group(1)])
            j += m.end()
        else:
            body.append("\\" + c if c in "\\[]" else c)
            j += 1
        first = False
    return len(pattern), re.escape(pattern[i:])  # no closing bracket: a literal "["


# ---------------------------------------------------------------------------------------------------------
# grep


def grep(proc: Proc, argv: list[str]) -> int:
    name = argv[0]
    parsed = read_args(argv[1:], SYNTAX["grep"])
    if parsed.bad is not None:
        if parsed.bad.startswith("--"):
            proc.error(f"{name}: unrecognized option '{parsed.bad}'")
        else:
            proc.error(f"{name}: invalid option -- '{parsed.bad[1:2]}'")
            proc.error("Usage: grep [OPTION]... PATTERNS [FILE]...")
        return 2
    opts = {"r" if c == "R" else c for c in parsed.flags} | {"egrep": {"E"}, "fgrep": {"F"}}.get(name, set())
    patterns: list[str] = []
    after = before = 0
    for letter, value in parsed.values:
        if letter in "dD":
            raise Unfaithful(f"grep -{letter}")
        if letter == "f":
            try:
                patterns.extend(split_lines(proc.fs.read(value, proc.cwd)))
            except FSError as err:
                proc.error(f"{name}: {value}: {err}")
                return 2
        n = int(value) if value.isdigit() else 0
        patterns += [value] if letter == "e" else []
        after = n if letter in "AC" else after
        before = n if letter in "BC" else before
    operands = [argv[1 + k] for k in parsed.operands]
    if not patterns:
        if not operands:
            proc.error("Usage: grep [OPTION]... PATTERNS [FILE]...")
            proc.error("Try 'grep --help' for more information.")
            return 2
        patterns = [operands.pop(0)]
    regex = _grep_regex(patterns, opts)
    if regex is None:
        proc.error(f"{name}: Unmatched ( or \\(")
        return 2
    files = _grep_files(proc, name, operands, "r" in opts or name == "rgrep")
    if files is None:
        return 2
    with_name = ("H" in opts or len(files) > 1 or "r" in opts) and "h" not in opts
    matched_any = False
    status = 0
    for f in files:
        if f == "-":
            text = proc.stdin
        else:
            try:
                text = proc.fs.read(f, proc.cwd)
            except FSError as err:
                if "s" not in opts:
                    proc.error(f"{name}: {f}: {err}")
                status = 2
                continue
        label = "(standard input)" if f == "-" else f
        hits = _grep_text(proc, text, regex, opts, label if with_name else None, before, after)
        matched_any = matched_any or hits > 0
        if "q" in opts and matched_any:
            return 0
    return 0 if matched_any else (status or 1)


def _grep_regex(patterns: list[str], opts: set[str]) -> re.Pattern[str] | None:
    parts = [re.escape(p) if "F" in opts else posix_regex(p, extended="E" in opts) for p in patterns]
    body = "|".join(f"(?:{p})" for p in parts)
    if "w" in opts:
        body = rf"(?<!\w)(?:{body})(?!\w)"
    if "x" in opts:
        body = rf"^(?:{body})$"
    try:
        return re.compile(body, re.IGNORECASE if "i" in opts else 0)
    except re.error:
        return None


def _grep_files(proc: Proc, name: str, operands: list[str], recursive: bool) -> list[str] | None:
    if not operands:
        operands = ["."] if recursive else ["-"]
    files: list[str] = []
    for f in operands:
        node = proc.fs.lookup(f, proc.cwd)
        if isinstance(node, Dir):
            if not recursive:
                proc.error(f"{name}: {f}: Is a directory")
                continue
            files.extend(p for p, n in proc.fs.walk(f, proc.cwd) if not isinstance(n, Dir))
        else:
            files.append(f)
    return files


def _grep_text(
    proc: Proc, text: str, regex: re.Pattern[str], opts: set[str], label: str | None, before: int, after: int
) -> int:
    lines = split_lines(text)
    invert = "v" in opts
    hits = [k for k, line in enumerate(lines) if bool(regex.search(line)) != invert]
    if "q" in opts:
        return len(hits)
    if "c" in opts:
        proc.print(f"{label}:{len(hits)}" if label else str(len(hits)))
        return len(hits)
    if "l" in opts or "L" in opts:
        if (hits and "l" in opts) or (not hits and "L" in opts):
            proc.print(label or "(standard input)")
        return len(hits)
    shown: set[int] = set()
    last = -2
    for k in hits:
        for j in range(max(0, k - before), min(len(lines), k + after + 1)):
            if j in shown:
                continue
            if (before or after) and last >= 0 and j > last + 1:
                proc.print("--")
            shown.add(j)
            last = j
            sep = ":" if j == k or j in hits else "-"
            prefix = (f"{label}{sep}" if label else "") + (f"{j + 1}{sep}" if "n" in opts else "")
            if "o" in opts and not invert and j in hits:
                for m in regex.finditer(lines[j]):
                    proc.print(prefix + m.group())
            else:
                proc.print(prefix + lines[j])
    return len(hits)


# ---------------------------------------------------------------------------------------------------------
# sed


class SedError(ValueError):
    pass


@dataclass
class _SedCmd:
    addr1: object  # int line number, "$", a compiled regex, or None
    addr2: object
    negate: bool
    op: str
    regex: re.Pattern[str] | None = None
    replacement: list[str | int] | None = None  # literal text and group numbers
    count: int = 1  # 0 = every match (the g flag)
    print_after: bool = False
    text: str = ""
    in_range: bool = False


def _sed_regex(body: str, extended: bool, flags: str = "") -> re.Pattern[str]:
    try:
        return re.compile(posix_regex(body, extended=extended), re.IGNORECASE if "I" in flags or "i" in flags else 0)
    except re.error as err:
        raise SedError(f"-e expression #1, char 0: {err}") from err


def _read_delimited(script: str, i: int, delim: str) -> tuple[str, int]:
    out: list[str] = []
    while i < len(script):
        c = script[i]
        if c == "\\" and i + 1 < len(script):
            nxt = script[i + 1]
            out.append(nxt if nxt == delim else "\\" + nxt)
            i += 2
            continue
        if c == delim:
            return "".join(out), i + 1
        if c == "\n":
            break
        out.append(c)
        i += 1
    raise SedError(f"-e expression #1, char {i}: unterminated `s' command")


def _parse_replacement(text: str) -> list[str | int]:
    parts: list[str | int] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            parts.append(int(n) if n.isdigit() else {"n": "\n", "t": "\t", "&": "&"}.get(n, n))
            i += 2
        elif c == "&":
            parts.append(0)
            i += 1
        else:
            parts.append(c)
            i += 1
    return parts


def _parse_address(script: str, i: int, extended: bool) -> tuple[object, int]:
    if i < len(script) and script[i].isdigit():
        m = re.match(r"\d+", script[i:])
        assert m is not None
        return int(m.group()), i + m.end()
    if i < len(script) and script[i] == "$":
        return "$", i + 1
    if i < len(script) and script[i] in "/\\":
        delim = "/"
        if script[i] == "\\":
            delim = script[i + 1]
            i += 1
        body, i = _read_delimited(script, i + 1, delim)
        flags = ""
        if i < len(script) and script[i] in "IM":
            flags, i = script[i], i + 1
        return _sed_regex(body, extended, flags), i
    return None, i


def parse_sed(script: str, extended: bool) -> list[_SedCmd]:
    cmds: list[_SedCmd] = []
    i = 0
    while i < len(script):
        while i < len(script) and script[i] in " \t\n;":
            i += 1
        if i >= len(script):
            break
        addr1, i = _parse_address(script, i, extended)
        addr2 = None
        if addr1 is not None and i < len(script) and script[i] == ",":
            addr2, i = _parse_address(script, i + 1, extended)
        while i < len(script) and script[i] == " ":
            i += 1
        negate = i < len(script) and script[i] == "!"
        i += negate
        if i >= len(script):
            raise SedError(f"-e expression #1, char {i}: missing command")
        op = script[i]
        i += 1
        if op in "sy" and i >= len(script):
            raise SedError(f"-e expression #1, char {i}: unterminated `{op}' command")
        cmd = _SedCmd(addr1, addr2, negate, op)
        if op == "s":
            delim = script[i]
            body, i = _read_delimited(script, i + 1, delim)
            repl, i = _read_delimited(script, i, delim)
            m = re.match(r"[gpiIe0-9]*", script[i:])
            flags = m.group() if m else ""
            i += len(flags)
            cmd.regex = _sed_regex(body, extended, flags)
            cmd.replacement = _parse_replacement(repl)
            digits = "".join(c for c in flags if c.isdigit())
            cmd.count = 0 if "g" in flags else int(digits or 1)
            cmd.print_after = "p" in flags
        elif op == "y":
            delim = script[i]
            src, i = _read_delimited(script, i + 1, delim)
            dst, i = _read_delimited(script, i, delim)
            if len(src) != len(dst):
                raise SedError(f"-e expression #1, char {i}: strings for `y' command are different lengths")
            cmd.text = src + "\0" + dst
        elif op in "aic":
            m = re.match(r"\\?\n?[ \t]*(.*)", script[i:])
            text = m.group(1) if m else ""
            cmd.text = text.split("\n")[0]
            i += (m.end() if m else 0) - (len(text) - len(cmd.text))
        elif op in "dDpPqQ=nNhHgGxl":
            if op in "qQ":
                m = re.match(r"\s*\d*", script[i:])
                i += m.end() if m else 0
        elif op in "{}":
            raise SedError(f"-e expression #1, char {i}: blocks are not supported")
        else:
            raise SedError(f"-e expression #1, char {i}: unknown command: `{op}'")
        cmds.append(cmd)
    return cmds


def _sed_matches(cmd: _SedCmd, line: str, n: int, last: bool) -> bool:
    def hit(addr: object) -> bool:
        if isinstance(addr, int):
            return n == addr
        if addr == "$":
            return last
        return isinstance(addr, re.Pattern) and bool(addr.search(line))

    if cmd.addr1 is None:
        result = True
    elif cmd.addr2 is None:
        result = hit(cmd.addr1)
    elif cmd.in_range:
        result = True
        if hit(cmd.addr2) or (isinstance(cmd.addr2, int) and n >= cmd.addr2):
            cmd.in_range = False
    elif hit(cmd.addr1):
        result = True
        cmd.in_range = not (isinstance(cmd.addr2, int) and cmd.addr2 <= n)
    else:
        result = False
    return result != cmd.negate


def _substitute(cmd: _SedCmd, line: str) -> tuple[str, bool]:
    assert cmd.regex is not None and cmd.replacement is not None
    seen = 0
    changed = False
    parts = cmd.replacement

    def repl(m: re.Match[str]) -> str:
        nonlocal seen, changed
        seen += 1
        if cmd.count and seen != cmd.count:
            return m.group()
        changed = True
        return "".join(p if isinstance(p, str) else (m.group(p) or "") for p in parts)

    return cmd.regex.sub(repl, line), changed


def run_sed(cmds: list[_SedCmd], lines: list[str], quiet: bool) -> tuple[list[str], bool]:
    """Apply a sed program; returns the output lines and whether a `q` stopped it."""
    out: list[str] = []
    for n, line in enumerate(lines, 1):
        last = n == len(lines)
        deleted = False
        appended: list[str] = []
        for cmd in cmds:
            if not _sed_matches(cmd, line, n, last):
                continue
            if cmd.op == "s":
                line, changed = _substitute(cmd, line)
                if changed and cmd.print_after:
                    out.append(line)
            elif cmd.op in "dD":
                deleted = True
                break
            elif cmd.op in "pP":
                out.append(line)
            elif cmd.op == "=":
                out.append(str(n))
            elif cmd.op == "a":
                appended.append(cmd.text)
            elif cmd.op == "i":
                out.append(cmd.text)
            elif cmd.op == "c":
                out.append(cmd.text)
                deleted = True
                break
            elif cmd.op == "y":
                src, dst = cmd.text.split("\0")
                line = line.translate(str.maketrans(src, dst))
            elif cmd.op in "qQ":
                if cmd.op == "q" and not quiet:
                    out.append(line)
                return out + appended, True
        if not deleted and not quiet:
            out.append(line)
        out.extend(appended)
    return out, False


def sed(proc: Proc, argv: list[str]) -> int:
    parsed = read_args(argv[1:], SYNTAX["sed"])
    if parsed.bad is not None:
        return bad_option(proc, "sed", parsed.bad)
    scripts: list[str] = []
    for letter, text in parsed.values:
        if letter not in "ef":
            continue
        try:
            scripts.append(proc.fs.read(text, proc.cwd) if letter == "f" else text)
        except FSError as err:
            proc.error(f"sed: couldn't open file {text}: {err}")
            return 1
    operands = [argv[1 + k] for k in parsed.operands]
    if not scripts:
        if not operands:
            proc.error("Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...")
            return 1
        scripts.append(operands.pop(0))
    try:
        program = parse_sed("\n".join(scripts), bool(parsed.flags & {"E", "r"}))
    except SedError as err:
        proc.error(f"sed: {err}")
        return 1
    quiet, in_place = "n" in parsed.flags, parsed.value("i")
    if in_place is not None:
        return _sed_in_place(proc, program, operands, quiet, in_place)
    inputs, status = read_inputs(proc, "sed", operands)
    streams = (
        [split_lines(t) for _, t in inputs]
        if "s" in parsed.flags
        else [split_lines("".join(t if t.endswith("\n") or not t else t + "\n" for _, t in inputs))]
    )
    for lines in streams:
        out, stopped = run_sed(program, lines, quiet)
        proc.out.write(join_lines(out))
        if stopped:
            break
    return status


def _sed_in_place(proc: Proc, program: list[_SedCmd], files: list[str], quiet: bool, suffix: str) -> int:
    if not files:
        proc.error("sed: no input files")
        return 1
    status = 0
    for f in files:
        try:
            text = proc.fs.read(f, proc.cwd)
        except FSError as err:
            proc.error(f"sed: can't read {f}: {err}")
            status = 2
            continue
        for cmd in program:
            cmd.in_range = False
        out, _ = run_sed(program, split_lines(text), quiet)
        if suffix:
            backup = suffix.replace("*", f.rsplit("/", 1)[-1]) if "*" in suffix else f + suffix
            proc.fs.write(backup, proc.cwd, text)
        new = join_lines(out)
        if not text.endswith("\n") and new.endswith("\n") and out:
            new = new[:-1]
        proc.fs.write(f, proc.cwd, new)
    return status


# ---------------------------------------------------------------------------------------------------------
# Line tools


def sort(proc: Proc, argv: list[str]) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    files = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    inputs, status = read_inputs(proc, "sort", files)
    lines = [line for _, t in inputs for line in split_lines(t)]
    if "n" in flags:

        def key(s: str) -> tuple[float, str]:
            m = re.match(r"\s*-?\d+(\.\d+)?", s)
            return (float(m.group()) if m else 0.0, s)

        lines.sort(key=key)
    else:
        lines.sort()
    if "r" in flags:
        lines.reverse()
    if "u" in flags:
        lines = list(dict.fromkeys(lines))
    proc.out.write(join_lines(lines))
    return status


def uniq(proc: Proc, argv: list[str]) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    files = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    inputs, status = read_inputs(proc, "uniq", files[:1])
    groups: list[tuple[str, int]] = []
    for line in split_lines(inputs[0][1] if inputs else ""):
        if groups and groups[-1][0] == line:
            groups[-1] = (line, groups[-1][1] + 1)
        else:
            groups.append((line, 1))
    for line, n in groups:
        if ("d" in flags and n < 2) or ("u" in flags and n > 1):
            continue
        proc.print(f"{n:7d} {line}" if "c" in flags else line)
    return status


def cut(proc: Proc, argv: list[str]) -> int:
    delim, fields, chars, files = "\t", "", "", []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-d", "-f", "-c", "-b") and i + 1 < len(args):
            value = args[i + 1]
            i += 2
        elif re.fullmatch(r"-[dfcb].+", a):
            value = a[2:]
            i += 1
        else:
            files.append(a)
            i += 1
            continue
        if a[1] == "d":
            delim = value
        elif a[1] == "f":
            fields = value
        else:
            chars = value
    spec = fields or chars
    if not spec:
        proc.error("cut: you must specify a list of bytes, characters, or fields")
        return 1
    wanted: set[int] = set()
    for part in spec.split(","):
        lo, dash, hi = part.partition("-")
        if not (lo or hi) or not (lo.isdigit() or not lo) or not (hi.isdigit() or not hi):
            proc.error(f"cut: invalid field value '{part}'")
            return 1
        start = int(lo) if lo else 1
        end = int(hi) if hi else (10_000 if dash else start)
        wanted.update(range(start, end + 1))
    inputs, status = read_inputs(proc, "cut", files)
    for _, text in inputs:
        for line in split_lines(text):
            if fields:
                cols = line.split(delim)
                proc.print(delim.join(c for k, c in enumerate(cols, 1) if k in wanted) if len(cols) > 1 else line)
            else:
                proc.print("".join(c for k, c in enumerate(line, 1) if k in wanted))
    return status


def _tr_set(spec: str) -> str:
    spec = spec.replace("[:upper:]", "A-Z").replace("[:lower:]", "a-z").replace("[:digit:]", "0-9")
    spec = spec.replace("[:space:]", " \t\n\r\f\v").replace("[:alpha:]", "a-zA-Z").replace("\\n", "\n")
    spec = spec.replace("\\t", "\t")
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def tr(proc: Proc, argv: list[str]) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    sets = [_tr_set(a) for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    text = proc.stdin
    if "d" in flags and sets:
        text = "".join(c for c in text if c not in sets[0])
    elif len(sets) >= 2 and sets[1]:
        dst = sets[1] + sets[1][-1] * max(0, len(sets[0]) - len(sets[1]))
        text = text.translate(str.maketrans(sets[0], dst[: len(sets[0])]))
    else:
        proc.error("tr: missing operand")
        return 1
    if "s" in flags and sets:
        squeeze = sets[-1]
        text = re.sub("|".join(f"{re.escape(c)}{{2,}}" for c in squeeze) or "(?!)", lambda m: m.group()[0], text)
    proc.out.write(text)
    return 0


# ---------------------------------------------------------------------------------------------------------
# Binary views


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _printable(b: int) -> str:
    return chr(b) if 32 <= b < 127 else "."


def xxd(proc: Proc, argv: list[str]) -> int:
    cols, limit, skip, plain = 16, None, 0, False
    files = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-c", "-l", "-s", "-g") and i + 1 < len(args):
            value = parse_count(args[i + 1]) or 0
            cols = value if a == "-c" else cols
            limit = value if a == "-l" else limit
            skip = value if a == "-s" else skip
            i += 2
            continue
        if a in ("-p", "-ps", "-plain"):
            plain = True
        elif a.startswith("-") and len(a) > 1:
            return bad_option(proc, "xxd", a)
        else:
            files.append(a)
        i += 1
    inputs, status = read_inputs(proc, "xxd", files[:1])
    if status:
        return 2
    data = _bytes(inputs[0][1])[skip:]
    if limit is not None:
        data = data[:limit]
    if plain:
        for k in range(0, len(data), 30):
            proc.print(data[k : k + 30].hex())
        return 0
    cols = max(cols, 1)
    for k in range(0, len(data), cols):
        chunk = data[k : k + cols]
        groups = " ".join(chunk[j : j + 2].hex() for j in range(0, len(chunk), 2))
        width = cols * 2 + (cols + 1) // 2 - 1
        proc.print(f"{k + skip:08x}: {groups.ljust(width)}  {''.join(_printable(b) for b in chunk)}")
    return 0


def hexdump(proc: Proc, argv: list[str]) -> int:
    canonical = argv[0] == "hd" or "-C" in argv[1:]
    files = [a for a in argv[1:] if not a.startswith("-")]
    inputs, status = read_inputs(proc, argv[0], files)
    data = b"".join(_bytes(t) for _, t in inputs)
    for k in range(0, len(data), 16):
        chunk = data[k : k + 16]
        if canonical:
            hexes = " ".join(f"{b:02x}" for b in chunk[:8]) + "  " + " ".join(f"{b:02x}" for b in chunk[8:])
            proc.print(f"{k:08x}  {hexes.ljust(49)} |{''.join(_printable(b) for b in chunk)}|")
        else:
            words = [int.from_bytes(chunk[j : j + 2].ljust(2, b"\0"), "little") for j in range(0, len(chunk), 2)]
            proc.print(f"{k:07x} " + " ".join(f"{w:04x}" for w in words))
    if data:
        proc.print(f"{len(data):08x}" if canonical else f"{len(data):07x}")
    return status


def od(proc: Proc, argv: list[str]) -> int:
    chars = "-c" in argv[1:]
    files = [a for a in argv[1:] if not a.startswith("-")]
    inputs, status = read_inputs(proc, "od", files)
    data = b"".join(_bytes(t) for _, t in inputs)
    names = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
    for k in range(0, len(data), 16):
        chunk = data[k : k + 16]
        if chars:
            cells = [names.get(b, chr(b) if 32 <= b < 127 else f"{b:03o}") for b in chunk]
            proc.print(f"{k:07o} " + "".join(c.rjust(4) for c in cells))
        else:
            words = [int.from_bytes(chunk[j : j + 2].ljust(2, b"\0"), "little") for j in range(0, len(chunk), 2)]
            proc.print(f"{k:07o} " + " ".join(f"{w:06o}" for w in words))
    proc.print(f"{len(data):07o}")
    return status


def strings(proc: Proc, argv: list[str]) -> int:
    min_len = 4
    files = []
    args = argv[1:]
    for k, a in enumerate(args):
        if a == "-n" and k + 1 < len(args):
            min_len = int(args[k + 1]) if args[k + 1].isdigit() else 4
        elif re.fullmatch(r"-\d+", a):
            min_len = int(a[1:])
        elif not a.startswith("-") and (k == 0 or args[k - 1] != "-n"):
            files.append(a)
    inputs, status = read_inputs(proc, "strings", files)
    for _, text in inputs:
        for m in re.finditer(rf"[\x20-\x7e\t]{{{min_len},}}", text):
            proc.print(m.group())
    return status


def checksum(proc: Proc, argv: list[str]) -> int:
    algorithm = argv[0].removesuffix("sum") or "md5"
    files = [a for a in argv[1:] if not (a.startswith("-") and len(a) > 1)]
    inputs, status = read_inputs(proc, argv[0], files)
    for f, text in inputs:
        if isinstance(proc.fs.lookup(f, proc.cwd), Dir):
            proc.error(f"{argv[0]}: {f}: Is a directory")
            status = 1
            continue
        digest = hashlib.new(algorithm, _bytes(text)).hexdigest()
        proc.print(f"{digest}  {f}")
    return status


def b64(proc: Proc, argv: list[str]) -> int:
    decode = any(a in ("-d", "--decode") for a in argv[1:])
    files = [a for a in argv[1:] if not a.startswith("-")]
    inputs, status = read_inputs(proc, "base64", files)
    data = "".join(t for _, t in inputs)
    if decode:
        try:
            proc.out.write(base64.b64decode("".join(data.split())).decode("utf-8", "surrogateescape"))
        except ValueError:
            proc.error("base64: invalid input")
            return 1
    else:
        encoded = base64.b64encode(_bytes(data)).decode()
        proc.out.write(join_lines([encoded[k : k + 76] for k in range(0, len(encoded), 76)]))
    return status


TEXT_UTILITIES: dict[str, Utility] = {
    "cat": cat, "tac": tac, "head": head, "tail": tail, "wc": wc, "grep": grep, "egrep": grep, "fgrep": grep,
    "rgrep": grep, "sed": sed, "sort": sort, "uniq": uniq, "cut": cut, "tr": tr, "xxd": xxd, "hexdump": hexdump,
    "hd": hexdump, "od": od, "strings": strings, "md5sum": checksum, "sha1sum": checksum, "sha256sum": checksum,
    "sha512sum": checksum, "base64": b64,
}  # fmt: skip
