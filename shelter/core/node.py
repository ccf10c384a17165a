"""A node's data directory: its database, identity and secrets, opened once per process."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from shelter.core import atrest, backup, ids, keys, meta
from shelter.core import db as dbmod
from shelter.core.clock import HybridClock, offset_clock, system_ms
from shelter.core.events import Event, EventStore
from shelter.core.live import ChangeWatcher

DB_FILE = "shelter.db"
LOG_FILE = "log.db"  # HQ's log of what nodes sent (sync/log.py)
APPLIER_CACHE_KIB = 64 * 1024  # the page cache of the connection HQ applies batches on

StoreHook = Callable[[Database, list[Event]], None]
# HQ's store notes, before the projections, which shelters' numbers the events change
# (shelter/hq/refresher.py: mark) and, after, which shelters they concern (sync/outbox.py:
# route). Set by importing shelter.hq, which knows both; an HQ store without them would
# serve stale numbers and send nothing down, so opening one fails instead.
HQ_STORE_HOOKS: tuple[StoreHook, StoreHook] | None = None


@dataclass(frozen=True)
class NodeIdentity:
    """What a node signs cards with and stamps on them."""
    node_id: str
    shelter_id: str
    signing_key_pem: str


def cards_issued(db: Database) -> bool:
    """Whether this node registered anyone: their cards carry its shelter id, which may
    then never change."""
    return db.execute("SELECT 1 FROM persons LIMIT 1").fetchone() is not None


class NodeContext:
    """Everything a request needs to reach the node's state. Connections are per thread."""

    def __init__(self, data_dir: str | Path, role: str | None = None,
                 shelter_id: str | None = None, clock_offset_seconds: float = 0.0) -> None:
        """``role``: "node" or "hq"; None takes the data directory's (a new one is a node)."""
        self.data_dir = Path(data_dir)
        # Only its owner may read a data directory (secrets, keys, personal data), also
        # one made before that rule: every file in it 0600 (shelter/core/atrest.py).
        atrest.private_dir(self.data_dir)
        atrest.tighten(self.data_dir)
        self.db_path = self.data_dir / DB_FILE
        self._local = threading.local()
        self._watcher: ChangeWatcher | None = None
        self._applier: EventStore | None = None
        self._applier_lock = threading.Lock()
        self._watcher_lock = threading.Lock()
        db = dbmod.connect(self.db_path)  # migrates
        self.role = meta.once(db, "role", lambda: role or "node")
        if self.role in ("standby", "promoting"):  # sync/standby_dir.py: it follows a node
            db.conn.close()  # and would speak under that node's own id
            raise ValueError(f"{self.data_dir} is a standby's data directory: it follows its "
                             f"node. `shelter promote --data {self.data_dir}` makes it the "
                             "shelter's node")
        if role is not None and role != self.role:
            db.conn.close()
            raise ValueError(f"{self.data_dir} holds a {self.role}'s data, not a {role}'s")
        self.node_id = meta.once(db, "node_id", ids.new_node_id)
        here = backup.host_fingerprint(self.data_dir)
        stored = meta.get(db, "host_fingerprint")
        if stored != here:
            if stored is not None and db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
                # Copied to another machine or place: the original may still be running
                # under the old id, so this copy must never reuse its sequence numbers.
                _, self.node_id = backup.new_epoch(db.conn, "data directory copied or moved")
            meta.put(db, "host_fingerprint", here)
        if shelter_id is not None:
            if not ids.valid_id(shelter_id):
                raise ValueError("a shelter id is upper-case letters, digits and '-', "
                                 "like E2710000001111")
            existing = meta.get(db, "shelter_id")
            if existing and existing != shelter_id:
                # The id is printed on every card: it may change only before the first one.
                if cards_issued(db):
                    raise ValueError(f"this data directory belongs to shelter {existing}; "
                                     "cards were already issued under that id")
                meta.put(db, "shelter_id", shelter_id)
        self.shelter_id = meta.once(db, "shelter_id", lambda: shelter_id or self.node_id)
        signing_pem = meta.once(db, "card_signing_key", keys.new_private_key_pem)
        self.public_key = keys.public_key_text(keys.load_private_key(signing_pem))
        self.identity = NodeIdentity(self.node_id, self.shelter_id, signing_pem)
        self.secret_key = meta.once(db, "session_secret", lambda: secrets.token_hex(32))
        db.execute("INSERT OR IGNORE INTO card_keys (node_id, public_key, shelter_id) "
                   "VALUES (?, ?, ?)", [self.node_id, self.public_key, self.shelter_id])
        # A card of someone registered here must be signed by a key of their shelter
        # (presence.identify): the node's own key stands for the shelter id it has now,
        # also where the id was set after the key's row was written (first start without
        # --shelter-id; allowed only before the first card).
        db.execute("UPDATE card_keys SET shelter_id = ? WHERE public_key = ? "
                   "AND shelter_id != ?", [self.shelter_id, self.public_key, self.shelter_id])
        db.conn.close()
        now = offset_clock(clock_offset_seconds) if clock_offset_seconds else system_ms
        self.clock = HybridClock(self.node_id, now_ms=now)

    @property
    def db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = dbmod.connect(self.db_path, migrate=False)
            self._local.db = db
        return db

    @property
    def store(self) -> EventStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._store(self.db)
            self._local.store = store
        return store

    def _store(self, db: Database) -> EventStore:
        store = EventStore(db, self.node_id, self.clock)
        if self.role == "hq":
            if HQ_STORE_HOOKS is None:
                raise RuntimeError("an HQ store needs shelter.hq imported (its hooks)")
            store.before, store.route = HQ_STORE_HOOKS
            store.positions = True
        return store

    @contextmanager
    def applying(self) -> Iterator[EventStore]:
        """A write transaction on the one store through which HQ applies every node's
        batches. It has its own connection with a larger page cache (64 MiB): projections
        write to pages all over the presence and log tables, and one cache kept warm across
        sessions costs less than each session's thread warming its own, while memory stays
        bounded however many nodes connect. One session at a time holds it (a connection's
        transaction must not be joined by another thread)."""
        with self._applier_lock:
            if self._applier is None:
                db = dbmod.connect(self.db_path, migrate=False)
                db.execute(f"PRAGMA cache_size=-{APPLIER_CACHE_KIB}")
                self._applier = self._store(db)
            with self._applier.write():
                yield self._applier

    @property
    def watcher(self) -> ChangeWatcher:
        """Wakes live screens on any commit to this node's database (one per process)."""
        with self._watcher_lock:
            if self._watcher is None:
                self._watcher = ChangeWatcher(self.db_path)
            return self._watcher

    def card_keys(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.execute("SELECT node_id, public_key FROM card_keys")}
