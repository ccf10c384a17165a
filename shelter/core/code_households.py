"""Who may register a household made from a household code (shelter/domain/household_code.py),
for ``authority``: the rule behind ``household_registered`` events with ``household_code``.

A household code is made by anyone and signed by no one, so what a registration made from
one may name is fixed by its household id: each member's person id is the one the
household id derives for the member's number (``seq``, 0-255, each once); the household may
be registered already only as one made from a code, and its people known already only as
its own members (the family scanned at a second shelter, or a newer code with a newborn).
So a code can take over no one's household or person. docs/security.md says it in prose.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shelter.core.sql import in_chunks

# Registered by the domain (shelter/domain/households.py): the person id of member ``seq``
# of a household made from a household code (household_code.person_id). None registered:
# every code registration is refused.
CODE_PERSON_ID: list[Callable[[str, int], str]] = []
ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")  # a ULID within its 128 bits
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
Reason = tuple[str, dict[str, str]]  # authority.Refusal's template and params


def N_(message: str) -> str:
    """Marks a message for the catalogs; it is translated where an operator reads it."""
    return message


NOT_DERIVED = N_("a household-code registration whose person ids are not its household's")
UNUSABLE = N_("%(field)s: a value that cannot be used")


def refusal(db: Any, payload: dict[str, Any], household: Any, ids: list[str],
            households: dict[str, tuple[str, bool]],
            person_households: dict[str, str]) -> Reason | None:
    """Why this registration made from a household code may not be said, or None.
    ``ids``: its members' person ids; ``households`` and ``person_households``: what
    earlier events of the same batch registered (``authority.Batch``)."""
    made, members = payload.get("household_code"), payload.get("members")
    if not (isinstance(made, dict) and isinstance(made.get("made"), str)
            and ISO.match(made["made"])):
        return UNUSABLE, {"field": "household_code"}
    if not isinstance(household, str) or not ULID.match(household):
        return UNUSABLE, {"field": "household_id"}
    if not CODE_PERSON_ID or not isinstance(members, list) or not members \
            or len(ids) != len(members):
        return NOT_DERIVED, {}
    seqs = [m.get("seq") for m in members]
    if any(type(s) is not int or not 0 <= s <= 255 for s in seqs) \
            or len(set(seqs)) != len(seqs):
        return NOT_DERIVED, {}
    try:
        derived = [CODE_PERSON_ID[0](household, seq) for seq in seqs]
    except ValueError:
        return UNUSABLE, {"field": "household_id"}
    if ids != derived:
        return NOT_DERIVED, {}
    taken = known(db, household, households)
    if taken is not None and not taken[1]:
        return N_("a household-code registration of a household registered otherwise "
                  "(shelter %(about)s)"), {"about": taken[0]}
    for chunk, marks in in_chunks(ids):
        for _, of in db.execute(f"SELECT person_id, household_id FROM persons "
                                f"WHERE person_id IN ({marks})", chunk):
            if of != household:  # derived: only a broken hash could land here
                return NOT_DERIVED, {}
    if any(person_households.get(person, household) != household for person in ids):
        return NOT_DERIVED, {}
    return None


def known(db: Any, household_id: str,
          households: dict[str, tuple[str, bool]]) -> tuple[str, bool] | None:
    """The shelter that registered this household, and whether it was made from a code;
    None when neither this store nor the batch (``households``) knows it."""
    row = db.execute("SELECT shelter_id, code_made FROM households WHERE household_id = ?",
                     [household_id]).fetchone()
    if row is not None:
        return str(row[0]), row[1] is not None
    return households.get(household_id)
