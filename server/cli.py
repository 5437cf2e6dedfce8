"""The ``yihao`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from server.core.db import db


def _create_app() -> Flask:
    from .app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """Yihao (一号): the grid-level field workflow beneath a 12345 hotline."""


def run_migrations() -> None:
    from flask_migrate import upgrade

    from .app import _migrations_dir

    upgrade(directory=str(_migrations_dir()))


@main.command()
@with_appcontext
def migrate() -> None:
    """Bring the database schema up to date (Alembic)."""
    run_migrations()
    click.echo("database is up to date")


@main.command("audit-verify")
@with_appcontext
def audit_verify() -> None:
    """Check the audit chain; name the first broken link and exit 1 if there is one."""
    from server.core.audit import Event, verify_chain

    total = db.session.execute(sa.select(sa.func.count()).select_from(Event)).scalar_one()
    try:
        broken = next(iter(verify_chain()), None)
    except ValueError as exc:  # the anchor file itself was edited
        click.echo(f"BROKEN: {exc}", err=True)
        sys.exit(1)
    if broken is not None:
        click.echo(f"BROKEN: {broken}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {total} events verified")


@main.command("audit-anchor")
@with_appcontext
def audit_anchor() -> None:
    """Write the heads that moved since the last anchor outside the database (hourly job)."""
    from server.core.anchors import anchor_path, write_anchor

    path = anchor_path()
    assert path is not None
    report = write_anchor(path)
    db.session.commit()
    click.echo(f"anchored {report.changed} of {report.streams} streams in {report.path}")


@main.command()
@click.argument("username")
@click.option("--name", default="", help="What the token is for.")
@with_appcontext
def createtoken(username: str, name: str) -> None:
    """Create an API bearer token for USER (printed once)."""
    from hierarchy.models import User
    from hierarchy.operations import do_create_token

    user = db.session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise click.ClickException(f"no user {username}")
    token = do_create_token(None, user, name)
    db.session.commit()
    click.echo(token)


@main.group("import")
def import_group() -> None:
    """Import divisions, units (villages, communities) or grids."""


@import_group.command("divisions")
@click.argument("province_code")
@with_appcontext
def import_divisions(province_code: str) -> None:
    """Load a province's official divisions down to townships (e.g. 210000)."""
    from hierarchy.divisions import province_divisions, source_note
    from hierarchy.operations import do_sync_divisions

    try:
        divisions = list(province_divisions(province_code))
    except KeyError as exc:
        raise click.ClickException(str(exc)) from None
    with click.progressbar(divisions, label="divisions") as bar:
        report = do_sync_divisions(None, bar)
    db.session.commit()
    click.echo(f"{report.created} created, {report.renamed} renamed, {report.unchanged} "
               f"unchanged — source: {source_note()}")


@import_group.command("units")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row, change nothing.")
@with_appcontext
def import_units(file: Path, dry_run: bool) -> None:
    """Import villages and communities from CSV or Excel (code, name, parent_code)."""
    from hierarchy.importer import import_units_file

    report = import_units_file(file, dry_run=dry_run)
    for problem in report.problems:
        click.echo(f"row {problem.row}: {problem.message}", err=True)
    if report.problems or dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    click.echo(report.summary(dry_run))
    if report.problems:
        sys.exit(1)


@import_group.command("grids")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", type=click.Choice(["wgs84", "gcj02", "bd09"]), default=None,
              help="The file's coordinate system (default: what it declares, else WGS-84 for "
                   "GeoJSON).")
@click.option("--dry-run", is_flag=True, help="Check everything, change nothing.")
@click.option("--strict", is_flag=True, help="Treat warnings (overlaps, gaps, outside a "
              "boundary) as errors.")
@click.option("--retire-missing", is_flag=True, help="Retire grids of the file's villages that "
              "the file no longer lists.")
@click.option("--overlap-tolerance", default=1.0, show_default=True, type=float,
              help="Overlaps up to this many m² are not reported.")
@click.option("--gap-tolerance", default=100.0, show_default=True, type=float,
              help="Gaps (and reach past a boundary) up to this many m² are not reported.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def import_grids_command(file: Path, crs: str | None, dry_run: bool, strict: bool,
                         retire_missing: bool, overlap_tolerance: float, gap_tolerance: float,
                         as_json: bool) -> None:
    """Import grid polygons from GeoJSON or a zipped ESRI Shapefile (code, name, unit)."""
    import json

    from grids.importer import import_grids_file

    click.echo(f"checking {file.name} …", err=True)
    report = import_grids_file(file, crs=crs, dry_run=dry_run, strict=strict,
                               retire_missing=retire_missing,
                               overlap_tolerance_m2=overlap_tolerance,
                               gap_tolerance_m2=gap_tolerance)
    if report.applied:
        db.session.commit()
    else:
        db.session.rollback()
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        for problem in report.problems:
            click.echo(str(problem), err=True)
        click.echo(report.summary(dry_run))
    if report.errors or (strict and report.warnings):
        sys.exit(1)


@import_group.command("boundaries")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--crs", type=click.Choice(["wgs84", "gcj02", "bd09"]), default=None)
@click.option("--dry-run", is_flag=True, help="Check everything, change nothing.")
@with_appcontext
def import_boundaries_command(file: Path, crs: str | None, dry_run: bool) -> None:
    """Import township and village boundaries (GeoJSON or zipped shapefile; property code)."""
    from grids.importer import import_boundaries_file

    report = import_boundaries_file(file, crs=crs, dry_run=dry_run)
    if report.applied:
        db.session.commit()
    else:
        db.session.rollback()
    for problem in report.problems:
        click.echo(str(problem), err=True)
    if report.errors:
        click.echo(f"{len(report.errors)} errors; nothing was imported")
        sys.exit(1)
    verb = "would be set" if dry_run else "set"
    click.echo(f"{report.features} boundaries: {len(report.created)} {verb}, "
               f"{len(report.unchanged)} unchanged")


@import_group.command("gazetteer")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check every row, change nothing.")
@with_appcontext
def import_gazetteer_command(file: Path, dry_run: bool) -> None:
    """Import roads, communities and landmarks (CSV/Excel: name, unit, kind, aliases, lng, lat)."""
    from grids.gazetteer import import_gazetteer_file

    report = import_gazetteer_file(file, dry_run=dry_run)
    for problem in report.problems:
        click.echo(f"row {problem.row}: {problem.message}", err=True)
    if report.problems or dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    if report.problems:
        click.echo(f"{len(report.problems)} problems; nothing was imported")
        sys.exit(1)
    verb = "would be added or updated" if dry_run else "added or updated"
    click.echo(f"{report.created} entries {verb}, {report.unchanged} unchanged")


@main.group("export")
def export_group() -> None:
    """Export reference data."""


@export_group.command("grids")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True))
@click.option("--unit", "unit_code", default=None, help="Only grids under this unit code.")
@click.option("--crs", type=click.Choice(["wgs84", "gcj02", "bd09"]), default="wgs84",
              show_default=True)
@click.option("--include-retired", is_flag=True, help="Also retired grids (property active).")
@with_appcontext
def export_grids_command(file: Path, unit_code: str | None, crs: str,
                         include_retired: bool) -> None:
    """Write grids as GeoJSON to FILE ('-' for standard output); imports back unchanged."""
    import json

    from grids.export import export_grids
    from hierarchy.models import Unit

    unit = None
    if unit_code:
        unit = db.session.execute(
            sa.select(Unit).where(Unit.code == unit_code)).scalar_one_or_none()
        if unit is None:
            raise click.ClickException(f"no unit {unit_code}")
    collection = export_grids(unit, crs=crs, include_retired=include_retired)
    text = json.dumps(collection, ensure_ascii=False)
    if str(file) == "-":
        click.echo(text)
    else:
        file.write_text(text, encoding="utf-8")
        click.echo(f"{len(collection['features'])} grids written to {file}", err=True)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=lambda: int(os.environ.get("YIHAO_WEB_WORKERS", "3")),
              show_default="3", type=int)
@with_appcontext
def serve(host: str, port: int, workers: int) -> None:
    """Serve the application with gunicorn (a production WSGI server)."""
    from .wsgi_server import run_gunicorn

    run_gunicorn(current_app._get_current_object(), host, port, workers)  # type: ignore[attr-defined]


@main.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker (uses the embedded Redis when REDIS_URL is unset)."""
    from rq import Worker

    from . import jobs

    q = jobs.queue()
    click.echo(f"worker on {jobs.redis_url()} queue {jobs.QUEUE_NAME}")
    Worker([q], connection=q.connection).work(burst=burst, with_scheduler=True)


@main.command()
@with_appcontext
def scheduler() -> None:
    """Enqueue the periodic jobs (outbox sweep; deadline scans) on RQ's cron scheduler.

    Running two schedulers is harmless: every job is idempotent in the database.
    """
    from rq.cron import CronScheduler

    from . import jobs

    cron = CronScheduler(connection=jobs.connection(), name=f"yihao-{os.getpid()}")
    for spec in jobs.PERIODIC:
        cron.register(spec.func, jobs.QUEUE_NAME, interval=spec.seconds, name=spec.name)
    click.echo(f"scheduler on {jobs.redis_url()}: "
               + ", ".join(f"{s.name} every {s.seconds}s" for s in jobs.PERIODIC))
    cron.start()


@main.group("webhook")
def webhook_group() -> None:
    """Outbound webhooks (the hotline platform, department systems)."""


@webhook_group.command("add")
@click.argument("url")
@click.option("--topics", default="", help="Comma-separated topic prefixes (default: all).")
@with_appcontext
def webhook_add(url: str, topics: str) -> None:
    """Register URL to receive ticket events; prints the signing secret once."""
    import secrets
    from urllib.parse import urlparse

    from server.core.audit import append_event

    from .webhooks import Webhook

    if urlparse(url).scheme not in ("http", "https"):
        raise click.ClickException("the URL must start with http:// or https://")
    secret = secrets.token_urlsafe(32)
    hook = Webhook(url=url, secret=secret, topics=topics)
    db.session.add(hook)
    db.session.flush()
    append_event(f"webhook:{hook.id}", "webhook.create", actor=None,
                 data={"url": url, "topics": topics})
    db.session.commit()
    click.echo(f"webhook {hook.id} → {url}\nsigning secret (HMAC-SHA256, header "
               f"X-Yihao-Signature): {secret}")


@webhook_group.command("list")
@with_appcontext
def webhook_list() -> None:
    """List registered webhooks."""
    from .webhooks import Webhook

    for hook in db.session.execute(sa.select(Webhook).order_by(Webhook.id)).scalars():
        state = "active" if hook.active else "off"
        click.echo(f"{hook.id}\t{state}\t{hook.topics or '*'}\t{hook.url}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--tickets", default=3000, show_default=True, type=int,
              help="How many demo tickets to create on the first run.")
@click.option("--no-serve", is_flag=True, help="Seed and exit.")
@with_appcontext
def demo(host: str, port: int, tickets: int, no_serve: bool) -> None:
    """Seed the Liaoning demo, start the worker and serve it."""
    from .demo import run_demo

    run_demo(current_app._get_current_object(), host=host, port=port,  # type: ignore[attr-defined]
             tickets=tickets, serve=not no_serve)


# ---------------------------------------------------------------- smart routing (issue 6)


@main.command()
@click.option("--force", is_flag=True,
              help="Activate the new model even when it is not better on held-out tickets.")
@click.option("--seed", default=0, show_default=True, type=int)
@with_appcontext
def train(force: bool, seed: int) -> None:
    """Train the category model from the tickets in the database (and staff corrections).

    The new model replaces the active one only when it is better on held-out tickets.
    """
    import json

    from routing.training import train_from_database

    report = train_from_database(Path(current_app.config["YIHAO_HOME"]), force=force, seed=seed,
                                 progress=lambda msg: click.echo(msg, err=True))
    db.session.commit()
    if report.version is None:
        click.echo(report.decision)
        return
    click.echo(f"model v{report.version}: {report.decision}")
    click.echo(json.dumps(report.metrics, ensure_ascii=False, indent=2))
