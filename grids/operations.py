"""Every change to grids, unit boundaries and the gazetteer.

Like the other domains' operations these never commit: the CLI command, importer or route that
calls them commits once. Each appends its audit event unless the caller records the whole
batch itself (``audit=False``; the importers append one event per file, naming every grid it
touched, rather than ten thousand).

Redrawing never overwrites: the current :class:`GridVersion` is closed (``valid_to``) and a new
one opened, so a ticket matched last year can still be shown against the polygon it was
matched to, and keeps its ``grid_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry

from hierarchy.models import Level, Role, Unit, User
from server.core.audit import append_event
from server.core.db import db, utcnow
from server.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from server.core.outbox import queue_message

from .crs import area_m2, check_lnglat
from .geometry import bbox_columns, geometry_hash, normalise
from .models import GazetteerEntry, Grid, GridVersion, UnitBoundary, touch

GAZETTEER_KINDS = ("road", "community", "building", "landmark", "other")


def _apply_drawing(grid: Grid, geom: BaseGeometry, geom_hash: str) -> None:
    grid.geom = geom
    grid.geom_hash = geom_hash
    for key, value in bbox_columns(geom).items():
        setattr(grid, key, value)


def check_grid_unit(unit: Unit) -> None:
    if Level(unit.level) is not Level.village:
        raise InvalidInput(f"{unit.name} ({unit.code}) is a {unit.level}; a grid belongs to a "
                           "village or community", code="not_a_village")


def do_create_grid(actor: User | None, *, code: str, name: str, unit: Unit,
                   geom: BaseGeometry | None, source: str = "", at: datetime | None = None,
                   audit: bool = True, checked: bool = False) -> Grid:
    """A new grid, with its first drawing when a polygon is given.

    ``checked``: the caller (an importer) has already made sure the code is free and the
    polygon normalised, so ten thousand grids do not cost ten thousand look-ups.
    """
    check_grid_unit(unit)
    if not checked:
        if db.session.execute(sa.select(Grid.id).where(Grid.code == code)).first():
            raise Conflict(f"grid {code} exists", code="grid_exists")
        geom = normalise(geom) if geom is not None else None
    now = at or utcnow()
    grid = Grid(code=code, name=name, unit=unit, active=True, version=0)
    db.session.add(grid)
    if geom is not None:
        _new_version(grid, geom, name, unit, source, now)
    if audit:
        db.session.flush()
        append_event(f"grid:{code}", "grid.create", actor=actor, at=now, data={
            "name": name, "unit": unit.code, "version": grid.version,
            "hash": grid.geom_hash, "source": source,
        })
    return grid


def do_create_grids(actor: User | None, items: list[tuple[str, str, Unit, BaseGeometry, str]],
                    *, source: str = "", at: datetime | None = None) -> dict[str, int]:
    """Many new grids at once — (code, name, village, normalised polygon, its hash) each —
    as two bulk INSERTs instead of thousands of ORM flushes (an import of 10 000 grids).

    The caller has checked the codes are free; nothing is audited here (the importer appends
    one event for the file). Returns {code: id}.
    """
    now = at or utcnow()
    ids: dict[str, int] = {}
    for unit in {id(u): u for _, _, u, _, _ in items}.values():
        check_grid_unit(unit)
    for start in range(0, len(items), 2000):
        chunk = items[start:start + 2000]
        geoms = np.array([item[3] for item in chunk], dtype=object)
        wkbs = shapely.to_wkb(geoms, include_srid=False)
        boxes = shapely.bounds(geoms)
        rows = [{"code": code, "name": name, "unit_id": unit.id, "active": True,
                 "created_at": now, "geom": wkb, "geom_hash": geom_hash, "version": 1,
                 "valid_from": now, "min_lng": box[0], "min_lat": box[1], "max_lng": box[2],
                 "max_lat": box[3]}
                for (code, name, unit, _, geom_hash), wkb, box in zip(chunk, wkbs, boxes,
                                                                     strict=True)]
        for grid_id, code in db.session.execute(
                sa.insert(Grid).returning(Grid.id, Grid.code), rows):
            ids[code] = grid_id
        db.session.execute(sa.insert(GridVersion), [
            {"grid_id": ids[code], "version": 1, "name": name, "unit_id": unit.id, "geom": wkb,
             "geom_hash": geom_hash, "valid_from": now, "source": source}
            for (code, name, unit, _, geom_hash), wkb in zip(chunk, wkbs, strict=True)])
    if items:
        touch(db.session, "grids")  # bulk statements bypass the flush hook
    return ids


def _new_version(grid: Grid, geom: BaseGeometry, name: str, unit: Unit, source: str,
                 now: datetime, geom_hash: str | None = None) -> GridVersion:
    """Open version n+1 with a normalised ``geom`` (and its hash, when already known)."""
    geom_hash = geom_hash or geometry_hash(geom)
    grid.version = (grid.version or 0) + 1
    grid.valid_from = now
    grid.name = name
    grid.unit = unit
    grid.active = True
    _apply_drawing(grid, geom, geom_hash)
    version = GridVersion(grid=grid, version=grid.version, name=name, unit=unit, geom=geom,
                          geom_hash=geom_hash, valid_from=now, source=source)
    db.session.add(version)
    return version


def _close_current(grid: Grid, now: datetime) -> None:
    if grid.version:
        db.session.execute(
            sa.update(GridVersion).where(GridVersion.grid_id == grid.id,
                                         GridVersion.valid_to.is_(None))
            .values(valid_to=now).execution_options(synchronize_session="fetch"))


def grid_differs(grid: Grid, *, name: str, unit: Unit, geom_hash: str | None) -> bool:
    return not (grid.active and grid.name == name and grid.unit_id == unit.id
                and grid.geom_hash == geom_hash)


def do_redraw_grid(actor: User | None, grid: Grid, *, name: str, unit: Unit,
                   geom: BaseGeometry, source: str = "", at: datetime | None = None,
                   audit: bool = True, checked: bool = False) -> bool:
    """Give ``grid`` a new drawing (polygon, name or village); False when nothing changed."""
    check_grid_unit(unit)
    if not checked:
        geom = normalise(geom)
    geom_hash = geometry_hash(geom, normalised=True)
    if not grid_differs(grid, name=name, unit=unit, geom_hash=geom_hash):
        return False
    now = at or utcnow()
    previous = {"version": grid.version, "hash": grid.geom_hash, "unit": grid.unit.code,
                "name": grid.name, "active": grid.active}
    _close_current(grid, now)
    _new_version(grid, geom, name, unit, source, now, geom_hash)
    if audit:
        append_event(f"grid:{grid.code}", "grid.redraw", actor=actor, at=now, data={
            "from": previous, "version": grid.version, "hash": geom_hash, "unit": unit.code,
            "name": name, "area_m2": round(area_m2(geom)), "source": source,
        })
    return True


def do_retire_grid(actor: User | None, grid: Grid, *, reason: str = "", at: datetime | None = None,
                   audit: bool = True) -> bool:
    """Take a grid out of matching (its history and tickets stay)."""
    if not grid.active:
        return False
    now = at or utcnow()
    _close_current(grid, now)
    grid.active = False
    if audit:
        append_event(f"grid:{grid.code}", "grid.retire", actor=actor, at=now,
                     data={"version": grid.version, "reason": reason})
    return True


def do_set_boundary(actor: User | None, unit: Unit, geom: BaseGeometry, *, source: str = "",
                    audit: bool = True) -> bool:
    """Set (or replace) a township's or village's drawn boundary; False when unchanged."""
    if Level(unit.level) not in (Level.township, Level.village):
        raise InvalidInput(f"{unit.name} is a {unit.level}: county and higher boundaries come "
                           "from the boundaries package", code="boundary_level")
    geom = normalise(geom)
    geom_hash = geometry_hash(geom)
    row = db.session.execute(
        sa.select(UnitBoundary).where(UnitBoundary.unit_id == unit.id)).scalar_one_or_none()
    if row is not None and row.geom_hash == geom_hash:
        return False
    if row is None:
        row = UnitBoundary(unit=unit)
        db.session.add(row)
    row.geom = geom
    row.geom_hash = geom_hash
    row.source = source
    row.updated_at = utcnow()
    for key, value in bbox_columns(geom).items():
        setattr(row, key, value)
    if audit:
        append_event(f"unit:{unit.code}", "unit.boundary", actor=actor,
                     data={"hash": geom_hash, "source": source})
    return True


def check_gazetteer_entry(name: str, kind: str, lng: float | None, lat: float | None) -> None:
    if not name.strip() or len(name) > 80:
        raise InvalidInput("a gazetteer entry needs a name of at most 80 characters",
                           code="invalid_name")
    if len(name.strip()) < 2:
        raise InvalidInput(f"{name!r} is too short to find in an address", code="invalid_name")
    if kind not in GAZETTEER_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(GAZETTEER_KINDS)}",
                           code="invalid_kind")
    if (lng is None) != (lat is None):
        raise InvalidInput("give both lng and lat, or neither", code="invalid_coordinates")
    if lng is not None and lat is not None:
        check_lnglat(lng, lat)


def do_upsert_gazetteer_entry(actor: User | None, *, name: str, unit: Unit, kind: str = "landmark",
                              aliases: list[str] | None = None, point: tuple[float, float] | None
                              = None, audit: bool = True) -> tuple[GazetteerEntry, bool]:
    """Add a place, or update the one with this name in this unit; (entry, changed)."""
    lng, lat = point if point is not None else (None, None)
    check_gazetteer_entry(name, kind, lng, lat)
    aliases = sorted({a.strip() for a in aliases or [] if a.strip() and a.strip() != name})
    entry = db.session.execute(sa.select(GazetteerEntry).where(
        GazetteerEntry.unit_id == unit.id, GazetteerEntry.name == name)).scalar_one_or_none()
    values: dict[str, Any] = {"kind": kind, "aliases": aliases, "lng": lng, "lat": lat,
                              "active": True}
    if entry is not None and all(getattr(entry, k) == v for k, v in values.items()):
        return entry, False
    if entry is None:
        entry = GazetteerEntry(name=name, unit=unit)
        db.session.add(entry)
    for key, value in values.items():
        setattr(entry, key, value)
    if audit:
        append_event(f"unit:{unit.code}", "gazetteer.upsert", actor=actor,
                     data={"name": name, **values})
    return entry, True


# ---------------------------------------------------------------- drawing on the map

#: Who may draw or redraw grids on the map, within their own unit's subtree.
GRID_EDIT_ROLES = frozenset({Role.station, Role.supervisor, Role.admin})

#: The importer's problem kinds in words a station clerk reads (the importer's own English
#: message follows in brackets: it names the other grid and the area).
PROBLEM_LABELS = {
    "self_intersection": "边界自相交", "invalid_geometry": "图形无效", "empty": "图形没有面积",
    "impossible_coordinates": "坐标超出范围", "wrong_type": "不是多边形", "no_geometry": "没有图形",
    "unreadable": "无法读取", "missing_property": "缺少编码、名称或所属村（社区）",
    "too_long": "编码最多 40 个字符，名称最多 80 个字符", "unknown_unit": "所属村（社区）不存在",
    "not_a_village": "网格只能属于村（社区）", "duplicate_code": "编码重复",
    "duplicate_geometry": "与已有网格的图形完全相同", "overlap": "与其他网格重叠",
    "outside_village": "超出所属村（社区）边界", "outside_township": "超出所属乡镇（街道）边界",
    "outside_county": "超出所属县（区）边界", "gap": "村（社区）内留有未划入网格的空隙",
    "unknown_crs": "坐标系不明",
}
#: Warnings that a file import only reports but a hand drawing must not get past: one grid
#: drawn on a map is checked while it is drawn, so an overlap or a stray vertex is a mistake,
#: not a survey artefact. Gaps stay warnings: a village is covered one grid at a time.
REFUSED_WARNINGS = frozenset({"overlap", "outside_village", "outside_township", "outside_county"})


@dataclass(frozen=True)
class CheckedDrawing:
    """What :func:`check_draw_grid` hands to :func:`do_draw_grid`: the validated drawing."""

    actor: User
    grid: Grid | None
    code: str
    name: str
    unit: Unit
    geom: BaseGeometry
    warnings: tuple[str, ...]


def problem_text(problem: Any) -> str:
    label = PROBLEM_LABELS.get(problem.kind, problem.kind)
    return f"{label}（{problem.message}）"


def check_draw_grid(actor: User, *, code: str, name: str, unit_code: str,
                    geometry: dict[str, Any] | None, crs: str = "wgs84") -> CheckedDrawing:
    """Validate a grid drawn (or redrawn) on the map through the grid importer's own checks,
    so a hand drawing meets exactly the rules a file import does — plus :data:`REFUSED_WARNINGS`.

    Raises 403 for a role that may not draw, 404 for a grid outside the actor's jurisdiction,
    422 with the validation report (``details.problems``) for a drawing that is refused.
    """
    from .importer import import_grids, read_polygons
    from .io import RawFeature, SourceFile

    if actor.role not in GRID_EDIT_ROLES:
        raise Forbidden("only township stations, county supervisors and administrators draw "
                        "grids", code="forbidden")
    code, name, unit_code = code.strip(), name.strip(), unit_code.strip()
    grid = db.session.execute(sa.select(Grid).where(Grid.code == code)).scalar_one_or_none()
    if grid is not None and not grid.unit.is_within(actor.unit):
        raise NotFound(f"grid {code} not found", code="grid_not_found")
    unit = db.session.execute(sa.select(Unit).where(Unit.code == unit_code)).scalar_one_or_none()
    if unit is not None and not unit.is_within(actor.unit):
        raise InvalidInput(f"{unit.name} is outside your jurisdiction",
                           code="target_out_of_scope", field="unit")
    feature = RawFeature(1, {"code": code, "name": name, "unit": unit_code},
                         geometry if isinstance(geometry, dict) else None,
                         None if isinstance(geometry, dict) else "no geometry")
    report = import_grids(SourceFile([feature], None), crs=crs,
                          dry_run=True, actor=actor, source_name="map")
    refused = [*report.errors,
               *(p for p in report.warnings if p.kind in REFUSED_WARNINGS)]
    if refused:
        raise InvalidInput("网格未保存：" + "；".join(problem_text(p) for p in refused),
                           code="grid_refused", problems=[p.to_dict() for p in report.problems])
    if report.unchanged:
        raise Conflict("网格没有变化", code="grid_unchanged")
    assert unit is not None  # an unknown unit is an importer error above
    polygons = read_polygons([(1, code, geometry)], crs, report)
    geom, _ = polygons[1]
    return CheckedDrawing(actor, grid, code, name, unit, geom,
                          tuple(problem_text(p) for p in report.warnings))


def do_draw_grid(checked: CheckedDrawing) -> Grid:
    """Create the grid, or give it a new :class:`GridVersion` (the old one is closed; tickets
    keep their grid), with its audit event (``grid.create`` / ``grid.redraw``, source "map")
    and an outbox message for systems that mirror the grids. Never commits."""
    now = utcnow()
    if checked.grid is None:
        grid = do_create_grid(checked.actor, code=checked.code, name=checked.name,
                              unit=checked.unit, geom=checked.geom, source="map", at=now)
        created = True
    else:
        grid = checked.grid
        do_redraw_grid(checked.actor, grid, name=checked.name, unit=checked.unit,
                       geom=checked.geom, source="map", at=now)
        created = False
    db.session.flush()
    queue_message("grid.create" if created else "grid.redraw", {
        "code": grid.code, "name": grid.name, "unit": checked.unit.code,
        "version": grid.version, "hash": grid.geom_hash, "source": "map",
        "by": checked.actor.username,
    })
    return grid
