"""A standby at the shelter, the node's side: the code that enrolls one, its credential,
the frames both ends speak, and what the node streams to it: every row of its event log
after the standby's cursor, in the order the rows were stored (SQLite's rowid), with the
small state that is not events (keys, identity, the HQ enrollment). docs/sync-protocol.md
("A standby at the shelter") describes the exchange; sync/follower.py is the standby's
side, sync/standby_serve.py the node's session, sync/standby_link.py how a write waits.

A standby is as trusted as the node's own disk: a manager enrolled it with a code made on
the node, and it receives everything the node holds, secrets included, so that it can
carry on as the shelter's node (`shelter promote`).

Code format: ``SBY1.<secret: 20 Crockford characters>.<first 20 hex digits of the SHA-256
of the node's CA certificate (DER)>``; the pin tells the standby it reached that node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.errors import N_, Forbidden
from shelter.core.events import EventStore
from shelter.core.shortcode import ALPHABET
from sync import protocol
from sync.enrollment import ca_pin
from sync.pull import HELD

PREFIX = "SBY1"
CODE_HOURS = 24
PROTOCOL_VERSION = 1  # of this exchange (a standby's hello says which it speaks)
MAX_ROWS = 500  # rows in one frame
MAX_ROWS_BYTES = 256 * 1024  # of JSON in one frame (a larger row travels alone)
MAX_VALUE_BYTES = 64 * 1024  # a meta value or a file of the state

# The standby's messages (text frames; ``rows`` is binary: zlib-compressed JSON).
SHAPES: protocol.Shapes = {
    "standby_enroll": {"protocol": int, "standby_id": str, "code": str, "proof": str},
    "standby_enrolled": {"credential": str, "node_id": str, "shelter_id": str},
    "standby_hello": {"protocol": int, "standby_id": str, "credential": str, "cursor": int,
                      "cursor_event": str},
    "standby_welcome": {"protocol": int, "node_id": str, "shelter_id": str, "from": int,
                        "state": dict},
    "rows": {"top": int, "rows": list},
    "standby_ack": {"rowid": int},
    "ping": {},
    "pong": {},
    "error": {"code": str, "message": str},
}

# What the node needs to carry on as the shelter's node, beside its events: who it is,
# its card key, its HQ enrollment. Sent whenever it changes.
IDENTITY = ("shelter_id", "node_id", "previous_node_ids", "epoch", "epoch_reason",
            "card_signing_key", "inherited_node_ids", "hq_url", "hq_credential",
            "hq_credential_node", "hq_id", "hq_ids")  # not hq_url_learned: HQ tells it again
# How far it is with HQ and its clock: sent only with the frame that reaches the newest row
# (the pull cursor must never be ahead of the pulled events it stands for).
PROGRESS = ("sync_acked", "sync_last_ok_at", "sync_problems", "seq_last", "hlc_last",
            "pull_cursor", "pull_hq_id")
# Files of the data directory: HQ's pinned CA, and the node's own CA (so that tablets that
# trust the node trust the standby once it is promoted).
FILES = ("hq-ca.crt", "tls/ca.crt", "tls/ca.key")


class StandbyError(Forbidden, ValueError):
    """A standby refused (a wrong or used code, an unknown credential, another node).
    ``code`` is stable; ``message`` says why, in English (for the operator and the log)."""

    message = N_("The standby was refused.")

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code, detail=message)


def decode(frame: str | bytes | bytearray) -> dict[str, Any]:
    """One received frame of the standby's exchange, checked (protocol.ProtocolError)."""
    return protocol.decode(frame, SHAPES)


def error(code: str, message: str) -> str:
    return protocol.encode({"type": "error", "code": code, "message": message})


# --- codes and credentials, kept at the node ------------------------------------------------

def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_standby_id() -> str:
    """A standby's own id: S and nine characters of the short-code alphabet."""
    return "S" + "".join(secrets.choice(ALPHABET) for _ in range(9))


def issue_code(db: Database, ca_der: bytes) -> str:
    secret = "".join(secrets.choice(ALPHABET) for _ in range(20))
    now = datetime.now(UTC)
    db.execute("INSERT INTO standby_codes (code_hash, created_at, expires_at) VALUES (?, ?, ?)",
               [_hash(secret), now.isoformat(), (now + timedelta(hours=CODE_HOURS)).isoformat()])
    return f"{PREFIX}.{secret}.{ca_pin(ca_der)}"


def parse_code(code: str) -> tuple[str, str]:
    """(secret, CA pin) from a typed code."""
    parts = code.strip().upper().split(".")
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 20 or len(parts[2]) != 20:
        raise StandbyError("bad_code", "this is not a standby code (SBY1.…): make one on the "
                                       "node with `shelter standby-code`")
    return parts[1], parts[2]


def proof_ok(proof: object) -> bool:
    return isinstance(proof, str) and 32 <= len(proof) <= 256


def _derived(db: Database, secret: str, standby_id: str, proof: str) -> str:
    """The credential a code, a standby id and that standby's proof make, under a key in
    the node's meta (the proof is never stored here)."""
    key = meta.once(db, "standby_key", lambda: secrets.token_hex(32))
    mac = hmac.new(bytes.fromhex(key), "\n".join((_hash(secret), standby_id, proof)).encode(),
                   hashlib.sha256)
    return "sbc_" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def spend(db: Database, secret: str, standby_id: str, proof: str) -> str:
    """Spend a code for a standby's credential. A code works once, within its day; the
    standby it was spent for, asking again with the same proof (its answer was lost), gets
    the same credential again, anyone else ``used_code``. A node has one standby: the
    credential before it is revoked."""
    if not protocol.valid_node_id(standby_id) or not proof_ok(proof):
        raise StandbyError("malformed", "a standby enrolls with its id (letters and digits) "
                                        "and a proof of 32 to 256 characters")
    row = db.execute("SELECT expires_at, used_at, standby_id FROM standby_codes "
                     "WHERE code_hash = ?", [_hash(secret)]).fetchone()
    if row is None:
        raise StandbyError("unknown_code", "this node did not make this standby code")
    expired = datetime.fromisoformat(row[0]) < datetime.now(UTC)
    credential = _derived(db, secret, standby_id, proof)
    if row[1] is not None:
        if not expired and row[2] == standby_id \
                and credential_state(db, standby_id, credential) == "ok":
            return credential
        raise StandbyError("used_code", "this standby code was already used: make a new one "
                                        "on the node with `shelter standby-code`")
    if expired:
        raise StandbyError("expired_code", "this standby code has expired: make a new one")
    now = datetime.now(UTC).isoformat()
    db.execute("UPDATE standby_codes SET used_at = ?, standby_id = ? WHERE code_hash = ?",
               [now, standby_id, _hash(secret)])
    db.execute("UPDATE standby_credentials SET revoked = 1")
    db.execute("INSERT OR REPLACE INTO standby_credentials (standby_id, credential_hash, "
               "created_at, revoked) VALUES (?, ?, ?, 0)", [standby_id, _hash(credential), now])
    return credential


def enroll(store: EventStore, secret: str, standby_id: str, proof: str) -> str:
    """``spend``, committed."""
    with store.write() as db:
        return spend(db, secret, standby_id, proof)


def credential_state(db: Database, standby_id: str, credential: str) -> str:
    """"ok", "revoked" (the right credential, replaced by a newer standby's) or "unknown"."""
    row = db.execute("SELECT credential_hash, revoked FROM standby_credentials "
                     "WHERE standby_id = ?", [standby_id]).fetchone()
    digest = _hash(credential)
    if row is None or not hmac.compare_digest(row[0], digest):
        return "unknown"
    return "revoked" if row[1] else "ok"


def has_standby(db: Database) -> bool:
    """Whether a standby holds a credential of this node."""
    return db.execute("SELECT 1 FROM standby_credentials WHERE revoked = 0").fetchone() \
        is not None


# --- what the node streams --------------------------------------------------------------

def top(db: Database) -> int:
    """The newest row of the event log (0: none)."""
    return int(db.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0])


def start_from(db: Database, cursor: int, cursor_event: str) -> int:
    """Where the stream starts for a standby holding the rows up to ``cursor``, the last of
    them ``cursor_event``: there; or from the beginning when that is not this node's row at
    that place (the node was restored from a backup since, or the standby holds another
    copy), and the standby then skips the rows it has."""
    if cursor <= 0:
        return 0
    row = db.execute("SELECT event_id FROM events WHERE rowid = ?", [cursor]).fetchone()
    return cursor if row is not None and row[0] == cursor_event else 0


_S = json.encoder.encode_basestring
_ROWS = ("SELECT e.rowid, e.event_id, e.node_id, e.seq, e.hlc, e.type, e.schema_version, "
         "e.payload, e.recorded_at, f.reason FROM events e LEFT JOIN sync_flags f "
         "USING (event_id) WHERE e.rowid > ? ORDER BY e.rowid LIMIT ?")


def _row_text(r: tuple[Any, ...]) -> str:
    """A row as it travels: the event whole (a local-only one too, with its payload), its
    rowid, and ``held`` for a move the node keeps without applying (sync/pull.py)."""
    held = ',"held":true' if r[9] == HELD else ""
    return (f'{{"rowid":{int(r[0])},"event_id":{_S(r[1])},"node_id":{_S(r[2])},'
            f'"seq":{int(r[3])},"hlc":{_S(r[4])},"type":{_S(r[5])},'
            f'"schema_version":{int(r[6])},"payload":{r[7]},"recorded_at":{_S(r[8])}{held}}}')


class Stream:
    """What one standby session is sent: the rows after a cursor, and the state when it
    changed since it was last sent (``db``: a connection of the session's own)."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db, self.data_dir = db, data_dir
        self._sent: dict[str, str] = {}  # part of the state -> the digest last sent
        self._files: dict[str, tuple[tuple[int, int], str | None]] = {}

    def state(self, progress: bool) -> dict[str, Any]:
        """The state that is not events, as it is now (``progress``: with PROGRESS)."""
        keys = IDENTITY + (PROGRESS if progress else ())
        marks = ",".join("?" * len(keys))
        values = dict(self.db.execute(f"SELECT key, value FROM meta WHERE key IN ({marks})",
                                      list(keys)).fetchall())
        card_keys = [list(r) for r in self.db.execute(
            "SELECT node_id, public_key, shelter_id FROM card_keys ORDER BY node_id")]
        files = {name: text for name in FILES if (text := self._file(name)) is not None}
        return {"meta": values, "card_keys": card_keys, "files": files}

    def _file(self, name: str) -> str | None:
        path = self.data_dir / name
        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        known = self._files.get(name)
        if known is None or known[0] != stamp:
            text = path.read_text() if info.st_size <= MAX_VALUE_BYTES else None
            known = (stamp, text)
            self._files[name] = known
        return known[1]

    def changed(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """The parts of ``state`` that differ from what this session sent, noted as sent."""
        out: dict[str, Any] = {}
        for part, value in state.items():
            if part == "meta":
                for key, text in value.items():
                    if self._sent.get(f"meta:{key}") != text:
                        out.setdefault("meta", {})[key] = text
                        self._sent[f"meta:{key}"] = text
                continue
            digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
            if self._sent.get(part) != digest:
                out[part] = value
                self._sent[part] = digest
        return out or None

    def next_frame(self, after: int) -> tuple[bytes | None, int]:
        """The next frame after row ``after`` (rows, the state if it changed, the newest
        row), read in one transaction; and the last row it holds. None: nothing to send."""
        conn = self.db.conn
        conn.execute("BEGIN")
        try:
            rows = conn.execute(_ROWS, [after, MAX_ROWS]).fetchall()
            newest = top(self.db)
            texts: list[str] = []
            size = 0
            for r in rows:
                text = _row_text(r)
                size += len(text.encode())
                if texts and size > MAX_ROWS_BYTES:
                    break
                texts.append(text)
            last = int(rows[len(texts) - 1][0]) if texts else after
            state = self.changed(self.state(progress=last >= newest))
        finally:
            conn.execute("COMMIT")
        if not texts and state is None:
            return None, after
        head = f'{{"type":"rows","top":{newest},'
        if state is not None:
            head += f'"state":{json.dumps(state, ensure_ascii=False)},'
        body = head + '"rows":[' + ",".join(texts) + "]}"
        return zlib.compress(body.encode(), 1), last
