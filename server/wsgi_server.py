"""Run the app under gunicorn from Python (``yihao serve``, ``yihao demo``, the benchmark)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def run_gunicorn(app: Flask, host: str, port: int, workers: int = 3, threads: int = 4) -> None:
    from server.core.db import db

    with app.app_context():
        db.engine.dispose()  # never share a pooled connection across forked workers
    _Gunicorn(app, {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads,
        "worker_class": "gthread", "timeout": 60, "accesslog": None,
        "post_fork": _post_fork,
    }).run()


def _post_fork(_server: Any, _worker: Any) -> None:
    from server.core.db import db

    app = _server.app.application
    with app.app_context():
        db.engine.dispose(close=False)
