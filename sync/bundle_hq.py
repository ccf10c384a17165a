"""HQ's side of courier bundles (the format is sync/bundle.py): import a node's bundle
exactly as its /sync session would apply the same events, once, and write the node's reply.

What a bundle must be, before anything in it is applied: a bundle (not a reply) for this HQ,
signed with the credential of a node HQ enrolled (unknown: refused), for that credential's
shelter, not revoked, not imported before, and holding only that node's own ids (its
epochs, enrollment.chain; a new epoch is claimed as the socket claims one). Each origin's
events then go into HQ's log in the socket's batches (sync/log.py) and are projected at
once (sync/projector.py), the import holding the projector so that it can say what came of
them: resends are duplicates, events the node may not say are quarantined as refused, and
the rest is applied between HQ's hooks (the store of a NodeContext opened as HQ has them).
"""

from __future__ import annotations

import json
import secrets
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shelter.core.backup import own_origins
from shelter.core.events import utc_now_iso
from shelter.core.node import NodeContext
from shelter.core.sql import insert_row
from sync import enrollment, projector, protocol
from sync import log as hq_log
from sync.bundle import (
    BundleRefused,
    imported_at,
    read,
    record_refusal,
    seal,
    unseal,
    write_new,
)
from sync.pull import PULL_LIMIT, updates_for

BATCHES_PER_WRITE = 10  # batches logged in one transaction (HQ may be serving meanwhile)
REPLY_PAGES = 200  # pulls of PULL_LIMIT events a reply holds at most


@dataclass
class Imported:
    header: dict[str, Any]
    applied: int = 0
    duplicates: int = 0
    quarantined: int = 0  # could not be applied (shape, type, a projection that failed)
    refused: int = 0  # the node may not say them (quarantined as refused)
    conflicts: int = 0
    gaps: list[str] = field(default_factory=list)  # origins whose events HQ could not place


def import_bundle(ctx: NodeContext, path: Path) -> Imported:
    """Verify and apply a node's bundle (BundleRefused, recorded for HQ's sync page:
    why nothing was applied)."""
    try:
        return _import(ctx, path)
    except BundleRefused as refused:
        record_refusal(ctx, "bundle", refused)
        raise


def verify(ctx: NodeContext, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, body) of an authentic bundle for this HQ from an enrolled node that is not
    revoked; BundleRefused otherwise."""
    sealed = read(path)
    header = sealed.header
    if header["kind"] != "bundle":
        raise BundleRefused("not_a_bundle", "this is HQ's reply to a node: it is imported on "
                            "the node (shelter bundle import)", header)
    row = ctx.db.execute("SELECT shelter_id, credential_hash, revoked FROM hq_credentials "
                         "WHERE node_id = ?", [header["credential_node"]]).fetchone()
    if row is None:
        raise BundleRefused("unknown_node", f"HQ has no enrolled node "
                                            f"{header['credential_node']}", header)
    body = unseal(sealed, str(row[1]))  # before anything else is said about the node
    if row[0] != header["shelter_id"]:
        raise BundleRefused("wrong_shelter", f"node {header['credential_node']} is enrolled "
                            f"for shelter {row[0]}, not {header['shelter_id']}", header)
    if row[2]:
        raise BundleRefused("revoked", f"HQ has revoked node {header['credential_node']}'s "
                                       "credential", header)
    if header["hq_id"] not in own_origins(ctx.db.conn):
        raise BundleRefused("wrong_hq", f"this bundle is for HQ {header['hq_id']}, not this "
                                        f"one ({ctx.node_id})", header)
    return header, body


def _import(ctx: NodeContext, path: Path) -> Imported:
    header, body = verify(ctx, path)
    node_id, credential_node = header["node_id"], header["credential_node"]
    when = imported_at(ctx.db, header["bundle_id"], node_id)
    if when is not None:
        raise BundleRefused("already_imported", f"this bundle was already imported at {when}",
                            header, authentic=True)
    if node_id != credential_node:  # a restored or copied node: a new epoch, same shelter
        try:
            enrollment.claim_epoch(ctx.store, credential_node, node_id, ctx.node_id)
        except enrollment.EnrollmentError as refused:
            raise BundleRefused(refused.code, str(refused), header) from None
    sections = _sections(body, header, enrollment.chain(ctx.db, node_id))
    done = Imported(header)
    store, shelter_id = ctx.store, header["shelter_id"]
    work = [(origin, batch) for origin, events in sections
            for batch in protocol.batches(events)]
    stopped: set[str] = set()
    mine: set[int] = set()
    with projector.holding(ctx.data_dir):
        for start in range(0, len(work), BATCHES_PER_WRITE):
            if enrollment.is_revoked(ctx.db, credential_node):  # revoked meanwhile
                raise BundleRefused("revoked", f"HQ revoked node {credential_node}'s "
                                               "credential during the import", header)
            chunk = [(o, b) for o, b in work[start:start + BATCHES_PER_WRITE]
                     if o not in stopped]
            for (origin, _), logged in zip(chunk, hq_log.ingest_batches(
                    hq_log.of(ctx.data_dir), shelter_id, chunk,
                    int(time.time() * 1000)), strict=True):
                done.duplicates += logged.duplicates
                mine.update(logged.log_ids)
                if logged.need_from is not None:
                    stopped.add(origin)
                    done.gaps.append(f"{origin}: HQ holds it through {logged.acked_seq}, "
                                     f"and this bundle does not carry {logged.need_from}")
        for ids, result in projector.project_held(ctx, max(mine, default=0)):
            if ids[0] in mine:
                _add(done, result)
    with store.write() as db:
        when = imported_at(db, header["bundle_id"], node_id)
        if when is not None:  # another import of the same file got there first
            raise BundleRefused("already_imported", f"this bundle was already imported at "
                                                    f"{when}", header, authentic=True)
        insert_row(db, "sync_bundles", {
            "bundle_id": header["bundle_id"], "kind": "bundle", "node_id": node_id,
            "shelter_id": shelter_id, "created_at": header["created_at"],
            "imported_at": utc_now_iso(), "events": sum(len(e) for _, e in sections),
            "applied": done.applied, "duplicates": done.duplicates,
            "quarantined": done.quarantined, "refused": done.refused})
    return done


def _sections(body: dict[str, Any], header: dict[str, Any],
              origins: list[str]) -> list[tuple[str, list[Any]]]:
    """The bundle's events per origin; refused as a whole if one is not the node's own."""
    sections = body.get("origins")
    if not isinstance(sections, list):
        raise BundleRefused("malformed", "the bundle holds no origins", header)
    found: list[tuple[str, list[Any]]] = []
    total = 0
    for section in sections:
        origin = section.get("origin") if isinstance(section, dict) else None
        events = section.get("events") if isinstance(section, dict) else None
        if not isinstance(origin, str) or not isinstance(events, list) \
                or any(origin == o for o, _ in found):
            raise BundleRefused("malformed", "the bundle's origins are not what a bundle "
                                             "holds", header)
        if origin not in origins:
            raise BundleRefused("not_your_origin", f"{origin[:40]!r} is not one of node "
                                f"{header['node_id']}'s ids", header)
        total += len(events)
        found.append((origin, events))
    if total != header["events"]:
        raise BundleRefused("malformed", "the bundle holds other events than it says", header)
    return found


def _add(done: Imported, result: Any) -> None:
    done.applied += result.applied
    done.duplicates += result.duplicates
    done.conflicts += len(result.conflicts)
    refused = sum(1 for q in result.quarantined if str(q["reason"]).startswith("refused: "))
    done.refused += refused
    done.quarantined += len(result.quarantined) - refused


def write_reply(ctx: NodeContext, header: dict[str, Any], path: Path) -> int:
    """Write the shelter's updates for the bundle's node to ``path`` (from the bundle's
    pull cursor if it pulled from this HQ, else from the start), with what HQ holds of each
    of the node's ids, signed for that node alone. Returns how many updates it holds."""
    row = ctx.db.execute("SELECT credential_hash FROM hq_credentials WHERE node_id = ?",
                         [header["credential_node"]]).fetchone()
    if row is None:
        raise BundleRefused("unknown_node", f"HQ has no enrolled node "
                                            f"{header['credential_node']}", header)
    node_id, shelter_id = header["node_id"], header["shelter_id"]
    if node_id not in enrollment.chain(ctx.db, header["credential_node"]):
        # A file refused as imported already was not checked for its node_id: anyone
        # holding the credential could name another shelter's node here.
        raise BundleRefused("not_your_origin", f"node {node_id} is not one of node "
                            f"{header['credential_node']}'s ids", header)
    cursor = int(header["pull_cursor"]) if header.get("pull_hq_id") == ctx.node_id else 0
    updates: list[dict[str, Any]] = []
    for _ in range(REPLY_PAGES):  # bounded, like the node's own pull round
        events, cursor = updates_for(ctx.db, shelter_id, node_id, cursor)
        updates.extend(events)
        if len(events) < PULL_LIMIT:
            break
    chain = enrollment.chain(ctx.db, node_id)
    body = json.dumps({"type": "courier_reply", "updates": updates}, ensure_ascii=False,
                      separators=(",", ":")).encode()
    reply = {"kind": "reply", "bundle_id": secrets.token_hex(16),
             "in_reply_to": header["bundle_id"], "node_id": node_id,
             "credential_node": header["credential_node"], "shelter_id": shelter_id,
             "hq_id": ctx.node_id, "hq_ids": own_origins(ctx.db.conn),
             "created_at": utc_now_iso(), "events": len(updates), "cursor": cursor,
             "acked": {o: hq_log.logged_seq(hq_log.of(ctx.data_dir), o) for o in chain}}
    write_new(path, seal(reply, zlib.compress(body, 6), str(row[0])))
    return len(updates)
