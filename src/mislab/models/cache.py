"""The response cache: SQLite, keyed by a canonical hash of everything that determines a completion.

Sample `i` of a prompt is its own entry, so n samples are n distinct paid calls and a rerun costs nothing.
Nothing secret enters the key or the value: API keys and HTTP headers are never passed here."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from .types import Completion, Message, Tool


def _normalise_tool_call_ids(messages: list[Message]) -> list[Message]:
    """Replace tool-call ids by their order of appearance: servers return random ids, which must not
    make two identical conversations hash differently."""
    mapping: dict[str, str] = {}

    def canon(id_: str) -> str:
        return mapping.setdefault(id_, f"call_{len(mapping)}")

    out = []
    for msg in messages:
        msg = dict(msg)
        if msg.get("tool_calls"):
            msg["tool_calls"] = [{**tc, "id": canon(str(tc.get("id", "")))} for tc in msg["tool_calls"]]
        if "tool_call_id" in msg:
            msg["tool_call_id"] = canon(str(msg["tool_call_id"]))
        out.append(msg)
    return out


def cache_key(
    endpoint: str,
    model: str,
    messages: list[Message],
    tools: list[Tool] | None,
    params: dict[str, Any],
    sample_index: int,
) -> str:
    payload = {
        "endpoint": endpoint,
        "model": model,
        "messages": _normalise_tool_call_ids(messages),
        "tools": tools or [],
        "params": params,
        "sample_index": sample_index,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# SQLite's page cache of the connection, in KiB (its default is 2,000): lookups go to random keys, which a cache
# of any affordable size rarely holds, so a small one costs no speed and keeps a run's memory from growing with it.
PAGE_CACHE_KIB = 256


class ResponseCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL loses no committed entry when the process dies (only on power loss, where a lost
        # entry costs one repeated call); FULL's fsync per commit took a fifth of a fast run's throughput.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, created REAL, completion TEXT)"
        )
        self._db.commit()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = Completion.from_dict(json.loads(row[0]))
        completion.cached = True
        return completion

    def put(self, key: str, completion: Completion) -> None:
        data = completion.to_dict()
        data["cached"] = False
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (key, completion.model, time.time(), json.dumps(data, default=str)),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            count: int = self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            return count

    def close(self) -> None:
        with self._lock:
            self._db.close()
