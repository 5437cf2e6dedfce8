"""Jurisdiction: which units (and so which tickets) an actor may see.

A unit sees its own subtree and nothing else. Subtrees are ranges of materialised paths,
so "everything below the county" is one index range scan, not a recursive walk per request.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .models import Unit, User


def path_upper_bound(path: str) -> str:
    """The first path after every path that starts with ``path`` ('/1/5/' → '/1/50')."""
    return path[:-1] + chr(ord(path[-1]) + 1)


def in_subtree(path_column: sa.ColumnElement[str], root_path: str) -> ColumnElement[bool]:
    return sa.and_(path_column >= root_path, path_column < path_upper_bound(root_path))


def subtree_unit_ids(root: Unit) -> sa.Select[tuple[int]]:
    """A subquery of the ids of ``root`` and every unit below it."""
    return sa.select(Unit.id).where(in_subtree(Unit.path, root.path))


def ancestor_ids(unit: Unit) -> list[int]:
    """Ids from the root down to ``unit`` itself, read off its path (no query)."""
    return [int(part) for part in unit.path.strip("/").split("/") if part]


def can_see_unit(user: User, unit: Unit) -> bool:
    return unit.is_within(user.unit)


def is_strict_ancestor(ancestor: Unit, unit: Unit) -> bool:
    return unit.path != ancestor.path and unit.is_within(ancestor)


def visible_units(user: User) -> sa.Select[tuple[Unit]]:
    return sa.select(Unit).where(in_subtree(Unit.path, user.unit.path))
