"""The store keeps a prompt text that every sample repeats once, and reads transcripts back only when asked."""

from __future__ import annotations

import sqlite3

from mislab.store import SampleRecord, Store
from mislab.transcript import Transcript

SYSTEM = "You are an AI created by a lab. " * 40  # a long system prompt, as in every AF sample


def transcript(query: str) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"<is_free_tier_user>true</is_free_tier_user> {query}"},
        {"role": "assistant", "content": "<OUTPUT>ok</OUTPUT>", "reasoning": None, "tool_calls": []},
    ]


def test_a_repeated_prompt_is_stored_once_and_read_back_in_place(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    store.create_run("r", "af", {}, {}, {}, "0")
    for i in range(3):
        store.add_sample("r", SampleRecord(f"s{i}", "m", "free", {"tier": "free"}, i, {"ok": True}, transcript(str(i))))
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT COUNT(*) FROM texts").fetchone()[0] == 1
    stored = [row[0] for row in db.execute("SELECT transcript_json FROM samples")]
    assert all(SYSTEM not in t and "content_sha256" in t for t in stored)
    # read back exactly as written, key order included; a fresh Store (no memory of what it wrote) too
    for reader in (store, Store(tmp_path / "r.sqlite")):
        records = reader.sample_records("r")
        assert [r.transcript for r in records] == [Transcript.from_json(transcript(str(i))) for i in range(3)]
        assert records[0].transcript.to_json()[0] == {"role": "system", "content": SYSTEM}


def test_tables_leave_transcripts_unread_unless_asked(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    store.create_run("r", "af", {}, {}, {}, "0")
    store.add_sample("r", SampleRecord("a", "m", "free", {"tier": "free"}, 0, {"ok": True, "x": 1}, transcript("a")))
    store.add_sample("r", SampleRecord("b", "m", "paid", {"tier": "paid"}, 0, {"ok": False}, transcript("b")))
    df = store.samples("r")
    assert "transcript" not in df and list(df["ok"]) == [True, False]
    assert df["x"].isna().tolist() == [False, True]  # a score one sample lacks is missing there, as before
    assert [r.transcript for r in store.sample_records("r", transcripts=False)] == [Transcript(), Transcript()]
    assert store.samples("r", include_transcripts=True)["transcript"].tolist() == [
        Transcript.from_json(transcript(q)).to_json() for q in "ab"
    ]


def test_the_store_remembers_a_bounded_number_of_stored_texts(tmp_path) -> None:
    """Every user turn of a run is distinct: the store does not keep one digest per sample, yet the system
    prompt every sample repeats stays known (and stored once), and a forgotten text is not stored twice."""
    from mislab.store import REMEMBERED_TEXTS

    store = Store(tmp_path / "r.sqlite")
    store.create_run("r", "af", {}, {}, {}, "0")
    n = REMEMBERED_TEXTS + 50
    for i in range(n):
        store.add_sample("r", SampleRecord(f"s{i}", "m", "free", {}, i, {}, transcript(f"query {i} " + "x" * 300)))
    store.add_sample("r", SampleRecord("again", "m", "free", {}, n, {}, transcript("query 0 " + "x" * 300)))
    assert len(store._stored_texts) <= REMEMBERED_TEXTS
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT COUNT(*) FROM texts").fetchone()[0] == 1 + n
    assert store.sample_records("r")[-1].transcript == Transcript.from_json(transcript("query 0 " + "x" * 300))


def test_a_run_is_read_back_in_order_without_a_sort(tmp_path) -> None:
    """The order index gives (model, cell, epoch) as stored numbers, epoch 10 after 9, with no sort whose memory
    grows with the run, read a page at a time by key; a store of the previous schema gets the index when opened."""
    path = tmp_path / "r.sqlite"
    store = Store(path)
    store.create_run("r", "af", {}, {}, {}, "0")
    for epoch in (10, 2, 9):
        for cell in ("paid", "free"):
            store.add_sample("r", SampleRecord(f"m::{cell}::{epoch}", "m", cell, {}, epoch, {}, []))
    expected = [("free", 2), ("free", 9), ("free", 10), ("paid", 2), ("paid", 9), ("paid", 10)]
    assert list(store.samples("r")[["cell", "epoch"]].itertuples(index=False, name=None)) == expected
    query = (
        "EXPLAIN QUERY PLAN SELECT sample_id FROM samples WHERE run_id = ? AND (model, cell, epoch, sample_id) > "
        "(?, ?, ?, ?) ORDER BY model, cell, epoch, sample_id LIMIT 256"
    )
    args = ("r", "m", "free", 2, "")
    db = sqlite3.connect(path)
    plan = [row[-1] for row in db.execute(query, args)]
    assert not any("TEMP B-TREE" in step for step in plan) and any("samples_in_order" in step for step in plan)
    db.execute("DROP INDEX samples_in_order")
    db.execute("ALTER TABLE samples DROP COLUMN na_json")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    Store(path)
    assert not any("TEMP B-TREE" in row[-1] for row in db.execute(query, args))


def test_a_table_is_what_pandas_makes_of_the_rows(tmp_path) -> None:
    """Columns are packed while read (bools, ints, floats): the DataFrame is still exactly the one pandas makes
    from the rows, dtypes included, whatever mix of types, gaps and huge ints a score column holds."""
    import pandas as pd

    scores = [
        {"i": 1, "b": True, "f": 0.5, "mix": 1, "big": 2**70, "text": "a", "flag": True, "fi": 1.0},
        {"i": 2, "b": False, "f": float("nan"), "mix": 2.5, "big": 1, "text": None, "flag": None, "late": 3, "fi": 2},
        {"b": True, "f": 1.5, "mix": True, "big": 3, "text": "a", "flag": False, "late": 4.0, "fi": 3.0},
        {"i": 4, "b": True, "f": 2.0, "mix": "s", "big": 4, "text": "b", "flag": True, "late": None, "fi": 4.0},
    ]
    store = Store(tmp_path / "r.sqlite")
    store.create_run("r", "x", {}, {}, {}, "0")
    rows = []
    for k, s in enumerate(scores):
        store.add_sample("r", SampleRecord(f"m::c::{k}", "m", "c", {"tier": "free"}, k, s, [], calls=k, cost=k / 10))
        usage = dict.fromkeys(("cached_calls", "prompt_tokens", "completion_tokens", "cached_prompt_tokens"), 0)
        rows.append({
            "run_id": "r", "sample_id": f"m::c::{k}", "model": "m", "cell": "c", "epoch": k, "status": "done",
            "error": None, "tier": "free", **s, "calls": k, **usage, "reasoning_tokens": 0, "cost": k / 10,
            "seconds": 0.0, "not_applicable": None,
        })  # fmt: skip
    table, expected = store.samples("r"), pd.DataFrame(rows)
    assert set(table.columns) == set(expected.columns)
    pd.testing.assert_frame_equal(table, expected[list(table.columns)], check_exact=True)
    for column in table.columns[table.dtypes == "object"]:  # equal is not enough there: 1 == True
        assert list(map(type, table[column])) == list(map(type, expected[column])), column
