"""Many rows in one statement: set-based writes (the deadline scan, the recomputation, a
batch of ticket actions).

On PostgreSQL the rows travel as one JSON document, a single parameter, expanded in SQL by
``json_to_recordset`` and inserted from or joined against. The alternative — an
``INSERT … VALUES`` with thousands of bound parameters, as an executemany renders — makes
the driver parse a statement of tens of kilobytes every time (psycopg caches the parse of
short statements only), which cost more than the database's work (``bench/escalation.py``).
One JSON document rather than one array per column: psycopg renders a list as an array
literal in pure Python, value by value (a thousand JSON payloads cost ≈34 ms that way;
``json.dumps`` of the whole batch, in C, ≈12 ms including PostgreSQL's expansion).
SQLite runs in process and has no arrays: there it is a plain executemany.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from server.core.db import db


def _sql_type(type_: sa.types.TypeEngine[Any]) -> str:
    return type_.compile(dialect=db.engine.dialect)


def _is_time(type_: sa.types.TypeEngine[Any]) -> bool:
    impl = type_.dialect_impl(db.engine.dialect)
    if isinstance(impl, sa.TypeDecorator):
        impl = impl.impl_instance
    return isinstance(impl, sa.DateTime | sa.Date)


def _quote(name: str) -> str:
    return db.engine.dialect.identifier_preparer.quote(name)


def recordset(names: Sequence[str], types: Sequence[sa.types.TypeEngine[Any]]) -> str:
    """``json_to_recordset(:rows) AS v(name type, …)``: the rows of the ``rows`` parameter
    as a table, each field typed as its column."""
    fields = ", ".join(f"{_quote(n)} {_sql_type(t)}" for n, t in zip(names, types, strict=True))
    return f"json_to_recordset(CAST(:rows AS JSON)) AS v({fields})"


def rows_document(rows: Sequence[dict[str, Any]], names: Sequence[str],
                  types: Sequence[sa.types.TypeEngine[Any]]) -> str:
    """The rows (only ``names``) as one JSON array of objects. Times are written as ISO
    8601 with their offset and microseconds, which ``timestamptz`` reads back exactly; JSON
    columns' values are nested as they are (a JSON ``null`` becomes SQL NULL, as ``None``
    did); anything else JSON cannot say is refused, as before."""
    times = [n for n, t in zip(names, types, strict=True) if _is_time(t)]
    projected = [{n: r[n] for n in names} for r in rows]  # a missing key fails, as before
    for row in projected:
        for n in times:
            value = row[n]
            if isinstance(value, date):
                row[n] = value.isoformat()
    return json.dumps(projected, ensure_ascii=False, separators=(",", ":"))


def bulk_insert(table: sa.Table, rows: list[dict[str, Any]],
                returning: Sequence[str] = ()) -> list[sa.Row[Any]]:
    """``INSERT INTO table …`` for many rows (dicts with the same keys), in one statement on
    PostgreSQL; returns the ``returning`` columns of the new rows — **in no promised order**,
    so return a key to match them by."""
    if not rows:
        return []
    if db.engine.dialect.name != "postgresql":
        statement = sa.insert(table)
        if returning:
            return list(db.session.execute(
                statement.returning(*(table.c[n] for n in returning)), rows).all())
        db.session.execute(statement, rows)
        return []
    names = list(rows[0])
    types = [table.c[n].type for n in names]
    columns = ", ".join(_quote(n) for n in names)
    statement = (f"INSERT INTO {table.name} ({columns}) "
                 f"SELECT {', '.join(f'v.{_quote(n)}' for n in names)} "
                 f"FROM {recordset(names, types)}")
    values = {"rows": rows_document(rows, names, types)}
    if returning:
        statement += f" RETURNING {', '.join(returning)}"
        return list(db.session.execute(sa.text(statement), values).all())
    db.session.execute(sa.text(statement), values)
    return []


def bulk_update(table: sa.Table, key: str, key_param: str, rows: list[dict[str, Any]],
                sets: dict[str, tuple[str, Any]]) -> None:
    """``UPDATE table SET column = value … WHERE key = …`` for many rows, set-based.

    PostgreSQL: one ``UPDATE … FROM json_to_recordset(…)`` per 10,000 rows — a join against
    the rows passed as one parameter, not a statement per row. SQLite, in process: an
    executemany.
    """
    if not rows:
        return
    if db.engine.dialect.name == "postgresql":
        names = [key_param, *(param for param, _type in sets.values())]
        types = [table.c[key].type, *(type_ for _param, type_ in sets.values())]
        assignments = ", ".join(f"{_quote(column)} = v.{_quote(param)}"
                                for column, (param, _t) in sets.items())
        statement = sa.text(
            f"UPDATE {table.name} SET {assignments} FROM {recordset(names, types)} "
            f"WHERE {table.name}.{_quote(key)} = v.{_quote(key_param)}")
        for start in range(0, len(rows), 10_000):
            chunk = rows[start:start + 10_000]
            db.session.execute(statement, {"rows": rows_document(chunk, names, types)})
        return
    statement = sa.update(table).where(table.c[key] == sa.bindparam("b_" + key_param)).values(
        {column: sa.bindparam("b_" + param, type_=type_)
         for column, (param, type_) in sets.items()})
    names = [key_param, *(param for param, _t in sets.values())]
    db.session.execute(statement, [{"b_" + n: r[n] for n in names} for r in rows])


def ids_in(column: sa.ColumnElement[Any], ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(:array)``, one parameter whatever
    the number of ids (an expanded ``IN`` is a statement the driver parses anew each time)."""
    if db.engine.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids),
                                              type_=sa.ARRAY(column.type)))
    return column.in_(list(ids))
