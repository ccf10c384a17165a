"""A shelter's history, for a node that replaces a lost one: what HQ sends, how the node
applies it, and the card keys that make the old cards verify there.

**HQ's side.** A node enrolled with a replacement code (``shelter hq enroll --replace``)
asks ``history`` pages over its /sync session; any other credential hears ``forbidden``
(``enrollment.may_rebuild``). HQ answers from its own events table only (never what it
quarantined), in two parts, each in HQ's storage order:

1. the events made by the shelter's other node ids (every credential HQ issued for it,
   revoked ones too: the old laptop's records are the shelter's), and HQ's own steps for
   it (its outbox rows: settings, messages, steps on its supply requests);
2. the presence changes elsewhere of people registered at it (also its outbox rows). They
   come last, once every registration is in; the latest clock wins a person's presence
   whatever order its changes arrive in, so nothing depends on their place.

A page holds at most ``limit`` events (the node's ask, up to 500) and about PAGE_BYTES of
JSON, so a thin link carries it; ``after`` is the cursor to ask from next.

**The node's side** (``apply_page``), with a rule of its own (``apply_pulled`` refuses
node-made events from HQ): node types only from the node ids HQ lists as the shelter's
(``nodes``: kept as ``inherited_node_ids``, shelter/core/lineage.py: never own origins,
never pushed again), judged as a node's events at HQ are (about this shelter, new ids);
presence changes elsewhere only of people registered here; HQ's steps as pulled ones.
Each is stored with its own id, node, sequence and clock, and projected; what is here
already is skipped; what fails or is refused is quarantined with its reason. The cursor,
the count and the newest record's time are saved in the same transaction.

**Card keys.** HQ holds each node's card key: given with its ``enroll`` (bound by the
code), or, for an id HQ did not get one for that way (a restored node's epoch, a node
enrolled before this existed), published once by the sync client (``publish_card_keys``:
an event, ``card_key_published``, pushed as any other). Each page carries the keys of the
shelter's nodes, so the replacing node verifies their cards.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from shelter.core import backup, lineage, meta
from shelter.core.authority import (
    N_,
    RULES,
    Batch,
    Refusal,
    Refused,
    Sender,
    issuers,
    refusal,
    valid_card_key,
)
from shelter.core.clock import DEFAULT_MAX_DRIFT_MS, ClockDriftError, Timestamp
from shelter.core.events import (
    EVENT_COLUMNS,
    EVENT_MARKS,
    SCHEMA_VERSIONS,
    Event,
    EventStore,
    utc_now_iso,
)
from shelter.core.sql import insert_row
from sync import enrollment, protocol
from sync.apply import quarantine
from sync.pull import HELD

log = logging.getLogger("shelter.sync")
HISTORY_LIMIT = protocol.MAX_BATCH_EVENTS  # events a page may hold
PAGE_BYTES = 128 * 1024  # JSON per page, before compression (one larger event goes alone)
PUBLISHED_KEY = "card_keys_published"
# The node's progress: "pending" from enrollment with a replacement code until "done".
STATE_KEY, PART_KEY, AFTER_KEY = "rebuild_state", "rebuild_part", "rebuild_after"
APPLIED_KEY, NEWEST_KEY = "rebuild_applied", "rebuild_newest"


# --- HQ's side -----------------------------------------------------------------------------

def shelter_nodes(db: Any, shelter_id: str, asking: list[str]) -> list[str]:
    """The node ids HQ knows as ``shelter_id``'s, revoked or not, but for ``asking`` (the
    asking node's own ids) and HQ's own."""
    skip = set(asking) | set(backup.own_origins(db.conn))
    rows = db.execute("SELECT node_id FROM hq_credentials WHERE shelter_id = ? "
                      "UNION SELECT node_id FROM sync_origins WHERE shelter_id = ? "
                      "ORDER BY node_id", [shelter_id, shelter_id]).fetchall()
    return [r[0] for r in rows if r[0] not in skip]


def has_history(db: Any, shelter_id: str) -> bool:
    """Whether HQ holds any event made by one of the shelter's nodes."""
    return any(db.execute("SELECT 1 FROM events WHERE node_id = ? LIMIT 1", [n]).fetchone()
               for n in shelter_nodes(db, shelter_id, []))


def page(db: Any, shelter_id: str, asking: list[str], part: int, after: int,
         limit: int) -> tuple[list[str], int, bool, list[str]]:
    """(events as wire JSON, cursor to ask from next, whether the part is done, the
    shelter's node ids) for one ``history`` message."""
    nodes = shelter_nodes(db, shelter_id, asking)
    sources: list[list[dict[str, Any]]] = []
    if part == 1:
        for node in nodes:  # per node: its sequence order is HQ's storage order
            sources.append(list(db.query(
                "SELECT rowid AS position, * FROM events WHERE node_id = ? AND rowid > ? "
                "ORDER BY seq LIMIT ?", [node, after, limit])))
        sources.append(list(db.query(
            "SELECT e.rowid AS position, e.* FROM sync_outbox o JOIN events e "
            "USING (event_id) WHERE o.shelter_id = ? AND e.rowid > ? "
            "AND e.type != 'presence_changed' ORDER BY e.rowid LIMIT ?",
            [shelter_id, after, limit])))
    else:
        sources.append(list(db.query(
            "SELECT o.position, e.* FROM sync_outbox o JOIN events e USING (event_id) "
            "WHERE o.shelter_id = ? AND o.position > ? AND e.type = 'presence_changed' "
            "ORDER BY o.position LIMIT ?", [shelter_id, after, limit])))
    rows = sorted((r for found in sources for r in found), key=lambda r: r["position"])
    texts: list[str] = []
    size, cursor = 0, after
    for row in rows[:limit]:
        text = protocol.wire_text(row)
        if texts and size + len(text) > PAGE_BYTES:
            break
        texts.append(text)
        size += len(text)
        cursor = int(row["position"])
    done = len(texts) == len(rows) and all(len(found) < limit for found in sources)
    return texts, cursor, done, nodes


def answer(db: Any, message: dict[str, Any], shelter_id: str, node_id: str,
           origins: list[str]) -> str | bytes:
    """HQ's answer to a ``history`` message of a session speaking for ``origins``."""
    if not enrollment.may_rebuild(db, origins):
        log.warning("refused history to node %s of shelter %s: not a replacement credential",
                    node_id, shelter_id)
        return protocol.encode({"type": "error", "code": "forbidden", "message": (
            "only a node enrolled with a replacement code (shelter hq enroll --replace), "
            "within a week of enrolling, may download its shelter's history")})
    texts, cursor, done, nodes = page(db, shelter_id, origins, message["part"],
                                      message["after"], message["limit"])
    # The card keys of those nodes (given at enrollment, or published since): old cards
    # verify at the replacing node.
    card_keys = dict(db.execute(f"SELECT node_id, public_key FROM card_keys WHERE node_id "
                                f"IN ({','.join('?' * len(nodes))})", nodes).fetchall()
                     ) if nodes else {}
    body = (f'{{"type":"history_page","part":{int(message["part"])},"after":{cursor},'
            f'"done":{"true" if done else "false"},"nodes":{json.dumps(nodes)},'
            f'"card_keys":{json.dumps(card_keys)},"events":[{",".join(texts)}]}}')
    return zlib.compress(body.encode(), 6)


# --- the node's side -----------------------------------------------------------------------

def progress(db: Any) -> tuple[int, int]:
    """(part, cursor) the node's rebuild goes on from."""
    return int(meta.get(db, PART_KEY) or 1), int(meta.get(db, AFTER_KEY) or 0)


def pending(db: Any) -> bool:
    return meta.get(db, STATE_KEY) == "pending"


def apply_page(store: EventStore, page_message: dict[str, Any],
               hq_ids: frozenset[str]) -> int:
    """Apply one ``history_page`` and save the cursor with it; returns how many events
    were new here."""
    applied = 0
    with store.write() as db:
        own = store.speaking_for().shelter_id
        mine = set(backup.own_origins(db.conn))
        named = [n for n in page_message["nodes"] if protocol.valid_node_id(n) and n not in mine]
        inherited = set(lineage.inherit(db, named))
        keys = page_message.get("card_keys")
        for node, key in (keys.items() if isinstance(keys, dict) else ()):
            if node in inherited and valid_card_key(key):  # the old cards verify here
                db.execute("INSERT OR IGNORE INTO card_keys (node_id, public_key, shelter_id) "
                           "VALUES (?, ?, ?)", [node, key, own])
        from_node = Sender("node", "node", own)
        from_hq = Sender("hq", "node", own, hq_ids)
        said = Batch()
        now_ms = store.clock.now_ms()
        newest = meta.get(db, NEWEST_KEY) or ""
        latest: Timestamp | None = None
        for raw in page_message["events"]:
            problem = check(raw)
            if problem is None and raw["node_id"] in mine:
                _quarantine(db, raw, "", _OWN_NAME)
                continue
            if problem is not None:
                _quarantine(db, raw, problem)
                continue
            if db.execute("SELECT 1 FROM events WHERE event_id = ?",
                          [raw["event_id"]]).fetchone():
                continue
            kind, node = raw["type"], raw["node_id"]
            ours = node in inherited
            if RULES[kind].origin == "node" and not ours and kind != "presence_changed":
                _quarantine(db, raw, "", _NOT_OURS)
                continue
            sender = from_node if ours else from_hq
            reason = refusal(db, sender, kind, raw["payload"], node, said)
            if reason is not None:
                _quarantine(db, raw, "", reason)
                continue
            # As HQ does: a move stamped far ahead would outrank every scan from then on.
            # Kept and flagged, not applied, unless the shelter's own node made it about
            # one of its own people.
            held = kind == "presence_changed" \
                and protocol.hlc_wall_ms(raw["hlc"]) - now_ms > DEFAULT_MAX_DRIFT_MS \
                and not (ours and _registered_here(db, raw["payload"], own, said))
            event = Event(raw["event_id"], node, raw["seq"], raw["hlc"], kind,
                          raw["schema_version"], raw["payload"], raw["recorded_at"])
            if not _store(store, event, raw, held):
                continue
            said.note(kind, raw["payload"])
            applied += 1
            if ours:
                newest = _newer(newest, event.recorded_at, now_ms)
            stamp = Timestamp.decode(event.hlc)
            if not held and (latest is None or stamp > latest):
                latest = stamp
        _follow_clock(store, latest)
        done = page_message.get("done") is True
        part = int(page_message["part"])
        values = {PART_KEY: str(part + 1 if done and part == 1 else part),
                  AFTER_KEY: "0" if done and part == 1 else str(int(page_message["after"])),
                  APPLIED_KEY: str(int(meta.get(db, APPLIED_KEY) or 0) + applied),
                  NEWEST_KEY: newest}
        if done and part == 2:
            values[STATE_KEY] = "done"
        for key, value in values.items():
            meta.put(db, key, value)
    return applied


def check(raw: Any) -> str | None:
    """Why an event from HQ's history cannot be applied here, or None."""
    problem = protocol.check_event(raw)
    if problem is not None:
        return problem
    if raw["type"] not in SCHEMA_VERSIONS or raw["type"] not in RULES:
        return f"unknown event type {raw['type']!r}"
    if raw["schema_version"] > SCHEMA_VERSIONS[raw["type"]]:
        return "newer schema version than this node knows"
    return None


def _store(store: EventStore, event: Event, raw: dict[str, Any], held: bool) -> bool:
    """Write and project one event under a savepoint; False (quarantined) if it fails."""
    db = store.db
    db.conn.execute("SAVEPOINT history_event")
    try:
        db.conn.execute(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({EVENT_MARKS})",
                        event.values())
        if held:
            insert_row(db, "sync_flags", {"event_id": event.event_id, "node_id": event.node_id,
                                          "at": utc_now_iso(), "reason": HELD}, or_ignore=True)
        else:
            store.project([event])
    except Exception as error:  # noqa: BLE001 - quarantined, never blocks the rest
        db.conn.execute("ROLLBACK TO history_event")
        db.conn.execute("RELEASE history_event")
        _quarantine(db, raw, f"could not be applied ({type(error).__name__})")
        return False
    db.conn.execute("RELEASE history_event")
    return True


def _newer(newest: str, recorded_at: str, now_ms: int) -> str:
    """The later of two record times, in UTC; a time that is not one (the old node's
    thief may push any text of 40 characters), or one past this clock, counts for
    nothing: the report of the rebuild reads it as a time, and says how long ago."""
    try:
        made = datetime.fromisoformat(recorded_at)
        if made.utcoffset() is None or made.year < 2000 \
                or made.timestamp() * 1000 > now_ms + DEFAULT_MAX_DRIFT_MS:
            return newest
        text = made.astimezone(UTC).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError):
        return newest
    return max(newest, text)


def _registered_here(db: Any, payload: dict[str, Any], own: str, said: Batch) -> bool:
    person = payload.get("person_id")
    return isinstance(person, str) and (person in said.people
                                        or issuers(db, [person]).get(person) == own)


def _follow_clock(store: EventStore, latest: Timestamp | None) -> None:
    """Move this node's clock past the newest stamp it inherited (within reason), so its
    own scans outrank the old node's latest ones, whatever this laptop's clock says."""
    if latest is None:
        return
    stored = meta.get(store.db, "hlc_last")
    try:
        after = store.clock.observe(Timestamp.decode(stored) if stored else None, latest)
    except ClockDriftError:
        return  # far ahead of this clock: not trusted to drag it (it stays flagged)
    meta.put(store.db, "hlc_last", after.encode())


_OWN_NAME = Refusal(N_("an event in this node's own name"), {})
_NOT_OURS = Refusal(N_("a shelter's event from a node HQ does not list as this shelter's"),
                    {})


def _quarantine(db: Any, raw: Any, reason: str, refused: Refusal | None = None) -> None:
    sender = raw.get("node_id") if isinstance(raw, dict) else None
    quarantine(db, sender if isinstance(sender, str) else "?", raw, reason,
               (refused, "HQ") if refused is not None else None)


# --- card keys -----------------------------------------------------------------------------

def note_enrolled(db: Any, node_id: str, answer: dict[str, Any]) -> None:
    """What HQ's ``enrolled`` says beyond the credential, kept in the same transaction: a
    replacement code (the node rebuilds before it serves, even if stopped right now), and
    that HQ took the card key the ``enroll`` carried (nothing to publish for this id)."""
    if answer.get("replace") is True:
        meta.put(db, STATE_KEY, "pending")
    if answer.get("card_key") is True:
        done = set(json.loads(meta.get(db, PUBLISHED_KEY) or "[]"))
        meta.put(db, PUBLISHED_KEY, json.dumps(sorted(done | {node_id})))


def publish_card_keys(store: EventStore, origins: Iterable[str]) -> int:
    """Publish the card key of each of ``origins`` (the node's own ids HQ counts as its
    own: its ``welcome``) that this node has not published yet, once per id; returns how
    many were appended. They go up with the next push."""
    wanted = set(origins)

    def todo_in(db: Any) -> tuple[set[str], list[str]]:
        done = set(json.loads(meta.get(db, PUBLISHED_KEY) or "[]"))
        return done, [o for o in backup.own_origins(db.conn) if o in wanted and o not in done]

    if not todo_in(store.db)[1]:
        return 0  # the usual case: no write, so no live screen wakes up
    with store.write() as db:
        done, todo = todo_in(db)
        published = 0
        for origin in todo:
            row = db.execute("SELECT public_key, shelter_id FROM card_keys WHERE node_id = ?",
                             [origin]).fetchone()
            if row is None:
                continue
            try:
                store.append("card_key_published", {"node_id": origin, "public_key": row[0],
                                                    "shelter_id": row[1]})
                published += 1
            except Refused:  # not this shelter's any more: nothing to publish for it
                log.warning("card key of %s not published: refused here", origin)
        meta.put(db, PUBLISHED_KEY, json.dumps(sorted(done | set(todo))))
    return published
