"""Deadline rules: which clock, for which tickets, how long, and how the ladder climbs.

A rule matches a ticket by type, category (code prefix), urgency and the level of the unit
holding it; empty criteria match everything. Rules belong to a scope — the whole system, or
a province, city or county, applying to tickets located there. Resolution:

1. at each scope on the ticket's path, the most specific matching rule (most criteria set,
   then the longest category prefix) — so a scope can make exceptions to its own defaults;
2. across scopes, the rule giving the earliest deadline — a county may tighten what the
   province set, never loosen it (ties go to the lower scope).

The seeded defaults follow the published local rules the escalation issue cites: sign within
15 minutes when life or property is threatened (emergency) and 30 minutes for water, power,
gas or heating outages (urgent), natural time with holidays included, otherwise 1 working
day; handle within 5 working days (24 hours for emergencies). Check-in and review defaults are
this project's assumptions, editable like the rest.
"""

from __future__ import annotations

import threading
import time as _time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from .calendar import CACHE_SECONDS, WorkCalendar
from .models import ClockKind, SlaRule, TimeUnit

#: A wrong assignment returned within this many working days is not counted as late.
RETURN_GRACE_WORKING_DAYS = 2
#: One extension per cycle, of at most this many working days.
MAX_EXTENSIONS = 1
MAX_EXTENSION_DAYS = 10
LEVELS = ("province", "city", "county", "township", "village")


@dataclass(frozen=True)
class Facts:
    """What a rule looks at (plain values, copied from the ticket onto its clock)."""

    ticket_type: str
    category_code: str | None
    urgency: str
    level: str
    scope_path: str


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    clock: str
    amount: int
    unit: str
    scope_path: str | None = None
    scope_unit_id: int | None = None
    ticket_type: str | None = None
    category_prefix: str | None = None
    urgency: str | None = None
    level: str | None = None
    due_soon_percent: int = 80
    repeat_amount: int = 1
    repeat_unit: str = TimeUnit.working_days
    top_level: str | None = "county"
    enabled: bool = True

    @property
    def natural(self) -> bool:
        return self.unit != TimeUnit.working_days

    def matches(self, facts: Facts) -> bool:
        if not self.enabled:
            return False
        if self.scope_path is not None and not facts.scope_path.startswith(self.scope_path):
            return False
        if self.ticket_type is not None and self.ticket_type != facts.ticket_type:
            return False
        if self.urgency is not None and self.urgency != facts.urgency:
            return False
        if self.level is not None and self.level != facts.level:
            return False
        if self.category_prefix is None:
            return True
        return facts.category_code is not None and facts.category_code.startswith(
            self.category_prefix)

    def specificity(self) -> tuple[int, int]:
        criteria = sum(x is not None for x in (self.ticket_type, self.urgency, self.level,
                                                 self.category_prefix))
        return criteria, len(self.category_prefix or "")

    def deadline(self, start: datetime, calendar: WorkCalendar) -> tuple[datetime, bool]:
        return span(start, self.amount, self.unit, calendar)

    def due_soon_at(self, start: datetime, due: datetime) -> datetime | None:
        if not self.due_soon_percent or due <= start:
            return None
        return start + (due - start) * self.due_soon_percent / 100

    def rung_at(self, due: datetime, rung: int, calendar: WorkCalendar) -> datetime:
        """When rung ``rung`` (1 = overdue, 2 … escalate again) fires."""
        if rung <= 1:
            return due
        return span(due, self.repeat_amount * (rung - 1), self.repeat_unit, calendar)[0]


def span(start: datetime, amount: int, unit: str, calendar: WorkCalendar) -> tuple[datetime, bool]:
    """``start`` plus an amount of natural or working time; (end, provisional)."""
    if unit == TimeUnit.minutes:
        return start + timedelta(minutes=amount), False
    if unit == TimeUnit.hours:
        return start + timedelta(hours=amount), False
    if unit == TimeUnit.working_days:
        return calendar.add_working_days(start, amount)
    raise ValueError(f"unknown time unit {unit!r}")


M, H, WD = TimeUnit.minutes, TimeUnit.hours, TimeUnit.working_days

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("default.sign.emergency", "特急：15分钟内签收（危及生命财产安全）", "sign", 15, M,
         urgency="emergency", repeat_amount=15, repeat_unit=M),
    Rule("default.sign.urgent", "紧急：30分钟内签收（停水停电停气停暖）", "sign", 30, M,
         urgency="urgent", repeat_amount=30, repeat_unit=M),
    Rule("default.sign", "1个工作日内签收", "sign", 1, WD),
    Rule("default.check_in.emergency", "特急：签收后1小时内到场", "check_in", 1, H,
         urgency="emergency", repeat_amount=1, repeat_unit=H, top_level=None),
    Rule("default.check_in.urgent", "紧急：签收后2小时内到场", "check_in", 2, H,
         urgency="urgent", repeat_amount=2, repeat_unit=H, top_level=None),
    Rule("default.check_in", "签收后1个工作日内到场", "check_in", 1, WD, top_level=None),
    Rule("default.reply.emergency", "特急：24小时内办结反馈", "reply", 24, H,
         urgency="emergency", repeat_amount=4, repeat_unit=H),
    Rule("default.reply", "5个工作日内办结反馈", "reply", 5, WD),
    Rule("default.review", "1个工作日内审核", "review", 1, WD),
)


@dataclass(frozen=True)
class Resolved:
    rule: Rule | None
    due_at: datetime | None
    provisional: bool

    @property
    def code(self) -> str | None:
        return self.rule.code if self.rule else None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    token: str = "defaults"
    #: (clock, facts) → the matching rules: recomputation resolves the same facts often.
    _matching: dict[tuple[str, Facts], tuple[Rule, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False)

    def matching(self, clock: str, facts: Facts) -> tuple[Rule, ...]:
        key = (clock, facts)
        found = self._matching.get(key)
        if found is None:
            found = tuple(r for r in self.rules if r.clock == clock and r.matches(facts))
            if len(self._matching) < 50_000:
                self._matching[key] = found
        return found

    def by_code(self, code: str | None) -> Rule | None:
        if code is None:
            return None
        for rule in self.rules:
            if rule.code == code:
                return rule
        return None

    def resolve(self, clock: str, facts: Facts, start: datetime,
                calendar: WorkCalendar) -> Resolved:
        """The rule in force for this clock and its deadline from ``start``."""
        best_per_scope: dict[str | None, Rule] = {}
        for rule in self.matching(clock, facts):
            held = best_per_scope.get(rule.scope_path)
            if held is None or rule.specificity() > held.specificity():
                best_per_scope[rule.scope_path] = rule
            elif rule.specificity() == held.specificity() and (
                    rule.deadline(start, calendar)[0] < held.deadline(start, calendar)[0]):
                # Same scope, equally specific: the tighter one.
                best_per_scope[rule.scope_path] = rule
        chosen: Resolved = Resolved(None, None, False)
        # Upper scopes first; a lower scope replaces the choice only with an earlier or equal
        # deadline (tighten, never loosen).
        for scope in sorted(best_per_scope, key=lambda p: -1 if p is None else len(p)):
            rule = best_per_scope[scope]
            due, provisional = rule.deadline(start, calendar)
            if chosen.due_at is None or due <= chosen.due_at:
                chosen = Resolved(rule, due, provisional)
        return chosen


DEFAULTS = RuleSet(DEFAULT_RULES)


# ---------------------------------------------------------------- loading and caching

_lock = threading.Lock()
_cache: weakref.WeakKeyDictionary[object, tuple[float, RuleSet]] = weakref.WeakKeyDictionary()


def rule_from_row(row: SlaRule, scope_path: str | None) -> Rule:
    return Rule(
        code=row.code, name=row.name, clock=row.clock, amount=row.amount, unit=row.unit,
        scope_path=scope_path, scope_unit_id=row.scope_unit_id, ticket_type=row.ticket_type,
        category_prefix=row.category_prefix, urgency=row.urgency, level=row.level,
        due_soon_percent=row.due_soon_percent, repeat_amount=row.repeat_amount,
        repeat_unit=row.repeat_unit, top_level=row.top_level, enabled=row.enabled,
    )


def load_rules() -> RuleSet:
    """All rules, disabled ones included (clocks may name them), from the database; the
    built-in defaults while the table has never been seeded."""
    from hierarchy.models import Unit
    from server.core.db import db

    from .models import EscalationState

    rows = db.session.execute(
        sa.select(SlaRule, Unit.path).outerjoin(Unit, Unit.id == SlaRule.scope_unit_id)
        .order_by(SlaRule.id)
    ).all()
    if not rows:
        return DEFAULTS
    token = db.session.execute(
        sa.select(EscalationState.rules_token).where(EscalationState.id == 1)
    ).scalar_one_or_none() or "unseeded"
    return RuleSet(tuple(rule_from_row(r, p) for r, p in rows), token=token)


def current() -> RuleSet:
    """The rules in force (cached per engine, re-checked every few seconds)."""
    try:
        from server.core.db import db

        engine = db.engine
    except RuntimeError:
        return DEFAULTS
    now = _time.monotonic()
    with _lock:
        cached = _cache.get(engine)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    from server.core.db import db

    from .models import EscalationState

    token = db.session.execute(
        sa.select(EscalationState.rules_token).where(EscalationState.id == 1)
    ).scalar_one_or_none()
    if cached is not None and token is not None and cached[1].token == token:
        rules = cached[1]
    else:
        rules = load_rules()
    with _lock:
        _cache[engine] = (now, rules)
    return rules


def forget_cached() -> None:
    try:
        from server.core.db import db

        engine = db.engine
    except RuntimeError:
        return
    with _lock:
        _cache.pop(engine, None)


def seed_rows(rules: Iterable[Rule] = DEFAULT_RULES) -> list[dict[str, object]]:
    """Rows for ``sla_rules`` (the migration and :func:`seed_defaults` insert these)."""
    return [
        {"code": r.code, "name": r.name, "clock": r.clock, "scope_unit_id": None,
         "ticket_type": r.ticket_type, "category_prefix": r.category_prefix,
         "urgency": r.urgency, "level": r.level, "amount": r.amount, "unit": str(r.unit),
         "due_soon_percent": r.due_soon_percent, "repeat_amount": r.repeat_amount,
         "repeat_unit": str(r.repeat_unit), "top_level": r.top_level, "enabled": r.enabled}
        for r in rules
    ]


def validate(rule: Rule) -> None:
    """Raise ValueError for a rule that cannot work."""
    if rule.clock not in {str(k) for k in ClockKind}:
        raise ValueError(f"clock must be one of {[str(k) for k in ClockKind]}")
    if rule.unit not in {str(u) for u in TimeUnit} or rule.repeat_unit not in {
            str(u) for u in TimeUnit}:
        raise ValueError(f"unit must be one of {[str(u) for u in TimeUnit]}")
    if rule.amount < 1 or rule.repeat_amount < 1:
        raise ValueError("amounts must be at least 1")
    if not 0 <= rule.due_soon_percent < 100:
        raise ValueError("due_soon_percent must be between 0 and 99")
    if rule.top_level not in (None, "county", "city"):
        raise ValueError("top_level must be county, city or empty")
    if rule.level is not None and rule.level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")


def looser_than_above(rule: Rule, rules: RuleSet, calendar: WorkCalendar,
                      probe: datetime) -> Rule | None:
    """An upper-scope rule this one would loosen (for the same clock and at least the same
    tickets), judged on a sample start; None when it only tightens."""
    if rule.scope_path is None:
        return None
    mine = rule.deadline(probe, calendar)[0]
    for other in rules.rules:
        if other.code == rule.code or not other.enabled or other.clock != rule.clock:
            continue
        if other.scope_path is not None and not rule.scope_path.startswith(other.scope_path):
            continue
        if other.scope_path is not None and other.scope_path == rule.scope_path:
            continue
        # The other rule covers every ticket this one covers.
        covers = all(
            theirs is None or theirs == ours
            for theirs, ours in ((other.ticket_type, rule.ticket_type),
                                 (other.urgency, rule.urgency), (other.level, rule.level))
        ) and (other.category_prefix is None or (
            rule.category_prefix or "").startswith(other.category_prefix))
        if covers and other.deadline(probe, calendar)[0] < mine:
            return other
    return None

