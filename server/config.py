"""Configuration from the environment, with secrets generated into ``YIHAO_HOME``.

Nothing secret lives in the repository: on first run the secret key, the personal-data key,
the audit key and the VAPID keys are generated into ``YIHAO_HOME/secrets.json`` (mode 0600)
unless the environment provides them.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.core.crypto import new_data_key


def yihao_home() -> Path:
    home = Path(os.environ.get("YIHAO_HOME", "./var")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def new_vapid_private_key() -> str:
    """A fresh VAPID key: P-256, as base64url of the raw 32-byte private scalar (the form
    ``VAPID_PRIVATE_KEY`` takes, as other Web Push servers print it)."""
    import base64

    from cryptography.hazmat.primitives.asymmetric import ec

    value = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).decode().rstrip("=")


def load_or_create_secrets(home: Path) -> dict[str, str]:
    """The generated secrets of ``home`` (created on first use)."""
    return _load_or_create_secrets(home)


def _load_or_create_secrets(home: Path) -> dict[str, str]:
    path = home / "secrets.json"
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
    changed = False
    for name, make in (
        ("secret_key", lambda: secrets.token_urlsafe(48)),
        ("data_key", new_data_key),
        ("audit_key", lambda: secrets.token_urlsafe(48)),
        ("vapid_private_key", new_vapid_private_key),
    ):
        if not data.get(name):
            data[name] = make()
            changed = True
    if changed:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    return data


@dataclass
class Settings:
    home: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    data_key: str
    audit_key: str
    #: The map's base layer: a tile URL template ({z}/{x}/{y}) on an intranet server that
    #: hosts tiles; empty (the default) shows grids and boundaries on a plain background,
    #: so nothing is ever fetched from the internet.
    map_tiles: str = ""
    map_tiles_attribution: str = ""
    #: Send a ticket matched to a grid straight to its on-duty worker on accept (see
    #: ``server.tickets.operations.auto_dispatch``); off where a province dispatches level by level.
    auto_dispatch: bool = True

    def flask_config(self) -> dict[str, Any]:
        engine_options: dict[str, Any] = {"pool_pre_ping": True}
        if self.database_url.startswith("sqlite"):
            engine_options = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "YIHAO_HOME": str(self.home),
            "YIHAO_PHOTO_DIR": str(self.home / "photos"),
            "YIHAO_REDIS_URL": self.redis_url,
            "MAX_CONTENT_LENGTH": 12 * 1024 * 1024,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "JSON_AS_ASCII": False,
            "YIHAO_MAP_TILES": self.map_tiles,
            "YIHAO_MAP_TILES_ATTRIBUTION": self.map_tiles_attribution,
            "YIHAO_AUTO_DISPATCH": self.auto_dispatch,
        }


def load_settings() -> Settings:
    home = yihao_home()
    stored = _load_or_create_secrets(home)
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{home / 'yihao.sqlite3'}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return Settings(
        home=home,
        database_url=url,
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=os.environ.get("YIHAO_SECRET_KEY") or stored["secret_key"],
        data_key=os.environ.get("YIHAO_DATA_KEY") or stored["data_key"],
        audit_key=os.environ.get("YIHAO_AUDIT_KEY") or stored["audit_key"],
        map_tiles=os.environ.get("YIHAO_MAP_TILES", "").strip(),
        map_tiles_attribution=os.environ.get("YIHAO_MAP_TILES_ATTRIBUTION", "").strip(),
        auto_dispatch=os.environ.get("YIHAO_AUTO_DISPATCH", "1").strip().lower()
        not in ("0", "false", "no", "off"),
    )
