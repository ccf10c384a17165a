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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from shelter.core.authority import LOCAL_ONLY
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import EVENT_FIELDS

PROTOCOL_VERSION = 1
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 256 * 1024  # compressed, on the wire
# Events in one `updates` answer: a `pull` may ask for fewer (`limit`, 1 to this), so that
# an answer fits what a thin link carries (sync/client.py).
PULL_LIMIT = 500
MAX_DECOMPRESSED_BYTES = 8 * 1024 * 1024  # a batch that inflates past this is refused
# Shelter ids a `pull` may ask the names of (sync/shelter_names.py), at most.
MAX_SHELTERS_ASKED = 50
# Events that stay on the node that made them (shelter/core/authority.py: LOCAL_ONLY) travel as
# stubs (same id, seq and clock; no payload) so the sequence has no holes.
STUB_TYPE = "local"
MAX_DEPTH = 16  # nesting within an event's payload (a household's is 4 deep)
MAX_INT = 2**63  # what SQLite holds: numbers in messages stay below it
_CONTAINERS = frozenset((dict, list))
# A JSON escape of half a surrogate pair with no other half: valid JSON, but no text at all
# (SQLite and UTF-8 cannot hold it).
_LONE_SURROGATE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_NODE = re.compile(r"^[0-9A-Z][0-9A-Z-]{0,31}$")
_HLC = re.compile(r"^[0-9]{15}\.[0-9]{8}\.")  # Timestamp.encode(): wall.counter.node
_FIELDS = frozenset(EVENT_FIELDS)


class ProtocolError(InvalidInput, ValueError):
    """A message refused as a whole. ``code`` is stable; ``message`` says why, in English
    (this is between machines; the desk shows its own words)."""

    status = 400
    message = N_("A sync message was refused: it is not one this side understands.")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, detail=f"{code}: {message}")


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


_STRING = json.encoder.encode_basestring


def wire_text(row: dict[str, Any]) -> str:
    """An event row as it travels, as JSON text: what ``for_wire`` gives, without parsing
    and re-encoding the stored payload (the node's side of a backlog is mostly this)."""
    return wire_text_of(*(row[k] for k in EVENT_FIELDS))


def wire_text_of(event_id: str, node_id: str, seq: int, hlc: str, type_: str,
                 schema_version: int, payload: Any, recorded_at: str) -> str:
    """``wire_text`` of an events row read as a tuple (columns in EVENT_FIELDS order)."""
    local = type_ in LOCAL_ONLY
    if local:
        payload = "{}"
    elif not isinstance(payload, str):
        payload = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return (f'{{"event_id":{_STRING(event_id)},"node_id":{_STRING(node_id)},'
            f'"seq":{int(seq)},"hlc":{_STRING(hlc)},'
            f'"type":{_STRING(STUB_TYPE if local else type_)},'
            f'"schema_version":{1 if local else int(schema_version)},'
            f'"payload":{payload},"recorded_at":{_STRING(recorded_at)}}}')


def content_hash(event: dict[str, Any]) -> str:
    """What makes two copies of one event the same event: every field, canonically."""
    canonical = json.dumps({k: event[k] for k in EVENT_FIELDS}, sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def place_of(raw: Any) -> int | None:
    """The sequence number ``raw`` names, if it names one SQLite can hold (a malformed
    event's may be anything): the place in its sender's sequence it can take, else None."""
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if type(seq) is int and abs(seq) < MAX_INT else None


def check_event(event: Any) -> str | None:
    """Why this is not a well-formed event, or None when it is (on HQ's hot path: every
    event of every batch passes here)."""
    if type(event) is not dict:
        return "an event must be an object"
    if not event.keys() >= _FIELDS:
        return "missing fields: " + ", ".join(k for k in EVENT_FIELDS if k not in event)
    event_id, node_id, seq, hlc = event["event_id"], event["node_id"], event["seq"], event["hlc"]
    if type(event_id) is not str or not _ULID.match(event_id):
        return "event_id is not a ULID"
    if type(node_id) is not str or not _NODE.match(node_id):
        return "node_id is not valid"
    if type(seq) is not int or not 0 < seq < MAX_INT:
        return "seq must be a positive integer"
    if type(hlc) is not str:
        return "hlc must be a string"
    if not _HLC.match(hlc):
        return "hlc cannot be read"
    if hlc[25:] != node_id:
        return "hlc names another node"
    kind = event["type"]
    if not (type(kind) is str and 0 < len(kind) <= 64):
        return "type must be a short string"
    if type(event["schema_version"]) is not int or not 0 < event["schema_version"] < 1000:
        return "schema_version must be a small positive integer"
    payload = event["payload"]
    if type(payload) is not dict:
        return "payload must be an object"
    if _too_deep(payload):
        return f"payload nested deeper than {MAX_DEPTH}"
    recorded_at = event["recorded_at"]
    if type(recorded_at) is not str or len(recorded_at) > 40:
        return "recorded_at must be a timestamp"
    return None


def _too_deep(payload: dict[str, Any]) -> bool:
    """Whether containers nest past MAX_DEPTH (walked without recursion; scalars skipped,
    so a flat payload costs one pass over its values)."""
    if _CONTAINERS.isdisjoint(map(type, payload.values())):
        return False  # flat, as most events are: one pass in C, nothing built
    stack: list[tuple[Any, int]] = [(v, 2) for v in payload.values()
                                    if type(v) is dict or type(v) is list]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        items = value.values() if type(value) is dict else value
        stack.extend((v, depth + 1) for v in items if type(v) is dict or type(v) is list)
    return False


def valid_node_id(value: Any) -> bool:
    return type(value) is str and _NODE.match(value) is not None


def valid_shelter_id(value: Any) -> bool:
    """A shelter's id (the GSI's 共通ID, or another registry's): the same form as a node's."""
    return type(value) is str and _NODE.match(value) is not None


def shelters_asked_problem(value: Any) -> str | None:
    """Why a pull's ``shelters_unknown`` is not an ask HQ answers, or None when it is."""
    if type(value) is not list or not 1 <= len(value) <= MAX_SHELTERS_ASKED:
        return f"shelters_unknown must be a list of 1 to {MAX_SHELTERS_ASKED} shelter ids"
    if not all(valid_shelter_id(v) for v in value):
        return ("shelters_unknown: each id is upper-case letters, digits and '-', "
                "at most 32")
    return None


def hlc_wall_ms(hlc: str) -> int:
    """The wall-clock part of a timestamp that passed check_event."""
    return int(hlc[:15])


def _text(event: dict[str, Any] | str) -> str:
    return event if isinstance(event, str) else json.dumps(event, ensure_ascii=False,
                                                          separators=(",", ":"))


def batches(events: Iterable[Any], max_events: int = MAX_BATCH_EVENTS,
            max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[Any]]:
    """Consecutive events (dicts, or JSON texts from ``wire_text``) in batches capped by count
    and by (uncompressed) size; a single event larger than the cap travels alone."""
    batch: list[Any] = []
    size = 0
    for event in events:
        length = len(_text(event).encode())
        if batch and (len(batch) >= max_events or size + length > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        yield batch


class BatchSize:
    """How many events the next batch may hold, learned from the link: a session that dies
    with a batch on the wire sends batches half that size next time (down to one event),
    each acknowledged batch doubles it again (up to ``normal``). Kept in memory only: a
    restarted client starts at ``normal``, and a thin link shrinks it again within a few
    sessions."""

    def __init__(self, normal: int = MAX_BATCH_EVENTS) -> None:
        self.normal = normal
        self.limit = normal

    @property
    def thin(self) -> bool:
        """Whether the link has cut a batch short since the last run of acknowledgements."""
        return self.limit < self.normal

    def acknowledged(self) -> None:
        self.limit = min(self.normal, self.limit * 2)

    def lost(self, events: int) -> None:
        """The link did not carry a batch of ``events`` events."""
        self.limit = max(1, events // 2)


# --- frames ---------------------------------------------------------------------------------

def encode_batch(batch_id: int, events: list[Any], origin: str | None = None) -> bytes:
    """One batch frame; ``origin`` says which of the node's ids (epochs) the events are
    from. Events may be dicts or JSON texts (``wire_text``)."""
    head = f'{{"type":"events","batch":{int(batch_id)},'
    if origin:
        head += f'"origin":{_STRING(origin)},'
    body = head + '"events":[' + ",".join(_text(e) for e in events) + "]}"
    return zlib.compress(body.encode(), 6)


def encode_updates(cursor: int, events: list[dict[str, Any]], **extra: Any) -> bytes:
    """A pull's answer; ``extra``: what it adds to a pull that asked names of shelters."""
    body = json.dumps({"type": "updates", "cursor": cursor, "events": events, **extra},
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
    # A replacing node downloads its shelter's history (sync/history.py).
    "history": {"part": int, "after": int, "limit": int},
    "history_page": {"part": int, "after": int, "events": list, "nodes": list},
}


Shapes = dict[str, dict[str, type | tuple[type, ...]]]


def decode(frame: str | bytes | bytearray, shapes: Shapes | None = None) -> dict[str, Any]:
    """One received frame as a checked message, or ProtocolError saying what is wrong.
    ``shapes``: the messages of another exchange (the standby's, sync/standby.py) instead
    of HQ's."""
    return _checked(_parsed(_inflated(frame)), shapes)


def decode_with_texts(frame: str | bytes | bytearray) -> tuple[dict[str, Any], list[str] | None]:
    """``decode``, and for a batch written as nodes write it (``encode_batch``), each
    event's text exactly as it came: HQ's log keeps those (sync/log.py) instead of writing
    every event out again (with the rest of that change, HQ's CPU per event in bench_sync
    went from 49.1 to 43.5 µs). None for the texts
    when the frame is written any other way (it is decoded the usual way, and the log
    writes its events out itself)."""
    text = _inflated(frame)
    split = _split_batch(text)
    if split is None:
        return _checked(_parsed(text), None), None
    message, texts = split
    return _checked(message, None), texts


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ProtocolError("malformed", "the frame is nested too deeply") from None
    except ValueError:
        raise ProtocolError("malformed", "the frame is not JSON") from None


# The head of a batch as ``encode_batch`` writes it; anything else takes the usual way.
_BATCH_HEAD = re.compile(r'\{"type":"events","batch":(0|[1-9][0-9]{0,18}),'
                         r'(?:"origin":("(?:[^"\\\x00-\x1f]|\\.)*"),)?"events":\[')
# What json.loads parses each value with (typeshed does not declare the attribute).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _split_batch(text: str) -> tuple[dict[str, Any], list[str]] | None:
    """A batch frame's message and each event's text, parsed by the same scanner as
    ``json.loads``, or None if the frame is not exactly ``encode_batch``'s shape."""
    head = _BATCH_HEAD.match(text)
    if head is None:
        return None
    events: list[Any] = []
    texts: list[str] = []
    at = head.end()
    if not (text.startswith("]}", at) and at + 2 == len(text)):
        while True:
            try:
                event, end = _SCAN(text, at)
            except (StopIteration, ValueError, RecursionError):
                return None
            events.append(event)
            texts.append(text[at:end])
            if len(events) > MAX_BATCH_EVENTS:
                return None  # refused the usual way, with its reason
            if text.startswith(",", end):
                at = end + 1
            elif end + 2 == len(text) and text.endswith("]}"):
                break
            else:
                return None
    message: dict[str, Any] = {"type": "events", "batch": int(head.group(1))}
    if head.group(2) is not None:
        try:
            message["origin"] = json.loads(head.group(2))
        except ValueError:
            return None
    message["events"] = events
    return message, texts


def _inflated(frame: str | bytes | bytearray) -> str:
    """A frame's text (a binary frame inflated), refused if it cannot be text."""
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
    if ("\\ud" in text or "\\uD" in text) and _LONE_SURROGATE.search(text):
        raise ProtocolError("malformed", "the frame holds half of a surrogate pair, which "
                                         "is not text")
    return text


def _checked(message: Any, shapes: Shapes | None) -> dict[str, Any]:
    """A parsed frame as a message of a known type and shape, or ProtocolError."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("malformed", "a message is an object with a type")
    shape = (_REQUIRED if shapes is None else shapes).get(message["type"])
    if shape is None:
        raise ProtocolError("unknown_message", f"unknown message type {message['type']!r}")
    for field, kind in shape.items():
        value = message.get(field)
        if not isinstance(value, kind) or isinstance(value, bool) \
                or (isinstance(value, int) and not 0 <= value < MAX_INT):
            raise ProtocolError("malformed", f"{message['type']}: {field} is missing or of "
                                             "the wrong type")
    if len(message.get("events") or ()) > MAX_BATCH_EVENTS:
        raise ProtocolError("too_large", f"at most {MAX_BATCH_EVENTS} events in a batch")
    if message["type"] == "history" and not (message["part"] in (1, 2)
                                             and 1 <= message["limit"] <= MAX_BATCH_EVENTS):
        raise ProtocolError("malformed", "history: part is 1 or 2, limit a whole number "
                                         f"from 1 to {MAX_BATCH_EVENTS}")
    if message["type"] == "pull" and "limit" in message:  # optional: older nodes omit it
        limit = message["limit"]
        if type(limit) is not int or not 1 <= limit <= PULL_LIMIT:
            raise ProtocolError("malformed", "pull: limit must be a whole number from 1 to "
                                             f"{PULL_LIMIT}")
    return message
