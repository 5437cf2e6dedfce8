"""Import villages and communities (or any units) from CSV or Excel.

Columns: ``code`` (12-digit division code where one exists), ``name``, ``parent_code``, and
optionally ``level`` (default ``village``). Every row is checked and every problem reported
with its row number; nothing is written unless the whole file is clean. Re-importing the
same file changes nothing (rows whose code exists are renamed if the name differs).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from server.core.db import db
from server.core.errors import YihaoError

from .models import Level, Unit
from .operations import check_create_unit, do_create_unit, do_update_unit

REQUIRED = ("code", "name", "parent_code")


@dataclass
class Problem:
    row: int
    message: str


@dataclass
class ImportReport:
    created: int = 0
    renamed: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)

    def summary(self, dry_run: bool) -> str:
        verb = "would be" if dry_run else "were"
        if self.problems:
            return f"{len(self.problems)} problems; nothing was imported"
        return (f"{self.created} units {verb} created, {self.renamed} renamed, "
                f"{self.unchanged} unchanged")


def _read_rows(path: Path) -> list[dict[str, str]]:
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        sheet = load_workbook(path, read_only=True, data_only=True).active
        rows = list(sheet.iter_rows(values_only=True))  # type: ignore[union-attr]
        if not rows:
            return []
        header = [str(h or "").strip().lower() for h in rows[0]]
        return [{header[i]: "" if v is None else str(v).strip() for i, v in enumerate(r)
                 if i < len(header)} for r in rows[1:]]
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise YihaoError("the file is neither UTF-8 nor GB18030 text", code="bad_encoding")
    reader = csv.DictReader(io.StringIO(text))
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            for row in reader]


def import_units_file(path: Path, *, dry_run: bool = False) -> ImportReport:
    report = ImportReport()
    rows = _read_rows(path)
    if rows and (missing := [c for c in REQUIRED if c not in rows[0]]):
        report.problems.append(Problem(1, f"missing columns: {', '.join(missing)}"))
        return report
    by_code = {u.code: u for u in db.session.execute(sa.select(Unit)).scalars()}
    seen: dict[str, int] = {}
    plan: list[tuple[int, dict[str, str], Level]] = []
    for number, row in enumerate(rows, start=2):
        code, name, parent_code = row.get("code", ""), row.get("name", ""), row.get("parent_code", "")
        if not code or not name or not parent_code:
            report.problems.append(Problem(number, "code, name and parent_code are required"))
            continue
        if code in seen:
            report.problems.append(Problem(number, f"code {code} repeats row {seen[code]}"))
            continue
        seen[code] = number
        try:
            level = Level(row.get("level") or "village")
        except ValueError:
            report.problems.append(Problem(number, f"unknown level {row.get('level')!r}"))
            continue
        plan.append((number, row, level))
    planned_codes = {row["code"]: level for _, row, level in plan}
    for number, row, level in plan:
        parent = by_code.get(row["parent_code"])
        if parent is None and row["parent_code"] not in planned_codes:
            report.problems.append(Problem(number, f"no parent unit {row['parent_code']}"))
            continue
        if parent is not None and row["code"] not in by_code:
            try:
                check_create_unit(row["code"], row["name"], level, parent)
            except YihaoError as exc:
                report.problems.append(Problem(number, exc.message))
    if report.problems:
        return report
    for _, row, level in plan:
        existing = by_code.get(row["code"])
        if existing is not None:
            if do_update_unit(None, existing, name=row["name"]):
                report.renamed += 1
            else:
                report.unchanged += 1
            continue
        unit = do_create_unit(None, code=row["code"], name=row["name"], level=level,
                              parent=by_code[row["parent_code"]])
        by_code[unit.code] = unit
        report.created += 1
    return report
