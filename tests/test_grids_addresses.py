"""Address → division, gazetteer place, point or grid; no per-request scan of units."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import count_queries
from tests.grids_fixtures import drawn, matcher  # fixtures


def _add_units(app: Any, *rows: tuple[str, str, str, str]) -> None:
    import sqlalchemy as sa

    from hierarchy.models import Level, Unit
    from hierarchy.operations import do_create_unit
    from server.core.db import db

    with app.app_context():
        for code, name, level, parent in rows:
            parent_unit = db.session.execute(sa.select(Unit).where(Unit.code == parent)
                                             ).scalar_one()
            do_create_unit(None, code=code, name=name, level=Level(level), parent=parent_unit)
        db.session.commit()


def _add_place(app: Any, name: str, unit: str, point: tuple[float, float] | None = None,
               aliases: list[str] | None = None) -> None:
    import sqlalchemy as sa

    from grids.operations import do_upsert_gazetteer_entry
    from hierarchy.models import Unit
    from server.core.db import db

    with app.app_context():
        u = db.session.execute(sa.select(Unit).where(Unit.code == unit)).scalar_one()
        do_upsert_gazetteer_entry(None, name=name, unit=u, aliases=aliases, point=point)
        db.session.commit()


@pytest.mark.parametrize(("address", "unit"), [
    ("辽宁省沈阳市和平区新华街道新华社区3号楼", "210102002001"),
    ("沈阳市和平区新华街道胜利大街12号", "210102002"),
    ("和平区浑河湾街道", "210102001"),
    ("沈阳和平浑河湾", "210102001"),              # short forms throughout
    ("沈阳市 沈河区 滨河街道", "210103005"),       # spaces
    ("沈阳市沈河区ＸＸ路１２号", "210103"),          # full-width characters, no township
    ("来电人反映：沈阳市和平区某小区门口积水", "210102"),
])
def test_address_resolves_to_the_deepest_division(world, matcher, address: str,
                                                  unit: str) -> None:
    m = matcher(address=address)
    assert m["unit"] == unit, m
    assert m["region_code"] == unit and m["grid"] is None


def test_village_name_alone_gives_its_unit_and_its_only_grid(world, matcher) -> None:
    m = matcher(address="长白岛社区")
    assert m["unit"] == "210102001002" and m["grid"] == "G-CBD-01"
    assert m["method"] == "village_grid" and "only grid" in m["reason"]


def test_village_with_several_grids_stops_at_the_village(drawn, matcher) -> None:
    m = matcher(address="沈阳市和平区浑河湾街道浑河湾社区南门")
    assert m["unit"] == "210102001001" and m["grid"] is None
    assert "several grids" in m["reason"]


def test_a_street_named_after_a_district_is_not_the_district(world, matcher) -> None:
    m = matcher(address="和平大街100号")
    assert m["unit"] is None and "streets" in m["reason"]


def test_ambiguous_township_resolves_to_the_common_ancestor(app, world, matcher) -> None:
    _add_units(app, ("210103099", "新华街道", "township", "210103"))
    m = matcher(address="沈阳市新华街道12号")
    assert m["unit"] == "210100" and m["confidence"] == 0.3
    assert "ambiguous" in m["reason"] and "和平区" in m["reason"] and "沈河区" in m["reason"]
    assert matcher(address="沈河区新华街道12号")["unit"] == "210103099"
    assert matcher(address="和平新华街道")["unit"] == "210102002"


def test_gazetteer_place_with_a_point_lands_on_its_grid(app, drawn, matcher) -> None:
    _add_place(app, "锦绣家园", "210102001001", point=(123.4250, 41.7430),
               aliases=["锦绣小区"])
    m = matcher(address="锦绣家园3号楼2单元")
    assert m["grid"] == "G-HHW-02" and m["method"] == "gazetteer"
    assert m["point"] == (123.4250, 41.7430)
    assert matcher(address="和平区锦绣小区")["grid"] == "G-HHW-02"


def test_gazetteer_place_without_a_point_gives_its_unit(app, world, matcher) -> None:
    _add_place(app, "浑河湾菜市场", "210102001")
    m = matcher(address="浑河湾菜市场东门")
    assert m["unit"] == "210102001" and "gazetteer" in m["reason"]


def test_one_misspelt_character_in_a_township_name(world, matcher) -> None:
    m = matcher(address="沈阳市和平区浑河弯街道12号")  # 弯 for 湾: typed by sound
    assert m["unit"] == "210102001" and "浑河弯街道 read as 浑河湾街道" in m["reason"]
    assert matcher(address="沈阳市和平区浑河弯路12号")["unit"] == "210102"  # not a township


def test_new_units_are_found_at_once(app, world, matcher) -> None:
    """The name index is cached per process and rebuilt when units change."""
    assert matcher(address="和平区太原街街道")["unit"] == "210102"
    _add_units(app, ("210102005", "太原街街道", "township", "210102"))
    assert matcher(address="和平区太原街街道")["unit"] == "210102005"


def test_within_keeps_answers_in_the_callers_subtree(world, matcher) -> None:
    assert matcher(address="沈河区滨河街道", within="210102001")["unit"] is None
    m = matcher(address="沈阳市", within="210102001")
    assert m["unit"] is None and "above" in m["reason"]
    assert matcher(address="浑河湾社区", within="210102001")["unit"] == "210102001001"


def test_address_refines_a_point_that_found_no_grid(world, matcher) -> None:
    m = matcher(point=(123.4100, 41.7700), address="和平区新华街道新华社区")
    assert m["unit"] == "210102002001" and "和平区" in m["reason"]


def test_point_grid_wins_over_the_address(drawn, matcher) -> None:
    m = matcher(point=(123.4305, 41.7420), address="沈河区滨河街道")
    assert m["grid"] == "G-HHW-01"


def test_matching_an_address_does_not_scan_units(app, world, matcher) -> None:
    """After the first call builds the index, a match costs a constant few small queries."""
    matcher(address="沈阳市和平区新华街道")
    with count_queries(app) as statements:
        matcher(address="沈阳市和平区新华街道新华社区")
    assert len(statements) <= 4, statements
    assert not any("LIKE" in s.upper() for s in statements)
