"""HQ's answers: every shelter it knows (GET /api/v1/shelters), the totals over them
(GET /api/v1/summary), and what the public sees (GET /api/v1/public/shelters). Figures
per shelter are as last synced and computed (``last_synced_at``, ``as_of``)."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict
from typing_extensions import TypedDict

from shelter.domain.roster import CROWDING
from shelter.domain.schemas.desk import Counts
from shelter.domain.schemas.fields import Choice
from shelter.domain.settings import STATUSES

Status = Annotated[str, Choice(STATUSES)]
Crowding = Annotated[str, Choice((*CROWDING, "unknown", "closed"))]


class PublicShelter(TypedDict):
    """An open shelter as anyone may see it: where, how crowded, how fresh; no people."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    shelter_id: str
    name: str
    municipality: str
    address: str
    lat: float | None
    lon: float | None
    status: Status
    crowding: Crowding
    occupancy: float | None
    last_synced_at: str | None
    as_of: str | None
    stale: bool


class PublicShelters(TypedDict):
    shelters: list[PublicShelter]
    attribution: str


class ShelterRow(Counts):
    """One shelter HQ knows (the registry's, or one that syncs), with its headcount."""

    shelter_id: str
    name: str
    municipality: str
    address: NotRequired[str]
    lat: NotRequired[float | None]
    lon: NotRequired[float | None]
    contact: NotRequired[str]
    provisional: NotRequired[int]
    arrivals_last_hour: NotRequired[int]
    departures_last_hour: NotRequired[int]
    occupancy: NotRequired[float | None]
    crowding: Crowding
    low_stock: NotRequired[list[str]]
    supply_days: NotRequired[dict[str, Any]]
    open_requests: NotRequired[int]
    status: Status
    last_synced_at: str | None
    as_of: NotRequired[str | None]
    stale: NotRequired[bool]


class Shelters(TypedDict):
    shelters: list[ShelterRow]


class Summary(Counts):
    """Totals over all shelters, with the headcount's names."""

    shelters: int
    shelters_open: int
    shelters_stale: int
    stale_present: NotRequired[int]
    low_stock_shelters: NotRequired[int]
    open_requests: NotRequired[int]
    occupancy: NotRequired[float | None]
    # How far the figures follow HQ's log (HQ stores first, projects after): when the
    # newest event they include reached HQ (null before the first), and the lag behind it.
    projected_through: str | None
    projection_lag_events: int
    projection_lag_seconds: float
