"""The node's side of courier bundles (the format is sync/bundle.py): export what HQ has
not acknowledged, and import HQ's reply as a pull would apply the same updates."""

from __future__ import annotations

import json
import secrets
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shelter.core import meta
from shelter.core.backup import own_origins
from shelter.core.events import utc_now_iso
from shelter.core.node import NodeContext
from shelter.core.sql import insert_row
from sync import history, protocol, pull
from sync.bundle import (
    MAX_EVENTS,
    MAX_INFLATED_BYTES,
    BundleRefused,
    credential_hash,
    imported_at,
    read,
    record_refusal,
    seal,
    unseal,
    write_new,
)


def _enrollment(ctx: NodeContext) -> tuple[str, str, str]:
    """(credential, the node id it was issued to, HQ's id), or BundleRefused."""
    credential = meta.get(ctx.db, "hq_credential")
    hq_id = meta.get(ctx.db, "hq_id")
    if not credential or not hq_id:
        raise BundleRefused("not_enrolled", "this node is not enrolled with an HQ: enroll it "
                                            "first (shelter node --hq URL --enroll CODE)")
    return credential, meta.get(ctx.db, "hq_credential_node") or ctx.node_id, hq_id


def counted_origins(ctx: NodeContext, credential_node: str) -> list[str]:
    """The node's own ids HQ counts as its own (oldest first): those HQ's last welcome
    acknowledged under this credential, and the current one (a new epoch HQ has not seen
    yet); before any welcome, the credential's id and the current one."""
    acked = json.loads(meta.get(ctx.db, "sync_acked") or "{}")
    counted = set(acked) if credential_node in acked else {credential_node}
    return [o for o in own_origins(ctx.db.conn) if o in counted | {ctx.node_id}]


@dataclass
class Exported:
    bundle_id: str
    origins: dict[str, int]  # events per origin
    left: int  # events that did not fit (the next bundle carries them)


def export_bundle(ctx: NodeContext, path: Path) -> Exported:
    """Write the node's events HQ has not acknowledged (per origin, after ``sync_acked``)
    to ``path``, with the pull cursor HQ's reply starts from. As a session does after its
    welcome, it first publishes the card key of each id HQ has not had one from (once per
    id: sync/history.py), so HQ learns it by courier too."""
    credential, credential_node, hq_id = _enrollment(ctx)
    if Path(path).exists():
        raise BundleRefused("exists", f"{path} exists; choose a new file name")
    origins = counted_origins(ctx, credential_node)
    history.publish_card_keys(ctx.store, origins)
    acked = json.loads(meta.get(ctx.db, "sync_acked") or "{}")
    packer = zlib.compressobj(6)
    parts = [packer.compress(b'{"type":"courier_bundle","origins":[')]
    counts: dict[str, int] = {}
    room, size, left = MAX_EVENTS, 0, 0
    for origin in origins:
        after = int(acked.get(origin, 0))
        if room <= 0 or size >= MAX_INFLATED_BYTES // 2:
            left += _waiting(ctx, origin, after)
            continue
        head = ("," if counts else "") + f'{{"origin":{json.dumps(origin)},"events":['
        parts.append(packer.compress(head.encode()))
        counts[origin] = 0
        for row in ctx.db.query("SELECT * FROM events WHERE node_id = ? AND seq > ? "
                                "ORDER BY seq", [origin, after]):
            if room <= 0 or size >= MAX_INFLATED_BYTES // 2:
                left += 1
                continue
            text = (("," if counts[origin] else "") + protocol.wire_text(row)).encode()
            parts.append(packer.compress(text))
            size += len(text)
            counts[origin] += 1
            room -= 1
        parts.append(packer.compress(b"]}"))
    parts.append(packer.compress(b"]}"))
    parts.append(packer.flush())
    bundle_id = secrets.token_hex(16)
    header = {"kind": "bundle", "bundle_id": bundle_id, "node_id": ctx.node_id,
              "credential_node": credential_node, "shelter_id": ctx.shelter_id,
              "hq_id": hq_id, "created_at": utc_now_iso(), "events": sum(counts.values()),
              "origins": counts,
              "pull_cursor": int(meta.get(ctx.db, pull.CURSOR_KEY) or 0),
              "pull_hq_id": meta.get(ctx.db, "pull_hq_id")}
    write_new(path, seal(header, b"".join(parts), credential_hash(credential)))
    return Exported(bundle_id, counts, left)


def _waiting(ctx: NodeContext, origin: str, after: int) -> int:
    return int(ctx.db.execute("SELECT count(*) FROM events WHERE node_id = ? AND seq > ?",
                              [origin, after]).fetchone()[0])


@dataclass
class ReplyImported:
    bundle_id: str
    hq_id: str
    updates: int  # events in the reply
    applied: int
    quarantined: int
    acked: dict[str, int]  # what HQ holds of each of the node's ids, as the node now knows


def import_reply(ctx: NodeContext, path: Path) -> ReplyImported:
    """Apply HQ's reply: its updates as a pull would (the same authority rules), HQ's
    acknowledgements (only ever raised), the pull cursor. Refused (and recorded): a file
    that is not a reply, not for this node, not signed with its credential, not from its
    HQ, or imported before."""
    try:
        return _import_reply(ctx, path)
    except BundleRefused as refused:
        record_refusal(ctx, "reply", refused)
        raise


def _import_reply(ctx: NodeContext, path: Path) -> ReplyImported:
    credential, credential_node, hq_id = _enrollment(ctx)
    sealed = read(path)
    header = sealed.header
    if header["kind"] != "reply":
        raise BundleRefused("not_a_reply", "this is a node's bundle, not HQ's reply: it is "
                            "imported at HQ (shelter hq bundle import)", header)
    if header["credential_node"] != credential_node or header["shelter_id"] != ctx.shelter_id \
            or header["node_id"] not in own_origins(ctx.db.conn):
        raise BundleRefused("not_for_this_node", f"this reply is for node {header['node_id']} "
                            f"of shelter {header['shelter_id']}, not this one", header)
    body = unseal(sealed, credential_hash(credential))
    known = set(pull.hq_ids(ctx.db)) | {hq_id}
    their_ids = {str(i) for i in header["hq_ids"]} | {header["hq_id"]}
    if not known & their_ids:
        raise BundleRefused("wrong_hq", f"this reply is from HQ {header['hq_id']}, not this "
                                        f"node's HQ {hq_id}", header)
    updates = body.get("updates")
    if not isinstance(updates, list):
        raise BundleRefused("malformed", "the reply holds no updates", header)
    store = ctx.store
    with store.write() as db:
        when = imported_at(db, header["bundle_id"], header["node_id"])
        if when is not None:
            raise BundleRefused("already_imported", f"this reply was already imported at "
                                                    f"{when}", header, authentic=True)
        # HQ's ids first: the pull's rules take HQ's steps only from them.
        meta.put(db, "hq_ids", json.dumps(sorted(set(pull.hq_ids(db)) | their_ids)))
        cursor = int(header["cursor"])
        if meta.get(db, "pull_hq_id") == header["hq_id"]:
            cursor = max(cursor, int(meta.get(db, pull.CURSOR_KEY) or 0))
        else:  # HQ answered from the start (it is a new epoch of HQ, or the first answer)
            meta.put(db, "pull_hq_id", header["hq_id"])
        before = _quarantined(db)
        applied = pull.apply_pulled(store, updates, cursor)
        quarantined = _quarantined(db) - before
        acked = json.loads(meta.get(db, "sync_acked") or "{}")
        mine = set(own_origins(db.conn))
        for origin, seq in header["acked"].items():
            if origin in mine and isinstance(seq, int) and seq > int(acked.get(origin, 0)):
                acked[origin] = seq  # only ever raised: an older reply says less
        meta.put(db, "sync_acked", json.dumps(acked))
        insert_row(db, "sync_bundles", {
            "bundle_id": header["bundle_id"], "kind": "reply", "node_id": header["node_id"],
            "shelter_id": header["shelter_id"], "created_at": header["created_at"],
            "imported_at": utc_now_iso(), "events": len(updates), "applied": applied,
            "duplicates": len(updates) - applied - quarantined, "quarantined": quarantined,
            "refused": 0})
    return ReplyImported(header["bundle_id"], header["hq_id"], len(updates), applied,
                         quarantined, {o: int(s) for o, s in acked.items()})


def _quarantined(db: Any) -> int:
    return int(db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0])
