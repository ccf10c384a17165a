"""Staff accounts, bearer tokens and the audit log.

Passwords are hashed with scrypt (memory-hard, in the standard library); tokens are random
and stored only as their SHA-256. Roles on a node: kiosk < volunteer < manager.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from .events import Event, EventStore, insert_row, new_id, projection, utc_now_iso

NODE_ROLES = ("kiosk", "volunteer", "manager")
HQ_ROLES = ("operator", "admin")
RANK = {"kiosk": 1, "volunteer": 2, "manager": 3, "operator": 2, "admin": 3}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Principal:
    name: str  # username, or "token:<id>"
    role: str

    def can(self, role: str) -> bool:
        return RANK.get(self.role, 0) >= RANK[role]


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, salt, digest = stored.split("$")
        actual = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32,
                                n=int(n), r=_SCRYPT["r"], p=_SCRYPT["p"])
    except ValueError:
        return False
    return hmac.compare_digest(actual.hex(), digest)


# What an unknown user's password is checked against: the same scrypt work as a real
# check, and no password can match a random digest (nothing to compute at import).
_DUMMY_HASH = f"scrypt${_SCRYPT['n']}${secrets.token_hex(16)}${secrets.token_hex(32)}"


def add_user(store: EventStore, username: str, password: str, role: str) -> str:
    if role not in NODE_ROLES + HQ_ROLES:
        raise ValueError(f"unknown role {role!r}")
    if not username or len(username) > 40:
        raise ValueError("username must be 1 to 40 characters")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    if store.db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
        raise ValueError(f"user {username!r} exists")
    user_id = new_id()
    store.append("user_added", {"user_id": user_id, "username": username, "role": role,
                                "password_hash": hash_password(password)})
    return user_id


def authenticate(db: Database, username: str, password: str) -> Principal | None:
    row = db.execute("SELECT password_hash, role, disabled FROM users WHERE username = ?",
                     [username]).fetchone()
    if row is None:
        check_password(password, _DUMMY_HASH)  # same work either way: no user enumeration
        return None
    if not check_password(password, row[0]) or row[2]:
        return None
    return Principal(username, row[1])


# Sign-in attempts that fail: this many per user name, or per address, in the window.
FAILURES_PER_USER = 5
FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = timedelta(minutes=15)


def too_many_failures(db: Database, username: str, ip: str) -> bool:
    """Guessing passwords is slowed to a few tries per quarter hour. Counted from the audit
    log, so every server process of the node (HTTP and HTTPS) shares the count."""
    since = (datetime.now(UTC) - FAILURE_WINDOW).isoformat(timespec="milliseconds")
    by_user = db.execute("SELECT count(*) FROM audit_log WHERE action = 'login_failed' "
                         "AND actor = ? AND at >= ?", [username or "-", since]).fetchone()[0]
    by_ip = db.execute("SELECT count(*) FROM audit_log WHERE action = 'login_failed' "
                       "AND detail = ? AND at >= ?", [f"ip={ip}", since]).fetchone()[0]
    return bool(by_user >= FAILURES_PER_USER or by_ip >= FAILURES_PER_ADDRESS)


def set_user_disabled(store: EventStore, username: str, disabled: bool) -> None:
    if store.db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone() is None:
        raise ValueError(f"no user {username!r}")
    store.append("user_disabled" if disabled else "user_enabled", {"username": username})


def list_users(db: Database) -> list[dict[str, object]]:
    return list(db.query("SELECT username, role, created_at, disabled FROM users "
                         "ORDER BY disabled, role DESC, username"))


def create_token(store: EventStore, role: str, label: str = "") -> str:
    if role not in NODE_ROLES + HQ_ROLES:
        raise ValueError(f"unknown role {role!r}")
    token = "sht_" + secrets.token_urlsafe(32)
    store.append("token_created", {"token_id": new_id(), "role": role, "label": label,
                                   "token_hash": hashlib.sha256(token.encode()).hexdigest()})
    return token


def principal_for_token(db: Database, token: str) -> Principal | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = db.execute("SELECT token_id, role FROM tokens WHERE token_hash = ? AND revoked = 0",
                     [digest]).fetchone()
    return Principal(f"token:{row[0]}", row[1]) if row else None


def audit(store: EventStore, actor: str, action: str, subject: str, detail: str = "") -> None:
    """Record who looked at or changed what. Not an event: it never leaves the node."""
    with store.write() as db:
        insert_row(db, "audit_log", {"at": utc_now_iso(), "actor": actor, "action": action,
                                     "subject": subject, "detail": detail})


@projection("user_added")
def _apply_user_added(db: Database, event: Event) -> None:
    p = event.payload
    db.table("users").insert({"user_id": p["user_id"], "username": p["username"],
                              "role": p["role"], "password_hash": p["password_hash"],
                              "created_at": event.recorded_at})


@projection("token_created")
def _apply_token_created(db: Database, event: Event) -> None:
    p = event.payload
    db.table("tokens").insert({"token_id": p["token_id"], "token_hash": p["token_hash"],
                               "role": p["role"], "label": p["label"],
                               "created_at": event.recorded_at})


@projection("user_disabled")
def _apply_user_disabled(db: Database, event: Event) -> None:
    db.execute("UPDATE users SET disabled = 1 WHERE username = ?", [event.payload["username"]])


@projection("user_enabled")
def _apply_user_enabled(db: Database, event: Event) -> None:
    db.execute("UPDATE users SET disabled = 0 WHERE username = ?", [event.payload["username"]])
