"""The results store: one SQLite file (WAL) with runs, samples (transcripts, scores, usage) and labels.

Each finished sample is written in its own transaction, so a killed run keeps everything it finished and a
rerun of the same run id skips it. pandas reads from here (`Store.samples`). A score that does not apply to a
sample is stored as no value with its reason (`na_json`), never as a silent false.

Jobs claim the items they work on (`claim`): a lease that its process renews while it works and that expires
if the process dies, so two processes on one run never pay for the same sample twice and can share a run.

The file carries its schema version (`PRAGMA user_version`); rows are read by column name. A store written by an
older version is migrated when opened for writing (`MIGRATIONS`); its transcripts are read as they were written
(`Transcript.from_json` reads every version)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import MislabError
from .study import NotApplicable
from .transcript import Transcript

SCHEMA_VERSION = 4
# What brings a store of an older version to the next one, by the version it starts from.
MIGRATIONS: dict[int, list[str]] = {
    # Version 2: labels say how they were made (meta_json); samples count reasoning tokens; long prompt texts
    # kept once (the `texts` table, created with the schema's other new tables).
    1: [
        "ALTER TABLE labels ADD COLUMN meta_json TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE samples ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
    ],
    # Version 3: an index in the order runs are read back (`samples_in_order`, created with the schema), so
    # reading a run needs no sort, whose memory grew with the run.
    2: [],
    # Version 4: why a score does not apply to a sample (`na_json`); claims (created with the schema).
    # The read-back order takes the sample id last (a branch run has several samples per model, cell and epoch).
    3: ["ALTER TABLE samples ADD COLUMN na_json TEXT NOT NULL DEFAULT '{}'", "DROP INDEX IF EXISTS samples_in_order"],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    package_version TEXT,
    spec_json TEXT NOT NULL,      -- the experiment as run (file text, options)
    prompts_json TEXT NOT NULL,   -- every prompt text the run used, by name
    models_json TEXT NOT NULL     -- what each model was (endpoint, defaults, local server options)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    sample_id TEXT NOT NULL,
    model TEXT NOT NULL,
    cell TEXT NOT NULL,
    factors_json TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    status TEXT NOT NULL,          -- 'done', 'error', or 'stopped' (cut by the run's stop: resumable)
    error TEXT,
    scores_json TEXT NOT NULL,
    metadata_json TEXT NOT NULL,
    transcript_json TEXT NOT NULL,
    calls INTEGER NOT NULL,
    cached_calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_prompt_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    seconds REAL NOT NULL,
    created_at TEXT NOT NULL,
    reasoning_tokens INTEGER NOT NULL DEFAULT 0,  -- part of completion_tokens, when the provider says
    na_json TEXT NOT NULL DEFAULT '{}',  -- score column -> why it does not apply to this sample
    PRIMARY KEY (run_id, sample_id)
);
CREATE INDEX IF NOT EXISTS samples_in_order ON samples (run_id, model, cell, epoch, sample_id);
CREATE TABLE IF NOT EXISTS texts (  -- a prompt text every sample of a run repeats, stored once
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS labels (
    run_id TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    scorer TEXT NOT NULL,
    value_json TEXT NOT NULL,
    explanation TEXT,
    judge TEXT,
    created_at TEXT NOT NULL,
    meta_json TEXT NOT NULL DEFAULT '{}',  -- how it was made: rubric, votes, calls, cost …
    PRIMARY KEY (run_id, sample_id, scorer)
);
CREATE TABLE IF NOT EXISTS claims (  -- a job's lease on an item it works on (see `Store.claim`)
    run_id TEXT NOT NULL,
    job TEXT NOT NULL,             -- 'run', 'label:<column>', …
    item TEXT NOT NULL,            -- the sample id
    owner TEXT NOT NULL,           -- host:pid:random of the process holding it
    expires REAL NOT NULL,         -- unix time; a claim past it is free to take
    PRIMARY KEY (run_id, job, item)
);
"""


# SQLite's page cache of the connection, in KiB (its default is 2,000): samples are appended and read back in
# one pass, so a small cache costs no speed, and is full (a run's memory flat) by the 200th sample.
PAGE_CACHE_KIB = 256
# How many digests of committed `texts` rows a store remembers (most recently used kept): every sample's system
# prompt stays known, while user turns, distinct per sample, do not pile up; a forgotten one costs only an
# `INSERT OR IGNORE`.
REMEMBERED_TEXTS = 256
SHARED_TEXTS = 256  # distinct texts per column a run's read-back keeps one object of (`_Column`)
PAGE = 256  # samples read from the database at a time
DONE = "done"  # `Store.claim`: the run's sample is stored done already


class StoreError(MislabError, RuntimeError):
    """The store cannot be opened or written as asked (missing file for reading, a newer schema, not a store, a
    label named like a score)."""


def _unshadow_judge_scores(db: sqlite3.Connection) -> None:
    """Before version 4 a study's in-run judge wrote its verdict twice, as a score and as a label of the same name;
    a label may no longer shadow a score, so the score copy goes and the label (with its judge's answers) stays."""
    rows = db.execute(
        "SELECT s.run_id, s.sample_id, s.scores_json, group_concat(l.scorer, char(31)) AS names FROM samples s "
        "JOIN labels l ON l.run_id = s.run_id AND l.sample_id = s.sample_id GROUP BY s.run_id, s.sample_id"
    ).fetchall()
    for run_id, sample_id, scores_json, names in rows:
        scores = json.loads(scores_json)
        kept = {k: v for k, v in scores.items() if k not in names.split("\x1f")}
        if kept != scores:
            db.execute(
                "UPDATE samples SET scores_json = ? WHERE run_id = ? AND sample_id = ?",
                (json.dumps(kept, default=str), run_id, sample_id),
            )


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script one by one (`executescript` would commit the transaction it runs in)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


def _label(row: sqlite3.Row) -> Label:
    return Label(row["sample_id"], row["scorer"], json.loads(row["value_json"]), row["explanation"], row["judge"],
                 json.loads(row["meta_json"]))  # fmt: skip


def _refuse_shadowing(run_id: str, scores: dict[str, Any], labels: Iterable[Label]) -> None:
    for label in labels:
        if label.scorer in scores:
            raise StoreError(
                f"a label named {label.scorer!r} would hide the score column of that name in run {run_id} "
                f"(sample {label.sample_id}); give the label another name"
            )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# System and user turns this long are kept once in `texts`; the transcript entry holds their sha256 under
# `content_sha256` instead of `content`. (A 5.5 KB system prompt was two thirds of every AF sample.)
SHARED_ROLES = ("system", "user")
SHARED_MIN_CHARS = 256


def _pack_transcript(db: sqlite3.Connection, transcript: Transcript, stored: dict[str, None]) -> tuple[str, set[str]]:
    """The transcript's JSON with its long prompt texts replaced by references, and their digests; texts not
    in `stored` (known to be committed already) are inserted."""
    packed, digests = [], set()
    for entry in transcript.to_json():
        content = entry.get("content")
        if entry.get("role") in SHARED_ROLES and isinstance(content, str) and len(content) >= SHARED_MIN_CHARS:
            digest = hashlib.sha256(content.encode()).hexdigest()
            if digest not in stored:
                db.execute("INSERT OR IGNORE INTO texts VALUES (?, ?)", (digest, content))
            entry = {("content_sha256" if k == "content" else k): v for k, v in entry.items()}
            entry["content_sha256"] = digest
            digests.add(digest)
        packed.append(entry)
    return json.dumps(packed, default=str), digests


def _unpack_transcript(
    db: sqlite3.Connection, transcript: list[dict[str, Any]], texts: dict[str, str]
) -> list[dict[str, Any]]:
    """A stored transcript with its shared texts back in place (`texts` memoises them across samples)."""
    for i, entry in enumerate(transcript):
        digest = entry.get("content_sha256")
        if digest is not None:
            if digest not in texts:
                row = db.execute("SELECT text FROM texts WHERE sha256 = ?", (digest,)).fetchone()
                texts[digest] = row[0]
            transcript[i] = {("content" if k == "content_sha256" else k): v for k, v in entry.items()}
            transcript[i]["content"] = texts[digest]
    return transcript


def split_scores(scores: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Scores as stored: not-applicable ones as no value, and their reasons apart."""
    values: dict[str, Any] = {}
    na: dict[str, str] = {}
    for key, value in scores.items():
        if isinstance(value, NotApplicable):
            values[key], na[key] = None, value.reason
        else:
            values[key] = value
    return values, na


@dataclass
class SampleRecord:
    sample_id: str
    model: str
    cell: str
    factors: dict[str, Any]
    epoch: int
    scores: dict[str, Any]  # facts and scores; a score that does not apply is None, its reason in `na`
    transcript: Transcript
    metadata: dict[str, Any] = field(default_factory=dict)
    status: str = "done"
    error: str | None = None
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    reasoning_tokens: int = 0  # part of completion_tokens, when the provider says
    na: dict[str, str] = field(default_factory=dict)  # score column -> why it does not apply

    def __post_init__(self) -> None:
        # A transcript given as stored JSON entries (e.g. imported from another tool's log) is read as the store does.
        if not isinstance(self.transcript, Transcript):
            self.transcript = Transcript.from_json(self.transcript)


@dataclass
class Label:
    sample_id: str
    scorer: str
    value: Any
    explanation: str | None = None
    judge: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # how it was made (rubric labels: votes, cost …)


@dataclass
class RunInfo:
    run_id: str
    study: str
    created_at: str
    updated_at: str
    status: str
    package_version: str | None
    spec: dict[str, Any]
    prompts: dict[str, Any]
    models: dict[str, Any]


# The array typecode a column's values are packed with while they are all of one of these types (by exact type:
# a bool is not an int here); numpy reads them as the bool, int64 and float64 pandas would have made of them.
_PACKED = {bool: "b", int: "q", float: "d"}


class _Column:
    """A column of `Store.samples` while it is read, row by row. Bools, ints or floats, all of one type, are
    packed (1 or 8 bytes a value, not a Python object and its pointer); from the first value of another type
    on it is a list, so pandas makes of it what it would have made of the values. A text repeated down the
    column is one object (a tier, a prompt id, the model), until the column proves unique (ids, queries)."""

    __slots__ = ("_packed", "_list", "_texts")

    def __init__(self) -> None:
        self._packed: array[Any] | None = None
        self._list: list[Any] | None = None
        self._texts: dict[str, str] = {}

    def append(self, value: Any) -> None:
        if self._list is None:
            typecode = _PACKED.get(type(value))
            if self._packed is None and typecode is not None:
                self._packed = array(typecode)
            if self._packed is not None and typecode == self._packed.typecode:
                try:
                    self._packed.append(value)
                    return
                except OverflowError:  # an int beyond 64 bits
                    pass
            self._list = self._unpacked()
        if type(value) is str and (value in self._texts or len(self._texts) < SHARED_TEXTS):
            value = self._texts.setdefault(value, value)
        self._list.append(value)

    def _unpacked(self) -> list[Any]:
        if self._packed is None:
            return []
        values = self._packed.tolist()
        return [bool(v) for v in values] if self._packed.typecode == "b" else values

    def values(self) -> list[Any] | np.ndarray:
        if self._list is not None or self._packed is None:
            return self._list or []
        return np.frombuffer(self._packed, dtype=bool if self._packed.typecode == "b" else self._packed.typecode)


class Store:
    """`Store(path)` opens a store, creating it if needed; `Store(path, create=False)` opens only an existing
    one (what read-only commands use, so a mistyped path is an error, not a new empty database)."""

    def __init__(self, path: str | Path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"no results store at {self.path}; check --store (or $MISLAB_STORE)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._stored_texts: dict[str, None] = {}  # digests of `texts` rows known committed, least recent first
        try:
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not a mislab results store: {exc}") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema {version}, newer than this mislab's ({SCHEMA_VERSION}); "
                "upgrade mislab to read it"
            )
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        if version == SCHEMA_VERSION:  # opening a current store writes nothing
            return
        self._db.execute("PRAGMA journal_mode=WAL")
        # One write transaction, the version read again inside it: two processes opening a new or old store at
        # once must not both migrate it (the second would see the first's half-built tables as an old schema).
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                # Version 0 is a new file, or one written before versioning, whose tables are those of version 1.
                runs = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
                start = version or (1 if self._db.execute(runs).fetchall() else SCHEMA_VERSION)
                for step in range(start, SCHEMA_VERSION):
                    for statement in MIGRATIONS[step]:
                        self._db.execute(statement)
                if start <= 3 < SCHEMA_VERSION:
                    _unshadow_judge_scores(self._db)
                for statement in _statements(SCHEMA):  # tables the store does not have yet
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # runs
    def create_run(
        self,
        run_id: str,
        study: str,
        spec: dict[str, Any],
        prompts: dict[str, Any],
        models: dict[str, Any],
        package_version: str,
    ) -> RunInfo:
        """Create a run. Reopening an existing one (a resume, an extension) is the runner's decision: it checks
        the specs with `get_run` first and records an extension with `update_run`."""
        now = _now()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise StoreError(f"run {run_id!r} already exists in {self.path}")
            db.execute(
                "INSERT INTO runs (run_id, study, created_at, updated_at, status, package_version, spec_json, "
                "prompts_json, models_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, study, now, now, "running", package_version, json.dumps(spec, default=str),
                    json.dumps(prompts), json.dumps(models, default=str),
                ),
            )  # fmt: skip
        run = self.get_run(run_id)
        assert run is not None
        return run

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        prompts: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        models: dict[str, Any] | None = None,
    ) -> None:
        """Set the status, replace the spec, or merge prompts and models in (an extension adds cells, models)."""
        with self._tx() as db:
            if status is not None:
                db.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (status, _now(), run_id))
            if spec is not None:
                db.execute("UPDATE runs SET spec_json = ? WHERE run_id = ?", (json.dumps(spec, default=str), run_id))
            for column, new in (("prompts_json", prompts), ("models_json", models)):
                if new is not None:
                    old = db.execute(f"SELECT {column} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    merged = {**json.loads(old[0]), **new} if old else new
                    db.execute(
                        f"UPDATE runs SET {column} = ? WHERE run_id = ?", (json.dumps(merged, default=str), run_id)
                    )

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return RunInfo(
            row["run_id"], row["study"], row["created_at"], row["updated_at"], row["status"], row["package_version"],
            json.loads(row["spec_json"]), json.loads(row["prompts_json"]), json.loads(row["models_json"]),
        )  # fmt: skip

    def runs(self) -> pd.DataFrame:
        with self._lock:
            df = pd.read_sql_query(
                "SELECT r.run_id, r.study, r.created_at, r.status, COUNT(s.sample_id) AS samples, "
                "COALESCE(SUM(s.cost), 0) AS cost FROM runs r LEFT JOIN samples s USING (run_id) "
                "GROUP BY r.run_id ORDER BY r.created_at DESC",
                self._db,
            )
        return df

    def latest_run(self, study: str | None = None) -> str | None:
        query = (
            "SELECT run_id FROM runs" + (" WHERE study = ?" if study else "") + " ORDER BY created_at DESC, rowid DESC"
        )
        with self._lock:
            row = self._db.execute(query, (study,) if study else ()).fetchone()
        return row["run_id"] if row else None

    # samples
    def add_sample(
        self, run_id: str, record: SampleRecord, labels: Iterable[Label] = (), *, release: str | None = None
    ) -> None:
        """Write one finished sample and its labels in one transaction, and give up `release`'s claim on it (the
        owner's, of the run job). A label may not take the name of one of the sample's score columns."""
        r = record
        labels = list(labels)
        _refuse_shadowing(run_id, r.scores, labels)
        with self._tx() as db:
            transcript, digests = _pack_transcript(db, r.transcript, self._stored_texts)
            db.execute(
                "INSERT OR REPLACE INTO samples (run_id, sample_id, model, cell, factors_json, epoch, status, error, "
                "scores_json, metadata_json, transcript_json, calls, cached_calls, prompt_tokens, completion_tokens, "
                "cached_prompt_tokens, cost, seconds, created_at, reasoning_tokens, na_json) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [  # a list: a 21-tuple per sample piled up in CPython's tuple free list (up to 2,000 of them)
                    run_id, r.sample_id, r.model, r.cell, json.dumps(r.factors, default=str), r.epoch, r.status,
                    r.error, json.dumps(r.scores, default=str), json.dumps(r.metadata, default=str),
                    transcript, r.calls, r.cached_calls, r.prompt_tokens,
                    r.completion_tokens, r.cached_prompt_tokens, r.cost, r.seconds, _now(), r.reasoning_tokens,
                    json.dumps(r.na),
                ],
            )  # fmt: skip
            for label in labels:
                self._put_label(db, run_id, label)
            if release is not None:
                db.execute(
                    "DELETE FROM claims WHERE run_id = ? AND job = 'run' AND item = ? AND owner = ?",
                    (run_id, r.sample_id, release),
                )
            db.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (_now(), run_id))
        for digest in digests:  # committed: later samples need not insert them again
            self._stored_texts.pop(digest, None)
            self._stored_texts[digest] = None
        while len(self._stored_texts) > REMEMBERED_TEXTS:
            del self._stored_texts[next(iter(self._stored_texts))]

    def update_scores(self, run_id: str, changes: Iterable[tuple[str, dict[str, Any], dict[str, str]]]) -> None:
        """Replace score columns of stored samples (a rescore): per sample id, the new values of the columns it
        names (None where not applicable) and the reasons of those that do not apply. Other columns keep theirs."""
        with self._tx() as db:
            for sample_id, values, na in changes:
                row = db.execute(
                    "SELECT scores_json, na_json FROM samples WHERE run_id = ? AND sample_id = ?", (run_id, sample_id)
                ).fetchone()
                if row is None:
                    continue
                scores, reasons = json.loads(row["scores_json"]), json.loads(row["na_json"])
                scores.update(values)
                reasons = {k: v for k, v in reasons.items() if k not in values} | na
                db.execute(
                    "UPDATE samples SET scores_json = ?, na_json = ? WHERE run_id = ? AND sample_id = ?",
                    (json.dumps(scores, default=str), json.dumps(reasons), run_id, sample_id),
                )

    def done_sample_ids(self, run_id: str) -> set[str]:
        """Samples that need no rerun. Errored samples are retried on resume."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sample_id FROM samples WHERE run_id = ? AND status = 'done'", (run_id,)
            ).fetchall()
        return {r["sample_id"] for r in rows}

    def cell_usage(self, study: str, model: str, cell: str) -> list[tuple[int, int, int, int]]:
        """(calls, prompt tokens, completion tokens, reasoning tokens) of every finished sample of a study's model
        and cell, across runs: the measured basis of dry-run estimates."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.calls, s.prompt_tokens, s.completion_tokens, s.reasoning_tokens FROM samples s "
                "JOIN runs r USING (run_id) WHERE r.study = ? AND s.model = ? AND s.cell = ? AND s.status = 'done'",
                (study, model, cell),
            ).fetchall()
        return [(r["calls"], r["prompt_tokens"], r["completion_tokens"], r["reasoning_tokens"]) for r in rows]

    def model_reasoning(self, model: str) -> tuple[int, int, int]:
        """(samples, calls, reasoning tokens) of every finished sample of a model in any run and study: how much
        the model reasons per call, for estimates of cells it has not run yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(calls), 0), COALESCE(SUM(reasoning_tokens), 0) FROM samples "
                "WHERE model = ? AND status = 'done' AND calls > 0",
                (model,),
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def model_speed(self, model: str) -> tuple[int, int, float]:
        """(samples, completion tokens, seconds) of every finished sample of a model that made all its calls
        (none served from the response cache), across runs and studies: how fast the model really is here."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(seconds), 0) FROM samples "
                "WHERE model = ? AND status = 'done' AND cached_calls = 0 AND calls > 0",
                (model,),
            ).fetchone()
        return int(row[0]), int(row[1]), float(row[2])

    def sample_records(self, run_id: str, transcripts: bool = True) -> list[SampleRecord]:
        """The run's samples; `transcripts=False` leaves every transcript empty and unread (fast, small). A list:
        for a large run, iterate `iter_records` instead (one page in memory at a time)."""
        return list(self.iter_records(run_id, transcripts))

    def count_samples(self, run_id: str, status: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM samples WHERE run_id = ?" + (" AND status = ?" if status else "")
        with self._lock:
            return int(self._db.execute(query, (run_id, status) if status else (run_id,)).fetchone()[0])

    def iter_records(
        self, run_id: str, transcripts: bool = True, metadata: bool = True, *, status: str | None = None
    ) -> Iterator[SampleRecord]:
        """The run's samples in order (model, cell, epoch), read a page at a time and each parsed only when
        reached (what is left out is not parsed at all). Pages are read by key, not through an open cursor, so
        the store can be written between pages (a job labels what it reads)."""
        transcript_column = "transcript_json" if transcripts else "'[]' AS transcript_json"
        metadata_column = "metadata_json" if metadata else "'{}' AS metadata_json"
        query = (
            f"SELECT sample_id, model, cell, factors_json, epoch, scores_json, {transcript_column}, "
            f"{metadata_column}, status, error, calls, cached_calls, prompt_tokens, completion_tokens, "
            "cached_prompt_tokens, cost, seconds, reasoning_tokens, na_json FROM samples WHERE run_id = ? "
            + ("AND status = ? " if status else "")
            + "AND (model, cell, epoch, sample_id) > (?, ?, ?, ?) ORDER BY model, cell, epoch, sample_id LIMIT ?"
        )
        texts: dict[str, str] = {}
        after: tuple[Any, ...] = ("", "", -1, "")
        while True:
            with self._lock:
                rows = self._db.execute(query, (run_id, *((status,) if status else ()), *after, PAGE)).fetchall()
            if not rows:
                return
            last = rows[-1]
            after = (last["model"], last["cell"], last["epoch"], last["sample_id"])
            yield from self._records(rows, texts)
            if len(rows) < PAGE:
                return

    def _records(self, rows: list[Any], texts: dict[str, str]) -> Iterator[SampleRecord]:
        for r in rows:
            entries = json.loads(r["transcript_json"])
            if any("content_sha256" in entry for entry in entries):
                with self._lock:
                    entries = _unpack_transcript(self._db, entries, texts)
            yield SampleRecord(
                r["sample_id"], r["model"], r["cell"], json.loads(r["factors_json"]), r["epoch"],
                json.loads(r["scores_json"]), Transcript.from_json(entries), json.loads(r["metadata_json"]),
                r["status"], r["error"], r["calls"], r["cached_calls"], r["prompt_tokens"], r["completion_tokens"],
                r["cached_prompt_tokens"], r["cost"], r["seconds"], r["reasoning_tokens"], json.loads(r["na_json"]),
            )  # fmt: skip

    def samples(self, run_id: str, include_transcripts: bool = False) -> pd.DataFrame:
        """One row per sample; scores, factors and labels expanded into columns. A value that does not apply is
        None, and the `not_applicable` column holds, per row, each such column's reason (None when every value
        applies). A label stored under the name of a score column (by a version that allowed it) is shown as
        `<name> (label)`, never over the score. Built column by column (see `_Column`) from records parsed one at
        a time: no row dicts or whole-run lists of records are kept."""
        labels = self.label_values(run_id)
        columns: dict[str, _Column] = {}
        records = self.iter_records(run_id, include_transcripts, metadata=False)
        for count, r in enumerate(records, start=1):
            row: dict[str, Any] = {
                "run_id": run_id, "sample_id": r.sample_id, "model": r.model, "cell": r.cell, "epoch": r.epoch,
                "status": r.status, "error": r.error,
            }  # fmt: skip
            row.update(r.factors)
            row.update(r.scores)
            na = dict(r.na)
            for name, (value, reason) in labels.get(r.sample_id, {}).items():
                name = f"{name} (label)" if name in r.scores or name in r.factors else name
                row[name] = value
                if value is None and reason:
                    na[name] = reason
            row.update(
                calls=r.calls, cached_calls=r.cached_calls, prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens, cached_prompt_tokens=r.cached_prompt_tokens,
                reasoning_tokens=r.reasoning_tokens, cost=r.cost, seconds=r.seconds, not_applicable=na or None,
            )  # fmt: skip
            if include_transcripts:
                row["transcript"] = r.transcript.to_json()
            for key, value in row.items():
                column = columns.get(key)
                if column is None:  # a column a row lacks is NaN there, as pandas makes it from row dicts
                    column = columns[key] = _Column()
                    for _ in range(count - 1):
                        column.append(math.nan)
                column.append(value)
            for key in columns.keys() - row.keys():
                columns[key].append(math.nan)
        return pd.DataFrame({key: column.values() for key, column in columns.items()})

    # claims: a job's lease on the items it works on
    def claim(self, run_id: str, job: str, item: str, owner: str, lease: float) -> str | None:
        """Take `item` for `owner` for `lease` seconds; None if taken, else why not: `DONE` (a run's sample that
        is stored done, checked in the same transaction) or the owner of a live claim of another process.
        Reclaiming one's own item renews it."""
        now = time.time()
        with self._tx() as db:
            if (
                job == "run"
                and db.execute(
                    "SELECT 1 FROM samples WHERE run_id = ? AND sample_id = ? AND status = 'done'", (run_id, item)
                ).fetchone()
            ):
                return DONE
            row = db.execute(
                "SELECT owner, expires FROM claims WHERE run_id = ? AND job = ? AND item = ?", (run_id, job, item)
            ).fetchone()
            if row is not None and row["owner"] != owner and row["expires"] > now:
                return str(row["owner"])
            db.execute(
                "INSERT OR REPLACE INTO claims (run_id, job, item, owner, expires) VALUES (?, ?, ?, ?, ?)",
                (run_id, job, item, owner, now + lease),
            )
        return None

    def renew_claims(self, owner: str, lease: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease, owner))

    def release(self, run_id: str, job: str, item: str, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM claims WHERE run_id = ? AND job = ? AND item = ? AND owner = ?", (run_id, job, item, owner)
            )

    def release_all(self, owner: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM claims WHERE owner = ?", (owner,))

    # labels (judges may add them after the samples were written)
    @staticmethod
    def _put_label(db: sqlite3.Connection, run_id: str, label: Label) -> None:
        db.execute(
            "INSERT OR REPLACE INTO labels (run_id, sample_id, scorer, value_json, explanation, judge, created_at, "
            "meta_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, label.sample_id, label.scorer, json.dumps(label.value, default=str), label.explanation,
                label.judge, _now(), json.dumps(label.meta, default=str),
            ),
        )  # fmt: skip

    def add_labels(self, run_id: str, labels: Iterable[Label]) -> None:
        """Store labels (replacing any of the same sample and column). A label may not take the name of a score
        column of its sample."""
        labels = list(labels)
        with self._tx() as db:
            for label in labels:
                row = db.execute(
                    "SELECT scores_json FROM samples WHERE run_id = ? AND sample_id = ?", (run_id, label.sample_id)
                ).fetchone()
                _refuse_shadowing(run_id, json.loads(row["scores_json"]) if row else {}, [label])
                self._put_label(db, run_id, label)

    def labels(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per sample id, each label's value by column."""
        return {sid: {k: v for k, (v, _) in values.items()} for sid, values in self.label_values(run_id).items()}

    def label_values(self, run_id: str) -> dict[str, dict[str, tuple[Any, str | None]]]:
        """Per sample id, each label's (value, why it has none) by column."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sample_id, scorer, value_json, json_extract(meta_json, '$.na_reason') AS reason FROM labels "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        out: dict[str, dict[str, tuple[Any, str | None]]] = {}
        for r in rows:
            out.setdefault(r["sample_id"], {})[r["scorer"]] = (json.loads(r["value_json"]), r["reason"])
        return out

    def sample_labels(self, run_id: str, sample_id: str) -> dict[str, Label]:
        """One sample's labels, by column."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sample_id, scorer, value_json, explanation, judge, meta_json FROM labels WHERE run_id = ? "
                "AND sample_id = ?",
                (run_id, sample_id),
            ).fetchall()
        return {r["scorer"]: _label(r) for r in rows}

    def label_signatures(
        self, run_id: str, column: str, sample_id: str | None = None
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        """Per sample id, how its label in `column` was made (its meta) and its value; one sample's, if given."""
        query = "SELECT sample_id, meta_json, value_json FROM labels WHERE run_id = ? AND scorer = ?"
        args: tuple[Any, ...] = (run_id, column)
        if sample_id is not None:
            query, args = query + " AND sample_id = ?", (*args, sample_id)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return {r["sample_id"]: (json.loads(r["meta_json"]), json.loads(r["value_json"])) for r in rows}

    def first_sample_scores(self, run_id: str) -> dict[str, Any] | None:
        """The score columns of the run's first finished sample (what columns a run has), None if it has none."""
        with self._lock:
            row = self._db.execute(
                "SELECT scores_json FROM samples WHERE run_id = ? AND status = 'done' LIMIT 1", (run_id,)
            ).fetchone()
        return json.loads(row["scores_json"]) if row else None

    def delete_labels(self, run_id: str, column: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM labels WHERE run_id = ? AND scorer = ?", (run_id, column))

    def label_details(self, run_id: str) -> list[Label]:
        with self._lock:
            rows = self._db.execute(
                "SELECT sample_id, scorer, value_json, explanation, judge, meta_json FROM labels WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return [_label(r) for r in rows]
