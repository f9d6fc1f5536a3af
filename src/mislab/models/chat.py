"""`ChatModel`: one interface to every OpenAI-compatible endpoint, the embedded local model included.

Async first (`await model.generate(...)`), with `generate_sync` for scripts. Every call goes through the
response cache, the retry policy and a per-model concurrency limit, and is metered for usage and cost."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import FatalError, MislabError
from .cache import ResponseCache, cache_key
from .gate import current_gate
from .pricing import PriceTable
from .reasoning import outgoing_messages, reasoning_text, reasoning_tokens
from .retry import RetryPolicy, is_retryable, retry_after_seconds
from .spec import ModelSpec
from .toolparse import recover_tool_calls
from .transport import Transport, chat_url, encode, request_headers
from .types import AssistantMessage, Completion, Message, Tool, ToolCall, Usage

if TYPE_CHECKING:  # the SDK's exception types are imported where caught: loading the model layer stays light
    import openai

T = TypeVar("T")

# Arguments of the chat-completions endpoint that the SDK takes by name; anything else is a provider
# extra and travels in `extra_body`.
_SDK_PARAMS = frozenset(
    {
        "temperature", "max_tokens", "max_completion_tokens", "stop", "seed", "tool_choice", "top_p",
        "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "response_format",
        "reasoning_effort", "parallel_tool_calls", "logit_bias",
    }
)  # fmt: skip


class ModelError(MislabError, RuntimeError):
    """One call failed for good (retries exhausted, an unusable answer, a request the server refused): the
    sample that made it fails, with this as its cause; the run goes on."""


class FatalModelError(ModelError, FatalError):
    """A fault no sample can get past (bad key, no credit, unknown model, a setting the provider cannot
    honour): the run stops, keeping what is finished."""


class UnusableResponse(Exception):
    """A 200 whose body cannot be used (no choices, not parseable): retried like a transient fault."""


@dataclass
class UsageMeter:
    """Calls, tokens and dollars within a scope (a sample, a run).

    `usage` counts every call's tokens, cached or not (what the work takes, e.g. for estimates); `cost` counts
    only what was paid now: a cached call costs nothing."""

    calls: int = 0
    cached_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    unpriced_calls: int = 0  # paid calls whose cost is unknown (no provider cost, no price-table entry)
    unusable_calls: int = 0  # billed answers that were unusable (no choices, unparseable) and were retried
    waited: float = 0.0  # seconds spent queued for a slot of the model's concurrency (others' time, not this scope's)

    def record(self, completion: Completion) -> None:
        self.calls += 1
        self.usage = self.usage + completion.usage
        if completion.cached:
            self.cached_calls += 1
            return
        self.add_cost(completion.cost)

    def record_unusable(self, usage: Usage, cost: float | None) -> None:
        """An answer the provider billed but that could not be used (retried): paid for all the same."""
        self.calls += 1
        self.unusable_calls += 1
        self.usage = self.usage + usage
        self.add_cost(cost)

    def add_cost(self, cost: float | None) -> None:
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost += cost


_meters: ContextVar[tuple[UsageMeter, ...]] = ContextVar("mislab_meters", default=())


@contextmanager
def metered() -> Iterator[UsageMeter]:
    """Count every model call made inside the block (including in tasks it starts)."""
    meter = UsageMeter()
    token = _meters.set((*_meters.get(), meter))
    try:
        yield meter
    finally:
        _meters.reset(token)


def _is_model_output_error(exc: openai.APIStatusError) -> bool:
    # llama-server answers 500 when the model's own text is not a parseable tool call. Retrying the same
    # request reproduces it; it is an observation about the model, so it is returned, not raised.
    return exc.status_code == 500 and bool(re.search(r"pars(e|ing)|invalid json", str(exc.message), re.I))


def _strip_echoed_prefill(completion: Completion, prefill: str) -> None:
    # llama-server returns a continued turn with its prefill; other providers return the continuation only.
    content = completion.message.content
    if content and content.startswith(prefill):
        completion.message.content = content[len(prefill) :]


def _hint(spec: ModelSpec, status: int, said: str) -> str:
    if _lacks_reasoning(status, said):
        return (
            " (the history lacks reasoning this provider needs back: keep carry_reasoning on and append each"
            " completion.message.to_openai())"
        )
    if status in (401, 403) and spec.api_key_env:
        return f" (check {spec.api_key_env})"
    if status == 402:
        return " (out of credit: add credit with the provider, then rerun to resume)"
    if status == 404:
        return f" (is {spec.model!r} a model this endpoint serves?)"
    return ""


_SAID_CHARS = 600  # an HTML error page is not a reason


def _provider_said(error: openai.APIStatusError) -> str:
    """What the provider said, on one line. OpenRouter's own message is often only "Provider returned error":
    the reason is the upstream provider's, in `error.metadata` ("rate-limited upstream", "missing a
    thought_signature"), so its name and raw text are kept."""
    body = error.body if isinstance(error.body, dict) else {}
    said = str(body.get("message") or error.message)
    metadata = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    raw = metadata.get("raw")
    if raw:
        provider = metadata.get("provider_name")
        said += f" ({provider}): " if provider else ": "
        said += raw if isinstance(raw, str) else json.dumps(raw)
    said = " ".join(said.split())
    return said if len(said) <= _SAID_CHARS else said[: _SAID_CHARS - 1] + "…"


def _describe(error: Exception) -> str:
    import openai

    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}: {_provider_said(error)}"
    if isinstance(error, openai.APITimeoutError):
        return "the request timed out"
    return str(error) or type(error).__name__


# Attempts a connection fault of an endpoint that never answered gets before it is taken as unreachable: DNS
# cannot resolve the host, or nothing listens there. (A server still starting gets a second chance.)
UNREACHABLE_ATTEMPTS = 2


def _unreachable(exc: BaseException) -> str | None:
    """Why a connection error says the endpoint cannot be reached at all (None: a passing fault)."""
    import socket

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return f"the host name does not resolve ({seen.strerror or seen})"
        if isinstance(seen, ConnectionRefusedError):
            return "nothing is listening there (connection refused)"
        seen = seen.__cause__ or seen.__context__
    return None


# Refusals that every later request would get too (bad key, no credit, unknown model): stop the run rather
# than fail each sample alike. Not 403: OpenRouter answers it for one flagged prompt (moderation), a sample's
# fault; a key without permission fails every sample and trips the runner's circuit breaker instead.
_SYSTEMIC_STATUSES = frozenset({401, 402, 404})

# A 400 for reasoning missing from the history (Gemini 3's thought signatures, Anthropic's thinking before tool
# use) is systemic too: a fault of how the requests are built, which every later one would share.
_MISSING_REASONING = re.compile(
    r"missing\W+(?:an?\W+)?thought_?signature|reasoning details to be preserved|must start with a thinking block",
    re.I,
)


def _lacks_reasoning(status: int, said: str) -> bool:
    return status == 400 and bool(_MISSING_REASONING.search(said))


# OpenAI's own reasoning models discard their reasoning after each call on this endpoint: only the Responses API
# returns it (encrypted, with include=["reasoning.encrypted_content"]) and takes it back.
OPENAI_REASONING_NOT_CARRIED = "no: OpenAI's chat completions API neither returns reasoning items nor accepts them back"


class ChatModel:
    def __init__(
        self,
        spec: ModelSpec,
        *,
        api_key: str | None,
        base_url: str | None = None,
        cache: ResponseCache | None = None,
        prices: PriceTable | None = None,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        timeout: float = 300.0,
        identity: str | None = None,
        info: dict[str, Any] | None = None,
        reconnect: Callable[[], str] | None = None,
        carry_reasoning: bool = True,
        **defaults: Any,
    ):
        self.spec = spec
        self.carry_reasoning = carry_reasoning
        self.cache = cache
        self.prices = prices or PriceTable.load()
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self.defaults = defaults
        self.info = info or {}
        self._api_key = api_key
        self._base_url = base_url or spec.base_url
        self._timeout = timeout
        self._identity = identity or spec.endpoint
        # For a server mislab runs itself: called after a dropped connection, returns the (possibly new)
        # base_url of a restarted server, so a crashed embedded model costs one retry, not the run.
        self._reconnect = reconnect
        # The HTTP transport and the semaphore belong to one event loop each: keep one per loop so the model
        # works from asyncio code, from Jupyter, and from `generate_sync`'s private loop alike. Weakly keyed:
        # a finished loop's state goes with it (a new loop may reuse a dead one's id).
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Transport, asyncio.Semaphore]]
        self._per_loop = weakref.WeakKeyDictionary()
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._answered = False  # the endpoint has answered at least once (so a connection fault may pass)

    @property
    def name(self) -> str:
        return self.spec.spec

    def with_cache(self, cache: ResponseCache | None) -> ChatModel:
        """The same model using another response cache (clients and limits are per copy)."""
        twin = self._copy()
        twin.cache = cache
        return twin

    def with_concurrency(self, max_concurrency: int) -> ChatModel:
        """The same model with another limit of calls in flight (clients and limits are per copy)."""
        twin = self._copy()
        twin.max_concurrency = max_concurrency
        return twin

    def _copy(self) -> ChatModel:
        twin = copy.copy(self)
        twin._per_loop, twin._sync_loop, twin._lock = weakref.WeakKeyDictionary(), None, threading.Lock()
        return twin

    def __repr__(self) -> str:
        return f"ChatModel({self.name!r})"

    def describe(self) -> dict[str, Any]:
        """What a run records about the model (no secrets)."""
        described = {
            "spec": self.name,
            "provider": self.spec.provider,
            "model": self.spec.model,
            "endpoint": self._identity,
            "defaults": self.defaults,
            "carry_reasoning": self.carry_reasoning,
            **self.info,
        }
        if self.spec.provider == "openai":
            described["reasoning_carried"] = OPENAI_REASONING_NOT_CARRIED
        return described

    def _loop_state(self) -> tuple[Transport, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        with self._lock:
            state = self._per_loop.get(loop)
            if state is None:
                state = (self._new_client(), asyncio.Semaphore(self.max_concurrency))
                self._per_loop[loop] = state
            return state

    def _new_client(self) -> Transport:
        return Transport(chat_url(self._base_url), request_headers(self._api_key))

    async def generate(
        self,
        messages: list[Message],
        tools: list[Tool] | None = None,
        *,
        sample_index: int = 0,
        prefill: str | None = None,
        carry_reasoning: bool | None = None,
        reuse: Callable[[Completion], bool] | None = None,
        **params: Any,
    ) -> Completion:
        """One completion. `sample_index` distinguishes repeated samples of the same prompt in the cache.
        `prefill` starts the assistant's turn (sent as a trailing assistant message); the completion's text
        is the continuation only, whichever the provider. Earlier assistant turns go with their
        `reasoning_details` unless `carry_reasoning` (default: the model's setting) is false, and never with
        their reasoning text; `openai/…` takes none back (see `describe()`). `reuse` decides whether a cached
        answer may be served (a judge's unreadable answer is asked again, and the new one replaces it)."""
        params = {**self.defaults, **params}
        carry = self.carry_reasoning if carry_reasoning is None else carry_reasoning
        messages = outgoing_messages(messages, carry and self.spec.provider != "openai")
        if prefill:
            if not self.spec.supports_prefill:
                raise FatalModelError(f"{self.name}: this provider does not continue a prefilled assistant turn")
            messages.append({"role": "assistant", "content": prefill})
        key = cache_key(self._identity, self.spec.model, messages, tools, params, sample_index)
        completion = self.cache.get(key) if self.cache is not None else None
        if completion is not None and reuse is not None and not reuse(completion):
            completion = None
        if completion is None:
            completion = await self._call(messages, tools, params)
            if prefill and self.spec.provider == "local":
                _strip_echoed_prefill(completion, prefill)
            if self.cache is not None:
                self.cache.put(key, completion)
        for meter in _meters.get():
            meter.record(completion)
        return completion

    def generate_sync(self, messages: list[Message], tools: list[Tool] | None = None, **params: Any) -> Completion:
        return self.run_sync(self.generate(messages, tools, **params))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this model's private event loop (works inside Jupyter's running loop too)."""
        with self._lock:
            if self._sync_loop is None:
                self._sync_loop = asyncio.new_event_loop()
                threading.Thread(target=self._sync_loop.run_forever, daemon=True, name="mislab-sync").start()
        return asyncio.run_coroutine_threadsafe(coro, self._sync_loop).result()

    def _refresh_endpoint(self) -> None:
        """Ask the server's owner for its current address; new clients if it moved (semaphores stay)."""
        assert self._reconnect is not None
        base_url = self._reconnect()
        with self._lock:
            if base_url != self._base_url:
                self._base_url = base_url
                for loop, (_, sem) in list(self._per_loop.items()):
                    self._per_loop[loop] = (self._new_client(), sem)

    async def _call(self, messages: list[Message], tools: list[Tool] | None, params: dict[str, Any]) -> Completion:
        import openai  # the exception types caught below

        client, semaphore = self._loop_state()
        kwargs = {k: v for k, v in params.items() if k in _SDK_PARAMS}
        extra_body = dict(params.get("extra_body") or {})
        extra_body.update({k: v for k, v in params.items() if k not in _SDK_PARAMS and k != "extra_body"})
        if tools:
            kwargs["tools"] = tools
        # The body the SDK would send (provider extras merged in last), encoded once for every attempt.
        body = encode({"model": self.spec.model, "messages": messages, **kwargs, **extra_body})
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                async with semaphore:
                    queued = time.monotonic() - started
                    for meter in _meters.get():
                        meter.waited += queued
                    response = await self._post(client, body)
                self._answered = True
                # Let a call waiting for the slot just freed go out before this one's result is processed.
                await asyncio.sleep(0)
                return self._completion(response, time.monotonic() - started, tools)
            except openai.APIStatusError as exc:
                self._answered = True
                if _is_model_output_error(exc):
                    return Completion(
                        AssistantMessage(), "error", Usage(), self.spec.model, time.monotonic() - started,
                        cost=None, raw={"status": exc.status_code, "body": exc.body},
                        error=f"server rejected the model's output (HTTP {exc.status_code}): {exc.message}",
                    )  # fmt: skip
                if not is_retryable(exc):
                    status, said = exc.status_code, _provider_said(exc)
                    systemic = status in _SYSTEMIC_STATUSES or _lacks_reasoning(status, said)
                    raise (FatalModelError if systemic else ModelError)(
                        f"{self.name}: HTTP {status}{_hint(self.spec, status, said)}: {said}"
                    ) from exc
                error: Exception = exc
            except openai.APIConnectionError as exc:
                error = exc
                unreachable = _unreachable(exc)
                if unreachable and not self._answered and attempt + 1 >= UNREACHABLE_ATTEMPTS:
                    # Never reached since it was made: no sample will (a wrong host, no network, nothing listening).
                    raise FatalModelError(
                        f"{self.name}: cannot reach {self._base_url or 'the API'}: {unreachable}"
                    ) from exc
                if self._reconnect is not None:
                    await asyncio.to_thread(self._refresh_endpoint)
                    client, semaphore = self._loop_state()
            except (openai.APIResponseValidationError, ValueError) as exc:  # a 200 whose body is not JSON
                error = UnusableResponse(f"unparseable response body: {str(exc)[:200]}")
                self._record_unusable(Usage(), None)
            except UnusableResponse as exc:
                error = exc
            attempt += 1
            if attempt >= self.retry.max_attempts:
                raise ModelError(f"{self.name}: gave up after {attempt} attempts: {_describe(error)}") from error
            await asyncio.sleep(self.retry.delay(attempt - 1, retry_after_seconds(error)))

    async def _post(self, client: Transport, body: bytes) -> Any:
        """One request through the job's gate (see `models.gate`): refused once the job stopped or when it could
        take the job past its budget; its cost is settled with the gate when it is answered."""
        gate = current_gate()
        if gate is None:
            return await client.post_json(body, self._timeout)
        gate.admit()
        cost: float | None = None
        try:
            response = await client.post_json(body, self._timeout)
            cost = self._usage_and_cost(response)[1]
            return response
        finally:
            gate.settle(cost)

    def _record_unusable(self, usage: Usage, cost: float | None) -> None:
        for meter in _meters.get():
            meter.record_unusable(usage, cost)

    def _usage_and_cost(self, raw: Any) -> tuple[Usage, float | None]:
        reported = raw.get("usage") if isinstance(raw, dict) else None
        if not isinstance(reported, dict):
            return Usage(), self.prices.cost(self.name, Usage())
        details = reported.get("prompt_tokens_details") or {}
        usage = Usage(
            reported.get("prompt_tokens") or 0, reported.get("completion_tokens") or 0,
            details.get("cached_tokens") or 0, reasoning_tokens(reported),
        )  # fmt: skip
        reported_cost = reported.get("cost")
        return usage, float(reported_cost) if reported_cost is not None else self.prices.cost(self.name, usage)

    def _completion(self, raw: Any, latency: float, tools: list[Tool] | None) -> Completion:
        """A Completion from the response JSON, read as leniently as the SDK reads it (missing fields are None)."""
        usage, cost = self._usage_and_cost(raw)
        choices = raw.get("choices") if isinstance(raw, dict) else None
        if not choices or not isinstance(choices[0], dict):
            # OpenRouter answers 200 with no choices when an upstream provider fails mid-way; billed or not,
            # its usage is counted, and the call is retried.
            self._record_unusable(usage, cost)
            raise UnusableResponse(f"the response has no choices: {str(raw)[:200]}")
        choice = choices[0]
        msg = choice.get("message") or {}
        calls = [
            ToolCall.parse(tc.get("id") or "", (tc.get("function") or {}).get("name") or "",
                           (tc.get("function") or {}).get("arguments"))
            for tc in msg.get("tool_calls") or []
        ]  # fmt: skip
        content = msg.get("content")
        if tools and not calls:
            names = {t["function"]["name"] for t in tools if t.get("type") == "function"}
            content, calls = recover_tool_calls(content, names)
        details = msg.get("reasoning_details")
        message = AssistantMessage(content, calls, reasoning_text(msg), details if isinstance(details, list) else None)
        return Completion(message, choice.get("finish_reason"), usage, self.spec.model, latency, cost, raw)
