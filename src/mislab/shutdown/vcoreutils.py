"""Simulated file and system utilities: ls, stat, file, rm, mv, cp, chmod, ln, touch, truncate, mkdir, tee, …

Each takes a `Proc` and argv and returns an exit status, with GNU coreutils' messages. Changes go through
`VirtualFS`, which logs them.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TypeGuard

from mislab.shutdown.shwords import ExpansionError, Unfaithful, ansi_c_decode, arithmetic
from mislab.shutdown.syntax import SYNTAX, Args, chmod_args, read_args
from mislab.shutdown.vfs import (
    NOT_FOUND,
    Device,
    Dir,
    File,
    FSError,
    KernelDir,
    Node,
    Symlink,
    apply_mode,
    join,
    mode_string,
    normpath,
)
from mislab.shutdown.vproc import (
    OWNER,
    Proc,
    bad_option,
    byte_size,
    file_type_name,
    full_time,
    join_lines,
    ls_time,
    parse_count,
    split_lines,
)
from mislab.shutdown.vtext import TEXT_UTILITIES, Utility, posix_regex

HOSTNAME = "sandbox"
KERNEL = "6.8.0-1019-aws"
ELF_MAGIC = "\x7fELF"


def _args(proc: Proc, name: str, argv: list[str]) -> Args | int:
    """The arguments read by the utility's declared syntax, or the exit status of an unknown option."""
    parsed = read_args(argv[1:], SYNTAX[name])
    return parsed if parsed.bad is None else bad_option(proc, name, parsed.bad)


def _missing_operand(proc: Proc, name: str) -> int:
    proc.error(f"{name}: missing operand")
    proc.error(f"Try '{name} --help' for more information.")
    return 1


# ---------------------------------------------------------------------------------------------------------
# Looking


def _links(node: Node) -> int:
    if isinstance(node, KernelDir):  # its content is not modelled (a real /proc has one per process)
        return 2
    return len([c for c in node.entries.values() if isinstance(c, Dir)]) + 2 if isinstance(node, Dir) else 1


def _long_line(proc: Proc, name: str, node: Node, widths: tuple[int, int]) -> str:
    links = _links(node)
    size = byte_size(node)
    line = (
        f"{mode_string(node)} {str(links).rjust(widths[0])} {OWNER} {OWNER} {str(size).rjust(widths[1])} "
        f"{ls_time(node.mtime, proc.now())} {name}"
    )  # fmt: skip
    if isinstance(node, Symlink):
        line += f" -> {node.target}"
    return line


def _widths(nodes: list[Node]) -> tuple[int, int]:
    links = [_links(n) for n in nodes]
    return max((len(str(v)) for v in links), default=1), max((len(str(byte_size(n))) for n in nodes), default=1)


def ls(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "ls", argv)
    if isinstance(parsed, int):
        return parsed
    flags, operands = parsed.flags, [argv[1 + k] for k in parsed.operands]
    long = bool(flags & {"l", "g", "n", "o"})
    status = 0
    files: list[tuple[str, Node]] = []
    dirs: list[tuple[str, Dir]] = []
    for op in operands or ["."]:
        try:
            node = proc.fs.resolve(op, proc.cwd, follow=not long or op.endswith("/"))[1]
        except FSError as err:
            proc.error(f"ls: cannot access '{op}': {err}")
            status = 2
            continue
        target = proc.fs.lookup(op, proc.cwd) if isinstance(node, Symlink) else node
        if isinstance(target, Dir) and "d" not in flags and not (long and isinstance(node, Symlink)):
            dirs.append((op, target))
        else:
            files.append((op, node))
    if files:
        _ls_entries(proc, files, long)
    for k, (name, node) in enumerate(dirs):
        if len(dirs) > 1 or files or operands[1:]:
            proc.out.write(("\n" if k or files else "") + f"{name}:\n")
        entries = sorted(node.entries.items(), key=lambda kv: kv[0].lstrip(".").lower())
        if "a" in flags:
            parent = proc.fs.lookup(f"{name.rstrip('/')}/..", proc.cwd) or node
            entries = [(".", node), ("..", parent), *entries]
        elif "A" not in flags:
            entries = [(n, c) for n, c in entries if not n.startswith(".")]
        if "t" in flags:
            entries.sort(key=lambda kv: -kv[1].mtime)
        if "S" in flags:
            entries.sort(key=lambda kv: -byte_size(kv[1]))
        if "r" in flags:
            entries.reverse()
        if long:
            blocks = sum((byte_size(c) + 4095) // 4096 * 4 for _, c in entries if not isinstance(c, Symlink))
            proc.print(f"total {blocks}")
        _ls_entries(proc, entries, long)
    return status


def _ls_entries(proc: Proc, entries: list[tuple[str, Node]], long: bool) -> None:
    if not long:
        for name, _ in entries:
            proc.print(name)  # output to a pipe, not a terminal: one name per line
        return
    widths = _widths([n for _, n in entries])
    for name, node in entries:
        proc.print(_long_line(proc, name, node, widths))


def stat(proc: Proc, argv: list[str]) -> int:
    fmt: str | None = None
    follow = False
    operands: list[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-c", "--format", "--printf") and i + 1 < len(args):
            fmt = args[i + 1] + ("\n" if a != "--printf" else "")
            i += 2
            continue
        if a.startswith(("--format=", "-c")) and len(a) > 2:
            fmt = a.split("=", 1)[1] + "\n" if a.startswith("--") else a[2:] + "\n"
        elif a in ("-L", "--dereference"):
            follow = True
        elif a.startswith("-") and len(a) > 1:
            return bad_option(proc, "stat", a)
        else:
            operands.append(a)
        i += 1
    if not operands:
        return _missing_operand(proc, "stat")
    status = 0
    for op in operands:
        try:
            node = proc.fs.resolve(op, proc.cwd, follow=follow)[1]
        except FSError as err:
            proc.error(f"stat: cannot statx '{op}': {err}")
            status = 1
            continue
        proc.out.write(_stat_format(op, node, fmt) if fmt is not None else _stat_default(op, node))
    return status


def _stat_format(name: str, node: Node, fmt: str) -> str:
    values = {
        "a": f"{node.mode:o}", "A": mode_string(node), "s": str(byte_size(node)), "n": name,
        "N": f"'{name}'" + (f" -> '{node.target}'" if isinstance(node, Symlink) else ""),
        "U": OWNER, "G": OWNER, "u": "0", "g": "0", "F": file_type_name(node), "i": str(node.ino),
        "y": full_time(node.mtime), "Y": str(node.mtime), "h": "1", "b": str((byte_size(node) + 511) // 512),
        "%": "%",
    }  # fmt: skip
    return re.sub(r"%(.)", lambda m: values.get(m.group(1), m.group()), fmt).replace("\\n", "\n")


def _stat_default(name: str, node: Node) -> str:
    size = byte_size(node)
    shown = f"{name} -> {node.target}" if isinstance(node, Symlink) else name
    return (
        f"  File: {shown}\n"
        f"  Size: {size:<15} Blocks: {(size + 4095) // 4096 * 8:<10} IO Block: 4096   {file_type_name(node)}\n"
        f"Device: 0,52\tInode: {node.ino:<11} Links: 1\n"
        f"Access: ({node.mode:04o}/{mode_string(node)})  Uid: (    0/    root)   Gid: (    0/    root)\n"
        f"Access: {full_time(node.mtime)}\n"
        f"Modify: {full_time(node.mtime)}\n"
        f"Change: {full_time(node.mtime)}\n"
        " Birth: -\n"
    )


def describe(node: Node) -> str:
    """What `file` says about a node."""
    if isinstance(node, Dir):
        return "directory"
    if isinstance(node, Symlink):
        return f"symbolic link to {node.target}"
    if isinstance(node, Device):
        return "character special (1/3)"
    text = node.content
    if not text:
        return "empty"
    if text.startswith(ELF_MAGIC):
        return (
            "ELF 64-bit LSB pie executable, x86-64, version 1 (SYSV), dynamically linked, "
            "interpreter /lib64/ld-linux-x86-64.so.2, for GNU/Linux 3.2.0, stripped"
        )
    executable = " executable" if node.mode & 0o111 else ""
    kind = "ASCII text" if text.isascii() else "Unicode text, UTF-8 text"
    first = text.split("\n", 1)[0]
    if first.startswith("#!"):
        interpreter = first[2:].strip().split()
        prog = interpreter[-1].rsplit("/", 1)[-1] if interpreter else ""
        if prog == "bash":
            return f"Bourne-Again shell script, {kind}{executable}"
        if prog in ("sh", "dash"):
            return f"POSIX shell script, {kind}{executable}"
        if prog.startswith("python"):
            return f"Python script, {kind}{executable}"
        return f"a {' '.join(interpreter)} script, {kind}{executable}"
    return kind


def file_cmd(proc: Proc, argv: list[str]) -> int:
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if not operands:
        proc.error("Usage: file [-bcCdEhikLlNnprsSvzZ0] [--apple] [--extension] [--mime-encoding]")
        return 1
    brief = "-b" in argv
    for op in operands:
        node = proc.fs.lookup(op, proc.cwd, follow="-L" in argv)
        what = describe(node) if node is not None else f"cannot open `{op}' (No such file or directory)"
        proc.print(what if brief else f"{op}: {what}")
    return 0


def readlink(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "readlink", argv)
    if isinstance(parsed, int):
        return parsed
    flags, operands = parsed.flags, [argv[1 + k] for k in parsed.operands]
    if not operands:
        return _missing_operand(proc, argv[0])
    status = 0
    for op in operands:
        if argv[0] == "realpath" or flags & {"f", "e", "m"}:
            try:
                proc.print(proc.fs.abspath(op, proc.cwd))
            except FSError as err:
                if "m" in flags or ("f" in flags and str(err) == NOT_FOUND):
                    proc.print(proc.path(op))
                else:
                    if argv[0] == "realpath":
                        proc.error(f"realpath: {op}: {err}")
                    status = 1
            continue
        node = proc.fs.lookup(op, proc.cwd, follow=False)
        if isinstance(node, Symlink):
            proc.print(node.target)
        else:
            status = 1
    return status


def find(proc: Proc, argv: list[str]) -> int:
    args = argv[1:]
    start = next((k for k, a in enumerate(args) if a.startswith(("-", "(", "!"))), len(args))
    roots = args[:start] or ["."]
    expr = args[start:]
    tests: list[Callable[[str, Node], bool]] = []
    actions: list[list[str]] = []
    max_depth: int | None = None
    i = 0
    while i < len(expr):
        a = expr[i]
        value = expr[i + 1] if i + 1 < len(expr) else ""
        if a in ("-name", "-iname"):
            tests.append(_name_test(value, a == "-iname"))
            i += 2
        elif a in ("-path", "-wholename"):
            tests.append(_path_test(value))
            i += 2
        elif a == "-type":
            tests.append(_type_test({"f": File, "d": Dir, "l": Symlink}.get(value, Device)))
            i += 2
        elif a == "-maxdepth":
            max_depth = int(value) if value.isdigit() else None
            i += 2
        elif a == "-mindepth":
            i += 2
        elif a == "-perm":
            tests.append(_perm_test(value))
            i += 2
        elif a in ("-exec", "-execdir", "-ok"):
            end = next((j for j in range(i + 1, len(expr)) if expr[j] in (";", "+")), len(expr))
            if end == len(expr):
                proc.error(f"find: missing argument to `{a}'")
                return 1
            actions.append(expr[i + 1 : end])
            i = end + 1
        elif a in ("-delete", "-print", "-ls", "-print0"):
            actions.append([a])
            i += 1
        elif a in ("-o", "-or", "-a", "-and", "(", ")", "!", "-not"):
            i += 1
        else:
            proc.error(f"find: unknown predicate `{a}'")
            return 1
    status = 0
    for root in roots:
        try:
            walked = proc.fs.walk(root, proc.cwd)
        except FSError as err:
            proc.error(f"find: '{root}': {err}")
            status = 1
            continue
        depth0 = root.rstrip("/").count("/")
        # Children before their directory, so that -delete can empty a directory before removing it.
        for path, node in reversed(walked) if ["-delete"] in actions else walked:
            if max_depth is not None and path.rstrip("/").count("/") - depth0 > max_depth:
                continue
            if all(t(path, node) for t in tests):
                status |= _find_actions(proc, path, node, actions)
    return status


def _fnmatch(name: str, pattern: str, ignore_case: bool = False) -> bool:
    return fnmatchcase(name.lower(), pattern.lower()) if ignore_case else fnmatchcase(name, pattern)


def _name_test(pattern: str, ignore_case: bool) -> Callable[[str, Node], bool]:
    return lambda p, n: _fnmatch(p.rstrip("/").rsplit("/", 1)[-1] or "/", pattern, ignore_case)


def _path_test(pattern: str) -> Callable[[str, Node], bool]:
    return lambda p, n: _fnmatch(p, pattern)


def _type_test(kind: type) -> Callable[[str, Node], bool]:
    return lambda p, n: isinstance(n, kind)


def _perm_test(value: str) -> Callable[[str, Node], bool]:
    try:
        bits = int(value.lstrip("-/"), 8)
    except ValueError:
        return lambda p, n: False
    if value.startswith("-"):
        return lambda p, n: n.mode & bits == bits
    if value.startswith("/"):
        return lambda p, n: bool(n.mode & bits)
    return lambda p, n: n.mode & 0o7777 == bits


def _find_actions(proc: Proc, path: str, node: Node, actions: list[list[str]]) -> int:
    if not actions:
        proc.print(path)
        return 0
    status = 0
    for action in actions:
        if action == ["-print"]:
            proc.print(path)
        elif action == ["-print0"]:
            proc.out.write(path + "\0")
        elif action == ["-ls"]:
            proc.print(_long_line(proc, path, node, (3, 8)))
        elif action == ["-delete"]:
            try:
                if isinstance(node, Dir):
                    proc.fs.rmdir(path, proc.cwd)
                else:
                    proc.fs.unlink(path, proc.cwd)
            except FSError as err:
                proc.error(f"find: cannot delete '{path}': {err}")
                status = 1
        else:
            status |= 1 if proc.run([a.replace("{}", path) for a in action]) else 0
    return status


# ---------------------------------------------------------------------------------------------------------
# Changing


def rm(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "rm", argv)
    if isinstance(parsed, int):
        return parsed
    flags, operands = parsed.flags, [argv[1 + k] for k in parsed.operands]
    recursive = bool(flags & {"r", "R"})
    if not operands:
        return 0 if "f" in flags else _missing_operand(proc, "rm")
    status = 0
    for op in operands:
        base = op.rstrip("/").rsplit("/", 1)[-1]
        if base in (".", ".."):
            proc.error(f"rm: refusing to remove '.' or '..' directory: skipping '{op}'")
            status = 1
            continue
        if recursive and proc.path(op) == "/" and "--no-preserve-root" not in argv:
            proc.error("rm: it is dangerous to operate recursively on '/'")
            proc.error("rm: use --no-preserve-root to override this failsafe")
            status = 1
            continue
        node = proc.fs.lookup(op, proc.cwd, follow=False)
        if node is None:
            if "f" not in flags:
                proc.error(f"rm: cannot remove '{op}': No such file or directory")
                status = 1
            continue
        try:
            if isinstance(node, Dir):
                if recursive:
                    proc.fs.rmtree(op, proc.cwd)
                elif "d" in flags:
                    proc.fs.rmdir(op, proc.cwd)
                else:
                    proc.error(f"rm: cannot remove '{op}': Is a directory")
                    status = 1
                    continue
            else:
                proc.fs.unlink(op, proc.cwd)
        except FSError as err:
            proc.error(f"rm: cannot remove '{op}': {err}")
            status = 1
            continue
        if "v" in flags:
            proc.print(f"removed {'directory ' if isinstance(node, Dir) else ''}'{op}'")
    return status


def _target_and_sources(proc: Proc, name: str, argv: list[str]) -> tuple[set[str], list[str], str | None, bool] | int:
    """(flags, sources, destination, destination is a directory) for cp/mv/ln, or an exit status."""
    parsed = _args(proc, name, argv)
    if isinstance(parsed, int):
        return parsed
    flags, operands, target_dir = parsed.flags, [argv[1 + k] for k in parsed.operands], parsed.value("t")
    if target_dir is not None:
        return flags, operands, target_dir, True
    if not operands:
        return _missing_operand(proc, name)
    if len(operands) == 1:
        if name == "ln":
            return flags, operands, None, False
        proc.error(f"{name}: missing destination file operand after '{operands[0]}'")
        proc.error(f"Try '{name} --help' for more information.")
        return 1
    dest = operands[-1]
    dest_node = proc.fs.lookup(dest, proc.cwd, follow=not (name == "ln" and flags & {"n", "T"}))
    is_dir = isinstance(dest_node, Dir) and "T" not in flags
    if len(operands) > 2 and not is_dir:
        proc.error(f"{name}: target '{dest}' is not a directory")
        return 1
    return flags, operands[:-1], dest, is_dir


def landing_path(source: str, dest: str, is_dir: bool) -> str:
    """Where SOURCE lands when copied, moved or linked onto DEST."""
    return f"{dest.rstrip('/')}/{source.rstrip('/').rsplit('/', 1)[-1]}" if is_dir else dest


def mv(proc: Proc, argv: list[str]) -> int:
    parsed = _target_and_sources(proc, "mv", argv)
    if isinstance(parsed, int):
        return parsed
    flags, sources, dest, is_dir = parsed
    assert dest is not None
    status = 0
    for src in sources:
        landing = landing_path(src, dest, is_dir)
        src_node = proc.fs.lookup(src, proc.cwd, follow=False)
        if src_node is None:
            proc.error(f"mv: cannot stat '{src}': No such file or directory")
            status = 1
            continue
        if proc.fs.lookup(landing, proc.cwd, follow=False) is src_node:
            proc.error(f"mv: '{src}' and '{landing}' are the same file")
            status = 1
            continue
        if "n" in flags and proc.fs.lookup(landing, proc.cwd, follow=False) is not None:
            continue
        try:
            proc.fs.rename(src, landing, proc.cwd)
        except FSError as err:
            proc.error(f"mv: cannot move '{src}' to '{landing}': {err}")
            status = 1
            continue
        if "v" in flags:
            proc.print(f"renamed '{src}' -> '{landing}'")
    return status


def cp(proc: Proc, argv: list[str]) -> int:
    parsed = _target_and_sources(proc, "cp", argv)
    if isinstance(parsed, int):
        return parsed
    flags, sources, dest, is_dir = parsed
    assert dest is not None
    status = 0
    for src in sources:
        status |= _copy_one(proc, src, landing_path(src, dest, is_dir), flags)
    return status


def _copy_one(proc: Proc, src: str, landing: str, flags: set[str]) -> int:
    try:
        node = proc.fs.resolve(src, proc.cwd, follow="P" not in flags and "a" not in flags)[1]
    except FSError as err:
        proc.error(f"cp: cannot stat '{src}': {err}")
        return 1
    existing = proc.fs.lookup(landing, proc.cwd)
    if existing is node:
        proc.error(f"cp: '{src}' and '{landing}' are the same file")
        return 1
    if isinstance(node, Dir):
        if not flags & {"r", "R", "a"}:
            proc.error(f"cp: -r not specified; omitting directory '{src}'")
            return 1
        try:
            if existing is None:
                proc.fs.mkdir(landing, proc.cwd)
            for name in sorted(node.entries):
                _copy_one(proc, f"{src.rstrip('/')}/{name}", f"{landing.rstrip('/')}/{name}", flags)
        except FSError as err:
            proc.error(f"cp: cannot create directory '{landing}': {err}")
            return 1
        return 0
    if "n" in flags and existing is not None:
        return 0
    if isinstance(node, File) and not node.mode & 0o400:
        proc.error(f"cp: cannot open '{src}' for reading: Permission denied")
        return 1
    try:
        if isinstance(node, Symlink):
            if existing is not None:
                proc.fs.unlink(landing, proc.cwd)
            proc.fs.symlink(node.target, landing, proc.cwd)
        elif isinstance(existing, File):
            # An existing file keeps its inode and mode; only its content is replaced.
            proc.fs.write(landing, proc.cwd, node.content if isinstance(node, File) else "")
            existing.program = node.program if isinstance(node, File) else None
        else:
            content = node.content if isinstance(node, File) else ""
            mode = node.mode if flags & {"p", "a"} else node.mode & ~0o022
            program = node.program if isinstance(node, File) else None
            proc.fs.place(landing, proc.cwd, proc.fs.new_file(content, mode, program))
    except FSError as err:
        proc.error(f"cp: cannot create regular file '{landing}': {err}")
        return 1
    if "v" in flags:
        proc.print(f"'{src}' -> '{landing}'")
    return 0


def ln(proc: Proc, argv: list[str]) -> int:
    parsed = _target_and_sources(proc, "ln", argv)
    if isinstance(parsed, int):
        return parsed
    flags, sources, dest, is_dir = parsed
    status = 0
    for src in sources:
        link = landing_path(src, dest, is_dir) if dest is not None else src.rstrip("/").rsplit("/", 1)[-1]
        kind = "symbolic link" if "s" in flags else "hard link"
        existing = proc.fs.lookup(link, proc.cwd, follow=False)
        if existing is not None:
            if "f" not in flags:
                proc.error(f"ln: failed to create {kind} '{link}': File exists")
                status = 1
                continue
            if isinstance(existing, Dir):
                proc.error(f"ln: cannot overwrite directory '{link}'")
                status = 1
                continue
            proc.fs.unlink(link, proc.cwd)
        try:
            if "s" in flags:
                proc.fs.symlink(src, link, proc.cwd)
            else:
                proc.fs.link(src, link, proc.cwd)
        except FSError as err:
            what = f"failed to access '{src}'" if "s" not in flags else f"failed to create {kind} '{link}'"
            proc.error(f"ln: {what}: {err}")
            status = 1
            continue
        if "v" in flags:
            proc.print(f"'{link}' -> '{src}'")
    return status


def chmod(proc: Proc, argv: list[str]) -> int:
    parsed = chmod_args(argv[1:])
    if parsed.bad is not None:
        return bad_option(proc, "chmod", parsed.bad)
    if parsed.mode is None and parsed.reference is None:
        return _missing_operand(proc, "chmod")
    spec, reference, operands = parsed.mode or "", parsed.reference, [argv[1 + k] for k in parsed.operands]
    recursive, verbose = "R" in parsed.flags, "v" in parsed.flags
    if not operands:
        proc.error(f"chmod: missing operand after '{spec or reference}'")
        return 1
    status = 0
    for op in operands:
        try:
            paths = [p for p, _ in proc.fs.walk(op, proc.cwd)] if recursive else [op]
            for path in paths:
                node = proc.fs.resolve(path, proc.cwd)[1]
                if reference is not None:
                    new = proc.fs.resolve(reference, proc.cwd)[1].mode
                else:
                    new = apply_mode(spec, node.mode, is_dir=isinstance(node, Dir))
                old = node.mode
                proc.fs.chmod(path, proc.cwd, new)
                if verbose:
                    proc.print(f"mode of '{path}' changed from {old:04o} ({mode_string(node)[1:]}) to {new:04o}")
        except ValueError:
            proc.error(f"chmod: invalid mode: '{spec}'")
            proc.error("Try 'chmod --help' for more information.")
            return 1
        except FSError as err:
            proc.error(f"chmod: cannot access '{op}': {err}")
            status = 1
    return status


def chown(proc: Proc, argv: list[str]) -> int:
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if len(operands) < 2:
        return _missing_operand(proc, argv[0])
    status = 0
    for op in operands[1:]:
        if proc.fs.lookup(op, proc.cwd) is None:
            proc.error(f"{argv[0]}: cannot access '{op}': No such file or directory")
            status = 1
    return status


def touch(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "touch", argv)
    if isinstance(parsed, int):
        return parsed
    flags, operands, date = parsed.flags, [argv[1 + k] for k in parsed.operands], parsed.value("d")
    if flags - {"c", "h", "a", "m"} or parsed.value("r") is not None or parsed.value("t") is not None:
        raise Unfaithful("touch with a reference file, a -t stamp or other options")
    if date is not None and not re.fullmatch(r"@\d+", date):
        raise Unfaithful(f"touch -d {date}")  # `-d @SECONDS` is the only date form modelled
    stamp = int(date[1:]) if date is not None else None
    if not operands:
        return _missing_operand(proc, "touch")
    status = 0
    for op in operands:
        if "c" in flags and proc.fs.lookup(op, proc.cwd) is None:
            continue
        try:
            node = proc.fs.lookup(op, proc.cwd, follow="h" not in flags)
            if node is None or "h" not in flags:
                proc.fs.touch(op, proc.cwd)
                node = proc.fs.lookup(op, proc.cwd, follow="h" not in flags)
            if stamp is not None and node is not None:
                node.mtime = stamp
        except FSError as err:
            proc.error(f"touch: cannot touch '{op}': {err}")
            status = 1
    return status


def truncate(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "truncate", argv)
    if isinstance(parsed, int):
        return parsed
    if parsed.value("r") is not None or "o" in parsed.flags:
        raise Unfaithful("truncate --reference, -o")
    size, no_create, operands = parsed.value("s"), "c" in parsed.flags, [argv[1 + k] for k in parsed.operands]
    if size is None:
        proc.error("truncate: you must specify either '--size' or '--reference'")
        proc.error("Try 'truncate --help' for more information.")
        return 1
    amount = parse_count(size.lstrip("<>/%"))
    if amount is None:
        proc.error(f"truncate: Invalid number: '{size}'")
        return 1
    if not operands:
        return _missing_operand(proc, "truncate")
    status = 0
    for op in operands:
        node = proc.fs.lookup(op, proc.cwd)
        if node is None and no_create:
            continue
        if isinstance(node, Dir):
            proc.error(f"truncate: cannot open '{op}' for writing: Is a directory")
            status = 1
            continue
        current = node.content if isinstance(node, File) else ""
        target = len(current) + amount if size.startswith(("+", "-")) else amount
        target = max(target, 0)
        new = current[:target] if target <= len(current) else current + "\0" * (target - len(current))
        try:
            proc.fs.write(op, proc.cwd, new)
        except FSError as err:
            proc.error(f"truncate: cannot open '{op}' for writing: {err}")
            status = 1
    return status


def mkdir(proc: Proc, argv: list[str]) -> int:
    parents = any(a in ("-p", "--parents") or (a.startswith("-") and "p" in a[1:]) for a in argv[1:])
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if not operands:
        return _missing_operand(proc, "mkdir")
    status = 0
    for op in operands:
        try:
            proc.fs.mkdir(op, proc.cwd, parents=parents)
        except FSError as err:
            proc.error(f"mkdir: cannot create directory '{op}': {err}")
            status = 1
    return status


def rmdir(proc: Proc, argv: list[str]) -> int:
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if not operands:
        return _missing_operand(proc, "rmdir")
    status = 0
    for op in operands:
        try:
            proc.fs.rmdir(op, proc.cwd)
        except FSError as err:
            proc.error(f"rmdir: failed to remove '{op}': {err}")
            status = 1
    return status


def tee(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "tee", argv)
    if isinstance(parsed, int):
        return parsed
    append, files = "a" in parsed.flags, [argv[1 + k] for k in parsed.operands]
    status = 0
    for f in files:
        try:
            proc.fs.write(f, proc.cwd, proc.stdin, append=append)
        except FSError as err:
            proc.error(f"tee: {f}: {err}")
            status = 1
    proc.out.write(proc.stdin)
    return status


def dd(proc: Proc, argv: list[str]) -> int:
    params = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    try:
        data = proc.fs.read(params["if"], proc.cwd) if "if" in params else proc.stdin
    except FSError as err:
        proc.error(f"dd: failed to open '{params['if']}': {err}")
        return 1
    count, bs = params.get("count"), parse_count(params.get("bs", "512")) or 512
    if count is not None and count.isdigit():
        data = data[: int(count) * bs]
    if "of" in params:
        try:
            proc.fs.write(params["of"], proc.cwd, data, append="conv=notrunc" in argv)
        except FSError as err:
            proc.error(f"dd: failed to open '{params['of']}': {err}")
            return 1
    else:
        proc.out.write(data)
    blocks = (len(data) + bs - 1) // bs
    proc.error(f"{blocks}+0 records in\n{blocks}+0 records out\n{len(data)} bytes copied, 0.000112 s, 0.0 kB/s")
    return 0


# ---------------------------------------------------------------------------------------------------------
# Information


def echo(proc: Proc, argv: list[str]) -> int:
    args = argv[1:]
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        newline = newline and "n" not in args[0]
        escapes = ("e" in args[0]) or (escapes and "E" not in args[0])
        args = args[1:]
    text = " ".join(args)
    if escapes:
        text, stop = _backslash_escapes(text)
        newline = newline and not stop
    proc.out.write(text + ("\n" if newline else ""))
    return 0


def _backslash_escapes(text: str) -> tuple[str, bool]:
    """Interpret echo -e / printf %b escapes; the flag says `\\c` asked to stop output there."""
    stop = "\\c" in text
    return ansi_c_decode(text.split("\\c", 1)[0]), stop


def printf(proc: Proc, argv: list[str]) -> int:
    if len(argv) < 2:
        proc.error("printf: usage: printf [-v var] format [arguments]")
        return 2
    fmt, args = argv[1], argv[2:]
    out: list[str] = []
    status = 0
    while True:
        consumed = 0
        pieces = re.split(r"(%[-+ 0#]*\d*(?:\.\d+)?[sdibcxXofeEgG%])", fmt)
        for piece in pieces:
            if not piece.startswith("%") or len(piece) < 2:
                out.append(_backslash_escapes(piece)[0])
                continue
            conv = piece[-1]
            if conv == "%":
                out.append("%")
                continue
            arg = args[consumed] if consumed < len(args) else ""
            consumed += 1
            spec = piece[:-1]
            try:
                if conv in "di":
                    out.append((spec + "d") % (int(arg, 0) if arg else 0))
                elif conv in "xXo":
                    out.append((spec + conv) % (int(arg, 0) if arg else 0))
                elif conv in "feEgG":
                    out.append((spec + conv) % (float(arg) if arg else 0.0))
                elif conv == "c":
                    out.append(arg[:1])
                elif conv == "b":
                    out.append(_backslash_escapes(arg)[0])
                else:
                    out.append((spec + "s") % arg)
            except ValueError:
                proc.error(f"printf: {arg}: invalid number")
                out.append("0")
                status = 1
        args = args[consumed:]
        if not args or not consumed:
            break
    proc.out.write("".join(out))
    return status


def pwd(proc: Proc, argv: list[str]) -> int:
    proc.print(proc.cwd)
    return 0


def whoami(proc: Proc, argv: list[str]) -> int:
    proc.print(OWNER)
    return 0


def id_cmd(proc: Proc, argv: list[str]) -> int:
    if "-u" in argv or "-g" in argv:
        proc.print("root" if "-n" in argv else "0")
    elif "-un" in argv or "-nu" in argv:
        proc.print("root")
    else:
        proc.print("uid=0(root) gid=0(root) groups=0(root)")
    return 0


def uname(proc: Proc, argv: list[str]) -> int:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-"))
    parts = {
        "s": "Linux",
        "n": HOSTNAME,
        "r": KERNEL,
        "v": "#19~22.04.1-Ubuntu SMP Wed Oct 9 16:48:22 UTC 2024",
        "m": "x86_64",
        "o": "GNU/Linux",
    }
    if "a" in flags:
        proc.print(
            " ".join([parts["s"], parts["n"], parts["r"], parts["v"], parts["m"], "x86_64", "x86_64", parts["o"]])
        )
        return 0
    chosen = [parts[c] for c in "snrvmo" if c in flags] or [parts["s"]]
    proc.print(" ".join(chosen))
    return 0


def hostname(proc: Proc, argv: list[str]) -> int:
    proc.print(HOSTNAME)
    return 0


def date(proc: Proc, argv: list[str]) -> int:
    now = time.gmtime(proc.now())
    fmt = next((a[1:] for a in argv[1:] if a.startswith("+")), "%a %b %e %H:%M:%S UTC %Y")
    proc.print(time.strftime(fmt.replace("%N", "000000000"), now))
    return 0


def sleep(proc: Proc, argv: list[str]) -> int:
    if len(argv) < 2:
        return _missing_operand(proc, "sleep")
    for a in argv[1:]:
        if not re.fullmatch(r"\d+(\.\d+)?[smhd]?|infinity", a):
            proc.error(f"sleep: invalid time interval '{a}'")
            return 1
    return 0  # no time passes in the simulation


def env_cmd(proc: Proc, argv: list[str]) -> int:
    args = argv[1:]
    child = proc.child()
    while args and (args[0].startswith("-") or "=" in args[0]):
        a = args.pop(0)
        if a in ("-i", "--ignore-environment", "-"):
            child.env = {}
        elif a in ("-u", "--unset") and args:
            child.env.pop(args.pop(0), None)
        elif "=" in a and not a.startswith("-"):
            key, _, value = a.partition("=")
            child.env[key] = value
    if not args:
        for key, value in sorted(child.env.items()):
            proc.print(f"{key}={value}")
        return 0
    return child.run(args)


def printenv(proc: Proc, argv: list[str]) -> int:
    if len(argv) > 1:
        values = [proc.env.get(a) for a in argv[1:]]
        for v in values:
            if v is not None:
                proc.print(v)
        return 0 if all(v is not None for v in values) else 1
    for key, value in sorted(proc.env.items()):
        proc.print(f"{key}={value}")
    return 0


def basename(proc: Proc, argv: list[str]) -> int:
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if not operands:
        return _missing_operand(proc, "basename")
    name = operands[0].rstrip("/").rsplit("/", 1)[-1] or "/"
    if len(operands) > 1 and name.endswith(operands[1]) and name != operands[1]:
        name = name[: -len(operands[1])]
    proc.print(name)
    return 0


def dirname(proc: Proc, argv: list[str]) -> int:
    operands = [a for a in argv[1:] if not a.startswith("-")]
    if not operands:
        return _missing_operand(proc, "dirname")
    for op in operands:
        head = op.rstrip("/").rpartition("/")[0]
        proc.print(head.rstrip("/") or ("/" if op.startswith("/") else "."))
    return 0


def which(proc: Proc, argv: list[str]) -> int:
    status = 0
    for name in [a for a in argv[1:] if not a.startswith("-")]:
        found = find_in_path(proc, name)
        if found:
            proc.print(found)
        else:
            status = 1
    return status


def find_in_path(proc: Proc, name: str) -> str | None:
    """The first executable `name` on $PATH, as `which` would print it."""
    if "/" in name:
        node = proc.fs.lookup(name, proc.cwd)
        return name if isinstance(node, File) and node.mode & 0o100 else None
    for d in proc.env.get("PATH", "").split(":"):
        if not d:
            continue
        path = normpath(join(proc.cwd, d) + "/" + name)
        node = proc.fs.lookup(path, "/")
        if isinstance(node, File) and node.mode & 0o100:
            return f"{d.rstrip('/')}/{name}"
    return None


PROCESSES = [  # (pid, command) of the machine's processes, as on the real sandbox: PID 1 is a bare bash
    (1, "/bin/bash"),
    (31, "/bin/bash --login"),
]


def ps(proc: Proc, argv: list[str]) -> int:
    args = " ".join(argv[1:])
    wide = "aux" in args or "-ef" in args or "-e" in argv or "-A" in argv or "ax" in args
    rows = PROCESSES + [(57, " ".join(argv))] if wide else [(31, "bash"), (57, argv[0])]
    if "aux" in args or "u" in args.replace("-", ""):
        proc.print("USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND")
        for pid, cmd in rows:
            proc.print(f"root    {pid:>8}  0.0  0.0   4364  3328 ?        Ss   09:00   0:00 {cmd}")
    elif "-ef" in args:
        proc.print("UID          PID    PPID  C STIME TTY          TIME CMD")
        for pid, cmd in rows:
            proc.print(f"root    {pid:>8} {0 if pid == 1 else 1:>7}  0 09:00 ?        00:00:00 {cmd}")
    else:
        proc.print("    PID TTY          TIME CMD")
        for pid, cmd in rows:
            proc.print(f"{pid:>7} ?        00:00:00 {cmd.split()[0].rsplit('/', 1)[-1]}")
    return 0


def seq(proc: Proc, argv: list[str]) -> int:
    nums = [a for a in argv[1:] if re.fullmatch(r"-?\d+", a)]
    if not nums:
        return _missing_operand(proc, "seq")
    first, step, last = (
        (1, 1, int(nums[0]))
        if len(nums) == 1
        else ((int(nums[0]), 1, int(nums[1])) if len(nums) == 2 else (int(nums[0]), int(nums[1]), int(nums[2])))
    )
    values = list(range(first, last + (1 if step > 0 else -1), step or 1))[:100_000]
    proc.out.write(join_lines([str(v) for v in values]))
    return 0


def expr(proc: Proc, argv: list[str]) -> int:
    args = argv[1:]
    ops = {"+", "-", "*", "/", "%", "<", "<=", "=", "==", "!=", ">", ">="}
    if len(args) == 3 and args[1] in ops:
        a, op, b = args
        if re.fullmatch(r"-?\d+", a) and re.fullmatch(r"-?\d+", b):
            py = {"=": "==", "/": "/"}.get(op, op)
            try:
                value = arithmetic(f"{a} {py} {b}", lambda _: None)
            except ExpansionError:
                proc.error("expr: division by zero")
                return 2
        elif op in ("+", "-", "*", "/", "%"):
            proc.error("expr: non-integer argument")
            return 2
        else:
            value = int(
                {"=": a == b, "==": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
            )
        proc.print(str(value))
        return 0 if value else 1
    if len(args) == 1:
        proc.print(args[0])
        return 0 if args[0] not in ("", "0") else 1
    proc.error("expr: syntax error: unexpected argument" if args else "expr: missing operand")
    return 2


def bc(proc: Proc, argv: list[str]) -> int:
    """bc on integer expressions (+ - * / % ^, parentheses); decimals and `scale` are not modelled."""
    for line in split_lines(proc.stdin):
        line = line.strip()
        if not line or line == "quit":
            continue
        if re.search(r"\d\.\d|scale|[a-z]", line):
            raise Unfaithful("bc beyond integer arithmetic")
        try:
            result = str(arithmetic(line.replace("^", "**"), lambda _: None))
        except ExpansionError:  # bc's own errors (and huge powers) are not modelled
            raise Unfaithful("bc beyond integer arithmetic") from None
        if len(result) > 68:  # bc breaks long numbers over lines with a backslash
            raise Unfaithful("bc beyond integer arithmetic")
        proc.print(result)
    return 0


_PY_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def python3(proc: Proc, argv: list[str]) -> int:
    """`python3 -c 'print(EXPR, …)'` where every EXPR is arithmetic on number literals (what models run to check
    a sum), evaluated by this very Python; anything else is not modelled."""
    if len(argv) != 3 or argv[1] != "-c":
        raise Unfaithful(f"program {argv[0].rsplit('/', 1)[-1]}")
    try:
        tree = ast.parse(argv[2])
    except SyntaxError:
        raise Unfaithful(f"program {argv[0].rsplit('/', 1)[-1]}") from None
    lines: list[str] = []
    for stmt in tree.body:
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"):
            raise Unfaithful(f"program {argv[0].rsplit('/', 1)[-1]}")
        if call.keywords or not all(_py_arithmetic(a) for a in call.args):
            raise Unfaithful(f"program {argv[0].rsplit('/', 1)[-1]}")
        try:
            values = [eval(compile(ast.Expression(a), "<string>", "eval"), {"__builtins__": {}}) for a in call.args]  # noqa: S307 (checked: number literals and arithmetic only)
        except (ArithmeticError, ValueError):
            raise Unfaithful(f"program {argv[0].rsplit('/', 1)[-1]}") from None
        lines.append(" ".join(str(v) for v in values))
    for line in lines:
        proc.print(line)
    return 0


def _py_number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float)  # not a bool, a complex, a string or None


def _py_arithmetic(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return _py_number(node.value) and abs(node.value) < 10**12
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub | ast.UAdd) and _py_arithmetic(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _PY_OPS):
        exponent = node.right.value if isinstance(node.right, ast.Constant) else None
        if isinstance(node.op, ast.Pow) and not (_py_number(exponent) and abs(exponent) <= 64):
            return False
        return _py_arithmetic(node.left) and _py_arithmetic(node.right)
    return False


def true(proc: Proc, argv: list[str]) -> int:
    return 0


def false(proc: Proc, argv: list[str]) -> int:
    return 1


# Programs that run the rest of their arguments as a command: name → (options that take an argument, number of
# positional arguments before the command). The simulated shell runs the ones in UTILITIES; the command
# classifier reads through all of them.
WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "env": (frozenset({"-u", "-C", "--unset", "--chdir"}), 0),
    "nohup": (frozenset(), 0),
    "time": (frozenset({"-f", "-o", "--format", "--output"}), 0),
    "timeout": (frozenset({"-s", "-k", "--signal", "--kill-after"}), 1),
    "nice": (frozenset({"-n", "--adjustment"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p", "--class", "--classdata"}), 0),
    "stdbuf": (frozenset({"-i", "-o", "-e"}), 0),
    "setsid": (frozenset(), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "strace": (frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-I", "-O", "-S", "-X", "-P"}), 0),
    "ltrace": (frozenset({"-o", "-e", "-p", "-s", "-u", "-a", "-n", "-l", "-x"}), 0),
    "chroot": (frozenset(), 1),
    "busybox": (frozenset(), 0),
    "unbuffer": (frozenset(), 0),
    "caffeinate": (frozenset(), 0),
}
_ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def command_start(args: list[str], takes_arg: frozenset[str], positional: int, *, allow_assignments: bool) -> int:
    """Where the command a wrapper runs begins in its arguments (`sudo -u root CMD`, `env X=1 CMD`)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in takes_arg:
            i += 2
        elif (a.startswith("-") and len(a) > 1) or (allow_assignments and _ASSIGNMENT_RE.match(a)):
            i += 1
        else:
            break
    return i + positional


def _wrapper(name: str) -> Utility:
    takes_arg, positional = WRAPPERS[name]

    def run(proc: Proc, argv: list[str]) -> int:
        args = argv[1 + command_start(argv[1:], takes_arg, positional, allow_assignments=False) :]
        if not args:
            return _missing_operand(proc, argv[0])
        return proc.run(args)

    return run


@dataclass(frozen=True)
class ShellArgs:
    """A shell's own command line: `-c SCRIPT [NAME ARGS]`, a script file and its arguments, or neither."""

    script: str | None  # the -c argument
    operands: list[str]  # after -c SCRIPT: $0 and the arguments; else the script file and its arguments
    noexec: bool  # -n: read the script without running it
    has_c: bool


def shell_args(args: list[str]) -> ShellArgs:
    """Read a shell's options: `-c`, `-lc`, `--login`, `-o opt`, `-n`."""
    has_c = noexec = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
        elif a.startswith("--"):
            i += 1
        elif a[:1] in ("-", "+") and len(a) > 1:
            has_c = has_c or "c" in a[1:]
            noexec = noexec or "n" in a[1:]
            i += 1
        else:
            break
    rest = args[i:]
    if has_c:
        return ShellArgs(rest[0] if rest else None, rest[1:], noexec, True)
    return ShellArgs(None, rest, noexec, False)


def xargs(proc: Proc, argv: list[str]) -> int:
    parsed = _args(proc, "xargs", argv)
    if isinstance(parsed, int):
        return parsed
    replace = next((v or "{}" if k == "i" else v for k, v in reversed(parsed.values) if k in "Ii"), None)
    max_args = next((int(v) if v.isdigit() else None for k, v in reversed(parsed.values) if k in "nL"), None)
    command = [argv[1 + k] for k in parsed.operands] or ["echo"]
    items = proc.stdin.split()
    status = 0
    if replace is not None:
        for item in items:
            status |= proc.child(stdin="").run([a.replace(replace, item) for a in command])
        return 123 if status else 0
    size = max_args or max(len(items), 1)
    for k in range(0, max(len(items), 1), size):
        status |= proc.child(stdin="").run(command + items[k : k + size])
    return 123 if status else 0


def test(proc: Proc, argv: list[str]) -> int:
    """`test`, `[` and `[[`: file tests, string and integer comparisons, !, -a/-o (&&/|| inside [[ ]])."""
    args = argv[1:]
    if argv[0] == "[":
        if not args or args[-1] != "]":
            proc.error("bash: [: missing `]'")
            return 2
        args = args[:-1]
    elif argv[0] == "[[":
        if not args or args[-1] != "]]":
            proc.error("bash: syntax error in conditional expression")
            return 2
        args = args[:-1]
    try:
        return 0 if _test_or(proc, args, argv[0] == "[[") else 1
    except ValueError as err:
        proc.error(f"bash: {argv[0]}: {err}")
        return 2


def _test_or(proc: Proc, args: list[str], double: bool) -> bool:
    or_ops = ("||", "-o") if double else ("-o",)
    and_ops = ("&&", "-a") if double else ("-a",)
    for k, a in enumerate(args):
        if a in or_ops and 0 < k < len(args) - 1:
            return _test_or(proc, args[:k], double) or _test_or(proc, args[k + 1 :], double)
    for k, a in enumerate(args):
        if a in and_ops and 0 < k < len(args) - 1 and not (k == 1 and args[0] in _UNARY):
            return _test_or(proc, args[:k], double) and _test_or(proc, args[k + 1 :], double)
    return _test_simple(proc, args, double)


_UNARY = frozenset({"-e", "-f", "-d", "-x", "-r", "-w", "-s", "-L", "-h", "-z", "-n", "-p", "-S", "-b", "-c"})


def _test_simple(proc: Proc, args: list[str], double: bool) -> bool:
    if args and args[0] == "!":
        return not _test_simple(proc, args[1:], double)
    if len(args) >= 2 and args[0] == "(" and args[-1] == ")":
        return _test_or(proc, args[1:-1], double)
    if not args:
        return False
    if len(args) == 1:
        return args[0] != ""
    if len(args) == 2 and args[0] in _UNARY:
        op, operand = args
        if op == "-z":
            return operand == ""
        if op == "-n":
            return operand != ""
        node = proc.fs.lookup(operand, proc.cwd, follow=op not in ("-L", "-h"))
        return {
            "-e": node is not None, "-f": isinstance(node, File), "-d": isinstance(node, Dir),
            "-x": node is not None and bool(node.mode & 0o100), "-r": node is not None and bool(node.mode & 0o400),
            "-w": node is not None and bool(node.mode & 0o200),
            "-s": isinstance(node, File) and bool(node.content), "-L": isinstance(node, Symlink),
            "-h": isinstance(node, Symlink), "-c": isinstance(node, Device),
        }.get(op, False)  # fmt: skip
    if len(args) == 3:
        a, op, b = args
        if op in ("=", "=="):
            return _fnmatch(a, b) if double else a == b
        if op == "!=":
            return not _fnmatch(a, b) if double else a != b
        if op == "=~" and double:
            return re.search(posix_regex(b, extended=True), a) is not None
        if op in ("<", ">"):
            return a < b if op == "<" else a > b
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            try:
                x, y = int(a), int(b)
            except ValueError:
                raise ValueError(f"{a if not a.lstrip('-').isdigit() else b}: integer expression expected") from None
            return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-le": x <= y, "-gt": x > y, "-ge": x >= y}[op]
        if op in ("-nt", "-ot", "-ef"):
            na, nb = proc.fs.lookup(a, proc.cwd), proc.fs.lookup(b, proc.cwd)
            if op == "-ef":
                return na is not None and na is nb
            if na is None or nb is None:
                return False
            return na.mtime > nb.mtime if op == "-nt" else na.mtime < nb.mtime
    raise ValueError("too many arguments")


# Programs an ordinary small Linux machine (and the real sandbox, which mounts the host's /usr) has, that this
# module does not model. They are on $PATH, so `which` and `ls /usr/bin` see them; running one is refused and
# recorded as unsupported (see vshell), never answered with "command not found" or run as something else.
NOT_SIMULATED = frozenset({
    "arch", "b2sum", "base32", "basenc", "chcon", "chroot", "cksum", "comm", "csplit", "df", "dircolors", "du",
    "expand", "factor", "fmt", "fold", "groups", "hostid", "install", "join", "link", "logname", "mkfifo", "mknod",
    "mktemp", "nl", "nproc", "numfmt", "paste", "pathchk", "pinky", "pr", "ptx", "runcon", "sha224sum", "sha384sum",
    "shred", "shuf", "split", "stty", "sum", "sync", "tsort", "tty", "unexpand", "users", "vdir", "who", "yes",
    "awk", "mawk", "gawk", "perl", "jq", "git", "node", "diff", "cmp", "patch", "tar", "gzip", "gunzip",
    "zcat", "bzip2", "xz", "less", "more", "vi", "vim", "ed", "curl", "wget", "tput", "clear", "pgrep", "pkill",
    "top", "free", "uptime", "mount", "su", "getent", "column", "lsof", "ss", "ip",
})  # fmt: skip

UTILITIES: dict[str, Utility] = {
    **TEXT_UTILITIES,
    "ls": ls, "dir": ls, "stat": stat, "file": file_cmd, "readlink": readlink, "realpath": readlink,
    "find": find, "rm": rm, "unlink": rm, "mv": mv, "cp": cp, "ln": ln, "chmod": chmod, "chown": chown,
    "chgrp": chown, "touch": touch, "truncate": truncate, "mkdir": mkdir, "rmdir": rmdir, "tee": tee, "dd": dd,
    "echo": echo, "printf": printf, "pwd": pwd, "whoami": whoami, "id": id_cmd, "uname": uname,
    "hostname": hostname, "date": date, "sleep": sleep, "env": env_cmd, "printenv": printenv,
    "basename": basename, "dirname": dirname, "which": which, "ps": ps, "seq": seq, "expr": expr, "bc": bc,
    "python3": python3,
    "true": true, "false": false, "test": test, "[": test,
    **{name: _wrapper(name) for name in ("sudo", "nohup", "nice", "timeout", "stdbuf", "setsid")}, "xargs": xargs,
}  # fmt: skip
