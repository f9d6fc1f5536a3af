"""An in-memory filesystem for the simulated shell: directories, files, symlinks and /dev/null.

Nodes keep their identity across renames and links, so the shell can tell whether `shutdown.sh` is still
*the* file the harness put there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from mislab.shutdown.shwords import Unfaithful

MAX_SYMLINK_HOPS = 40


class FSError(OSError):
    """A filesystem error; `str(err)` is the strerror text bash prints (e.g. "No such file or directory")."""


NOT_FOUND = "No such file or directory"
NOT_DIR = "Not a directory"
IS_DIR = "Is a directory"
# Everything belongs to root and commands run as root without capabilities (as in the real sandbox), so the
# owner's bits decide: `chmod u-x` stops a script from running, `chmod 000` from being read.
DENIED = "Permission denied"


@dataclass(eq=False)
class Inode:
    ino: int
    mode: int  # permission bits (0o7777)
    mtime: int  # seconds since the epoch


@dataclass(eq=False)
class File(Inode):
    content: str = ""
    # A built-in program this file runs as (coreutils, the task client). Writing to the file clears it:
    # the model replaced the program with whatever it wrote.
    program: str | None = None


@dataclass(eq=False)
class Dir(Inode):
    entries: dict[str, Node] = field(default_factory=dict)


class KernelDir(Dir):
    """/proc and /sys: not modelled. Looking inside (listing, walking, a path through it) is refused."""

    @property
    def entries(self) -> dict[str, Node]:
        raise Unfaithful("/proc and /sys")

    @entries.setter
    def entries(self, value: dict[str, Node]) -> None:
        pass


@dataclass(eq=False)
class Symlink(Inode):
    target: str = ""


@dataclass(eq=False)
class Device(Inode):
    """A character device; only the data sink / empty source behaviour of /dev/null is modelled."""


Node = File | Dir | Symlink | Device


def normpath(path: str) -> str:
    """Lexical normalisation of an absolute path (`..` at the root stays at the root)."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    return "/" + "/".join(out)


def join(cwd: str, path: str) -> str:
    return normpath(path if path.startswith("/") else f"{cwd}/{path}")


def mode_string(node: Node) -> str:
    """`ls -l` style type and permission string, e.g. `-rwxr-xr-x`."""
    kind = "d" if isinstance(node, Dir) else {File: "-", Symlink: "l", Device: "c"}[type(node)]
    bits = ""
    for shift, special, special_char in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        r, w, x = (node.mode >> shift) & 4, (node.mode >> shift) & 2, (node.mode >> shift) & 1
        xc = "x" if x else "-"
        if node.mode & special:
            xc = special_char if x else special_char.upper()
        bits += ("r" if r else "-") + ("w" if w else "-") + xc
    return kind + bits


_SYMBOLIC_CLAUSE = re.compile(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)")
_WHO_BITS = {"u": 0o4700, "g": 0o2070, "o": 0o1007}


def apply_mode(spec: str, mode: int, *, is_dir: bool = False, umask: int = 0o022) -> int:
    """The permission bits after `chmod SPEC` on a file with `mode`; raises ValueError for a bad spec."""
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    new = mode
    for clause in spec.split(","):
        m = _SYMBOLIC_CLAUSE.fullmatch(clause)
        if not m:
            raise ValueError(f"invalid mode: '{spec}'")
        who, actions = m.groups()
        # No `who` means `a`, except that bits set in the umask are left alone (POSIX chmod).
        mask = 0o7777 if not who or "a" in who else sum(_WHO_BITS[w] for w in set(who))
        respect_umask = not who
        for op, perms in re.findall(r"([-+=])([rwxXst]*|[ugo])", actions):
            bits = _perm_bits(perms, new, is_dir) & mask
            if respect_umask and op != "=":
                bits &= ~umask
            if op == "+":
                new |= bits
            elif op == "-":
                new &= ~bits
            else:
                keep = ~mask & 0o7777
                new = (new & keep) | (bits & ~(umask if respect_umask else 0))
    return new & 0o7777


def _perm_bits(perms: str, mode: int, is_dir: bool) -> int:
    if perms in ("u", "g", "o"):  # copy another class's bits: `g=u`
        shift = {"u": 6, "g": 3, "o": 0}[perms]
        b = (mode >> shift) & 7
        return b << 6 | b << 3 | b
    bits = 0
    for p in perms:
        if p == "r":
            bits |= 0o444
        elif p == "w":
            bits |= 0o222
        elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
            bits |= 0o111
        elif p == "s":
            bits |= 0o6000
        elif p == "t":
            bits |= 0o1000
    return bits


class VirtualFS:
    """The filesystem. Paths are resolved like Linux does, following symlinks (at most 40 hops)."""

    def __init__(self, now: Callable[[], int]) -> None:
        self._now = now
        self._next_ino = 2
        self.root = Dir(self._ino(), 0o755, now())

    def _ino(self) -> int:
        self._next_ino += 1
        return self._next_ino

    def new_file(self, content: str = "", mode: int = 0o644, program: str | None = None) -> File:
        return File(self._ino(), mode, self._now(), content, program)

    def new_dir(self, mode: int = 0o755) -> Dir:
        return Dir(self._ino(), mode, self._now())

    def new_symlink(self, target: str) -> Symlink:
        return Symlink(self._ino(), 0o777, self._now(), target)

    def install(self, path: str, node: Node) -> None:
        """Place a node at an absolute path, creating parent directories; not logged as a change."""
        parent = self.root
        parts = [p for p in path.split("/") if p]
        for name in parts[:-1]:
            child = parent.entries.get(name)
            if not isinstance(child, Dir):
                child = self.new_dir()
                parent.entries[name] = child
            parent = child
        parent.entries[parts[-1]] = node

    # -- resolution ---------------------------------------------------------------------------------------

    def resolve(self, path: str, cwd: str, *, follow: bool = True) -> tuple[str, Node]:
        """(absolute physical path, node) for `path`; raises FSError when it does not resolve."""
        if path == "":
            raise FSError(NOT_FOUND)
        pending = [p for p in (path if path.startswith("/") else f"{cwd}/{path}").split("/") if p]
        pending.reverse()
        stack: list[tuple[str, Dir]] = []  # the directories walked through, for ".."
        node: Node = self.root
        hops = 0
        while pending:
            name = pending.pop()
            if name == ".":
                if not isinstance(node, Dir):
                    raise FSError(NOT_DIR)
                continue
            if name == "..":
                if not isinstance(node, Dir):
                    raise FSError(NOT_DIR)
                node = stack.pop()[1] if stack else self.root
                continue
            if not isinstance(node, Dir):
                raise FSError(NOT_DIR)
            child = node.entries.get(name)
            if child is None:
                raise FSError(NOT_FOUND)
            if isinstance(child, Symlink) and (pending or follow):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise FSError("Too many levels of symbolic links")
                target = [p for p in child.target.split("/") if p]
                pending.extend(reversed(target))
                if child.target.startswith("/"):
                    stack, node = [], self.root
                continue
            stack.append((name, node))
            node = child
        return "/" + "/".join(name for name, _ in stack), node

    def lookup(self, path: str, cwd: str, *, follow: bool = True) -> Node | None:
        try:
            return self.resolve(path, cwd, follow=follow)[1]
        except FSError:
            return None

    def parent_of(self, path: str, cwd: str) -> tuple[str, Dir, str]:
        """(absolute path of the parent, parent directory, final name) for creating or removing `path`."""
        full = path if path.startswith("/") else f"{cwd}/{path}"
        head, _, name = full.rstrip("/").rpartition("/")
        if name in ("", ".", ".."):
            raise FSError(IS_DIR if name else "Device or resource busy")
        parent_path, parent = self.resolve(head or "/", cwd)
        if not isinstance(parent, Dir):
            raise FSError(NOT_DIR)
        return parent_path, parent, name

    def abspath(self, path: str, cwd: str, *, follow: bool = True) -> str:
        """The physical absolute path of an existing node; raises FSError."""
        return self.resolve(path, cwd, follow=follow)[0]

    # -- reading ------------------------------------------------------------------------------------------

    def read(self, path: str, cwd: str) -> str:
        node = self.resolve(path, cwd)[1]
        if isinstance(node, Dir):
            raise FSError(IS_DIR)
        if isinstance(node, File) and not node.mode & 0o400:
            raise FSError(DENIED)
        return node.content if isinstance(node, File) else ""

    # -- changing (every change is logged) ----------------------------------------------------------------

    def write(self, path: str, cwd: str, content: str, *, append: bool = False) -> None:
        """Write (or append to) a file, creating it if needed; follows a final symlink like open(2)."""
        try:
            node: Node | None = self.resolve(path, cwd)[1]
        except FSError as err:
            if str(err) != NOT_FOUND:
                raise
            node = None
        if node is None:
            target = self._create_target(path, cwd)
            parent_path, parent, name = self.parent_of(target, cwd)
            parent.entries[name] = self.new_file(content)
            return
        if isinstance(node, Dir):
            raise FSError(IS_DIR)
        if isinstance(node, Device):
            return
        assert isinstance(node, File)
        if not node.mode & 0o200:
            raise FSError(DENIED)
        before = node.content
        node.content = before + content if append else content
        node.mtime = self._now()
        if node.content != before:
            node.program = None

    def append_to(self, node: File, path: str, text: str) -> None:
        """Append to a file already opened for writing (it may since have been renamed or deleted, as with a
        real open descriptor); `path` is the name it was opened under, for the change log."""
        node.content += text
        node.mtime = self._now()
        node.program = None

    def _create_target(self, path: str, cwd: str) -> str:
        """Where writing to a missing `path` creates the file: through a dangling symlink, at its target."""
        for _ in range(MAX_SYMLINK_HOPS):
            try:
                parent_path, parent, name = self.parent_of(path, cwd)
            except FSError:
                return path
            link = parent.entries.get(name)
            if not isinstance(link, Symlink):
                return path
            path = join(parent_path, link.target) if not link.target.startswith("/") else link.target
        raise FSError("Too many levels of symbolic links")

    def unlink(self, path: str, cwd: str) -> None:
        parent_path, parent, name = self.parent_of(path, cwd)
        node = parent.entries.get(name)
        if node is None:
            raise FSError(NOT_FOUND)
        if isinstance(node, Dir):
            raise FSError(IS_DIR)
        del parent.entries[name]

    def rmtree(self, path: str, cwd: str) -> None:
        parent_path, parent, name = self.parent_of(path, cwd)
        if name not in parent.entries:
            raise FSError(NOT_FOUND)
        del parent.entries[name]

    def rmdir(self, path: str, cwd: str) -> None:
        parent_path, parent, name = self.parent_of(path, cwd)
        node = parent.entries.get(name)
        if node is None:
            raise FSError(NOT_FOUND)
        if not isinstance(node, Dir):
            raise FSError(NOT_DIR)
        if node.entries:
            raise FSError("Directory not empty")
        del parent.entries[name]

    def mkdir(self, path: str, cwd: str, *, parents: bool = False) -> None:
        if parents:
            current = ""
            for part in [p for p in join(cwd, path).split("/") if p]:
                current += "/" + part
                existing = self.lookup(current, "/")
                if existing is None:
                    self.mkdir(current, "/")
                elif not isinstance(existing, Dir):
                    raise FSError("File exists")
            return
        parent_path, parent, name = self.parent_of(path, cwd)
        if name in parent.entries:
            raise FSError("File exists")
        parent.entries[name] = self.new_dir()

    def rename(self, src: str, dst: str, cwd: str) -> None:
        """rename(2): moves the node itself (a symlink is moved, not followed); replaces a file at `dst`."""
        src_parent_path, src_parent, src_name = self.parent_of(src, cwd)
        node = src_parent.entries.get(src_name)
        if node is None:
            raise FSError(NOT_FOUND)
        dst_parent_path, dst_parent, dst_name = self.parent_of(dst, cwd)
        existing = dst_parent.entries.get(dst_name)
        if existing is node:
            return
        if isinstance(existing, Dir) and not isinstance(node, Dir):
            raise FSError(IS_DIR)
        if isinstance(node, Dir) and existing is not None and not isinstance(existing, Dir):
            raise FSError(NOT_DIR)
        if isinstance(existing, Dir) and existing.entries:
            raise FSError("Directory not empty")
        if isinstance(node, Dir) and self._is_inside(dst_parent, node):
            raise FSError("Invalid argument")
        del src_parent.entries[src_name]
        dst_parent.entries[dst_name] = node

    def _is_inside(self, candidate: Dir, ancestor: Dir) -> bool:
        if candidate is ancestor:
            return True
        return any(isinstance(c, Dir) and self._is_inside(candidate, c) for c in ancestor.entries.values())

    def symlink(self, target: str, path: str, cwd: str) -> None:
        parent_path, parent, name = self.parent_of(path, cwd)
        if name in parent.entries:
            raise FSError("File exists")
        parent.entries[name] = self.new_symlink(target)

    def link(self, existing: str, path: str, cwd: str) -> None:
        """A hard link: the same node under a second name."""
        node = self.resolve(existing, cwd)[1]
        if isinstance(node, Dir):
            raise FSError("Operation not permitted")
        parent_path, parent, name = self.parent_of(path, cwd)
        if name in parent.entries:
            raise FSError("File exists")
        parent.entries[name] = node

    def place(self, path: str, cwd: str, node: Node) -> None:
        """Put a node at `path`, replacing a non-directory there (used by cp for new copies)."""
        parent_path, parent, name = self.parent_of(path, cwd)
        if isinstance(parent.entries.get(name), Dir):
            raise FSError(IS_DIR)
        parent.entries[name] = node

    def chmod(self, path: str, cwd: str, mode: int) -> None:
        node = self.resolve(path, cwd)[1]
        node.mode = mode

    def touch(self, path: str, cwd: str) -> None:
        try:
            abs_path, node = self.resolve(path, cwd)
        except FSError as err:
            if str(err) != NOT_FOUND:
                raise
            self.write(path, cwd, "")
            return
        node.mtime = self._now()

    def walk(self, path: str, cwd: str) -> list[tuple[str, Node]]:
        """(path, node) for `path` and everything below it, depth first, names sorted; symlinks not followed."""
        top = self.lookup(path, cwd, follow=False)
        if top is None:
            raise FSError(NOT_FOUND)
        # A stack, not a recursive closure: a closure that calls itself is a reference cycle, which would keep
        # this list (and so the nodes) alive until the cyclic collector runs.
        out: list[tuple[str, Node]] = []
        stack: list[tuple[str, Node]] = [(path, top)]
        while stack:
            p, node = stack.pop()
            out.append((p, node))
            if isinstance(node, Dir):
                stack.extend(
                    (f"{p.rstrip('/')}/{name}", node.entries[name]) for name in sorted(node.entries, reverse=True)
                )
        return out
