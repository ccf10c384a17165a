"""Enrollment: HQ hands out a one-time code for a shelter; the node redeems it for its own
credential. The code also pins HQ's certificate authority, so a node enrolling over a LAN
with no public CA knows it is talking to the HQ that issued the code.

Code format: ``ENR1.<secret: 20 Crockford characters>.<first 20 hex digits of the SHA-256
of HQ's CA certificate (DER)>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from shelter.core import authority, meta
from shelter.core.errors import N_, Forbidden
from shelter.core.events import EventStore
from shelter.core.shortcode import ALPHABET

PREFIX = "ENR1"
PIN_LENGTH = 20
CODE_DAYS = 7


class EnrollmentError(Forbidden, ValueError):
    """An enrollment refused. ``code`` is stable; ``message`` says why, in English (read by
    the node's operator and the log)."""

    message = N_("The enrollment code was refused.")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, detail=message)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def ca_pin(ca_der: bytes) -> str:
    """The part of a CA certificate's SHA-256 fingerprint (of its DER form) a code carries."""
    return hashlib.sha256(ca_der).hexdigest()[:PIN_LENGTH].upper()


def issue_code(db: Database, shelter_id: str, ca_der: bytes, replace: bool = False) -> str:
    """A new one-time code for ``shelter_id``'s node. ``replace``: for a new laptop of a
    shelter whose node is gone; its credential may download the shelter's history
    (sync/history.py)."""
    secret = "".join(secrets.choice(ALPHABET) for _ in range(20))
    now = datetime.now(UTC)
    db.execute("INSERT INTO hq_enrollments (code_hash, shelter_id, created_at, expires_at, "
               "replacement) VALUES (?, ?, ?, ?, ?)",
               [_hash(secret), shelter_id, now.isoformat(),
                (now + timedelta(days=CODE_DAYS)).isoformat(), int(replace)])
    return f"{PREFIX}.{secret}.{ca_pin(ca_der)}"


def parse_code(code: str) -> tuple[str, str]:
    """(secret, CA pin) from a typed or scanned code."""
    parts = code.strip().upper().split(".")
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 20 \
            or len(parts[2]) != PIN_LENGTH:
        raise EnrollmentError("bad_code", "this is not an enrollment code (ENR1.…)")
    return parts[1], parts[2]


PROOF_MIN = 32  # characters of the node's enrollment proof (secrets.token_urlsafe(32): 43)


def redeem(db: Database, secret: str, node_id: str, shelter_id: str | None,
           hq_id: str | None = None, proof: str | None = None) -> str:
    """``spend``, for the credential alone."""
    return spend(db, secret, node_id, shelter_id, hq_id, proof)[0]


def spend(db: Database, secret: str, node_id: str, shelter_id: str | None,
          hq_id: str | None = None, proof: str | None = None,
          card_key: str | None = None) -> tuple[str, str]:
    """Spend a code: returns the node's new credential and the code's shelter. Codes work
    once, for one shelter, for a week, for a node id HQ has never seen. ``shelter_id``
    None: the code's shelter (a fresh node takes it).

    ``proof``: a random secret the node sent with its first try and keeps until enrolled. The
    credential is then derived from it (an HMAC under HQ's own key), so the node that
    redeemed the code, retrying because HQ's answer was lost, gets the same credential
    again; anyone else (the code alone, or with the node id, which cards show) meets
    ``used_code``, as before."""
    row = db.execute("SELECT shelter_id, expires_at, used_at, node_id, replacement "
                     "FROM hq_enrollments WHERE code_hash = ?", [_hash(secret)]).fetchone()
    if row is None:
        raise EnrollmentError("unknown_code", "HQ did not issue this enrollment code")
    expired = datetime.fromisoformat(row[1]) < datetime.now(UTC)
    if row[2] is not None:
        again = _again(db, secret, node_id, proof, row[3]) if not expired else None
        if again is None:
            raise EnrollmentError("used_code", "this enrollment code was already used")
        return again, row[0]
    if expired:
        raise EnrollmentError("expired_code", "this enrollment code has expired")
    if shelter_id is not None and row[0] != shelter_id:
        raise EnrollmentError("wrong_shelter",
                              f"this code is for shelter {row[0]}, not {shelter_id}")
    shelter_id = row[0]
    if db.execute("SELECT 1 FROM hq_credentials WHERE node_id = ?", [node_id]).fetchone() \
            or unbound_but_seen(db, node_id, hq_id):
        # Bound to a credential (or seen) already, revoked or not: whoever held it may
        # have used its sequence numbers. A node enrolling again does so under a new id.
        raise EnrollmentError("node_id_taken", f"node id {node_id} is already in use at HQ")
    credential = _derived(db, secret, node_id, proof) if proof_ok(proof) \
        else "shc_" + secrets.token_urlsafe(32)
    now = datetime.now(UTC).isoformat()
    db.execute("UPDATE hq_enrollments SET used_at = ?, node_id = ? WHERE code_hash = ?",
               [now, node_id, _hash(secret)])
    db.execute("INSERT INTO hq_credentials (node_id, shelter_id, credential_hash, created_at, "
               "replacement) VALUES (?, ?, ?, ?, ?)",
               [node_id, shelter_id, _hash(credential), now, row[4]])
    db.execute("INSERT OR IGNORE INTO sync_origins (node_id, shelter_id) VALUES (?, ?)",
               [node_id, shelter_id])
    if authority.valid_card_key(card_key):
        # The key the node signs its cards with, for this new id, bound by the code: a node
        # replacing it verifies the shelter's old cards (sync/history.py).
        db.execute("INSERT OR IGNORE INTO card_keys (node_id, public_key, shelter_id) "
                   "VALUES (?, ?, ?)", [node_id, card_key, shelter_id])
    return credential, shelter_id


def enrolled_extras(db: Database, node_id: str, card_key: object) -> dict[str, bool]:
    """What an ``enrolled`` answer says beyond the credential: whether the code was a
    replacement (the node rebuilds from HQ's history) and whether HQ holds the node's
    card key as it sent it (then the node need not publish it)."""
    row = db.execute("SELECT public_key FROM card_keys WHERE node_id = ?", [node_id]).fetchone()
    return {"replace": is_replacement(db, node_id),
            "card_key": row is not None and row[0] == card_key}


def proof_ok(proof: object) -> bool:
    """A node's enrollment proof: text of 32 to 256 characters."""
    return isinstance(proof, str) and PROOF_MIN <= len(proof) <= 256


def _derived(db: Database, secret: str, node_id: str, proof: str | None) -> str:
    """The credential a code, a node id and that node's proof make, under HQ's key (kept
    in HQ's meta; the proof is never stored, so HQ's database alone cannot remake it)."""
    key = meta.once(db, "enrollment_key", lambda: secrets.token_hex(32))
    mac = hmac.new(bytes.fromhex(key), "\n".join((_hash(secret), node_id, str(proof))
                                                  ).encode(), hashlib.sha256)
    return "shc_" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _again(db: Database, secret: str, node_id: str, proof: str | None,
           bound_node: str | None) -> str | None:
    """The credential again, for the node the code was spent for, proving it with the same
    proof, while the code is still within its week and the credential is not revoked."""
    if not proof_ok(proof) or bound_node is None \
            or not hmac.compare_digest(bound_node, node_id):
        return None
    row = db.execute("SELECT credential_hash, revoked FROM hq_credentials WHERE node_id = ?",
                     [node_id]).fetchone()
    credential = _derived(db, secret, node_id, proof)
    if row is None or row[1] or not hmac.compare_digest(row[0], _hash(credential)):
        return None
    return credential


def check_credential(db: Database, node_id: str, shelter_id: str, credential: str) -> bool:
    return credential_state(db, node_id, shelter_id, credential) == "ok"


def credential_state(db: Database, node_id: str, shelter_id: str, credential: str) -> str:
    """"ok", "revoked" (the right credential, revoked by HQ: only its holder learns that)
    or "unknown"."""
    row = db.execute("SELECT shelter_id, credential_hash, revoked FROM hq_credentials "
                     "WHERE node_id = ?", [node_id]).fetchone()
    digest = _hash(credential)  # the same work either way
    if row is None or row[0] != shelter_id or not hmac.compare_digest(row[1], digest):
        return "unknown"
    return "revoked" if row[2] else "ok"


def chain(db: Database, node_id: str) -> list[str]:
    """The node ids that share this node's credential: its epochs, oldest first."""
    row = db.execute("SELECT credential_hash, shelter_id FROM hq_credentials WHERE node_id = ?",
                     [node_id]).fetchone()
    if row is None:
        return []
    return [r[0] for r in db.execute(
        "SELECT node_id FROM hq_credentials WHERE credential_hash = ? AND shelter_id = ? "
        "AND revoked = 0 ORDER BY created_at, node_id", [row[0], row[1]])]


def unbound_but_seen(db: Database, node_id: str, hq_id: str | None) -> bool:
    """Whether an id with no credential is nevertheless taken: HQ's own, or one whose
    events or sync state this store already holds."""
    if node_id == hq_id:
        return True
    return bool(db.execute("SELECT 1 FROM sync_origins WHERE node_id = ?", [node_id]).fetchone()
                or db.execute("SELECT 1 FROM events WHERE node_id = ? LIMIT 1",
                              [node_id]).fetchone())


def epoch_refusal(db: Database, credential_node: str, node_id: str,
                  hq_id: str | None) -> str | None:
    """Why a node presenting ``credential_node``'s credential may not speak as ``node_id``,
    or None. A node id belongs to the credential that first presented it: an epoch claim
    (a restored or copied node's new id) is accepted only for an id never seen before, or
    for one already bound to this same credential."""
    if node_id == credential_node:
        return None
    if epochs(db, credential_node) >= MAX_EPOCHS:
        return f"this credential already has {MAX_EPOCHS} node ids: enroll the node again"
    mine = db.execute("SELECT credential_hash FROM hq_credentials WHERE node_id = ?",
                      [credential_node]).fetchone()
    theirs = db.execute("SELECT credential_hash FROM hq_credentials WHERE node_id = ?",
                        [node_id]).fetchone()
    if theirs is not None:
        if mine is not None and hmac.compare_digest(theirs[0], mine[0]):
            return None
        return f"node id {node_id} belongs to another credential"
    if unbound_but_seen(db, node_id, hq_id):
        return f"node id {node_id} is already in use at HQ"
    return None


MAX_EPOCHS = 32  # node ids per credential: restores and copies, not an endless supply


def epochs(db: Database, node_id: str) -> int:
    return int(db.execute(
        "SELECT count(*) FROM hq_credentials WHERE credential_hash = (SELECT credential_hash "
        "FROM hq_credentials WHERE node_id = ?)", [node_id]).fetchone()[0])


def revoke(db: Database, node_id: str) -> list[str]:
    """Revoke the credential ``node_id`` presents, for all its epochs; returns their ids
    (empty: no such node). The shelter's history stays; it may be enrolled again."""
    row = db.execute("SELECT credential_hash FROM hq_credentials WHERE node_id = ?",
                     [node_id]).fetchone()
    if row is None:
        return []
    ids = [r[0] for r in db.execute("SELECT node_id FROM hq_credentials WHERE "
                                    "credential_hash = ? ORDER BY node_id", [row[0]])]
    db.execute("UPDATE hq_credentials SET revoked = 1 WHERE credential_hash = ?", [row[0]])
    return ids


def is_revoked(db: Database, node_id: str) -> bool:
    row = db.execute("SELECT revoked FROM hq_credentials WHERE node_id = ?",
                     [node_id]).fetchone()
    return row is None or bool(row[0])


def is_replacement(db: Database, node_id: str) -> bool:
    """Whether ``node_id``'s credential came from a replacement code (`--replace`)."""
    row = db.execute("SELECT replacement FROM hq_credentials WHERE node_id = ?",
                     [node_id]).fetchone()
    return row is not None and bool(row[0])


REBUILD_DAYS = CODE_DAYS  # how long a replacement credential may download its history


def may_rebuild(db: Database, origins: list[str]) -> bool:
    """Whether a session speaking for ``origins`` (one credential's ids) may download its
    shelter's history: only a replacement credential, not revoked, within REBUILD_DAYS of
    being redeemed. A stolen laptop's credential, or the replacement's own a month on,
    gets nothing it does not hold already."""
    if not origins or len(origins) > MAX_EPOCHS:
        return False
    since = (datetime.now(UTC) - timedelta(days=REBUILD_DAYS)).isoformat()
    return db.execute(f"SELECT 1 FROM hq_credentials WHERE node_id IN "
                      f"({','.join('?' * len(origins))}) AND replacement = 1 AND revoked = 0 "
                      "AND created_at >= ?", [*origins, since]).fetchone() is not None


def add_epoch(db: Database, credential_node: str, node_id: str) -> None:
    """A restored or copied node continues under a new id with the same credential
    (``epoch_refusal`` said it may)."""
    # Revoked travels with the credential: an epoch added while a revocation runs (in
    # another transaction, one after the other) is born revoked, never a way around it.
    db.execute("INSERT OR IGNORE INTO hq_credentials (node_id, shelter_id, credential_hash, "
               "created_at, revoked) SELECT ?, shelter_id, credential_hash, ?, revoked "
               "FROM hq_credentials WHERE node_id = ?",
               [node_id, datetime.now(UTC).isoformat(), credential_node])
    db.execute("INSERT OR IGNORE INTO sync_origins (node_id, shelter_id) SELECT ?, shelter_id "
               "FROM hq_credentials WHERE node_id = ?", [node_id, credential_node])


# Each in a write transaction of its own, for HQ's /sync endpoint and its pages.

def enroll(store: EventStore, secret: str, node_id: str, shelter_id: str | None,
           hq_id: str | None, proof: str | None = None,
           card_key: str | None = None) -> tuple[str, str]:
    """``redeem`` the code, committed: the node's new credential and its shelter
    (EnrollmentError: why not)."""
    with store.write() as db:
        return spend(db, secret, node_id, shelter_id, hq_id, proof, card_key)


def claim_epoch(store: EventStore, credential_node: str, node_id: str,
                hq_id: str | None) -> None:
    """Let ``credential_node``'s credential speak as ``node_id`` too (a restored or copied
    node's new epoch), committed. EnrollmentError ``node_id_taken`` when the id is not its
    to take; ``revoked`` when the credential was revoked meanwhile (the epoch stays, born
    revoked)."""
    code, refusal = "node_id_taken", None
    with store.write() as db:
        refusal = epoch_refusal(db, credential_node, node_id, hq_id)
        if refusal is None:
            add_epoch(db, credential_node, node_id)
            if is_revoked(db, node_id):  # revoked while the node's hello was read
                code, refusal = "revoked", "HQ has revoked this node's credential"
    if refusal is not None:
        raise EnrollmentError(code, refusal)


def revoke_node(store: EventStore, node_id: str) -> list[str]:
    """``revoke``, committed: the ids of the epochs revoked."""
    with store.write() as db:
        return revoke(db, node_id)


def nodes_of(db: Database, shelter_id: str) -> list[dict[str, object]]:
    """The nodes enrolled for a shelter (every epoch), with what HQ last heard of each."""
    return list(db.query(
        """SELECT c.node_id, c.created_at, c.revoked, o.acked_seq, o.last_batch_at,
                  o.last_seen_at
           FROM hq_credentials c LEFT JOIN sync_origins o USING (node_id)
           WHERE c.shelter_id = ? ORDER BY c.created_at DESC, c.node_id""", [shelter_id]))
