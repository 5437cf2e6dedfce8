"""Events appended set-based (``append_events``: the deadline scan's groups) chain exactly as
those appended one by one, mix with them in one transaction, and cost the same few
statements whatever the group's size."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from flask import Flask

from server.core.audit import (
    GENESIS,
    Event,
    EventHead,
    append_event,
    append_events,
    compute_hash,
    verify_chain,
)
from server.core.db import db, utcnow
from tests.conftest import World, count_queries
from tests.test_escalation_support import accept_at, act_at, scan, seed, sh


def test_batch_and_single_events_form_one_verified_chain(app: Flask) -> None:
    with app.app_context():
        at = utcnow()
        single = append_event("unit:a", "unit.create", actor=None, data={"n": 0}, at=at)
        # "unit:a" has a head pending in the session; "unit:b" has none yet; "unit:a" twice.
        batch = append_events([("unit:a", "unit.rename", {"n": 1}, None),
                               ("unit:b", "unit.create", {"文": "名"}, None),
                               ("unit:a", "unit.rename", {"n": 2, "at": at}, None)],
                              actor=None, at=at + timedelta(microseconds=1))
        assert [(e.stream, e.seq) for e in batch] == [("unit:a", 2), ("unit:b", 1), ("unit:a", 3)]
        assert batch[0].prev_hash == single.hash and batch[2].prev_hash == batch[0].hash
        assert batch[1].prev_hash == GENESIS
        # Persistent, as if loaded: nothing left to write, ids those of the rows.
        assert not db.session.new and not db.session.dirty
        assert all(sa.inspect(e).persistent for e in batch)
        # Single appends after the batch read the heads the batch moved.
        after_a = append_event("unit:a", "unit.rename", actor=None, data={"n": 3})
        after_b = append_event("unit:b", "unit.rename", actor=None, data={})
        assert (after_a.seq, after_a.prev_hash) == (4, batch[2].hash)
        assert (after_b.seq, after_b.prev_hash) == (2, batch[1].hash)
        db.session.commit()
        ids = {(e.stream, e.seq): e.id for e in batch}
        db.session.remove()
        stored = {(e.stream, e.seq): e for e in db.session.execute(sa.select(Event)).scalars()}
        for (stream, seq), event_id in ids.items():
            assert stored[stream, seq].id == event_id
            assert compute_hash(stored[stream, seq]) == stored[stream, seq].hash
        assert stored["unit:a", 3].data == {"n": 2, "at": str(at)}
        heads = {h.stream: (h.seq, h.hash) for h in db.session.execute(
            sa.select(EventHead)).scalars()}
        assert heads == {"unit:a": (4, stored["unit:a", 4].hash),
                         "unit:b": (2, stored["unit:b", 2].hash)}
        db.session.remove()
        assert list(verify_chain(anchors=False)) == []


def _statements(app: Flask, streams: list[str]) -> list[str]:
    with count_queries(app) as seen, app.app_context():
        append_events([(s, "unit.rename", {"s": s}, None) for s in streams],
                      actor=None, at=utcnow())
        db.session.commit()
    return seen


def test_append_events_statements_do_not_grow_with_the_batch(app: Flask) -> None:
    new = _statements(app, ["unit:x"]), _statements(app, [f"unit:n{i}" for i in range(40)])
    assert len(new[0]) == len(new[1])
    moved = _statements(app, ["unit:x"]), _statements(app, [f"unit:n{i}" for i in range(40)])
    assert len(moved[0]) == len(moved[1])
    with app.app_context():
        assert list(verify_chain(anchors=False)) == []


def test_a_scan_group_runs_the_same_statements_for_2_tickets_as_for_10(
        app: Flask, world: World) -> None:
    """Groups of 10, 10 and 2: the last two groups cost the same statements."""
    seed(app)
    at = sh(2025, 3, 3, 10)
    numbers = [accept_at(app, world, at) for _ in range(22)]
    for number in numbers:
        act_at(app, world, number, "hotline", "dispatch", {"grid": "G-HHW-01"},
               at + timedelta(minutes=5))
    marks: dict[int, int] = {}
    with count_queries(app) as seen:
        report = scan(app, sh(2025, 3, 4, 10, 6), commit_every=10,
                      after_each=lambda done: marks.setdefault(done, len(seen)))
    assert report.escalated == 22
    assert marks[22] - marks[20] == marks[20] - marks[10] > 0
    with app.app_context():
        assert list(verify_chain(anchors=False)) == []
