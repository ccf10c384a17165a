"""What an audit entry is about, by name: the household, person, supply request or shelter
behind the id the log records (the log keeps ids: names can be corrected, ids cannot).

Only for the audit page, which only managers (a node) and admins (HQ) read: they may see
these households and people under their role anyway. An id that names nothing held here (a
forged card, another shelter's person) stays an id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlite_utils import Database

# Which actions record which kind of record as their subject.
KINDS = {
    "household": ("view_household", "view_cards", "register_household", "view_household_code",
                  "register_household_code", "scan_household", "correct_household"),
    "person": ("scan", "scan_refused", "correct_person", "add_person", "reprint_card"),
    "request": ("request_acknowledged", "request_dispatched"),
    "shelter": ("shelter_configured", "hq_message"),
}
_KIND_OF = {action: kind for kind, actions in KINDS.items() for action in actions}


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _households(db: Database, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for household_id, family, given, size in db.execute(
                "SELECT p.household_id, p.family_name, p.given_name, count(*) OVER "
                "(PARTITION BY p.household_id) FROM persons p WHERE p.household_id IN "
                f"({marks}) ORDER BY p.household_id, p.position DESC", chunk):
            # the last row of each household (position DESC) is its first member
            found[household_id] = {"kind": "household", "name": f"{family} {given}".strip(),
                                   "people": size}
    return found


def _persons(db: Database, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for person_id, family, given in db.execute(
                f"SELECT person_id, family_name, given_name FROM persons WHERE person_id IN "
                f"({marks})", chunk):
            found[person_id] = {"kind": "person", "name": f"{family} {given}".strip()}
    return found


def _requests(db: Database, ids: list[str],
              shelters: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for request_id, shelter_id, lines, at in db.execute(
                "SELECT request_id, shelter_id, lines, requested_at FROM supply_requests "
                f"WHERE request_id IN ({marks})", chunk):
            found[request_id] = {"kind": "request", "shelter": shelters.get(shelter_id,
                                                                            shelter_id),
                                 "lines": json.loads(lines or "[]"), "requested_at": at}
    return found


def named(db: Database, rows: list[dict[str, Any]],
          shelters: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """For each subject of ``rows`` (audit entries) that names a record held here: what it
    is (``kind``) and what to call it (a household's first member and size, a person's
    name, a request's shelter and lines, a shelter's name; ``shelters``: names by id)."""
    wanted: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for row in rows:
        kind = _KIND_OF.get(row["action"])
        if kind and row["subject"] not in ("", "-"):
            wanted[kind].add(row["subject"])
        if row["action"] == "add_person" and row["detail"]:  # the household they joined
            wanted["household"].add(row["detail"])
    found: dict[str, dict[str, Any]] = {}
    found.update(_households(db, sorted(wanted["household"])))
    found.update(_persons(db, sorted(wanted["person"])))
    found.update(_requests(db, sorted(wanted["request"]), shelters or {}))
    for shelter_id in sorted(wanted["shelter"]):
        if shelters and shelter_id in shelters:
            found[shelter_id] = {"kind": "shelter", "name": shelters[shelter_id]}
    return found
