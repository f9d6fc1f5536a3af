"""The store keeps a prompt text that every sample repeats once, and reads transcripts back only when asked."""

from __future__ import annotations

import sqlite3

from mislab.store import SampleRecord, Store

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
        assert [r.transcript for r in records] == [transcript(str(i)) for i in range(3)]
        assert list(records[0].transcript[0]) == ["role", "content"]


def test_tables_leave_transcripts_unread_unless_asked(tmp_path) -> None:
    store = Store(tmp_path / "r.sqlite")
    store.create_run("r", "af", {}, {}, {}, "0")
    store.add_sample("r", SampleRecord("a", "m", "free", {"tier": "free"}, 0, {"ok": True, "x": 1}, transcript("a")))
    store.add_sample("r", SampleRecord("b", "m", "paid", {"tier": "paid"}, 0, {"ok": False}, transcript("b")))
    df = store.samples("r")
    assert "transcript" not in df and list(df["ok"]) == [True, False]
    assert df["x"].isna().tolist() == [False, True]  # a score one sample lacks is missing there, as before
    assert [r.transcript for r in store.sample_records("r", transcripts=False)] == [[], []]
    assert store.samples("r", include_transcripts=True)["transcript"].tolist() == [transcript("a"), transcript("b")]


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
    assert store.sample_records("r")[-1].transcript == transcript("query 0 " + "x" * 300)


def test_a_run_is_read_back_in_order_without_a_sort(tmp_path) -> None:
    """The order index gives (model, cell, epoch) as stored numbers, epoch 10 after 9, with no sort whose memory
    grows with the run; a store of the previous schema gets the index when opened."""
    path = tmp_path / "r.sqlite"
    store = Store(path)
    store.create_run("r", "af", {}, {}, {}, "0")
    for epoch in (10, 2, 9):
        for cell in ("paid", "free"):
            store.add_sample("r", SampleRecord(f"m::{cell}::{epoch}", "m", cell, {}, epoch, {}, []))
    expected = [("free", 2), ("free", 9), ("free", 10), ("paid", 2), ("paid", 9), ("paid", 10)]
    assert list(store.samples("r")[["cell", "epoch"]].itertuples(index=False, name=None)) == expected
    query = "EXPLAIN QUERY PLAN SELECT sample_id FROM samples WHERE run_id = ? ORDER BY model, cell, epoch"
    db = sqlite3.connect(path)
    assert not any("TEMP B-TREE" in row[-1] for row in db.execute(query, ("r",)))
    db.execute("DROP INDEX samples_in_order")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    Store(path)
    assert not any("TEMP B-TREE" in row[-1] for row in db.execute(query, ("r",)))
