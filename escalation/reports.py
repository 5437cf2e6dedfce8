"""Deadline reports, computed from the ticket events alone (plus the unit and grid tree).

Every figure can be replayed from the hash-chained events: on-time signing and replying come
from the clock outcomes the escalation hook writes into the ``sign`` and ``reply`` events
(``data.sla``), closing on time from the ``approve`` event, overdue clocks and escalations
from the ``escalate`` events (rung 1 is the breach, rung ≥ 2 a repeat escalation), overdue
durations from the outcomes of clocks that stopped late. Each figure is counted where the
ticket was at that moment — its grid's township, else the township of the unit holding it —
and in the Shanghai ISO week of the event.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from grids.models import Grid
from hierarchy.models import Unit
from server.core.audit import Event
from server.core.db import db

from .calendar import SHANGHAI

NONE_KEY = "-"


@dataclass
class Row:
    """One line of the report (a township, a grid, a week, or the total)."""

    key: str
    name: str
    accepted: int = 0
    sign_total: int = 0
    sign_on_time: int = 0
    reply_total: int = 0
    reply_on_time: int = 0
    close_total: int = 0
    close_on_time: int = 0
    overdue: int = 0
    late_stopped: int = 0
    overdue_minutes: int = 0
    escalations: int = 0
    repeat_escalations: int = 0
    returns: int = 0
    tickets_escalated: set[int] = field(default_factory=set)
    tickets_escalated_twice: set[int] = field(default_factory=set)

    @staticmethod
    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "name": self.name, "accepted": self.accepted,
            "sign": {"total": self.sign_total, "on_time": self.sign_on_time,
                     "rate": self.rate(self.sign_on_time, self.sign_total)},
            "reply": {"total": self.reply_total, "on_time": self.reply_on_time,
                      "rate": self.rate(self.reply_on_time, self.reply_total)},
            "close": {"total": self.close_total, "on_time": self.close_on_time,
                      "rate": self.rate(self.close_on_time, self.close_total)},
            "overdue": self.overdue, "late_stopped": self.late_stopped,
            "overdue_minutes": self.overdue_minutes,
            "avg_overdue_minutes": round(self.overdue_minutes / self.late_stopped, 1)
            if self.late_stopped else None,
            "escalations": self.escalations, "repeat_escalations": self.repeat_escalations,
            "tickets_escalated": len(self.tickets_escalated),
            "tickets_escalated_repeatedly": len(self.tickets_escalated_twice),
            "returns": self.returns,
        }


@dataclass
class Report:
    start: datetime
    end: datetime
    total: Row
    townships: list[Row]
    grids: list[Row]
    weeks: list[Row]
    events: int

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(), "events": self.events,
            "total": self.total.as_json(),
            "townships": [r.as_json() for r in self.townships],
            "grids": [r.as_json() for r in self.grids],
            "weeks": [r.as_json() for r in self.weeks],
        }

    def to_xlsx(self) -> bytes:
        """The report as an Excel workbook (summary, townships, grids, weekly trend)."""
        from openpyxl import Workbook
        from openpyxl.styles import Font

        book = Workbook()
        sheets = [("汇总", [self.total]), ("乡镇", self.townships), ("网格", self.grids),
                  ("周趋势", self.weeks)]
        header = ["编码", "名称", "受理", "签收数", "按时签收", "签收按时率", "反馈数", "按时反馈",
                  "反馈按时率", "办结数", "按时办结", "办结按时率", "超时", "超时后办理",
                  "超时总分钟", "平均超时分钟", "升级次数", "再次升级", "升级工单", "多次升级工单",
                  "退回"]
        first = True
        for title, rows in sheets:
            sheet = book.active if first else book.create_sheet()
            first = False
            assert sheet is not None
            sheet.title = title
            sheet.append(header)
            for cell in sheet[1]:
                cell.font = Font(bold=True)
            for row in rows:
                j = row.as_json()
                sheet.append([
                    row.key, row.name, row.accepted,
                    j["sign"]["total"], j["sign"]["on_time"], j["sign"]["rate"],
                    j["reply"]["total"], j["reply"]["on_time"], j["reply"]["rate"],
                    j["close"]["total"], j["close"]["on_time"], j["close"]["rate"],
                    row.overdue, row.late_stopped, row.overdue_minutes,
                    j["avg_overdue_minutes"], row.escalations, row.repeat_escalations,
                    j["tickets_escalated"], j["tickets_escalated_repeatedly"], row.returns,
                ])
            for col in ("F", "I", "L"):
                for cell in sheet[col][1:]:
                    cell.number_format = "0.0%"
            sheet.freeze_panes = "C2"
        meta = book.create_sheet("说明")
        meta.append(["统计区间（UTC）", self.start.isoformat(), self.end.isoformat()])
        meta.append(["事件数", self.events])
        meta.append(["口径", "全部数字由工单事件（哈希链）重算得出，按事件发生时工单所在乡镇/网格、"
                             "上海时区ISO周归类。"])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()


def _week(at: datetime) -> str:
    year, week, _ = at.astimezone(SHANGHAI).isocalendar()
    return f"{year}-W{week:02d}"


def _sla(data: dict[str, Any], clock: str) -> list[dict[str, Any]]:
    return [o for o in data.get("sla") or [] if o.get("clock") == clock]


def build(ticket_ids: sa.Select[Any], start: datetime, end: datetime) -> Report:
    """The report over events in [start, end) of the given tickets."""
    active = sa.select(Event.ticket_id).where(
        Event.ticket_id.in_(ticket_ids), Event.at >= start, Event.at < end,
        Event.stream.like("ticket:%")).distinct()
    events = db.session.execute(
        sa.select(Event.ticket_id, Event.kind, Event.at, Event.data)
        .where(Event.ticket_id.in_(active), Event.stream.like("ticket:%"), Event.at < end)
        .order_by(Event.ticket_id, Event.seq)
    ).all()
    units = {u.code: u for u in db.session.execute(sa.select(Unit)).scalars()}
    by_id = {u.id: u for u in units.values()}
    grid_rows = {g.code: g for g in db.session.execute(sa.select(Grid)).scalars()}

    def township(unit: Unit | None) -> Unit | None:
        if unit is None:
            return None
        for part in unit.path.strip("/").split("/"):
            found = by_id.get(int(part)) if part else None
            if found is not None and found.level == "township":
                return found
        return None

    total = Row("total", "合计")
    towns: dict[str, Row] = {}
    grids: dict[str, Row] = {}
    weeks: dict[str, Row] = {}
    counted = 0
    current: dict[int, tuple[str | None, str | None]] = {}  # ticket → (unit code, grid code)
    for ticket_id, kind, at, data in events:
        unit_code, grid_code = current.get(ticket_id, (None, None))
        if kind == "accept":
            unit_code, grid_code = data.get("unit"), data.get("grid")
        elif kind == "dispatch":
            unit_code = data.get("unit") or unit_code
            grid_code = data.get("grid") or grid_code
        elif kind == "return":
            unit_code = data.get("to") or unit_code
        current[ticket_id] = (unit_code, grid_code)
        if at < start:
            continue
        counted += 1
        grid = grid_rows.get(grid_code) if grid_code else None
        where = by_id.get(grid.unit_id) if grid is not None else units.get(unit_code or "")
        town = township(where)
        targets = [
            total,
            towns.setdefault(town.code if town else NONE_KEY,
                             Row(town.code if town else NONE_KEY,
                                 town.name if town else "县级及以上")),
            grids.setdefault(grid.code if grid else NONE_KEY,
                             Row(grid.code if grid else NONE_KEY,
                                 grid.name if grid else "无网格")),
            weeks.setdefault(_week(at), Row(_week(at), _week(at))),
        ]
        _count(targets, ticket_id, kind, data)
    return Report(
        start=start, end=end, total=total,
        townships=sorted(towns.values(), key=lambda r: (r.key == NONE_KEY, r.key)),
        grids=sorted(grids.values(), key=lambda r: (r.key == NONE_KEY, r.key)),
        weeks=sorted(weeks.values(), key=lambda r: r.key), events=counted,
    )


def _count(rows: Iterable[Row], ticket_id: int, kind: str, data: dict[str, Any]) -> None:
    for row in rows:
        if kind == "accept":
            row.accepted += 1
        elif kind == "sign":
            outcomes = _sla(data, "sign")
            late = outcomes[0]["late"] if outcomes else bool(data.get("late"))
            row.sign_total += 1
            row.sign_on_time += int(not late)
        elif kind == "reply":
            outcomes = _sla(data, "reply")
            if outcomes:
                row.reply_total += 1
                row.reply_on_time += int(not outcomes[0]["late"])
        elif kind == "approve":
            row.close_total += 1
            row.close_on_time += int(not data.get("late"))
        elif kind == "escalate":
            if data.get("rung") == 1:
                row.overdue += 1
            if data.get("to"):
                row.escalations += 1
                if ticket_id in row.tickets_escalated:
                    row.tickets_escalated_twice.add(ticket_id)
                row.tickets_escalated.add(ticket_id)
                if (data.get("rung") or 0) >= 2:
                    row.repeat_escalations += 1
        elif kind == "return":
            row.returns += 1
        for outcome in data.get("sla") or []:
            if outcome.get("late") and outcome.get("overdue_minutes"):
                row.late_stopped += 1
                row.overdue_minutes += int(outcome["overdue_minutes"])
