"""The migrations build exactly the schema the models declare.

Tests and production both get their schema from the migrations (``run_migrations``), so a
model that declares an index the migrations never made — or keeps one a migration dropped —
would be believed by everyone reading the code and true nowhere. Alembic's own comparison
of the migrated database with the models must find nothing but the few differences each
database is known to have, named here with their reasons.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

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
