"""Run side effects only after the transaction that caused them has committed.

Pushes, webhooks and RQ jobs sent before the commit can race the commit (a worker looks
for a row that does not exist yet) or announce something a rollback then undoes. Operations
call :func:`on_commit`; the callbacks run once the session commits and are dropped on
rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_KEY = "yihao_after_commit"


def on_commit(callback: Callable[[], None], session: Session | None = None) -> None:
    """Queue ``callback`` to run after the current transaction commits."""
    from .db import db

    target = session if session is not None else db.session()
    target.info.setdefault(_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    callbacks = session.info.pop(_KEY, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a failed side effect must never undo a committed change
            log.exception("after-commit callback %r failed", callback)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)
