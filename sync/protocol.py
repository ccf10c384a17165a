"""The sync protocol's messages: their shapes, their checks, and how events travel.

Control messages are JSON text frames; a batch of events is a binary frame holding
zlib-compressed JSON. Anything that does not parse or does not have the right shape is
refused with a reason (``ProtocolError``); a single bad event inside a good batch is not a
protocol error but is quarantined by the receiver (see ``sync.apply``). docs/sync-protocol.md
describes the exchange.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .hlc import Timestamp

PROTOCOL_VERSION = 1
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 256 * 1024  # compressed, on the wire
MAX_DECOMPRESSED_BYTES = 8 * 1024 * 1024  # a batch that inflates past this is refused
# Events that stay on the node that made them: they hold password and token hashes. They
# travel as stubs (same id, seq and clock; no payload) so the sequence has no holes.
LOCAL_ONLY = frozenset({"user_added", "token_created", "user_disabled", "user_enabled"})
STUB_TYPE = "local"
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_NODE = re.compile(r"^[0-9A-Z][0-9A-Z-]{0,31}$")
EVENT_FIELDS = ("event_id", "node_id", "seq", "hlc", "type", "schema_version", "payload",
                "recorded_at")


class ProtocolError(ValueError):
    """A message refused as a whole. ``code`` is stable; ``message`` says why, in English
    (this is between machines; the desk shows its own words)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


# --- events on the wire ---------------------------------------------------------------------

def for_wire(row: dict[str, Any]) -> dict[str, Any]:
    """An event row (payload as JSON text or dict) as it travels: local-only ones as stubs."""
    payload = row["payload"]
    if isinstance(payload, str):
        payload = json.loads(payload)
    out = {k: row[k] for k in EVENT_FIELDS if k != "payload"}
    if row["type"] in LOCAL_ONLY:
        out.update(type=STUB_TYPE, schema_version=1)
        payload = {}
    out["payload"] = payload
    return out


def content_hash(event: dict[str, Any]) -> str:
    """What makes two copies of one event the same event: every field, canonically."""
    canonical = json.dumps({k: event[k] for k in EVENT_FIELDS}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_event(event: Any) -> str | None:
    """Why this is not a well-formed event, or None when it is."""
    if not isinstance(event, dict):
        return "an event must be an object"
    missing = [k for k in EVENT_FIELDS if k not in event]
    if missing:
        return f"missing fields: {', '.join(missing)}"
    if not (isinstance(event["event_id"], str) and _ULID.match(event["event_id"])):
        return "event_id is not a ULID"
    if not (isinstance(event["node_id"], str) and _NODE.match(event["node_id"])):
        return "node_id is not valid"
    if isinstance(event["seq"], bool) or not isinstance(event["seq"], int) or event["seq"] < 1:
        return "seq must be a positive integer"
    if not isinstance(event["hlc"], str):
        return "hlc must be a string"
    try:
        stamp = Timestamp.decode(event["hlc"])
    except ValueError:
        return "hlc cannot be read"
    if stamp.node_id != event["node_id"]:
        return "hlc names another node"
    if not (isinstance(event["type"], str) and 0 < len(event["type"]) <= 64):
        return "type must be a short string"
    if isinstance(event["schema_version"], bool) or not isinstance(event["schema_version"], int):
        return "schema_version must be an integer"
    if not isinstance(event["payload"], dict):
        return "payload must be an object"
    if not isinstance(event["recorded_at"], str) or len(event["recorded_at"]) > 40:
        return "recorded_at must be a timestamp"
    return None


def batches(events: Iterable[dict[str, Any]], max_events: int = MAX_BATCH_EVENTS,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[dict[str, Any]]]:
    """Consecutive events in batches capped by count and by (uncompressed) size; a single
    event larger than the cap travels alone."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        length = len(json.dumps(event, ensure_ascii=False).encode())
        if batch and (len(batch) >= max_events or size + length > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        yield batch


# --- frames ---------------------------------------------------------------------------------

def encode_batch(batch_id: int, events: list[dict[str, Any]], origin: str | None = None) -> bytes:
    message: dict[str, Any] = {"type": "events", "batch": batch_id, "events": events}
    if origin:
        message["origin"] = origin  # which of the node's ids (epochs) these events are from
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    return zlib.compress(body, 6)


def encode_updates(cursor: int, events: list[dict[str, Any]]) -> bytes:
    body = json.dumps({"type": "updates", "cursor": cursor, "events": events},
                      ensure_ascii=False, separators=(",", ":")).encode()
    return zlib.compress(body, 6)


def encode(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


_REQUIRED: dict[str, dict[str, type | tuple[type, ...]]] = {
    "hello": {"protocol": int, "node_id": str, "shelter_id": str, "credential": str},
    "enroll": {"protocol": int, "node_id": str, "shelter_id": str, "code": str},
    "welcome": {"protocol": int, "hq_id": str, "acked_seq": int},
    "enrolled": {"credential": str, "hq_id": str, "shelter_id": str},
    "events": {"batch": int, "events": list},
    "ack": {"batch": int, "acked_seq": int},
    "pull": {"cursor": int},
    "updates": {"cursor": int, "events": list},
    "error": {"code": str, "message": str},
    "ping": {},
    "pong": {},
}


def decode(frame: str | bytes | bytearray) -> dict[str, Any]:
    """One received frame as a checked message, or ProtocolError saying what is wrong."""
    if isinstance(frame, bytes | bytearray):
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(bytes(frame), MAX_DECOMPRESSED_BYTES)
        except zlib.error:
            raise ProtocolError("malformed", "a binary frame must be zlib-compressed JSON") \
                from None
        if inflater.unconsumed_tail:
            raise ProtocolError("too_large", "the batch inflates past "
                                f"{MAX_DECOMPRESSED_BYTES} bytes")
        text = raw.decode("utf-8", errors="replace")
    else:
        text = frame
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("malformed", "the frame is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("malformed", "a message is an object with a type")
    shape = _REQUIRED.get(message["type"])
    if shape is None:
        raise ProtocolError("unknown_message", f"unknown message type {message['type']!r}")
    for field, kind in shape.items():
        value = message.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProtocolError("malformed", f"{message['type']}: {field} is missing or of "
                                             "the wrong type")
    return message
