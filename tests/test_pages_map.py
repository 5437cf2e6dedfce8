"""The map screen's JSON and drawing a grid by hand (``PUT /api/v1/grids/<code>``).

A drawing goes through the importer's validation: overlapping, outside the county, crossing
itself, in a village outside the actor's jurisdiction — each refused with the report's
message and nothing written. A good drawing makes a grid or a new version of one (tickets keep
their grid), audited with the actor. The map's reads are scoped and cost a fixed number of
statements.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import Api, count_queries
from tests.grids_fixtures import drawn, square  # noqa: F401  (fixture)

#: A free square west of G-HHW-02, inside 浑河湾社区's county (和平区) and touching no grid.
FREE = square(123.4180, 41.7418, 123.4220, 41.7448)


def put(api: Api, code: str, body: dict[str, Any]) -> Any:
    return api.client.put(f"/api/v1/grids/{code}", json=body, headers=api.headers())


def body(rings: list[Any], unit: str = "210102001001", name: str = "浑河湾第三网格") -> dict[str, Any]:
    return {"name": name, "unit": unit, "geometry": {"type": "Polygon", "coordinates": rings}}


def test_a_drawn_grid_is_created_and_audited(app: Flask, drawn: Any,  # noqa: F811
                                             as_user: Callable[[str], Api]) -> None:
    resp = put(as_user("township"), "G-HHW-03", body(FREE))
    assert resp.status_code == 201, resp.get_json()
    got = resp.get_json()
    assert got["properties"]["code"] == "G-HHW-03" and got["properties"]["version"] == 1
    codes = {f["properties"]["code"] for f in as_user("township").get("/grids").get_json()["features"]}
    assert "G-HHW-03" in codes
    with app.app_context():
        from server.core.audit import Event
        from server.core.db import db
        from server.core.outbox import OutboxMessage

        event = db.session.execute(sa.select(Event).where(Event.stream == "grid:G-HHW-03")
                                   ).scalar_one()
        assert event.kind == "grid.create" and event.actor_name == "township"
        assert event.data["source"] == "map"
        assert db.session.execute(sa.select(OutboxMessage.topic).where(
            OutboxMessage.topic == "grid.create")).scalar_one()


def test_redrawing_makes_a_new_version_and_tickets_keep_their_grid(
        app: Flask, drawn: Any, as_user: Callable[[str], Api],  # noqa: F811
        accept: Callable[..., dict[str, Any]]) -> None:
    number = accept()["number"]  # 123.4305, 41.7420: inside G-HHW-01
    assert as_user("hotline").get(f"/tickets/{number}").get_json()["grid"] == "G-HHW-01"
    # G-HHW-01 shrinks to its western half: the ticket's point is now outside it.
    resp = put(as_user("township"), "G-HHW-01",
               body(square(123.4270, 41.7418, 123.4290, 41.7448), name="浑河湾第一网格"))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["properties"]["version"] == 2
    assert as_user("hotline").get(f"/tickets/{number}").get_json()["grid"] == "G-HHW-01"
    with app.app_context():
        from grids.models import Grid, GridVersion
        from server.core.audit import Event
        from server.core.db import db

        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-01")).scalar_one()
        versions = db.session.execute(sa.select(GridVersion).where(
            GridVersion.grid_id == grid.id).order_by(GridVersion.version)).scalars().all()
        assert [v.version for v in versions] == [1, 2]
        assert versions[0].valid_to is not None and versions[1].valid_to is None
        assert versions[1].source == "map"
        kinds = db.session.execute(sa.select(Event.kind).where(
            Event.stream == "grid:G-HHW-01")).scalars().all()
        assert "grid.redraw" in kinds
    # The same drawing again changes nothing.
    resp = put(as_user("township"), "G-HHW-01",
               body(square(123.4270, 41.7418, 123.4290, 41.7448), name="浑河湾第一网格"))
    assert resp.status_code == 409 and resp.get_json()["code"] == "grid_unchanged"


@pytest.mark.parametrize(("rings", "unit", "words"), [
    # Half over G-HHW-02.
    (square(123.4200, 41.7418, 123.4250, 41.7448), "210102001001", "与其他网格重叠"),
    # A bow tie: the boundary crosses itself.
    ([[[123.418, 41.7418], [123.422, 41.7448], [123.422, 41.7418], [123.418, 41.7448],
       [123.418, 41.7418]]], "210102001001", "边界自相交"),
    # In Dalian, far outside 和平区.
    (square(121.60, 38.90, 121.61, 38.91), "210102001001", "超出所属县（区）边界"),
    # Not a village.
    (FREE, "210102001", "网格只能属于村（社区）"),
    # Too few points to be a polygon.
    ([[[123.418, 41.7418], [123.422, 41.7448], [123.418, 41.7418]]], "210102001001", "网格未保存"),
])
def test_a_bad_drawing_is_refused_with_the_reports_message(
        app: Flask, drawn: Any, as_user: Callable[[str], Api],  # noqa: F811
        rings: list[Any], unit: str, words: str) -> None:
    resp = put(as_user("township"), "G-BAD-01", body(rings, unit=unit))
    assert resp.status_code == 422, resp.get_json()
    got = resp.get_json()
    assert words in got["message"], got
    assert got["message"].startswith("网格未保存") or got["code"] != "grid_refused"
    codes = {f["properties"]["code"] for f in as_user("township").get("/grids").get_json()["features"]}
    assert "G-BAD-01" not in codes


def test_who_may_draw_where(app: Flask, drawn: Any, as_user: Callable[[str], Api]) -> None:  # noqa: F811
    for who in ("worker", "contact"):
        assert put(as_user(who), "G-HHW-03", body(FREE)).status_code == 403, who
    # Another township's station: the village is outside its jurisdiction.
    resp = put(as_user("township2"), "G-HHW-03", body(FREE))
    assert resp.status_code == 422 and resp.get_json()["code"] == "target_out_of_scope"
    # ... and an existing grid there is not even disclosed.
    assert put(as_user("township2"), "G-HHW-01", body(FREE)).status_code == 404
    # The county supervisor may.
    assert put(as_user("county"), "G-HHW-03", body(FREE)).status_code == 201
    # Junk is a 422, never a 500.
    for junk in ({}, {"name": "x", "unit": "210102001001", "geometry": "POLYGON"},
                 {"name": "x", "unit": "210102001001", "geometry": {"type": "Point",
                                                                      "coordinates": [1, 2]}},
                 {"name": "x", "unit": "210102001001", "geometry": {"type": "Polygon",
                                                                      "coordinates": "zz"}}):
        resp = put(as_user("township"), "G-JUNK", junk)
        assert resp.status_code == 422, (junk, resp.get_json())
    assert put(as_user("township"), "x" * 41, body(FREE)).status_code == 422


def test_cookie_drawing_needs_the_csrf_token(app: Flask, drawn: Any) -> None:  # noqa: F811
    from tests.test_pages_station import csrf, login

    client = login(app, "township")
    resp = client.put("/api/v1/grids/G-HHW-03", json=body(FREE))
    assert resp.status_code == 403 and resp.get_json()["code"] == "csrf_failed"
    resp = client.put("/api/v1/grids/G-HHW-03", json=body(FREE),
                      headers={"X-CSRF-Token": csrf(client)})
    assert resp.status_code == 201


def test_load_and_points_are_scoped_and_counted(app: Flask, drawn: Any,  # noqa: F811
                                                as_user: Callable[[str], Api],
                                                accept: Callable[..., dict[str, Any]],
                                                walk: Callable[[str], str]) -> None:
    walk("in_progress")
    walk("closed")  # closed: no load
    accept(location={"lng": 123.4565, "lat": 41.7965, "crs": "wgs84"},
           address="沈阳市沈河区滨河街道")  # in G-BH-01, 沈河区
    county = as_user("county").get("/map/load").get_json()
    assert county["grids"]["G-HHW-01"]["open"] == 1
    assert county["grids"]["G-HHW-01"]["level"] == "light"
    assert "G-BH-01" not in county["grids"], "another county's grid load is not shown"
    hotline = as_user("hotline").get("/map/load").get_json()
    assert hotline["grids"]["G-BH-01"]["open"] == 1
    points = as_user("county").get("/map/tickets").get_json()
    assert len(points["features"]) == 1
    assert points["features"][0]["properties"]["grid"] == "G-HHW-01"
    boxed = as_user("hotline").get("/map/tickets", bbox="123.45,41.79,123.46,41.80").get_json()
    assert [f["properties"]["grid"] for f in boxed["features"]] == ["G-BH-01"]
    boundary = as_user("township").get("/map/boundary").get_json()
    assert boundary["features"][0]["properties"]["code"] == "210102"
    for bad in ({"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"limit": "0"}, {"limit": "x"}):
        assert as_user("county").get("/map/tickets", **bad).status_code == 422, bad


def test_map_reads_cost_a_fixed_number_of_statements(app: Flask, drawn: Any,  # noqa: F811
                                                     as_user: Callable[[str], Api],
                                                     accept: Callable[..., dict[str, Any]]) -> None:
    api = as_user("county")
    accept()
    api.get("/map/load")
    with count_queries(app) as few:
        api.get("/map/load")
        api.get("/map/tickets")
    for _ in range(6):
        accept()
    with count_queries(app) as many:
        api.get("/map/load")
        api.get("/map/tickets")
    assert len(few) == len(many), (few, many)


def test_map_page_and_leaflet_are_served_from_the_package(app: Flask, drawn: Any) -> None:  # noqa: F811
    from tests.test_pages_station import login

    client = login(app, "township")
    html = client.get("/map").get_data(as_text=True)
    assert "/vendor/leaflet/leaflet.js" in html and "浑河湾社区" in html
    assert "http://" not in html and "https://" not in html, "nothing from the internet"
    js = client.get("/vendor/leaflet/leaflet.js")
    assert js.status_code == 200 and b"Leaflet" in js.data[:400]
    assert client.get("/vendor/leaflet/../../../etc/passwd").status_code == 404
    assert client.get("/vendor/leaflet/package.json").status_code == 404
    assert login(app, "worker").get("/map").status_code == 302
    # No tiles unless configured; configured tiles reach the page's config.
    app.config["YIHAO_MAP_TILES"] = "/tiles/{z}/{x}/{y}.png"
    assert "/tiles/{z}/{x}/{y}.png" in client.get("/map").get_data(as_text=True)
