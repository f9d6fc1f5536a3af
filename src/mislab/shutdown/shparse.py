"""Bash command lines → a small typed syntax tree.

`bashlex` does the grammar. Three things it cannot do are handled before it runs, at the token level:
here-documents with a quoted delimiter (`cat > f <<'EOF'`, which models write constantly) are cut out of
the text and replaced by here-string placeholders, `[[ … ]]` is presented to it as a plain command named
`[[`, and `$((…))` as a parameter placeholder that the words get back afterwards. When bashlex still
fails (`case`, `(( … ))` commands, or one of its own bugs) a flat recursive-descent parser over the same
tokens takes over: it understands lists, pipelines, groups and redirections, and drops control keywords.

Words are kept raw (see `shwords`), so callers decide how to expand them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import bashlex

from mislab.shutdown.shwords import ShellSyntaxError, arith_spans, literal_word, skip_unit, skip_word

__all__ = [
    "CommandList",
    "For",
    "FunctionDef",
    "Group",
    "HereDoc",
    "If",
    "Loop",
    "Node",
    "Pipeline",
    "Redirect",
    "ShellSyntaxError",
    "Simple",
    "Word",
    "parse",
    "substitutions",
]


@dataclass(frozen=True)
class Word:
    """A shell word as written, quotes included."""

    raw: str

    @property
    def literal(self) -> str:
        """The word after quote removal, with no variables set."""
        return literal_word(self.raw)


@dataclass(frozen=True)
class HereDoc:
    body: str
    expand: bool  # False when the delimiter was quoted: the body is then taken literally


@dataclass(frozen=True)
class Redirect:
    """One redirection. `op` is bash's operator (`>`, `>>`, `<`, `<<`, `<<<`, `>&`, `&>`, …)."""

    op: str
    fd: int | None = None  # descriptor written before the operator (`2>`)
    target: Word | None = None  # file name or here-string; None for `<<` and descriptor duplication
    dup: int | str | None = None  # `2>&1` → 1; `>&-` → "-"
    heredoc: HereDoc | None = None


@dataclass(frozen=True)
class Simple:
    words: tuple[Word, ...]
    assignments: tuple[tuple[str, Word], ...] = ()
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Node, ...]
    negated: bool = False


@dataclass(frozen=True)
class CommandList:
    """`items[k]` and `items[k+1]` are joined by `ops[k]`: one of `;`, `&`, `&&`, `||`."""

    items: tuple[Node, ...]
    ops: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    body: Node
    subshell: bool  # `( … )` rather than `{ …; }`
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class If:
    branches: tuple[tuple[Node, Node], ...]  # (condition, body) for `if` and each `elif`
    orelse: Node | None = None
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Loop:
    condition: Node
    body: Node
    until: bool = False
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class For:
    var: str
    items: tuple[Word, ...] | None  # None: `for x; do` iterates over the positional parameters
    body: Node
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class FunctionDef:
    name: str
    body: Node


Node = Simple | Pipeline | CommandList | Group | If | Loop | For | FunctionDef

EMPTY = CommandList(())


# ---------------------------------------------------------------------------------------------------------
# Tokens

_OPERATORS = (
    "&>>",
    "<<<",
    "<<-",
    ";;&",
    "&&",
    "||",
    ";;",
    ";&",
    "|&",
    "<<",
    ">>",
    "<&",
    ">&",
    "<>",
    ">|",
    "&>",
    ";",
    "&",
    "|",
    "(",
    ")",
    "<",
    ">",
)
REDIRECT_OPS = frozenset({"<", ">", ">>", ">|", "<>", "&>", "&>>", "<<<", "<<", "<<-", "<&", ">&"})
SEPARATORS = frozenset({";", "&", "&&", "||", ";;", ";&", ";;&", "\n"})
# Words after which the next word starts a command (so that `[[` there is the conditional command).
_COMMAND_PREFIX_WORDS = frozenset({"if", "then", "elif", "else", "do", "while", "until", "!", "{", "time"})
_CONTROL_WORDS = frozenset(
    {
        "if",
        "then",
        "elif",
        "else",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "for",
        "in",
        "case",
        "esac",
        "select",
        "function",
        "{",
        "}",
        "!",
        "time",
    }
)


@dataclass
class Token:
    kind: str  # "word", "op" or "newline"
    text: str
    start: int
    end: int
    fd: int | None = None  # `2>`: the descriptor written before a redirection operator
    heredoc: HereDoc | None = None  # set on the delimiter word of `<<`
    body_span: tuple[int, int] | None = None  # where that here-document's body sits in the text


@dataclass
class _Lexer:
    text: str
    tokens: list[Token] = field(default_factory=list)
    pending: list[Token] = field(default_factory=list)  # delimiter words whose body is still to be read

    def run(self) -> list[Token]:
        text, i = self.text, 0
        while i < len(text):
            c = text[i]
            if c in " \t\r":
                i += 1
            elif text.startswith("\\\n", i):
                i += 2
            elif c == "#":
                while i < len(text) and text[i] != "\n":
                    i += 1
            elif c == "\n":
                self.tokens.append(Token("newline", "\n", i, i + 1))
                i = self._read_heredocs(i + 1)
            elif op := _match_operator(text, i):
                self._add_op(op, i, i + len(op))
                i += len(op)
            else:
                end = skip_word(text, i)
                if text[i:end].isdigit() and (op := _match_operator(text, end)) and op in REDIRECT_OPS:
                    self._add_op(op, i, end + len(op), fd=int(text[i:end]))
                    i = end + len(op)
                    continue
                self._add_word(i, end)
                i = end
        self._read_heredocs(len(text))
        return self.tokens

    def _add_op(self, op: str, start: int, end: int, fd: int | None = None) -> None:
        self.tokens.append(Token("op", op, start, end, fd=fd))

    def _add_word(self, start: int, end: int) -> None:
        tok = Token("word", self.text[start:end], start, end)
        prev = self.tokens[-1] if self.tokens else None
        if prev is not None and prev.kind == "op" and prev.text in ("<<", "<<-"):
            self.pending.append(tok)
        self.tokens.append(tok)

    def _read_heredocs(self, i: int) -> int:
        """Read the bodies of pending here-documents starting at line start `i`; returns where they end."""
        for tok in self.pending:
            strip_tabs = self.tokens[self.tokens.index(tok) - 1].text == "<<-"
            delim = literal_word(tok.text)
            lines: list[str] = []
            start = i
            while i < len(self.text):
                nl = self.text.find("\n", i)
                line_end = len(self.text) if nl < 0 else nl
                line = self.text[i:line_end]
                i = min(line_end + 1, len(self.text))
                if strip_tabs:
                    line = line.lstrip("\t")
                if line == delim:
                    break
                lines.append(line + "\n")
            tok.heredoc = HereDoc("".join(lines), expand=not any(q in tok.text for q in "'\"\\"))
            tok.body_span = (start, i)
        self.pending = []
        return i


def _match_operator(text: str, i: int) -> str | None:
    for op in _OPERATORS:
        if text.startswith(op, i):
            return op
    return None


def tokenize(text: str) -> list[Token]:
    """Split a command line into words, operators and newlines; raises ShellSyntaxError on open quotes."""
    return _Lexer(text).run()


# ---------------------------------------------------------------------------------------------------------
# Parsing

_HEREDOC_PLACEHOLDER = "__mislab_heredoc_{}__"
_PLACEHOLDER_RE = re.compile(r"__mislab_heredoc_(\d+)__")
_ARITH_PLACEHOLDER = "${{__mislab_arith_{}}}"
_ARITH_RE = re.compile(r"\$\{__mislab_arith_(\d+)\}")


def parse(text: str, *, lenient: bool = False) -> Node:
    """Parse a bash command line.

    Raises ShellSyntaxError for input bash would reject outright (an unclosed quote). With
    `lenient=True`, used to read intent rather than to run anything, such input is repaired by closing
    the open quote, and as a last resort split on blanks; it never raises.
    """
    try:
        tokens = tokenize(text)
    except ShellSyntaxError:
        if not lenient:
            raise
        return _parse_repaired(text)
    if not any(t.kind != "newline" for t in tokens):
        return EMPTY
    rewritten, heredocs, arithmetic = _rewrite_for_bashlex(text, tokens)
    try:
        trees = bashlex.parse(rewritten)
    # bashlex raises its own ParsingError, NotImplementedError for unsupported syntax, and on some inputs
    # assorted internal errors; any of them means "use the fallback parser", never "crash".
    except Exception:  # noqa: BLE001
        return _Fallback(tokens).parse()
    converter = _FromBashlex(rewritten, heredocs, arithmetic)
    try:
        nodes = [converter.convert(t) for t in trees]
    except _Unsupported:
        return _Fallback(tokens).parse()
    return nodes[0] if len(nodes) == 1 else CommandList(tuple(nodes), (";",) * (len(nodes) - 1))


def _parse_repaired(text: str) -> Node:
    for closer in ("'", '"', "`", ")", "')", '")', "}"):
        try:
            return parse(text + closer)
        except ShellSyntaxError:
            continue
    return Simple(tuple(Word(_quote_all(w)) for w in text.split()))


def _quote_all(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _rewrite_for_bashlex(text: str, tokens: list[Token]) -> tuple[str, list[HereDoc], list[str]]:
    """Text bashlex can parse: here-documents become here-string placeholders, `[[ ]]` a plain command,
    `$((…))` a parameter placeholder (the converter puts the original text back into the words)."""
    edits: list[tuple[int, int, str]] = []
    heredocs: list[HereDoc] = []
    arithmetic: list[str] = []
    in_cond = False
    for k, tok in enumerate(tokens):
        if tok.kind == "word":
            for start, end in arith_spans(tok.text):
                edits.append((tok.start + start, tok.start + end, _ARITH_PLACEHOLDER.format(len(arithmetic))))
                arithmetic.append(tok.text[start:end])
        if tok.heredoc is not None and tok.body_span is not None:
            op = tokens[k - 1]
            edits.append((op.end - len(op.text), op.end, "<<<"))
            edits.append((tok.start, tok.end, _HEREDOC_PLACEHOLDER.format(len(heredocs))))
            edits.append((*tok.body_span, ""))
            heredocs.append(tok.heredoc)
        elif tok.kind == "word" and tok.text == "[[" and _at_command_start(tokens, k):
            edits.append((tok.start, tok.end, "\\[\\["))
            in_cond = True
        elif in_cond and tok.kind == "word" and tok.text == "]]":
            edits.append((tok.start, tok.end, "\\]\\]"))
            in_cond = False
        elif in_cond and tok.kind == "op":
            edits.append((tok.start, tok.end, _quote_all(tok.text)))
    out: list[str] = []
    pos = 0
    for start, end, replacement in sorted(edits):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out), heredocs, arithmetic


def _at_command_start(tokens: list[Token], k: int) -> bool:
    prev = tokens[k - 1] if k else None
    if prev is None or prev.kind == "newline":
        return True
    if prev.kind == "op":
        return prev.text not in REDIRECT_OPS
    return prev.text in _COMMAND_PREFIX_WORDS


class _Unsupported(Exception):
    """A bashlex node this converter does not model; the fallback parser handles the text instead."""


class _FromBashlex:
    def __init__(self, src: str, heredocs: list[HereDoc], arithmetic: list[str]) -> None:
        self.src = src
        self.heredocs = heredocs
        self.arithmetic = arithmetic

    def word(self, node: bashlex.ast.node) -> Word:
        raw = self.src[node.pos[0] : node.pos[1]]
        return Word(_ARITH_RE.sub(lambda m: self.arithmetic[int(m.group(1))], raw))

    def convert(self, node: bashlex.ast.node) -> Node:
        kind = node.kind
        if kind == "list":
            return self._list(node.parts)
        if kind == "pipeline":
            negated = bool(node.parts) and node.parts[0].kind == "reservedword" and node.parts[0].word == "!"
            commands = tuple(self.convert(p) for p in node.parts if p.kind not in ("pipe", "reservedword"))
            return commands[0] if len(commands) == 1 and not negated else Pipeline(commands, negated)
        if kind == "command":
            return self._command(node)
        if kind == "compound":
            return self._compound(node)
        if kind == "function":
            return FunctionDef(node.name.word, self.convert(node.body))
        raise _Unsupported(kind)

    def _list(self, parts: list[bashlex.ast.node]) -> Node:
        items: list[Node] = []
        ops: list[str] = []
        for part in parts:
            if part.kind == "operator":
                ops.append(";" if part.op == "\n" else part.op)
            else:
                items.append(self.convert(part))
        ops = ops[: len(items) - 1]  # a trailing `;` or `&` joins nothing
        return items[0] if len(items) == 1 else CommandList(tuple(items), tuple(ops))

    def _command(self, node: bashlex.ast.node) -> Simple:
        words: list[Word] = []
        assignments: list[tuple[str, Word]] = []
        redirects: list[Redirect] = []
        for part in node.parts:
            if part.kind == "word":
                words.append(self.word(part))
            elif part.kind == "assignment" and not words:
                raw = self.word(part).raw
                name, _, value = raw.partition("=")
                assignments.append((name, Word(value)))
            elif part.kind == "assignment":
                words.append(self.word(part))
            elif part.kind == "redirect":
                redirects.append(self._redirect(part))
            else:
                raise _Unsupported(part.kind)
        return Simple(tuple(words), tuple(assignments), tuple(redirects))

    def _redirect(self, node: bashlex.ast.node) -> Redirect:
        op, fd, out = node.type, node.input, node.output
        if op == "<<<" and isinstance(out, bashlex.ast.node):
            m = _PLACEHOLDER_RE.fullmatch(self.word(out).raw)
            if m:
                return Redirect("<<", fd, heredoc=self.heredocs[int(m.group(1))])
        if isinstance(out, int) or out == "-":
            return Redirect(op, fd, dup=out)
        target = self.word(out)
        if op in (">&", "<&") and target.literal.isdigit():
            return Redirect(op, fd, dup=int(target.literal))
        # `>&file` is the old spelling of `&>file`.
        return Redirect("&>" if op == ">&" and fd is None else op, fd, target=target)

    def _redirects(self, node: bashlex.ast.node) -> tuple[Redirect, ...]:
        return tuple(self._redirect(r) for r in getattr(node, "redirects", []))

    def _compound(self, node: bashlex.ast.node) -> Node:
        parts = node.list
        redirects = self._redirects(node)
        if parts and parts[0].kind == "reservedword" and parts[0].word in ("(", "{"):
            body = [p for p in parts if p.kind != "reservedword"]
            inner = self.convert(body[0]) if len(body) == 1 else self._list(body)
            return Group(inner, subshell=parts[0].word == "(", redirects=redirects)
        if len(parts) != 1:
            raise _Unsupported("compound")
        inner = parts[0]
        if inner.kind == "if":
            return self._if(inner.parts, redirects)
        if inner.kind in ("while", "until"):
            lists = [p for p in inner.parts if p.kind != "reservedword"]
            return Loop(self.convert(lists[0]), self.convert(lists[1]), inner.kind == "until", redirects)
        if inner.kind == "for":
            return self._for(inner.parts, redirects)
        raise _Unsupported(inner.kind)

    def _if(self, parts: list[bashlex.ast.node], redirects: tuple[Redirect, ...]) -> If:
        branches: list[tuple[Node, Node]] = []
        orelse: Node | None = None
        pending: list[Node] = []
        keyword = ""
        for part in parts:
            if part.kind == "reservedword":
                keyword = part.word if part.word in ("if", "elif", "then", "else") else keyword
                continue
            converted = self.convert(part)
            if keyword in ("if", "elif"):
                pending = [converted]
            elif keyword == "then":
                branches.append((pending[0], converted))
            elif keyword == "else":
                orelse = converted
        return If(tuple(branches), orelse, redirects)

    def _for(self, parts: list[bashlex.ast.node], redirects: tuple[Redirect, ...]) -> For:
        var = parts[1].word
        words = [p for p in parts[2:] if p.kind == "word"]
        has_in = any(p.kind == "reservedword" and p.word == "in" for p in parts)
        body = next(p for p in parts if p.kind not in ("word", "reservedword"))
        items = tuple(self.word(w) for w in words) if has_in else None
        return For(var, items, self.convert(body), redirects)


class _Fallback:
    """Flat parser used when bashlex fails: lists, pipelines, groups, redirections; keywords dropped."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Node:
        node = self._list(closer=None)
        while self.i < len(self.tokens):  # a stray `)`: skip it and keep reading
            self.i += 1
            rest = self._list(closer=None)
            node = CommandList((node, rest), (";",))
        return node

    def _peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _list(self, closer: str | None) -> Node:
        items: list[Node] = []
        ops: list[str] = []
        joiner: str | None = None  # the separator seen since the last item
        while (tok := self._peek()) is not None:
            if (tok.kind == "op" and tok.text == ")") or (closer == "}" and tok.kind == "word" and tok.text == "}"):
                if closer is not None:
                    self.i += 1
                break
            if tok.kind == "newline" or (tok.kind == "op" and tok.text in SEPARATORS):
                self.i += 1
                joiner = tok.text if tok.text in ("&&", "||") else joiner or ";"
                continue
            if items:
                ops.append(joiner or ";")
            joiner = None
            items.append(self._pipeline())
        return items[0] if len(items) == 1 else CommandList(tuple(items), tuple(ops))

    def _pipeline(self) -> Node:
        commands = [self._command()]
        while (tok := self._peek()) is not None and tok.kind == "op" and tok.text in ("|", "|&"):
            self.i += 1
            commands.append(self._command())
        return commands[0] if len(commands) == 1 else Pipeline(tuple(commands))

    def _command(self) -> Node:
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text == "(":
            self.i += 1
            return Group(self._list(closer=")"), subshell=True)
        words: list[Word] = []
        assignments: list[tuple[str, Word]] = []
        redirects: list[Redirect] = []
        while (tok := self._peek()) is not None:
            if tok.kind == "word":
                self.i += 1
                if not words and tok.text == "{":
                    return Group(self._list(closer="}"), subshell=False)
                if not words and tok.text in _CONTROL_WORDS:
                    continue
                if not words and (m := re.match(r"[A-Za-z_][A-Za-z0-9_]*\+?=", tok.text)):
                    assignments.append((m.group()[:-1], Word(tok.text[m.end() :])))
                else:
                    words.append(Word(tok.text))
            elif tok.kind == "op" and tok.text in REDIRECT_OPS:
                self.i += 1
                redirects.append(self._redirect(tok))
            else:
                break
        return Simple(tuple(words), tuple(assignments), tuple(redirects))

    def _redirect(self, op: Token) -> Redirect:
        target = self._peek()
        if target is None or target.kind != "word":
            return Redirect(op.text, op.fd, target=Word(""))
        self.i += 1
        if target.heredoc is not None:
            return Redirect("<<", op.fd, heredoc=target.heredoc)
        if op.text in (">&", "<&") and (target.text.isdigit() or target.text == "-"):
            return Redirect(op.text, op.fd, dup=int(target.text) if target.text.isdigit() else "-")
        return Redirect(op.text, op.fd, target=Word(target.text))


def substitutions(raw: str) -> list[str]:
    """The command texts of the `$(…)` and backtick substitutions in a raw word (outside single quotes)."""
    found: list[str] = []
    i = 0
    while i < len(raw):
        try:
            end = skip_unit(raw, i)
        except ShellSyntaxError:
            break
        unit = raw[i:end]
        if unit.startswith("$((") and unit.endswith("))"):
            pass  # arithmetic, not a command
        elif unit.startswith("$(") and unit.endswith(")"):
            found.append(unit[2:-1])
        elif unit.startswith("`") and unit.endswith("`") and len(unit) > 1:
            found.append(unit[1:-1])
        elif unit.startswith('"'):
            found.extend(substitutions(unit[1:-1]))
        i = end
    return found
