"""The JSON API under ``/api/v1``: errors with stable codes, never a 500 for bad input."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import DataError, SQLAlchemyError
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


@bp.errorhandler(SQLAlchemyError)
def _db_error(exc: SQLAlchemyError):  # type: ignore[no-untyped-def]
    db.session.rollback()
    if isinstance(exc, DataError):  # a value the database refuses (too big, unstorable)
        log.warning("database refused a value, answered as 422: %s", exc)
        return jsonify({"code": "invalid_input",
                        "message": "a value in the request cannot be stored"}), 422
    log.warning("database error answered as 409: %s", exc)
    return jsonify({"code": "concurrent_update",
                    "message": "another change got there first; reload and try again"}), 409


@bp.app_errorhandler(Exception)
def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    db.session.rollback()
    log.exception("unexpected error")
    if request.path.startswith("/api/"):
        return jsonify({"code": "internal_error", "message": "unexpected server error"}), 500
    return "服务器内部错误 / Internal server error", 500


from . import escalations, meta, photos, reference, tickets  # noqa: E402,F401
