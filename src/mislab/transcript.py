"""The transcript: the typed record of one sample — every turn of the conversation, and the environment's own
events (the warning delivered, a command run with its exit status, the machine going down).

Studies write it, the store keeps it, scorers, judges, reports, branching and the Inspect export read it. A
stored transcript is a JSON list of entries with a `role`: system, user, assistant and tool entries are the
OpenAI-format messages enriched with what the model layer knows (parsed and recovered tool calls, the
provider's reasoning text and its raw `reasoning_details`, finish reason, a rejected output, cache hits);
`event` entries are the environment's. Entries written by older versions (environment notes as `info`
entries) read as events of kind `note`.

`Transcript.messages()` gives back exactly what the API takes to continue the conversation: events and
rejected outputs left out, each assistant turn's `reasoning_details` carried back unmodified (the model layer
drops them where the model's `carry_reasoning` setting says so), reasoning text never sent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, overload

from .models.reasoning import reasoning_kind
from .models.types import AssistantMessage, Completion, Message, ToolCall, Usage
from .scratchpad import reasoning_blocks, strip_reasoning

TRANSCRIPT_VERSION = 2  # 1: dict entries with `info` notes (before 0.2); 2: typed, with events


@dataclass(slots=True)
class SystemTurn:
    content: str
    role: ClassVar[Literal["system"]] = "system"

    def to_json(self) -> dict[str, Any]:
        return {"role": "system", "content": self.content}


@dataclass(slots=True)
class UserTurn:
    content: str
    role: ClassVar[Literal["user"]] = "user"

    def to_json(self) -> dict[str, Any]:
        return {"role": "user", "content": self.content}


@dataclass(slots=True)
class AssistantTurn:
    """One answer of the model. `error` is set when the server rejected what the model wrote (the turn was never
    part of the conversation); `prefill` is text mislab put at the start of the turn (included in `content`)."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: str | None = None  # the provider's reasoning, as text
    reasoning_details: list[Any] | None = None  # the provider's raw reasoning payload, as returned
    finish_reason: str | None = None
    error: str | None = None
    cached: bool = False
    usage: Usage = field(default_factory=Usage)
    prefill: str | None = None
    role: ClassVar[Literal["assistant"]] = "assistant"

    @classmethod
    def from_completion(
        cls, completion: Completion, *, content: str | None = None, prefill: str | None = None
    ) -> AssistantTurn:
        msg = completion.message
        return cls(
            msg.content or "" if content is None else content, list(msg.tool_calls), msg.reasoning,
            msg.reasoning_details, completion.finish_reason, completion.error, completion.cached,
            completion.usage, prefill,
        )  # fmt: skip

    def message(self) -> Message:
        """The turn as the API takes it back in a later request, as `AssistantMessage.to_openai` writes an answer:
        with the provider's `reasoning_details` as returned (the model layer drops them where the model's
        `carry_reasoning` setting says so), never the reasoning text."""
        return AssistantMessage(self.content, self.tool_calls, self.reasoning, self.reasoning_details).to_openai()

    @property
    def reasoning_kind(self) -> str | None:
        """ "text", "summary", "encrypted" or a mixture (see `models.reasoning.reasoning_kind`); None if none."""
        return reasoning_kind({"reasoning": self.reasoning, "reasoning_details": self.reasoning_details})

    @property
    def own_reasoning(self) -> str:
        """Everything the model reasoned in this turn: the provider's reasoning text, then the <think> and
        scratchpad blocks it wrote into its text."""
        return "\n\n".join(p for p in [self.reasoning or "", *reasoning_blocks(self.content)] if p)

    @property
    def visible_text(self) -> str:
        """The turn's text with its reasoning blocks taken out."""
        return strip_reasoning(self.content)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": "assistant", "content": self.content, "reasoning": self.reasoning,
            "tool_calls": [asdict(tc) for tc in self.tool_calls], "finish_reason": self.finish_reason,
            "error": self.error, "cached": self.cached, "usage": asdict(self.usage),
        }  # fmt: skip
        if self.reasoning_details is not None:
            out["reasoning_details"] = self.reasoning_details
        if self.prefill is not None:
            out["prefill"] = self.prefill
        return out


@dataclass(slots=True)
class ToolTurn:
    call_id: str
    name: str
    content: str
    role: ClassVar[Literal["tool"]] = "tool"

    def to_json(self) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.call_id, "name": self.name, "content": self.content}


@dataclass(slots=True)
class Event:
    """Something the environment did or saw, never shown to the model: `kind` names it (each study documents its
    kinds), `text` says it for people, `data` holds what scorers read."""

    kind: str
    text: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    role: ClassVar[Literal["event"]] = "event"

    def to_json(self) -> dict[str, Any]:
        return {"role": "event", "kind": self.kind, "text": self.text, "data": self.data}


Turn = SystemTurn | UserTurn | AssistantTurn | ToolTurn | Event


def turn_from_json(entry: dict[str, Any]) -> Turn:
    role = entry.get("role")
    if role == "assistant":
        return AssistantTurn(
            str(entry.get("content") or ""), [ToolCall(**tc) for tc in entry.get("tool_calls") or []],
            entry.get("reasoning"), entry.get("reasoning_details"), entry.get("finish_reason"), entry.get("error"),
            bool(entry.get("cached")), Usage(**entry["usage"]) if entry.get("usage") else Usage(), entry.get("prefill"),
        )  # fmt: skip
    if role == "tool":
        return ToolTurn(str(entry.get("tool_call_id") or ""), str(entry.get("name") or ""), _text(entry))
    if role == "system":
        return SystemTurn(_text(entry))
    if role == "user":
        return UserTurn(_text(entry))
    if role == "event":
        return Event(str(entry.get("kind")), str(entry.get("text") or ""), dict(entry.get("data") or {}))
    if role == "info":  # version 1: an environment note with its data beside the text
        data = {k: v for k, v in entry.items() if k not in ("role", "content")}
        return Event("note", str(entry.get("content") or ""), data)
    raise ValueError(f"unknown transcript entry role {role!r}")


def _text(entry: dict[str, Any]) -> str:
    """Message content as text: a string, or the text parts of an OpenAI content list."""
    content = entry.get("content")
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


class Transcript:
    """The turns of one sample, in order. A sequence: iterate it, index it, `len` it; `append` as it happens."""

    __slots__ = ("turns",)

    def __init__(self, turns: Iterable[Turn] = ()) -> None:
        self.turns: list[Turn] = list(turns)

    def append(self, turn: Turn) -> Turn:
        self.turns.append(turn)
        return turn

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def __len__(self) -> int:
        return len(self.turns)

    @overload
    def __getitem__(self, index: int) -> Turn: ...
    @overload
    def __getitem__(self, index: slice) -> Transcript: ...
    def __getitem__(self, index: int | slice) -> Turn | Transcript:
        if isinstance(index, slice):
            return Transcript(self.turns[index])
        return self.turns[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transcript) and self.turns == other.turns

    def __repr__(self) -> str:
        return f"Transcript({len(self.turns)} turns)"

    def messages(self) -> list[Message]:
        """The API messages of the conversation (events and rejected outputs left out)."""
        out: list[Message] = []
        for t in self.turns:
            if isinstance(t, AssistantTurn):
                if t.error is None:
                    out.append(t.message())
            elif not isinstance(t, Event):
                out.append(t.to_json())
        return out

    @property
    def assistant_turns(self) -> list[AssistantTurn]:
        """The model's answers that were part of the conversation (not outputs the server rejected)."""
        return [t for t in self.turns if isinstance(t, AssistantTurn) and t.error is None]

    def events(self, kind: str | None = None) -> list[Event]:
        return [t for t in self.turns if isinstance(t, Event) and (kind is None or t.kind == kind)]

    def event(self, kind: str) -> Event | None:
        """The first event of `kind`, if any."""
        return next((t for t in self.turns if isinstance(t, Event) and t.kind == kind), None)

    def index(self, turn: Turn) -> int:
        """The position of `turn` (by identity)."""
        return next(i for i, t in enumerate(self.turns) if t is turn)

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.turns]

    @classmethod
    def from_json(cls, entries: Sequence[dict[str, Any]] | Transcript) -> Transcript:
        if isinstance(entries, Transcript):
            return entries
        return cls(turn_from_json(e) for e in entries)
