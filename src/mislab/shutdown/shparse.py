"""Bash command lines → a small typed syntax tree, the one parser of the shutdown package (the simulated
shell runs it, the command classifier reads it).

A recursive-descent parser over bash's tokens (here-documents read at the newline that follows them):
lists, pipelines, `!`, subshells and groups, `if`, `while`/`until`, `for … in`, `case`, functions,
`(( … ))`, `[[ … ]]` and redirections. What it reads past without modelling becomes an `Unsupported` node
(arrays, `select`, `coproc`, C-style `for ((…))`, `[[ =~ ]]`, `time`, process substitution) that keeps the
commands inside it, never a different command. With `lenient=True` (reading intent, not running), an unclosed
quote is closed, and input bash would still reject becomes one command of its blank-separated words instead of
raising.

Words are kept raw (see `shwords`), so callers decide how to expand them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NoReturn, TypeGuard

from mislab.shutdown.shwords import ShellSyntaxError, literal_word, skip_parens, skip_unit, skip_word

__all__ = ["Arith", "Case", "CommandList", "For", "FunctionDef", "Group", "HereDoc", "If", "Loop", "Node",
           "Pipeline", "Redirect", "ShellSyntaxError", "Simple", "Unsupported", "Word", "parse",
           "substitutions"]  # fmt: skip


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
    line: int = 1  # where it starts in the text, for error messages


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


@dataclass(frozen=True)
class Case:
    word: Word
    arms: tuple[tuple[tuple[Word, ...], Node, str], ...]  # (patterns, body, `;;` / `;&` / `;;&`)
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Arith:
    """`(( expr ))`: true when the expression is not zero."""

    expr: str
    redirects: tuple[Redirect, ...] = ()


@dataclass(frozen=True)
class Unsupported:
    """A construct this parser reads past but does not model (arrays, `select`, `coproc`, `for ((…))`,
    `[[ =~ ]]`, `time`, `<(…)`): the simulated shell refuses to run it, the classifier reads `body` if any."""

    construct: str
    text: str
    body: Node | None = None


Node = Simple | Pipeline | CommandList | Group | If | Loop | For | FunctionDef | Case | Arith | Unsupported

EMPTY = CommandList(())


# ---------------------------------------------------------------------------------------------------------
# Tokens (operators longest first)

_OPERATORS = ("&>>", "<<<", "<<-", ";;&", "&&", "||", ";;", ";&", "|&", "<<", ">>", "<&", ">&", "<>", ">|", "&>",
              ";", "&", "|", "(", ")", "<", ">")  # fmt: skip
REDIRECT_OPS = frozenset({"<", ">", ">>", ">|", "<>", "&>", "&>>", "<<<", "<<", "<<-", "<&", ">&"})
_PROCESS_SUBSTITUTIONS = ("<(", ">(")


@dataclass
class Token:
    kind: str  # "word", "op" or "newline"
    text: str
    start: int
    end: int
    fd: int | None = None  # `2>`: the descriptor written before a redirection operator
    heredoc: HereDoc | None = None  # set on the delimiter word of `<<`
    body_span: tuple[int, int] | None = None  # where that here-document's body sits in the text
    process_substitution: bool = False  # a word holding `<(…)` or `>(…)`


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
            elif (op := _match_operator(text, i)) and not text.startswith(_PROCESS_SUBSTITUTIONS, i):
                self._add_op(op, i, i + len(op))
                i += len(op)
            else:
                end = skip_word(text, i)
                substituted = text.startswith(_PROCESS_SUBSTITUTIONS, end)
                while text.startswith(_PROCESS_SUBSTITUTIONS, end):  # bash reads them as part of a word
                    end = skip_word(text, skip_parens(text, end + 1))
                if text[i:end].isdigit() and (op := _match_operator(text, end)) and op in REDIRECT_OPS:
                    self._add_op(op, i, end + len(op), fd=int(text[i:end]))
                    i = end + len(op)
                    continue
                self._add_word(i, end)
                self.tokens[-1].process_substitution = substituted
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


def parse(text: str, *, lenient: bool = False) -> Node:
    """Parse a bash command line.

    Raises ShellSyntaxError for input bash would reject (an unclosed quote, `fi` without `if`). With
    `lenient=True`, used to read intent rather than to run anything, it never raises (see the module doc).
    """
    try:
        tokens = tokenize(text)
    except ShellSyntaxError:
        if not lenient:
            raise
        return _parse_repaired(text)
    try:
        return _Parser(text, tokens).parse()
    except ShellSyntaxError:
        if not lenient:
            raise
        return _words(text)


def _parse_repaired(text: str) -> Node:
    for closer in ("'", '"', "`", ")", "')", '")', "}"):
        try:
            return parse(text + closer)
        except ShellSyntaxError:
            continue
    return _words(text)


def _words(text: str) -> Simple:
    return Simple(tuple(Word(_quote_all(w)) for w in text.split()))


def _quote_all(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


_COMPOUND_STARTS = frozenset({"{", "if", "while", "until", "for", "case", "select"})
_LIST_END_WORDS = frozenset({"then", "elif", "else", "fi", "do", "done", "esac", "}"})
_CASE_ENDS = frozenset({";;", ";&", ";;&"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


class _Parser:
    """Recursive descent over the tokens, following bash's grammar for the constructs it knows; the rest
    become `Unsupported` nodes (never something else)."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def parse(self) -> Node:
        node = self.list_(frozenset())
        if (tok := self.peek()) is not None:
            self.unexpected(tok)
        return node

    # -- tokens

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def unexpected(self, tok: Token | None) -> NoReturn:
        if tok is None:
            raise ShellSyntaxError("syntax error: unexpected end of file")
        shown = "newline" if tok.kind == "newline" else tok.text
        raise ShellSyntaxError(f"syntax error near unexpected token `{shown}'")

    def is_word(self, tok: Token | None, *texts: str) -> TypeGuard[Token]:
        return tok is not None and tok.kind == "word" and (not texts or tok.text in texts)

    def is_op(self, tok: Token | None, *texts: str) -> TypeGuard[Token]:
        return tok is not None and tok.kind == "op" and (not texts or tok.text in texts)

    def skip_newlines(self) -> None:
        while (tok := self.peek()) is not None and tok.kind == "newline":
            self.i += 1

    def expect_word(self, text: str) -> None:
        self.skip_newlines()
        tok = self.peek()
        if not self.is_word(tok, text):
            self.unexpected(tok)
        self.i += 1

    # -- lists and pipelines

    def at_list_end(self, ends: frozenset[str]) -> bool:
        tok = self.peek()
        if tok is None:
            return True
        if tok.kind == "op":
            return tok.text == ")" or tok.text in _CASE_ENDS
        return tok.kind == "word" and (tok.text in ends or tok.text in _LIST_END_WORDS)

    def list_(self, ends: frozenset[str]) -> Node:
        items: list[Node] = []
        ops: list[str] = []
        self.skip_newlines()
        while not self.at_list_end(ends):
            items.append(self.pipeline())
            tok = self.peek()
            if self.is_op(tok, "&&", "||"):
                ops.append(tok.text)
                self.i += 1
                self.skip_newlines()
                if self.at_list_end(ends):
                    self.unexpected(self.peek())
                continue
            if tok is not None and (tok.kind == "newline" or self.is_op(tok, ";", "&")):
                self.i += 1
                self.skip_newlines()
                ops.append(";")
                continue
            if not self.at_list_end(ends):
                self.unexpected(tok)
        ops = ops[: max(len(items) - 1, 0)]
        if not items:
            return EMPTY
        return items[0] if len(items) == 1 else CommandList(tuple(items), tuple(ops))

    def pipeline(self) -> Node:
        """bash's pipeline_command: a pipeline after any `!` and `time` prefixes (`! time ! x` is one)."""
        negated = False
        while self.is_word(self.peek(), "!"):
            self.i += 1
            negated = not negated
        if self.is_word(self.peek(), "time"):
            timed = self.timed()
            return Pipeline((timed,), negated=True) if negated else timed
        commands = [self.command()]
        while self.is_op(self.peek(), "|", "|&"):
            self.i += 1
            self.skip_newlines()
            commands.append(self.command())
        if len(commands) == 1 and not negated:
            return commands[0]
        return Pipeline(tuple(commands), negated)

    def timed(self) -> Node:
        """`time [-p] [--] PIPELINE`, or `time` alone before `;`, a newline or the end (times nothing).

        bash's lexer reads `-p` and `--` right after the reserved word as part of it (TIMEOPT, TIMEIGN); any
        other word starts the pipeline (`time -v x` runs a command `-v`). Not modelled by the simulated shell,
        so an `Unsupported` node, whose body is the pipeline: it still runs, and the classifier reads it.
        """
        start = self.tokens[self.i]
        self.i += 1
        for option in ("-p", "--"):
            if self.is_word(self.peek(), option):
                self.i += 1
        tok = self.peek()
        alone = tok is None or tok.kind == "newline" or self.is_op(tok, ";")
        body = EMPTY if alone else self.pipeline()
        return Unsupported("time", self.text[start.start : self.tokens[self.i - 1].end], body)

    # -- commands

    def command(self) -> Node:
        """A command; the innermost one holding a process substitution (not modelled) is the body of an
        `Unsupported` node."""
        first = self.i
        node = self.compound_or_simple()
        held = [t for t in self.tokens[first : self.i] if t.process_substitution]
        if not held:
            return node
        for t in held:
            t.process_substitution = False  # so that the commands around this one are not refused for it
        return Unsupported(
            "process substitution", self.text[self.tokens[first].start : self.tokens[self.i - 1].end], node
        )

    def compound_or_simple(self) -> Node:
        tok = self.peek()
        if tok is None:
            self.unexpected(tok)
        assert tok is not None
        if self.is_op(tok, "("):
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if self.is_op(nxt, "(") and nxt.start == tok.end:
                return self.arith(tok)
            self.i += 1
            body = self.list_(frozenset())
            if not self.is_op(self.peek(), ")"):
                self.unexpected(self.peek())
            self.i += 1
            return Group(body, subshell=True, redirects=self.redirects())
        if tok.kind != "word":
            if self.is_op(tok, *REDIRECT_OPS):
                return self.simple()
            self.unexpected(tok)
        word = tok.text
        if word == "{":
            self.i += 1
            body = self.list_(frozenset({"}"}))
            self.expect_word("}")
            return Group(body, subshell=False, redirects=self.redirects())
        if word == "if":
            return self.if_()
        if word in ("while", "until"):
            self.i += 1
            condition = self.list_(frozenset({"do"}))
            body = self.do_group()
            return Loop(condition, body, word == "until", self.redirects())
        if word == "for":
            return self.for_()
        if word == "case":
            return self.case()
        if word == "function":
            self.i += 1
            name = self.peek()
            if not self.is_word(name):
                self.unexpected(name)
            self.i += 1
            if self.is_op(self.peek(), "("):
                self.i += 1
                if not self.is_op(self.peek(), ")"):
                    self.unexpected(self.peek())
                self.i += 1
            return self.function_body(name.text)
        if word in ("select", "coproc"):
            return self.skip_unsupported(word)
        if word in _LIST_END_WORDS:
            self.unexpected(tok)
        if word == "[[":
            return self.conditional()
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
        if _NAME_RE.fullmatch(word) and self.is_op(nxt, "("):
            after = self.tokens[self.i + 2] if self.i + 2 < len(self.tokens) else None
            if self.is_op(after, ")"):
                self.i += 3
                return self.function_body(word)
        return self.simple()

    def function_body(self, name: str) -> Node:
        self.skip_newlines()
        return FunctionDef(name, self.command())

    def do_group(self) -> Node:
        self.expect_word("do")
        body = self.list_(frozenset({"done"}))
        self.expect_word("done")
        return body

    def if_(self) -> Node:
        branches: list[tuple[Node, Node]] = []
        orelse: Node | None = None
        self.i += 1
        while True:
            condition = self.list_(frozenset({"then"}))
            self.expect_word("then")
            body = self.list_(frozenset())
            branches.append((condition, body))
            tok = self.peek()
            self.i += 1
            if self.is_word(tok, "elif"):
                continue
            if self.is_word(tok, "else"):
                orelse = self.list_(frozenset())
                self.expect_word("fi")
                break
            if self.is_word(tok, "fi"):
                break
            self.i -= 1
            self.unexpected(tok)
        return If(tuple(branches), orelse, self.redirects())

    def for_(self) -> Node:
        start = self.peek()
        self.i += 1
        var = self.peek()
        if self.is_op(var, "("):  # for (( ; ; )): C-style loops are not run
            self.arith(var)
            # `start` is the `for` word this method was called on, never None.
            return self.loop_tail_unsupported("for ((...))", start)  # type: ignore[arg-type]
        if not self.is_word(var) or not _NAME_RE.fullmatch(var.text):
            self.unexpected(var)
        self.i += 1
        items: tuple[Word, ...] | None = None
        self.skip_newlines_if_in()
        if self.is_word(self.peek(), "in"):
            self.i += 1
            words: list[Word] = []
            while self.is_word(self.peek()):
                words.append(Word(self.peek().text))  # type: ignore[union-attr]  # is_word just saw one
                self.i += 1
            items = tuple(words)
            tok = self.peek()
            if tok is not None and (tok.kind == "newline" or self.is_op(tok, ";")):
                self.i += 1
        elif self.is_op(self.peek(), ";"):
            self.i += 1
        body = self.do_group()
        return For(var.text, items, body, self.redirects())

    def skip_newlines_if_in(self) -> None:
        k = self.i
        while k < len(self.tokens) and self.tokens[k].kind == "newline":
            k += 1
        if self.is_word(self.tokens[k] if k < len(self.tokens) else None, "in"):
            self.i = k

    def loop_tail_unsupported(self, construct: str, start: Token) -> Node:
        tok = self.peek()
        if tok is not None and (tok.kind == "newline" or self.is_op(tok, ";")):
            self.i += 1
        body = self.do_group()
        return Unsupported(construct, self.text[start.start : self.tokens[self.i - 1].end], body)

    def skip_unsupported(self, word: str) -> Node:
        """`select` and `coproc`: read past them (their body is kept for the classifier), never run them."""
        start = self.peek()
        assert start is not None
        self.i += 1
        if word == "select":
            while self.peek() is not None and not self.is_word(self.peek(), "do"):
                self.i += 1
            body = self.do_group()
        else:
            name, nxt = self.peek(), self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if (
                self.is_word(name) and not self.is_word(name, *_COMPOUND_STARTS)
                and (self.is_op(nxt, "(") or self.is_word(nxt, *_COMPOUND_STARTS))
            ):  # fmt: skip
                self.i += 1  # `coproc NAME { …; }`: a name is only allowed before a compound command
            body = self.command()
        return Unsupported(word, self.text[start.start : self.tokens[self.i - 1].end], body)

    def case(self) -> Node:
        self.i += 1
        subject = self.peek()
        if not self.is_word(subject):
            self.unexpected(subject)
        self.i += 1
        self.expect_word("in")
        arms: list[tuple[tuple[Word, ...], Node, str]] = []
        while True:
            self.skip_newlines()
            tok = self.peek()
            if self.is_word(tok, "esac"):
                self.i += 1
                break
            if self.is_op(tok, "("):
                self.i += 1
            patterns: list[Word] = []
            while True:
                tok = self.peek()
                if not self.is_word(tok):
                    self.unexpected(tok)
                patterns.append(Word(tok.text))
                self.i += 1
                if self.is_op(self.peek(), "|"):
                    self.i += 1
                    continue
                if not self.is_op(self.peek(), ")"):
                    self.unexpected(self.peek())
                self.i += 1
                break
            body = self.list_(frozenset({"esac"}))
            tok = self.peek()
            if self.is_op(tok, *_CASE_ENDS):
                self.i += 1
                arms.append((tuple(patterns), body, tok.text))
            elif self.is_word(tok, "esac"):
                arms.append((tuple(patterns), body, ";;"))
            else:
                self.unexpected(tok)
        return Case(Word(subject.text), tuple(arms), self.redirects())

    def conditional(self) -> Node:
        """`[[ … ]]` is run as a command named `[[` whose operators are quoted words. With `=~`, whose regex is
        not modelled, that command is the body of an `Unsupported` node (its operands still expand)."""
        start = self.tokens[self.i]
        words = [Word("[[")]
        regex = False
        self.i += 1
        while (tok := self.peek()) is not None and not self.is_word(tok, "]]"):
            self.i += 1
            if tok.kind == "newline":
                if not regex:  # bash takes a newline only inside the regex
                    self.unexpected(tok)
                continue
            regex = regex or tok.text == "=~"
            words.append(Word(tok.text if tok.kind == "word" else _quote_all(tok.text)))
        if tok is None:
            self.unexpected(tok)
        self.i += 1
        words.append(Word("]]"))
        node = Simple(tuple(words), (), self.redirects(), self.text.count("\n", 0, tok.start) + 1)
        return Unsupported("[[ =~ ]]", self.text[start.start : tok.end], node) if regex else node

    def arith(self, tok: Token) -> Node:
        """`(( expr ))` at `tok` (the first `(`)."""
        try:
            end = skip_parens(self.text, tok.start)
        except ShellSyntaxError:
            end = -1
        if end < 0 or self.text[end - 2 : end] != "))":
            self.unexpected(tok)
        while self.i < len(self.tokens) and self.tokens[self.i].start < end:
            self.tokens[self.i].process_substitution = False  # in arithmetic, `<(` is a comparison
            self.i += 1
        return Arith(self.text[tok.start + 2 : end - 2], self.redirects())

    def simple(self) -> Node:
        words: list[Word] = []
        assignments: list[tuple[str, Word]] = []
        redirects: list[Redirect] = []
        start = self.peek()
        arrays = False
        while (tok := self.peek()) is not None:
            if tok.kind == "word":
                if not words and (m := _ASSIGN_RE.match(tok.text)):
                    nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
                    if m.end() == len(tok.text) and self.is_op(nxt, "(") and nxt.start == tok.end:
                        arrays = True  # not modelled; each element is read as an assignment to the name
                        assignments.extend((m.group()[:-1], w) for w in self.array_elements())
                        continue
                    assignments.append((m.group()[:-1], Word(tok.text[m.end() :])))
                else:
                    words.append(Word(tok.text))
                self.i += 1
            elif self.is_op(tok, *REDIRECT_OPS):
                self.i += 1
                redirects.append(self.redirect(tok))
            else:
                break
        if not words and not assignments and not redirects:
            self.unexpected(self.peek())
        line = self.text.count("\n", 0, start.start) + 1 if start is not None else 1
        node = Simple(tuple(words), tuple(assignments), tuple(redirects), line)
        if arrays:
            # An array assignment was read, so the command did not start at the end of the input.
            return Unsupported("arrays", self.text[start.start : self.tokens[self.i - 1].end], node)  # type: ignore[union-attr]
        return node

    def array_elements(self) -> list[Word]:
        """The words of `NAME=( … )`, whose `NAME=` is the current token."""
        self.i += 1  # the `(` follows
        try:
            end = skip_parens(self.text, self.tokens[self.i].start)
        except ShellSyntaxError:
            self.unexpected(None)
        elements: list[Word] = []
        while self.i < len(self.tokens) and self.tokens[self.i].start < end:
            if self.tokens[self.i].kind == "word":
                elements.append(Word(self.tokens[self.i].text))
            self.i += 1
        return elements

    def redirects(self) -> tuple[Redirect, ...]:
        found: list[Redirect] = []
        while self.is_op(tok := self.peek(), *REDIRECT_OPS):
            self.i += 1
            found.append(self.redirect(tok))
        return tuple(found)

    def redirect(self, op: Token) -> Redirect:
        if not self.is_word(self.peek()):
            self.unexpected(self.peek())
        redirect, self.i = _redirect(self.tokens, self.i, op)
        return redirect


def _redirect(tokens: list[Token], i: int, op: Token) -> tuple[Redirect, int]:
    """The redirection whose operator `op` was just read; `tokens[i]` should be its target word."""
    target = tokens[i] if i < len(tokens) else None
    if target is None or target.kind != "word":
        return Redirect(op.text, op.fd, target=Word("")), i
    if target.heredoc is not None:
        return Redirect("<<", op.fd, heredoc=target.heredoc), i + 1
    if op.text in (">&", "<&") and (target.text.isdigit() or target.text == "-"):
        return Redirect(op.text, op.fd, dup=int(target.text) if target.text.isdigit() else "-"), i + 1
    if op.text == ">&" and op.fd is None:  # `>&file` is the old spelling of `&>file`
        return Redirect("&>", None, target=Word(target.text)), i + 1
    return Redirect(op.text, op.fd, target=Word(target.text)), i + 1


def substitutions(raw: str, *, processes: bool = True) -> list[str]:
    """The command texts of the `$(…)`, backtick and process (`<(…)`, `>(…)`; not inside double quotes or
    arithmetic, where `processes` is False) substitutions in a raw word, outside single quotes."""
    found: list[str] = []
    i = 0
    while i < len(raw):
        try:
            end = (
                skip_parens(raw, i + 1)
                if processes and raw.startswith(_PROCESS_SUBSTITUTIONS, i)
                else skip_unit(raw, i)
            )
        except ShellSyntaxError:
            break
        unit = raw[i:end]
        if unit.startswith(_PROCESS_SUBSTITUTIONS):
            found.append(unit[2:-1])
        elif unit.startswith("$((") and unit.endswith("))"):
            found.extend(substitutions(unit[3:-2], processes=False))  # only the substitutions inside run commands
        elif unit.startswith("$(") and unit.endswith(")"):
            found.append(unit[2:-1])
        elif unit.startswith("`") and unit.endswith("`") and len(unit) > 1:
            found.append(unit[1:-1])
        elif unit.startswith('"'):
            found.extend(substitutions(unit[1:-1], processes=False))
        i = end
    return found
