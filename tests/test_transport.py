"""The chat hot path's HTTP transport against real servers on 127.0.0.1: keep-alive reuse, a connection the
server dropped, chunked and gzip bodies, the request it sends, and failures raised as the openai SDK's types."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai
import pytest

from mislab.models import get_model
from mislab.models.transport import Transport, chat_url, encode, request_headers
from mislab.testing import Reply, ScriptedServer

OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}

# A raw response for the n-th request (from 0): (status line + headers + body bytes, close the connection after).
Respond = Callable[[int, dict[str, str], bytes], tuple[bytes, bool]]


def response(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith("transfer-encoding") for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """An HTTP/1.1 server that answers what `respond` says, byte for byte; counts connections and requests."""

    def __init__(self, respond: Respond):
        self.connections = 0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    headers = {}
                    while (h := self.rfile.readline()) not in (b"\r\n", b""):
                        name, _, value = h.decode().partition(":")
                        headers[name.strip().lower()] = value.strip()
                    body = self.rfile.read(int(headers.get("content-length", 0)))
                    index = len(server.requests)
                    server.requests.append((headers, body))
                    data, close = respond(index, headers, body)
                    self.wfile.write(data)
                    self.wfile.flush()
                    if close:
                        return

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/chat/completions"

    @contextmanager
    def running(self) -> Iterator[RawServer]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def post_many(url: str, bodies: list[bytes], timeout: float = 5.0, api_key: str = "sk-test") -> list[object]:
    async def main() -> list[object]:
        transport = Transport(url, request_headers(api_key))
        try:
            return [await transport.post_json(body, timeout) for body in bodies]
        finally:
            await transport.aclose()

    return asyncio.run(main())


def test_connections_are_kept_alive_and_reused() -> None:
    with RawServer(lambda i, h, b: (response("200 OK", json.dumps(OK).encode()), False)).running() as srv:
        answers = post_many(srv.url, [encode({"n": i}) for i in range(20)])
    assert answers == [OK] * 20 and len(srv.requests) == 20 and srv.connections == 1


def test_a_connection_the_server_dropped_is_replaced_without_an_error() -> None:
    # The server closes every connection after answering, without saying so: each kept-alive connection is
    # found dead on its next use, and the request goes out again on a fresh one.
    with RawServer(lambda i, h, b: (response("200 OK", json.dumps(OK).encode()), True)).running() as srv:
        answers = post_many(srv.url, [encode({"n": i}) for i in range(5)])
    assert answers == [OK] * 5 and len(srv.requests) == 5 and srv.connections == 5


def test_chunked_gzip_body_is_decoded() -> None:
    data = gzip.compress(json.dumps(OK).encode())
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i : i + 7]), data[i : i + 7]) for i in range(0, len(data), 7))
    raw = response("200 OK", chunks + b"0\r\n\r\n", "Transfer-Encoding: chunked", "Content-Encoding: gzip")
    with RawServer(lambda i, h, b: (raw, False)).running() as srv:
        assert post_many(srv.url, [b"{}", b"{}"]) == [OK, OK]
    assert srv.connections == 1


def test_the_request_carries_the_sdks_headers_and_the_exact_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_ORG_ID", "org-123")
    body = encode({"model": "m", "messages": [{"role": "user", "content": "héllo"}]})
    with RawServer(lambda i, h, b: (response("200 OK", json.dumps(OK).encode()), False)).running() as srv:
        post_many(srv.url, [body], api_key="sk-SECRET")
    headers, sent = srv.requests[0]
    assert sent == body and json.loads(sent)["messages"][0]["content"] == "héllo"
    assert headers["authorization"] == "Bearer sk-SECRET" and headers["openai-organization"] == "org-123"
    assert headers["content-type"] == "application/json" and headers["host"] == srv.url.split("/")[2]


def test_base_url_defaults_to_openai_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert chat_url(None) == "https://api.openai.com/v1/chat/completions"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.example/v1/")
    assert chat_url(None) == "http://proxy.example/v1/chat/completions"
    assert chat_url("http://h:1/v1") == "http://h:1/v1/chat/completions"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [("400 Bad Request", openai.BadRequestError), ("401 Unauthorized", openai.AuthenticationError),
     ("429 Too Many Requests", openai.RateLimitError), ("503 Unavailable", openai.InternalServerError)],
)  # fmt: skip
def test_http_errors_are_the_sdks_exceptions(status: str, error_type: type[openai.APIStatusError]) -> None:
    error = {"error": {"message": "nope", "type": "x", "code": "c"}}
    raw = response(status, json.dumps(error).encode(), "Retry-After: 2")
    with RawServer(lambda i, h, b: (raw, False)).running() as srv:
        with pytest.raises(error_type) as info:
            post_many(srv.url, [b"{}"])
    exc = info.value
    assert exc.status_code == int(status.split()[0]) and exc.body == error["error"]
    assert exc.message == f"Error code: {exc.status_code} - {error}" and exc.code == "c"
    assert exc.response.headers["retry-after"] == "2"


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(openai.APIConnectionError):
        post_many(f"http://127.0.0.1:{port}/v1/chat/completions", [b"{}"])


def test_slow_server_is_a_timeout() -> None:
    with ScriptedServer([Reply("late", delay=1.0)]) as srv:
        with pytest.raises(openai.APITimeoutError):
            post_many(chat_url(srv.base_url), [b"{}"], timeout=0.2)


def test_successive_runs_leave_nothing_behind(caplog: pytest.LogCaptureFixture) -> None:
    # A model per run, each run on its own event loop (as successive CLI or notebook runs): the SDK's client of
    # an earlier run, collected during a later one, was closed on the later loop and logged "Task exception was
    # never retrieved … Event loop is closed". Keep-alive connections are what it failed to close.
    with RawServer(lambda i, h, b: (response("200 OK", json.dumps(OK).encode()), False)).running() as srv:
        base_url = srv.url.removesuffix("/chat/completions")

        async def one_run() -> str:
            gc.collect()  # what an earlier run left for the collector goes now, on this loop
            model = get_model("m", base_url=base_url, api_key="k", cache=False)
            return (await model.generate([{"role": "user", "content": "hi"}])).text

        with caplog.at_level(logging.ERROR, logger="asyncio"):
            assert [asyncio.run(one_run()) for _ in range(3)] == ["hi"] * 3
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]
