"""One alignment-faking conversation, as in Redwood's harness: the system prompt, the user turn with the tier tag,
and the model's reply; a reply that closes a scratchpad without writing <OUTPUT> gets `<NEXT/>` as the next user
turn, up to `max_next` times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import ChatModel
from ..scratchpad import segment_response
from ..transcript import AssistantTurn, SystemTurn, Transcript, UserTurn

NEXT = "<NEXT/>"


def awaits_next(turn: str) -> bool:
    """Redwood's harness continues a turn that closed a scratchpad block but wrote no <OUTPUT>."""
    segments = segment_response(turn)
    closed_scratchpad = any(s.kind == "scratchpad" and s.closed for s in segments)
    return closed_scratchpad and not any(s.kind == "output" for s in segments)


def restore_stop(text: str, finish_reason: str | None, stop: Sequence[str]) -> str:
    """APIs cut the stop sequence from the reply. When the reply ends inside a block that one of the stop
    sequences closes (stop=["</SCRATCHPAD_REASONING>"]), put it back, so turns join into a well-formed
    response. The API does not say which stop sequence matched, or whether one did: a reply that ended on its
    own inside that block is closed too."""
    if finish_reason != "stop" or not stop:
        return text
    segments = segment_response(text)
    if not segments or segments[-1].closed:
        return text
    for sequence in stop:
        closed = segment_response(text + sequence)
        if len(closed) == len(segments) and closed[-1].closed:
            return text + sequence
    return text


async def converse(
    model: ChatModel,
    system: str,
    user: str,
    *,
    prefill: str | None = None,
    max_next: int = 3,
    stop: Sequence[str] | None = None,
    sample_index: int = 0,
    transcript: Transcript | None = None,
    **params: Any,
) -> Transcript:
    """One alignment-faking conversation: the model's turns, with `<NEXT/>` after a reasoning-only turn (at most
    `max_next` times; never after a turn cut off by max_tokens). `prefill` starts the first turn only. Given a
    `transcript` (a stored conversation's prefix), the conversation goes on from it."""
    conv = transcript if transcript is not None else Transcript([SystemTurn(str(system)), UserTurn(str(user))])
    messages = conv.messages()
    if stop:
        params["stop"] = list(stop)
    while True:
        first = not conv.assistant_turns
        completion = await model.generate(
            messages, sample_index=sample_index, prefill=prefill if first else None, **params
        )
        # The model layer returns only the continuation of a prefilled turn; the turn is prefill + continuation.
        text = (prefill or "") + completion.text if first else completion.text
        text = restore_stop(text, completion.finish_reason, stop or ())
        turn = AssistantTurn.from_completion(completion, content=text, prefill=prefill if first else None)
        conv.append(turn)
        messages.append(turn.message())
        if len(conv.assistant_turns) > max_next or completion.finish_reason == "length" or not awaits_next(text):
            return conv
        conv.append(UserTurn(NEXT))
        messages.append({"role": "user", "content": NEXT})


def response_of(transcript: Transcript) -> str:
    """All assistant turns joined: what the scorers read."""
    return "\n\n".join(t.content for t in transcript.assistant_turns)
