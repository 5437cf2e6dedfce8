"""The JSON API under ``/api/v1``: errors with stable codes, never a 500 for bad input."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
    TimeoutError,
)
from werkzeug.exceptions import HTTPException

from server.core.db import db
from server.core.errors import InvalidInput, NotFound, YihaoError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_input",
    429: "too_many_requests",
}


#: Endpoints anyone may call; every other route under /api/v1 needs an actor. Logging out
#: is idempotent: a phone whose session already expired gets no error for a no-op.
PUBLIC_ENDPOINTS = frozenset({"api.login", "api.logout", "api.health", "api.openapi"})


@bp.before_request
def _require_actor() -> None:
    """Protected by default: 401 before a route parses, reads or reveals anything."""
    if request.endpoint not in PUBLIC_ENDPOINTS:
        from server.auth import current_actor

        current_actor()


@bp.before_request
def _refuse_nul() -> None:
    """PostgreSQL cannot compare text holding NUL: such a path names nothing and such a
    filter is bad input, on every database alike."""
    if "\x00" in request.path:
        raise NotFound("not found", code="not_found")
    if any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise InvalidInput("query parameters cannot contain NUL characters")


@bp.errorhandler(YihaoError)
def _yihao_error(exc: YihaoError):  # type: ignore[no-untyped-def]
    db.session.rollback()
    return jsonify(exc.to_dict()), exc.status


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    """JSON for every HTTP error under /api/ (routing 404s and 405s included)."""
    if not request.path.startswith("/api/"):
        return exc
    db.session.rollback()
    status = exc.code or 500
    code = HTTP_CODES.get(status, "http_error")
    return jsonify({"code": code, "message": exc.description or exc.name}), status


#: PostgreSQL SQLSTATEs that mean "another transaction got there first": unique or exclusion
#: violation, serialization failure, deadlock, lock not available.
RACE_STATES = frozenset({"23505", "23P01", "40001", "40P01", "55P03"})


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


@bp.errorhandler(SQLAlchemyError)
def _db_error(exc: SQLAlchemyError):  # type: ignore[no-untyped-def]
    """Map what the database says to what the client should do.

    A lost race (unique key, lock, deadlock, serialization; SQLite's "database is locked")
    is 409 ``concurrent_update``: reload and decide. A database that cannot be reached is 503:
    the phone's queue retries. A value the database refuses is 422. Anything else is a bug
    and stays a logged 500 — answering it as a conflict would hide it.
    """
    db.session.rollback()
    if isinstance(exc, DataError):  # a value the database refuses (too big, unstorable)
        log.warning("database refused a value, answered as 422: %s", exc)
        return jsonify({"code": "invalid_input",
                        "message": "a value in the request cannot be stored"}), 422
    state = _sqlstate(exc) if isinstance(exc, DBAPIError) else None
    text = str(getattr(exc, "orig", exc)).lower()
    if state in RACE_STATES or (isinstance(exc, IntegrityError) and state is None) \
            or "database is locked" in text:
        log.warning("database race answered as 409: %s", exc)
        return jsonify({"code": "concurrent_update",
                        "message": "another change got there first; reload and try again"}), 409
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | TimeoutError):
        log.warning("database unavailable, answered as 503: %s", exc)
        response = jsonify({"code": "database_unavailable",
                            "message": "the database is not answering; retry shortly"})
        response.headers["Retry-After"] = "5"
        return response, 503
    return _unexpected(exc)


@bp.app_errorhandler(Exception)
def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    db.session.rollback()
    log.exception("unexpected error")
    if request.path.startswith("/api/"):
        return jsonify({"code": "internal_error", "message": "unexpected server error"}), 500
    return "服务器内部错误 / Internal server error", 500


@bp.after_request
def _echo_idempotency_key(response):  # type: ignore[no-untyped-def]
    """Name the request's ``Idempotency-Key`` in the answer (errors included).

    The phone's offline queue drops an item only on a 2xx that names its key: a captive
    portal's or a proxy's 200 never does, so it cannot be taken for our server's yes.
    """
    key = request.headers.get("Idempotency-Key", "").strip()
    if key and len(key) <= 128 and key.isprintable() and key.isascii():
        response.headers["Idempotency-Key"] = key
        response.vary.add("Idempotency-Key")
    return response


from . import devices, escalations, meta, photos, reference, tickets  # noqa: E402,F401

# Smart routing (issue 6): categories, corrections, duplicates, emergency hand-offs:
from . import routing as _routing_routes  # noqa: E402,F401

# The map screen's routes (grid load, ticket points, drawing a grid):
from .map import openapi_paths as _map_paths  # noqa: E402,F401

# Web Push subscriptions and the live stream of notices (issue 4 item 4):
from .push import subscribe as _push_routes  # noqa: E402,F401
from .stream import event_stream as _stream_routes  # noqa: E402,F401
