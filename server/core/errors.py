"""Errors with a stable ``code`` that the API turns into JSON.

Codes are part of the API contract: clients (the phone's offline queue above all) decide
what to do from the code and the HTTP status, never from the message.
"""

from __future__ import annotations

from typing import Any


class YihaoError(Exception):
    """Base for every error a user or client can cause."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(YihaoError):
    """422: the request is well-formed HTTP but its content is wrong."""

    status = 422
    code = "invalid_input"


class NotAuthenticated(YihaoError):
    status = 401
    code = "not_authenticated"


class Forbidden(YihaoError):
    """403: the actor can see the object but may not do this to it."""

    status = 403
    code = "forbidden"


class NotFound(YihaoError):
    """404: absent, or outside the actor's jurisdiction (we never say which)."""

    status = 404
    code = "not_found"


class Conflict(YihaoError):
    """409: wrong state, a stale ``base_version`` or a lost race; nothing was changed."""

    status = 409
    code = "conflict"


class Unavailable(YihaoError):
    """503: try again shortly (the phone's queue retries 5xx; a 4xx would park the item)."""

    status = 503
    code = "unavailable"


class PayloadTooLarge(YihaoError):
    status = 413
    code = "payload_too_large"
