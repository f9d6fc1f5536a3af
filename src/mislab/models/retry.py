"""Retrying what can succeed on a second try (429, 5xx, timeouts, dropped connections), and nothing else."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A longer Retry-After is waited for this long only (the attempt may then meet another 429).
    max_retry_after: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 0): the server's Retry-After
        when it gives one, else exponential backoff with full jitter."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


def is_retryable(exc: BaseException) -> bool:
    import openai  # here, not at the top: importing the model layer must not load the SDK (`mislab … --help`)

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def retry_after_seconds(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    value = response.headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: rare from model APIs; fall back to backoff
