"""The tree: official divisions, unit import with a row-level report, users and roles."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from hierarchy.divisions import province_divisions
from hierarchy.importer import import_units_file
from hierarchy.models import Level, Role, Unit, User
from hierarchy.operations import do_create_user, do_sync_divisions
from hierarchy.scoping import ancestor_ids, subtree_unit_ids
from server.core.db import db
from server.core.errors import Conflict, InvalidInput


def test_liaoning_divisions_are_real_and_complete():
    divisions = list(province_divisions("210000"))
    by_code = {d.code: d for d in divisions}
    levels = [d.level for d in divisions]
    assert levels.count(Level.city) == 14
    assert levels.count(Level.county) == 100
    assert levels.count(Level.township) > 1300
    assert by_code["210000"].name == "辽宁省"
    assert by_code["210100"].name == "沈阳市"
    assert by_code["210102"].name == "和平区" and by_code["210102"].parent_code == "210100"
    township = next(d for d in divisions if d.level == Level.township)
    assert len(township.code) == 9 and township.code.startswith(township.parent_code)
    # parents always come before children, so a single pass can build the tree
    seen: set[str] = set()
    for d in divisions:
        assert d.parent_code is None or d.parent_code in seen
        seen.add(d.code)


def test_sync_divisions_is_idempotent_and_builds_paths(app):
    with app.app_context():
        first = do_sync_divisions(None, province_divisions("210000"))
        db.session.commit()
        second = do_sync_divisions(None, province_divisions("210000"))
        db.session.commit()
        assert first.created == 1476 and second.created == 0 and second.unchanged == 1476
        heping = db.session.execute(sa.select(Unit).where(Unit.code == "210102")).scalar_one()
        province = db.session.execute(sa.select(Unit).where(Unit.code == "210000")).scalar_one()
        assert heping.is_within(province) and not province.is_within(heping)
        assert len(ancestor_ids(heping)) == 3
        below = db.session.execute(subtree_unit_ids(heping)).scalars().all()
        townships = db.session.execute(
            sa.select(sa.func.count()).select_from(Unit).where(Unit.code.like("210102___"))
        ).scalar_one()
        assert len(below) == 1 + townships


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_import_units_reports_every_bad_row_and_writes_nothing(app, world, tmp_path):
    csv_file = _write_csv(tmp_path / "villages.csv", "\n".join([
        "code,name,parent_code,level",
        "210102002002,新华二社区,210102002,village",   # fine
        "210102002003,,210102002,village",             # no name
        "210102002004,孤儿社区,999999999,village",       # unknown parent
        "210102002002,重复社区,210102002,village",       # repeats row 2
        "210102002005,错层社区,210102,village",          # village straight under a county
        "210102002006,怪层,210102002,hamlet",            # unknown level
    ]) + "\n")
    with app.app_context():
        before = db.session.execute(sa.select(sa.func.count()).select_from(Unit)).scalar_one()
        report = import_units_file(csv_file)
        db.session.rollback()
        after = db.session.execute(sa.select(sa.func.count()).select_from(Unit)).scalar_one()
    rows = sorted(p.row for p in report.problems)
    assert rows == [3, 4, 5, 6, 7], report.problems
    assert before == after


def test_import_units_from_excel_then_again_changes_nothing(app, world, tmp_path):
    wb = Workbook()
    sheet = wb.active
    sheet.append(["code", "name", "parent_code"])
    sheet.append(["210102002002", "新华二社区", "210102002"])
    sheet.append(["210102002003", "新华三社区", "210102002"])
    path = tmp_path / "villages.xlsx"
    wb.save(path)
    with app.app_context():
        first = import_units_file(path)
        db.session.commit()
        second = import_units_file(path)
        db.session.commit()
        unit = db.session.execute(sa.select(Unit).where(Unit.code == "210102002003")).scalar_one()
        assert unit.level == Level.village and unit.parent.code == "210102002"
    assert (first.created, second.created, second.unchanged) == (2, 0, 2)


def test_import_units_reads_gb18030_csv(app, world, tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("code,name,parent_code\n210102002009,和平里社区,210102002\n".encode("gb18030"))
    with app.app_context():
        report = import_units_file(path)
        db.session.commit()
        assert report.created == 1 and not report.problems
        assert db.session.execute(
            sa.select(Unit.name).where(Unit.code == "210102002009")).scalar_one() == "和平里社区"


def test_cli_import_units_exit_code_and_messages(app, world, tmp_path):
    from server.cli import main

    bad = _write_csv(tmp_path / "bad.csv", "code,name\n1,x\n")
    result = app.test_cli_runner().invoke(main, ["import", "units", str(bad)])
    assert result.exit_code == 1
    assert "missing columns: parent_code" in result.output
    good = _write_csv(tmp_path / "good.csv", "code,name,parent_code\n210102002007,新华七社区,210102002\n")
    result = app.test_cli_runner().invoke(main, ["import", "units", "--dry-run", str(good)])
    assert result.exit_code == 0 and "would be created" in result.output
    with app.app_context():
        assert db.session.execute(
            sa.select(Unit.id).where(Unit.code == "210102002007")).first() is None


@pytest.mark.parametrize(("role", "code", "ok"), [
    (Role.grid_worker, "210102001001", True),
    (Role.grid_worker, "210102001", False),
    (Role.station, "210102001", True),
    (Role.station, "210102", False),
    (Role.supervisor, "210102", True),
    (Role.platform, "210000", True),
    (Role.contact, "210100", False),
])
def test_roles_sit_at_their_levels(app, world, role, code, ok):
    with app.app_context():
        unit = db.session.execute(sa.select(Unit).where(Unit.code == code)).scalar_one()
        if ok:
            user = do_create_user(None, username=f"new-{role}", display_name="x", role=role,
                                  unit=unit, password="pw-123456")
            assert user.role == role
        else:
            with pytest.raises(InvalidInput):
                do_create_user(None, username=f"new-{role}", display_name="x", role=role,
                               unit=unit)


def test_usernames_are_unique_and_phones_encrypted(app, world):
    with app.app_context():
        unit = db.session.execute(sa.select(Unit).where(Unit.code == "210000")).scalar_one()
        with pytest.raises(Conflict):
            do_create_user(None, username="hotline", display_name="x", role=Role.platform,
                           unit=unit)
        raw = db.session.execute(sa.text("SELECT phone FROM users WHERE username = 'worker'")
                                 ).scalar_one()
        assert "13800000000" not in raw
        assert db.session.execute(
            sa.select(User.phone).where(User.username == "worker")).scalar_one() == "13800000000"


def test_createtoken_and_bearer_login(app, world, client):
    from server.cli import main

    result = app.test_cli_runner().invoke(main, ["createtoken", "county", "--name", "ci"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("yh_")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["user"]["username"] == "county"
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer yh_nope"})
    assert bad.status_code == 401 and bad.get_json()["code"] == "not_authenticated"
    missing = app.test_cli_runner().invoke(main, ["createtoken", "nobody"])
    assert missing.exit_code != 0 and "no user nobody" in missing.output


def test_bearer_token_wins_over_a_session_cookie(world, client):
    from tests.conftest import PASSWORD

    login = client.post("/api/v1/session", json={"username": "county", "password": PASSWORD})
    assert login.status_code == 200
    assert client.get("/api/v1/me").get_json()["user"]["username"] == "county"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {world.tokens['worker']}"})
    assert me.get_json()["user"]["username"] == "worker"
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer yh_forged"})
    assert bad.status_code == 401
