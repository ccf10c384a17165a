"""Who is in the shelter, read: the headcount (by need, by age band, crowding), a person as
the desk sees them, finding people by name, furigana or birth date, and a household's presence.

Reads only; the changes (scans) and the projection that keeps ``presence`` are in
``shelter.domain.presence``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.clock import today_jst
from shelter.core.events import utc_now_iso
from shelter.domain import cards
from shelter.domain.schemas.households import NEEDS
from shelter.domain.text import to_katakana

# What the desk must see at a glance (medication is recorded as chronic illness).
DESK_FLAGS = ("allergy", "chronic_illness", "wheelchair", "infant")
AGE_BANDS = ("0-5", "6-17", "18-64", "65+")
CROWDING = ("available", "somewhat_crowded", "crowded", "full")


def age_on(birth_date: str, today: date) -> int | None:
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def age_band(age: int | None) -> str:
    if age is None:
        return "unknown"
    return "0-5" if age <= 5 else "6-17" if age <= 17 else "18-64" if age <= 64 else "65+"


def describe(db: Database, person_id: str, shelter_id: str) -> dict[str, Any]:
    """A person as the desk sees them: name, flags, presence, and their household's."""
    person = next(iter(db.query("SELECT * FROM persons WHERE person_id = ?", [person_id])), None)
    presence = next(iter(db.query("SELECT * FROM presence WHERE person_id = ?", [person_id])),
                    None)
    if person is not None:
        needs = json.loads(person["needs"])
        info: dict[str, Any] = {
            "person_id": person_id,
            "display_name": cards.display_name(person["family_name"], person["given_name"]),
            "family_name_kana": person["family_name_kana"],
            "given_name_kana": person["given_name_kana"],
            "household_id": person["household_id"], "needs": needs,
            "flags": [f for f in DESK_FLAGS if f in needs],
            # What the flags stand for (卵, the medicine): the desk acts on it.
            "allergies": person["allergies"], "medication": person["medication"],
            "age": age_on(person["birth_date"], today_jst()),
            "registered_shelter": person["issuing_shelter"], "provisional": False,
            "card_verified": True,
        }
        members = list(db.query(
            """SELECT p.person_id, p.family_name, p.given_name, pr.status, pr.shelter_id
               FROM persons p LEFT JOIN presence pr ON pr.person_id = p.person_id
               WHERE p.household_id = ? ORDER BY p.position""", [person["household_id"]]))
        info["household"] = [{
            "person_id": m["person_id"],
            "display_name": cards.display_name(m["family_name"], m["given_name"]),
            "status": status_here(m["status"], m["shelter_id"], shelter_id),
        } for m in members]
    else:
        info = {"person_id": person_id,
                "display_name": presence["display_name"] if presence else "",
                "household_id": None, "needs": [], "flags": [], "age": None,
                "allergies": "", "medication": "",
                "registered_shelter": presence["registered_shelter"] if presence else "",
                "provisional": True,
                "card_verified": bool(presence["card_verified"]) if presence else False,
                "household": []}
    info["registered_shelter_name"] = shelter_name(db, info["registered_shelter"])
    info["presence"] = {
        "status": status_here(presence["status"], presence["shelter_id"], shelter_id)
        if presence else "not_arrived",
        "last_action": presence["last_action"] if presence else None,
        "since": presence["since"] if presence else None,
        "shelter_id": presence["shelter_id"] if presence else None,
        "destination": presence["destination"] if presence else "",
        "destination_detail": presence["destination_detail"] if presence else "",
    }
    return info


def shelter_name(db: Database, shelter_id: str | None) -> str:
    """The name of a shelter, as far as this store knows it ("" when it does not): a node
    knows its own (its settings, first) and those of the registry it holds (``hq_shelters``:
    at HQ, every designated shelter; at a node, the names HQ gave for the shelters of cards
    seen here, sync/shelter_names.py). Never what a card says: a card carries only the id,
    and an unverified one may lie about it."""
    if not shelter_id:
        return ""
    if meta.get(db, "shelter_id") == shelter_id:
        name = db.execute("SELECT value FROM settings WHERE key = 'shelter_name'").fetchone()
        if name is not None and name[0]:
            return str(name[0])
    row = db.execute("SELECT name FROM hq_shelters WHERE shelter_id = ?",
                     [shelter_id]).fetchone()
    return str(row[0]) if row is not None else ""


def status_here(status: str | None, at_shelter: str | None, shelter_id: str) -> str:
    if status is None:
        return "not_arrived"
    if at_shelter != shelter_id and status != "left":
        return "elsewhere"
    return status


def crowding_level(present: int, capacity: int, settings: dict[str, str]) -> str:
    """空き / やや混雑 / 混雑 / 満員 by occupancy; thresholds (percent) are settings."""
    if capacity <= 0:
        return "unknown"
    percent = 100.0 * present / capacity
    if percent >= float(settings["crowding_full"]):
        return "full"
    if percent >= float(settings["crowding_crowded"]):
        return "crowded"
    if percent >= float(settings["crowding_busy"]):
        return "somewhat_crowded"
    return "available"


def headcount(db: Database, shelter_id: str, settings: dict[str, str],
              today: date | None = None) -> dict[str, Any]:
    """The shelter's numbers. ``by_need`` and ``by_age`` count the people in the building."""
    today = today or today_jst()
    counts = dict(db.execute(
        "SELECT status, count(*) FROM presence WHERE shelter_id = ? GROUP BY status",
        [shelter_id]).fetchall())
    present, out = counts.get("present", 0), counts.get("out", 0)
    registered = db.execute("SELECT count(*) FROM persons WHERE issuing_shelter = ?",
                            [shelter_id]).fetchone()[0]
    # Registered here as staying at home or in a car, and not (yet) in the building.
    away = dict(db.execute(
        """SELECT h.whereabouts, count(*) FROM persons p
           JOIN households h ON h.household_id = p.household_id
           LEFT JOIN presence pr ON pr.person_id = p.person_id
           WHERE p.issuing_shelter = ? AND h.whereabouts IN ('home', 'car')
             AND pr.person_id IS NULL
           GROUP BY h.whereabouts""", [shelter_id]).fetchall())
    by_need = dict.fromkeys(NEEDS, 0)
    for need, n in db.execute(
            """SELECT j.value, count(*) FROM presence pr
               JOIN persons p ON p.person_id = pr.person_id, json_each(p.needs) j
               WHERE pr.shelter_id = ? AND pr.status = 'present' GROUP BY j.value""",
            [shelter_id]):
        by_need[need] = n
    by_age = dict.fromkeys(AGE_BANDS + ("unknown",), 0)
    for birth, n in db.execute(
            """SELECT p.birth_date, count(*) FROM presence pr
               LEFT JOIN persons p ON p.person_id = pr.person_id
               WHERE pr.shelter_id = ? AND pr.status = 'present' GROUP BY p.birth_date""",
            [shelter_id]):
        by_age[age_band(age_on(birth, today) if birth else None)] += n
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    moves = dict(db.execute(
        "SELECT action, count(*) FROM presence_log WHERE shelter_id = ? AND at >= ? "
        "GROUP BY action", [shelter_id, hour_ago]).fetchall())
    provisional = db.execute(
        "SELECT count(*) FROM presence WHERE shelter_id = ? AND status = 'present' "
        "AND provisional = 1", [shelter_id]).fetchone()[0]
    capacity = int(settings.get("capacity") or 0)
    return {
        "shelter_id": shelter_id, "present": present, "out": out, "registered": registered,
        "at_home": away.get("home", 0), "in_car": away.get("car", 0),
        "capacity": capacity,
        "occupancy": round(present / capacity, 3) if capacity > 0 else None,
        "crowding": crowding_level(present, capacity, settings),
        "by_need": by_need, "by_age": by_age, "provisional": provisional,
        "arrivals_last_hour": moves.get("check_in", 0),
        "departures_last_hour": moves.get("check_out", 0),
        "as_of": utc_now_iso(),
    }


# Marks a name may carry that the desk's keyboard does not type: Nguyễn is found by
# "Nguyen". The kana voicing marks stay (が is not か), and letters that are not a base
# letter plus a mark (đ, ø, ł) are read as the one a keyboard types.
_VOICING = ("\u3099", "\u309a")
_PLAIN_LETTERS = str.maketrans({"đ": "d", "Đ": "d", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l",
                                "ı": "i", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe"})


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """A name as search compares it: no accents or other marks (NFKD, marks dropped), any
    width, hiragana as katakana, no case, no spaces. Cached: search folds every name of the
    shelter on each keystroke, and the names barely change."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if ch in _VOICING or not unicodedata.combining(ch))
    return "".join(to_katakana(bare).translate(_PLAIN_LETTERS).casefold().split())


def find(db: Database, query: str, limit: int = 30) -> list[dict[str, Any]]:
    """People by name (accents, width and kana kind ignored: "Nguyen" finds Nguyễn, "ﾔﾏﾀﾞ"
    finds やまだ), furigana (any kana, any width) or birth date (1948-04-02, 19480402,
    1948/4/2, 1948年4月2日)."""
    from shelter.domain.text import kana_key

    query = unicodedata.normalize("NFKC", query).strip()
    as_date = re.fullmatch(r"(\d{4})[-/.年 ]?(\d{1,2})[-/.月 ]?(\d{1,2})日?", query)
    if as_date and (len(query) == 8 or not query.isdigit()):
        year, month, day = as_date.groups()
        where, params = "p.birth_date = ?", [f"{year}-{int(month):02d}-{int(day):02d}"]
    else:
        folded, kk = fold(query), kana_key(query, "")
        if not folded:
            return []
        like = lambda s: s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"  # noqa: E731
        # A family name, or a reading, from its start; or the given name. Every row is read
        # (LIKE from the start of a folded name has no index), at a few microseconds each.
        db.conn.create_function("shelter_fold", 1, fold, deterministic=True)
        where = ("(shelter_fold(p.name_key) LIKE ? ESCAPE '\\' "
                 "OR p.kana_key LIKE ? ESCAPE '\\' "
                 "OR shelter_fold(p.given_name) LIKE ? ESCAPE '\\')")
        params = [like(folded), like(kk), like(folded)]
    rows = db.query(
        f"""SELECT p.person_id, p.family_name, p.given_name, p.family_name_kana,
                   p.given_name_kana, p.birth_date, p.household_id, p.needs,
                   pr.status, pr.shelter_id
            FROM persons p LEFT JOIN presence pr ON pr.person_id = p.person_id
            WHERE {where} ORDER BY p.kana_key, p.name_key LIMIT ?""", [*params, limit])
    return [{**r, "needs": json.loads(r["needs"]),
             "display_name": cards.display_name(r["family_name"], r["given_name"])}
            for r in rows]


def household_presence(db: Database, household: dict[str, Any],
                       shelter_id: str) -> dict[str, Any]:
    """Each member's status here: present, out, left, not_arrived or elsewhere."""
    for member in household["members"]:
        member["presence"] = describe(db, member["person_id"], shelter_id)["presence"]
    return household


def recent_changes(db: Database, shelter_id: str, limit: int = 8) -> list[dict[str, Any]]:
    """The last presence changes at this shelter, newest first (the desk's side list):
    ``person_id``, ``action``, ``at`` and ``display_name`` (the card's name for someone
    registered elsewhere)."""
    rows = db.query(
        """SELECT l.person_id, l.action, l.at, p.family_name, p.given_name,
                  pr.display_name AS card_name
           FROM presence_log l LEFT JOIN persons p ON p.person_id = l.person_id
           LEFT JOIN presence pr ON pr.person_id = l.person_id
           WHERE l.shelter_id = ? ORDER BY l.hlc DESC LIMIT ?""", [shelter_id, limit])
    return [{"person_id": r["person_id"], "action": r["action"], "at": r["at"],
             "display_name": f"{r['family_name']} {r['given_name']}".strip()
             if r["family_name"] is not None else r["card_name"]} for r in rows]
