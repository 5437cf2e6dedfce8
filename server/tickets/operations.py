"""Every change to a ticket, as a ``check_*`` / ``do_*`` pair.

``check_*`` validates permission (403), state (409) and input (422) against a ticket whose
row the caller has locked, resolves what the input names, and returns a :class:`Checked`.
``do_*`` takes only a :class:`Checked`, so an action cannot run without its check; it changes
the ticket, appends the hash-chained event and queues the outbox message — all in the
caller's transaction. Nothing here commits: routes and jobs commit once at their boundary,
and side effects (jobs, pushes, webhooks) go out only after that commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from escalation import ladder, notify
from escalation.clocks import WATCHED, TicketFacts, on_ticket_event
from escalation.deadlines import extend, initial_deadlines, response_due
from grids.checkin import CheckInRules, Verdict, judge_check_in
from grids.crs import to_wgs84
from grids.matching import match_location
from grids.models import Grid, GridMember
from hierarchy.models import Role, Unit, User
from server.core.audit import Event, append_event, append_events
from server.core.bulk import bulk_update
from server.core.crypto import blind_index
from server.core.db import UTCDateTime, db, utcnow
from server.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.core.outbox import queue_message, queue_messages

from . import permissions as perm
from . import schemas as s
from .models import OPEN_STATUSES, CheckIn, Photo, Status, Ticket


@dataclass(frozen=True)
class Checked:
    """What a ``check_*`` hands to its ``do_*``: proof the checks ran, and their results."""

    action: str
    actor: User
    ticket: Ticket | None
    body: Any
    resolved: dict[str, Any] = field(default_factory=dict)
    #: When the action happened; None means now. Only replaying history (the demo seed) sets
    #: it, via ``dataclasses.replace``; routes never do.
    at: datetime | None = None

    def now(self) -> datetime:
        return self.at or utcnow()


# ---------------------------------------------------------------- shared checks


def _allow(allowed: bool, message: str) -> None:
    if not allowed:
        raise Forbidden(message)


def _state(ticket: Ticket, allowed: Iterable[Status], action: str) -> None:
    allowed = tuple(allowed)
    if ticket.status not in allowed:
        raise Conflict(
            f"cannot {action} a ticket that is {ticket.status}",
            code="wrong_state",
            status=ticket.status,
            allowed=[str(a) for a in allowed],
        )


#: Events that record a look, not a change: they never make a client's view stale.
READ_ONLY_KINDS = ("reveal_reporter",)


def _version(ticket: Ticket, body: s.ActionBody, actor: User) -> None:
    """409 when someone else changed the ticket since the version the client saw.

    The client's own later actions do not count: a phone replaying its queue (check-in,
    photos, reply, each made against the version it saw) must not conflict with itself.
    """
    if body.base_version is None or body.base_version >= ticket.version:
        if body.base_version is not None and body.base_version > ticket.version:
            raise InvalidInput("base_version is newer than the ticket", code="invalid_version")
        return
    others = db.session.execute(
        sa.select(sa.func.count()).select_from(Event).where(
            Event.stream == ticket.stream,
            Event.seq > body.base_version,
            Event.actor_id.is_distinct_from(actor.id),
            Event.kind.not_in(READ_ONLY_KINDS),
        )
    ).scalar_one()
    if others:
        raise Conflict(
            f"the ticket changed since version {body.base_version}; it is now at "
            f"version {ticket.version}",
            code="stale_version",
            version=ticket.version,
            status=ticket.status,
        )


def _record(checked: Checked, kind: str, data: dict[str, Any], *,
            new_stream: bool = False) -> Event:
    """Append the ticket event, bump the version, queue the outbox message."""
    ticket = checked.ticket
    assert ticket is not None
    now = checked.now()
    _sync_clocks(ticket, kind, now, data)
    event = append_event(
        ticket.stream, kind, actor=checked.actor, data=data, ticket_id=ticket.id, at=now,
        head_locked=True, new_stream=new_stream,
    )
    _recorded(ticket, kind, data, event, now)
    if not db.session.info.get(_ONE_FLUSH):
        # Written now, so that what the next action in this transaction checks (``unit_id``,
        # ``assignee_id``, set from the relationships by the flush) is what this one did.
        db.session.flush()
    return event


#: ``session.info`` key set while :func:`_one_flush` runs.
_ONE_FLUSH = "tickets_one_flush"


@contextmanager
def _one_flush() -> Iterator[None]:
    """Write everything the block adds and changes in one flush at its end.

    For an accept and its auto-dispatch: the new ticket, its links, clocks, events and
    outbox messages go in once, in their final state — no row inserted and then updated
    (PostgreSQL: 13 statements instead of 26 for an auto-dispatched accept; bench/intake.py).
    Inside, no query may need to see what the block wrote: the clocks and the event head of
    the new ticket are kept in memory for that (``escalation.clocks``, ``server.core.audit``).
    The closing flush also sets the foreign-key columns from the relationships assigned in
    the block, which later checks in the same transaction read.
    """
    session = db.session
    with session.no_autoflush:
        session.info[_ONE_FLUSH] = True
        try:
            yield
        finally:
            session.info.pop(_ONE_FLUSH, None)
    session.flush()


def _record_many(checks: list[Checked], kind: str, datas: list[dict[str, Any]],
                 now: datetime) -> list[Event]:
    """:func:`_record` for many tickets at once, by one actor at one moment (a system job's
    batch): the events, versions and outbox messages set-based, a statement or two each."""
    tickets = [c.ticket for c in checks if c.ticket is not None]
    assert len(tickets) == len(checks)
    for ticket, data in zip(tickets, datas, strict=True):
        _sync_clocks(ticket, kind, now, data)
    events = append_events(
        [(t.stream, kind, d, t.id) for t, d in zip(tickets, datas, strict=True)],
        actor=checks[0].actor if checks else None, at=now)
    # The versions and the outbox messages set-based, not an ORM change per ticket (a
    # thousand escalations at once: bench/escalation.py); the loaded tickets are told their
    # new version without being marked changed.
    bulk_update(Ticket.__table__, "id", "tid",
                [{"tid": t.id, "v": e.seq, "at": now} for t, e in zip(tickets, events, strict=True)],
                {"version": ("v", sa.Integer()), "updated_at": ("at", UTCDateTime())})
    for ticket, event in zip(tickets, events, strict=True):
        set_committed_value(ticket, "version", event.seq)
        set_committed_value(ticket, "updated_at", now)
    queue_messages([
        {"topic": f"ticket.{kind}", "payload": _message(ticket, kind, data, event, now),
         "ticket_id": ticket.id, "event_id": event.id}
        for ticket, data, event in zip(tickets, datas, events, strict=True)])
    return events


def _recorded(ticket: Ticket, kind: str, data: dict[str, Any], event: Event,
              now: datetime) -> None:
    ticket.version = event.seq
    ticket.updated_at = now
    queue_message(f"ticket.{kind}", _message(ticket, kind, data, event, now),
                  ticket_id=ticket.id, event=event)


def _message(ticket: Ticket, kind: str, data: dict[str, Any], event: Event,
             now: datetime) -> dict[str, Any]:
    """The outbox message of a ticket event (what webhooks receive)."""
    return {
        "number": ticket.number,
        "external_id": ticket.external_id,
        "status": str(ticket.status),
        "version": event.seq,
        "event": {"seq": event.seq, "kind": kind, "at": now.isoformat(), "data": data},
        "unit": ticket.unit.code if ticket.unit else None,
    }


def _unit_by_code(code: str) -> Unit:
    unit = db.session.execute(sa.select(Unit).where(Unit.code == code)).scalar_one_or_none()
    if unit is None or not unit.active:
        raise InvalidInput(f"no unit with code {code}", code="unknown_unit", field="unit")
    return unit


# ---------------------------------------------------------------- accept


def check_accept(actor: User, body: s.AcceptBody) -> Checked:
    _allow(perm.can_accept(actor, body.source), f"{actor.role} may not accept {body.source} tickets")
    resolved: dict[str, Any] = {}
    if body.location is not None:
        resolved["point"] = to_wgs84(body.location.lng, body.location.lat, body.location.crs)
    if body.location is None and not body.address:
        raise InvalidInput("give a location, an address or both", code="location_required")
    if body.external_id:
        existing = db.session.execute(
            sa.select(Ticket.number).where(
                Ticket.created_by_id == actor.id, Ticket.external_id == body.external_id
            )
        ).scalar_one_or_none()
        if existing:
            raise Conflict(
                f"external_id {body.external_id} was already accepted as {existing}",
                code="duplicate_external_id",
                number=existing,
            )
    return Checked("accept", actor, None, body, resolved)


def _number_for(ticket: Ticket) -> str:
    from escalation.calendar import SHANGHAI

    return f"YH{ticket.accepted_at.astimezone(SHANGHAI):%y%m%d}{ticket.id:07d}"


def do_accept(checked: Checked) -> Ticket:
    body: s.AcceptBody = checked.body
    actor = checked.actor
    now = checked.now()
    point = checked.resolved.get("point")
    match = match_location(point=point, address=body.address, within=actor.unit)
    deadlines = initial_deadlines(body.urgency, now)
    reporter = body.reporter or s.Reporter(anonymous=True)
    grid = match.grid
    if grid is None and actor.role == Role.grid_worker:
        grid = db.session.execute(
            sa.select(Grid).join(GridMember).where(GridMember.user_id == actor.id)
            .order_by(GridMember.position)
        ).scalars().first()
    ticket_id = None
    if db.engine.dialect.name == "postgresql":
        # The id from the sequence first, so that the one INSERT carries the number: a fresh
        # row is not written twice (bench/intake.py; SQLite has no sequence to ask).
        ticket_id = db.session.execute(sa.select(
            sa.func.nextval(sa.func.pg_get_serial_sequence("tickets", "id")))).scalar_one()
    ticket = Ticket(
        id=ticket_id,
        external_id=body.external_id,
        source=body.source,
        type=body.type,
        title=body.title,
        content=body.content,
        category_code=body.category_code,
        urgency=body.urgency,
        status=Status.accepted,
        lng=point[0] if point else None,
        lat=point[1] if point else None,
        location_crs=body.location.crs if body.location else None,
        address=body.address,
        region_code=match.region_code or actor.unit.region_code,
        grid=grid,
        grid_reason=None if grid else match.reason,
        unit=actor.unit,
        accepting_unit=actor.unit,
        created_by=actor,
        reporter_name=reporter.name or None,
        reporter_phone=reporter.phone or None,
        reporter_phone_index=blind_index(reporter.phone) if reporter.phone else None,
        reporter_anonymous=reporter.anonymous,
        accepted_at=now,
        response_due=deadlines.response_due,
        handling_due=deadlines.handling_due,
        deadline_provisional=deadlines.provisional,
        # The accept event below is the ticket's first: version and updated_at are already
        # what _record sets, so the new row needs no UPDATE for them.
        version=1,
        updated_at=now,
    )
    if grid is not None:
        grid.members  # noqa: B018 — loaded now: auto-dispatch reads them below, where nothing queries
    db.session.add(ticket)
    if ticket_id is None:
        db.session.flush()  # SQLite: the id comes from the INSERT
    ticket.number = _number_for(ticket)
    with _one_flush():
        # ---- smart routing (issue 6, routing/): category, urgency, duplicates, and the
        # category's rule (down to a grid, or stop at a level) — before the event and clocks.
        from routing.service import route_new_ticket

        routing = route_new_ticket(ticket, actor, now, operator_category=body.category_code,
                                   operator_urgency=str(body.urgency))
        # ---- end smart routing
        checked = Checked("accept", actor, ticket, body, at=now)
        _record(checked, "accept", {
            "source": str(body.source), "type": str(body.type), "urgency": str(body.urgency),
            "unit": actor.unit.code, "grid": grid.code if grid else None,
            "grid_reason": ticket.grid_reason, "category_code": body.category_code,
            "reporter": "anonymous" if reporter.anonymous
            else ("given" if reporter.phone else "none"),
            "response_due": ticket.response_due.isoformat(),
            "handling_due": ticket.handling_due.isoformat(),
            "provisional": deadlines.provisional,
            "routing": routing,
        }, new_stream=True)
        auto_dispatch(ticket, actor, now)
    return ticket


def auto_dispatch(ticket: Ticket, actor: User, now: datetime) -> Event | None:
    """Send a just-accepted ticket straight to its grid's on-duty worker, if it may go there.

    The point of matching at accept is that the ticket lands with the right grid worker
    within a second, not after three desks have each pressed "dispatch". It goes down only
    when: the deployment wants it (``YIHAO_AUTO_DISPATCH``, on by default; a province that
    dispatches level by level turns it off), a grid was matched, nothing else has already
    moved the ticket (category rules that stop it at a level leave it where they put it),
    and the grid's village lies within the accepting desk's jurisdiction. It is an ordinary
    ``dispatch`` event marked ``auto``, so the history shows who decided what. A grid worker
    reporting a problem on patrol in their own grid gets it themselves; a grid with nobody on
    duty stops at its village's contact point.
    """
    if not current_app.config.get("YIHAO_AUTO_DISPATCH", True):
        return None
    grid = ticket.grid
    # ``ticket.unit``, not ``unit_id``: the new ticket is not flushed yet (``_one_flush``).
    if grid is None or not grid.active or ticket.status != Status.accepted \
            or ticket.unit.id != actor.unit_id or not perm.can_dispatch_to(actor, grid.unit):
        return None
    members = {m.user_id for m in grid.members if m.on_duty}
    worker = actor if actor.role == Role.grid_worker and actor.id in members else None
    return _dispatch_to_grid(ticket, actor, grid, "按网格自动派单", now, worker=worker)


def _dispatch_to_grid(ticket: Ticket, actor: User, grid: Grid, note: str, now: datetime, *,
                      worker: User | None = None) -> Event:
    """A dispatch the system decided (auto-dispatch, a corrected location): to ``worker``, or
    the grid's on-duty worker, as an ordinary ``dispatch`` event marked ``auto``."""
    checked = Checked("dispatch", actor, ticket, s.DispatchBody(grid=grid.code, note=note),
                      {"unit": grid.unit, "grid": grid, "worker": worker or grid.on_duty_worker(),
                       "auto": True}, at=now)
    return do_dispatch(checked)


# ---------------------------------------------------------------- dispatch


def check_dispatch(actor: User, ticket: Ticket, body: s.DispatchBody) -> Checked:
    _allow(perm.can_dispatch(actor, ticket), "only steering staff above the ticket may dispatch it")
    _state(ticket, (Status.accepted, Status.assigned, Status.in_progress, Status.on_site),
           "dispatch")
    _version(ticket, body, actor)
    grid: Grid | None = None
    worker: User | None = None
    if body.unit:
        unit = _unit_by_code(body.unit)
    elif body.grid:
        grid = db.session.execute(sa.select(Grid).where(Grid.code == body.grid)).scalar_one_or_none()
        if grid is None or not grid.active:
            raise InvalidInput(f"no grid with code {body.grid}", code="unknown_grid", field="grid")
        unit = grid.unit
        worker = grid.on_duty_worker()
    else:
        worker = db.session.execute(
            sa.select(User).where(User.username == body.worker)
        ).scalar_one_or_none()
        if worker is None or not worker.active or worker.role not in perm.DISPATCHABLE_ROLES:
            raise InvalidInput(f"no grid worker {body.worker}", code="unknown_worker",
                               field="worker")
        unit = worker.unit
    if not perm.can_dispatch_to(actor, unit):
        raise InvalidInput(f"{unit.name} is outside your jurisdiction", code="target_out_of_scope")
    if unit.id == ticket.unit_id and worker is None and ticket.assignee_id is None \
            and ticket.status == Status.assigned:
        raise Conflict(f"the ticket is already with {unit.name}", code="already_there")
    return Checked("dispatch", actor, ticket, body, {"unit": unit, "grid": grid, "worker": worker})


def do_dispatch(checked: Checked) -> Event:
    ticket, actor = checked.ticket, checked.actor
    assert ticket is not None
    unit: Unit = checked.resolved["unit"]
    grid: Grid | None = checked.resolved["grid"]
    worker: User | None = checked.resolved["worker"]
    previous = {"unit": ticket.unit.code, "assignee": getattr(ticket.assignee, "username", None),
                "status": str(ticket.status)}
    now = checked.now()
    if actor.unit_id != unit.id:
        ticket.dispatched_by_unit = actor.unit
    else:
        # Within one's own unit: a worker's return comes back to this desk; a ticket taken
        # to one's own desk is returned to the unit above, never back down.
        ticket.dispatched_by_unit = unit if worker is not None else unit.parent
    ticket.unit = unit
    if grid is not None:
        ticket.grid = grid
        ticket.grid_reason = None
    ticket.assignee = worker
    ticket.status = Status.assigned
    ticket.signed_at = None
    ticket.response_due, provisional = response_due(ticket.urgency, now)
    ticket.deadline_provisional = ticket.deadline_provisional or provisional
    event = _record(checked, "dispatch", {
        "from": previous, "unit": unit.code, "grid": grid.code if grid else None,
        "worker": worker.username if worker else None, "note": checked.body.note,
        "response_due": ticket.response_due.isoformat(),
        **({"auto": True} if checked.resolved.get("auto") else {}),
    })
    if worker is not None:
        _tell(ticket, [worker.id], "assigned", f"新工单{ticket.number}：{ticket.title}",
              checked.body.note or "请及时签收。", now)
    return event


def _tell(ticket: Ticket, user_ids: list[int], kind: str, title: str, body: str,
          at: datetime) -> None:
    """A notice this action causes (a new assignment, an urge), sent at once: Web Push and
    the live stream always, SMS too for life-and-safety tickets (escalation/notify.py)."""
    db.session.flush()  # the notice rows name the ticket, which may not be written yet
    notify.send_now(user_ids, kind=kind, at=at, title=title, body=body, ticket_id=ticket.id,
                    data={"number": ticket.number, "urgency": str(ticket.urgency)},
                    urgent=ticket.urgency == "emergency")


# ---------------------------------------------------------------- location correction


def check_correct_location(actor: User, ticket: Ticket, body: s.CorrectLocationBody) -> Checked:
    _allow(perm.can_correct_location(actor, ticket),
           "only steering staff above the ticket or its holder may correct its location")
    _state(ticket, (Status.accepted, Status.assigned, Status.in_progress, Status.on_site),
           "correct the location of")
    _version(ticket, body, actor)
    point = to_wgs84(body.location.lng, body.location.lat, body.location.crs) if body.location else None
    match = match_location(point=point, address=body.address, within=ticket.accepting_unit)
    return Checked("correct_location", actor, ticket, body, {"point": point, "match": match})


def do_correct_location(checked: Checked) -> Event:
    """Move the ticket's location, match it again, and send it on when nobody has started.

    The grid is re-matched as at accept. When it changes and the ticket has not been signed
    yet, it follows the new grid (to its on-duty worker, as ``auto_dispatch`` would have sent
    it); once a worker has signed, the grid is corrected but the holder's desk decides.
    """
    ticket, body, actor = checked.ticket, checked.body, checked.actor
    assert ticket is not None
    match = checked.resolved["match"]
    point = checked.resolved["point"]
    now = checked.now()
    old_grid = ticket.grid
    previous = {"lng": ticket.lng, "lat": ticket.lat, "address": ticket.address,
                "grid": old_grid.code if old_grid else None, "region_code": ticket.region_code}
    if point is not None:
        ticket.lng, ticket.lat = point
        ticket.location_crs = str(body.location.crs)
    elif match.point is not None and body.address:  # the gazetteer placed the new address
        ticket.lng, ticket.lat = match.point
        ticket.location_crs = "wgs84"
    if body.address:
        ticket.address = body.address
    ticket.region_code = match.region_code or ticket.region_code
    if match.grid is not None:
        ticket.grid, ticket.grid_reason = match.grid, None
    elif old_grid is None:
        ticket.grid_reason = match.reason
    moved = ticket.grid is not None and ticket.grid is not old_grid
    event = _record(checked, "correct_location", {
        "from": previous, "lng": ticket.lng, "lat": ticket.lat, "address": ticket.address,
        "grid": ticket.grid.code if ticket.grid else None, "grid_changed": moved,
        "match": match.method, "confidence": match.confidence, "reason": body.reason,
        "region_code": ticket.region_code,
    })
    if moved and ticket.status == Status.accepted:
        auto_dispatch(ticket, actor, now)
    elif moved and ticket.status == Status.assigned and old_grid is not None \
            and ticket.unit_id == old_grid.unit_id and perm.can_dispatch(actor, ticket) \
            and perm.can_dispatch_to(actor, ticket.grid.unit) \
            and current_app.config.get("YIHAO_AUTO_DISPATCH", True):
        _dispatch_to_grid(ticket, actor, ticket.grid, "位置更正后改派", now)
    return event


# ---------------------------------------------------------------- sign, return


def check_sign(actor: User, ticket: Ticket, body: s.EmptyBody) -> Checked:
    _allow(perm.can_sign(actor, ticket), "only the assignee (or the holding unit) may sign")
    _state(ticket, (Status.accepted, Status.assigned), "sign")
    _version(ticket, body, actor)
    return Checked("sign", actor, ticket, body)


def do_sign(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    ticket.status = Status.in_progress
    ticket.signed_at = checked.now()
    if ticket.assignee_id is None and checked.actor.role == Role.grid_worker:
        ticket.assignee = checked.actor
    late = ticket.response_due is not None and ticket.signed_at > ticket.response_due
    return _record(checked, "sign", {"late": late})


def check_return(actor: User, ticket: Ticket, body: s.ReturnBody) -> Checked:
    _allow(perm.can_return(actor, ticket), "only the assignee (or the holding unit) may return")
    _state(ticket, (Status.assigned, Status.in_progress), "return")
    _version(ticket, body, actor)
    target = ticket.dispatched_by_unit or ticket.unit.parent
    if ticket.assignee_id is not None and ticket.dispatched_by_unit_id == ticket.unit_id:
        # Assigned to a person by their own unit: it goes back to that unit's desk.
        target = ticket.unit
    if target is None:
        raise Conflict("there is no unit above to return this ticket to", code="nowhere_to_return")
    return Checked("return", actor, ticket, body, {"target": target})


def _dispatcher_of(ticket: Ticket, unit: Unit) -> Unit | None:
    """The unit that last sent this ticket down to ``unit``, read from the ticket's history.

    After a return lands at ``unit``, a second return from there must go to whoever gave it
    to ``unit`` — the city platform that skipped the county, say — not simply the parent.
    A ticket's history holds a handful of dispatches, so reading them is cheap.
    """
    rows = db.session.execute(
        sa.select(Event.data, User.unit_id).join(User, User.id == Event.actor_id)
        .where(Event.ticket_id == ticket.id, Event.kind == "dispatch")
        .order_by(Event.seq.desc())
    ).all()
    for data, actor_unit_id in rows:
        if (data or {}).get("unit") == unit.code and actor_unit_id != unit.id:
            return db.session.get(Unit, actor_unit_id)
    return None


def do_return(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    target: Unit = checked.resolved["target"]
    previous = {"unit": ticket.unit.code, "assignee": getattr(ticket.assignee, "username", None)}
    ticket.unit = target
    ticket.assignee = None
    ticket.dispatched_by_unit = _dispatcher_of(ticket, target) or target.parent
    ticket.status = Status.assigned
    ticket.signed_at = None
    return _record(checked, "return", {"from": previous, "to": target.code,
                                       "reason": checked.body.reason})


# ---------------------------------------------------------------- check-in, photos, reply


def check_check_in(actor: User, ticket: Ticket, body: s.CheckInBody) -> Checked:
    _allow(perm.can_check_in(actor, ticket), "only the assignee may check in")
    _state(ticket, (Status.in_progress, Status.on_site), "check in to")
    _version(ticket, body, actor)
    point = to_wgs84(body.lng, body.lat, body.crs)
    grid_geom = None
    if ticket.grid_id is not None:
        grid_geom = db.session.execute(
            sa.select(Grid.geom).where(Grid.id == ticket.grid_id)).scalar_one_or_none()
    verdict = judge_check_in(
        point, accuracy_m=body.accuracy_m, fix_age_s=body.fix_age_s, reason=body.reason,
        ticket_point=(ticket.lng, ticket.lat) if ticket.lng is not None and ticket.lat is not None
        else None,
        grid_geom=grid_geom, rules=CheckInRules.from_config(current_app.config),
    )
    return Checked("check_in", actor, ticket, body, {"point": point, "verdict": verdict})


def do_check_in(checked: Checked) -> Event:
    """Record the check-in whatever its verdict; only an accepted one puts the worker on site.

    A refused attempt is committed too (a ``check_in_refused`` event and its row), and
    ``resolved["refusal"]`` tells the caller to answer 422 ``checkin_refused``: the phone
    shows why, and the worker can try again or give a reason.
    """
    ticket, body = checked.ticket, checked.body
    assert ticket is not None
    lng, lat = checked.resolved["point"]
    verdict: Verdict = checked.resolved["verdict"]
    now = checked.now()
    db.session.add(CheckIn(
        ticket_id=ticket.id, user_id=checked.actor.id, lng=lng, lat=lat, crs=str(body.crs),
        accuracy_m=body.accuracy_m, fix_age_s=body.fix_age_s, distance_m=verdict.distance_m,
        verdict=verdict.verdict, flags=verdict.flags, reason=body.reason, at=now,
    ))
    data = {
        "lng": round(lng, 7), "lat": round(lat, 7), "accuracy_m": body.accuracy_m,
        "fix_age_s": body.fix_age_s, **verdict.as_dict(), "reason": body.reason,
    }
    if verdict.refused:
        checked.resolved["refusal"] = InvalidInput(
            "签到未通过：" + "；".join(verdict.messages), code="checkin_refused",
            flags=verdict.flags, distance_m=data["distance_m"])
        return _record(checked, "check_in_refused", data)
    ticket.status = Status.on_site
    ticket.checked_in_at = now
    return _record(checked, "check_in", data)


def check_reply(actor: User, ticket: Ticket, body: s.ReplyBody) -> Checked:
    _allow(perm.can_reply(actor, ticket), "only the assignee (or the holding unit) may reply")
    _state(ticket, (Status.in_progress, Status.on_site), "reply to")
    _version(ticket, body, actor)
    photo_ids = list(dict.fromkeys(body.photos))
    if photo_ids:
        found = set(db.session.execute(
            sa.select(Photo.id).where(Photo.ticket_id == ticket.id, Photo.id.in_(photo_ids))
        ).scalars())
        missing = [p for p in photo_ids if p not in found]
        if missing:
            raise InvalidInput("photos not uploaded to this ticket", code="unknown_photo",
                               photos=missing)
    return Checked("reply", actor, ticket, body, {"photos": photo_ids})


def do_reply(checked: Checked) -> Event:
    ticket, body = checked.ticket, checked.body
    assert ticket is not None
    ticket.status = Status.replied
    ticket.replied_at = checked.now()
    ticket.reply_result = body.result
    ticket.reply_resolution = str(body.resolution)
    return _record(checked, "reply", {"result": body.result, "resolution": str(body.resolution),
                                      "photos": checked.resolved["photos"]})


def check_upload_photo(actor: User, ticket: Ticket) -> Checked:
    _allow(perm.can_upload_photo(actor, ticket), "only the assignee may add photos")
    _state(ticket, OPEN_STATUSES, "add photos to")
    return Checked("photo", actor, ticket, None)


def do_upload_photo(checked: Checked, photo: Photo) -> Event:
    db.session.add(photo)
    return _record(checked, "photo", {
        "photo": photo.id, "sha256": photo.sha256, "size": photo.size,
        "taken_at": photo.taken_at.isoformat() if photo.taken_at else None,
        "has_gps": photo.lng is not None,
    })


# ---------------------------------------------------------------- review


def check_approve(actor: User, ticket: Ticket, body: s.EmptyBody) -> Checked:
    _allow(perm.can_review(actor, ticket), "only the unit above the handler may approve")
    _state(ticket, (Status.replied,), "approve")
    _version(ticket, body, actor)
    return Checked("approve", actor, ticket, body)


def do_approve(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    ticket.status = Status.closed
    ticket.closed_at = checked.now()
    late = ticket.handling_due is not None and ticket.replied_at is not None \
        and ticket.replied_at > ticket.handling_due
    return _record(checked, "approve", {"late": late})


def check_reject(actor: User, ticket: Ticket, body: s.RejectBody) -> Checked:
    _allow(perm.can_review(actor, ticket), "only the unit above the handler may reject")
    _state(ticket, (Status.replied,), "reject")
    _version(ticket, body, actor)
    return Checked("reject", actor, ticket, body)


def do_reject(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    ticket.status = Status.in_progress
    return _record(checked, "reject", {"reason": checked.body.reason})


# ---------------------------------------------------------------- extensions, urge


def check_request_extension(actor: User, ticket: Ticket, body: s.ExtensionRequestBody) -> Checked:
    _allow(perm.can_request_extension(actor, ticket), "only the assignee may ask for more time")
    _state(ticket, (Status.assigned, Status.in_progress, Status.on_site), "extend")
    _version(ticket, body, actor)
    if ticket.extension_days_requested is not None:
        raise Conflict("an extension request is already waiting for a decision",
                       code="extension_pending")
    return Checked("request_extension", actor, ticket, body)


def do_request_extension(checked: Checked) -> Event:
    ticket, body = checked.ticket, checked.body
    assert ticket is not None
    ticket.extension_days_requested = body.days
    ticket.extension_reason = body.reason
    return _record(checked, "request_extension", {"days": body.days, "reason": body.reason})


def check_decide_extension(actor: User, ticket: Ticket, body: s.ExtensionDecisionBody) -> Checked:
    _allow(perm.can_decide_extension(actor, ticket), "only the unit above may decide extensions")
    _state(ticket, OPEN_STATUSES, "decide an extension of")
    _version(ticket, body, actor)
    if ticket.extension_days_requested is None:
        raise Conflict("no extension was requested", code="no_extension_pending")
    days = body.days or ticket.extension_days_requested
    if body.approve and days > ticket.extension_days_requested:
        raise InvalidInput(f"at most the {ticket.extension_days_requested} days requested",
                           code="invalid_input", field="days")
    return Checked("decide_extension", actor, ticket, body, {"days": days})


def do_decide_extension(checked: Checked) -> Event:
    ticket, body = checked.ticket, checked.body
    assert ticket is not None
    days: int = checked.resolved["days"]
    data: dict[str, Any] = {"approve": body.approve, "requested": ticket.extension_days_requested}
    if body.approve and ticket.handling_due is not None:
        previous: datetime = ticket.handling_due
        ticket.handling_due, provisional = extend(previous, days)
        ticket.deadline_provisional = ticket.deadline_provisional or provisional
        ticket.extension_count += 1
        data |= {"days": days, "from": previous.isoformat(),
                 "handling_due": ticket.handling_due.isoformat()}
    ticket.extension_days_requested = None
    ticket.extension_reason = None
    return _record(checked, "decide_extension", data)


def check_urge(actor: User, ticket: Ticket, body: s.UrgeBody) -> Checked:
    _allow(perm.can_urge(actor, ticket), "only steering staff above the ticket may urge")
    _state(ticket, OPEN_STATUSES, "urge")
    _version(ticket, body, actor)
    return Checked("urge", actor, ticket, body)


def do_urge(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    ticket.urge_count += 1
    event = _record(checked, "urge", {"note": checked.body.note, "count": ticket.urge_count,
                                      "assignee": getattr(ticket.assignee, "username", None)})
    people = ([ticket.assignee_id] if ticket.assignee_id is not None
              else notify.staff_of([ticket.unit_id], notify.HANDLING).get(ticket.unit_id, []))
    _tell(ticket, [p for p in people if p != checked.actor.id], "urged",
          f"工单{ticket.number}被督办：{ticket.title}", checked.body.note or "请抓紧办理。",
          checked.now())
    return event


# ---------------------------------------------------------------- follow-up, reopen


def check_follow_up(actor: User, ticket: Ticket, body: s.FollowUpBody) -> Checked:
    _allow(perm.can_follow_up(actor, ticket), "only the hotline platform or supervisors follow up")
    _state(ticket, (Status.closed,), "follow up")
    _version(ticket, body, actor)
    return Checked("follow_up", actor, ticket, body)


def do_follow_up(checked: Checked) -> Event:
    ticket, body = checked.ticket, checked.body
    assert ticket is not None
    ticket.followup_reached = body.reached
    ticket.satisfaction = str(body.satisfaction) if body.satisfaction else None
    ticket.followup_comment = body.comment
    ticket.followed_up_at = checked.now()
    return _record(checked, "follow_up", {
        "reached": body.reached, "satisfaction": ticket.satisfaction, "comment": body.comment,
    })


def check_reopen(actor: User, ticket: Ticket, body: s.ReopenBody) -> Checked:
    _allow(perm.can_reopen(actor, ticket), "only the hotline platform or supervisors reopen")
    _state(ticket, (Status.closed,), "reopen")
    _version(ticket, body, actor)
    return Checked("reopen", actor, ticket, body)


def do_reopen(checked: Checked) -> Event:
    ticket = checked.ticket
    assert ticket is not None
    now = checked.now()
    deadlines = initial_deadlines(ticket.urgency, now)
    ticket.status = Status.assigned
    ticket.reopen_count += 1
    ticket.response_due = deadlines.response_due
    ticket.handling_due = deadlines.handling_due
    ticket.deadline_provisional = deadlines.provisional
    for column in ("signed_at", "checked_in_at", "replied_at", "closed_at", "reply_result",
                   "reply_resolution", "followup_reached", "satisfaction", "followup_comment",
                   "followed_up_at", "extension_days_requested", "extension_reason"):
        setattr(ticket, column, None)
    return _record(checked, "reopen", {
        "reason": checked.body.reason, "cycle": ticket.reopen_count + 1,
        "response_due": ticket.response_due.isoformat(),
        "handling_due": ticket.handling_due.isoformat(),
    })


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class Action:
    """One ``POST /tickets/{number}/{name}`` action."""

    name: str
    body: type[s.ActionBody]
    check: Callable[[User, Ticket, Any], Checked]
    do: Callable[[Checked], Event]
    summary: str


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("dispatch", s.DispatchBody, check_dispatch, do_dispatch,
               "Send the ticket down to a unit, a grid (its on-duty worker) or a worker"),
        Action("sign", s.EmptyBody, check_sign, do_sign, "Acknowledge the assignment"),
        Action("correct-location", s.CorrectLocationBody, check_correct_location,
               do_correct_location, "Move the ticket to where the problem really is; re-match its grid"),
        Action("return", s.ReturnBody, check_return, do_return,
               "Send it back up as not ours, with a reason"),
        Action("check-in", s.CheckInBody, check_check_in, do_check_in, "GPS proof of presence"),
        Action("reply", s.ReplyBody, check_reply, do_reply, "Report the result, with photos"),
        Action("approve", s.EmptyBody, check_approve, do_approve, "Approve the closure"),
        Action("reject", s.RejectBody, check_reject, do_reject, "Send the reply back"),
        Action("request-extension", s.ExtensionRequestBody, check_request_extension,
               do_request_extension, "Ask for more working days"),
        Action("decide-extension", s.ExtensionDecisionBody, check_decide_extension,
               do_decide_extension, "Grant or refuse an extension"),
        Action("urge", s.UrgeBody, check_urge, do_urge, "A supervisor's notice to hurry"),
        Action("follow-up", s.FollowUpBody, check_follow_up, do_follow_up,
               "Record the citizen's evaluation"),
        Action("reopen", s.ReopenBody, check_reopen, do_reopen, "Start a new handling cycle"),
    )
}


def find_action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise NotFound(f"no action {name!r}", code="unknown_action") from None


# ---------------------------------------------------------------- deadlines and escalation


def _clock_facts(ticket: Ticket) -> TicketFacts:
    """The ticket as plain values for the escalation clocks (which never see the model)."""
    unit, assignee = ticket.unit, ticket.assignee  # relationships: set before any flush
    where = ticket.grid.unit if ticket.grid is not None else unit
    return TicketFacts(
        ticket_id=ticket.id, ticket_type=str(ticket.type), urgency=str(ticket.urgency),
        category_code=ticket.category_code, unit_id=unit.id, unit_path=unit.path,
        unit_level=str(unit.level), scope_path=where.path,
        assignee_id=assignee.id if assignee is not None else None,
        assignee_is_worker=assignee is not None and assignee.role == Role.grid_worker,
        status=str(ticket.status), cycle=ticket.reopen_count, number=ticket.number,
    )


def _sync_clocks(ticket: Ticket, kind: str, now: datetime, data: dict[str, Any]) -> None:
    """Keep the clocks in step with the action (under the ticket lock), the ticket's shown
    deadlines in step with the clocks, and say in the event which deadlines were met."""
    if kind not in WATCHED:
        return
    sync = on_ticket_event(_clock_facts(ticket), kind, now, data)
    for name, value in sync.fields.items():
        setattr(ticket, name, value)
    data.update(sync.event_data)


def check_escalate(ticket: Ticket, clock_id: int, now: datetime) -> Checked | None:
    """A system action: the rung of this clock due at ``now``, or None when nothing is due
    (already fired, stopped, moved). The caller holds the ticket row lock."""
    return check_escalate_many([(ticket, clock_id)], now)[0]


def check_escalate_many(items: list[tuple[Ticket, int]], now: datetime) -> list[Checked | None]:
    """:func:`check_escalate` for a batch of (locked ticket, clock id) — the deadline scan's
    groups — planned in a few statements whatever their number."""
    plans = ladder.plan_many([(t.id, t.number or "", clock_id) for t, clock_id in items], now)
    return [None if plan is None else Checked("escalate", None, ticket, plan, at=now)  # type: ignore[arg-type]
            for (ticket, _), plan in zip(items, plans, strict=True)]


def do_escalate(checked: Checked) -> Event | None:
    """Fire the rung exactly once: the ``fired`` row, the ticket event, the board item and
    the notices, all in the caller's transaction. None when another worker already fired it."""
    return do_escalate_many([checked])[0]


def do_escalate_many(checks: list[Checked]) -> list[Event | None]:
    """:func:`do_escalate` for a batch: one claim for all the rungs, the events in one statement,
    the board items and notices together. Rungs another worker fired already only move
    their clocks on; they get None."""
    plans: list[ladder.Plan] = [c.body for c in checks]
    claimed = ladder.claim_many(plans)
    if lost := [plan for plan, won in zip(plans, claimed, strict=True) if not won]:
        ladder.advance_many(lost)
    firing = [c for c, won in zip(checks, claimed, strict=True) if won]
    if not firing:
        return [None] * len(checks)
    events = iter(_record_many(firing, "escalate", [c.body.event_data() for c in firing],
                               firing[0].now()))
    results = [next(events) if won else None for won in claimed]
    ladder.apply_many([(c.body, e.id) for c, e in zip(checks, results, strict=True)
                       if e is not None])
    return results
