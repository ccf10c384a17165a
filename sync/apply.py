"""Applying a batch of another node's events to this store (HQ's side of sync).

The rules (docs/sync-protocol.md):
* one batch, one write transaction; the acknowledgement is sent only after it commits;
* events are applied in their node's sequence order; an event already applied is skipped
  (the same event twice has the effect of once); the same id or sequence number with other
  content is a conflict, recorded and reported, never applied;
* a gap (the next event is not the one after the last applied) stops the batch there and
  asks for the missing events;
* an event this store cannot apply (wrong shape, unknown type, newer schema, a projection
  that fails, an origin that is not the sender) is quarantined with its reason, and the
  events behind it are applied as if it were not there: nothing blocks the queue;
* so is an event the sender may not say (shelter/core/authority.py: a type only HQ originates,
  a local-only type, an event about another shelter), marked as refused: an operator sees
  refusals per shelter, since a run of them is what a stolen laptop looks like;
* an event stamped implausibly far in the future is applied but flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shelter.core.authority import N_, OWN_STORE, Batch, Refusal, Sender, issuers, refusal
from shelter.core.clock import AHEAD_OK, DEFAULT_MAX_DRIFT_MS, system_ms
from shelter.core.events import (
    EVENT_COLUMNS,
    EVENT_MARKS,
    SCHEMA_VERSIONS,
    Event,
    EventStore,
    utc_now_iso,
)
from shelter.core.sql import in_chunks, insert_row
from sync import drills
from sync.protocol import STUB_TYPE, check_event, content_hash, hlc_wall_ms, place_of


@dataclass
class Applied:
    acked_seq: int
    applied: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    need_from: int | None = None

    def ack(self, batch_id: int) -> dict[str, Any]:
        return {"type": "ack", "batch": batch_id, "acked_seq": self.acked_seq,
                "applied": self.applied, "duplicates": self.duplicates,
                "quarantined": self.quarantined, "conflicts": self.conflicts,
                "need_from": self.need_from}


def acked_seq(store: EventStore, node_id: str) -> int:
    row = store.db.execute("SELECT acked_seq FROM sync_origins WHERE node_id = ?",
                           [node_id]).fetchone()
    return int(row[0]) if row else 0


def apply_batch(store: EventStore, node_id: str, shelter_id: str, events: list[Any],
                now_ms: int | None = None, max_drift_ms: int = DEFAULT_MAX_DRIFT_MS) -> Applied:
    """Apply ``events`` sent by ``node_id`` (already authenticated as that node).

    The events are first sorted out in memory (shape, sequence, type); the new ones are then
    written together, their projections applied a run of one type at a time. If anything in
    that fails, the batch's writes are undone and the new events go again one by one, each
    under its own savepoint, so that the one that fails is quarantined and the rest applied.
    """
    now_ms = system_ms() if now_ms is None else now_ms
    with store.write() as db:
        db.execute("INSERT OR IGNORE INTO sync_origins (node_id, shelter_id) VALUES (?, ?)",
                   [node_id, shelter_id])
        result = Applied(acked_seq(store, node_id))
        sender = Sender("node", "hq", shelter_id)
        said = Batch()
        # Ids stored already (resends): judged as duplicates or conflicts below, not asked
        # again whether they may be said (a registration's ids would look taken: by itself).
        stored = _stored_ids(db, [e.get("event_id") for e in events if isinstance(e, dict)])
        held: set[str] = set()  # stored, flagged, not applied (see below)
        fresh: list[tuple[dict[str, Any], Event]] = []
        for raw in events:
            problem = check_event(raw)
            if problem is not None:
                seq = raw.get("seq") if isinstance(raw, dict) else None
                if type(seq) is int and seq == result.acked_seq + 1:  # as the log does
                    result.acked_seq = seq  # its place in the sequence is used up
                _quarantine(db, node_id, raw, problem, result)
                continue
            if raw["node_id"] != node_id:
                _refuse(db, node_id, raw, _NOT_ITS_OWN, result, shelter_id)
                continue
            seq = raw["seq"]
            if seq <= result.acked_seq:
                _compare_with_stored(db, node_id, raw, result, fresh)
                continue
            if seq > result.acked_seq + 1:
                result.need_from = result.acked_seq + 1
                break
            result.acked_seq = seq
            if raw["type"] == STUB_TYPE:
                continue  # a node-local event: its place in the sequence, nothing else
            known = SCHEMA_VERSIONS.get(raw["type"])
            if known is None:
                _quarantine(db, node_id, raw, f"unknown event type {raw['type']!r}", result)
                continue
            if raw["schema_version"] > known:
                _quarantine(db, node_id, raw, f"schema version {raw['schema_version']} is "
                                              f"newer than this store's {known}", result)
                continue
            reason = None if raw["event_id"] in stored else \
                refusal(db, sender, raw["type"], raw["payload"], node_id, said)
            if reason is None and raw["type"] == "presence_changed" \
                    and hlc_wall_ms(raw["hlc"]) - now_ms > max_drift_ms \
                    and not _registered_by(db, raw["payload"].get("person_id"), shelter_id,
                                           said):
                # Latest clock wins a person's presence: a stamp far ahead would win over
                # every real scan at the person's own shelter from then on. Kept (a clock
                # set wrong is no crime) and flagged, but not applied.
                held.add(raw["event_id"])
            if reason is None and raw["type"] in AHEAD_OK \
                    and hlc_wall_ms(raw["hlc"]) - now_ms > max_drift_ms \
                    and not AHEAD_OK[raw["type"]](db, raw["payload"]):
                # A correction's field goes to the latest clock for good: one stamped far
                # ahead (a stolen laptop's) would undo every later one. Refused, in sight.
                reason = _AHEAD
            if reason is not None:
                _refuse(db, node_id, raw, reason, result, shelter_id)
                continue
            said.note(raw["type"], raw["payload"])
            fresh.append((raw, Event(raw["event_id"], raw["node_id"], seq, raw["hlc"],
                                     raw["type"], raw["schema_version"], raw["payload"],
                                     raw["recorded_at"])))
        fresh = _without_stored(db, node_id, fresh, result, stored)
        applied = [event for _, event in fresh]
        if applied and not _apply_together(store, applied, held):
            applied = _apply_one_by_one(store, node_id, fresh, result, held)
        result.applied += len(applied)
        for event in applied:
            if event.event_id in held:
                insert_row(db, "sync_flags", {
                    "event_id": event.event_id, "node_id": node_id, "at": utc_now_iso(),
                    "reason": HELD_REASON}, or_ignore=True)
            elif hlc_wall_ms(event.hlc) - now_ms > max_drift_ms:
                insert_row(db, "sync_flags", {
                    "event_id": event.event_id, "node_id": node_id, "at": utc_now_iso(),
                    "reason": "stamped implausibly far in the future"}, or_ignore=True)
        db.execute("UPDATE sync_origins SET acked_seq = ?, last_batch_at = ? WHERE node_id = ?",
                   [result.acked_seq, utc_now_iso(), node_id])
    result.quarantined.sort(key=lambda q: (q["seq"] is None, q["seq"] or 0))
    return result


def _stored_ids(db: Any, ids: list[Any]) -> set[str]:
    """Which of these event ids this store holds (one query per 900)."""
    stored: set[str] = set()
    for chunk, marks in in_chunks([i for i in ids if isinstance(i, str)]):
        stored.update(r[0] for r in db.conn.execute(
            f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk))
    return stored


def _without_stored(db: Any, node_id: str, fresh: list[tuple[dict[str, Any], Event]],
                    result: Applied, stored: set[str]) -> list[tuple[dict[str, Any], Event]]:
    """The new events minus those whose id is already stored: the same content is a
    duplicate, other content a conflict."""
    if not stored:
        return fresh
    kept = []
    for raw, event in fresh:
        if event.event_id not in stored:
            kept.append((raw, event))
            continue
        existing = _stored(db, event.event_id)
        if existing is not None and content_hash(existing) == content_hash(raw):
            result.duplicates += 1
        else:
            _conflict(db, node_id, raw, "this event id is stored with other content", result)
    return kept


def _apply_together(store: EventStore, events: list[Event], held: set[str]) -> bool:
    """All of them in one go; False (and nothing written) if any of it fails."""
    conn = store.db.conn
    conn.execute("SAVEPOINT apply_batch")
    try:
        conn.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({EVENT_MARKS})",
                         [event.values() for event in events])
        if len(events) >= 2:
            drills.crash_point("hq_mid_apply")
        store.project([e for e in events if e.type not in OWN_STORE and e.event_id not in held])
    except Exception:  # noqa: BLE001 - sorted out event by event below
        conn.execute("ROLLBACK TO apply_batch")
        conn.execute("RELEASE apply_batch")
        return False
    conn.execute("RELEASE apply_batch")
    return True


def _apply_one_by_one(store: EventStore, node_id: str,
                      fresh: list[tuple[dict[str, Any], Event]], result: Applied,
                      held: set[str]) -> list[Event]:
    """Each event under its own savepoint; returns those applied."""
    db = store.db
    applied: list[Event] = []
    for raw, event in fresh:
        twice = _stored(db, event.event_id)  # the same id twice in this batch
        if twice is not None:
            if content_hash(twice) == content_hash(raw):
                result.duplicates += 1
            else:
                _conflict(db, node_id, raw, "this event id is stored with other content",
                          result)
            continue
        db.conn.execute("SAVEPOINT apply_event")
        try:
            insert_row(db, "events", event.row())
            if event.type not in OWN_STORE and event.event_id not in held:
                store.project([event])
        except Exception as error:  # noqa: BLE001 - any failure quarantines this event
            db.conn.execute("ROLLBACK TO apply_event")
            db.conn.execute("RELEASE apply_event")
            _quarantine(db, node_id, raw, f"could not be applied ({type(error).__name__})",
                        result)
            continue
        db.conn.execute("RELEASE apply_event")
        applied.append(event)
        if len(applied) == 2:
            drills.crash_point("hq_mid_apply")
    return applied


def _stored(db: Any, event_id: str) -> dict[str, Any] | None:
    row = next(iter(db.query("SELECT * FROM events WHERE event_id = ?", [event_id])), None)
    if row is None:
        return None
    return {**row, "payload": json.loads(row["payload"])}


def _compare_with_stored(db: Any, node_id: str, raw: dict[str, Any], result: Applied,
                         pending: list[tuple[dict[str, Any], Event]]) -> None:
    """An event at or below the acknowledged sequence: a resend, or a different history.
    ``pending``: this batch's events not written yet, which it may repeat."""
    earlier = [r for r, event in pending if event.seq == raw["seq"]]
    stored = earlier[0] if earlier else next(iter(db.query(
        "SELECT * FROM events WHERE node_id = ? AND seq = ?", [node_id, raw["seq"]])), None)
    if stored is None:  # a node-local stub or a quarantined event held this place
        result.duplicates += 1
        return
    if isinstance(stored["payload"], str):
        stored = {**stored, "payload": json.loads(stored["payload"])}
    if content_hash(stored) == content_hash(raw):
        result.duplicates += 1
    else:
        _conflict(db, node_id, raw, f"sequence number {raw['seq']} is stored with other "
                                    "content (a node restored from a backup?)", result)


_NOT_ITS_OWN = Refusal(N_("a node may send only its own events"), {})
_AHEAD = Refusal(N_("a correction stamped implausibly far in the future: it would outrank "
                   "every later correction"), {})
HELD_REASON = ("stamped implausibly far in the future, about a person registered at another "
               "shelter: kept, not applied")


def _registered_by(db: Any, person_id: Any, shelter_id: str, said: Batch) -> bool:
    """Whether ``shelter_id`` registered the person (before, or earlier in this batch)."""
    if not isinstance(person_id, str):
        return False
    return person_id in said.people or issuers(db, [person_id]).get(person_id) == shelter_id


def _raw(raw: Any) -> str:
    """What was received, as text a quarantine row can hold whatever it is."""
    try:
        text = json.dumps(raw, ensure_ascii=True, default=str)
    except (ValueError, RecursionError):
        text = '"(not kept: it could not be written out)"'
    return text[:100_000]


def quarantine(db: Any, node_id: str, raw: Any, reason: str,
               refused: tuple[Refusal, str] | None = None) -> dict[str, Any]:
    """Keep an event that is not applied, with its reason; ``refused``: why the sender may
    not say it, and the sender's shelter (the reason is then "refused: ...", and kept as
    its message template too, so an operator reads it in their language)."""
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    alarm = refused is not None and refused[0].alarm
    if refused is not None:  # not known here (a restored node, say): kept, no alarm
        reason = f"refused: {refused[0].text()}" if alarm else refused[0].text()
    entry = {"event_id": event_id if isinstance(event_id, str) else None,
             "seq": place_of(raw), "reason": reason}
    insert_row(db, "sync_quarantine", {
        "node_id": node_id, **entry, "raw": _raw(raw), "at": utc_now_iso(),
        "refused": 1 if alarm else 0,
        "shelter_id": refused[1] if refused is not None else None,
        "reason_template": refused[0].template if refused is not None else None,
        "reason_params": json.dumps(refused[0].params, ensure_ascii=True)
        if refused is not None else None})
    return entry


def _quarantine(db: Any, node_id: str, raw: Any, reason: str, result: Applied) -> None:
    result.quarantined.append(quarantine(db, node_id, raw, reason))


def _refuse(db: Any, node_id: str, raw: Any, reason: Refusal, result: Applied,
            shelter_id: str) -> None:
    result.quarantined.append(quarantine(db, node_id, raw, "", (reason, shelter_id)))


def _conflict(db: Any, node_id: str, raw: dict[str, Any], reason: str,
              result: Applied) -> None:
    insert_row(db, "sync_conflicts", {
        "node_id": node_id, "seq": raw["seq"], "event_id": raw["event_id"], "reason": reason,
        "raw": _raw(raw), "at": utc_now_iso()})
    result.conflicts.append({"event_id": raw["event_id"], "seq": raw["seq"], "reason": reason})


def refusals_by_shelter(db: Any, limit: int = 20) -> list[dict[str, Any]]:
    """Shelters whose senders said what they may not, most recent first: each with how
    many events were refused, the latest reason (``Refusal``, or the stored text) and when."""
    rows = list(db.query(
        """SELECT q.shelter_id, count(*) AS refused, max(q.at) AS last_at,
                  (SELECT quarantine_id FROM sync_quarantine r WHERE r.refused = 1
                   AND r.shelter_id = q.shelter_id ORDER BY r.quarantine_id DESC LIMIT 1)
                  AS last_id
           FROM sync_quarantine q WHERE q.refused = 1 GROUP BY q.shelter_id
           ORDER BY last_at DESC LIMIT ?""", [limit]))
    for row in rows:
        latest = db.execute("SELECT reason, reason_template, reason_params FROM "
                            "sync_quarantine WHERE quarantine_id = ?",
                            [row.pop("last_id")]).fetchone()
        row["last_reason"] = _reason(*latest)
    return rows


def refused_events(db: Any, shelter_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """A shelter's refused events, newest first: node, sequence, type, reason, when."""
    rows = list(db.query(
        "SELECT node_id, seq, event_id, reason, reason_template, reason_params, raw, at "
        "FROM sync_quarantine WHERE refused = 1 AND shelter_id = ? "
        "ORDER BY quarantine_id DESC LIMIT ?", [shelter_id, limit]))
    for row in rows:
        row["reason"] = _reason(row.pop("reason"), row.pop("reason_template"),
                                row.pop("reason_params"))
        try:
            kind = json.loads(row.pop("raw")).get("type")
        except (ValueError, AttributeError):
            kind = None
        row["type"] = kind if isinstance(kind, str) else "?"
    return rows


def _reason(text: str, template: str | None, params: str | None) -> Refusal | str:
    if template is None:
        return text
    try:
        return Refusal(template, json.loads(params or "{}"))
    except ValueError:
        return text
