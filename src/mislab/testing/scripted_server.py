"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests that need a model whose every move is
known: scripted episodes, judges answering garbage, and the faults providers have: 429s with and without
Retry-After, 5xx, dropped connections, hangs, 200s with no choices, truncated or non-JSON bodies.

It keeps the provider's books: `billed` counts every answer sent with status 200 and the tokens its usage
block reported, so a test can check that a client recorded every call it paid for. A reply can also be a
recorded real response body (`Reply(body=...)`), answered as the provider answered it.

It is a real HTTP server (stdlib, its own thread), so the code under test runs its real client path."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

# Faults a reply can carry instead of a well-formed answer:
# drop: close the connection without answering; hang: answer nothing until `delay` passes (or the server
# stops), then close; empty_choices: a 200 with `choices: []` (and usage, billed); truncated: a 200 whose
# body stops half-way; not_json: a 200 whose body is not JSON. The last three are billed answers.
Fault = Literal["drop", "hang", "empty_choices", "truncated", "not_json"]


@dataclass
class Reply:
    """One scripted answer: an assistant message, or an HTTP error, optionally after a delay."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_message: str = "scripted error"
    delay: float = 0.0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    extra_message: dict[str, Any] = field(default_factory=dict)  # e.g. {"reasoning": "..."}
    fault: Fault | None = None
    # A whole response body (a recorded answer or error), sent with `status` instead of one built from the fields.
    body: dict[str, Any] | None = None


@dataclass
class Billed:
    """What the server answered with status 200: what a provider would charge for."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def tool_call(name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    """A tool call as the API returns it; a str `arguments` is sent verbatim (for malformed JSON)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {
        "id": f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": raw},
    }


Script = list[Reply] | Callable[[dict[str, Any]], Reply]


class ScriptedServer:
    """`with ScriptedServer([Reply(...), ...]) as srv:` then point a client at `srv.base_url`.

    A list script is consumed in order (running past its end answers 500 so a test fails loudly); a callable
    script computes each reply from the request body. `requests` keeps what was received: the parsed body, its
    bytes as sent (`raw`) and the headers."""

    def __init__(self, script: Script):
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.billed = Billed()
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # releases hanging replies when the server stops
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if callable(self.script):
                return self.script(body)
            index = len(self.requests) - 1
            if index >= len(self.script):
                return Reply(status=500, error_message="scripted server: script exhausted")
            return self.script[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body, "raw": raw})
                reply = server._next(body)
                if reply.delay and reply.fault != "hang":
                    time.sleep(reply.delay)
                if reply.fault in ("drop", "hang"):
                    if reply.fault == "hang":
                        server._stopping.wait(reply.delay or None)
                    self.close_connection = True
                    return
                usage: dict[str, Any] = {}
                if reply.body is not None:
                    payload: dict[str, Any] = reply.body
                    usage = payload.get("usage") or {}
                elif reply.status != 200:
                    payload = {"error": {"message": reply.error_message, "type": "scripted", "code": reply.status}}
                else:
                    payload = server._completion(body, reply)
                    usage = payload["usage"]
                data = json.dumps(payload).encode()
                if reply.fault == "truncated":
                    data, usage = data[: len(data) // 2], {}
                elif reply.fault == "not_json":
                    data, usage = b"<html>502 Bad Gateway</html>", {}
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    return
                if reply.status == 200:
                    server._bill(usage)

        return Handler

    def _bill(self, usage: dict[str, Any]) -> None:
        with self._lock:
            self.billed.calls += 1
            self.billed.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.billed.completion_tokens += int(usage.get("completion_tokens") or 0)

    @staticmethod
    def _completion(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, **reply.extra_message}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        prompt_chars = len(json.dumps(body.get("messages", [])))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": []
            if reply.fault == "empty_choices"
            else [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop"),
                }
            ],
            "usage": reply.usage
            or {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(reply.content or "") // 4 + 10 * len(reply.tool_calls),
                "total_tokens": 0,
            },
        }
