"""``yihao import gazetteer FILE``: roads, communities, buildings and landmarks that addresses
name, each tied to the unit it lies in (and optionally a point), so that “锦绣家园3号楼” finds its
village — and, with a point, its grid.

Columns (CSV or Excel): ``name``, ``unit`` (unit code), and optionally ``kind`` (road,
community, building, landmark, other), ``aliases`` (separated by ``|``, ``;`` or ``、``), ``lng``,
``lat`` and ``crs`` (wgs84, gcj02, bd09; default wgs84). As with units, every row is checked,
every problem named with its row, and nothing is written unless the file is clean; importing
the same file again changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from hierarchy.importer import ImportReport, Problem, _read_rows
from hierarchy.models import Unit, User
from server.core.audit import append_event
from server.core.errors import YihaoError

from .crs import to_wgs84
from .importer import _units_by_code
from .operations import check_gazetteer_entry, do_upsert_gazetteer_entry


def import_gazetteer_file(path: Path, *, dry_run: bool = False, actor: User | None = None
                          ) -> ImportReport:
    report = ImportReport()
    rows = _read_rows(path)
    if rows and (missing := [c for c in ("name", "unit") if c not in rows[0]]):
        report.problems.append(Problem(1, f"missing columns: {', '.join(missing)}"))
        return report
    units = _units_by_code(r.get("unit", "") for r in rows if r.get("unit"))
    plan: list[tuple[str, Unit, str, list[str], tuple[float, float] | None]] = []
    for number, row in enumerate(rows, start=2):
        name, code = row.get("name", ""), row.get("unit", "")
        kind = row.get("kind") or "landmark"
        aliases = [a for a in re.split(r"[|;；、]", row.get("aliases", "")) if a.strip()]
        unit = units.get(code)
        if unit is None:
            report.problems.append(Problem(number, f"no unit with code {code!r}"))
            continue
        point = None
        try:
            if row.get("lng") or row.get("lat"):
                point = to_wgs84(float(row.get("lng", "")), float(row.get("lat", "")),
                                 row.get("crs") or "wgs84")
            check_gazetteer_entry(name, kind, *(point or (None, None)))
        except ValueError:
            report.problems.append(Problem(number, "lng and lat must be numbers"))
            continue
        except YihaoError as exc:
            report.problems.append(Problem(number, exc.message))
            continue
        plan.append((name, unit, kind, aliases, point))
    if report.problems or dry_run:
        report.created = len(plan)
        return report
    changed = []
    for name, unit, kind, aliases, point in plan:
        _entry, did = do_upsert_gazetteer_entry(actor, name=name, unit=unit, kind=kind,
                                                aliases=aliases, point=point, audit=False)
        if did:
            changed.append(f"{unit.code}:{name}")
            report.created += 1
        else:
            report.unchanged += 1
    if changed:
        append_event("gazetteer", "gazetteer.import", actor=actor,
                     data={"file": path.name, "entries": changed})
    return report
