"""``yihao import grids FILE``: read, check, report, and (when clean) apply.

Every problem is named with the feature's number in the file, its grid code and a place
(lng, lat) to look at. *Errors* stop the import — nothing is written: unreadable or invalid
geometry (self-intersection named as such), wrong geometry type, impossible coordinates,
missing properties, an unknown unit or one that is not a village, the same code twice, the
same polygon twice. *Warnings* are reported and do not stop it (``--strict`` makes them): grids
overlapping by more than the tolerance, gaps inside a village (against its boundary where one
was imported, otherwise holes enclosed by its grids), and grids reaching outside their
village's, township's or county's boundary.

Re-importing the same file changes nothing; a grid whose polygon, name or village changed gets
a new version (the old one is closed, not overwritten). ``--retire-missing`` retires the grids
of the file's villages that the file no longer lists.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from hierarchy.models import Level, Unit, User
from server.core.audit import append_event
from server.core.db import db, utcnow
from server.core.errors import YihaoError

from .boundaries import boundary_index
from .crs import CRS_CHOICES, area_m2, degrees_for, to_wgs84_array
from .geometry import from_wkb_many, normalise_many, wkb_of
from .io import SourceFile, read_source, text_property
from .models import Grid, UnitBoundary
from .operations import do_create_grids, do_redraw_grid, do_retire_grid, do_set_boundary

CODE_KEYS = ("code", "grid_code", "网格编码", "编码")
NAME_KEYS = ("name", "grid_name", "网格名称", "名称")
UNIT_KEYS = ("unit", "unit_code", "village", "village_code", "所属村社区", "村社区编码")
#: How far a grid may reach past its county's generalised boundary before we say so.
COUNTY_SLACK_M = 100.0


@dataclass
class Problem:
    severity: str  # "error" stops the import; "warning" is reported
    kind: str
    message: str
    feature: int | None = None
    code: str | None = None
    where: tuple[float, float] | None = None

    def __str__(self) -> str:
        parts = [self.severity]
        if self.feature is not None:
            parts.append(f"feature {self.feature}")
        if self.code:
            parts.append(f"({self.code})")
        text = " ".join(parts) + f" [{self.kind}]: {self.message}"
        if self.where is not None:
            text += f" — at {self.where[0]:.6f},{self.where[1]:.6f}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "kind": self.kind, "message": self.message,
                "feature": self.feature, "code": self.code,
                "where": list(self.where) if self.where else None}


@dataclass
class ImportReport:
    features: int = 0
    crs: str = "wgs84"
    created: list[str] = field(default_factory=list)
    redrawn: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def problem(self, severity: str, kind: str, message: str, **where: Any) -> None:
        self.problems.append(Problem(severity, kind, message, **where))

    def summary(self, dry_run: bool = False) -> str:
        if self.errors:
            return (f"{len(self.errors)} errors, {len(self.warnings)} warnings in "
                    f"{self.features} features; nothing was imported")
        verb = "would be" if dry_run or not self.applied else "were"
        return (f"{self.features} features: {len(self.created)} grids {verb} created, "
                f"{len(self.redrawn)} redrawn, {len(self.retired)} retired, "
                f"{len(self.unchanged)} unchanged; {len(self.warnings)} warnings")

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "crs": self.crs, "created": self.created,
                "redrawn": self.redrawn, "unchanged": self.unchanged, "retired": self.retired,
                "applied": self.applied, "notes": self.notes,
                "problems": [p.to_dict() for p in self.problems]}


@dataclass
class Candidate:
    number: int
    code: str
    name: str
    unit: Unit
    geom: BaseGeometry
    hash: str


# ---------------------------------------------------------------- reading and per-feature checks


def choose_crs(source: SourceFile, requested: str | None, report: ImportReport,
               kind: str) -> str | None:
    if requested is not None:
        if requested not in CRS_CHOICES:
            report.problem("error", "unknown_crs", f"unknown coordinate system {requested!r}")
            return None
        if source.declared_crs and source.declared_crs != requested:
            report.notes.append(f"the file declares {source.declared_crs}; using --crs "
                                f"{requested} as told")
        return requested
    if source.declared_crs:
        return source.declared_crs
    if kind == "shapefile":
        report.problem("error", "unknown_crs", "the shapefile has no .prj; declare its "
                       "coordinate system with --crs wgs84|gcj02|bd09")
        return None
    report.notes.append("no coordinate system declared: WGS-84 assumed (GeoJSON's default); "
                        "use --crs gcj02 or bd09 for web-map coordinates")
    return "wgs84"


_WHERE = re.compile(r"\[\s*(-?[\d.eE+-]+)\s+(-?[\d.eE+-]+)")


def _reason_point(reason: str) -> tuple[float, float] | None:
    m = _WHERE.search(reason)
    return (float(m.group(1)), float(m.group(2))) if m else None


def _where(geom: BaseGeometry) -> tuple[float, float]:
    p = geom.representative_point() if not geom.is_empty else shapely.Point(0, 0)
    return (round(p.x, 6), round(p.y, 6))


def read_polygons(items: list[tuple[int, str, dict[str, Any] | None]], crs: str,
                  report: ImportReport) -> dict[int, tuple[BaseGeometry, str]]:
    """Features' geometries → {feature number: (valid normalised WGS-84 MultiPolygon, hash)};
    every one that fails is reported. Vectorised: ten thousand polygons take a second."""
    parsed: list[tuple[int, str, BaseGeometry]] = []
    for number, code, raw in items:
        at = {"feature": number, "code": code or None}
        if raw is None:
            report.problem("error", "no_geometry", "the feature has no geometry", **at)
        elif raw.get("type") not in ("Polygon", "MultiPolygon"):
            report.problem("error", "wrong_type", "a grid must be a Polygon or MultiPolygon, "
                           f"this is a {raw.get('type')}", **at)
        else:
            try:
                parsed.append((number, code, shape(raw)))
            except Exception as exc:  # shapely raises several types for malformed coordinates
                report.problem("error", "invalid_geometry", f"unreadable coordinates: {exc}",
                               **at)
    if not parsed:
        return {}
    geoms = np.array([g for _, _, g in parsed], dtype=object)
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    bad_coord = ~np.isfinite(coords).all(axis=1) | (np.abs(coords[:, 0]) > 180) | \
        (np.abs(coords[:, 1]) > 90)
    first_bad: dict[int, tuple[float, float]] = {}
    for i in np.flatnonzero(bad_coord):
        first_bad.setdefault(int(owner[i]), (float(coords[i, 0]), float(coords[i, 1])))
    empty = shapely.get_num_coordinates(geoms) == 0
    keep = []
    for i, (number, code, _) in enumerate(parsed):
        at = {"feature": number, "code": code or None}
        if empty[i]:
            report.problem("error", "empty", "the polygon has no coordinates", **at)
        elif i in first_bad:
            x, y = first_bad[i]
            hint = " (longitude and latitude swapped?)" if abs(x) <= 90 < abs(y) <= 180 else ""
            report.problem("error", "impossible_coordinates",
                           f"impossible coordinate {x}, {y}{hint}", **at)
        else:
            keep.append(i)
    if not keep:
        return {}
    geoms = normalise_many(to_wgs84_geometries(geoms[keep], crs))
    reasons = shapely.is_valid_reason(geoms)
    areas = shapely.area(geoms)
    wkbs = shapely.to_wkb(geoms, include_srid=False)
    out: dict[int, tuple[BaseGeometry, str]] = {}
    for geom, reason, area, wkb, i in zip(geoms, reasons, areas, wkbs, keep, strict=True):
        number, code, _ = parsed[i]
        at = {"feature": number, "code": code or None}
        if reason != "Valid Geometry":
            kind = "self_intersection" if "self-intersection" in reason.lower() \
                else "invalid_geometry"
            text = "the boundary crosses itself" if kind == "self_intersection" else reason
            report.problem("error", kind, f"{text} ({reason})", where=_reason_point(reason),
                           **at)
        elif area == 0:
            report.problem("error", "empty", "the polygon has no area", **at)
        else:
            out[number] = (geom, hashlib.sha256(wkb).hexdigest())
    return out


def read_polygon(raw: dict[str, Any] | None, crs: str, report: ImportReport, number: int,
                 code: str) -> BaseGeometry | None:
    """One feature's geometry (see :func:`read_polygons`)."""
    found = read_polygons([(number, code, raw)], crs, report).get(number)
    return found[0] if found else None


def to_wgs84_geometries(geoms: np.ndarray, crs: str) -> np.ndarray:
    if crs == "wgs84":
        return geoms
    return shapely.transform(geoms, lambda xy: to_wgs84_array(xy, crs))


def _units_by_code(codes: Iterable[str]) -> dict[str, Unit]:
    codes = sorted(set(codes))
    out: dict[str, Unit] = {}
    for i in range(0, len(codes), 500):
        for unit in db.session.execute(sa.select(Unit).where(Unit.code.in_(codes[i:i + 500]))
                                       ).scalars():
            out[unit.code] = unit
    return out


def read_candidates(source: SourceFile, crs: str, report: ImportReport) -> list[Candidate]:
    rows = []
    for feature in source.features:
        props = feature.properties
        code = text_property(props, *CODE_KEYS)
        name = text_property(props, *NAME_KEYS)
        unit_code = text_property(props, *UNIT_KEYS)
        rows.append((feature, code, name, unit_code))
    units = _units_by_code(r[3] for r in rows if r[3])
    polygons = read_polygons([(f.number, code, f.geometry) for f, code, _, _ in rows
                              if not f.problem], crs, report)
    seen_code: dict[str, int] = {}
    seen_hash: dict[str, tuple[int, str]] = {}
    out = []
    for feature, code, name, unit_code in rows:
        at = {"feature": feature.number, "code": code or None}
        if feature.problem:
            report.problem("error", "unreadable", feature.problem, **at)
            continue
        missing = [k for k, v in (("code", code), ("name", name), ("unit", unit_code)) if not v]
        if missing:
            report.problem("error", "missing_property",
                           f"missing propert{'y' if len(missing) == 1 else 'ies'}: "
                           f"{', '.join(missing)}", **at)
        elif len(code) > 40 or len(name) > 80:
            report.problem("error", "too_long", "code is limited to 40 characters, name to 80",
                           **at)
            missing = ["length"]
        geom, geom_hash = polygons.get(feature.number, (None, ""))
        unit = units.get(unit_code) if unit_code else None
        if unit_code and unit is None:
            report.problem("error", "unknown_unit", f"no unit with code {unit_code} (import the "
                           "villages first: yihao import units)", **at,
                           where=_where(geom) if geom is not None else None)
        elif unit is not None and Level(unit.level) is not Level.village:
            report.problem("error", "not_a_village", f"{unit.name} ({unit_code}) is a "
                           f"{unit.level}; a grid belongs to a village or community", **at)
            unit = None
        if code and code in seen_code:
            report.problem("error", "duplicate_code", f"code {code} is also used by feature "
                           f"{seen_code[code]}", **at)
            continue
        if code:
            seen_code[code] = feature.number
        if geom is None:
            continue
        if geom_hash in seen_hash:
            other, other_code = seen_hash[geom_hash]
            report.problem("error", "duplicate_geometry", f"the same polygon as feature {other} "
                           f"({other_code})", where=_where(geom), **at)
            continue
        seen_hash[geom_hash] = (feature.number, code)
        if missing or unit is None:
            continue
        out.append(Candidate(feature.number, code, name, unit, geom, geom_hash))
    return out


# ---------------------------------------------------------------- checks across grids


@dataclass
class Existing:
    code: str
    unit_id: int
    geom: BaseGeometry
    hash: str


def _existing_grids(exclude: set[str], bounds: tuple[float, float, float, float]
                    ) -> list[Existing]:
    """Active drawn grids not in the file whose boxes touch the file's extent."""
    min_lng, min_lat, max_lng, max_lat = bounds
    rows = db.session.execute(
        sa.select(Grid.code, Grid.unit_id, Grid.geom_hash, wkb_of(Grid.geom))
        .where(Grid.active.is_(True), Grid.geom.is_not(None), Grid.max_lng >= min_lng,
               Grid.min_lng <= max_lng, Grid.max_lat >= min_lat, Grid.min_lat <= max_lat)
    ).all()
    rows = [r for r in rows if r[0] not in exclude]
    geoms = from_wkb_many([r[3] for r in rows]) if rows else []
    return [Existing(r[0], r[1], g, r[2]) for r, g in zip(rows, geoms, strict=True)]


def check_against_existing(candidates: list[Candidate], existing: list[Existing],
                           report: ImportReport) -> None:
    by_hash = {e.hash: e for e in existing}
    for c in candidates:
        if (e := by_hash.get(c.hash)) is not None:
            report.problem("error", "duplicate_geometry", f"the same polygon as grid {e.code}, "
                           "already in the database", feature=c.number, code=c.code,
                           where=_where(c.geom))


def check_overlaps(candidates: list[Candidate], existing: list[Existing], tolerance_m2: float,
                   report: ImportReport) -> None:
    geoms = np.array([c.geom for c in candidates] + [e.geom for e in existing], dtype=object)
    labels = [(c.code, c.number) for c in candidates] + [(e.code, None) for e in existing]
    if len(geoms) < 2:
        return
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms[: len(candidates)], predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return
    interiors = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[interiors], right[interiors]
    if len(left) == 0:
        return
    shared = shapely.intersection(geoms[left], geoms[right])
    for i, j, piece in zip(left, right, shared, strict=True):
        area = area_m2(piece)
        if area <= tolerance_m2:
            continue
        # Named on the later feature of the file (the newcomer), naming the other one.
        (a_code, a_num), (b_code, b_num) = labels[i], labels[j]
        if b_num is not None and a_num is not None and b_num > a_num:
            (a_code, a_num), (b_code, b_num) = (b_code, b_num), (a_code, a_num)
        other = f"feature {b_num} ({b_code})" if b_num else f"existing grid {b_code}"
        report.problem("warning", "overlap", f"overlaps {other} by {area:,.0f} m²",
                       feature=a_num, code=a_code, where=_where(piece))


def _boundaries(unit_ids: Iterable[int]) -> dict[int, BaseGeometry]:
    ids = sorted(set(unit_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        sa.select(UnitBoundary.unit_id, wkb_of(UnitBoundary.geom))
        .where(UnitBoundary.unit_id.in_(ids))).all()
    geoms = from_wkb_many([r[1] for r in rows]) if rows else []
    return {r[0]: g for r, g in zip(rows, geoms, strict=True)}


def check_gaps(candidates: list[Candidate], existing: list[Existing], retiring: set[str],
               tolerance_m2: float, report: ImportReport) -> None:
    """Ground inside a village that no grid covers."""
    by_village: dict[int, list[BaseGeometry]] = defaultdict(list)
    names: dict[int, str] = {}
    for c in candidates:
        by_village[c.unit.id].append(c.geom)
        names[c.unit.id] = c.unit.name
    for e in existing:
        if e.unit_id in by_village and e.code not in retiring:
            by_village[e.unit_id].append(e.geom)
    boundaries = _boundaries(by_village)
    for unit_id, geoms in sorted(by_village.items()):
        union = shapely.union_all(geoms)
        if unit_id in boundaries:
            uncovered = shapely.difference(boundaries[unit_id], union)
            pieces = shapely.get_parts(uncovered)
            label = "not covered by any grid"
        else:
            pieces = [shapely.Polygon(ring) for poly in shapely.get_parts(union)
                      for ring in poly.interiors]
            label = "enclosed by its grids but in none (no village boundary imported)"
        for piece in pieces:
            area = area_m2(piece)
            if area > tolerance_m2:
                report.problem("warning", "gap", f"{area:,.0f} m² of {names[unit_id]} "
                               f"{label}", where=_where(piece))


def _county_of(unit: Unit) -> Unit | None:
    node: Unit | None = unit
    while node is not None and Level(node.level) is not Level.county:
        node = node.parent
    return node


@cache
def county_with_slack(code: str) -> BaseGeometry | None:
    """The county's real boundary grown by :data:`COUNTY_SLACK_M` (the package's outlines are
    generalised); computed once per process."""
    region = boundary_index((code[:2],)).boundary(code)
    if region is None:
        return None
    region = region.buffer(degrees_for(COUNTY_SLACK_M, region.centroid.y))
    shapely.prepare(region)
    return region


def check_outside(candidates: list[Candidate], tolerance_m2: float,
                  report: ImportReport) -> None:
    """Grids reaching outside their village's, township's or county's boundary."""
    village_ids = {c.unit.id for c in candidates}
    township_ids = {c.unit.parent_id for c in candidates if c.unit.parent_id}
    drawn = _boundaries(village_ids | township_ids)
    counties: dict[str, BaseGeometry | None] = {}
    for c in candidates:
        checks = [("outside_village", c.unit.name, drawn.get(c.unit.id))]
        if c.unit.parent_id:
            checks.append(("outside_township", c.unit.parent.name if c.unit.parent else "",
                           drawn.get(c.unit.parent_id)))
        for kind, name, boundary in checks:
            if boundary is None or boundary.covers(c.geom):
                continue
            outside = shapely.difference(c.geom, boundary)
            area = area_m2(outside)
            if area > tolerance_m2:
                report.problem("warning", kind, f"{area:,.0f} m² lies outside {name}",
                               feature=c.number, code=c.code, where=_where(outside))
        county = _county_of(c.unit)
        if county is None or not county.code.isdigit():
            continue
        if county.code not in counties:
            counties[county.code] = county_with_slack(county.code)
        region = counties[county.code]
        if region is not None and not region.covers(c.geom):
            outside = shapely.difference(c.geom, region)
            report.problem("warning", "outside_county",
                           f"{area_m2(outside):,.0f} m² lies outside {county.name} (more than "
                           f"{COUNTY_SLACK_M:.0f} m past its boundary)",
                           feature=c.number, code=c.code, where=_where(outside))


# ---------------------------------------------------------------- the import


def import_grids(source: SourceFile, *, kind: str = "geojson", crs: str | None = None,
                 dry_run: bool = False, strict: bool = False, retire_missing: bool = False,
                 overlap_tolerance_m2: float = 1.0, gap_tolerance_m2: float = 100.0,
                 actor: User | None = None, source_name: str = "", file_hash: str = ""
                 ) -> ImportReport:
    """Check every feature and, when there is no error (and no warning under ``strict``) and
    this is not a dry run, apply them in the caller's transaction (the caller commits)."""
    report = ImportReport(features=len(source.features))
    report.notes.extend(source.notes)
    chosen = choose_crs(source, crs, report, kind)
    if chosen is None:
        return report
    report.crs = chosen
    candidates = read_candidates(source, chosen, report)
    current = _current_rows([c.code for c in candidates])
    retiring: set[str] = set()
    if retire_missing and candidates:
        listed = {c.code for c in candidates}
        retiring = set(db.session.execute(
            sa.select(Grid.code).where(Grid.unit_id.in_({c.unit.id for c in candidates}),
                                       Grid.active.is_(True))).scalars()) - listed
    if candidates:
        bounds = shapely.bounds(np.array([c.geom for c in candidates], dtype=object))
        extent = (*bounds[:, :2].min(axis=0), *bounds[:, 2:].max(axis=0))
        existing = _existing_grids({c.code for c in candidates} | retiring, extent)
        check_against_existing(candidates, existing, report)
        check_overlaps(candidates, existing, overlap_tolerance_m2, report)
        check_gaps(candidates, existing, retiring, gap_tolerance_m2, report)
        check_outside(candidates, gap_tolerance_m2, report)
    report.problems.sort(key=lambda p: (p.severity != "error", p.feature or 0, p.kind))
    for c in candidates:
        grid = current.get(c.code)
        if grid is None:
            report.created.append(c.code)
        elif not grid.version:
            report.redrawn.append(c.code)  # known grid, first polygon
        elif grid.active and grid.name == c.name and grid.unit_id == c.unit.id \
                and grid.geom_hash == c.hash:
            report.unchanged.append(c.code)
        else:
            report.redrawn.append(c.code)
    report.retired = sorted(retiring)
    if report.errors or (strict and report.warnings) or dry_run:
        return report
    now = utcnow()
    name = source_name or "import"
    do_create_grids(actor, [(c.code, c.name, c.unit, c.geom, c.hash) for c in candidates
                            if c.code not in current], source=name, at=now)
    redrawn = set(report.redrawn)
    grids = {g.code: g for g in _grids_by_code(sorted(redrawn))}
    with db.session.no_autoflush:
        for c in candidates:
            if c.code in redrawn:
                do_redraw_grid(actor, grids[c.code], name=c.name, unit=c.unit, geom=c.geom,
                               source=name, at=now, audit=False, checked=True)
    if retiring:
        for grid in _grids_by_code(sorted(retiring)):
            do_retire_grid(actor, grid, reason=f"not in {name}", at=now, audit=False)
    report.applied = True
    if report.created or report.redrawn or report.retired:
        db.session.flush()
        append_event("grids", "grids.import", actor=actor, at=now, data={
            "file": name, "sha256": file_hash, "crs": chosen,
            "created": report.created, "redrawn": report.redrawn, "retired": report.retired,
            "unchanged": len(report.unchanged), "warnings": len(report.warnings),
        })
    return report


def _current_rows(codes: list[str]) -> dict[str, Any]:
    """What the database has for these codes (plain rows: no polygons, no ORM objects)."""
    out: dict[str, Any] = {}
    for i in range(0, len(codes), 500):
        for row in db.session.execute(
            sa.select(Grid.id, Grid.code, Grid.name, Grid.unit_id, Grid.geom_hash, Grid.active,
                      Grid.version).where(Grid.code.in_(codes[i:i + 500]))
        ):
            out[row.code] = row
    return out


def _grids_by_code(codes: list[str]) -> list[Grid]:
    out: list[Grid] = []
    for i in range(0, len(codes), 500):
        out.extend(db.session.execute(
            sa.select(Grid).where(Grid.code.in_(codes[i:i + 500]))).scalars())
    return out


def _file_kind(path: Path) -> str:
    return "shapefile" if path.suffix.lower() in (".zip", ".shp") else "geojson"


def import_grids_file(path: Path, **options: Any) -> ImportReport:
    """Read ``path`` (GeoJSON, zipped shapefile or a .shp beside its siblings) and import it."""
    try:
        source = read_source(path)
    except YihaoError as exc:
        report = ImportReport()
        report.problem("error", exc.code, exc.message)
        return report
    return import_grids(source, kind=_file_kind(path), source_name=path.name,
                        file_hash=hashlib.sha256(path.read_bytes()).hexdigest(), **options)


# ---------------------------------------------------------------- township and village boundaries


def import_boundaries_file(path: Path, *, crs: str | None = None, dry_run: bool = False,
                           actor: User | None = None) -> ImportReport:
    """Township and village boundaries: one feature per unit, property ``code`` (the unit)."""
    report = ImportReport()
    try:
        source = read_source(path)
    except YihaoError as exc:
        report.problem("error", exc.code, exc.message)
        return report
    report.features = len(source.features)
    chosen = choose_crs(source, crs, report, _file_kind(path))
    if chosen is None:
        return report
    report.crs = chosen
    codes = [text_property(f.properties, "code", "unit", "unit_code", "编码")
             for f in source.features]
    units = _units_by_code(c for c in codes if c)
    plan: list[tuple[Unit, BaseGeometry]] = []
    seen: dict[str, int] = {}
    for feature, code in zip(source.features, codes, strict=True):
        at = {"feature": feature.number, "code": code or None}
        if feature.problem:
            report.problem("error", "unreadable", feature.problem, **at)
            continue
        geom = read_polygon(feature.geometry, chosen, report, feature.number, code)
        unit = units.get(code)
        if not code:
            report.problem("error", "missing_property", "missing property: code", **at)
        elif unit is None:
            report.problem("error", "unknown_unit", f"no unit with code {code}", **at)
        elif Level(unit.level) not in (Level.township, Level.village):
            report.problem("error", "boundary_level", f"{unit.name} is a {unit.level}; only "
                           "township and village boundaries are imported", **at)
            unit = None
        if code in seen:
            report.problem("error", "duplicate_code", f"unit {code} is also drawn by feature "
                           f"{seen[code]}", **at)
            continue
        seen[code] = feature.number
        if geom is not None and unit is not None:
            plan.append((unit, geom))
    if report.errors or dry_run:
        return report
    for unit, geom in plan:
        if do_set_boundary(actor, unit, geom, source=path.name, audit=False):
            report.created.append(unit.code)
        else:
            report.unchanged.append(unit.code)
    report.applied = True
    if report.created:
        append_event("boundaries", "boundaries.import", actor=actor,
                     data={"file": path.name, "units": report.created})
    return report
