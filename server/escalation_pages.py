"""The supervisors' board (督办看板): escalations to acknowledge and urge, tickets due soon
and overdue, counts per township, and the deadline report with its Excel export.

Thin controllers over the same scoped ticket query and the same operations as the API: the
board can never show or do more than the API would allow.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from pydantic import ValidationError

from escalation import board, reports
from escalation import operations as esc_ops
from escalation.calendar import SHANGHAI
from escalation.models import CLOCK_LABELS, Escalation
from hierarchy.models import LEVEL_LABELS, Role, Unit, User
from server.auth import check_csrf
from server.core.db import db, utcnow
from server.core.errors import InvalidInput, NotFound, YihaoError
from server.tickets import operations as ops
from server.tickets.queries import get_visible_ticket

from .api.escalations import report_range, report_ticket_ids, visible_ticket_ids

bp = Blueprint("board", __name__, url_prefix="/board")

RESOLUTION_LABELS = {
    "signed": "已签收", "replied": "已反馈", "approved": "已办结", "closed": "已办结",
    "dispatched": "已改派", "returned": "已退回", "extended": "已延期",
    "escalated_further": "已再次升级", "rule_disabled": "规则停用", "rescheduled": "时限调整",
    "reopened": "重新办理",
}


def _actor() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _filters() -> board.Filters:
    township = None
    if code := request.args.get("township"):
        township = db.session.execute(
            sa.select(Unit).where(Unit.code == code[:32])).scalar_one_or_none()
    acknowledged = {"yes": True, "no": False}.get(request.args.get("acknowledged") or "")
    return board.Filters(open_only=True, acknowledged=acknowledged, township=township,
                         grid_code=request.args.get("grid") or None)


@bp.get("")
@login_required
def index():  # type: ignore[no-untyped-def]
    actor = _actor()
    if actor.role == Role.grid_worker:
        return redirect(url_for("pages.index"))
    ids = visible_ticket_ids(actor)
    now = utcnow()
    filters = _filters()
    items = board.escalations(ids, filters, 200)
    lists = board.clock_lists(ids, now, township=filters.township)
    return render_template(
        "board.html", items=items, lists=lists, townships=board.township_summary(ids, now),
        township=filters.township,
        now=now, CLOCK_LABELS=CLOCK_LABELS, RESOLUTION_LABELS=RESOLUTION_LABELS,
        LEVEL_LABELS=LEVEL_LABELS, args=request.args,
    )


def _item(actor: User, item_id: int) -> Escalation:
    item = board.get_item(item_id, visible_ticket_ids(actor))
    if item is None:
        raise NotFound("escalation not found", code="escalation_not_found")
    return item


def _back() -> Any:
    return redirect(url_for("board.index", **{k: v for k, v in request.args.items()}))


@bp.post("/escalations/<int:item_id>/acknowledge")
@login_required
def acknowledge(item_id: int):  # type: ignore[no-untyped-def]
    check_csrf()
    actor = _actor()
    try:
        item = _item(actor, item_id)
        esc_ops.do_acknowledge(esc_ops.check_acknowledge(actor, item))
        db.session.commit()
        flash("已确认", "ok")
    except YihaoError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back()


def _ticket_action(item_id: int, action_name: str, raw: dict[str, Any]) -> str:
    """Run a ticket action (urge, dispatch, decide-extension) on the item's ticket, through
    the same check/do pair as the API, and acknowledge the item; returns the number."""
    actor = _actor()
    item = _item(actor, item_id)
    number = db.session.execute(
        sa.select(board.TICKETS.c.number).where(board.TICKETS.c.id == item.ticket_id)
    ).scalar_one()
    action = ops.find_action(action_name)
    try:
        body = action.body.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(exc.errors()[0]["msg"]) from None
    ticket = get_visible_ticket(actor, number, lock=True)
    action.do(action.check(actor, ticket, body))
    item = _item(actor, item_id)
    if item.resolved_at is None and item.acknowledged_at is None:
        esc_ops.do_acknowledge(esc_ops.check_acknowledge(actor, item))
    return str(number)


def _run(item_id: int, action_name: str, raw: dict[str, Any], done: str) -> Any:
    check_csrf()
    try:
        number = _ticket_action(item_id, action_name, raw)
        db.session.commit()
        flash(f"{done}：{number}", "ok")
    except YihaoError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    return _back()


@bp.post("/escalations/<int:item_id>/urge")
@login_required
def urge(item_id: int):  # type: ignore[no-untyped-def]
    """Urge the ticket (the ticket action ``urge``) from its board item."""
    note = (request.form.get("note") or "").strip()[:500] or "请尽快办理"
    return _run(item_id, "urge", {"note": note}, "已督办")


@bp.post("/escalations/<int:item_id>/reassign")
@login_required
def reassign(item_id: int):  # type: ignore[no-untyped-def]
    """Send the ticket to another unit, grid or worker (the ticket action ``dispatch``)."""
    kind = request.form.get("kind") or "unit"
    target = (request.form.get("target") or "").strip()[:64]
    if kind not in ("unit", "grid", "worker"):
        kind = "unit"
    return _run(item_id, "dispatch", {kind: target, "note": "督办改派"}, "已改派")


@bp.post("/escalations/<int:item_id>/extend")
@login_required
def extend(item_id: int):  # type: ignore[no-untyped-def]
    """Grant or refuse the extension the assignee asked for (``decide-extension``)."""
    approve = request.form.get("approve") == "1"
    raw: dict[str, Any] = {"approve": approve}
    if approve and (days := request.form.get("days", "").strip()):
        raw["days"] = int(days) if days.isdigit() else days
    return _run(item_id, "decide-extension", raw, "已批准延期" if approve else "已驳回延期")


@bp.get("/report")
@login_required
def report():  # type: ignore[no-untyped-def]
    actor = _actor()
    unit, lo, hi = _report_args(actor)
    result = reports.build(report_ticket_ids(actor, unit), lo, hi)
    return render_template("board.html", report=result.as_json(), unit=unit, lo=lo,
                           hi=hi, args=request.args, tz=SHANGHAI)


@bp.get("/report.xlsx")
@login_required
def report_xlsx():  # type: ignore[no-untyped-def]
    actor = _actor()
    unit, lo, hi = _report_args(actor)
    result = reports.build(report_ticket_ids(actor, unit), lo, hi)
    name = f"deadline-report-{unit.code}-{lo.astimezone(SHANGHAI):%Y%m%d}.xlsx"
    return Response(result.to_xlsx(), headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    })


def _report_args(actor: User) -> tuple[Unit, Any, Any]:
    if actor.role == Role.grid_worker:
        raise NotFound("page not found")
    unit = actor.unit
    if code := request.args.get("unit"):
        found = db.session.execute(
            sa.select(Unit).where(Unit.code == code[:32])).scalar_one_or_none()
        if found is None or not found.is_within(actor.unit):
            raise NotFound("unit not found")
        unit = found
    try:
        lo, hi = report_range()
    except InvalidInput as exc:
        raise InvalidInput(exc.message) from None
    return unit, lo, hi

