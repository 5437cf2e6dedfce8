"""The migrations build exactly the schema the models declare.

Tests and production both get their schema from the migrations (``run_migrations``), so a
model that declares an index the migrations never made — or keeps one a migration dropped —
would be believed by everyone reading the code and true nowhere. Alembic's own comparison
of the migrated database with the models must find nothing but the few differences each
database is known to have, named here with their reasons.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from tests.conftest import app_at_revision, is_pg, migrate_to

#: (operation, name) that differ on one database on purpose.
KNOWN = {
    "sqlite": {
        # Geometry on SQLite is WKB in a plain column; the spatial index lives in PostGIS
        # only (SQLite matches with Shapely's STRtree in memory).
        ("add_index", "ix_grids_geom"), ("add_index", "ix_unit_boundaries_geom"),
        # SQLite cannot add a foreign key to an existing table without rebuilding it (0004).
        ("add_fk", "fk_tickets_duplicate_of_id_tickets"),
    },
    "postgresql": {
        ("remove_table", "spatial_ref_sys"),  # PostGIS's own table
        ("add_index", "ix_grids_bbox"),  # PostGIS uses the GiST index on geom instead (0002)
    },
}


def _name(diff: Any) -> tuple[str, str]:
    op = diff[0]
    if op.startswith("modify_"):  # (op, schema, table, column, …)
        return op, f"{diff[2]}.{diff[3]}"
    return op, str(getattr(diff[1], "name", diff[1]))


def test_the_migrated_database_matches_the_models(app: Flask) -> None:
    from server.core.db import db

    with app.app_context(), db.engine.connect() as conn:
        dialect = conn.dialect.name
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}),
                                 db.metadata)
    found = [_name(d[0] if isinstance(d, list) else d) for d in diffs]
    unexpected = [d for d in found if d not in KNOWN[dialect]]
    assert unexpected == [], unexpected


@pytest.mark.skipif(is_pg(), reason="builds its own SQLite file from revision 0011")
def test_migration_0012_copies_open_clocks_ticket_numbers_and_goes_back(tmp_path: Path) -> None:
    """Open clocks get their ticket's number (the scan names tickets from it); stopped ones,
    which never fire again, are left null; going back drops the column."""
    from server.core.db import db

    now = datetime(2025, 3, 3, 2, 0)
    app = app_at_revision(tmp_path, "0011", now)
    with app.app_context():
        with db.engine.begin() as conn:
            for tid in (1, 2):
                conn.execute(sa.text(
                    "INSERT INTO tickets (id, number, source, type, title, content, urgency, "
                    "status, unit_id, accepting_unit_id, created_by_id, reporter_anonymous, "
                    "accepted_at, deadline_provisional, extension_count, urge_count, "
                    "reopen_count, version, updated_at) VALUES (:id, :number, 'hotline', "
                    "'complaint', 't', 'c', 'normal', 'dispatched', 1, 1, 1, 1, :now, 0, 0, 0, "
                    "0, 1, :now)"), {"id": tid, "number": f"YH{tid}", "now": now})
                conn.execute(sa.text(
                    "INSERT INTO clocks (id, ticket_id, cycle, kind, seq, calendar_version, "
                    "ticket_type, urgency, level, scope_path, unit_id, unit_path, started_at, "
                    "stopped_at, extended_days, suspended_seconds, excused, provisional, step) "
                    "VALUES (:id, :id, 0, 'sign', 1, 1, 'complaint', 'normal', 'province', "
                    "'/1/', 1, '/1/', :now, :stopped, 0, 0, 0, 0, 0)"),
                    {"id": tid, "now": now, "stopped": now if tid == 2 else None})
        migrate_to("0012")
        with db.engine.connect() as conn:
            copied = conn.execute(sa.text(
                "SELECT id, ticket_number FROM clocks ORDER BY id")).all()
        migrate_to("0011", down=True)
        with db.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("clocks")}
        db.engine.dispose()
    assert [tuple(r) for r in copied] == [(1, "YH1"), (2, None)]
    assert "ticket_number" not in columns
