"""``shelter hq rebuild``: HQ's read models made again from its log, while HQ serves.

After a projection bug is fixed, this is how HQ recovers. The rebuild works on a copy of
HQ's database (``DATA/rebuild.db``, made with SQLite's online backup): the read models in
it are emptied (``REBUILT``) and every row of the log replayed through the same rules as
the live projector (sync/projector.py), HQ's own steps (an acknowledged request, a
message) each put back where HQ took them among the log's rows (``hq_positions``). HQ
serves from its old read models meanwhile, and its projector goes on. To switch, the
rebuild takes the projector over, replays what arrived meanwhile, and copies the rebuilt
tables into HQ's database in one transaction: a page sees the old figures or the new.

What is not made from events stays as it is: staff accounts, the registry, enrollments,
the audit log. Stored events are never removed (the database refuses it): one the rules
now refuse stays stored, and only the read models lose its effect.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shelter.core import db as dbmod
from shelter.core import meta, node
from shelter.core.authority import RULES
from shelter.core.backup import own_origins
from shelter.core.clock import HybridClock
from shelter.core.events import Event, EventStore, write_lock
from shelter.core.sql import insert_row
from sync import log as hq_log
from sync import projector
from sync.apply import quarantine

REBUILD_FILE = "rebuild.db"
# The tables made from events at HQ, emptied and made again. (Projections also write
# ``card_keys`` and ``items``, only ever adding a row; those are kept, as are all others.)
REBUILT = ("persons", "households", "presence", "presence_log", "presence_flags",
           "corrected_fields", "duplicate_flags", "day_notes", "stock_lots",
           "stock_movements", "supply_requests", "shelter_settings", "hq_messages")
# What the replay set aside, held or found in conflict, made again too; at the switch, an
# entry the rebuild made again keeps its row (its id, and when HQ first saw it), one it did
# not is gone (the fixed rules apply that event now), and a new one is added.
JUDGED = {"sync_quarantine": ("quarantine_id", ("node_id", "seq", "event_id", "reason")),
          "sync_conflicts": ("conflict_id", ("node_id", "seq", "event_id", "reason")),
          "sync_flags": (None, ("event_id", "reason"))}
# Kept tables the rules read while they judge events: brought up to date before the switch.
READ_BY_RULES = ("card_keys", "hq_credentials", "hq_enrollments", "hq_shelters", "items",
                 "settings")
# HQ's own steps that change read models (the registry import changes the registry only).
REPLAYED_OWN = frozenset(t for t, rule in RULES.items()
                         if rule.origin == "hq" and rule.concerns != "prefecture")
ROWS_PER_STEP = 4000


class NotCovered(Exception):
    """The log lacks events HQ's read models already count (a log restored older than
    the database, or lost): a rebuild now would drop them."""

    def __init__(self, short: list[tuple[str, int, int]]) -> None:
        origin, logged, counted = short[0]
        more = f" (and {len(short) - 1} other nodes)" if len(short) > 1 else ""
        super().__init__(
            f"the log holds node {origin}'s events through {logged}, but HQ's figures count "
            f"them through {counted}{more}: a rebuild now would lose the rest. A node that "
            "still syncs sends them again (HQ tells it what the log holds), and the rebuild "
            "works after that; for a node that will not (revoked, replaced, gone), restore "
            "a log that holds them")


def _short(counted: list[tuple[str, int]], held: dict[str, int]
           ) -> list[tuple[str, int, int]]:
    """(origin, held, counted) for each origin ``held`` holds less of than ``counted``."""
    return [(origin, held.get(origin, 0), acked) for origin, acked in counted
            if held.get(origin, 0) < acked]


def rebuild(ctx: Any, say: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Rebuild ``ctx``'s (an HQ NodeContext) read models from its log; returns figures."""
    path = ctx.data_dir / REBUILD_FILE
    log = hq_log.of(ctx.data_dir)
    short = _short(ctx.db.execute("SELECT node_id, acked_seq FROM sync_origins").fetchall(),
                   dict(log.execute("SELECT origin, logged_seq FROM log_origins")))
    if short:
        raise NotCovered(short)
    for stale in ctx.data_dir.glob(f"{REBUILD_FILE}*"):
        stale.unlink()
    copy = _copy_of(ctx, path)
    try:
        store = _store_on(copy, ctx)
        replayed = Replay(store, ctx)
        while True:  # the bulk, HQ serving and projecting meanwhile
            if replayed.step():
                say(f"replayed through log position {replayed.position} "
                    f"of {hq_log.head(log)}")
            elif hq_log.head(log) - projector.position(ctx.db) > ROWS_PER_STEP:
                # Level with the live projector, and much is left: project the live read
                # models a round too (the projector may be down, or far behind), so that
                # the switch, which holds HQ's writers, has little to do.
                projector.project_pending(ctx)
            else:
                break
        with projector.holding(ctx.data_dir):
            figures = _switch(ctx, copy, replayed)
        say(f"switched: {figures['log_rows']} log rows and {figures['own_events']} of HQ's "
            "own steps replayed")
        return figures
    finally:
        copy.conn.close()
        for made in ctx.data_dir.glob(f"{REBUILD_FILE}*"):
            made.unlink()


def _copy_of(ctx: Any, path: Path) -> Any:
    """HQ's database copied to ``path`` (online, consistent), its read models emptied."""
    source = sqlite3.connect(str(ctx.db_path))
    target = dbmod.connect(path, migrate=False)
    try:
        source.backup(target.conn)
    finally:
        source.close()
    conn = target.conn
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                            "AND tbl_name = 'events'").fetchall()
    conn.execute("PRAGMA foreign_keys = OFF")  # emptied whole, in any order
    conn.execute("BEGIN IMMEDIATE")
    for name, _ in triggers:
        conn.execute(f'DROP TRIGGER "{name}"')
    for table in (*REBUILT, *JUDGED, "events", "sync_outbox", "hq_dirty", "hq_positions"):
        conn.execute(f'DELETE FROM "{table}"')
    for _, sql in triggers:
        conn.execute(sql)
    conn.execute("UPDATE sync_origins SET acked_seq = 0")
    meta.put(conn, projector.POSITION, "0")
    conn.execute("DELETE FROM meta WHERE key = ?", [projector.POSITION_MS])
    conn.execute("COMMIT")
    conn.execute("PRAGMA foreign_keys = ON")  # the replay runs under HQ's own rules
    return target


def _store_on(db: Any, ctx: Any) -> EventStore:
    store = EventStore(db, ctx.node_id, HybridClock(ctx.node_id))
    if node.HQ_STORE_HOOKS is not None:
        store.before, store.route = node.HQ_STORE_HOOKS
    return store


class Replay:
    """The log and HQ's own steps, replayed into ``store`` in the order HQ took them."""

    def __init__(self, store: EventStore, ctx: Any) -> None:
        self.store, self.ctx = store, ctx
        self.log = hq_log.connect(ctx.data_dir)
        self.position = 0
        self.own_after = 0  # rowid in HQ's events of the last own step looked at
        self.pending: list[tuple[int, Event]] = []  # own steps not replayed: (after, event)
        self.log_rows = self.own_events = 0
        self.origins = own_origins(store.db.conn)

    def _own(self, live: sqlite3.Connection, schema: str) -> None:
        """HQ's own steps stored since the last look, with their places (``schema``: where
        HQ's database is on ``live``, "main" or the name it is attached under)."""
        origins = own_origins(live) if schema == "main" else self.origins
        marks = ",".join("?" * len(origins))
        kinds = sorted(REPLAYED_OWN)
        for row in _rows(live, f"""
                SELECT e.rowid AS r, e.*, coalesce(p.after_log_id, 0) AS after
                FROM {schema}.events e LEFT JOIN {schema}.hq_positions p USING (event_id)
                WHERE e.rowid > ? AND e.node_id IN ({marks})
                  AND e.type IN ({",".join("?" * len(kinds))}) ORDER BY e.rowid""",
                [self.own_after, *origins, *kinds]):
            self.own_after = row.pop("r")
            after = row.pop("after")
            self.pending.append((int(after), Event.from_row(row)))
        self.pending.sort(key=lambda p: p[0])  # stable: HQ's order within a place

    def step(self, live: sqlite3.Connection | None = None, everything: bool = False) -> bool:
        """Replay up to ROWS_PER_STEP log rows (all that are there, ``everything``), each
        of HQ's own steps before the first row after its place; False when none were left."""
        cap = None
        if live is not None:
            self._own(live, "live")
        else:
            own_conn = sqlite3.connect(str(self.ctx.db_path))
            try:
                # Not past the live projector: a step HQ takes from now on falls after
                # where it is, so none can land behind what this replay has done.
                cap = int(meta.get(own_conn, projector.POSITION) or 0)
                self._own(own_conn, "main")
            finally:
                own_conn.close()
        rows = hq_log.rows_after(self.log, self.position,
                                 -1 if everything else ROWS_PER_STEP)
        if cap is not None:
            rows = [row for row in rows if row[0] <= cap]
        with self.store.write():
            start = 0
            while start < len(rows):
                self._own_due(rows[start][0])
                due = self.pending[0][0] if self.pending else None
                end = start
                while end < len(rows) and (due is None or rows[end][0] <= due):
                    end += 1
                projector.project_rows(self.store, rows[start:end])
                self.log_rows += end - start
                self.position = rows[end - 1][0]
                start = end
            if everything:
                self._own_due(None)
        return bool(rows)

    def _own_due(self, before: int | None) -> None:
        """Apply HQ's own steps whose place comes before log position ``before`` (all of
        them: None)."""
        while self.pending and (before is None or self.pending[0][0] < before):
            _, event = self.pending.pop(0)
            db = self.store.db
            db.conn.execute("SAVEPOINT own_step")
            try:
                insert_row(db, "events", event.row())
                self.store.project([event])
            except Exception as error:  # noqa: BLE001 - kept, shown, and the replay goes on
                db.conn.execute("ROLLBACK TO own_step")
                quarantine(db, event.node_id, json.loads(json.dumps(event.row())),
                           f"could not be projected ({type(error).__name__})")
            db.conn.execute("RELEASE own_step")
            self.own_events += 1


def _rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Iterator[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [d[0] for d in cursor.description]
    for values in cursor:
        yield dict(zip(names, values, strict=True))


def _merge(conn: sqlite3.Connection, table: str, row_id: str | None,
           key: tuple[str, ...]) -> None:
    """live.``table`` made equal to main.``table`` as compared by ``key`` (each row of a
    key counted: the second alike is matched by a second), keeping the live rows that
    match (see JUDGED). Indexed, so a flood of entries costs n log n, not n times m."""
    columns = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{table}")')
               if r[1] != row_id]
    names = ", ".join(f'"{c}"' for c in columns)
    keys = ", ".join(f'"{c}"' for c in key)
    for schema in ("main", "live"):  # each row's key, and which of its kind it is
        conn.execute(f"DROP TABLE IF EXISTS temp.judged_{schema}")
        conn.execute(f'CREATE TEMP TABLE judged_{schema} AS SELECT rowid AS rid, {keys}, '
                     f'row_number() OVER (PARTITION BY {keys} ORDER BY rowid) AS nth '
                     f'FROM {schema}."{table}"')
        conn.execute(f"CREATE INDEX temp.judged_{schema}_key ON judged_{schema} "
                     f"({keys}, nth)")
    same = " AND ".join(f'a."{c}" IS b."{c}"' for c in (*key, "nth"))
    conn.execute(f'DELETE FROM live."{table}" WHERE rowid IN (SELECT a.rid FROM '
                 f'judged_live a WHERE NOT EXISTS (SELECT 1 FROM judged_main b WHERE {same}))')
    conn.execute(f'INSERT INTO live."{table}" ({names}) SELECT {names} FROM main."{table}" '
                 f'WHERE rowid IN (SELECT a.rid FROM judged_main a WHERE NOT EXISTS '
                 f'(SELECT 1 FROM judged_live b WHERE {same})) ORDER BY rowid')
    for schema in ("main", "live"):
        conn.execute(f"DROP TABLE temp.judged_{schema}")


def _switch(ctx: Any, copy: Any, replayed: Replay) -> dict[str, int]:
    """With the projector held: the rest replayed, and the rebuilt tables copied into HQ's
    database in one transaction (HQ's own writers wait for it)."""
    conn = copy.conn
    conn.execute("ATTACH DATABASE ? AS live", [str(ctx.db_path)])
    # Tables are emptied and filled whole, in any order: checked once, before the commit.
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with write_lock(ctx.db.execute("PRAGMA database_list").fetchone()[2]):
            conn.execute("BEGIN IMMEDIATE")  # both files: HQ's writers wait from here
            try:
                position = meta.get(conn, projector.POSITION)
                for table in READ_BY_RULES:  # enrolled, imported, added meanwhile
                    conn.execute(f'DELETE FROM main."{table}"')
                    conn.execute(f'INSERT INTO main."{table}" SELECT * FROM live."{table}"')
                replayed.step(conn, everything=True)
                position = meta.get(conn, projector.POSITION) or position
                short = _short(conn.execute("SELECT node_id, acked_seq FROM live.sync_origins"
                                            ).fetchall(), dict(conn.execute(
                                   "SELECT node_id, acked_seq FROM main.sync_origins")))
                if short:  # the log's rows fall short of what the live figures count
                    raise NotCovered(short)
                for table in REBUILT:
                    conn.execute(f'DELETE FROM live."{table}"')
                    conn.execute(f'INSERT INTO live."{table}" SELECT * FROM main."{table}"')
                for table, (row_id, same_by) in JUDGED.items():
                    _merge(conn, table, row_id, same_by)
                conn.execute("INSERT OR IGNORE INTO live.events SELECT * FROM main.events")
                conn.execute("INSERT OR IGNORE INTO live.sync_outbox (shelter_id, event_id) "
                             "SELECT shelter_id, event_id FROM main.sync_outbox "
                             "ORDER BY position")
                conn.execute("INSERT OR IGNORE INTO live.sync_origins (node_id, shelter_id) "
                             "SELECT node_id, shelter_id FROM main.sync_origins")
                conn.execute("UPDATE live.sync_origins SET acked_seq = coalesce((SELECT "
                             "r.acked_seq FROM main.sync_origins r WHERE r.node_id = "
                             "live.sync_origins.node_id), 0)")
                for key in (projector.POSITION, projector.POSITION_MS):
                    value = meta.get(conn, key)
                    if value is not None:
                        conn.execute("INSERT INTO live.meta (key, value) VALUES (?, ?) ON "
                                     "CONFLICT (key) DO UPDATE SET value = excluded.value",
                                     [key, value])
                # Every shelter's numbers counted again (shelter/hq/refresher.py).
                conn.execute("INSERT INTO live.hq_dirty (shelter_id, marked) SELECT "
                             "shelter_id, 0 FROM (SELECT shelter_id FROM live.hq_shelter_stats "
                             "UNION SELECT shelter_id FROM live.sync_origins) WHERE true "
                             "ON CONFLICT (shelter_id) DO UPDATE SET marked = 0")
                for schema in ("main", "live"):
                    broken = conn.execute(f"PRAGMA {schema}.foreign_key_check").fetchall()
                    if broken:
                        raise sqlite3.IntegrityError(f"rebuilt tables would not hold "
                                                     f"together: {broken[:3]}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
    finally:
        conn.execute("DETACH DATABASE live")
        conn.execute("PRAGMA foreign_keys = ON")
    return {"log_rows": replayed.log_rows, "own_events": replayed.own_events,
            "position": int(position or 0)}
