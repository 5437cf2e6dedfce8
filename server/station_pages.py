"""The steering desk (工作台) of village contacts, township stations and county supervisors.

A queue of the tickets that wait for this unit — to dispatch, returned up to it, to review —
and those handled below it; one ticket's workbench to dispatch it to a grid, a worker or a unit
below with their current load, to reassign it, and to review a closure with the reply's photos
beside the check-in and the original report.

Thin controllers: every list starts from :func:`server.tickets.queries.visible_clause`, every
change is the API's own ``check_*``/``do_*`` pair run under the ticket's row lock, and each page
costs a fixed number of statements whatever the size of the queue (``tests/test_pages_station.py``
counts them; ``bench/pages.py`` times them with 100,000 tickets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from pydantic import ValidationError
from sqlalchemy.orm import joinedload, lazyload

from grids.models import Grid
from hierarchy.models import STEERING_ROLES, Level, Role, Unit, User
from hierarchy.scoping import ancestor_ids, in_subtree, subtree_unit_ids
from server.auth import check_csrf
from server.core.audit import Event
from server.core.db import db, utcnow
from server.core.errors import Forbidden, InvalidInput, YihaoError
from server.tickets import operations as ops
from server.tickets import permissions as perm
from server.tickets.models import OPEN_STATUSES, CheckIn, Photo, Status, Ticket
from server.tickets.queries import get_visible_ticket, visible_clause
from server.tickets.serialize import reporter_dict

from .api.map import load_level

bp = Blueprint("station", __name__, url_prefix="/station")

PAGE_SIZE = 50
#: How many grids, workers and units the dispatch form offers (the map shows the rest).
CHOICES = 150

TABS = {
    "dispatch": "待派发",
    "returned": "退回待重派",
    "review": "待审核",
    "below": "下辖在办",
}
#: Events that move a ticket from one holder to another: the newest of them tells whether a
#: ticket waiting at a unit came down to it or was returned up to it.
HOLDER_KINDS = ("accept", "dispatch", "return", "reopen")

#: Readable messages for the operations' error codes (their English text stays in brackets).
ERROR_TEXT = {
    "forbidden": "您没有权限执行此操作",
    "wrong_state": "工单状态已变化，不能执行此操作",
    "stale_version": "工单已被他人更新，请查看最新情况后再操作",
    "unknown_grid": "没有这个网格",
    "unknown_worker": "没有这个网格员",
    "unknown_unit": "没有这个单位",
    "target_out_of_scope": "派发目标不在您的管辖范围内",
    "already_there": "工单已在该单位",
    "invalid_input": "填写的内容有误",
    "csrf_failed": "页面已过期，请刷新后重试",
}
RESOLUTION_LABELS = {"resolved": "已解决", "partially": "部分解决", "unresolved": "未解决",
                     "explained": "已解释说明"}
SOURCE_LABELS = {"hotline": "12345 热线", "patrol": "网格员巡查上报", "web": "网站", "app": "手机应用",
                 "api": "系统对接"}


def readable(exc: YihaoError) -> str:
    text = ERROR_TEXT.get(exc.code)
    return f"{text}（{exc.message}）" if text else exc.message


def _actor() -> User:
    actor: User = current_user._get_current_object()  # type: ignore[attr-defined]
    if actor.role not in STEERING_ROLES:
        raise Forbidden("工作台供村（社区）联系点、乡镇（街道）工作站和督办人员使用",
                        code="forbidden")
    return actor


@bp.before_request
def _workers_go_to_their_list() -> Any:
    """Grid workers work from the phone app; the desk would only show them a 403."""
    if current_user.is_authenticated and current_user.role == Role.grid_worker:
        return redirect(url_for("pages.index"))
    return None


# ---------------------------------------------------------------- the queue


def _waiting_here(actor: User) -> sa.ColumnElement[bool]:
    """Tickets held by the actor's unit itself, with no person holding them."""
    return sa.and_(Ticket.unit_id == actor.unit_id, Ticket.assignee_id.is_(None),
                   Ticket.status.in_([Status.accepted.value, Status.assigned.value]))


def _last_holder_kind() -> sa.ScalarSelect[Any]:
    """The kind of the ticket's newest holder-changing event (correlated to the ticket)."""
    return (sa.select(Event.kind)
            .where(Event.ticket_id == Ticket.id, Event.kind.in_(HOLDER_KINDS))
            .order_by(Event.seq.desc()).limit(1).correlate(Ticket).scalar_subquery())


def _below(actor: User) -> sa.ColumnElement[bool]:
    """Tickets held strictly below the actor's unit (the root unit counts as its own reviewer,
    as in :func:`server.tickets.permissions.reviews`)."""
    inside = Ticket.unit_id.in_(subtree_unit_ids(actor.unit))
    if actor.unit.parent_id is None:
        return inside
    return sa.and_(inside, Ticket.unit_id != actor.unit_id)


def tab_clause(actor: User, tab: str) -> sa.ColumnElement[bool]:
    if tab == "dispatch":
        return sa.and_(_waiting_here(actor),
                       sa.func.coalesce(_last_holder_kind(), "") != "return")
    if tab == "returned":
        return sa.and_(_waiting_here(actor), _last_holder_kind() == "return")
    if tab == "review":
        return sa.and_(_below(actor), Ticket.status == Status.replied.value)
    return sa.and_(_below(actor), Ticket.status.in_(
        [Status.assigned.value, Status.in_progress.value, Status.on_site.value]))


def tab_counts(actor: User) -> dict[str, int]:
    """The four tabs' sizes: one statement of conditional counts, and one for the returns
    (the newest-event lookup runs only over the few tickets waiting at this unit)."""
    waiting_n, review_n, below_n = (int(v or 0) for v in db.session.execute(
        sa.select(
            sa.func.count().filter(_waiting_here(actor)),
            sa.func.count().filter(tab_clause(actor, "review")),
            sa.func.count().filter(tab_clause(actor, "below")),
        ).select_from(Ticket).where(visible_clause(actor),
                                    Ticket.status.in_([str(s) for s in OPEN_STATUSES]))
    ).one())
    returned_n = db.session.execute(
        sa.select(sa.func.count()).select_from(Ticket)
        .where(visible_clause(actor), tab_clause(actor, "returned"))).scalar_one()
    return {"dispatch": waiting_n - returned_n, "returned": returned_n, "review": review_n,
            "below": below_n}


def last_returns(ticket_ids: list[int]) -> dict[int, Event]:
    """The newest return event of each ticket (reason, who, from where) — one query."""
    if not ticket_ids:
        return {}
    out: dict[int, Event] = {}
    for event in db.session.execute(
            sa.select(Event).where(Event.ticket_id.in_(ticket_ids), Event.kind == "return")
            .order_by(Event.ticket_id, Event.seq)).scalars():
        out[event.ticket_id] = event  # type: ignore[index]
    return out


@bp.get("")
@login_required
def queue():  # type: ignore[no-untyped-def]
    actor = _actor()
    tab = request.args.get("tab") or "dispatch"
    if tab not in TABS:
        tab = "dispatch"
    query = (sa.select(Ticket).where(visible_clause(actor), tab_clause(actor, tab))
             .options(joinedload(Ticket.unit), joinedload(Ticket.assignee),
                      joinedload(Ticket.grid).lazyload(Grid.members)))
    before = request.args.get("before", type=int)
    if before and 0 < before < 2**63:
        query = query.where(Ticket.id < before)
    rows = db.session.execute(query.order_by(Ticket.id.desc()).limit(PAGE_SIZE + 1)
                              ).unique().scalars().all()
    more = len(rows) > PAGE_SIZE
    tickets = rows[:PAGE_SIZE]
    returns = last_returns([t.id for t in tickets]) if tab == "returned" else {}
    return render_template("station_queue.html", tab=tab, TABS=TABS, tickets=tickets,
                           counts=tab_counts(actor), returns=returns, now=utcnow(),
                           next_before=tickets[-1].id if more else None,
                           RESOLUTION_LABELS=RESOLUTION_LABELS)


# ---------------------------------------------------------------- one ticket's workbench


@dataclass
class Choice:
    """One dispatch target on the form: its value (``grid:G-1``), what it is, its load."""

    value: str
    label: str
    detail: str
    load: int
    overdue: int = 0
    matched: bool = False


def dispatch_scope(actor: User, ticket: Ticket) -> Unit:
    """Where the dispatch form looks for grids and workers: the actor's own unit from a
    township down; above that, the township the ticket is in (a county has hundreds of
    grids, the ticket's township a handful), or the actor's unit when it is in none."""
    if Level(actor.unit.level).depth >= Level.township.depth:
        return actor.unit
    place = ticket.grid.unit if ticket.grid is not None else ticket.unit
    ids = ancestor_ids(place)
    townships = db.session.execute(
        sa.select(Unit).where(Unit.id.in_(ids), Unit.level == Level.township.value)
    ).scalars().all()
    for town in townships:
        if town.is_within(actor.unit):
            return town
    return actor.unit


def _open_counts(column: Any, ids: list[int], now: datetime) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    overdue = sa.func.sum(sa.case((Ticket.handling_due < now, 1), else_=0))
    return {key: (n, int(late or 0)) for key, n, late in db.session.execute(
        sa.select(column, sa.func.count(), overdue)
        .where(column.in_(ids), Ticket.status.in_([str(s) for s in OPEN_STATUSES]))
        .group_by(column))}


def dispatch_choices(actor: User, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """Grids (with their on-duty worker), workers and units below, each with its open load.

    A fixed number of statements: grids, their members, workers, units, and two grouped
    counts — never one per row.
    """
    scope = dispatch_scope(actor, ticket)
    grids = db.session.execute(
        sa.select(Grid).join(Unit, Unit.id == Grid.unit_id)
        .where(Grid.active.is_(True), in_subtree(Unit.path, scope.path))
        .order_by(Grid.code).limit(CHOICES)).scalars().all()
    workers = db.session.execute(
        sa.select(User).where(User.unit_id.in_(subtree_unit_ids(scope)), User.active.is_(True),
                              User.role.in_([str(r) for r in perm.DISPATCHABLE_ROLES]))
        .options(lazyload(User.unit)).order_by(User.username).limit(CHOICES)).scalars().all()
    unit_names = dict(db.session.execute(
        sa.select(Unit.id, Unit.name).where(Unit.id.in_({w.unit_id for w in workers}))).all())
    units = db.session.execute(
        sa.select(Unit).where(Unit.parent_id == actor.unit_id, Unit.active.is_(True))
        .options(lazyload(Unit.parent)).order_by(Unit.code).limit(CHOICES)).scalars().all()
    grid_load = _open_counts(Ticket.grid_id, [g.id for g in grids], now)
    worker_load = _open_counts(Ticket.assignee_id, [w.id for w in workers], now)
    worker_grids: dict[int, list[str]] = {}
    for g in grids:
        for member in g.members:
            worker_grids.setdefault(member.user_id, []).append(g.name)
    grid_choices = []
    for g in grids:
        on_duty = g.on_duty_worker()
        n, late = grid_load.get(g.id, (0, 0))
        grid_choices.append(Choice(
            f"grid:{g.code}", g.name,
            f"{g.code} · {g.unit.name} · 值班网格员 {on_duty.display_name if on_duty else '无'}",
            n, late, matched=g.id == ticket.grid_id))
    grid_choices.sort(key=lambda c: not c.matched)
    worker_choices = []
    for w in workers:
        n, late = worker_load.get(w.id, (0, 0))
        where = "、".join(worker_grids.get(w.id, [])) or unit_names.get(w.unit_id, "")
        worker_choices.append(Choice(f"worker:{w.username}", w.display_name,
                                     f"{w.username} · {where}", n, late,
                                     matched=w.id == ticket.assignee_id))
    unit_choices = [Choice(f"unit:{u.code}", u.name, u.code, 0) for u in units]
    return {"grid": grid_choices, "worker": worker_choices, "unit": unit_choices,
            "scope": scope}


def review_facts(ticket: Ticket) -> dict[str, Any]:
    """What the review compares: the reply with its photos, the check-in, the report."""
    photos = db.session.execute(
        sa.select(Photo).where(Photo.ticket_id == ticket.id).order_by(Photo.created_at)
    ).scalars().all()
    reply = db.session.execute(
        sa.select(Event).where(Event.ticket_id == ticket.id, Event.kind == "reply")
        .order_by(Event.seq.desc()).limit(1)).scalar_one_or_none()
    reply_ids = list((reply.data or {}).get("photos") or []) if reply else []
    checkin = db.session.execute(
        sa.select(CheckIn).where(CheckIn.ticket_id == ticket.id)
        .order_by(CheckIn.at.desc()).limit(1)).scalar_one_or_none()
    by_id = {p.id: p for p in photos}
    return {
        "reply": reply,
        "reply_photos": [by_id[i] for i in reply_ids if i in by_id],
        "report_photos": [p for p in photos if p.id not in reply_ids
                          and p.uploaded_by_id == ticket.created_by_id],
        "checkin": checkin,
    }


def map_points(ticket: Ticket, facts: dict[str, Any]) -> dict[str, Any]:
    """The review's small map: the report, the check-in and the photos' own GPS."""
    points = []
    if ticket.lng is not None and ticket.lat is not None:
        points.append({"kind": "report", "label": "反映位置", "lng": ticket.lng, "lat": ticket.lat})
    checkin = facts.get("checkin")
    if checkin is not None:
        points.append({"kind": "checkin", "label": "到场打卡", "lng": checkin.lng,
                       "lat": checkin.lat, "accuracy": checkin.accuracy_m})
    for i, photo in enumerate(facts.get("reply_photos", []), start=1):
        if photo.lng is not None and photo.lat is not None:
            points.append({"kind": "photo", "label": f"照片 {i}", "lng": photo.lng,
                           "lat": photo.lat})
    return {"points": points, "grid": ticket.grid.code if ticket.grid else None}


@bp.get("/tickets/<number>")
@login_required
def ticket(number: str):  # type: ignore[no-untyped-def]
    actor = _actor()
    t = get_visible_ticket(actor, number)
    now = utcnow()
    events = db.session.execute(
        sa.select(Event).where(Event.stream == t.stream).order_by(Event.seq)).scalars().all()
    can_dispatch = perm.can_dispatch(actor, t) and t.status in (
        Status.accepted, Status.assigned, Status.in_progress, Status.on_site)
    can_review = perm.can_review(actor, t) and t.status == Status.replied
    holder_events = [e for e in events if e.kind in HOLDER_KINDS]
    returned = holder_events[-1] if holder_events and holder_events[-1].kind == "return" \
        else None
    facts = review_facts(t) if t.status in (Status.replied, Status.closed) or \
        t.checked_in_at else {}
    return render_template(
        "station_ticket.html", t=t, events=events, reporter=reporter_dict(t, actor), now=now,
        choices=dispatch_choices(actor, t, now) if can_dispatch else None,
        can_dispatch=can_dispatch, can_review=can_review, returned=returned, facts=facts,
        review_map=map_points(t, facts) if facts else None,
        RESOLUTION_LABELS=RESOLUTION_LABELS, SOURCE_LABELS=SOURCE_LABELS, load_level=load_level,
        back=request.args.get("tab") or ("review" if can_review else
                                          "returned" if returned else "dispatch"),
    )


# ---------------------------------------------------------------- actions


def run_action(number: str, name: str, raw: dict[str, Any]) -> str:
    """Run one ticket action through its check/do pair under the row lock; one commit."""
    actor = _actor()
    action = ops.find_action(name)
    try:
        body = action.body.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(exc.errors()[0]["msg"]) from None
    ticket = get_visible_ticket(actor, number, lock=True)
    action.do(action.check(actor, ticket, body))
    db.session.commit()
    return number


def _version() -> int | None:
    raw = request.form.get("base_version", "")
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def _act(number: str, name: str, raw: dict[str, Any], done: str, tab: str) -> Any:
    check_csrf()
    try:
        run_action(number, name, {**raw, "base_version": _version()})
    except YihaoError as exc:
        db.session.rollback()
        flash(readable(exc), "error")
        return redirect(url_for("station.ticket", number=number, tab=tab))
    flash(f"{done}：{number}", "ok")
    return redirect(url_for("station.queue", tab=tab))


@bp.post("/tickets/<number>/dispatch")
@login_required
def dispatch(number: str):  # type: ignore[no-untyped-def]
    """Dispatch or reassign: ``target`` is ``grid:CODE``, ``worker:USERNAME`` or ``unit:CODE``."""
    kind, _, value = (request.form.get("target") or "").partition(":")
    note = (request.form.get("note") or "").strip()[:500] or None
    tab = request.form.get("tab") or "dispatch"
    if kind not in ("grid", "worker", "unit") or not value:
        check_csrf()
        flash("请选择派发对象：网格、网格员或下级单位", "error")
        return redirect(url_for("station.ticket", number=number, tab=tab))
    return _act(number, "dispatch", {kind: value[:64], "note": note}, "已派发", tab)


@bp.post("/tickets/<number>/approve")
@login_required
def approve(number: str):  # type: ignore[no-untyped-def]
    return _act(number, "approve", {}, "审核通过，已办结", "review")


@bp.post("/tickets/<number>/reject")
@login_required
def reject(number: str):  # type: ignore[no-untyped-def]
    reason = (request.form.get("reason") or "").strip()[:500]
    if not reason:
        check_csrf()
        flash("请填写退回重办的原因", "error")
        return redirect(url_for("station.ticket", number=number, tab="review"))
    return _act(number, "reject", {"reason": reason}, "已退回重办", "review")

