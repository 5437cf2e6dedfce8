"""Set-based writes (``server.core.bulk``) store exactly what an ORM insert would.

On PostgreSQL the rows travel as one JSON document expanded by ``json_to_recordset``: times
must come back to the microsecond whatever their zone, JSON values and awkward strings
unchanged, big integers exact, ``None`` as NULL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from server.core.bulk import bulk_insert, bulk_update
from server.core.db import BigID, JSONType, UTCDateTime, db
from tests.conftest import is_pg

PROBE = sa.Table(
    "bulk_probe", sa.MetaData(),
    sa.Column("id", BigID, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=True),
    sa.Column("data", JSONType, nullable=True),
    sa.Column("name", sa.String(40), nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("n", sa.BigInteger, nullable=True),
    prefixes=["TEMPORARY"],
)
SHANGHAI = timezone(timedelta(hours=8))
ROWS: list[dict[str, Any]] = [
    {"id": 1, "at": datetime(2026, 12, 4, 9, 30, 1, 123456, tzinfo=UTC),
     "data": {"a": [1, 2.5, None], "文": "引号\"、反斜杠\\、换行\n", "t": True},
     "name": "O'Brien \"q\" \\ 网格", "flag": True, "n": 2**62 + 1},
    {"id": 2, "at": datetime(2026, 12, 4, 17, 30, 1, 1, tzinfo=SHANGHAI),
     "data": [], "name": "", "flag": False, "n": -1},
    {"id": 3, "at": datetime(2026, 12, 4, 0, 0, tzinfo=UTC), "data": "text",
     "name": "{\"not\": \"json\"}", "flag": None, "n": 0},
    {"id": 4, "at": None, "data": None, "name": None, "flag": None, "n": None},
]


def _read() -> dict[int, dict[str, Any]]:
    return {r.id: dict(r._mapping) for r in db.session.execute(sa.select(PROBE))}


def test_bulk_insert_and_update_round_trip_exactly(app: Flask) -> None:
    with app.app_context():
        PROBE.create(db.session.connection())
        returned = bulk_insert(PROBE, ROWS, returning=("id", "n"))
        assert sorted((r.id, r.n) for r in returned) == sorted((r["id"], r["n"]) for r in ROWS)
        stored = _read()
        for row in ROWS:
            assert stored[row["id"]] == row
            if row["at"] is not None:
                assert stored[row["id"]]["at"].tzinfo is not None
        later = datetime(2027, 1, 1, 23, 59, 59, 999999, tzinfo=SHANGHAI)
        bulk_update(PROBE, "id", "pid",
                    [{"pid": 1, "t": later, "d": {"k": "v"}, "extra": object()},
                     {"pid": 4, "t": None, "d": [1]}],
                    {"at": ("t", UTCDateTime()), "data": ("d", JSONType)})
        stored = _read()
        assert stored[1]["at"] == later and stored[1]["data"] == {"k": "v"}
        assert stored[4]["at"] is None and stored[4]["data"] == [1]
        assert stored[2] == ROWS[1]  # untouched
        db.session.rollback()


@pytest.mark.skipif(not is_pg(), reason="SQLite does not enforce string lengths")
def test_an_over_long_string_is_refused_not_cut(app: Flask) -> None:
    """PostgreSQL: as an ORM insert would (an array cast to ``VARCHAR(40)[]`` used to cut
    it silently — an event's stream cut so would no longer match its hash)."""
    with app.app_context():
        PROBE.create(db.session.connection())
        with pytest.raises(sa.exc.DataError):
            bulk_insert(PROBE, [{"id": 1, "name": "x" * 41}])
        db.session.rollback()
