"""Shell words: where one ends, and what it expands to.

The parser keeps every word as its raw source text (quotes included) so that expansion can still tell
quoted from unquoted text: `'$HOME'` stays literal, `"$HOME"` expands without splitting, an unquoted
`*.sh` globs while `'*.sh'` does not. Both the command classifier and the simulated shell expand words
through `expand_word`; only the simulated shell supplies real command substitution.
"""

from __future__ import annotations

import ast
import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase

# Characters that end an unquoted word (metacharacters in bash's sense).
WORD_BREAK = frozenset(" \t\n;&|()<>")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL_PARAMS = frozenset("?$#@*!-0123456789")
_IFS_RE = re.compile(r"[ \t\n]+")


class ShellSyntaxError(ValueError):
    """Raised when a command line cannot be read: an unclosed quote or parenthesis."""


class ExpansionError(ValueError):
    """Raised for an expansion bash itself would reject (e.g. a malformed arithmetic expression)."""


class Unfaithful(Exception):
    """Raised for a construct bash accepts but this module does not model (arrays, `${x/a/b}`, `$((i++))`):
    the simulated shell refuses to run the command rather than run something else."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


@dataclass(frozen=True)
class Field:
    """One field produced by expanding a word.

    `pattern` is set only when the field holds an unquoted glob character; quoted glob characters in it
    are bracketed (`[*]`) so that `fnmatch` treats them literally.
    """

    text: str
    pattern: str | None = None


# ---------------------------------------------------------------------------------------------------------
# Scanning: find where a word (or a quoted / substituted unit inside it) ends.


def skip_word(text: str, i: int) -> int:
    """Index just past the unquoted-metacharacter-delimited word that starts at `i`."""
    while i < len(text) and text[i] not in WORD_BREAK:
        i = skip_unit(text, i)
    return i


def skip_unit(text: str, i: int) -> int:
    """Index just past one lexical unit at `i`: a character, an escape, a quoted string or a `$…` form."""
    c = text[i]
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if c == "\\":
        return min(i + 2, len(text))
    if c == "'":
        return _skip_single(text, i + 1)
    if c == '"':
        return _skip_double(text, i + 1)
    if c == "`":
        return _skip_backtick(text, i + 1)
    if c == "$" and nxt == "(":
        return skip_parens(text, i + 1)
    if c == "$" and nxt == "{":
        return _skip_braces(text, i + 2)
    if c == "$" and nxt == "'":
        return _skip_ansi(text, i + 2)
    return i + 1


def _skip_single(text: str, i: int) -> int:
    end = text.find("'", i)
    if end < 0:
        raise ShellSyntaxError("unexpected EOF while looking for matching `''")
    return end + 1


def _skip_ansi(text: str, i: int) -> int:
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "'":
            return i + 1
        else:
            i += 1
    raise ShellSyntaxError("unexpected EOF while looking for matching `''")


def _skip_double(text: str, i: int) -> int:
    while i < len(text):
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\":
            i += 2
        elif c in "$`":
            i = skip_unit(text, i)
        else:
            i += 1
    raise ShellSyntaxError("unexpected EOF while looking for matching `\"'")


def _skip_backtick(text: str, i: int) -> int:
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == "`":
            return i + 1
        else:
            i += 1
    raise ShellSyntaxError("unexpected EOF while looking for matching ``'")


def _skip_braces(text: str, i: int) -> int:
    while i < len(text):
        if text[i] == "}":
            return i + 1
        i = skip_unit(text, i)
    raise ShellSyntaxError("unexpected EOF while looking for matching `}'")


def skip_parens(text: str, i: int) -> int:
    """`text[i]` is `(`: index just past its matching `)`, skipping quoted text and nested forms."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth -= 1
            i += 1
            if depth == 0:
                return i
        elif c in "\\'\"`$":
            i = skip_unit(text, i)
        else:
            i += 1
    raise ShellSyntaxError("unexpected EOF while looking for matching `)'")


# ---------------------------------------------------------------------------------------------------------
# Expansion.

Lookup = Callable[[str], str | None]
Substitute = Callable[[str], str]


def _no_substitution(_: str) -> str:
    return ""


def _escape_glob(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)


class _Fields:
    """Accumulates expanded text into fields, splitting only where unquoted expansions produce blanks."""

    def __init__(self) -> None:
        self.fields: list[Field] = []
        self._text: list[str] = []
        self._pattern: list[str] = []
        self._globbing = False
        self._started = False

    def add(self, s: str, *, quoted: bool) -> None:
        self._started = True
        self._text.append(s)
        if quoted:
            self._pattern.append(_escape_glob(s))
        else:
            self._pattern.append(s)
            self._globbing = self._globbing or any(c in "*?[" for c in s)

    def add_split(self, s: str) -> None:
        for k, piece in enumerate(_IFS_RE.split(s)):
            if k:
                self.end()
            if piece:
                self.add(piece, quoted=False)

    def end(self) -> None:
        if self._started:
            text = "".join(self._text)
            self.fields.append(Field(text, "".join(self._pattern) if self._globbing else None))
        self._text, self._pattern, self._globbing, self._started = [], [], False, False


_MAX_BRACE_WORDS = 4096
_SEQUENCE_RE = re.compile(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?")


def brace_expand(raw: str) -> list[str]:
    """Bash's brace expansion of a raw word, before any other expansion: `f{,.bak}` → `f`, `f.bak`;
    `{1..3}` → 1 2 3; quoted and `${…}` braces are left alone."""
    words = _brace_expand(raw)
    if len(words) > _MAX_BRACE_WORDS:
        raise Unfaithful("brace expansion to more than 4096 words")
    return words


def _brace_expand(raw: str) -> list[str]:
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in "\\'\"`$":
            try:
                i = skip_unit(raw, i)
            except ShellSyntaxError:
                return [raw]
            continue
        if c == "{" and (parts := _brace_parts(raw, i)) is not None:
            options, end = parts
            head, tail = raw[:i], raw[end:]
            out: list[str] = []
            for option in options:
                out.extend(_brace_expand(head + option + tail))
                if len(out) > _MAX_BRACE_WORDS:
                    break
            return out
        i += 1
    return [raw]


def _brace_parts(raw: str, start: int) -> tuple[list[str], int] | None:
    """The alternatives of the brace expression opening at `start` and the index past it, or None."""
    depth, k, cuts = 0, start, [start]
    while k < len(raw):
        c = raw[k]
        if c in "\\'\"`$":
            try:
                k = skip_unit(raw, k)
            except ShellSyntaxError:
                return None
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        elif c == "," and depth == 1:
            cuts.append(k)
        k += 1
    else:
        return None
    body = raw[start + 1 : k]
    if len(cuts) > 1:
        cuts.append(k)
        return [raw[a + 1 : b] for a, b in zip(cuts, cuts[1:], strict=False)], k + 1
    m = _SEQUENCE_RE.fullmatch(body)
    if m is None:
        return None
    first, last, step = m[1], m[2], abs(int(m[3] or 1)) or 1
    if first.lstrip("-").isdigit() != last.lstrip("-").isdigit():
        return None
    a, b = (int(first), int(last)) if first.lstrip("-").isdigit() else (ord(first), ord(last))
    if abs(b - a) // step > _MAX_BRACE_WORDS:
        raise Unfaithful("brace expansion to more than 4096 words")
    values = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
    if first.lstrip("-").isdigit():
        padded = first.lstrip("-").startswith("0") or last.lstrip("-").startswith("0")
        width = max(len(first), len(last)) if padded else 0
        return [str(v).zfill(width) for v in values], k + 1
    return [chr(v) for v in values], k + 1


def expand_word(
    raw: str, lookup: Lookup, substitute: Substitute = _no_substitution, *, split: bool = True
) -> list[Field]:
    """Expand one raw word: tilde, parameters, `$(…)`/backticks, `$((…))`, quote removal, field splitting.

    `lookup(name)` returns a variable's value (None when unset); `substitute(cmd)` runs a command
    substitution and returns its output. With `split=False` (assignments, here-documents) the result is a
    single field and unquoted expansions are not split.
    """
    out = _Fields()
    i = 0
    if raw.startswith("~") and (len(raw) == 1 or raw[1] == "/"):
        out.add(lookup("HOME") or "~", quoted=True)
        i = 1
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            if raw[i + 1 : i + 2] == "\n":
                out.add("", quoted=True)
            else:
                out.add(raw[i + 1 : i + 2], quoted=True)
            i += 2
        elif c == "'":
            end = _skip_single_lenient(raw, i + 1)
            out.add(raw[i + 1 : end - 1] if raw[end - 1 : end] == "'" else raw[i + 1 : end], quoted=True)
            i = end
        elif c == '"':
            i = _expand_double(raw, i + 1, out, lookup, substitute)
        elif c == "$" and raw[i + 1 : i + 2] == "'":
            end = _skip_ansi_lenient(raw, i + 2)
            out.add(ansi_c_decode(raw[i + 2 : end - 1]), quoted=True)
            i = end
        elif c in "$`":
            value, i = _expand_dollar(raw, i, lookup, substitute)
            if value is None:
                out.add(c, quoted=False)
            elif split:
                out.add_split(value)
            else:
                out.add(value, quoted=False)
        else:
            j = i + 1
            while j < len(raw) and raw[j] not in "\\'\"$`":
                j += 1
            out.add(raw[i:j], quoted=False)
            i = j
    out.end()
    if not split:
        return [Field("".join(f.text for f in out.fields))]
    return out.fields


def expand_string(raw: str, lookup: Lookup, substitute: Substitute = _no_substitution) -> str:
    """Expand a word to one string, without field splitting or globbing (assignments, redirect targets)."""
    return expand_word(raw, lookup, substitute, split=False)[0].text


def expand_heredoc(body: str, lookup: Lookup, substitute: Substitute = _no_substitution) -> str:
    """Expand an unquoted here-document body: parameters and substitutions, but quotes stay literal."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and body[i + 1 : i + 2] in ("$", "`", "\\", "\n"):
            out.append("" if body[i + 1] == "\n" else body[i + 1])
            i += 2
        elif c in "$`":
            value, i = _expand_dollar(body, i, lookup, substitute)
            out.append(c if value is None else value)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def literal_word(raw: str) -> str:
    """Quote removal only: the word as bash would see it if no variable were set and nothing ran (the raw
    text itself if even that fails, e.g. on `$((1/0))`)."""
    try:
        return expand_string(raw, lambda _: None)
    except ExpansionError:
        return raw


def _skip_single_lenient(text: str, i: int) -> int:
    end = text.find("'", i)
    return len(text) if end < 0 else end + 1


def _skip_ansi_lenient(text: str, i: int) -> int:
    try:
        return _skip_ansi(text, i)
    except ShellSyntaxError:
        return len(text) + 1


def _expand_double(raw: str, i: int, out: _Fields, lookup: Lookup, substitute: Substitute) -> int:
    """Expand the inside of a double-quoted string starting at `i`; returns the index past the quote."""
    out.add("", quoted=True)  # "" alone is still one (empty) field
    while i < len(raw):
        c = raw[i]
        if c == '"':
            return i + 1
        if c == "\\" and raw[i + 1 : i + 2] in ('"', "\\", "$", "`", "\n"):
            out.add("" if raw[i + 1] == "\n" else raw[i + 1], quoted=True)
            i += 2
        elif c in "$`":
            value, i = _expand_dollar(raw, i, lookup, substitute)
            out.add(c if value is None else value, quoted=True)
        else:
            out.add(c, quoted=True)
            i += 1
    return i


def _expand_dollar(raw: str, i: int, lookup: Lookup, substitute: Substitute) -> tuple[str | None, int]:
    """Expand the `$…` or backtick form at `i`. Returns (value, next index); value None = literal `$`."""
    if raw[i] == "`":
        end = _skip_lenient(_skip_backtick, raw, i + 1)
        return _strip_newlines(substitute(raw[i + 1 : end - 1].replace("\\`", "`"))), end
    nxt = raw[i + 1 : i + 2]
    if raw.startswith("$((", i):
        end = _skip_lenient(skip_parens, raw, i + 1)
        inner = raw[i + 2 : end - 1]
        if inner.startswith("(") and inner.endswith(")"):
            return str(arithmetic(inner[1:-1], lookup)), end
        return _strip_newlines(substitute(inner)), end
    if nxt == "(":
        end = _skip_lenient(skip_parens, raw, i + 1)
        return _strip_newlines(substitute(raw[i + 2 : end - 1])), end
    if nxt == "{":
        end = _skip_lenient(_skip_braces, raw, i + 2)
        return _expand_braced(raw[i + 2 : end - 1], lookup, substitute), end
    if nxt and nxt in _SPECIAL_PARAMS:
        return lookup(nxt) or "", i + 2
    m = _NAME_RE.match(raw, i + 1)
    if m:
        return lookup(m.group()) or "", m.end()
    return None, i + 1


def _skip_lenient(skipper: Callable[[str, int], int], raw: str, i: int) -> int:
    # A word that reached expansion was already accepted by the parser; an unclosed form can only come
    # from a caller passing arbitrary text, and then the rest of the word is taken as its body.
    try:
        return skipper(raw, i)
    except ShellSyntaxError:
        return len(raw) + 1


def _strip_newlines(s: str) -> str:
    return s.rstrip("\n")


_BRACED_RE = re.compile(r"(#?)([A-Za-z_][A-Za-z0-9_]*|[?$#@*!0-9])(?:(:?[-=+?])(.*))?", re.DOTALL)


_TRIM_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|[?$#@*!0-9])(%%|%|##|#)(.*)", re.DOTALL)
_REPLACE_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|[?$#@*!0-9])/([/#%]?)((?:\\.|[^/])*)(?:/(.*))?", re.DOTALL)
_SUBSTRING_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|[?$#@*!0-9]):(?![-=+?])([^:]+)(?::(.+))?", re.DOTALL)
_CASE_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\^\^|\^|,,|,)")


def _expand_braced(body: str, lookup: Lookup, substitute: Substitute) -> str:
    m = _BRACED_RE.fullmatch(body)
    if not m:
        if trim := _TRIM_RE.fullmatch(body):
            return _trim(lookup(trim[1]) or "", trim[2], glob_pattern(trim[3], lookup, substitute))
        if sub := _REPLACE_RE.fullmatch(body):
            name, how, pattern, replacement = sub.groups()
            replacement = expand_string(replacement or "", lookup, substitute)
            return _replace(lookup(name) or "", how, glob_pattern(pattern, lookup, substitute), replacement)
        if part := _SUBSTRING_RE.fullmatch(body):
            text = lookup(part[1]) or ""
            start = arithmetic(part[2], lookup)
            start = max(len(text) + start, 0) if start < 0 else start
            if part[3] is None:
                return text[start:]
            size = arithmetic(part[3], lookup)
            return text[start : start + size] if size >= 0 else text[start:size]
        if case := _CASE_RE.fullmatch(body):
            text = lookup(case[1]) or ""
            convert = str.upper if case[2][0] == "^" else str.lower
            return convert(text) if len(case[2]) == 2 else convert(text[:1]) + text[1:]
        if re.match(r"[!#]?[A-Za-z_][A-Za-z0-9_]*\[", body):
            raise Unfaithful("arrays")
        if body.startswith("!"):
            raise Unfaithful("indirect expansion ${!x}")
        if re.match(r"!?([A-Za-z_][A-Za-z0-9_]*|[?$#@*!0-9])[:/^,@]", body):
            raise Unfaithful("parameter expansion ${" + re.sub(r"^!?\w+", "x", body)[:3] + "…}")
        raise ExpansionError(f"${{{body}}}: bad substitution")
    length, name, op, word = m.groups()
    if op is not None and op.endswith("="):
        raise Unfaithful("parameter expansion ${x" + op + "…}")
    value = lookup(name)
    if length:
        return str(len(value or ""))
    if op is None:
        return value or ""
    unset = value is None or (op.startswith(":") and value == "")
    alternative = expand_string(word, lookup, substitute)
    if op.endswith("+"):
        return "" if unset else alternative
    if op.endswith("?") and unset:
        raise ExpansionError(f"{name}: {alternative or 'parameter null or not set'}")
    return alternative if unset else (value or "")


def glob_pattern(raw: str, lookup: Lookup, substitute: Substitute = _no_substitution) -> str:
    """A raw word as a glob pattern (`case` patterns, `${x%…}`): quoted and escaped characters match literally."""
    fields = expand_word(raw, lookup, substitute, split=False)
    unsplit = expand_word(raw, lookup, substitute)
    if len(unsplit) == 1 and unsplit[0].pattern is not None:
        return unsplit[0].pattern
    return _escape_glob(fields[0].text)


def _replace(value: str, how: str, pattern: str, replacement: str) -> str:
    """`${x/p/r}` (first match, longest), `${x//p/r}` (every match), `${x/#p/r}` (prefix), `${x/%p/r}` (suffix)."""
    if not pattern:
        return value
    glob = fnmatch.translate(pattern).removeprefix("(?s:").removesuffix(")\\Z")
    anchored = {"#": f"^(?:{glob})", "%": f"(?:{glob})$"}.get(how, glob)
    return re.sub(anchored, lambda _: replacement, value, count=0 if how == "/" else 1, flags=re.DOTALL)


def _trim(value: str, op: str, pattern: str) -> str:
    """`${x%p}` `${x%%p}` (shortest/longest matching suffix removed), `${x#p}` `${x##p}` (prefix)."""
    cuts = range(len(value) + 1) if op in ("#", "%%") else range(len(value), -1, -1)
    for k in cuts:
        if op.startswith("%") and fnmatchcase(value[k:], pattern):
            return value[:k]
        if op.startswith("#") and fnmatchcase(value[:k], pattern):
            return value[k:]
    return value


_ANSI_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def ansi_c_decode(body: str) -> str:
    """Decode backslash escapes as in `$'…'` strings (also used for `echo -e` and `printf`)."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _ANSI_ESCAPES:
            out.append(_ANSI_ESCAPES[e])
            i += 2
        elif e == "x" and (m := re.match(r"[0-9A-Fa-f]{1,2}", body[i + 2 :])):
            out.append(chr(int(m.group(), 16)))
            i += 2 + m.end()
        elif e in "01234567" and (m := re.match(r"[0-7]{1,3}", body[i + 1 :])):
            out.append(chr(int(m.group(), 8)))
            i += 1 + m.end()
        else:
            out.append(c + e)
            i += 2
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Arithmetic: `$((…))` on integers, evaluated through Python's AST so no code can run.

_BINOPS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
    ast.Mod: lambda a, b: a - b * _c_div(a, b),
    ast.FloorDiv: lambda a, b: _c_div(a, b),
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[int, int], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _c_div(a: int, b: int) -> int:
    """Integer division truncating toward zero, as in C and bash (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def arithmetic(expr: str, lookup: Lookup) -> int:
    """Evaluate a bash arithmetic expression (integers, + - * / % **, comparisons, && || !). Assignments,
    `++`/`--`, `?:`, `,` and chained comparisons raise `Unfaithful`: they are not modelled."""
    if re.search(r"(?<![=!<>])=(?!=)|\+\+|--|[?,]", expr):
        raise Unfaithful("arithmetic assignment, ?: or ,")
    # Translate the few operators whose spelling differs from Python's; `/` truncates like C.
    py = re.sub(r"(?<![=!<>])!(?!=)", " not ", expr)
    py = py.replace("&&", " and ").replace("||", " or ").replace("/", "//")
    try:
        tree = ast.parse(py.strip() or "0", mode="eval")
        return _arith(tree.body, lookup)
    except ZeroDivisionError as exc:
        raise ExpansionError(f"{expr.strip()}: division by 0") from exc
    except (SyntaxError, ValueError, TypeError, RecursionError) as exc:
        raise ExpansionError(f"{expr.strip()}: syntax error in expression") from exc


def _arith(node: ast.AST, lookup: Lookup) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        value = lookup(node.id)
        return arithmetic(value, lookup) if value and value.strip() else 0
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _arith(node.left, lookup), _arith(node.right, lookup)
        if isinstance(node.op, ast.Pow) and right > 64:
            raise ValueError("exponent too large")
        return _BINOPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp):
        operand = _arith(node.operand, lookup)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Invert):
            return ~operand
        if isinstance(node.op, ast.Not):
            return int(not operand)
    if isinstance(node, ast.BoolOp):
        values = [_arith(v, lookup) for v in node.values]
        return int(all(values) if isinstance(node.op, ast.And) else any(values))
    if isinstance(node, ast.Compare) and len(node.ops) > 1:
        raise Unfaithful("chained arithmetic comparison")
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        left = _arith(node.left, lookup)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _arith(comparator, lookup)
            if not _CMPOPS[type(op)](left, right):
                return 0
            left = right
        return 1
    raise ValueError("unsupported arithmetic")
