"""Seed the Liaoning demo: real divisions, demo villages, predictable users, grids, tickets.

Everything goes through the same operations administrators and clients use — the division
sync, the units importer, ``do_create_user`` / ``do_create_token``, and for tickets the
``check_*`` / ``do_*`` actions with real actors — so the demo's audit chain is a real one and
the demo cannot show a state the system could not reach. Ticket history is replayed into the
past (``Checked.at``) so deadlines, overdue work and dates look like a month of operation.

Each step is idempotent: a second run finds what exists and adds nothing.
"""

from __future__ import annotations

import csv
import os
import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from werkzeug.security import generate_password_hash

from grids.crs import wgs84_to_gcj02
from grids.models import Grid, GridMember
from hierarchy.divisions import province_divisions
from hierarchy.importer import import_units_file
from hierarchy.models import ApiToken, Level, Role, Unit, User
from hierarchy.operations import SyncReport, do_create_token, do_create_user, do_sync_divisions
from hierarchy.tokens import hash_token
from server.core.audit import EventHead, append_event
from server.core.db import db, utcnow
from server.tickets import operations as ops
from server.tickets import schemas
from server.tickets.models import Ticket
from server.tickets.queries import visible_tickets

from . import texts
from .texts import Topic

PROVINCE = "210000"
DEMO_PASSWORD = "yihao-demo-2026"
UNITS_FILE = Path(__file__).with_name("units.csv")
#: The audit stream whose head says "the demo tickets are all in".
MARKER_STREAM = "demo:seed"
EXTERNAL_PREFIX = "DEMO-"
BATCH = 200
TOKEN_FILE = "demo-hotline-token"

#: The predictable logins of DESIGN.md, besides ``u-<unit>`` and ``w-<grid>``.
NAMED_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "系统管理员", Role.admin, "210000"),
    ("province", "省12345平台", Role.platform, "210000"),
    ("city", "沈阳市12345平台", Role.platform, "210100"),
    ("county", "和平区督办", Role.supervisor, "210102"),
    ("township", "浑河湾街道工作站", Role.station, "210102001"),
)
HOTLINE = "hotline"
ROLE_FOR_LEVEL = {
    Level.province: Role.platform, Level.city: Role.platform, Level.county: Role.supervisor,
    Level.township: Role.station, Level.village: Role.contact,
}


# ---------------------------------------------------------------- the tree


@dataclass(frozen=True)
class DemoVillage:
    """A village or community from ``units.csv``, with the centre its tickets scatter around."""

    code: str
    name: str
    township: str
    lng: float
    lat: float

    @property
    def rural(self) -> bool:
        return self.name.endswith("村")


def demo_villages(path: Path = UNITS_FILE) -> list[DemoVillage]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [DemoVillage(r["code"], r["name"], r["parent_code"], float(r["lng"]),
                            float(r["lat"])) for r in csv.DictReader(fh)]


def seed_divisions() -> SyncReport:
    """Liaoning's official cities, counties and townships (what ``yihao import divisions`` does)."""
    divisions = list(province_divisions(PROVINCE))
    with click.progressbar(divisions, label="行政区划 divisions") as bar:
        report = do_sync_divisions(None, bar)
    db.session.commit()
    return report


def seed_units() -> Any:
    """The demo villages and communities, through the administrators' importer."""
    report = import_units_file(UNITS_FILE)
    if report.problems:
        db.session.rollback()
        problems = "; ".join(f"row {p.row}: {p.message}" for p in report.problems)
        raise click.ClickException(f"{UNITS_FILE.name}: {problems}")
    db.session.commit()
    return report


def _units_by_code(codes: Sequence[str]) -> dict[str, Unit]:
    rows = db.session.execute(sa.select(Unit).where(Unit.code.in_(list(codes)))).scalars()
    return {u.code: u for u in rows}


def demo_units(villages: Sequence[DemoVillage]) -> dict[str, Unit]:
    """The units the demo uses: its villages and every ancestor of them, by code."""
    codes: set[str] = set()
    for v in villages:
        codes |= {PROVINCE, v.code[:4] + "00", v.code[:6], v.township, v.code}
    units = _units_by_code(sorted(codes))
    missing = codes - units.keys()
    if missing:
        raise click.ClickException(f"demo units missing after import: {sorted(missing)}")
    return units


# ---------------------------------------------------------------- people


def _phone_for(username: str) -> str:
    return texts.phone_number(random.Random(zlib.crc32(username.encode())))


def _ensure_user(username: str, display_name: str, role: Role, unit: Unit, password_hash: str,
                 *, is_system: bool = False) -> User:
    user = db.session.execute(sa.select(User).where(User.username == username)).scalar_one_or_none()
    if user is not None:
        return user
    user = do_create_user(None, username=username, display_name=display_name, role=role,
                          unit=unit, phone=_phone_for(username), is_system=is_system)
    if not is_system:
        # One scrypt hash for the one shared demo password: hashing it per user would cost
        # seconds for nothing (the password is printed on the screen anyway).
        user.password_hash = password_hash
    return user


def seed_users(units: dict[str, Unit]) -> dict[str, User]:
    """``admin`` … ``township``, the ``hotline`` system, and ``u-<code>`` for every demo unit."""
    password_hash = generate_password_hash(DEMO_PASSWORD)
    users: dict[str, User] = {}
    for username, display, role, code in NAMED_USERS:
        users[username] = _ensure_user(username, display, role, units[code], password_hash)
    users[HOTLINE] = _ensure_user(HOTLINE, "12345热线平台（系统对接）", Role.platform,
                                  units[PROVINCE], password_hash, is_system=True)
    for code, unit in sorted(units.items()):
        role = ROLE_FOR_LEVEL[Level(unit.level)]
        users[f"u-{code}"] = _ensure_user(f"u-{code}", f"{unit.name}·{role.label}", role, unit,
                                          password_hash)
    db.session.commit()
    return users


def hotline_token(home: Path, hotline: User) -> str:
    """The hotline's API token: the one kept in ``YIHAO_HOME`` while it is valid, else a new one.

    The database keeps only a token's hash, so the demo keeps the plain token beside the
    other generated secrets (mode 0600) to print it again on the next run.
    """
    path = home / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        valid = db.session.execute(sa.select(ApiToken.id).where(
            ApiToken.token_hash == hash_token(token), ApiToken.user_id == hotline.id,
            ApiToken.revoked_at.is_(None))).first()
        if valid:
            return token
    token = do_create_token(None, hotline, "demo")
    db.session.commit()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


# ---------------------------------------------------------------- grids


def grid_count(index: int, village: DemoVillage) -> int:
    """Villages spread wide get three grids; communities two or three."""
    return 3 if village.rural else 2 + index % 2


def _import_demo_polygons(villages: Sequence[DemoVillage]) -> None:
    """Clearly labelled demo polygons inside the real county boundaries, through the same
    importer administrators use (idempotent: a second run changes nothing)."""
    from grids.demo import import_demo_grids

    by_county: dict[str, list[tuple[int, DemoVillage]]] = {}
    for index, village in enumerate(villages):
        by_county.setdefault(village.code[:6], []).append((index, village))
    for county_code, members in by_county.items():
        counts = {v.code: grid_count(i, v) for i, v in members}
        report = import_demo_grids(county_code, [v for _, v in members], counts)
        if report.errors:
            raise RuntimeError(f"demo grids for {county_code} did not import: {report.summary()}")
    db.session.commit()


def seed_grids(villages: Sequence[DemoVillage], units: dict[str, Unit],
               users: dict[str, User]) -> dict[str, list[Grid]]:
    """Grids of every demo village and their grid worker ``w-<grid code>`` (position 0),
    who is added to ``users``.

    The one place demo grids are made: the grids issue adds their polygons here.
    """
    password_hash = generate_password_hash(DEMO_PASSWORD)
    _import_demo_polygons(villages)
    existing = {g.code: g for g in db.session.execute(sa.select(Grid)).scalars()}
    by_village: dict[str, list[Grid]] = {}
    for index, village in enumerate(villages):
        unit = units[village.code]
        grids = by_village.setdefault(village.code, [])
        for n in range(1, grid_count(index, village) + 1):
            code = f"{village.code}-{n:02d}"
            grid = existing.get(code)
            if grid is None:
                grid = Grid(code=code, name=f"{village.name}第{n}网格", unit=unit)
                db.session.add(grid)
                existing[code] = grid
            username = f"w-{code}"
            worker = _ensure_user(username, texts.person_name(random.Random(code)),
                                  Role.grid_worker, unit, password_hash)
            if not any(m.user_id == worker.id for m in grid.members):
                db.session.add(GridMember(grid=grid, user=worker, position=0))
            users[username] = worker
            grids.append(grid)
    db.session.commit()
    return by_village


# ---------------------------------------------------------------- tickets: the plan


#: Scenario name → (weight, open?, steps). ``route`` takes a ticket from the province down
#: to the village's township — through the county, sometimes the city too, sometimes
#: straight to the township; the other steps are one action each (see ``Player.step``).
ROUTE = "route"
GRID_PATH = (ROUTE, "to_grid", "sign", "check_in", "reply")
SCENARIOS: dict[str, tuple[int, bool, tuple[str, ...]]] = {
    "accepted": (2, True, ()),
    "at_city": (2, True, ("to_city",)),
    "at_county": (3, True, ("to_county",)),
    "at_township": (4, True, (ROUTE,)),
    "at_village": (2, True, (ROUTE, "to_village")),
    "at_worker": (5, True, (ROUTE, "to_grid")),
    "in_progress": (7, True, (ROUTE, "to_grid", "sign")),
    "on_site": (4, True, (ROUTE, "to_grid", "sign", "check_in")),
    "replied": (6, True, GRID_PATH),
    "closed": (17, False, (*GRID_PATH, "approve")),
    "followed_up": (16, False, (*GRID_PATH, "approve", "follow_up")),
    "unreached": (2, False, (*GRID_PATH, "approve", "follow_up_unreached")),
    "reopened": (2, True, (*GRID_PATH, "approve", "follow_up_unsatisfied", "reopen")),
    "reopened_signed": (1, True, (*GRID_PATH, "approve", "follow_up_unsatisfied", "reopen",
                                  "sign")),
    "worker_returned": (2, True, (ROUTE, "to_grid", "return")),
    "returned_redone": (2, False, (ROUTE, "to_grid", "sign", "return", "to_other_grid", "sign",
                                   "check_in", "reply", "approve")),
    "township_returned": (2, True, ("to_county", "to_wrong_township", "return", "to_township")),
    "extension_pending": (3, True, (ROUTE, "to_grid", "sign", "request_extension")),
    "extension_granted": (2, True, (ROUTE, "to_grid", "sign", "request_extension",
                                    "grant_extension", "check_in")),
    "extension_refused": (1, False, (ROUTE, "to_grid", "sign", "request_extension",
                                     "refuse_extension", "check_in", "reply", "approve")),
    "urged": (3, True, (ROUTE, "to_grid", "sign", "urge")),
    "urged_unsigned": (1, True, (ROUTE, "to_grid", "urge", "urge")),
    "rejected": (2, True, (*GRID_PATH, "reject")),
    "rejected_then_closed": (1, False, (*GRID_PATH, "reject", "reply", "approve", "follow_up")),
    "county_desk": (2, False, ("to_county", "sign", "reply", "approve")),
    "township_desk": (1, True, (ROUTE, "sign", "reply")),
    "contact_handled": (2, False, (ROUTE, "to_village", "sign", "reply", "approve")),
    "patrol": (4, False, ("contact_to_grid", "sign", "check_in", "reply", "approve")),
    "patrol_open": (1, True, ()),
}
DESK_SCENARIOS = frozenset({"county_desk", "township_desk"})
PATROL_SCENARIOS = frozenset({"patrol", "patrol_open"})
RECENT_SCENARIOS = frozenset({"accepted", "at_city", "patrol_open"})

#: Minutes between one step and the next (before squeezing into the ticket's age).
GAPS: dict[str, tuple[int, int]] = {
    "to_city": (5, 60), "to_county": (5, 120), "to_township": (10, 240), "to_village": (10, 240),
    "to_grid": (10, 240), "to_other_grid": (10, 180), "to_wrong_township": (10, 240),
    "contact_to_grid": (5, 90), "sign": (5, 240), "check_in": (20, 600), "reply": (30, 3000),
    "approve": (30, 1440), "reject": (30, 600), "follow_up": (600, 4320),
    "follow_up_unreached": (600, 4320), "follow_up_unsatisfied": (600, 4320), "reopen": (5, 60),
    "return": (10, 300), "request_extension": (60, 2000), "grant_extension": (30, 600),
    "refuse_extension": (30, 600), "urge": (1440, 4320),
}


@dataclass
class Plan:
    """One demo ticket before it exists: what happens to it, where, and how long ago."""

    scenario: str
    village: DemoVillage
    topic: Topic
    age: timedelta
    seed: int
    external_id: str = ""


def _pick_scenarios(count: int, rng: random.Random) -> list[str]:
    """Every scenario at least once (when there are enough tickets), the rest by weight."""
    names = list(SCENARIOS)
    chosen = names[:count] if count < len(names) else list(names)
    weights = [SCENARIOS[n][0] for n in names]
    chosen += rng.choices(names, weights=weights, k=max(0, count - len(chosen)))
    rng.shuffle(chosen)
    return chosen


def _age(rng: random.Random, scenario: str) -> timedelta:
    _weight, is_open, _steps = SCENARIOS[scenario]
    if scenario in RECENT_SCENARIOS:
        days = rng.uniform(0.01, 1.0)
    elif not is_open:
        days = rng.uniform(1.5, 30.0)
    elif rng.random() < 0.7:
        days = rng.uniform(0.05, 4.0)
    else:
        days = rng.uniform(4.0, 20.0)  # old enough to be overdue: the SLA board has work
    return timedelta(days=days)


def make_plans(count: int, villages: Sequence[DemoVillage], seed: int = 2026) -> list[Plan]:
    """The same plans for the same count, oldest first, numbered ``DEMO-000001`` onwards."""
    rng = random.Random(seed)
    # Where the calls come from: the city districts call most, Shenyang most of all.
    village_weights = [3 if v.code.startswith("210102") else 2 if not v.rural else 1
                       for v in villages]
    desk = [t for t in texts.TOPICS if t.desk]
    plans: list[Plan] = []
    for scenario in _pick_scenarios(count, rng):
        village = rng.choices(villages, weights=village_weights)[0]
        if scenario in DESK_SCENARIOS:
            topics = desk
        else:
            wanted = "rural" if village.rural else "urban"
            topics = [t for t in texts.TOPICS if not t.desk and t.where in ("any", wanted)]
        topic = rng.choices(topics, weights=[t.weight for t in topics])[0]
        plans.append(Plan(scenario, village, topic, _age(rng, scenario), rng.getrandbits(32)))
    plans.sort(key=lambda p: -p.age)
    for number, plan in enumerate(plans, start=1):
        plan.external_id = f"{EXTERNAL_PREFIX}{number:06d}"
    return plans


# ---------------------------------------------------------------- tickets: playing a plan


@dataclass
class Cast:
    """Who acts for each demo unit, and the grids of each village."""

    users: dict[str, User]
    units: dict[str, Unit]
    grids: dict[str, list[Grid]]
    villages: Sequence[DemoVillage]
    #: Units whose predictable named user shares the desk with ``u-<code>``.
    alternates: dict[str, str] = field(default_factory=lambda: {
        "210100": "city", "210102": "county", "210102001": "township"})

    def staff(self, code: str, rng: random.Random) -> User:
        if code == PROVINCE:
            return self.users[HOTLINE]
        alternate = self.alternates.get(code)
        if alternate and rng.random() < 0.5:
            return self.users[alternate]
        return self.users[f"u-{code}"]

    def worker(self, grid: Grid) -> User:
        return self.users[f"w-{grid.code}"]


class Player:
    """Plays one plan through the real actions, each at its moment in the past."""

    def __init__(self, cast: Cast, plan: Plan, now: datetime) -> None:
        self.cast = cast
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.now = now
        self.village = plan.village
        self.county = self.village.code[:6]
        self.city = self.village.code[:4] + "00"
        # Most tickets go from the province to the county; some through the city platform
        # (Anshan's more often), some straight to the township the location matched.
        self.via_city = self.rng.random() < (0.15 if self.city == "210100" else 0.5)
        self.direct = not self.via_city and self.rng.random() < 0.3
        self.grid = self.rng.choice(cast.grids[self.village.code])
        rural = self.village.rural
        place_spot = texts.spot(self.rng, rural, plan.topic.indoor)
        self.short_place = self.village.name + place_spot
        township = cast.units[self.village.township]
        county, city = cast.units[self.county], cast.units[self.city]
        self.address = f"{city.name}{county.name}{township.name}{self.village.name}{place_spot}"
        self.text = texts.compose(plan.topic, self.rng, self.address, self.short_place)
        spread = 0.008 if rural else 0.003
        self.point = (self.village.lng + self.rng.uniform(-spread, spread),
                      self.village.lat + self.rng.uniform(-spread, spread))
        self.ticket: Ticket | None = None

    # -- times

    def schedule(self, steps: Sequence[str]) -> list[datetime]:
        """When each step happens: the accept ``age`` ago, the rest after sampled gaps,
        squeezed when they would run past now."""
        start = self.now - self.plan.age
        gaps = [self.rng.uniform(*GAPS[s]) for s in steps]
        room = max(self.plan.age.total_seconds() / 60 - 1, 0.01 * len(steps))
        scale = min(1.0, room / sum(gaps)) if gaps else 1.0
        times, t = [start], start
        for gap in gaps:
            t += timedelta(minutes=gap * scale)
            times.append(min(t, self.now))
        return times

    # -- actions

    def act(self, actor: User, name: str, body: dict[str, Any], at: datetime) -> None:
        """One action exactly as the API runs it: validate the body, check, then do."""
        action = ops.ACTIONS[name]
        assert self.ticket is not None
        checked = action.check(actor, self.ticket, action.body.model_validate(body))
        action.do(replace(checked, at=at))

    def accept(self, at: datetime) -> Ticket:
        rng, plan = self.rng, self.plan
        patrol = plan.scenario in PATROL_SCENARIOS
        actor = self.cast.worker(self.grid) if patrol else self.cast.users[HOTLINE]
        body: dict[str, Any] = {
            "source": "patrol" if patrol else rng.choices(("hotline", "web", "app"), (85, 7, 8))[0],
            "type": "report" if patrol else plan.topic.type,
            "title": self.text.title, "content": self.text.content,
            "category_code": plan.topic.category,
            "urgency": rng.choices(("normal", "urgent", "emergency"), plan.topic.urgency)[0],
            "address": self.address, "external_id": plan.external_id,
        }
        if patrol or rng.random() < 0.9:
            lng, lat, crs = *self.point, "wgs84"
            if not patrol and rng.random() < 0.3:  # the hotline's map speaks GCJ-02
                lng, lat, crs = *wgs84_to_gcj02(lng, lat), "gcj02"
            body["location"] = {"lng": round(lng, 6), "lat": round(lat, 6), "crs": crs}
        if patrol:
            body["content"] = f"网格员巡查发现：{self.text.content}"
        elif rng.random() < 0.1:
            body["reporter"] = {"anonymous": True}
        else:
            body["reporter"] = {"name": texts.caller_name(rng), "phone": texts.phone_number(rng),
                                "anonymous": False}
        checked = ops.check_accept(actor, schemas.AcceptBody.model_validate(body))
        return ops.do_accept(replace(checked, at=at))

    def holder(self) -> User:
        ticket = self.ticket
        assert ticket is not None
        if ticket.assignee is not None:
            return ticket.assignee
        return self.cast.staff(ticket.unit.code, self.rng)

    def reviewer(self) -> User:
        assert self.ticket is not None
        parent = self.ticket.unit.parent
        assert parent is not None
        return self.cast.staff(parent.code, self.rng)

    def dispatch(self, actor_code: str, at: datetime, **target: str) -> None:
        note = self.rng.choice((None, "请尽快核实处理", "请按时限办理并反馈", "请网格员到现场核实"))
        body = {**target, **({"note": note} if note else {})}
        self.act(self.cast.staff(actor_code, self.rng), "dispatch", body, at)

    def expand(self, steps: Sequence[str]) -> list[str]:
        out: list[str] = []
        for step in steps:
            if step in (ROUTE, "to_county") and self.via_city:
                out.append("to_city")
            if step == ROUTE:
                out += ["to_township"] if self.direct else ["to_county", "to_township"]
            else:
                out.append(step)
        return out

    def step(self, name: str, at: datetime) -> None:
        ticket, rng = self.ticket, self.rng
        assert ticket is not None
        township = self.village.township
        if name == "to_city":
            self.dispatch(PROVINCE, at, unit=self.city)
        elif name == "to_county":
            self.dispatch(ticket.unit.code, at, unit=self.county)
        elif name == "to_township":
            self.dispatch(ticket.unit.code, at, unit=township)
        elif name == "to_wrong_township":
            others = sorted({v.township for v in self.cast.villages
                             if v.code.startswith(self.county)} - {township})
            self.dispatch(self.county, at, unit=rng.choice(others))
        elif name == "to_village":
            self.dispatch(township, at, unit=self.village.code)
        elif name == "to_grid":
            self.dispatch(township, at, grid=self.grid.code)
        elif name == "to_other_grid":
            grids = self.cast.grids[self.village.code]
            self.grid = next((g for g in grids if g.id != self.grid.id), self.grid)
            self.dispatch(township, at, grid=self.grid.code)
        elif name == "contact_to_grid":
            self.dispatch(self.village.code, at, grid=self.grid.code)
        elif name == "sign":
            self.act(self.holder(), "sign", {}, at)
        elif name == "check_in":
            near = (ticket.lng, ticket.lat) if ticket.lng is not None else self.point
            lng, lat = (c + rng.uniform(-3e-4, 3e-4) for c in near)
            self.act(self.holder(), "check-in", {
                "lng": round(lng, 6), "lat": round(lat, 6), "crs": "wgs84",
                "accuracy_m": round(rng.uniform(4, 30), 1), "fix_age_s": rng.randint(1, 20)}, at)
        elif name == "reply":
            resolution = "explained" if self.plan.topic.desk else rng.choices(
                ("resolved", "partially", "unresolved"), (88, 9, 3))[0]
            self.act(self.holder(), "reply", {"result": self.text.reply,
                                              "resolution": resolution}, at)
        elif name == "approve":
            self.act(self.reviewer(), "approve", {}, at)
        elif name == "reject":
            reason = rng.choice(("反馈内容不完整，请补充现场整改后照片", "未说明处理时限，请补充",
                                 "来电人反映问题未解决，请重新核实"))
            self.act(self.reviewer(), "reject", {"reason": reason}, at)
        elif name.startswith("follow_up"):
            self.act(self.cast.users[HOTLINE], "follow-up", self._follow_up(name), at)
        elif name == "reopen":
            reason = rng.choice(("回访市民表示问题仍未解决", "市民对处理结果不满意，要求重新办理"))
            self.act(self.cast.users[HOTLINE], "reopen", {"reason": reason}, at)
        elif name == "return":
            holder = self.holder()
            reason = ("经核实该位置不在本网格范围内，请重新派发" if holder.role == Role.grid_worker
                      else "经核实该地址不属于本街道（乡镇）辖区，请重新派发")
            self.act(holder, "return", {"reason": reason}, at)
        elif name == "request_extension":
            self.act(self.holder(), "request-extension", {
                "days": rng.choice((2, 3, 5)),
                "reason": rng.choice(("需协调产权单位共同处理，材料采购需要时间",
                                      "涉及多个部门，需等待联合执法",
                                      "天气原因无法施工，申请延期"))}, at)
        elif name in ("grant_extension", "refuse_extension"):
            self.act(self.reviewer(), "decide-extension",
                     {"approve": name == "grant_extension"}, at)
        elif name == "urge":
            county = self.cast.staff(self.county, rng)
            self.act(county, "urge", {"note": rng.choice((
                "该工单即将超时，请抓紧办理", "请于今日下班前反馈办理情况",
                "市民多次来电催办，请尽快处理"))}, at)
        else:
            raise ValueError(f"unknown demo step {name}")

    def _follow_up(self, name: str) -> dict[str, Any]:
        if name == "follow_up_unreached":
            return {"reached": False, "comment": "回访电话多次无人接听"}
        if name == "follow_up_unsatisfied":
            return {"reached": True, "satisfaction": "unsatisfied", "comment": "问题仍然存在"}
        satisfaction = self.rng.choices(("satisfied", "basic", "unsatisfied"), (78, 17, 5))[0]
        comment = {"satisfied": "市民对处理结果表示满意", "basic": "市民表示基本满意",
                   "unsatisfied": "市民认为处理速度太慢"}[satisfaction]
        return {"reached": True, "satisfaction": satisfaction, "comment": comment}

    def play(self) -> Ticket:
        steps = self.expand(SCENARIOS[self.plan.scenario][2])
        times = self.schedule(steps)
        self.ticket = self.accept(times[0])
        # Hold the stream head while the ticket is played: the session's identity map keeps
        # only weak references, and reloading it before every event costs a query and a flush.
        head = db.session.get(EventHead, self.ticket.stream)
        for name, at in zip(steps, times[1:], strict=True):
            self.step(name, at)
        del head
        return self.ticket


def existing_demo_ids(viewer: User) -> set[str]:
    """External ids of demo tickets already in (so an interrupted seed resumes)."""
    query = visible_tickets(viewer).with_only_columns(Ticket.external_id).where(
        Ticket.external_id.like(f"{EXTERNAL_PREFIX}%"))
    return set(db.session.execute(query).scalars())


def pending_plans(count: int, cast: Cast) -> list[Plan]:
    """The plans of ``count`` demo tickets, minus those already in (an interrupted seed
    resumes where it stopped)."""
    done = existing_demo_ids(cast.users["admin"])
    return [p for p in make_plans(count, cast.villages) if p.external_id not in done]


def seed_tickets(plans: Iterable[Plan], cast: Cast) -> int:
    """Play every plan through the real actions, committing every ``BATCH`` tickets."""
    now = utcnow()
    created = 0
    # The plans replay each desk's dispatch themselves (history, not live intake): the
    # shortcut to the on-duty worker is for tickets accepted once the demo is running.
    config = current_app.config
    auto, config["YIHAO_AUTO_DISPATCH"] = config.get("YIHAO_AUTO_DISPATCH", True), False
    try:
        for plan in plans:
            Player(cast, plan, now).play()
            created += 1
            if created % BATCH == 0:
                db.session.commit()
        db.session.commit()
    finally:
        config["YIHAO_AUTO_DISPATCH"] = auto
    return created


def is_seeded() -> bool:
    return db.session.get(EventHead, MARKER_STREAM) is not None


def mark_seeded(summary: dict[str, Any]) -> None:
    """Record, in the audit chain itself, that the demo seed completed."""
    append_event(MARKER_STREAM, "demo.seeded", actor=None, data=summary)
    db.session.commit()
