"""Session (log in / out / who am I), health, and the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from flask import jsonify, session
from flask_login import logout_user
from pydantic import BaseModel, StringConstraints

from hierarchy.models import User
from server.auth import csrf_token, current_actor, log_in
from server.core.db import db
from server.core.errors import NotAuthenticated

from . import bp
from .common import json_body, parse
from .openapi import build_openapi


class LoginBody(BaseModel):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    #: The phone app asks for a session that outlives the browser (its offline queue must
    #: still be sendable after the phone restarts); desktop logins end with the browser.
    remember: bool = False


def user_dict(user: User) -> dict[str, Any]:
    return {
        "username": user.username, "display_name": user.display_name, "role": str(user.role),
        "unit": user.unit.code, "unit_name": user.unit.name, "level": str(user.unit.level),
    }


@bp.post("/session")
def login():  # type: ignore[no-untyped-def]
    body = parse(LoginBody, json_body())
    user = db.session.execute(
        sa.select(User).where(User.username == body.username)
    ).scalar_one_or_none()
    if user is None or not user.active or user.is_system or not user.check_password(body.password):
        raise NotAuthenticated("wrong username or password", code="login_failed")
    log_in(user)
    session.permanent = body.remember
    db.session.commit()
    return jsonify({"user": user_dict(user), "csrf_token": session["csrf"]})


@bp.delete("/session")
def logout():  # type: ignore[no-untyped-def]
    logout_user()
    session.clear()
    return jsonify({"ok": True})


@bp.get("/me")
def me():  # type: ignore[no-untyped-def]
    user = current_actor()
    return jsonify({"user": user_dict(user), "csrf_token": csrf_token()})


@bp.get("/health")
def health():  # type: ignore[no-untyped-def]
    db.session.execute(sa.text("SELECT 1"))
    return jsonify({"ok": True})


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(build_openapi())
