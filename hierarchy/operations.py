"""Every change to the tree and its people, each recorded in the audit chain.

Like ticket operations these never commit; the CLI command, importer or route that calls
them commits once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from server.core.audit import append_event, append_events
from server.core.db import db, utcnow
from server.core.errors import Conflict, InvalidInput

from .divisions import Division
from .models import ApiToken, Level, Role, Unit, User
from .tokens import hash_token, new_token

#: Which roles may sit at which level.
ROLE_LEVELS = {
    Role.grid_worker: {Level.village},
    Role.contact: {Level.village},
    Role.station: {Level.township},
    Role.supervisor: {Level.county, Level.city},
    Role.platform: {Level.province, Level.city, Level.county},
    Role.admin: set(Level),
}


def _expected_level(parent: Unit | None) -> Level:
    if parent is None:
        return Level.province
    levels = list(Level)
    index = levels.index(Level(parent.level))
    if index + 1 >= len(levels):
        raise InvalidInput(f"{parent.name} is a village; nothing goes below it",
                           code="invalid_parent")
    return levels[index + 1]


def check_create_unit(code: str, name: str, level: Level, parent: Unit | None) -> None:
    if not code or not name:
        raise InvalidInput("a unit needs a code and a name")
    if parent is not None and level != _expected_level(parent) and not (
        # Municipalities and province-managed counties hang straight off the province.
        parent.level == Level.province and level == Level.county
    ):
        raise InvalidInput(
            f"a {level} cannot sit directly under a {parent.level} ({parent.name})",
            code="invalid_parent",
        )
    if parent is None and level != Level.province:
        raise InvalidInput("only a province has no parent", code="invalid_parent")


def do_create_unit(
    actor: User | None, *, code: str, name: str, level: Level, parent: Unit | None,
    region_code: str | None = None,
) -> Unit:
    return do_create_units(actor, [UnitSpec(code, name, level, parent, region_code)])[0]


@dataclass(frozen=True)
class UnitSpec:
    code: str
    name: str
    level: Level
    parent: Unit | None
    region_code: str | None = None


def do_create_units(actor: User | None, specs: list[UnitSpec]) -> list[Unit]:
    """Create units whose parents exist already: one INSERT for the lot, then their paths and
    their ``unit.create`` events set-based — a province's 1,500 divisions in seconds."""
    for spec in specs:
        check_create_unit(spec.code, spec.name, spec.level, spec.parent)
    units = [Unit(code=s.code, name=s.name, level=s.level, parent=s.parent,
                  region_code=s.region_code or (s.code if s.code.isdigit() else None))
             for s in specs]
    db.session.add_all(units)
    db.session.flush()
    for unit, spec in zip(units, specs, strict=True):
        unit.path = f"{spec.parent.path if spec.parent else '/'}{unit.id}/"
    append_events([
        (f"unit:{s.code}", "unit.create",
         {"name": s.name, "level": str(s.level), "parent": s.parent.code if s.parent else None},
         None) for s in specs], actor=actor, at=utcnow())
    return units


def do_update_unit(actor: User | None, unit: Unit, *, name: str) -> bool:
    if unit.name == name:
        return False
    append_event(f"unit:{unit.code}", "unit.rename", actor=actor,
                 data={"from": unit.name, "to": name})
    unit.name = name
    return True


@dataclass
class SyncReport:
    created: int = 0
    renamed: int = 0
    unchanged: int = 0


def do_sync_divisions(actor: User | None, divisions: Iterable[Division]) -> SyncReport:
    """Create or rename official divisions; idempotent, parents before children.

    New divisions are created a generation at a time (:func:`do_create_units`): a batch is
    written as soon as a division needs a parent that is still in it.
    """
    report = SyncReport()
    by_code = {u.code: u for u in db.session.execute(sa.select(Unit)).scalars()}
    pending: list[UnitSpec] = []
    waiting: set[str] = set()

    def create_pending() -> None:
        for unit in do_create_units(actor, pending):
            by_code[unit.code] = unit
        report.created += len(pending)
        pending.clear()
        waiting.clear()

    for div in divisions:
        unit = by_code.get(div.code)
        if unit is None:
            if div.parent_code in waiting:
                create_pending()
            parent = by_code.get(div.parent_code) if div.parent_code else None
            pending.append(UnitSpec(div.code, div.name, div.level, parent, div.code))
            waiting.add(div.code)
        elif do_update_unit(actor, unit, name=div.name):
            report.renamed += 1
        else:
            report.unchanged += 1
    if pending:
        create_pending()
    return report


def check_create_user(username: str, role: Role, unit: Unit) -> None:
    if not username or len(username) > 64 or not username.replace("-", "").replace(
            "_", "").replace(".", "").isalnum():
        raise InvalidInput(f"invalid username {username!r}", code="invalid_username")
    if Level(unit.level) not in ROLE_LEVELS[role]:
        raise InvalidInput(f"a {role} cannot belong to a {unit.level}", code="role_level_mismatch")
    exists = db.session.execute(sa.select(User.id).where(User.username == username)).first()
    if exists:
        raise Conflict(f"user {username} exists", code="user_exists")


def do_create_user(
    actor: User | None, *, username: str, display_name: str, role: Role, unit: Unit,
    password: str | None = None, phone: str | None = None, is_system: bool = False,
) -> User:
    check_create_user(username, role, unit)
    user = User(username=username, display_name=display_name, role=role, unit=unit,
                phone=phone, is_system=is_system)
    if password:
        user.set_password(password)
    db.session.add(user)
    db.session.flush()
    append_event(f"user:{username}", "user.create", actor=actor, data={
        "role": str(role), "unit": unit.code, "system": is_system,
    })
    return user


def do_create_token(actor: User | None, user: User, name: str = "") -> str:
    """Create a bearer token; the plain token is returned once and never stored."""
    token = new_token()
    db.session.add(ApiToken(user=user, name=name, prefix=token[:10],
                            token_hash=hash_token(token), created_at=utcnow()))
    append_event(f"user:{user.username}", "token.create", actor=actor,
                 data={"name": name, "prefix": token[:10]})
    return token
