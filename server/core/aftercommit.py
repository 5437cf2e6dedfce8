"""Run side effects only after the transaction that caused them has committed.

Pushes, webhooks and RQ jobs sent before the commit can race the commit (a worker looks
for a row that does not exist yet) or announce something a rollback then undoes. Operations
call :func:`on_commit`; the callbacks run once the session commits and are dropped on
rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_KEY = "yihao_after_commit"
#: ``session.info`` keys that hold per-transaction state (see :func:`transaction_local`).
_LOCAL_KEYS: set[str] = set()
T = TypeVar("T")


def on_commit(callback: Callable[[], None], session: Session | None = None) -> None:
    """Queue ``callback`` to run after the current transaction commits."""
    from .db import db

    target = session if session is not None else db.session()
    target.info.setdefault(_KEY, []).append(callback)


def transaction_local(key: str, factory: Callable[[], T], session: Any = None) -> T:
    """What the current transaction keeps under ``key`` (made by ``factory`` on first use),
    dropped when it commits or rolls back — e.g. the new ticket's clocks, which later
    actions in the same transaction use instead of reading them back."""
    from .db import db

    target = session if session is not None else db.session()
    _LOCAL_KEYS.add(key)
    if key not in target.info:
        target.info[key] = factory()
    return target.info[key]  # type: ignore[no-any-return]


def in_session(obj: Any) -> bool:
    """Whether an object kept in transaction-local state still belongs to the transaction
    (a rolled-back savepoint takes the objects it added out of the session)."""
    from sqlalchemy import inspect

    state = inspect(obj)
    return bool(state.pending or state.persistent)


def _drop_locals(session: Session) -> None:
    for key in _LOCAL_KEYS:
        session.info.pop(key, None)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_KEY, [])
    _drop_locals(session)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed side effect must never undo a committed change
            log.exception("after-commit callback %r failed", callback)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
    _drop_locals(session)
