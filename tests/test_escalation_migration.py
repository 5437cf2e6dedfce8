"""Migration 0003 on a database that already has open tickets: seeded calendar and rules,
and clocks matching the tickets' displayed deadlines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import app_at_revision, is_pg, migrate_to


@pytest.mark.skipif(is_pg(), reason="builds its own SQLite file from revision 0002")
def test_upgrade_backfills_open_tickets(tmp_path: Path) -> None:
    from server.core.db import db

    now = datetime(2025, 3, 3, 2, 0)
    app = app_at_revision(tmp_path, "0002", now)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO units (id, code, name, level, path, active, created_at) VALUES "
                "(2, '210102001', '浑河湾街道', 'township', '/1/2/', 1, :now)"), {"now": now})
            for tid, status, urgency in ((1, "assigned", "normal"), (2, "in_progress", "urgent"),
                                         (3, "closed", "normal")):
                conn.execute(sa.text(
                    "INSERT INTO tickets (id, number, source, type, title, content, urgency, "
                    "status, unit_id, accepting_unit_id, created_by_id, reporter_anonymous, "
                    "accepted_at, response_due, handling_due, deadline_provisional, "
                    "extension_count, urge_count, reopen_count, version, updated_at) VALUES "
                    "(:id, :number, 'hotline', 'complaint', 't', 'c', :urgency, :status, 2, 1, 1,"
                    " 1, :now, '2025-03-04 02:00:00.000000', '2025-03-10 02:00:00.000000', 0, 0,"
                    " 0, 0, 1, :now)"),
                    {"id": tid, "number": f"YH{tid}", "urgency": urgency, "status": status,
                     "now": now})
        migrate_to()
        with db.engine.connect() as conn:
            clocks = conn.execute(sa.text(
                "SELECT ticket_id, kind, rule_code, due_at, step, next_fire_at FROM clocks "
                "ORDER BY ticket_id, kind")).all()
            rules = conn.execute(sa.text("SELECT count(*) FROM sla_rules")).scalar_one()
            years = conn.execute(sa.text("SELECT min(year), max(year) FROM calendar_years")).one()
        db.engine.dispose()
    assert [(c.ticket_id, c.kind, c.rule_code, c.step) for c in clocks] == [
        (1, "reply", "default.reply", 1), (1, "sign", "default.sign", 1),
        (2, "reply", "default.reply", 1)]  # in progress: signed already; closed: nothing
    assert all(str(c.due_at) == str(c.next_fire_at) for c in clocks)
    assert rules == 9 and years[0] == 2004 and years[1] >= 2026
    assert datetime.fromisoformat(str(clocks[0].due_at)).replace(tzinfo=UTC) == datetime(
        2025, 3, 10, 2, 0, tzinfo=UTC)
