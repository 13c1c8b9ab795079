"""User edits racing a sync that merges pending rows into their posted replacements (issue 12, defect 2).

The apply is paused inside its database transaction at two points — after pairing (before the merge writes
anything) and after the merge (before the commit) — while an edit of a pending row it merges is made from
another thread, as the Transactions page would. However they interleave, the edit ends up on the posted row with
its audit row, or is refused with a message; it is never reported as saved and then lost.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

import finance.store.ingest as ingest
from finance.errors import EditError
from finance.store import transactions
from finance.sync import SyncEngine, SyncResult
from tests.conftest import connect

pytestmark = pytest.mark.engines

Edit = Callable[[sa.Engine, str], str]
EDITS: dict[str, tuple[Edit, Callable[[sa.Row], bool], str]] = {
    "note": (lambda e, tid: transactions.set_note(e, tid, "split with Ana"),
             lambda row: row.note == "split with Ana", "set_note"),
    "category": (lambda e, tid: transactions.set_category(e, tid, "travel"),
                 lambda row: row.user_category == "travel", "set_category"),
    "delete": (lambda e, tid: transactions.delete_transaction(e, tid),
               lambda row: row.deleted_at is not None, "delete"),
}


class Pause:
    """Holds the sync's apply at one point until released; `reached` says it got there."""

    def __init__(self) -> None:
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self) -> None:
        self.reached.set()
        assert self.go.wait(30), "the test never released the apply"


@pytest.fixture
def posting(provider, sync, engine, emulator) -> str:
    """A synced connection whose pending card purchases have posted at the bank (new ids, not yet synced)."""
    connection_id = connect(provider, sync)
    assert sync.sync_connection(connection_id).outcome == "success"
    emulator.advance(days=6)
    return connection_id


def sync_in_thread(sync: SyncEngine, connection_id: str) -> tuple[threading.Thread, list[SyncResult]]:
    results: list[SyncResult] = []
    thread = threading.Thread(target=lambda: results.append(sync.sync_connection(connection_id)))
    thread.start()
    return thread, results


def merged_rows(engine: sa.Engine) -> dict[str, sa.Row]:
    """Posted rows that replaced a pending row, by the pending row's id."""
    with engine.connect() as conn:
        return {r.pending_id: r for r in conn.execute(sa.text(
            "SELECT * FROM transactions WHERE pending_id IS NOT NULL AND status = 'posted'"))}


def audit(engine: sa.Engine, action: str) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM audit_log WHERE action = :a"), {"a": action}).all()


def exists(engine: sa.Engine, transaction_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM transactions WHERE id = :id"),
                            {"id": transaction_id}).scalar_one() == 1


class Hooks:
    """Records the apply's pending → posted pairs, and pauses it after pairing or after the merge (or neither)."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.after_pairing: Pause | None = None
        self.after_merge: Pause | None = None


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hooks]:
    hooks = Hooks()
    pairing, rebuild = ingest.pair_pending_with_posted, ingest._rebuild_balance_history

    def pair(*args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        found = pairing(*args, **kwargs)
        hooks.pairs.extend(found)
        if found and hooks.after_pairing and not hooks.after_pairing.reached.is_set():
            hooks.after_pairing()  # the apply's snapshot of the pending rows is taken
        return found

    def rebuild_then_pause(*args: Any, **kwargs: Any) -> None:
        rebuild(*args, **kwargs)
        if hooks.pairs and hooks.after_merge and not hooks.after_merge.reached.is_set():
            hooks.after_merge()  # posted rows written, pending rows deleted, not committed

    monkeypatch.setattr(ingest, "pair_pending_with_posted", pair)
    monkeypatch.setattr(ingest, "_rebuild_balance_history", rebuild_then_pause)
    yield hooks
    for pause in (hooks.after_pairing, hooks.after_merge):
        if pause:
            pause.go.set()


@pytest.mark.parametrize("kind", EDITS)
def test_an_edit_committed_after_pairing_reaches_the_posted_row(kind, sync, engine, posting, hooks, db_kind):
    edit, shows, action = EDITS[kind]
    pause = hooks.after_pairing = Pause()
    thread, results = sync_in_thread(sync, posting)
    assert pause.reached.wait(30)
    pending_id, posted_id = hooks.pairs[0]

    edit(engine, pending_id)  # committed while the apply holds its own earlier snapshot of the pending row
    pause.go.set()
    thread.join(30)
    merging = len(hooks.pairs)
    if db_kind == "postgresql":  # READ COMMITTED: the merge locks the pending rows, then copies what is committed
        assert results[0].outcome == "success" and results[0].counts.merged == merging, results[0].message
        posted = merged_rows(engine)[pending_id]
        assert posted.id == posted_id and shows(posted)
        assert [a.object_id for a in audit(engine, action)] == [pending_id]
        return

    # The apply saw that a row it merges changed under it: it saved nothing and says so (the edit stays put)...
    (first,) = results
    assert (first.outcome, first.error_code) == ("failed", "EDITED_DURING_SYNC"), first.message
    assert "edited" in first.message and exists(engine, pending_id)
    # ...and the next sync merges the row with the edit.
    again = sync.sync_connection(posting)
    assert again.outcome == "success" and again.counts.merged == merging, again.message
    posted = merged_rows(engine)[pending_id]
    assert posted.id == posted_id and shows(posted)
    assert [a.object_id for a in audit(engine, action)] == [pending_id]  # posted.pending_id leads back to it


@pytest.mark.parametrize("kind", EDITS)
def test_an_edit_during_the_merge_waits_and_follows_the_pending_row_to_its_posted_row(kind, sync, engine,
                                                                                      posting, hooks):
    edit, shows, action = EDITS[kind]
    pause = hooks.after_merge = Pause()
    thread, results = sync_in_thread(sync, posting)
    assert pause.reached.wait(30)
    pending_id, posted_id = hooks.pairs[0]
    answers: list[str | BaseException] = []

    def user() -> None:
        try:
            answers.append(edit(engine, pending_id))
        except BaseException as exc:  # handed to the test's thread
            answers.append(exc)

    editor = threading.Thread(target=user)
    editor.start()
    editor.join(0.5)
    assert editor.is_alive(), f"the edit answered {answers} while the merge of its row was uncommitted"
    pause.go.set()
    thread.join(30)
    editor.join(30)

    assert results[0].outcome == "success" and results[0].counts.merged == len(hooks.pairs), results[0].message
    (answer,) = answers
    assert isinstance(answer, str) and "has posted" in answer, answer
    posted = merged_rows(engine)[pending_id]
    assert posted.id == posted_id and shows(posted)
    (entry,) = audit(engine, action)
    assert entry.object_id == posted_id and json.loads(entry.detail)["pending_id"] == pending_id


def test_an_edit_after_the_merge_follows_the_pending_row_to_its_posted_row(sync, engine, posting, hooks):
    result = sync.sync_connection(posting)
    assert result.outcome == "success" and result.counts.merged >= 1
    pending_id, posted_id = hooks.pairs[0]

    answer = transactions.set_note(engine, pending_id, "booked late")
    assert answer == transactions.POSTED + "Note saved."
    assert transactions.delete_transaction(engine, pending_id).startswith(transactions.POSTED + "Transaction deleted.")
    assert transactions.restore_transaction(engine, pending_id) == transactions.POSTED + "Transaction restored."
    assert transactions.set_note(engine, pending_id, "booked late") == transactions.POSTED + "The note is unchanged."

    posted = merged_rows(engine)[pending_id]
    assert (posted.id, posted.note, posted.deleted_at) == (posted_id, "booked late", None)
    with engine.connect() as conn:
        entries = conn.execute(sa.text("SELECT action, object_id, detail FROM audit_log ORDER BY action")).all()
    assert [(a, o, json.loads(d)["pending_id"]) for a, o, d in entries] == [
        ("delete", posted_id, pending_id), ("restore", posted_id, pending_id), ("set_note", posted_id, pending_id)]
    with pytest.raises(EditError, match="no longer exists"):
        transactions.set_note(engine, "pluggy:never-was", "x")


def test_an_edit_that_waits_too_long_for_a_merge_changes_nothing_and_says_why(sync, engine, posting, hooks,
                                                                              monkeypatch):
    monkeypatch.setattr(transactions, "EDIT_WAIT_SECONDS", 0.3)
    pause = hooks.after_merge = Pause()
    thread, results = sync_in_thread(sync, posting)
    assert pause.reached.wait(30)
    pending_id, _ = hooks.pairs[0]

    with pytest.raises(EditError, match="A sync is saving this transaction"):
        transactions.set_note(engine, pending_id, "too soon")
    pause.go.set()
    thread.join(30)

    assert results[0].outcome == "success"
    assert merged_rows(engine)[pending_id].note is None and audit(engine, "set_note") == []
