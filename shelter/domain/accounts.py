"""Staff accounts, roles, bearer tokens and the audit log.

Passwords are hashed with scrypt (memory-hard, in the standard library); tokens are random
and stored only as their SHA-256. Each side has its own roles, ranked within it: on a node
kiosk < volunteer < manager, at HQ operator < admin. A role of the other side reaches
nothing (sessions and sign-in: shelter/domain/signin.py).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import Event, EventStore, new_id, projection, utc_now_iso
from shelter.core.sql import insert_row

NODE_ROLES = ("kiosk", "volunteer", "manager")
HQ_ROLES = ("operator", "admin")
ROLES = {"node": NODE_ROLES, "hq": HQ_ROLES}
# role -> (the side it belongs to, its rank there)
_PLACE = {role: (side, rank) for side, roles in ROLES.items()
          for rank, role in enumerate(roles, 1)}
SIDE_NAMES = {"node": "a shelter node", "hq": "HQ"}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class RoleError(InvalidInput, ValueError):
    """A role that does not exist, or exists only on the other side. ``str()`` says which
    roles this side has, in English (for the CLI)."""

    code = "invalid_role"
    message = N_("This role does not exist here.")

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


@dataclass(frozen=True)
class Principal:
    name: str  # username, or "token:<id>"
    role: str

    def can(self, role: str) -> bool:
        """At least ``role``, compared within one side only: no node role reaches an HQ
        route, and no HQ role a node's."""
        mine, wanted = _PLACE.get(self.role), _PLACE[role]
        return mine is not None and mine[0] == wanted[0] and mine[1] >= wanted[1]


def side_of(db: Database) -> str:
    """"node" or "hq": what this database belongs to."""
    return meta.get(db, "role") or "node"


def check_role(db: Database, role: str) -> None:
    """Refuse a role that this side does not have, saying which roles it has."""
    side = side_of(db)
    if role in ROLES[side]:
        return
    if role in _PLACE:
        other = _PLACE[role][0]
        raise RoleError(f"{role!r} is a role on {SIDE_NAMES[other]}, not on "
                        f"{SIDE_NAMES[side]}; roles here: {', '.join(ROLES[side])}")
    raise RoleError(f"unknown role {role!r}; roles here: {', '.join(ROLES[side])}")


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

MIN_PASSWORD = 8
TOO_COMMON = "This password is too common."
# Rows of keys and other sequences people type as a password, forwards and backwards: any
# stretch of one of them is refused.
_KEY_RUNS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertyuiopasdfghjklzxcvbnm",
         "abcdefghijklmnopqrstuvwxyz", "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
         "qazwsxedcrfvtgbyhnujmikolp", "!@#$%^&*()", "1q2w3e4r5t6y7u8i9o0p",
         "zaq1xsw2cde3vfr4bgt5", "qweasdzxc", "147258369", "789456123", "159753")
_RUNS = _KEY_RUNS + tuple(run[::-1] for run in _KEY_RUNS)


@cache
def common_passwords() -> frozenset[str]:
    """The built-in list (shelter/domain/common_passwords.txt): one a line, '#' starts a comment."""
    text = (Path(__file__).parent / "common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def is_common_password(username: str, password: str) -> bool:
    """The commonest passwords, the user name itself (also repeated, or with digits),
    runs of keys or letters, and one piece repeated; case does not matter, nor digits or
    signs tacked on at the end ("Password123!" is "password")."""
    typed = password.lower()
    base = re.sub(r"[\d\W_]+$", "", typed)
    name = username.lower()
    if typed in common_passwords() or (len(base) >= 4 and base in common_passwords()):
        return True
    if len(name) >= 3 and not re.search(r"[^\W\d_]", typed.replace(name, "")):
        return True  # the user name, alone or repeated, with only digits or signs besides
    if len(set(typed)) <= 2 or re.fullmatch(r"(.+?)\1+.{0,2}", typed):
        return True
    return any(typed in run or (len(base) >= 6 and base in run) for run in _RUNS)


def add_user(store: EventStore, username: str, password: str, role: str) -> str:
    check_role(store.db, role)
    if not username or len(username) > 40:
        raise ValueError("username must be 1 to 40 characters")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must be at least {MIN_PASSWORD} characters")
    if is_common_password(username, password):
        raise ValueError(TOO_COMMON)
    if username_taken(store.db, username):
        raise ValueError(f"user {username!r} exists")
    user_id = new_id()
    store.append("user_added", {"user_id": user_id, "username": username, "role": role,
                                "password_hash": hash_password(password)})
    return user_id


def username_taken(db: Database, username: str) -> bool:
    return db.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone() \
        is not None


def check_new_user(db: Database, username: str, password: str, role: str) -> None:
    """What a manager's form for a new account must hold, said field by field
    (InvalidInput with ``fields``): a user name of 1 to 40 printable characters without
    spaces that nobody has, a password long and uncommon enough, a role of this side."""
    fields: dict[str, str] = {}
    if not username or len(username) > 40 or not username.isprintable() or " " in username:
        fields["username"] = N_("1 to 40 letters or digits, without spaces.")
    elif username_taken(db, username):
        fields["username"] = N_("This user name is taken.")
    if len(password) < MIN_PASSWORD:
        fields["password"] = N_("At least 8 characters.")
    elif is_common_password(username, password):
        fields["password"] = N_("This password is too common.")
    if role not in ROLES[side_of(db)]:
        fields["role"] = N_("Choose one of the options.")
    if fields:
        raise InvalidInput(fields=fields)


def authenticate(db: Database, username: str, password: str, side: str) -> Principal | None:
    """The account, if the password is right, it is not disabled, and its role is one of
    ``side``'s (an account with the other side's role signs in nowhere)."""
    row = db.execute("SELECT password_hash, role, disabled FROM users WHERE username = ?",
                     [username]).fetchone()
    if row is None:
        check_password(password, _DUMMY_HASH)  # same work either way: no user enumeration
        return None
    if not check_password(password, row[0]) or row[2] or row[1] not in ROLES[side]:
        return None
    return Principal(username, row[1])


def set_user_disabled(store: EventStore, username: str, disabled: bool) -> None:
    if not username_taken(store.db, username):
        raise ValueError(f"no user {username!r}")
    store.append("user_disabled" if disabled else "user_enabled", {"username": username})


def list_users(db: Database) -> list[dict[str, object]]:
    return list(db.query("SELECT username, role, created_at, disabled FROM users "
                         "ORDER BY disabled, role DESC, username"))


def create_token(store: EventStore, role: str, label: str = "") -> str:
    check_role(store.db, role)
    token = "sht_" + secrets.token_urlsafe(32)
    store.append("token_created", {"token_id": new_id(), "role": role, "label": label,
                                   "token_hash": hashlib.sha256(token.encode()).hexdigest()})
    return token


def principal_for_token(db: Database, token: str, side: str) -> Principal | None:
    """The token's principal, unless it is revoked or its role is not one of ``side``'s."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = db.execute("SELECT token_id, role FROM tokens WHERE token_hash = ? AND revoked = 0",
                     [digest]).fetchone()
    if row is None or row[1] not in ROLES[side]:
        return None
    return Principal(f"token:{row[0]}", row[1])


def audit(store: EventStore, actor: str, action: str, subject: str, detail: str = "") -> None:
    """Record who looked at or changed what. Not an event: it never leaves the node."""
    with store.write() as db:
        insert_row(db, "audit_log", {"at": utc_now_iso(), "actor": actor, "action": action,
                                     "subject": subject, "detail": detail})


AUDIT_PAGE = 100


def audit_entries(db: Database, actor: str = "", before: str = "",
                  limit: int = AUDIT_PAGE) -> list[dict[str, Any]]:
    """The audit log, newest first: at most ``limit`` rows, only ``actor``'s when given,
    only those older than row ``before`` (an audit_id, in digits) when given."""
    clauses: list[str] = []
    params: list[str] = []
    if actor:
        clauses.append("actor = ?")
        params.append(actor)
    if before.isascii() and before.isdigit():
        clauses.append("audit_id < ?")
        params.append(before)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return list(db.query(f"SELECT * FROM audit_log {where} ORDER BY audit_id DESC LIMIT ?",
                         [*params, limit]))


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
    username = event.payload["username"]
    db.execute("UPDATE users SET disabled = 1 WHERE username = ?", [username])
    # Every open session of the account ends with it (on every tablet at once). Sessions
    # begun after this event (a later re-enable) are left alone when events are replayed.
    db.execute("UPDATE staff_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL "
               "AND created_at <= ?", [event.recorded_at, username, event.recorded_at])


@projection("user_enabled")
def _apply_user_enabled(db: Database, event: Event) -> None:
    db.execute("UPDATE users SET disabled = 0 WHERE username = ?", [event.payload["username"]])
