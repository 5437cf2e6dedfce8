"""Who is acting: Flask-Login sessions for people, bearer tokens for systems.

Routes are protected by default: every API route asks :func:`current_actor`, which raises
401 when nobody is logged in. Cookie-authenticated writes must carry the session's CSRF
token (header ``X-CSRF-Token`` or form field ``csrf_token``); bearer-token calls need none.
"""

from __future__ import annotations

import hmac
import secrets

import sqlalchemy as sa
from flask import Flask, g, request, session
from flask_login import LoginManager, current_user

from hierarchy.models import ApiToken, User
from hierarchy.tokens import TOKEN_PREFIX, hash_token
from server.core.db import db, utcnow
from server.core.errors import Forbidden, NotAuthenticated

login_manager = LoginManager()


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The session's user — unless the request carries a bearer token, which then decides
    alone (a system calling with a token must not turn into whoever's cookie is present)."""
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return None
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


@login_manager.request_loader
def _load_from_bearer(req) -> User | None:  # type: ignore[no-untyped-def]
    header = req.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    token = header[7:].strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(token),
                                  ApiToken.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None or not row.user.active:
        return None
    g.auth_via_token = True
    return row.user


def current_actor() -> User:
    if not current_user.is_authenticated:
        raise NotAuthenticated("log in or send a bearer token")
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return str(session["csrf"])


def check_csrf() -> None:
    """Cookie-authenticated writes need the session's CSRF token."""
    if g.get("auth_via_token"):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden("missing or wrong CSRF token; reload the page", code="csrf_failed")


def log_in(user: User) -> None:
    from flask_login import login_user

    login_user(user)
    user.last_login_at = utcnow()
    session["csrf"] = secrets.token_urlsafe(24)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "pages.login"
    login_manager.login_message = "请先登录"
