"""Many rows in one statement: set-based writes (the deadline scan, the recomputation, a
batch of ticket actions).

On PostgreSQL the rows travel as one array per column and are joined or selected from
``unnest(…)``: a handful of parameters whatever the number of rows. The alternative — an
``INSERT … VALUES`` with thousands of bound parameters, as an executemany renders — makes
the driver parse a statement of tens of kilobytes every time (psycopg caches the parse of
short statements only), which cost more than the database's work (``bench/escalation.py``).
SQLite runs in process and has no arrays: there it is a plain executemany.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from server.core.db import db


def _array_type(column: sa.Column[Any]) -> str:
    return f"{column.type.compile(dialect=db.engine.dialect)}[]"


def _is_json(column: sa.Column[Any]) -> bool:
    return isinstance(column.type.dialect_impl(db.engine.dialect), sa.JSON)


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
    columns = [table.c[n] for n in names]
    arrays = ", ".join(f"CAST(:{n} AS {_array_type(c)})" for n, c in zip(names, columns,
                                                                       strict=True))
    values: dict[str, list[Any]] = {}
    for name, column in zip(names, columns, strict=True):
        if _is_json(column):
            values[name] = [None if r[name] is None else json.dumps(r[name], ensure_ascii=False)
                            for r in rows]
        else:
            values[name] = [r[name] for r in rows]
    statement = (f"INSERT INTO {table.name} ({', '.join(names)}) "
                 f"SELECT * FROM unnest({arrays})")
    if returning:
        statement += f" RETURNING {', '.join(returning)}"
        return list(db.session.execute(sa.text(statement), values).all())
    db.session.execute(sa.text(statement), values)
    return []


def bulk_update(table: sa.Table, key: str, key_param: str, rows: list[dict[str, Any]],
                sets: dict[str, tuple[str, Any]]) -> None:
    """``UPDATE table SET column = value … WHERE key = …`` for many rows, set-based.

    PostgreSQL: one ``UPDATE … FROM unnest(arrays)`` per 10,000 rows — a join against
    arrays passed as a handful of parameters, not a statement per row. SQLite, in process:
    an executemany.
    """
    if not rows:
        return
    if db.engine.dialect.name == "postgresql":
        dialect = db.engine.dialect
        columns = [(key, key_param, table.c[key].type),
                   *((column, param, type_) for column, (param, type_) in sets.items())]
        arrays = ", ".join(f"CAST(:{param} AS {type_.compile(dialect=dialect)}[])"
                           for _column, param, type_ in columns)
        names = ", ".join(param for _column, param, _type in columns)
        assignments = ", ".join(f"{column} = v.{param}" for column, (param, _t) in sets.items())
        statement = sa.text(
            f"UPDATE {table.name} SET {assignments} FROM unnest({arrays}) AS v({names}) "
            f"WHERE {table.name}.{key} = v.{key_param}")
        for start in range(0, len(rows), 10_000):
            chunk = rows[start:start + 10_000]
            db.session.execute(statement, {param: [r[param] for r in chunk]
                                           for _column, param, _type in columns})
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
