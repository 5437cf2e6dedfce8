"""Random sequences of actions by random people on a few tickets, through the HTTP API, with
the rules every step must keep — each modelled here from DESIGN.md, not read off the code:

* the status moves only along the ticket's flow;
* a 2xx adds exactly one event to the ticket it names, a 4xx changes nothing anywhere;
* a ticket's version is its number of events, and the audit chain verifies;
* nobody sees (GET 200, or in their list) a ticket outside their jurisdiction, and acting on
  such a ticket answers 404 — never 403 or 409, which would disclose that it exists.

The app and the small world are built once per test (pytest fixtures); each Hypothesis
example accepts its own tickets, so examples do not see each other's tickets.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from grids.models import Grid
from hierarchy.models import Unit, User
from server.core.audit import Event, verify_chain
from server.core.db import db
from server.core.outbox import OutboxMessage
from server.tickets.models import Ticket
from tests.conftest import ACCEPT_BODY, Api, World

# ---------------------------------------------------------------- the model (from DESIGN.md)

#: The tree of the test world, child → parent (as tests/conftest.py builds it).
PARENT = {
    "210000": None, "210100": "210000", "210102": "210100", "210103": "210100",
    "210102001": "210102", "210102002": "210102", "210103005": "210103",
    "210102001001": "210102001", "210102001002": "210102001", "210102002001": "210102002",
    "210103005001": "210103005",
}
#: Username → (role, unit code).
PEOPLE = {
    "hotline": ("platform", "210000"), "city": ("platform", "210100"),
    "county": ("supervisor", "210102"), "county2": ("supervisor", "210103"),
    "township": ("station", "210102001"), "township2": ("station", "210102002"),
    "township3": ("station", "210103005"), "contact": ("contact", "210102001001"),
    "worker": ("grid_worker", "210102001001"), "backup": ("grid_worker", "210102001001"),
    "worker2": ("grid_worker", "210102001002"), "worker3": ("grid_worker", "210103005001"),
    "admin": ("admin", "210000"),
}
GRID_MEMBERS = {"G-HHW-01": {"worker", "backup"}, "G-CBD-01": {"worker2"},
                "G-BH-01": {"worker3"}}

OPEN = {"accepted", "assigned", "in_progress", "on_site", "replied"}
#: action → (statuses it may start from, status it leads to; None = unchanged).
FLOW: dict[str, tuple[set[str], str | None]] = {
    # Down the hierarchy; re-dispatching work already under way is steering, not closing.
    "dispatch": ({"accepted", "assigned", "in_progress", "on_site"}, "assigned"),
    # A unit may handle a ticket itself at any level, so an accepted ticket can be signed.
    "sign": ({"accepted", "assigned"}, "in_progress"),
    "return": ({"assigned", "in_progress"}, "assigned"),
    "check-in": ({"in_progress", "on_site"}, "on_site"),
    # Units handling a ticket themselves reply without a GPS check-in.
    "reply": ({"in_progress", "on_site"}, "replied"),
    "approve": ({"replied"}, "closed"),
    "reject": ({"replied"}, "in_progress"),
    "request-extension": ({"assigned", "in_progress", "on_site"}, None),
    "decide-extension": (OPEN, None),
    "urge": (OPEN, None),
    "follow-up": ({"closed"}, None),
    "reopen": ({"closed"}, "assigned"),
    "reveal-reporter": (OPEN | {"closed"}, None),
}


def within(code: str, ancestor: str) -> bool:
    """Is unit ``code`` the unit ``ancestor`` or below it, by walking up the parents."""
    node: str | None = code
    while node is not None:
        if node == ancestor:
            return True
        node = PARENT[node]
    return False


def can_see(username: str, ticket: dict[str, Any]) -> bool:
    role, unit = PEOPLE[username]
    if role == "grid_worker":
        return (ticket["assignee"] == username or ticket["creator"] == username
                or username in GRID_MEMBERS.get(ticket["grid"] or "", set()))
    return within(ticket["unit"], unit)


# ---------------------------------------------------------------- what the steps send

REASON = "不属于本单位管辖"
BODIES: dict[str, list[dict[str, Any]]] = {
    "dispatch": [{"unit": "210102"}, {"unit": "210102001"}, {"unit": "210103"},
                 {"unit": "210102001001"}, {"grid": "G-HHW-01"}, {"grid": "G-CBD-01"},
                 {"grid": "G-BH-01"}, {"worker": "backup"}, {"worker": "worker3"},
                 {"unit": "210102", "grid": "G-HHW-01"}],  # two targets: 422
    "sign": [{}],
    "return": [{"reason": REASON}, {"reason": ""}],
    "check-in": [{"lng": 123.4306, "lat": 41.7421, "accuracy_m": 8, "fix_age_s": 5},
                 {"lng": 200, "lat": 41.7}],
    "reply": [{"result": "已处理完毕", "resolution": "resolved"},
              {"result": "已解释说明", "resolution": "explained"}],
    "approve": [{}],
    "reject": [{"reason": "照片不清楚，请补充"}],
    "request-extension": [{"days": 2, "reason": "等待配件到货"}, {"days": 30, "reason": "太久"}],
    "decide-extension": [{"approve": True}, {"approve": False}],
    "urge": [{"note": "请尽快处理"}],
    "follow-up": [{"reached": True, "satisfaction": "satisfied"}, {"reached": False}],
    "reopen": [{"reason": "市民反映问题仍未解决"}],
    "reveal-reporter": [{}],
}
#: Who usually does what, so random sequences get somewhere; anyone else may try too.
USUAL = {
    "dispatch": ["hotline", "city", "county", "township", "contact"],
    "sign": ["worker", "backup", "worker2", "contact", "township"],
    "return": ["worker", "backup", "contact", "township", "county"],
    "check-in": ["worker", "backup", "worker2", "contact"],
    "reply": ["worker", "backup", "worker2", "contact", "township"],
    "approve": ["township", "county", "city"],
    "reject": ["township", "county"],
    "request-extension": ["worker", "contact", "township"],
    "decide-extension": ["township", "county"],
    "urge": ["county", "city", "township"],
    "follow-up": ["hotline", "county"],
    "reopen": ["hotline", "county"],
    "reveal-reporter": ["hotline", "worker", "township"],
}
#: The usual path, for a rule that pushes a ticket forward.
FORWARD = {
    "accepted": [("hotline", "dispatch", {"unit": "210102"}),
                 ("county", "dispatch", {"unit": "210102001"}),
                 ("township", "dispatch", {"grid": "G-HHW-01"})],
    "assigned": [("worker", "sign", {}), ("township", "dispatch", {"grid": "G-HHW-01"}),
                 ("county", "dispatch", {"unit": "210102001"})],
    "in_progress": [("worker", "check-in", BODIES["check-in"][0]),
                    ("worker", "reply", BODIES["reply"][0])],
    "on_site": [("worker", "reply", BODIES["reply"][0])],
    "replied": [("township", "approve", {}), ("county", "approve", {})],
    "closed": [("hotline", "follow-up", BODIES["follow-up"][0]),
               ("hotline", "reopen", BODIES["reopen"][0])],
}

action_steps = st.sampled_from(sorted(BODIES)).flatmap(lambda action: st.tuples(
    st.just(action),
    st.one_of(st.sampled_from(USUAL[action]), st.sampled_from(sorted(PEOPLE))),
    st.sampled_from(BODIES[action]),
))


@dataclass
class Shared:
    """What lives across examples: the app, the world, and what the run reached."""

    app: Flask
    world: World
    statuses: Counter[str]
    answers: Counter[int]


class TicketFlow(RuleBasedStateMachine):
    tickets = Bundle("tickets")
    shared: Shared

    def __init__(self) -> None:
        super().__init__()
        self.app = self.shared.app
        self.world = self.shared.world
        self.client = self.app.test_client()
        self.numbers: list[str] = []
        self.tag = f"run-{uuid.uuid4().hex[:10]}"  # in this example's titles: lists stay short
        self.before = self._snapshot()
        self.touched: str | None = None  # the ticket the last successful step moved
        self.seen: dict[str, dict[str, Any]] = {}  # each ticket as last fetched one by one
        self.turn = 0

    def api(self, username: str) -> Api:
        return Api(self.client, self.world.tokens[username])

    # ------------------------------------------------------------ reading the truth

    def _snapshot(self) -> dict[str, Any]:
        """Totals, and each of this example's tickets as the database holds it."""
        assignee, creator = sa.orm.aliased(User), sa.orm.aliased(User)
        with self.app.app_context():
            totals = {
                "events": db.session.execute(
                    sa.select(sa.func.count()).select_from(Event)).scalar_one(),
                "outbox": db.session.execute(
                    sa.select(sa.func.count()).select_from(OutboxMessage)).scalar_one(),
            }
            tickets: dict[str, dict[str, Any]] = {}
            numbers = getattr(self, "numbers", [])
            if numbers:
                counts = dict(db.session.execute(
                    sa.select(Event.ticket_id, sa.func.count()).join(
                        Ticket, Ticket.id == Event.ticket_id)
                    .where(Ticket.number.in_(numbers)).group_by(Event.ticket_id)).all())
                rows = db.session.execute(
                    sa.select(Ticket.id, Ticket.number, Ticket.status, Ticket.version,
                              Unit.code, assignee.username, Grid.code, creator.username)
                    .join(Unit, Unit.id == Ticket.unit_id)
                    .outerjoin(assignee, assignee.id == Ticket.assignee_id)
                    .outerjoin(Grid, Grid.id == Ticket.grid_id)
                    .join(creator, creator.id == Ticket.created_by_id)
                    .where(Ticket.number.in_(numbers))).all()
                for tid, number, status, version, unit, who, grid, by in rows:
                    tickets[number] = {"status": str(status), "version": version, "unit": unit,
                                       "assignee": who, "grid": grid, "creator": by,
                                       "events": counts.get(tid, 0)}
            db.session.remove()
        return {**totals, "tickets": tickets}

    # ------------------------------------------------------------ steps

    def _accept(self, by: str) -> str | None:
        source = "patrol" if PEOPLE[by][0] == "grid_worker" else "hotline"
        r = self.api(by).post("/tickets", {**ACCEPT_BODY, "source": source,
                                           "title": f"{ACCEPT_BODY['title']} {self.tag}"})
        self.shared.answers[r.status_code] += 1
        assert r.status_code < 500, r.get_json()
        if r.status_code != 201:
            assert PEOPLE[by][0] == "admin", (by, r.get_json())  # intake roles may accept
            self._expect_nothing_changed()
            return None
        number = r.get_json()["number"]
        self.numbers.append(number)
        after = self._snapshot()
        ticket = after["tickets"][number]
        assert (ticket["status"], ticket["version"], ticket["events"]) == ("accepted", 1, 1)
        assert after["events"] == self.before["events"] + 1
        assert after["outbox"] == self.before["outbox"] + 1
        self.before = after
        self.touched = number
        self.shared.statuses["accepted"] += 1
        return number

    @initialize(target=tickets, by=st.sampled_from(["hotline", "county", "township"]))
    def first_ticket(self, by: str) -> str:
        number = self._accept(by)
        assert number is not None
        return number

    @rule(target=tickets, by=st.sampled_from(["hotline", "city", "township2", "county2",
                                             "contact", "worker3", "admin"]))
    def another_ticket(self, by: str) -> Any:
        if len(self.numbers) >= 4:
            return self.numbers[0]
        number = self._accept(by)
        return number if number is not None else self.numbers[0]

    @rule(number=tickets, step=action_steps)
    def act(self, number: str, step: tuple[str, str, dict[str, Any]]) -> None:
        action, who, body = step
        self._act(number, who, action, body)

    @rule(number=tickets, choice=st.integers(0, 2))
    def forward(self, number: str, choice: int) -> None:
        status = self.before["tickets"][number]["status"]
        options = FORWARD[status]
        who, action, body = options[choice % len(options)]
        self._act(number, who, action, body)

    def _act(self, number: str, who: str, action: str, body: dict[str, Any]) -> None:
        before = self.before["tickets"][number]
        visible = can_see(who, before)
        r = self.api(who).post(f"/tickets/{number}/{action}", body)
        self.shared.answers[r.status_code] += 1
        assert r.status_code < 500, (who, action, body, r.get_json())
        assert r.is_json, "every API answer is JSON"
        if not visible:  # 404, or a 422 about the body alone (it says nothing of the ticket)
            schema_error = r.status_code == 422 and "errors" in r.get_json().get("details", {})
            assert r.status_code == 404 or schema_error, (
                "acting on an invisible ticket must answer 404", who, action, r.get_json())
        if r.status_code // 100 == 2:
            assert visible
            self._expect_one_event(number, action)
        else:
            assert r.status_code in (403, 404, 409, 422), (r.status_code, r.get_json())
            if visible:
                assert r.status_code != 404, (who, action, r.get_json())
            self._expect_nothing_changed()

    # ------------------------------------------------------------ what must hold

    def _expect_one_event(self, number: str, action: str) -> None:
        after = self._snapshot()
        old, new = self.before["tickets"][number], after["tickets"][number]
        starts, leads_to = FLOW[action]
        assert old["status"] in starts, f"{action} succeeded from {old['status']}"
        assert new["status"] == (leads_to or old["status"]), (action, old["status"], new)
        assert new["version"] == old["version"] + 1
        assert new["events"] == old["events"] + 1
        assert after["events"] == self.before["events"] + 1
        for other, state in self.before["tickets"].items():
            if other != number:
                assert after["tickets"][other] == state, "another ticket changed"
        self.shared.statuses[new["status"]] += 1
        if any(old[k] != new[k] for k in ("status", "unit", "assignee", "grid")):
            self.touched = number
        self.before = after

    def _expect_nothing_changed(self) -> None:
        after = self._snapshot()
        assert after == self.before, "a refused request changed something"

    @invariant()
    def versions_count_events(self) -> None:
        for number, ticket in self.before["tickets"].items():
            assert ticket["version"] == ticket["events"], number

    @invariant()
    def chain_verifies(self) -> None:
        with self.app.app_context():
            assert [str(b) for b in verify_chain()] == []

    @invariant()
    def nobody_sees_outside_their_jurisdiction(self) -> None:
        """Checked whenever a ticket's status or whereabouts changed: a refused step is shown
        to change nothing (``_expect_nothing_changed``), so it cannot change what anyone
        sees, and a version-only step (urge, extension …) moves no ticket."""
        if self.touched is None:
            return
        mine = set(self.numbers)
        for username in PEOPLE:
            expected = {n for n, t in self.before["tickets"].items() if can_see(username, t)}
            listed = self.api(username).get("/tickets", q=self.tag).get_json()["items"]
            seen = {t["number"] for t in listed} & mine
            assert seen == expected, (username, seen ^ expected)
        number, self.touched = self.touched, None
        # One ticket, fetched by everyone whose view of it changed and by a rotating few
        # others (the lists above already asked everyone).
        ticket, earlier = self.before["tickets"][number], self.seen.get(number)
        self.seen[number] = ticket
        self.turn += 1
        everyone = sorted(PEOPLE)
        askers = {u for u in everyone if earlier is None or can_see(u, earlier) != can_see(
            u, ticket)} | {everyone[(self.turn * 3 + i) % len(everyone)] for i in range(3)}
        for username in sorted(askers):
            code = self.api(username).get(f"/tickets/{number}").status_code
            assert code == (200 if can_see(username, ticket) else 404), (username, number, code)


def test_random_action_sequences_keep_the_rules(app: Flask, world: World) -> None:
    shared = Shared(app, world, Counter(), Counter())
    machine = type("Machine", (TicketFlow,), {"shared": shared})
    run_state_machine_as_test(machine, settings=settings(
        max_examples=25, stateful_step_count=20, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
    # The run explored the flow, not just its first step (a test that cannot fail is no test).
    assert {"assigned", "in_progress", "replied", "closed"} <= set(shared.statuses), \
        shared.statuses
    assert shared.answers[200] and shared.answers[404] and shared.answers[409], shared.answers
