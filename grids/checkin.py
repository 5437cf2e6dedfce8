"""Is this GPS fix proof that the worker is at the problem? The check-in rules.

A check-in is the grid worker's proof of presence, so it is judged on two questions:

1. **Is the fix good enough?** Phones report an accuracy radius and the fix's age. By default
   a fix is fine at ≤ 20 m, fair up to 50 m, earns a warning above 50 m and is refused above
   100 m; a fix older than 2 minutes is refused (a phone indoors replays its last outdoor
   fix). An accuracy of exactly 0 m is physically impossible and typical of fake-location
   apps: it is flagged for the station to see, not refused (some old phones report it too).
2. **Is it at the problem?** Accepted when the point lies inside the ticket's grid or within a
   configurable distance of the ticket's location (default 200 m: a pothole's address and
   the worker standing beside it rarely agree to the metre).

A refused check-in is not lost: the worker may give a reason (no signal under the bridge,
the problem moved) and the check-in is then accepted with a warning that shows the reason.
Without one, the attempt is still recorded (``verdict = "refused"``) and an event is
appended, so the station can see that the worker tried.

Thresholds are configuration (``YIHAO_CHECKIN_*``), read per call so a deployment can tighten
them without a restart of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from .crs import haversine_m


@dataclass(frozen=True)
class CheckInRules:
    """The thresholds; the defaults are those of the province's field-work rules."""

    good_accuracy_m: float = 20.0
    warn_accuracy_m: float = 50.0
    refuse_accuracy_m: float = 100.0
    max_fix_age_s: float = 120.0
    max_distance_m: float = 200.0

    @classmethod
    def from_config(cls, config: Any) -> CheckInRules:
        """Rules from a Flask config (``YIHAO_CHECKIN_GOOD_ACCURACY_M`` …), defaults elsewhere."""
        values: dict[str, float] = {}
        for name in cls.__dataclass_fields__:
            raw = config.get(f"YIHAO_CHECKIN_{name.upper()}")
            if raw not in (None, ""):
                values[name] = float(raw)
        return cls(**values)


#: Verdicts, in rising order of severity.
ACCEPTED, WARNING, REFUSED = "accepted", "warning", "refused"


@dataclass
class Verdict:
    """The judgement on one check-in: its verdict, why, and the measured facts."""

    verdict: str = ACCEPTED
    #: Stable machine-readable reasons: accuracy_fair, accuracy_poor, accuracy_unknown,
    #: accuracy_too_poor, fix_too_old, fix_age_unknown, zero_accuracy, outside_area,
    #: no_location, overridden.
    flags: list[str] = field(default_factory=list)
    #: Readable sentences (zh-Hans) for the worker and the station, one per flag worth saying.
    messages: list[str] = field(default_factory=list)
    distance_m: float | None = None
    inside_grid: bool | None = None

    def _raise_to(self, verdict: str) -> None:
        order = (ACCEPTED, WARNING, REFUSED)
        if order.index(verdict) > order.index(self.verdict):
            self.verdict = verdict

    def note(self, flag: str, message: str, verdict: str = ACCEPTED) -> None:
        self.flags.append(flag)
        if message:
            self.messages.append(message)
        self._raise_to(verdict)

    @property
    def refused(self) -> bool:
        return self.verdict == REFUSED

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "flags": list(self.flags), "messages": list(self.messages),
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "inside_grid": self.inside_grid,
        }


def judge_check_in(
    point: tuple[float, float],
    *,
    accuracy_m: float | None,
    fix_age_s: float | None,
    reason: str | None,
    ticket_point: tuple[float, float] | None,
    grid_geom: BaseGeometry | None,
    rules: CheckInRules | None = None,
) -> Verdict:
    """Judge one WGS-84 fix against the ticket's location and grid. Pure: no database."""
    rules = rules or CheckInRules()
    v = Verdict()
    _judge_fix(v, accuracy_m, fix_age_s, rules)
    _judge_place(v, point, ticket_point, grid_geom, rules)
    if v.refused and reason:
        # The worker explains: accepted, but nobody will miss that it was an exception.
        v.verdict = WARNING
        v.note("overridden", f"按说明接受：{reason}", WARNING)
    return v


def _judge_fix(v: Verdict, accuracy_m: float | None, fix_age_s: float | None,
               rules: CheckInRules) -> None:
    if accuracy_m is None:
        v.note("accuracy_unknown", "定位未报告精度", WARNING)
    elif accuracy_m == 0:
        v.note("zero_accuracy", "定位精度为 0 米，疑似模拟定位，已标记", WARNING)
    elif accuracy_m > rules.refuse_accuracy_m:
        v.note("accuracy_too_poor",
               f"定位精度 {accuracy_m:.0f} 米，超过 {rules.refuse_accuracy_m:.0f} 米，请到室外重新定位",
               REFUSED)
    elif accuracy_m > rules.warn_accuracy_m:
        v.note("accuracy_poor", f"定位精度 {accuracy_m:.0f} 米，偏低", WARNING)
    elif accuracy_m > rules.good_accuracy_m:
        v.note("accuracy_fair", "")
    if fix_age_s is None:
        v.note("fix_age_unknown", "")
    elif fix_age_s > rules.max_fix_age_s:
        v.note("fix_too_old",
               f"定位是 {fix_age_s / 60:.0f} 分钟前的，超过 {rules.max_fix_age_s / 60:.0f} 分钟，请重新定位",
               REFUSED)


def _judge_place(v: Verdict, point: tuple[float, float], ticket_point: tuple[float, float] | None,
                 grid_geom: BaseGeometry | None, rules: CheckInRules) -> None:
    if ticket_point is not None:
        v.distance_m = haversine_m(point[0], point[1], ticket_point[0], ticket_point[1])
    if grid_geom is not None and not grid_geom.is_empty:
        v.inside_grid = bool(grid_geom.covers(Point(point)))
    near = v.distance_m is not None and v.distance_m <= rules.max_distance_m
    if near or v.inside_grid:
        return
    if v.distance_m is None and v.inside_grid is None:
        v.note("no_location", "工单没有位置和网格，无法核对签到位置", WARNING)
        return
    where = (f"距工单位置 {v.distance_m:.0f} 米" if v.distance_m is not None else "不在工单所在网格内")
    v.note("outside_area", f"{where}，不在网格内也不在 {rules.max_distance_m:.0f} 米范围内", REFUSED)
