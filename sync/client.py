"""The node's side of sync: enroll once, then a background thread that keeps pushing the
node's events to HQ over a websocket, whatever the link does.

Each session: connect (with a timeout, to the first of the node's HQ addresses that
answers: sync/hq_addresses.py), say hello with the node's credential, learn from HQ's
welcome how far it has applied this node's events, send everything after that in batches,
and record each acknowledgement durably. When idle it waits for a local write (or pings
every few seconds). Any failure ends the session; the next starts after a back-off with
jitter that grows only while sessions deliver nothing, and batches shrink to what a thin
link carries (docs/sync-protocol.md). The cursor is HQ's acknowledgement, never "what I read".
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import ssl
import threading
import time
import urllib.error
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

from simple_websocket import ConnectionClosed
from simple_websocket.errors import SimpleWebsocketError

from shelter.core import backup, meta
from shelter.core.errors import N_, Forbidden
from shelter.core.events import EVENT_COLUMNS, utc_now_iso
from shelter.core.node import NodeContext, cards_issued
from sync import drills, enrollment, history, hq_addresses, hq_ca, protocol, pull, shelter_names
from sync.ws_link import CONNECT_TIMEOUT, close_socket, open_socket, sync_url

log = logging.getLogger("shelter.sync")
HQ_CA_FILE = "hq-ca.crt"
ACK_TIMEOUT = 60.0
IDLE_PING_SECONDS = 10.0
MAX_BACKOFF = 60.0
READ_LIMIT = 2000  # events read from the store per round (then cut into batches)
WINDOW = 24  # batches on the wire before waiting for HQ's acknowledgement
ACK_SAVE_SECONDS = 1.0  # acks are stored at least this often in a long push
THIN_WINDOW = 2  # ... while a thin link keeps batches small (protocol.BatchSize)


class SyncRefused(Forbidden):
    """HQ said no (wrong credential, other protocol version): retrying soon will not help.
    ``code`` is HQ's; ``message`` HQ's words, in English."""

    message = N_("HQ refused this node's connection.")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, detail=f"{code}: {message}")


def _connect(data_dir: Path, hq_url: str) -> Any:
    url, context = sync_url(hq_url), ssl.create_default_context(cafile=str(data_dir / HQ_CA_FILE))
    return open_socket(url, context if url.startswith("wss") else None, 4 << 20)


def greeted(ctx: NodeContext, addresses: str | None = None) -> tuple[Any, dict[str, Any]]:
    """A websocket to the first HQ address (``addresses``, else the node's; the one that
    answered last first) that welcomes the node's hello, and HQ's welcome; remembered."""
    db = ctx.db
    hello = {"type": "hello", "protocol": protocol.PROTOCOL_VERSION, "node_id": ctx.node_id,
             "shelter_id": meta.get(db, "shelter_id") or ctx.shelter_id,
             "credential": meta.get(db, "hq_credential") or "",
             "credential_node": meta.get(db, "hq_credential_node") or ctx.node_id}

    def attempt(url: str) -> tuple[Any, dict[str, Any]]:
        ws = _connect(ctx.data_dir, url)
        try:
            ws.send(protocol.encode(hello))
            welcome = _expect(ws, "welcome", CONNECT_TIMEOUT)
            if hq_addresses.superseded(ctx.db, welcome):  # a primary back after failover
                raise hq_addresses.SupersededHQ(f"{url} is an HQ replaced by its standby")
            return ws, welcome
        except BaseException:
            close_socket(ws)
            raise
    urls = hq_addresses.of_node(ctx.db) if addresses is None else hq_addresses.ordered(
        hq_addresses.parse(addresses), meta.get(ctx.db, hq_addresses.CURRENT_KEY))
    url, (ws, welcome) = hq_addresses.first_answering(urls, attempt, _transient)
    hq_addresses.remember(ctx.store, ctx.db, url)
    return ws, welcome


def _expect(ws: Any, wanted: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        frame = ws.receive(timeout=max(left, 0.01)) if left > 0 else None
        if frame is None:
            raise TimeoutError(f"no {wanted} from HQ within {timeout:.0f} s")
        message = protocol.decode(frame)
        if message["type"] == "error":
            raise SyncRefused(message["code"], message["message"])
        if message["type"] == wanted:
            return message


ENROLL_ATTEMPTS = 5
ENROLL_FIRST_WAIT = 1.5  # seconds, doubling: 1.5 + 3 + 6 + 12, about 20 s of waiting
ENROLL_DEADLINE = 90.0  # seconds for the whole enrollment, all tries
BUSY_CODES = frozenset({"busy"})  # HQ's refusals that mean "later", not "no"


class Enrolled(NamedTuple):
    hq_id: str
    shelter_id: str  # the shelter the code was for (the node's own, from now on)


def _transient(error: BaseException) -> bool:
    """Whether an enrollment try failed on the way (retry) rather than with an answer."""
    if isinstance(error, SyncRefused):
        return error.code in BUSY_CODES
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500
    reason = getattr(error, "reason", None)  # urllib wraps what the socket raised
    if isinstance(error, ssl.SSLCertVerificationError) \
            or isinstance(reason, ssl.SSLCertVerificationError):
        return False  # not HQ's certificate: trying again will not change it
    if isinstance(error, SimpleWebsocketError):
        status = getattr(error, "status_code", None)
        return status is None or status >= 500
    return isinstance(error, OSError)  # refused, reset, SSLEOFError, timeouts


def enroll(ctx: NodeContext, hq_url: str, code: str, *, shelter_from_code: bool = False,
           attempts: int = ENROLL_ATTEMPTS, first_wait: float = ENROLL_FIRST_WAIT,
           deadline: float = ENROLL_DEADLINE) -> Enrolled:
    """Redeem an enrollment code: check HQ's CA against the code's pin, keep the CA, and
    store the credential HQ gives. ``shelter_from_code``: the node (no card issued yet)
    takes the shelter id the code is for; open the node again to see it.

    Failures on the way (connection refused or reset, TLS cut short, timeouts, HQ's 5xx
    or busy) are tried again, ``attempts`` in all with a doubling wait; an answer from
    HQ (a refused code, another shelter's) ends it at once; after the last try its error
    is raised. Every try carries the same random proof, so a try whose answer was lost
    after HQ spent the code gets the same credential when tried again
    (``enrollment.redeem``), never a "used" code. No try starts, and no answer is waited
    for, after ``deadline`` seconds (HQ's certificate is read capped: ``sync.hq_ca``)."""
    secret, pin = enrollment.parse_code(code)
    # Kept in the data directory (0600) until enrolled: a node killed after HQ spent the
    # code for it, restarted with the same code, still gets its credential.
    proof = meta.once(ctx.db, "enroll_proof", lambda: secrets.token_urlsafe(32))
    until = time.monotonic() + deadline
    for attempt in range(attempts):
        wait = first_wait * 2 ** attempt * random.uniform(0.75, 1.25)
        try:  # each try: the first address that answers (``hq_url`` may list several)
            return hq_addresses.first_answering(hq_addresses.parse(hq_url), lambda url: (
                _enroll_once(ctx, url, hq_url, secret, pin, proof, shelter_from_code, until)),
                _transient)[1]
        except (OSError, SimpleWebsocketError, SyncRefused) as error:
            if attempt == attempts - 1 or not _transient(error) \
                    or time.monotonic() + wait >= until:
                raise  # the last try's error, or HQ's answer
        time.sleep(wait)
    raise AssertionError("unreachable")


def _enroll_once(ctx: NodeContext, hq_url: str, hq_urls: str, secret: str, pin: str,
                 proof: str, shelter_from_code: bool, until: float) -> Enrolled:
    pem = hq_ca.fetch(hq_url, pin, until, CONNECT_TIMEOUT)
    (ctx.data_dir / HQ_CA_FILE).write_text(pem)
    ws = _connect(ctx.data_dir, hq_url)
    try:
        ws.send(protocol.encode({"type": "enroll", "protocol": protocol.PROTOCOL_VERSION,
                                 "node_id": ctx.node_id, "shelter_id": ctx.shelter_id,
                                 "shelter_from_code": shelter_from_code, "proof": proof,
                                 "code": secret, "card_key": ctx.public_key}))
        answer_message = _expect(ws, "enrolled", max(0.1, min(CONNECT_TIMEOUT,
                                                              until - time.monotonic())))
    finally:
        close_socket(ws)
    shelter_id = str(answer_message["shelter_id"])
    with ctx.store.write() as db:
        if shelter_id != ctx.shelter_id:  # asked for (shelter_from_code), or HQ is wrong
            # The id is printed on every card: it may change only before the first one
            # (NodeContext's rule; opened again, the node's key then stands for it).
            if not shelter_from_code or cards_issued(db):
                raise enrollment.EnrollmentError(
                    "wrong_shelter", f"HQ enrolled this node for shelter {shelter_id}, but "
                                     f"it already issued cards as {ctx.shelter_id}")
            meta.put(db, "shelter_id", shelter_id)
        for key, value in {"hq_url": ",".join(hq_addresses.parse(hq_urls)),
                           hq_addresses.CURRENT_KEY: hq_url,
                           "hq_credential": answer_message["credential"],
                           "hq_credential_node": ctx.node_id,
                           "hq_id": answer_message["hq_id"]}.items():
            meta.put(db, key, str(value))
        history.note_enrolled(db, ctx.node_id, answer_message)  # a rebuild, the card key
    return Enrolled(str(answer_message["hq_id"]), shelter_id)


class SyncClient(threading.Thread):
    """Runs in the `shelter node` process beside its web servers."""

    def __init__(self, data_dir: Path, stop: threading.Event,
                 max_backoff: float = MAX_BACKOFF) -> None:
        super().__init__(name="sync-client", daemon=True)
        self.data_dir = Path(data_dir)
        self.stop_event = stop
        self.max_backoff = max_backoff
        self.sizes = protocol.BatchSize()
        self.pull_sizes = protocol.BatchSize(protocol.PULL_LIMIT)  # the same, for pulls
        self.progressed = False  # this session: HQ took a new event, or all was done
        self.shrinking = False  # this session lost a batch that a smaller one may replace
        self.unsaved_acks: dict[str, int] | None = None  # HQ's acks not stored on the node yet
        self.saved_at = 0.0

    def run(self) -> None:
        ctx = NodeContext(self.data_dir, role="node")
        delay = 1.0
        while not self.stop_event.is_set():
            self.progressed = self.shrinking = False
            try:
                self.session(ctx)
            except SyncRefused as refused:
                if refused.code == "busy":  # HQ at its limit: like a link down, try again
                    self.status(ctx, "offline: HQ busy")
                else:
                    # "revoked": HQ knows this credential and has withdrawn it (a stolen or
                    # replaced laptop): the desk says so until the node is enrolled again.
                    self.status(ctx, "revoked" if refused.code == "revoked"
                                else f"refused: {refused.message}")
                    delay = self.max_backoff  # a person has to act; do not hammer HQ
            except (OSError, ConnectionError, ConnectionClosed, TimeoutError,
                    protocol.ProtocolError, ssl.SSLError) as error:
                self.status(ctx, f"offline: {type(error).__name__}")
            except Exception as error:  # noqa: BLE001 - the thread must outlive any bug
                self.status(ctx, f"error: {type(error).__name__}")
            # The link carries something, or a smaller batch may get through: straight back.
            # Only a session that delivered nothing, even at one event a batch, backs off.
            going_on = self.progressed or self.shrinking
            delay = 1.0 if going_on else delay
            self.stop_event.wait(random.uniform(0.1, 0.4) if going_on
                                 else delay * random.uniform(1.0, 1.5))
            if not (self.progressed or self.shrinking):
                delay = min(delay * 2, self.max_backoff)

    def status(self, ctx: NodeContext, state: str) -> None:
        try:
            meta.commit(ctx.store, {"sync_state": state, "sync_state_at": utc_now_iso()})
        except Exception:  # noqa: BLE001, S110 - status is best effort, never fatal
            pass

    def session(self, ctx: NodeContext) -> None:
        credential = meta.get(ctx.db, "hq_credential")
        if not meta.get(ctx.db, "hq_url") or not credential:
            raise SyncRefused("not_enrolled", "this node is not enrolled with an HQ")
        self.status(ctx, "connecting")
        ws, welcome = greeted(ctx)
        try:
            # HQ's word is the cursor: an HQ restored from an older backup says lower
            # numbers, and gets the rest again. A different HQ id (HQ restored as a new
            # epoch) means its event positions changed: pull everything again.
            acked = {ctx.node_id: int(welcome["acked_seq"])}
            if isinstance(welcome.get("acked"), dict):
                acked.update({k: int(v) for k, v in welcome["acked"].items()})
            known = json.loads(meta.get(ctx.db, "sync_acked") or "{}")
            if any(seq > int(known.get(o, 0)) for o, seq in acked.items()):
                self.progressed = True  # HQ took what the last session's link cut off
            values = {"sync_acked": json.dumps(acked)}
            self.unsaved_acks = None  # HQ's word now; an older session's never overrides it
            if isinstance(welcome.get("hq_ids"), list):
                values["hq_ids"] = json.dumps([str(i) for i in welcome["hq_ids"]])
            told = hq_addresses.told(welcome)  # the standby's address, say
            if told is not None and told != meta.get(ctx.db, hq_addresses.LEARNED_KEY):
                values[hq_addresses.LEARNED_KEY] = told
            if meta.get(ctx.db, "pull_hq_id") != welcome["hq_id"]:
                values.update(pull_hq_id=welcome["hq_id"], **{pull.CURSOR_KEY: "0"})
            meta.commit(ctx.store, values)
            history.publish_card_keys(ctx.store, acked)  # once per id: HQ keeps its key
            self.status(ctx, "connected")
            self.push(ctx, ws, acked)
        finally:
            close_socket(ws)

    def push(self, ctx: NodeContext, ws: Any, acked: dict[str, int]) -> None:
        """Send every own origin's events after what HQ holds (older epochs first).

        Up to WINDOW batches are on the wire at once, so that reading and compressing the
        next ones overlaps HQ's applying the previous ones. HQ answers each in order; its
        ``acked_seq`` is the cursor, whatever was sent. On a thin link (``self.sizes``)
        batches are smaller and at most THIN_WINDOW are on the wire, so that each
        connection's few KB carry whole batches and a larger one follows each ack.
        """
        batch_id = 0
        sent = dict(acked)
        in_flight: deque[tuple[str, int]] = deque()  # (origin, events) of each unacked batch
        seen = -1
        try:
            while not self.stop_event.is_set() and ws.connected:
                rows: list[tuple[Any, ...]] = []
                origin = ctx.node_id
                window = THIN_WINDOW if self.sizes.thin else WINDOW
                if len(in_flight) < window:
                    for origin in backup.own_origins(ctx.db.conn):
                        if origin not in acked:
                            continue  # an id HQ does not count as ours (before re-enrolling)
                        # Tuples, not sqlite-utils' dicts: a backlog's rows are read by the
                        # hundred thousand (with the acks below, the node's CPU per event
                        # in bench_sync went from 15.7 to 14.5 µs).
                        rows = ctx.db.conn.execute(
                            f"SELECT {EVENT_COLUMNS} FROM events WHERE node_id = ? AND seq > ? "
                            "ORDER BY seq LIMIT ?", [origin, sent.get(origin, acked.get(
                                origin, 0)), min(READ_LIMIT, (window - len(in_flight))
                                                 * self.sizes.limit)]).fetchall()
                        if rows:
                            break
                if rows:
                    for batch in protocol.batches([protocol.wire_text_of(*r) for r in rows],
                                                  max_events=self.sizes.limit):
                        batch_id += 1
                        ws.send(protocol.encode_batch(batch_id, batch, origin))
                        in_flight.append((origin, len(batch)))
                        drills.crash_point("after_send")
                    sent[origin] = int(rows[-1][2])
                    if len(in_flight) < window:
                        continue
                if in_flight:
                    if not self.acknowledged(ctx, ws, in_flight, acked):
                        while in_flight:  # HQ asked to go back: let the rest answer first
                            self.acknowledged(ctx, ws, in_flight, acked)
                        sent = dict(acked)
                    continue
                self.pull(ctx, ws)  # caught up: what HQ has for us (also a keepalive)
                self.progressed = True
                seen = ctx.watcher.wait(seen, IDLE_PING_SECONDS)
        finally:
            try:
                self.save_acks(ctx)
            except Exception as error:  # noqa: BLE001 - the session's own error goes on
                log.warning("acknowledgements not saved (%s)", type(error).__name__)
            if in_flight:  # the link did not carry this batch: smaller ones next time
                self.shrinking = in_flight[0][1] > 1
                self.sizes.lost(in_flight[0][1])

    def acknowledged(self, ctx: NodeContext, ws: Any, in_flight: deque[tuple[str, int]],
                     acked: dict[str, int]) -> bool:
        """Wait for the ack of the oldest batch in flight and store it; False when HQ asks
        for events again."""
        origin = in_flight[0][0]
        ack = _expect(ws, "ack", ACK_TIMEOUT)
        in_flight.popleft()
        self.sizes.acknowledged()
        drills.crash_point("before_ack_saved")
        if int(ack["acked_seq"]) > acked.get(origin, 0):
            self.progressed = True
        acked[origin] = int(ack["acked_seq"])
        problems = len(ack.get("quarantined") or []) + len(ack.get("conflicts") or [])
        # Saved when the window is answered, or a problem is to be counted, or a second
        # after the last save: not one commit per ack. An ack not saved yet is lost only
        # with the node, which then sends those events again, and HQ counts them as
        # duplicates.
        self.unsaved_acks = dict(acked)
        if problems or not in_flight or time.monotonic() - self.saved_at >= ACK_SAVE_SECONDS:
            self.save_acks(ctx, problems)
        return not ack.get("need_from")

    def save_acks(self, ctx: NodeContext, problems: int = 0) -> None:
        """Store how far HQ has acknowledged (and count its refusals) on the node."""
        if self.unsaved_acks is None and not problems:
            return
        values = {"sync_last_ok_at": utc_now_iso()}
        if self.unsaved_acks is not None:
            values["sync_acked"] = json.dumps(self.unsaved_acks)
        if problems:
            values["sync_problems"] = str(int(meta.get(ctx.db, "sync_problems") or 0)
                                          + problems)
        meta.commit(ctx.store, values)
        self.unsaved_acks = None
        self.saved_at = time.monotonic()

    def pull(self, ctx: NodeContext, ws: Any) -> None:
        """HQ's updates, in pages of at most ``pull_sizes.limit`` events: a page the link
        cut off halves it (down to one), each page that arrives doubles it and is progress;
        a page shorter than asked for is the last."""
        for _ in range(100):  # bounded: at most 100 pages a round
            cursor = int(meta.get(ctx.db, pull.CURSOR_KEY) or 0)
            limit = self.pull_sizes.limit
            asking = shelter_names.ask(ctx.db, limit)  # names of shelters seen here; often {}
            ws.send(protocol.encode({"type": "pull", "cursor": cursor, "limit": limit, **asking}))
            try:
                updates = _expect(ws, "updates", ACK_TIMEOUT)
            except (OSError, ConnectionClosed):  # the link did not carry the answer
                self.pull_sizes.lost(limit)
                self.shrinking = self.shrinking or limit > 1
                raise
            pull.apply_pulled(ctx.store, updates["events"], int(updates["cursor"]))
            shelter_names.learn(ctx.store, asking, updates)
            self.pull_sizes.acknowledged()
            self.progressed = True
            if len(updates["events"]) < limit:
                return
