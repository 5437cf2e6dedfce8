"""The application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_migrate import Migrate
from werkzeug.routing import IntegerConverter

from server.core import audit, crypto
from server.core.db import db

from .config import Settings, load_settings

migrate = Migrate()


class Int64Converter(IntegerConverter):
    """``<int:…>`` capped at what a BIGINT id can hold: /escalations/99999999999999999999
    is a 404 like any unknown id, not an overflow in the database driver (a 500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.from_mapping(settings.flask_config())
    app.config.update(overrides)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["int"] = Int64Converter  # before any route is registered
    crypto.configure(settings.data_key)
    audit.configure(settings.audit_key)

    _import_models()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(_migrations_dir()), render_as_batch=True,
                     compare_type=True)

    from . import auth, jobs
    from .api import bp as api_bp
    from .escalation_pages import bp as board_bp
    from .pages import bp as pages_bp

    auth.init_app(app)
    jobs.init_app(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(board_bp)

    # The steering desk and the map (issue 4 item 5, issue 3 item 7).
    from .map_pages import bp as map_bp
    from .station_pages import bp as station_bp

    app.register_blueprint(station_bp)
    app.register_blueprint(map_bp)

    import pwa  # the grid workers' phone app at /app/ (issue 4)
    import pwa.pages

    app.register_blueprint(pwa.bp)
    app.register_blueprint(pwa.pages.bp)

    # Web Push: the notification channel and its outbox handler (issue 4 item 4).
    from escalation import push as web_push

    web_push.init_app(app)
    return app


def _migrations_dir() -> Any:
    from pathlib import Path

    return Path(__file__).parent / "migrations"


def _import_models() -> None:
    """Import every model module so metadata (and Alembic) see all tables."""
    import escalation.push  # noqa: F401
    import grids.models  # noqa: F401
    import hierarchy.models  # noqa: F401
    import pwa.models  # noqa: F401
    import routing.models  # noqa: F401  (smart routing, issue 6)
    import server.core.audit
    import server.core.idempotency
    import server.core.outbox
    import server.tickets.models
    import server.webhooks  # noqa: F401
