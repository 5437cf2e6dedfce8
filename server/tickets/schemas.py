"""Request bodies of the ticket API, validated with pydantic.

The same models feed the OpenAPI document, so what is documented is what is enforced.
Unknown fields are ignored (clients may be newer than the server); wrong types, empty
required text and out-of-range numbers are 422 with the field named.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .models import Crs, Resolution, Satisfaction, Source, TicketType, Urgency

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=500)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=300)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=20000)


class ActionBody(Body):
    base_version: int | None = Field(
        default=None, ge=0, description="The ticket version the client saw; stale → 409."
    )


class Location(Body):
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    crs: Crs = Crs.wgs84


class Reporter(Body):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None
    anonymous: bool = False


class AcceptBody(Body):
    source: Source
    type: TicketType
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10000)]
    category_code: Code | None = None
    urgency: Urgency = Urgency.normal
    location: Location | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    reporter: Reporter | None = None
    external_id: Code | None = None


class DispatchBody(ActionBody):
    unit: Code | None = None
    grid: Code | None = None
    worker: Code | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def one_target(self) -> DispatchBody:
        targets = [t for t in (self.unit, self.grid, self.worker) if t]
        if len(targets) != 1:
            raise ValueError("give exactly one of unit, grid or worker")
        return self


class CorrectLocationBody(ActionBody):
    """Where the problem really is: a new point, a new address, or both, and why."""

    location: Location | None = None
    address: Address | None = None
    reason: Reason

    @model_validator(mode="after")
    def something_new(self) -> CorrectLocationBody:
        if self.location is None and not self.address:
            raise ValueError("give a location, an address or both")
        return self


class ReturnBody(ActionBody):
    reason: Reason


class CheckInBody(ActionBody):
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    crs: Crs = Crs.wgs84
    accuracy_m: float | None = Field(default=None, ge=0, le=100000, allow_inf_nan=False)
    fix_age_s: float | None = Field(default=None, ge=0, le=86400 * 7, allow_inf_nan=False)
    reason: Note | None = None


class ReplyBody(ActionBody):
    result: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=5000)]
    resolution: Resolution
    photos: list[Annotated[str, StringConstraints(max_length=36)]] = Field(
        default_factory=list, max_length=20
    )


class EmptyBody(ActionBody):
    pass


class RejectBody(ActionBody):
    reason: Reason


class ExtensionRequestBody(ActionBody):
    days: int = Field(ge=1, le=10, description="Working days asked for (at most 10).")
    reason: Reason


class ExtensionDecisionBody(ActionBody):
    approve: bool
    days: int | None = Field(default=None, ge=1, le=10)


class UrgeBody(ActionBody):
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class FollowUpBody(ActionBody):
    reached: bool
    satisfaction: Satisfaction | None = None
    comment: Note | None = None

    @model_validator(mode="after")
    def satisfaction_when_reached(self) -> FollowUpBody:
        if self.reached and self.satisfaction is None:
            raise ValueError("satisfaction is required when the citizen was reached")
        return self


class ReopenBody(ActionBody):
    reason: Reason
