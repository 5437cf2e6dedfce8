"""Clocks kept in step with the ticket through one hook.

Every ticket action passes through ``server.tickets.operations._record``, which calls
:func:`on_ticket_event` with the ticket's facts as plain values (this module never sees the
ticket model) while the ticket row is locked. The hook starts, stops, moves and re-homes the
ticket's clocks and answers with the deadlines the ticket should display and the clock
outcomes to write into the event, so the events alone say which deadline was met.

What each action does to the clocks:

=================  ==================================================================
accept             start sign (the accepting unit must pass it on or sign) and reply
dispatch           stop sign ("dispatched"), start sign for the new holder; the reply
                   clock follows the ticket to its new holder
sign               stop sign; a grid worker's signature starts the check-in clock
return             stop the holder's clocks; within the grace period (2 working days of
                   the assignment) the holder is excused and the reply clock restarts for
                   the next holder; start sign for the unit it went back to
check_in           stop check-in
reply              stop reply (and an open check-in); start review for the unit above
approve            stop review and anything still open ("closed")
reject             stop review; the reply clock resumes with the same deadline and ladder
decide_extension   an approved extension moves the reply deadline by working days
suspend / resume   suspended time is excluded: the deadline moves by the time suspended
reopen             stop the old cycle's clocks; a new cycle starts sign and reply
urge               marks the ticket's open escalations as urged
=================  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from server.core.aftercommit import in_session, transaction_local
from server.core.db import db

from . import calendar as cal_mod
from . import rules as rules_mod
from .models import Clock, ClockKind, Escalation
from .rules import LEVELS, RETURN_GRACE_WORKING_DAYS, Facts, Rule


@dataclass(frozen=True)
class TicketFacts:
    """The ticket as the clocks need it, after the action changed it."""

    ticket_id: int
    ticket_type: str
    urgency: str
    category_code: str | None
    #: The unit holding the ticket, its materialised path and level.
    unit_id: int
    unit_path: str
    unit_level: str
    #: Where the ticket is: its grid's village when it has a grid, else the holding unit.
    #: Rules of a county apply to tickets located in that county.
    scope_path: str
    assignee_id: int | None
    assignee_is_worker: bool
    status: str
    #: 0 for the first handling cycle, +1 per reopen.
    cycle: int
    #: The ticket's number, copied onto its clocks for the reminders.
    number: str | None = None


@dataclass
class ClockSync:
    """What the ticket should show after the hook, and what the event should say."""

    fields: dict[str, Any] = field(default_factory=dict)
    event_data: dict[str, Any] = field(default_factory=dict)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parent_of(path: str, level: str) -> tuple[int, str, str]:
    """(id, path, level) of the unit above, read off a materialised path; the root is its
    own parent."""
    ids = [p for p in path.strip("/").split("/") if p]
    if len(ids) < 2:
        return int(ids[-1]), path, level
    parent_path = "/" + "/".join(ids[:-1]) + "/"
    index = LEVELS.index(level) if level in LEVELS else 1
    return int(ids[-2]), parent_path, LEVELS[max(index - 1, 0)]


#: A due-soon point further ahead than this when it is set is left to the due-soon sweep
#: (``escalation.scan``), which reads ``due_soon_at`` behind its mark and never writes the
#: clock. A nearer one — a deadline moved, a rule tightened, a clock resumed — might lie
#: behind the mark before this transaction commits, so it becomes the clock's own next
#: firing time, as every other rung is. Ten minutes: far longer than any ticket action's
#: transaction, ten scans at the usual one a minute.
SWEEP_LEAD = timedelta(minutes=10)


def first_fire(step: int, due_soon_at: datetime | None, due_at: datetime, rule: Rule,
               calendar: cal_mod.WorkCalendar, now: datetime) -> tuple[int, datetime]:
    """(step, next firing time) of an open, running clock with a deadline.

    Step 0 waits for the due-soon reminder: at ``due_soon_at`` itself when that is near
    (:data:`SWEEP_LEAD`), else the sweep sends it and the clock is next looked at on its
    deadline — still at step 0, which the ladder reads as "overdue next"."""
    if step == 0 and due_soon_at is None:
        step = 1  # no reminder for this rule: the deadline is the first rung
    if step == 0 and due_soon_at is not None and due_soon_at <= now + SWEEP_LEAD:
        return step, due_soon_at
    return step, rule.rung_at(due_at, max(step, 1), calendar)


def reminded(step: int, due_soon_at: datetime | None, now: datetime) -> bool:
    """Has this clock's due-soon point been reached (so its reminder went, or is going)?
    A swept reminder leaves ``step`` at 0, so the point itself says it."""
    return step > 0 or (due_soon_at is not None and due_soon_at <= now)


def fire_time(clock: Clock, rule: Rule | None, calendar: cal_mod.WorkCalendar,
              now: datetime) -> datetime | None:
    """When the scan must next look at this clock (None: never, unless something changes)."""
    if clock.stopped_at is not None or clock.suspended_at is not None:
        return None
    if clock.due_at is None or rule is None:
        return None
    clock.step, at = first_fire(clock.step, clock.due_soon_at, clock.due_at, rule, calendar,
                                now)
    return at


class _Run:
    """One hook call: the ticket's clocks, loaded once, changed in memory."""

    def __init__(self, facts: TicketFacts, at: datetime, kind: str) -> None:
        self.facts = facts
        self.at = at
        self.rules = rules_mod.current()
        self.cal = cal_mod.current()
        born = _born_clocks()
        self.new_ticket = kind == "accept" or _alive(born.get(facts.ticket_id))
        if kind == "accept":
            # A ticket being accepted has no clocks yet: nothing to read. Its clocks stay
            # known to this transaction, so an action that follows in it (auto-dispatch)
            # neither reads them back nor needs them written first.
            self.clocks: list[Clock] = born.setdefault(facts.ticket_id, [])
        elif self.new_ticket:
            self.clocks = born[facts.ticket_id]
        else:
            self.clocks = list(db.session.execute(
                sa.select(Clock).where(
                    Clock.ticket_id == facts.ticket_id,
                    sa.or_(Clock.stopped_at.is_(None), Clock.cycle == facts.cycle),
                ).order_by(Clock.id)
            ).scalars())
        self.outcomes: list[dict[str, Any]] = []
        self.provisional_spans: list[tuple[datetime, datetime]] = []
        self.extra: dict[str, Any] = {}

    # ------------------------------------------------------------ lookups

    def open(self, kind: str) -> Clock | None:
        for clock in self.clocks:
            if clock.kind == kind and clock.stopped_at is None:
                return clock
        return None

    def last(self, kind: str) -> Clock | None:
        found = [c for c in self.clocks if c.kind == kind and c.cycle == self.facts.cycle]
        return max(found, key=lambda c: c.seq) if found else None

    def rule_facts(self, level: str | None = None) -> Facts:
        f = self.facts
        return Facts(f.ticket_type, f.category_code, f.urgency, level or f.unit_level,
                     f.scope_path)

    # ------------------------------------------------------------ changes

    def start(self, kind: str, *, unit: tuple[int, str, str] | None = None,
              assignee_id: int | None = None, seq: int | None = None) -> Clock:
        f = self.facts
        unit_id, unit_path, level = unit or (f.unit_id, f.unit_path, f.unit_level)
        previous = self.last(kind)
        resolved = self.rules.resolve(kind, self.rule_facts(level), self.at, self.cal)
        clock = Clock(
            ticket_id=f.ticket_id, ticket_number=f.number, cycle=f.cycle, kind=kind,
            seq=seq or ((previous.seq + 1) if previous else 1),
            rule_code=resolved.code, calendar_version=self.cal.version,
            ticket_type=f.ticket_type, category_code=f.category_code, urgency=f.urgency,
            level=level, scope_path=f.scope_path, unit_id=unit_id, unit_path=unit_path,
            assignee_id=assignee_id, started_at=self.at, due_at=resolved.due_at,
            provisional=resolved.provisional, step=0, extended_days=0, suspended_seconds=0,
            excused=False,
        )
        clock.due_soon_at = (resolved.rule.due_soon_at(self.at, resolved.due_at)
                             if resolved.rule and resolved.due_at else None)
        clock.next_fire_at = fire_time(clock, resolved.rule, self.cal, self.at)
        if resolved.provisional and resolved.due_at is not None:
            self.provisional_spans.append((self.at, resolved.due_at))
        db.session.add(clock)
        self.clocks.append(clock)
        return clock

    def stop(self, clock: Clock | None, reason: str, *, excused: bool = False) -> None:
        if clock is None or clock.stopped_at is not None:
            return
        if clock.suspended_at is not None:
            self._unsuspend(clock)
        clock.stopped_at = self.at
        clock.stop_reason = reason
        clock.next_fire_at = None
        overdue = clock.due_at is not None and self.at > clock.due_at
        if overdue and clock.breached_at is None:
            clock.breached_at = clock.due_at
        # The grace period excuses the holder (not counted late); the breach stays on record.
        clock.excused = excused
        if clock.due_at is not None:
            self.outcomes.append({
                "clock": clock.kind, "due": _iso(clock.due_at), "late": clock.late(),
                "overdue_minutes": max(0, int((self.at - clock.due_at).total_seconds() // 60)),
                "excused": clock.excused, "rule": clock.rule_code,
            })
        if clock.step >= 2:  # rung 1 (overdue) fired: board items may be open
            self.resolve_escalations(clock, reason)

    def resolve_escalations(self, clock: Clock, reason: str) -> None:
        db.session.execute(
            sa.update(Escalation)
            .where(Escalation.clock_id == clock.id, Escalation.resolved_at.is_(None))
            .values(resolved_at=self.at, resolution=reason)
        )

    def set_due(self, clock: Clock, due: datetime | None, provisional: bool,
                rule: Rule | None, reason: str) -> None:
        """Move a clock's deadline; past rungs stay fired unless it moved beyond now."""
        if due == clock.due_at and rule is not None and rule.code == clock.rule_code:
            return
        was_reminded = reminded(clock.step, clock.due_soon_at, self.at)
        clock.due_at = due
        clock.provisional = provisional
        clock.rule_code = rule.code if rule else None
        clock.calendar_version = self.cal.version
        clock.due_soon_at = rule.due_soon_at(clock.started_at, due) if rule and due else None
        if due is not None and provisional:
            self.provisional_spans.append((self.at, due))
        if due is not None and self.at < due and was_reminded:
            if clock.step >= 2:
                self.resolve_escalations(clock, reason)
            clock.step = 0 if clock.due_soon_at is not None and self.at < clock.due_soon_at else 1
        clock.next_fire_at = fire_time(clock, rule, self.cal, self.at)

    def rehome(self, clock: Clock | None, reason: str) -> None:
        """The ticket moved: the clock follows it to the new holder, and a rule that depends
        on where the ticket is or who holds it is resolved again from the clock's start."""
        if clock is None:
            return
        f = self.facts
        clock.unit_id, clock.unit_path = f.unit_id, f.unit_path
        clock.assignee_id = f.assignee_id
        if clock.level == f.unit_level and clock.scope_path == f.scope_path:
            return
        clock.level, clock.scope_path = f.unit_level, f.scope_path
        resolved = self.rules.resolve(clock.kind, self.rule_facts(), clock.started_at, self.cal)
        due = self._with_extras(clock, resolved.due_at)
        self.set_due(clock, due, resolved.provisional, resolved.rule, reason)

    def _with_extras(self, clock: Clock, base: datetime | None) -> datetime | None:
        """A rule's deadline plus the clock's granted extensions and suspended time."""
        if base is None:
            return None
        due = base
        if clock.extended_days:
            due = self.cal.add_working_days(due, clock.extended_days)[0]
        return due + timedelta(seconds=clock.suspended_seconds)

    def _unsuspend(self, clock: Clock) -> None:
        assert clock.suspended_at is not None
        paused = self.at - clock.suspended_at
        clock.suspended_seconds += int(paused.total_seconds())
        if clock.step == 0 and reminded(0, clock.due_soon_at, clock.suspended_at):
            clock.step = 1  # reminded before the pause: the moved point is not reminded again
        clock.suspended_at = None
        if clock.due_at is not None:
            clock.due_at += paused
            if clock.due_soon_at is not None:
                clock.due_soon_at += paused

    # ------------------------------------------------------------ results

    def sync(self, data: dict[str, Any]) -> ClockSync:
        out = ClockSync()
        sign, reply = self.open(ClockKind.sign), self.open(ClockKind.reply)
        if sign is not None:
            out.fields["response_due"] = sign.due_at
        if reply is not None:
            out.fields["handling_due"] = reply.due_at
        open_clocks = [c for c in self.clocks if c.stopped_at is None]
        out.fields["deadline_provisional"] = any(c.provisional for c in open_clocks)
        for key, clock in (("response_due", sign), ("handling_due", reply)):
            if key in data and clock is not None:
                out.event_data[key] = _iso(clock.due_at)
        if "provisional" in data:
            out.event_data["provisional"] = out.fields["deadline_provisional"]
        if self.outcomes:
            out.event_data["sla"] = self.outcomes
        out.event_data.update(self.extra)
        return out


# ---------------------------------------------------------------- per action


def _accept(run: _Run, data: dict[str, Any]) -> None:
    run.start(ClockKind.sign, assignee_id=run.facts.assignee_id)
    run.start(ClockKind.reply, assignee_id=run.facts.assignee_id)


def _dispatch(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.sign), "dispatched")
    run.stop(run.open(ClockKind.check_in), "dispatched")
    run.start(ClockKind.sign, assignee_id=run.facts.assignee_id)
    reply = run.open(ClockKind.reply)
    if reply is None and run.last(ClockKind.reply) is None:
        reply = run.start(ClockKind.reply, assignee_id=run.facts.assignee_id)
    run.rehome(reply, "dispatched")


def _sign(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.sign), "signed")
    run.rehome(run.open(ClockKind.reply), "signed")
    if run.facts.assignee_is_worker and run.open(ClockKind.check_in) is None:
        run.start(ClockKind.check_in, assignee_id=run.facts.assignee_id)


def _return(run: _Run, data: dict[str, Any]) -> None:
    assignment = run.last(ClockKind.sign)
    grace_end = None
    if assignment is not None:
        grace_end = run.cal.add_working_days(assignment.started_at, RETURN_GRACE_WORKING_DAYS)[0]
    within = grace_end is not None and run.at <= grace_end
    run.stop(run.open(ClockKind.sign), "returned", excused=within)
    run.stop(run.open(ClockKind.check_in), "returned", excused=within)
    reply = run.open(ClockKind.reply)
    if within and reply is not None and reply.breached_at is None:
        run.stop(reply, "returned", excused=True)
        run.start(ClockKind.reply, assignee_id=run.facts.assignee_id)
    else:
        run.rehome(reply, "returned")
    run.start(ClockKind.sign, assignee_id=run.facts.assignee_id)
    run.extra["return"] = {"within_grace": within, "grace_until": _iso(grace_end)}


def _check_in(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.check_in), "checked_in")


def _reply(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.reply), "replied")
    run.stop(run.open(ClockKind.check_in), "replied")
    run.stop(run.open(ClockKind.sign), "replied")
    reviewer = parent_of(run.facts.unit_path, run.facts.unit_level)
    run.start(ClockKind.review, unit=reviewer)


def _approve(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.review), "approved")
    for clock in list(run.clocks):
        run.stop(clock, "closed")


def _reject(run: _Run, data: dict[str, Any]) -> None:
    run.stop(run.open(ClockKind.review), "rejected")
    previous = run.last(ClockKind.reply)
    if previous is None or run.open(ClockKind.reply) is not None:
        return
    resumed = run.start(ClockKind.reply, assignee_id=run.facts.assignee_id)
    # Same deadline, same ladder: the rejection does not buy time or re-send alerts.
    resumed.started_at = previous.started_at
    resumed.rule_code = previous.rule_code
    resumed.due_at, resumed.due_soon_at = previous.due_at, previous.due_soon_at
    resumed.extended_days = previous.extended_days
    resumed.suspended_seconds = previous.suspended_seconds
    resumed.breached_at = previous.breached_at
    resumed.provisional = previous.provisional
    resumed.calendar_version = previous.calendar_version
    resumed.step = max(previous.step, 1) if reminded(previous.step, previous.due_soon_at,
                                                      run.at) else previous.step
    resumed.next_fire_at = fire_time(resumed, run.rules.by_code(resumed.rule_code), run.cal,
                                     run.at)


def _decide_extension(run: _Run, data: dict[str, Any]) -> None:
    days = data.get("days")
    if not data.get("approve") or not days:
        return
    clock = run.open(ClockKind.reply) or run.last(ClockKind.reply)
    if clock is None or clock.due_at is None:
        return
    due, provisional = run.cal.add_working_days(clock.due_at, int(days))
    clock.extended_days += int(days)
    if clock.stopped_at is not None:
        clock.due_at = due
        clock.provisional = clock.provisional or provisional
        return
    run.set_due(clock, due, clock.provisional or provisional,
                run.rules.by_code(clock.rule_code), "extended")


def _suspend(run: _Run, data: dict[str, Any]) -> None:
    for clock in run.clocks:
        if clock.stopped_at is None and clock.suspended_at is None:
            clock.suspended_at = run.at
            clock.next_fire_at = None


def _resume(run: _Run, data: dict[str, Any]) -> None:
    for clock in run.clocks:
        if clock.stopped_at is None and clock.suspended_at is not None:
            # A breach recorded before the suspension stays recorded, and the board items
            # stay open; only the next rung waits for the moved deadline.
            run._unsuspend(clock)
            clock.next_fire_at = fire_time(clock, run.rules.by_code(clock.rule_code), run.cal,
                                           run.at)


def _reopen(run: _Run, data: dict[str, Any]) -> None:
    for clock in list(run.clocks):
        if clock.stopped_at is None:
            run.stop(clock, "reopened")
    run.start(ClockKind.sign, assignee_id=run.facts.assignee_id)
    run.start(ClockKind.reply, assignee_id=run.facts.assignee_id)


_HANDLERS: dict[str, Any] = {
    "accept": _accept, "dispatch": _dispatch, "sign": _sign, "return": _return,
    "check_in": _check_in, "reply": _reply, "approve": _approve, "reject": _reject,
    "decide_extension": _decide_extension, "suspend": _suspend, "resume": _resume,
    "reopen": _reopen,
}


#: The ticket event kinds that move clocks (others — photos, follow-ups, escalations — don't).
WATCHED = frozenset({*_HANDLERS, "urge"})


def on_ticket_event(facts: TicketFacts, kind: str, at: datetime,
                    data: dict[str, Any]) -> ClockSync:
    """Bring the ticket's clocks in step with an action that just changed it.

    Runs inside the action's transaction, under the ticket row lock; never commits.
    """
    if kind == "urge":
        _urge_only(facts, at)
        return ClockSync()
    handler = _HANDLERS.get(kind)
    if handler is None:
        return ClockSync()
    run = _Run(facts, at, kind)
    handler(run, data)
    if run.provisional_spans:
        from .notify import alert_missing_years

        years: set[int] = set()
        for start, end in run.provisional_spans:
            years.update(run.cal.missing_years(start, end))
        alert_missing_years(sorted(years), at)
    if not run.new_ticket:
        db.session.flush()
    # A new ticket's clocks go in with the transaction's next flush, in their final state:
    # accepted and auto-dispatched, the stopped sign clock is inserted stopped, not updated.
    return run.sync(data)


#: ``session.info`` key: the clocks of tickets accepted in the session's transaction.
_BORN = "clocks_of_new_tickets"


def _born_clocks() -> dict[int, list[Clock]]:
    return transaction_local(_BORN, dict)


def _alive(clocks: list[Clock] | None) -> bool:
    """Whether a remembered list still belongs to this transaction (a savepoint rolled back
    would have taken its clocks out of the session)."""
    return clocks is not None and all(in_session(c) for c in clocks)


def _urge_only(facts: TicketFacts, at: datetime) -> None:
    db.session.execute(
        sa.update(Escalation)
        .where(Escalation.ticket_id == facts.ticket_id, Escalation.resolved_at.is_(None))
        .values(urged_at=at, urge_count=Escalation.urge_count + 1)
    )
