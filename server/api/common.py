"""The request lifecycle every API write shares: who, what, once, one commit.

Controllers stay thin: they name the body model and an operation. This module parses and
validates the body (422), honours ``Idempotency-Key`` (a repeat returns the first answer and
changes nothing), commits once, and rolls back on any error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError

from hierarchy.models import User
from server.auth import check_csrf, current_actor
from server.core import idempotency as idem
from server.core.db import db
from server.core.errors import InvalidInput, Unavailable
from server.tickets.serialize import event_dict, ticket_dict

M = TypeVar("M", bound=BaseModel)
Result = tuple[dict[str, Any], int]


def unstorable_text(value: Any) -> str | None:
    """What no database column can keep (NUL, a lone surrogate), if ``value`` holds any.

    Iterative, so a deeply nested body cannot exhaust the stack here either.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "invalid Unicode (a lone surrogate)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def json_body() -> dict[str, Any]:
    if not request.data:
        return {}
    try:
        raw = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes; not a body we take
        raw = None
    if raw is None:
        raise InvalidInput("the body is not valid JSON", code="invalid_json")
    if not isinstance(raw, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_json")
    if problem := unstorable_text(raw):
        raise InvalidInput(f"the body contains {problem}", code="invalid_input")
    return raw


def parse(model: type[M], raw: dict[str, Any]) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or None, "message": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        first = errors[0]
        where = f"{first['field']}: " if first["field"] else ""
        raise InvalidInput(f"{where}{first['message']}", errors=errors) from None


def _replay(row: idem.IdempotencyKey, fingerprint: str) -> Response:
    if row.request_hash != fingerprint:
        raise InvalidInput(
            "this Idempotency-Key was used for a different request",
            code="idempotency_key_reused",
        )
    response = jsonify(row.response)
    response.status_code = row.status_code or 200
    response.headers["Idempotent-Replayed"] = "true"
    return response


def run_write(handler: Callable[[User], Result], fingerprint_body: Any) -> Response:
    """Run ``handler`` in one transaction, at most once per ``Idempotency-Key``."""
    actor = current_actor()
    check_csrf()
    key = request.headers.get("Idempotency-Key")
    row: idem.IdempotencyKey | None = None
    fingerprint = ""
    if key is not None:
        key = idem.validate_key(key)
        fingerprint = idem.request_fingerprint(request.method, request.path, fingerprint_body)
        actor_id = actor.id  # read before a rollback expires the actor
        try:
            row = idem.claim(actor_id, key, fingerprint)
        except (IntegrityError, OperationalError):
            row = None
        if row is None:
            # The key was used before, or a concurrent request with it committed first:
            # answer as it did.
            db.session.rollback()
            existing = idem.find(actor_id, key)
            if existing is None:  # the original still holds the key past the lock timeout
                raise Unavailable("the same request is being processed; retry shortly",
                                  code="request_in_progress", retry_after_s=2) from None
            replay = _replay(existing, fingerprint)
            db.session.rollback()
            return replay
    try:
        body, status = handler(actor)
        if row is not None:
            row.status_code = status
            row.response = body
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    response = jsonify(body)
    response.status_code = status
    return response


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value = int(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API gave out", code="invalid_cursor") from None
    if not 0 <= value < 2**63:  # ids are 64-bit; a bigger number overflows the driver
        raise InvalidInput("cursor is not one this API gave out", code="invalid_cursor")
    return value


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number", field=name) from None
    if not lo <= value <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}", field=name)
    return value


def ticket_answer(ticket: Any, actor: User, event: Any) -> Result:
    """What an action on a ticket answers: the ticket as the actor now sees it, and the event."""
    result = ticket_dict(ticket, actor, detail=True)
    result["event"] = event_dict(event)
    return result, 200
