"""``yihao demo``: seed once, then start the embedded Redis, an RQ worker and gunicorn.

On a machine with nothing but Python this gives a working system: a SQLite file in
``YIHAO_HOME``, a Redis the app starts itself, a worker process for background jobs, and the
web server — plus a printed list of logins, the shared demo password and an API token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import click
from flask import Flask

from server.core.db import db

from . import seed

#: The logins printed for each role, in the order of the tree.
LOGIN_ROLES: tuple[tuple[str, str], ...] = (
    ("管理员 admin", "admin"),
    ("省平台 province", "province"),
    ("市平台 city", "city"),
    ("县级督办 county", "county"),
    ("乡镇工作站 township", "township"),
)


def run_demo(app: Flask, *, host: str = "127.0.0.1", port: int = 8000, tickets: int = 3000,
             serve: bool = True) -> dict[str, Any]:
    """Seed the demo (first run only) and, with ``serve``, run it until interrupted.

    Returns what was printed (logins, token), which the tests read.
    """
    with app.app_context():
        info = seed_demo(app, tickets)
        base_url = f"http://{host}:{port}"
        print_logins(info, base_url)
        db.session.remove()
    if serve:
        serve_demo(app, host, port)
    return info


def seed_demo(app: Flask, tickets: int) -> dict[str, Any]:
    """Every seeding step, each idempotent; tickets only until the seed marker exists."""
    from server.cli import run_migrations

    started = time.monotonic()
    run_migrations()
    report = seed.seed_divisions()
    click.echo(f"行政区划: {report.created} created, {report.unchanged} unchanged")
    units_report = seed.seed_units()
    click.echo(f"村（社区）: {units_report.summary(False)}")
    villages = seed.demo_villages()
    units = seed.demo_units(villages)
    users = seed.seed_users(units)
    grids = seed.seed_grids(villages, units, users)
    token = seed.hotline_token(Path(app.config["YIHAO_HOME"]), users[seed.HOTLINE])
    created = 0
    if seed.is_seeded():
        click.echo("演示数据已存在 — demo data already seeded, skipping tickets")
    else:
        cast = seed.Cast(users=users, units=units, grids=grids, villages=villages)
        jobs_enabled = app.config.get("YIHAO_JOBS_ENABLED", True)
        # The seed's outbox messages stay queued in the database; no job per message now.
        app.config["YIHAO_JOBS_ENABLED"] = False
        try:
            plans = seed.pending_plans(tickets, cast)
            with click.progressbar(plans, label="工单 tickets") as bar:
                created = seed.seed_tickets(bar, cast)
            seed.mark_seeded({"tickets": tickets, "villages": len(villages),
                              "grids": sum(len(g) for g in grids.values())})
        finally:
            app.config["YIHAO_JOBS_ENABLED"] = jobs_enabled
        click.echo(f"demo seeded in {time.monotonic() - started:.0f} s ({created} tickets)")
    village = villages[0]
    grid = grids[village.code][0]
    return {
        "password": seed.DEMO_PASSWORD,
        "token": token,
        "created_tickets": created,
        "logins": [*((label, name, users[name].unit.name) for label, name in LOGIN_ROLES),
                   ("村（社区）联系人 contact", f"u-{village.code}", village.name),
                   ("网格员 grid worker", f"w-{grid.code}", grid.name)],
    }


CURL_BODY = {
    "source": "hotline", "type": "complaint", "title": "小区南门路灯不亮",
    "content": "浑河湾社区南门路灯一周不亮，晚上出行不安全",
    "address": "沈阳市和平区浑河湾街道浑河湾社区南门",
    "location": {"lng": 123.4305, "lat": 41.742, "crs": "wgs84"},
    "reporter": {"name": "王女士", "phone": "13912345678"},
}


def _pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where a Chinese character takes two columns."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(1, width - used)


def print_logins(info: dict[str, Any], base_url: str) -> None:
    line = "─" * 72
    click.echo(line)
    click.echo(f"一号 Yihao 演示 demo   {base_url}/")
    click.echo(f"共用演示密码 shared demo password:  {info['password']}")
    click.echo(line)
    for label, username, unit in info["logins"]:
        click.echo(f"  {_pad(label, 26)}{_pad(username, 22)}{unit}")
    click.echo("  every demo unit also has u-<unit code>, every grid w-<grid code>")
    click.echo(f"网格员手机工作台 grid worker phone app:  {base_url}/app/  (docs/pwa.md)")
    click.echo(line)
    click.echo(f"12345 热线系统令牌 hotline API token:  {info['token']}")
    click.echo("受理一张工单 accept a ticket:")
    click.echo(
        f"  curl -s -X POST {base_url}/api/v1/tickets \\\n"
        f"    -H 'Authorization: Bearer {info['token']}' \\\n"
        "    -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-curl-1' \\\n"
        f"    -d '{json.dumps(CURL_BODY, ensure_ascii=False)}'"
    )
    click.echo(line)


def _worker_env(app: Flask, redis_url: str) -> dict[str, str]:
    """The worker process must see the same home, database and Redis as this one."""
    return {**os.environ, "YIHAO_HOME": str(app.config["YIHAO_HOME"]),
            "DATABASE_URL": str(app.config["SQLALCHEMY_DATABASE_URI"]), "REDIS_URL": redis_url}


def background_commands() -> list[str]:
    """The RQ worker, and the periodic-job scheduler where this version has one."""
    from server.cli import main

    return [name for name in ("worker", "scheduler") if name in main.commands]


def serve_demo(app: Flask, host: str, port: int) -> None:
    """Redis (embedded unless ``REDIS_URL`` is set), an RQ worker (and the scheduler), then
    gunicorn until stopped; the helpers stop with it."""
    from server import embedded_redis
    from server.wsgi_server import run_gunicorn

    home = Path(app.config["YIHAO_HOME"])
    redis_url = app.config.get("YIHAO_REDIS_URL")
    started_redis = False
    if not redis_url:
        started_redis = not embedded_redis.is_running(home)
        redis_url = embedded_redis.ensure_running(home)
        app.config["YIHAO_REDIS_URL"] = redis_url
    env = _worker_env(app, redis_url)
    helpers: list[subprocess.Popen[bytes]] = []
    owner = os.getpid()
    try:
        for command in background_commands():
            helpers.append(subprocess.Popen([sys.executable, "-m", "server", command], env=env))
            click.echo(f"{command} pid {helpers[-1].pid} (Redis {redis_url})")
        run_gunicorn(app, host, port, int(os.environ.get("YIHAO_WEB_WORKERS", "3")))
    finally:
        # Gunicorn's web workers are forks of this process and leave through this block too;
        # only the process that started the helpers may stop them (and Redis).
        if os.getpid() == owner:
            _stop(helpers, home if started_redis else None)


def _stop(helpers: list[subprocess.Popen[bytes]], redis_home: Path | None) -> None:
    """Stop the helper processes (TERM, then KILL after 15 s) and the Redis we started."""
    from server import embedded_redis

    for helper in helpers:
        helper.terminate()
    for helper in helpers:
        try:
            helper.wait(timeout=15)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
    if redis_home is not None:
        embedded_redis.stop(redis_home)
