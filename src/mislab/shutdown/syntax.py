"""What the options of the shell utilities mean: one declaration per utility, read by the simulated shell
(`vcoreutils`, `vtext`) to run a command and by the classifier (`classify`) to judge it, without looking at
any file.

Arguments are read as GNU getopt does: `-abc` clusters, a letter that takes a value takes the rest of its cluster
or the next argument (`-n5`, `-n 5`), long options take theirs after `=` or as the next argument, `--` ends the
options, and operands may come anywhere (except for a utility that runs a command: there the first operand ends
the options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANY = "*"  # `Syntax.flags` for a utility that accepts (and ignores) any letter it does not model


@dataclass(frozen=True)
class Syntax:
    flags: str = ANY  # letters of the options without a value
    valued: str = ""  # letters of the options that take a value (`-n 5`, `-n5`)
    optional: str = ""  # letters whose value is only the rest of their cluster (`sed -i.bak`)
    long: dict[str, str] = field(default_factory=dict)  # --name → its letter ("": nothing that is modelled)
    command_ends: bool = False  # the first operand starts a command: options end there


@dataclass
class Args:
    flags: set[str] = field(default_factory=set)
    values: list[tuple[str, str]] = field(default_factory=list)  # (letter, value) in the order given
    operands: list[int] = field(default_factory=list)  # indices into the arguments
    bad: str | None = None  # the first unknown option, or one missing its value (read as empty)

    def value(self, letter: str) -> str | None:
        """The last value given to an option."""
        return next((v for k, v in reversed(self.values) if k == letter), None)


def read_args(args: list[str], syntax: Syntax) -> Args:
    out = Args()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or (syntax.command_ends and out.operands):
            out.operands.extend(range(i + (a == "--"), len(args)))
            break
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            letter = syntax.long.get(name)
            if letter is None:
                out.bad = out.bad or a
            elif letter and letter in syntax.valued + syntax.optional:
                if not eq and letter in syntax.valued:
                    out.bad = out.bad or (a if i + 1 == len(args) else None)
                    i, value = i + 1, args[i + 1] if i + 1 < len(args) else ""
                out.values.append((letter, value))
            elif letter:
                out.flags.add(letter)
        elif a.startswith("-") and len(a) > 1:
            for j, c in enumerate(a[1:], start=1):
                if c in syntax.valued + syntax.optional:
                    value = a[j + 1 :]
                    if not value and c in syntax.valued:
                        out.bad = out.bad or (f"-{c}" if i + 1 == len(args) else None)
                        i, value = i + 1, args[i + 1] if i + 1 < len(args) else ""
                    out.values.append((c, value))
                    break
                if syntax.flags != ANY and c not in syntax.flags:
                    out.bad = out.bad or f"-{c}"
                out.flags.add(c)
        else:
            out.operands.append(i)
        i += 1
    return out


_GREP_LONG = {
    "--regexp": "e", "--file": "f", "--max-count": "m", "--after-context": "A", "--before-context": "B",
    "--context": "C", "--ignore-case": "i", "--invert-match": "v", "--line-number": "n", "--count": "c",
    "--recursive": "r", "--files-with-matches": "l", "--quiet": "q", "--silent": "q", "--extended-regexp": "E",
    "--fixed-strings": "F", "--word-regexp": "w", "--line-regexp": "x", "--only-matching": "o",
    "--with-filename": "H", "--no-filename": "h", "--no-messages": "s", "--color": "", "--colour": "",
}  # fmt: skip
_GREP = Syntax(flags="ivncrRlLqEFwxohHsIaP", valued="efmABCdD", long=_GREP_LONG)
_TARGET = {"--suffix": "S", "--target-directory": "t"}  # cp, mv, ln: SOURCE... DEST, or -t DIR SOURCE...
_SHRED = Syntax(valued="ns", long={"--iterations": "n", "--size": "s"})
_LS = Syntax(long={
    "--all": "a", "--almost-all": "A", "--directory": "d", "--recursive": "R", "--human-readable": "h",
    "--color": "", "--inode": "i", "--classify": "F",
})  # fmt: skip
_READLINK = Syntax(long={"--canonicalize": "f", "--canonicalize-existing": "e", "--no-newline": "n"})
_RM = Syntax(long={
    "--force": "f", "--recursive": "r", "--verbose": "v", "--dir": "d", "--no-preserve-root": "", "--preserve-root": "",
})  # fmt: skip

SYNTAX: dict[str, Syntax] = {
    "ls": _LS, "dir": _LS, "readlink": _READLINK, "realpath": _READLINK, "rm": _RM, "unlink": _RM,
    "shred": _SHRED, "srm": _SHRED, "wipe": _SHRED,
    "touch": Syntax(valued="drt", long={
        "--date": "d", "--reference": "r", "--no-create": "c", "--no-dereference": "h",
    }),
    "truncate": Syntax(flags="co", valued="sr", long={"--size": "s", "--reference": "r", "--no-create": "c"}),
    "tee": Syntax(long={"--append": "a", "--ignore-interrupts": "i", "--output-error": ""}),
    "sed": Syntax(flags="nErsuz", valued="efl", optional="i", long={
        "--expression": "e", "--file": "f", "--line-length": "l", "--in-place": "i", "--quiet": "n", "--silent": "n",
        "--regexp-extended": "E", "--separate": "s", "--unbuffered": "u", "--null-data": "z",
    }),
    **dict.fromkeys(("grep", "egrep", "fgrep", "rgrep", "zgrep"), _GREP),
    "xargs": Syntax(valued="InLPdsEa", optional="i", command_ends=True, long={
        "--replace": "i", "--max-args": "n", "--max-lines": "L", "--max-procs": "P", "--delimiter": "d",
        "--arg-file": "a", "--null": "0", "--no-run-if-empty": "r", "--verbose": "t",
    }),
    "mv": Syntax(valued="St", long={
        **_TARGET, "--force": "f", "--verbose": "v", "--no-clobber": "n", "--interactive": "i", "--update": "u",
    }),
    "cp": Syntax(valued="St", long={
        **_TARGET, "--force": "f", "--recursive": "r", "--verbose": "v", "--archive": "a", "--preserve": "p",
        "--no-clobber": "n", "--interactive": "i", "--dereference": "L", "--no-dereference": "P",
    }),
    "ln": Syntax(valued="St", long={
        **_TARGET, "--symbolic": "s", "--force": "f", "--no-dereference": "n", "--verbose": "v", "--relative": "r",
    }),
    # Not simulated: declared for the classifier.
    **dict.fromkeys(("rg", "ag", "ack"), Syntax(valued="efmABCdDg", long=_GREP_LONG)),
    **dict.fromkeys(("install", "rsync", "scp"), Syntax(valued="Stmoge", long=_TARGET)),
    **dict.fromkeys(("gzip", "bzip2", "xz", "zstd", "lz4", "lzma", "compress"), Syntax(valued="S", long={
        "--suffix": "S", "--stdout": "c", "--to-stdout": "c", "--keep": "k", "--test": "t", "--list": "l",
    })),
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk"), Syntax(valued="fvFilE", long={
        "--file": "f", "--assign": "v", "--field-separator": "F", "--include": "i", "--load": "l", "--exec": "E",
    })),
    "perl": Syntax(valued="eE", optional="iMmIlx0C"),  # -M, -l, -0 … take only the rest of their cluster
    "patch": Syntax(valued="iodpBrzF", long={
        "--input": "i", "--output": "o", "--directory": "d", "--strip": "p", "--prefix": "B", "--reject-file": "r",
        "--suffix": "z", "--fuzz": "F",
    }),
}  # fmt: skip

# chmod's options (each alone: `-Rv` is read as a mode, as the simulated chmod always has) → their letters.
_CHMOD_OPTIONS = {
    "-R": "R", "--recursive": "R", "-v": "v", "--verbose": "v", "-c": "c", "--changes": "c", "-f": "f",
    "--silent": "f", "--quiet": "f", "--preserve-root": "", "--no-preserve-root": "", "--": "",
}  # fmt: skip


@dataclass
class ChmodArgs:
    mode: str | None  # None without one, or with --reference
    reference: str | None
    operands: list[int]  # indices into the arguments
    flags: set[str]
    bad: str | None  # the first unknown long option


def chmod_args(args: list[str]) -> ChmodArgs:
    """Read chmod's command line without looking at any file (`-x` is a mode, not an option)."""
    out = ChmodArgs(None, None, [], set(), None)
    for k, a in enumerate(args):
        if a in _CHMOD_OPTIONS:
            out.flags.update(_CHMOD_OPTIONS[a])
        elif a.startswith("--reference="):
            out.reference = a.split("=", 1)[1]
        elif a.startswith("--"):
            out.bad = out.bad or a
        else:
            out.operands.append(k)
    if out.reference is None and out.operands:
        out.mode = args[out.operands.pop(0)]
    return out
