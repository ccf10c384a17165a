"""The desk's shapes: a scan (POST /api/v1/scans) and what it answers, the headcount, and
the node's link to HQ. A scan's shape is checked first; whether the code names someone,
and whether the action fits where they are, only ``presence.scan`` can say."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NotRequired

from pydantic import ConfigDict, RootModel, ValidationInfo
from typing_extensions import TypedDict

from shelter.core.errors import N_
from shelter.domain import household_code
from shelter.domain.presence import ACTIONS, DESTINATIONS, DETAIL_LIMIT
from shelter.domain.roster import CROWDING
from shelter.domain.schemas.fields import (
    BLANK,
    Body,
    Choice,
    Flag,
    Refusal,
    Rule,
    When,
    refuse,
)
from shelter.domain.schemas.households import Need
from shelter.domain.schemas.patterns import SPACE, one_line

GARBLED = Refusal("garbled", N_("This code cannot be read. Scan it again or type the short "
                                "code printed under the QR."))
WHAT_TO_DO = Refusal("invalid_action", N_("Choose what to do: check in, go out, return or "
                                          "check out."))
PRESENCE = ("present", "out", "left", "not_arrived", "elsewhere")


CARD_LIMIT = 400
# A household code: its prefix, at most one QR code's digits, and the spaces and line
# breaks a scanner or a copy may put between them.
HOUSEHOLD_LIMIT = len(household_code.PREFIX) + household_code.MAX_DIGITS + 400
# What household_code.looks_like takes: SHH and a digit after a few spaces, any width/case.
HOUSEHOLD_START = (f"^[{SPACE}]{{0,4}}[Ss\\uff33\\uff53][Hh\\uff28\\uff48]"
                   "[Hh\\uff28\\uff48][0-9\\uff10-\\uff19]")


@dataclass(frozen=True)
class Code(Rule):
    """What a card's QR code or its typed short code reads: some text, at most 400 long
    (which person it names, and whether the card is genuine, the scan decides); with
    ``households``, a household code too (SHH1..., up to ``HOUSEHOLD_LIMIT``); with
    ``optional``, nothing at all (empty or null) is no card."""

    optional: bool = False
    households: bool = False

    def check(self, value: Any, info: ValidationInfo) -> Any:
        if self.optional and not value:
            return value
        if not isinstance(value, str) or not value.strip():
            raise refuse(GARBLED.message, GARBLED.code)
        household = self.households and household_code.looks_like(value)
        if len(value) > (HOUSEHOLD_LIMIT if household else CARD_LIMIT):
            raise refuse(GARBLED.message, GARBLED.code)
        return value

    @property
    def needs_value(self) -> bool:
        return not self.optional

    def schema(self) -> dict[str, Any]:
        code: dict[str, Any] = {"type": "string", "maxLength": CARD_LIMIT,
                                "pattern": f"[^{SPACE}]"}
        if self.households:
            code = {"anyOf": [code, {"type": "string", "maxLength": HOUSEHOLD_LIMIT,
                                     "pattern": HOUSEHOLD_START}]}
        return {"anyOf": [code, {"const": ""}, {"type": "null"}]} if self.optional else code


@dataclass(frozen=True)
class Detail(Rule):
    """Where to, in words (which shelter): one line, at most 80; needed for another
    shelter."""

    def check(self, value: Any, info: ValidationInfo) -> str:
        detail = value.strip() if isinstance(value, str) else None if value else ""
        if detail is None or len(detail) > DETAIL_LIMIT or any(ord(ch) < 32 for ch in detail):
            raise refuse(N_("Too long or not valid text."), "invalid_destination")
        if info.data.get("destination") == "other_shelter" and not detail:
            raise refuse(N_("Say which shelter."), "invalid_destination")
        return detail

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "pattern": detail_line()}, *BLANK]}


def detail_line(required: bool = False) -> str:
    return one_line(DETAIL_LIMIT, required, f"[^{SPACE}\\u0000-\\u001f]", "[^\\u0000-\\u001f]")


def _which_shelter(schema: dict[str, Any]) -> None:
    schema["if"] = {"required": ["action", "destination"], "properties": {
        "action": {"const": "check_out"}, "destination": {"const": "other_shelter"}}}
    schema["then"] = {"required": ["destination_detail"], "properties": {
        "destination_detail": {"type": "string", "pattern": detail_line(required=True)}}}


class ScanIn(Body):
    """A card (or short code) scanned at the desk, and what to do: ``auto`` checks in, or
    out and back, by where the person is. Checking out needs where to, and another
    shelter needs which one. A household code (SHH1...) registers the household if it is
    new here and applies the action to each of its members (``auto``: check in); with
    ``household``, a card's action applies to everyone of the holder's household. Both
    answer ``HouseholdScanned``."""

    model_config = ConfigDict(json_schema_extra=_which_shelter)
    missing: ClassVar[dict[str, Refusal]] = {"action": WHAT_TO_DO, "code": GARBLED}

    action: Annotated[str, Choice((*ACTIONS, "auto"), WHAT_TO_DO.message, WHAT_TO_DO.code)]
    destination: Annotated[Any, When(("check_out",), Choice(
        DESTINATIONS, N_("Choose where the person is going."), "invalid_destination"),
        key="action")] = ""
    destination_detail: Annotated[Any, When(("check_out",), Detail(), key="action")] = ""
    code: Annotated[str, Code(households=True)]
    household: Annotated[bool, Flag()] = False


class PresenceNow(TypedDict):
    status: Annotated[str, Choice(PRESENCE)]
    last_action: str | None
    since: str | None
    shelter_id: str | None
    destination: str
    destination_detail: str


class HouseholdMember(TypedDict):
    person_id: str
    display_name: str
    status: Annotated[str, Choice(PRESENCE)]


class Scanned(TypedDict):
    """The person scanned, as the desk sees them, and what the scan did (``repeated``: the
    same scan moments ago, counted once)."""

    person_id: str
    display_name: str
    family_name_kana: NotRequired[str]
    given_name_kana: NotRequired[str]
    household_id: NotRequired[str | None]
    needs: NotRequired[list[Need]]
    flags: NotRequired[list[Need]]
    allergies: NotRequired[str]  # what the allergy is to (卵): staff roles only
    medication: NotRequired[str]  # the medicines taken regularly
    age: NotRequired[int | None]
    registered_shelter: NotRequired[str]
    # Its name as this node knows it ("" if not): never read from the card.
    registered_shelter_name: NotRequired[str]
    provisional: NotRequired[bool]  # admitted on a card from another shelter
    card_verified: NotRequired[bool]
    household: NotRequired[list[HouseholdMember]]
    presence: PresenceNow
    outcome: Annotated[str, Choice(("done", "already", "repeated"))]
    action: Annotated[str, Choice(ACTIONS)]


class HouseholdScannedMember(TypedDict):
    person_id: str
    display_name: str
    code: str  # their card's QR payload (SHC1...)
    short_code: str
    presence: PresenceNow
    outcome: Annotated[str, Choice(("done", "already", "not_here"))]


class HouseholdScanned(TypedDict):
    """A household code (or a card with ``household``) scanned: ``registered``, whether the
    household (or some of its members: a newer code) was registered here by this scan;
    ``outcome`` "done" when anyone's presence changed, else "already"; each member's own
    (``not_here``: going out or checking out, for someone not checked in here)."""

    household_id: str
    registered: bool
    display_name: str  # a short label: the first member's family name and the count
    action: Annotated[str, Choice(ACTIONS)]
    outcome: Annotated[str, Choice(("done", "already"))]
    members: list[HouseholdScannedMember]


class ScanAnswer(RootModel[Scanned | HouseholdScanned]):
    """What POST /api/v1/scans answers: the person (a card or short code), or the household
    (a household code, or a card with ``household``)."""


class Counts(TypedDict):
    """A headcount's numbers, at a shelter or summed over many: ``by_need`` and ``by_age``
    (0-5, 6-17, 18-64, 65+, unknown) count the people in the building."""

    present: int
    out: int
    registered: int
    at_home: int
    in_car: int
    capacity: int
    by_need: dict[str, int]
    by_age: dict[str, int]


class Headcount(Counts):
    """This shelter's numbers."""

    shelter_id: NotRequired[str]
    occupancy: NotRequired[float | None]
    crowding: Annotated[str, Choice((*CROWDING, "unknown"))]
    provisional: NotRequired[int]
    arrivals_last_hour: NotRequired[int]
    departures_last_hour: NotRequired[int]
    as_of: NotRequired[str]


class BackupStatus(TypedDict):
    """The node's automatic backups (``shelter node --backup-dir``): ``missing``, the
    directory is not there now; ``stale``, the last good one (``last_ok_at``) is over an
    hour old, or none was made for an hour; ``error``, why the last try failed."""

    dir: str
    last_ok_at: str | None
    last_file: str | None
    missing: bool
    stale: bool
    error: str | None  # missing, unwritable, full, damaged, failed
    same_disk: bool  # on the disk the data is on: it would not survive that disk


class StandbyStatus(TypedDict):
    """The node's standby at the shelter (`shelter standby`): ``behind``, rows of the
    node's log it has not stored; ``alone`` (with --sync-standby), writes are answered
    without it, until it is back and has caught up; ``waits``: --sync-standby."""

    connected: bool
    behind: int
    last_ack_at: str | None
    alone: bool
    waits: bool


class SyncStatus(TypedDict):
    """``enabled`` false when this node does not sync; else the state of its link.
    ``backup``: the automatic backups, null where the node makes none."""

    enabled: NotRequired[bool]
    state: NotRequired[str]
    hq_url: NotRequired[str | None]  # the HQ address it talks to now (of its --hq list)
    connected: NotRequired[bool]
    revoked: NotRequired[bool]
    refused: NotRequired[int]  # updates from HQ this node would not take
    last_ok_at: NotRequired[str | None]
    waiting: NotRequired[int]
    problems: NotRequired[int]
    backup: NotRequired[BackupStatus | None]
    standby: NotRequired[StandbyStatus | None]
