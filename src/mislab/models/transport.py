"""The chat hot path's HTTP: one POST of a JSON body to `<base_url>/chat/completions`, answered by parsed JSON.

A replication is thousands of calls that each wait on a provider, so the client's own CPU per call decides how
close a run gets to the latency limit (concurrency ÷ latency). The openai SDK spends most of a call's CPU
re-walking every message and tool schema and managing its pool; here the body is encoded once by the C JSON
encoder and written to a kept-alive connection (HTTP/1.1, TLS for https), taken from and returned to a LIFO
pool. Behaviour users rely on is the SDK's: the same endpoint and base URL (`OPENAI_BASE_URL` when none is
given), the same auth and organisation headers, and on failure the SDK's own exception types
(`openai.RateLimitError`, `openai.APIConnectionError` …, with the response and its Retry-After headers), so
retry and error handling treat both alike. Behind an HTTP(S) proxy the request goes through httpx, which
honours the proxy settings.

One `Transport` belongs to one event loop (asyncio streams do). Secrets live only in the request headers."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import urllib.request
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import __version__

if TYPE_CHECKING:
    import openai

OPENAI_URL = "https://api.openai.com/v1"
KEEPALIVE_SECONDS = 5.0  # as httpx: an idle connection older than this is not reused


@dataclass
class HTTPResponse:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


class _Reused(Exception):
    """A kept-alive connection closed before answering: the request goes again on a fresh connection."""


def chat_url(base_url: str | None) -> str:
    return (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/") + "/chat/completions"


def request_headers(api_key: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The headers the openai SDK sends that servers act on (auth, organisation, project), plus `extra`."""
    headers = {
        "Accept": "application/json", "Content-Type": "application/json",
        "User-Agent": f"mislab/{__version__} (OpenAI-compatible)", "Authorization": f"Bearer {api_key or 'none'}",
    }  # fmt: skip
    for header, env in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
        if os.environ.get(env):
            headers[header] = os.environ[env]
    return {**headers, **(extra or {})}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


class Transport:
    """POSTs to one chat endpoint over pooled keep-alive connections. Not thread-safe: one per event loop."""

    def __init__(self, url: str, headers: dict[str, str]):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = _ssl_context() if parts.scheme == "https" else None
        self._headers = headers
        host = self._host if parts.port is None else f"{self._host}:{self._port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Accept-Encoding: gzip, deflate", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._proxy = _proxy_for(url)
        self._httpx: Any = None

    async def post_json(self, body: bytes, timeout: float) -> Any:
        """POST `body`; the parsed JSON answer of a 2xx, else the SDK's exception for the status or failure."""
        import openai  # here, not at the top: importing the model layer must not load the SDK (`mislab … --help`)

        try:
            async with asyncio.timeout(timeout):
                response = await (self._via_httpx(body) if self._proxy else self._post(body))
        except TimeoutError as exc:
            raise openai.APITimeoutError(self._request()) from exc
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError, zlib.error, _Reused) as exc:
            raise openai.APIConnectionError(message=f"Connection error: {exc!r}", request=self._request()) from exc
        if not 200 <= response.status < 300:
            raise self._status_error(response)
        try:
            return json.loads(response.body)
        except ValueError as exc:
            text = response.body[:300].decode(errors="replace")
            message = f"the response is not JSON: {text}"
            raise openai.APIResponseValidationError(self._response(response), text, message=message) from exc

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()
        if self._httpx is not None:
            await self._httpx.aclose()

    # --- the raw HTTP/1.1 path ---

    async def _post(self, body: bytes) -> HTTPResponse:
        message = self._head + b"%d\r\n\r\n" % len(body) + body
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since > KEEPALIVE_SECONDS or reader.at_eof():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, message, reused=True)
            except _Reused:
                continue
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None, limit=2**20
        )
        return await self._exchange(reader, writer, message, reused=False)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes, *, reused: bool
    ) -> HTTPResponse:
        try:
            writer.write(message)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                # A kept-alive connection the server closed meanwhile: nothing was answered, ask again.
                if reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                    raise _Reused from exc
                raise
            status, headers = _parse_head(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                data = await _read_chunked(reader)
            elif "content-length" in headers:
                data = await reader.readexactly(int(headers["content-length"]))
            else:
                data = await reader.read()  # until the server closes
                headers["connection"] = "close"
            encoding = headers.get("content-encoding", "").lower()
            if encoding in ("gzip", "deflate"):
                data = zlib.decompress(data, 47 if encoding == "gzip" else 15)
        except BaseException:
            writer.close()
            raise
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return HTTPResponse(status, headers, data)

    # --- through a proxy ---

    async def _via_httpx(self, body: bytes) -> HTTPResponse:
        import httpx

        if self._httpx is None:
            self._httpx = httpx.AsyncClient(timeout=None, proxy=self._proxy)
        try:
            r = await self._httpx.post(self.url, content=body, headers=self._headers)
        except httpx.TransportError as exc:
            raise OSError(str(exc)) from exc
        return HTTPResponse(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)

    # --- errors, shaped as the SDK's ---

    def _request(self) -> Any:
        import httpx

        return httpx.Request("POST", self.url)

    def _response(self, response: HTTPResponse) -> Any:
        import httpx

        return httpx.Response(response.status, headers=response.headers, content=response.body, request=self._request())

    def _status_error(self, response: HTTPResponse) -> openai.APIStatusError:
        """As the SDK builds it: the message is "Error code: N - <body>", `body` the error object."""
        import openai

        text = response.body.decode(errors="replace").strip()
        body: Any = text
        try:
            body = json.loads(text)
            message = f"Error code: {response.status} - {body}"
        except ValueError:
            message = text or f"Error code: {response.status}"
        data = body.get("error", body) if isinstance(body, dict) else body
        cls: type[openai.APIStatusError] | None = {
            400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
            404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
            429: openai.RateLimitError,
        }.get(response.status)  # fmt: skip
        if cls is None:
            cls = openai.InternalServerError if response.status >= 500 else openai.APIStatusError
        return cls(message, response=self._response(response), body=data)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"malformed HTTP status line {lines[0][:100]!r}")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"  # HTTP/1.0 closes after each answer unless it says otherwise
    return int(parts[1]), headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _ssl_context() -> ssl.SSLContext:
    # httpx (and so the SDK) trusts certifi's bundle, or SSL_CERT_FILE / SSL_CERT_DIR when set.
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        import certifi

        cafile = certifi.where()
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _proxy_for(url: str) -> str | None:
    """The proxy the environment sets for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY), as httpx reads it."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy
