"""Signing in: server-side staff sessions, and slowing down password guessing.

A session is a random id in the (signed) cookie; the database keeps only its SHA-256 with
who it is for and when it began and was last used. Every request looks the row up, so
logging out, disabling the account and expiry end a session at once on every server
process, and a copied cookie names nothing once its row has ended.

Failed sign-ins are counted per (user name, address) pair and per address, in the database
so that the node's HTTP and HTTPS processes share the counts. Past a few failures each
further attempt must wait, twice as long each time up to a cap. There is no lock-out per
user name alone: a stranger guessing one account's password from their own address slows
down only themself, and the right password from any address that is not throttled works.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import UTC, datetime, timedelta

from sqlite_utils import Database

from shelter.core.errors import N_, TooMany
from shelter.core.events import EventStore
from shelter.core.sql import insert_row
from shelter.domain.accounts import ROLES, Principal

# How far back failures count.
FAILURE_WINDOW = timedelta(minutes=15)
# Failures allowed before waits begin: per (user name, address), counted since that pair's
# last successful sign-in; and per address over all user names.
FREE_PER_PAIR = 5
FREE_PER_ADDRESS = 20
# The wait after the first failure past the free ones, doubled for each further failure.
FIRST_WAIT_SECONDS = 5
MAX_WAIT_SECONDS = 300
# last_seen_at is written at most this often per session (each write takes the write lock).
TOUCH_SECONDS = 60


class TooManyAttempts(TooMany):
    """This sign-in may not go ahead yet; ``seconds`` until it may."""

    message = N_("Too many attempts. Try again in %(seconds)s seconds.")

    def __init__(self, seconds: int) -> None:
        one = N_("Too many attempts. Try again in 1 second.")
        super().__init__(one if seconds == 1 else None, detail=f"try again in {seconds} s",
                         seconds=seconds)
        self.seconds = self.retry_after = seconds


def now() -> datetime:
    """The wall clock (a function, so that tests can move it)."""
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


# --- throttling ---------------------------------------------------------------------------

def wait_after(failures: int, free: int) -> float:
    """Seconds to wait after the latest of ``failures`` before trying again."""
    if failures < free:
        return 0.0
    return float(min(FIRST_WAIT_SECONDS * 2 ** min(failures - free, 30), MAX_WAIT_SECONDS))


def _seconds_to_wait(db: Database, username: str, address: str, at: datetime) -> float:
    """How long this pair must wait, at most MAX_WAIT_SECONDS. Attempts stamped after ``at``
    (the clock was set back) do not count: a clock must never lock anyone out."""
    since, until = _iso(at - FAILURE_WINDOW), _iso(at)
    failures, last = 0, None
    for moment, outcome in db.execute(
            "SELECT at, outcome FROM sign_in_attempts WHERE username = ? AND address = ? "
            "AND at >= ? AND at <= ? ORDER BY attempt_id", [username, address, since, until]):
        if outcome == "ok":
            failures, last = 0, None
        else:  # failed, or still being checked (it counts until it has succeeded)
            failures, last = failures + 1, moment
    waits = []
    if last is not None:
        waits.append(datetime.fromisoformat(last).timestamp()
                     + wait_after(failures, FREE_PER_PAIR) - at.timestamp())
    count, latest = db.execute(
        "SELECT count(*), max(at) FROM sign_in_attempts WHERE address = ? AND at >= ? "
        "AND at <= ? AND outcome != 'ok'", [address, since, until]).fetchone()
    if latest is not None:
        waits.append(datetime.fromisoformat(latest).timestamp()
                     + wait_after(count, FREE_PER_ADDRESS) - at.timestamp())
    return min(max(waits, default=0.0), float(MAX_WAIT_SECONDS))


def begin_attempt(store: EventStore, username: str, address: str) -> int:
    """Reserve a sign-in attempt before its password is checked; raises TooManyAttempts.

    The decision and the reservation are one write transaction, so that many guesses sent
    at once are counted one after another. A refused attempt is not counted: waiting out
    the delay is enough to be allowed to try again.
    """
    at = now()
    with store.write() as db:
        db.execute("DELETE FROM sign_in_attempts WHERE at < ?", [_iso(at - FAILURE_WINDOW)])
        wait = _seconds_to_wait(db, username, address, at)
        if wait > 0:
            raise TooManyAttempts(max(1, math.ceil(wait)))
        insert_row(db, "sign_in_attempts", {"username": username, "address": address,
                                             "at": _iso(at), "outcome": "pending"})
        return int(db.execute("SELECT last_insert_rowid()").fetchone()[0])


def end_attempt(store: EventStore, attempt_id: int, succeeded: bool) -> None:
    with store.write() as db:
        db.execute("UPDATE sign_in_attempts SET outcome = ? WHERE attempt_id = ?",
                   ["ok" if succeeded else "failed", attempt_id])


# --- sessions -----------------------------------------------------------------------------

def start_session(store: EventStore, username: str, absolute_seconds: float = 14 * 3600
                  ) -> str:
    """A new session for ``username``; returns its id (for the cookie, never stored)."""
    session_id = secrets.token_urlsafe(32)
    at = now()
    with store.write() as db:
        # Sessions past the absolute limit can never be used again: no need to keep them.
        db.execute("DELETE FROM staff_sessions WHERE created_at < ?",
                   [_iso(at - timedelta(seconds=absolute_seconds))])
        insert_row(db, "staff_sessions", {"session_hash": _hash(session_id),
                                          "username": username, "created_at": _iso(at),
                                          "last_seen_at": _iso(at)})
    return session_id


def session_principal(store: EventStore, session_id: str, side: str, absolute_seconds: float,
                      idle_seconds: float) -> Principal | None:
    """Who the session is for, while it has not ended, is younger than
    ``absolute_seconds``, was used within ``idle_seconds``, and its account is enabled and
    has one of ``side``'s roles. Notes the use (at most once a minute)."""
    row = store.db.execute(
        "SELECT s.username, s.created_at, s.last_seen_at, s.ended_at, u.role, u.disabled "
        "FROM staff_sessions s JOIN users u ON u.username = s.username "
        "WHERE s.session_hash = ?", [_hash(session_id)]).fetchone()
    if row is None:
        return None
    username, created_at, last_seen_at, ended_at, role, disabled = row
    at = now().timestamp()
    seen = datetime.fromisoformat(last_seen_at).timestamp()
    if ended_at is not None or disabled or role not in ROLES[side] \
            or at - datetime.fromisoformat(created_at).timestamp() > absolute_seconds \
            or at - seen > idle_seconds:
        return None
    if at - seen >= TOUCH_SECONDS:
        with store.write() as db:
            db.execute("UPDATE staff_sessions SET last_seen_at = ? WHERE session_hash = ?",
                       [_iso(now()), _hash(session_id)])
    return Principal(username, role)


def end_session(store: EventStore, session_id: str) -> None:
    with store.write() as db:
        db.execute("UPDATE staff_sessions SET ended_at = ? WHERE session_hash = ? "
                   "AND ended_at IS NULL", [_iso(now()), _hash(session_id)])
