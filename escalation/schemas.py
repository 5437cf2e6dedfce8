"""Request bodies of the escalation endpoints (validated with pydantic: 422 on bad input)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9_.\-]+$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RuleBody(Body):
    """A deadline rule (created, or replaced when the code exists)."""

    code: Code
    name: Name
    clock: Literal["sign", "check_in", "reply", "review"]
    scope_unit: str | None = Field(default=None, max_length=32,
                                   description="Province, city or county unit code; empty = all")
    ticket_type: Literal["consultation", "help", "complaint", "report", "suggestion"] | None = None
    category_prefix: str | None = Field(default=None, max_length=32)
    urgency: Literal["normal", "urgent", "emergency"] | None = None
    level: Literal["province", "city", "county", "township", "village"] | None = None
    amount: int = Field(ge=1, le=100_000)
    unit: Literal["minutes", "hours", "working_days"]
    due_soon_percent: int = Field(default=80, ge=0, le=99)
    repeat_amount: int = Field(default=1, ge=1, le=100_000)
    repeat_unit: Literal["minutes", "hours", "working_days"] = "working_days"
    top_level: Literal["county", "city"] | None = "county"
    enabled: bool = True


class RuleEnableBody(Body):
    enabled: bool


class CalendarDayBody(Body):
    """Mark one day a working day or a day off (``name``: the holiday or adjustment)."""

    day: date
    is_workday: bool
    name: str | None = Field(default=None, max_length=40)


class CalendarYearBody(Body):
    """Enter a year's statutory holidays (weekdays off) and adjusted working weekends."""

    year: int = Field(ge=2000, le=2100)
    holidays: list[date] = Field(default_factory=list, max_length=60)
    workdays: list[date] = Field(default_factory=list, max_length=30)
    names: dict[str, str] = Field(default_factory=dict, description="ISO day → name")


class AcknowledgeBody(Body):
    note: Note | None = None


class UrgeBody(Body):
    note: Note
