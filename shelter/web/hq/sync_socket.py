"""The /sync websocket at HQ: each shelter node's session (hello or enroll, then batches of
events answered by acknowledgements, and pulls of what concerns its shelter). The protocol
is docs/sync-protocol.md; what a batch does at HQ is sync/apply.py."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Blueprint

from shelter.core.backup import own_origins
from shelter.core.server import HQ_THREADS
from shelter.hq import refresher
from shelter.web.base import node, sock, websocket_view
from sync import enrollment, history, hq_addresses, projector, protocol, shelter_names
from sync import log as hq_log
from sync.pull import updates_for

bp = Blueprint("hq_sync", __name__)
log = logging.getLogger("shelter.sync")
IDLE_SECONDS = 90.0
# Batches are logged one at a time anyway (one writer); decoding them, and making answers
# (update and history pages), only a few at a time keeps HQ's memory flat when hundreds of
# nodes send at once. A wait for the projector holds no slot.
APPLYING = threading.BoundedSemaphore(4)
HISTORY_WAIT_SECONDS = 10.0  # for the projector, before a rebuilding node's first page
GROUP_FRAMES = 8  # frames already received from one node, logged in one transaction


def _error(code: str, message: str) -> str:
    return protocol.encode({"type": "error", "code": code, "message": message})


def _send_error(ws: Any, code: str, message: str) -> None:
    ws.send(_error(code, message))


# Sync sessions hold a thread each for as long as they last. They may take all but
# RESERVED_THREADS of HQ's threads, so that the pages and API always answer; sockets that
# have not said who they are yet may be at most GREETING at once, for HELLO_SECONDS each;
# and a node id holds one session at a time (a new one closes the old).
RESERVED_THREADS = 64
SESSIONS = threading.BoundedSemaphore(HQ_THREADS - RESERVED_THREADS)
GREETING = threading.BoundedSemaphore(32)
HELLO_SECONDS = 10.0
_sessions: dict[tuple[str, str], Any] = {}  # (shelter, node id) -> its session's socket
_sessions_lock = threading.Lock()


@sock.route("/sync", bp=bp)
@websocket_view
def sync_socket(ws: Any) -> None:
    """One node's session: hello (or enroll), then batches answered by acknowledgements."""
    if not SESSIONS.acquire(blocking=False):
        _send_error(ws, "busy", "HQ is serving as many nodes as it can; try again shortly")
        return
    try:
        _sync_session(ws)
    finally:
        SESSIONS.release()


def _sync_session(ws: Any) -> None:
    ctx = node()
    if not GREETING.acquire(blocking=False):
        _send_error(ws, "busy", "too many connections are starting at once; try again")
        return
    try:
        frame = ws.receive(timeout=HELLO_SECONDS)
    finally:
        GREETING.release()
    try:
        first = protocol.decode(frame or "")
    except protocol.ProtocolError as refused:
        _send_error(ws, refused.code, refused.message)
        return
    if first.get("protocol") != protocol.PROTOCOL_VERSION:
        _send_error(ws, "protocol_version", f"HQ speaks sync protocol "
                    f"{protocol.PROTOCOL_VERSION}; this node speaks {first.get('protocol')}. "
                    "Update the older one.")
        return
    if first["type"] == "enroll":
        proof = first.get("proof")
        if not protocol.valid_node_id(first["node_id"]) or (
                proof is not None and not enrollment.proof_ok(proof)):
            _send_error(ws, "malformed", "an enroll message names a node id (N and nine "
                        "letters or digits) and, if it has a proof, 32 to 256 characters")
            return
        try:
            # shelter_from_code: a fresh node takes the shelter the code is for.
            credential, shelter_id = enrollment.enroll(
                ctx.store, first["code"], first["node_id"],
                None if first.get("shelter_from_code") is True else first["shelter_id"],
                ctx.node_id, proof, first.get("card_key"))
        except enrollment.EnrollmentError as refused:
            _send_error(ws, refused.code, refused.message)
            return
        log.warning("enrolled node %s for shelter %s", first["node_id"], shelter_id)
        ws.send(protocol.encode({"type": "enrolled", "credential": credential,
                                 "hq_id": ctx.node_id, "shelter_id": shelter_id,
                                 **enrollment.enrolled_extras(ctx.db, first["node_id"],
                                                              first.get("card_key"))}))
        return
    if first["type"] != "hello":
        _send_error(ws, "unexpected", "the first message must be hello or enroll")
        return
    node_id, shelter_id = first["node_id"], first["shelter_id"]
    credential_node = first.get("credential_node") or node_id
    state = enrollment.credential_state(ctx.db, credential_node, shelter_id,
                                        first["credential"]) \
        if isinstance(credential_node, str) else "unknown"
    if state == "revoked":
        log.warning("refused revoked node %s of shelter %s", credential_node, shelter_id)
        _send_error(ws, "revoked", "HQ has revoked this node's credential: enroll it again "
                                   "with a new code")
        return
    if state != "ok":
        _send_error(ws, "unauthorized", "unknown or wrong credential for this node")
        return
    if not protocol.valid_node_id(node_id):
        _send_error(ws, "malformed", "hello: node_id is not a node id")
        return
    if credential_node != node_id:  # a restored or copied node: a new epoch, same shelter
        try:
            enrollment.claim_epoch(ctx.store, credential_node, node_id, ctx.node_id)
        except enrollment.EnrollmentError as refused:
            log.warning("refused node %s's claim to speak as %s", credential_node, node_id)
            _send_error(ws, refused.code, refused.message)
            return
    # One session per node id: a second one (a node reconnecting before HQ noticed the
    # first was gone) closes the first. Per id, not per credential: a copied data
    # directory runs as a new epoch beside the original, and both must sync; a credential
    # has at most MAX_EPOCHS ids, so its holder has at most that many sessions.
    key = (shelter_id, node_id)
    with _sessions_lock:
        previous, _sessions[key] = _sessions.get(key), ws
    if previous is not None:
        _close_quietly(previous)  # the same credential again: the newest session wins
    try:
        _serve(ws, ctx, node_id, shelter_id, credential_node)
    finally:
        with _sessions_lock:
            if _sessions.get(key) is ws:
                del _sessions[key]


def _close_quietly(ws: Any) -> None:
    try:
        ws.close(reason=1000, message="a newer session of this node")
    except Exception:  # noqa: BLE001, S110 - it was going anyway
        pass


def _serve(ws: Any, ctx: Any, node_id: str, shelter_id: str, credential_node: str) -> None:
    origins = enrollment.chain(ctx.db, node_id)
    refresher.seen(node_id)
    stored = hq_log.of(ctx.data_dir)
    ws.send(protocol.encode({"type": "welcome", "protocol": protocol.PROTOCOL_VERSION,
                             "hq_id": ctx.node_id,
                             # Every id HQ's own events carry (its epochs): what a node
                             # takes HQ's steps from.
                             "hq_ids": own_origins(ctx.db.conn),
                             # What HQ's log holds (stored, maybe not projected yet).
                             "acked_seq": hq_log.logged_seq(stored, node_id),
                             "acked": {o: hq_log.logged_seq(stored, o) for o in origins},
                             # HQ's addresses and its standby's (shelter hq --addresses).
                             **hq_addresses.advertised(ctx.db)}))
    while ws.connected:
        frame = ws.receive(timeout=IDLE_SECONDS)
        if frame is None:
            break  # silent for too long: the node reconnects when it has something
        frames = [frame]
        while len(frames) < GROUP_FRAMES and (more := ws.receive(timeout=0)) is not None:
            frames.append(more)
        refresher.seen(node_id)
        if enrollment.is_revoked(ctx.db, credential_node):  # revoked while connected
            _send_error(ws, "revoked", "HQ has revoked this node's credential")
            break
        if not _handle(ws, ctx, frames, node_id, shelter_id, origins):
            break


def _handle(ws: Any, ctx: Any, frames: list[Any], node_id: str, shelter_id: str,
            origins: list[str]) -> bool:
    """Frames of a node's session that arrived together; False ends the session.

    Batches among them are stored in HQ's log in one transaction (one commit, one fsync,
    for as many as the node had in flight), and each is acknowledged, in order, after it
    commits; the projector applies them to HQ's figures after (sync/projector.py).
    """
    messages: list[dict[str, Any] | protocol.ProtocolError] = []
    texts: dict[int, list[str] | None] = {}  # each batch's events as they came
    logged: dict[int, hq_log.Logged] = {}
    failed = False
    with APPLYING:
        for frame in frames:  # inflated and parsed before taking the log's write lock
            try:
                decoded, as_sent = protocol.decode_with_texts(frame)
                messages.append(decoded)
                texts[id(decoded)] = as_sent
            except protocol.ProtocolError as refused:
                messages.append(refused)
        batches = [m for m in messages if isinstance(m, dict) and m["type"] == "events"
                   and (m.get("origin") or node_id) in origins]
        if batches:
            try:
                results = hq_log.ingest_batches(
                    hq_log.of(ctx.data_dir), shelter_id,
                    [(m.get("origin") or node_id, m["events"]) for m in batches],
                    int(time.time() * 1000), [texts[id(m)] for m in batches])
                logged = {id(m): r for m, r in zip(batches, results, strict=True)}
                projector.wake(ctx.data_dir)
            except Exception as error:  # noqa: BLE001 - these batches, not the session
                log.error("batches from %s not stored (%s)", node_id, type(error).__name__)
                failed = True
    answers: list[str | bytes] = []
    for message in messages:
        if isinstance(message, protocol.ProtocolError):
            answers.append(_error(message.code, message.message))
            continue
        if failed and id(message) in {id(m) for m in batches}:
            answers.append(_error("not_handled", "HQ could not store this batch"))
            continue
        try:
            busy = _not_ready(ctx, message, origins)  # waits, without holding a slot
            if busy is not None:
                answers.append(busy)
                continue
            with APPLYING:  # answers are made a few at a time too (pages, updates)
                answers.append(_answer(ctx, message, node_id, shelter_id, origins, logged))
        except Exception as error:  # noqa: BLE001 - one message, not the session
            log.error("sync message from %s not handled (%s)", node_id,
                      type(error).__name__)
            answers.append(_error("not_handled", "HQ could not handle this message"))
    for answer in answers:
        ws.send(answer)
    return bool(ws.connected)


def _not_ready(ctx: Any, message: dict[str, Any], origins: list[str]) -> str | None:
    """A replacing node's first history page is made from all HQ stored, not only what it
    had projected: this waits for the projector (a while at most), and answers "busy"
    (the node asks again) if it is still behind; None when the page may be made."""
    if message["type"] != "history" or message.get("after", 0) != 0 \
            or not enrollment.may_rebuild(ctx.db, origins):
        return None  # any other credential hears "forbidden" at once, from history.answer
    if projector.caught_up(ctx, hq_log.head(hq_log.of(ctx.data_dir)), HISTORY_WAIT_SECONDS):
        return None
    return _error("busy", "HQ is still counting what it stored; try again shortly")


def _answer(ctx: Any, message: dict[str, Any], node_id: str, shelter_id: str,
            origins: list[str], logged: dict[int, hq_log.Logged]) -> str | bytes:
    """HQ's answer to one checked message of a node's session."""
    if message["type"] == "ping":
        return protocol.encode({"type": "pong"})
    if message["type"] == "events":
        origin = message.get("origin") or node_id
        if not isinstance(origin, str) or origin not in origins:
            return _error("not_your_origin", f"{str(origin)[:40]} is not one of this node's ids")
        return protocol.encode({**logged[id(message)].ack(message["batch"]), "origin": origin})
    if message["type"] == "pull":
        # ``limit`` (checked by protocol.decode): what the node's link carries, or all.
        events, cursor = updates_for(ctx.db, shelter_id, node_id, message["cursor"],
                                     message.get("limit", protocol.PULL_LIMIT))
        # A pull may ask the registry names of shelters the node does not know.
        return protocol.encode_updates(cursor, events,
                                       **shelter_names.answer(ctx.db, message))
    if message["type"] == "history":  # a replacing node rebuilds its shelter
        return history.answer(ctx.db, message, shelter_id, node_id, origins)
    return _error("unexpected", f"{message['type']} is not expected from a node")
