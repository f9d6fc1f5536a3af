"""Model specs: `local`, `local/<name>`, `openrouter/<vendor>/<model>`, `openai/<model>`, or any name with a
base_url (vLLM, llama.cpp, Ollama …)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import MislabError

OPENROUTER_URL = "https://openrouter.ai/api/v1"


class ModelSpecError(MislabError, ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    spec: str  # what the user wrote; the name shown in tables
    provider: str  # "local" | "openrouter" | "openai" | "custom"
    model: str  # the name sent to the API
    base_url: str | None
    api_key_env: str | None  # where the key comes from; the key itself never lives here
    supports_prefill: bool

    @property
    def endpoint(self) -> str:
        """A secret-free identity of the endpoint, used in cache keys."""
        if not self.base_url:
            return self.provider
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        # A loopback port changes every run; the local model's identity is its weights, not its port.
        if self.provider == "local":
            return "local"
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def parse_spec(spec: str, base_url: str | None = None) -> ModelSpec:
    spec = spec.strip()
    if not spec:
        raise ModelSpecError("empty model spec; try 'local', 'openrouter/<vendor>/<model>' or 'openai/<model>'")
    if base_url:
        return ModelSpec(spec, "custom", spec, base_url.rstrip("/"), "MISLAB_API_KEY", True)
    head, _, rest = spec.partition("/")
    if head == "local":
        return ModelSpec(spec, "local", rest or "default", None, None, True)
    if head == "openrouter":
        if rest.count("/") < 1 or not all(rest.split("/")):
            raise ModelSpecError(f"{spec!r}: OpenRouter specs look like 'openrouter/<vendor>/<model>'")
        return ModelSpec(spec, "openrouter", rest, OPENROUTER_URL, "OPENROUTER_API_KEY", True)
    if head == "openai":
        if not rest:
            raise ModelSpecError(f"{spec!r}: OpenAI specs look like 'openai/<model>'")
        # OpenAI's chat API answers a trailing assistant message afresh instead of continuing it.
        return ModelSpec(spec, "openai", rest, None, "OPENAI_API_KEY", False)
    raise ModelSpecError(
        f"unknown model spec {spec!r}: use 'local', 'openrouter/<vendor>/<model>', 'openai/<model>', "
        "or pass base_url for another OpenAI-compatible server"
    )
