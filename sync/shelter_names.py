"""Names of other shelters, learnt from HQ's registry: a node that admitted someone on a
card from a shelter it does not know asks HQ for that shelter's name with a `pull`, and
keeps HQ's answer in its own ``hq_shelters`` (what ``roster.shelter_name`` reads), so the
desk names the issuing shelter instead of showing its id.

Least data: a node asks only for ids it has seen on its presence rows (cards from
elsewhere) and does not know, at most ``protocol.MAX_SHELTERS_ASKED`` at once (fewer on a
thin link), each once in ``ASK_AGAIN_SECONDS``; usually it asks nothing and the pull is as
before. HQ answers only from its registry (public open data: a name, nothing about
anyone). Neither side trusts the other's bytes: HQ refuses a malformed ask with a reason
in its answer (the pull itself is answered as usual), and the node keeps only names of
ids it asked for, never its own shelter's, and only a short line of text.
docs/sync-protocol.md, "Names of other shelters".
"""

from __future__ import annotations

import json
import time
import unicodedata
from typing import Any

from shelter.core import meta
from shelter.core.events import EventStore, utc_now_iso
from sync import protocol

ASKED_KEY = "shelter_names_asked"  # meta: {shelter id: when last asked (epoch seconds)}
ASK_AGAIN_SECONDS = 6 * 3600  # an id HQ did not know is asked again after this
MAX_REMEMBERED = 1000  # asked ids remembered (the newest); the rest may be asked sooner
MAX_NAME = 120  # characters of a name a node keeps
SOURCE = "hq-sync"  # hq_shelters.source of the rows learnt this way


def _recently_asked(db: Any, now: float) -> dict[str, int]:
    try:
        asked = json.loads(meta.get(db, ASKED_KEY) or "{}")
    except ValueError:
        return {}
    if not isinstance(asked, dict):
        return {}
    return {k: v for k, v in asked.items()
            if isinstance(v, int) and now - v < ASK_AGAIN_SECONDS}


def ask(db: Any, most: int = protocol.MAX_SHELTERS_ASKED) -> dict[str, Any]:
    """What a node's `pull` adds to ask for names: ``{"shelters_unknown": [ids]}`` (the
    most recently seen first, at most ``most``), or ``{}`` (nothing to ask: no bytes)."""
    own = meta.get(db, "shelter_id") or ""
    skip = list(_recently_asked(db, time.time()))
    rows = db.execute(
        "SELECT registered_shelter FROM presence WHERE provisional = 1 "
        "AND registered_shelter NOT IN (?, '') "
        "AND registered_shelter NOT IN (SELECT shelter_id FROM hq_shelters) "
        "AND registered_shelter NOT IN (SELECT value FROM json_each(?)) "
        "GROUP BY registered_shelter ORDER BY max(since_hlc) DESC LIMIT ?",
        [own, json.dumps(skip), max(0, min(most, protocol.MAX_SHELTERS_ASKED))]).fetchall()
    ids = [r[0] for r in rows if protocol.valid_shelter_id(r[0])]
    return {"shelters_unknown": ids} if ids else {}


def answer(db: Any, pull: dict[str, Any]) -> dict[str, Any]:
    """What HQ's `updates` adds for a pull's ask: ``{"shelter_names": {id: name}}`` for the
    ids its registry lists, ``{"shelter_names_refused": reason}`` for a malformed ask, or
    ``{}`` when the pull asks nothing (a node from before this, or one that knows all)."""
    if "shelters_unknown" not in pull:
        return {}
    asked = pull["shelters_unknown"]
    problem = protocol.shelters_asked_problem(asked)
    if problem is not None:
        return {"shelter_names_refused": problem}
    rows = db.execute("SELECT shelter_id, name FROM hq_shelters WHERE shelter_id IN "
                      "(SELECT value FROM json_each(?))", [json.dumps(asked)]).fetchall()
    return {"shelter_names": {r[0]: r[1] for r in rows}}


def usable_name(value: Any) -> str | None:
    """A name as a node keeps it (stripped), or None: text of 1 to MAX_NAME characters
    with no control or formatting characters (no line breaks, no bidi overrides)."""
    if type(value) is not str:
        return None
    name = value.strip()
    if not 0 < len(name) <= MAX_NAME \
            or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        return None
    return name


def learn(store: EventStore, asking: dict[str, Any], updates: dict[str, Any]) -> int:
    """Keep HQ's names for the ids this pull asked (none of another id, none for this
    node's own shelter, none that is not a usable name), and remember the ids as asked
    whatever HQ said (an HQ from before this says nothing). Returns how many were kept."""
    asked = asking.get("shelters_unknown") or []
    if not asked:
        return 0
    names = updates.get("shelter_names")
    names = names if isinstance(names, dict) else {}
    kept = 0
    now = time.time()
    with store.write() as db:
        own = meta.get(db, "shelter_id")
        for shelter_id in asked:
            name = usable_name(names.get(shelter_id))
            if name is None or shelter_id == own:
                continue
            kept += db.execute(
                "INSERT INTO hq_shelters (shelter_id, name, municipality, source, imported_at) "
                "VALUES (?, ?, '', ?, ?) ON CONFLICT (shelter_id) DO NOTHING",
                [shelter_id, name, SOURCE, utc_now_iso()]).rowcount
        remembered = {**_recently_asked(db, now), **dict.fromkeys(asked, int(now))}
        newest = sorted(remembered.items(), key=lambda kv: kv[1])[-MAX_REMEMBERED:]
        meta.put(db, ASKED_KEY, json.dumps(dict(newest), separators=(",", ":")))
    return kept
