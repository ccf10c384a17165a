"""Steps 6 to 15: what came with the network, receiving sync, shelter-aware state,
enrollment, presence flags, the outbox, HQ's registry and read models, and trust (origin
rules, sign-in attempts, accounts planted over sync, refusal messages).

Registered, in order, by ``shelter.core.migrations``; a released step never changes.
"""

from __future__ import annotations

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.migrations.statements import run


def m006_sync_receiving(db: Database) -> None:
    run(
        db,
        # One row per node whose events this store receives (at HQ: every enrolled node):
        # the highest sequence number applied without a gap.
        """CREATE TABLE sync_origins (
            node_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            acked_seq INTEGER NOT NULL DEFAULT 0,
            last_batch_at TEXT
        )""",
        # Events that could not be applied (unknown type, newer schema, a projection that
        # failed, a shape that is wrong), kept with the reason; they never block the queue.
        """CREATE TABLE sync_quarantine (
            quarantine_id INTEGER PRIMARY KEY AUTOINCREMENT,
            node_id TEXT NOT NULL,
            seq INTEGER,
            event_id TEXT,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        # The same event id arriving with different content: kept, reported, not applied.
        """CREATE TABLE sync_conflicts (
            conflict_id INTEGER PRIMARY KEY AUTOINCREMENT,
            node_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        # Applied, but stamped implausibly far ahead of this store's clock: not trusted for
        # ordering, shown to staff.
        """CREATE TABLE sync_flags (
            event_id TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
    )


def m007_shelter_aware_state(db: Database) -> None:
    """HQ applies every shelter's events with the same projections: stock, notes and
    settings now say whose they are (existing rows are this node's own)."""
    own = "coalesce((SELECT value FROM meta WHERE key = 'shelter_id'), '')"
    run(
        db,
        """CREATE TABLE stock_lots_by_shelter (
            shelter_id TEXT NOT NULL,
            item_id TEXT NOT NULL REFERENCES items(item_id),
            lot TEXT NOT NULL,
            expires_on TEXT NOT NULL DEFAULT '',
            on_hand INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (shelter_id, item_id, lot)
        )""",
        f"""INSERT INTO stock_lots_by_shelter
            SELECT {own}, item_id, lot, expires_on, on_hand FROM stock_lots""",
        "DROP TABLE stock_lots",
        "ALTER TABLE stock_lots_by_shelter RENAME TO stock_lots",
        "ALTER TABLE stock_movements ADD COLUMN shelter_id TEXT NOT NULL DEFAULT ''",
        f"UPDATE stock_movements SET shelter_id = {own}",
        "CREATE INDEX stock_movements_shelter ON stock_movements (shelter_id, item_id, at)",
        "ALTER TABLE day_notes ADD COLUMN shelter_id TEXT NOT NULL DEFAULT ''",
        f"UPDATE day_notes SET shelter_id = {own}",
        # Other shelters' settings, as HQ learns them (a node's own stay in `settings`).
        """CREATE TABLE shelter_settings (
            shelter_id TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (shelter_id, key)
        )""",
    )


def m008_enrollment(db: Database) -> None:
    run(
        db,
        # HQ: one-time enrollment codes (stored hashed) and the credentials nodes got for
        # them (hashed too). HQ-local secrets, never events, never synced.
        """CREATE TABLE hq_enrollments (
            code_hash TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            node_id TEXT
        )""",
        """CREATE TABLE hq_credentials (
            node_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            credential_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0
        )""",
    )


def m009_presence_flags(db: Database) -> None:
    run(
        db,
        # Someone checked in at one shelter while another still had them in (two desks, no
        # link between them): shown to staff, never resolved by deleting anything.
        """CREATE TABLE presence_flags (
            person_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            shelter_a TEXT NOT NULL,
            shelter_b TEXT NOT NULL,
            reason TEXT NOT NULL,
            flagged_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            PRIMARY KEY (person_id, event_id)
        )""",
        """CREATE TABLE hq_messages (
            event_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            text TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
    )


def m010_sync_outbox(db: Database) -> None:
    run(
        db,
        # Nothing reads events by their clock (projections compare HLCs row by row): the
        # index only slowed every insert, which sync does tens of thousands of per second.
        "DROP INDEX IF EXISTS events_hlc",
        # HQ: which stored events concern which shelter (sync/outbox.py), in the order they
        # became its concern. A node pulls from its position here, so a pull reads only its
        # own rows, however many events the other 3,000 shelters sent.
        """CREATE TABLE sync_outbox (
            position INTEGER PRIMARY KEY AUTOINCREMENT,
            shelter_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            UNIQUE (shelter_id, event_id)
        )""",
        "CREATE INDEX sync_outbox_shelter ON sync_outbox (shelter_id, position)",
    )
    if meta.get(db, "role") == "hq":
        from shelter.core.outbox import backfill

        backfill(db)


def m011_hq_registry_and_stats(db: Database) -> None:
    run(
        db,
        # HQ: the designated shelters (imported from GSI or the standard open-data CSV).
        """CREATE TABLE hq_shelters (
            shelter_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            name_kana TEXT NOT NULL DEFAULT '',
            municipality TEXT NOT NULL,
            municipality_code TEXT NOT NULL DEFAULT '',
            address TEXT NOT NULL DEFAULT '',
            lat REAL,
            lon REAL,
            accepts TEXT NOT NULL DEFAULT '',
            capacity INTEGER NOT NULL DEFAULT 0,
            phone TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL,
            imported_at TEXT NOT NULL
        )""",
        "CREATE INDEX hq_shelters_municipality ON hq_shelters (municipality)",
        # HQ: each shelter's numbers as last computed (shelter/hq/stats.py), so that reading
        # 3,000 shelters costs 3,000 rows, not 3,000 headcounts over 1.5 million people.
        """CREATE TABLE hq_shelter_stats (
            shelter_id TEXT PRIMARY KEY,
            present INTEGER NOT NULL, out INTEGER NOT NULL, registered INTEGER NOT NULL,
            at_home INTEGER NOT NULL, in_car INTEGER NOT NULL,
            arrivals_last_hour INTEGER NOT NULL, departures_last_hour INTEGER NOT NULL,
            provisional INTEGER NOT NULL,
            by_need TEXT NOT NULL, by_age TEXT NOT NULL,
            low_stock TEXT NOT NULL, supply_days TEXT NOT NULL DEFAULT '{}',
            open_requests INTEGER NOT NULL,
            as_of TEXT NOT NULL
        )""",
        # HQ: shelters whose numbers changed since they were last computed.
        "CREATE TABLE hq_dirty (shelter_id TEXT PRIMARY KEY, marked INTEGER NOT NULL)",
        # HQ: people present and out per shelter, per hour (JST), as recorded each hour.
        """CREATE TABLE hq_history (
            hour TEXT NOT NULL, shelter_id TEXT NOT NULL,
            present INTEGER NOT NULL, out INTEGER NOT NULL,
            PRIMARY KEY (hour, shelter_id)
        )""",
        "CREATE INDEX hq_history_key ON hq_history (shelter_id, hour)",
        "CREATE INDEX persons_issuing ON persons (issuing_shelter)",
        # HQ: the last time a node was heard from at all (a pull counts: an idle shelter
        # is not a silent one).
        "ALTER TABLE sync_origins ADD COLUMN last_seen_at TEXT",
    )


def m012_trust(db: Database) -> None:
    run(
        db,
        # Events refused because their sender may not say them (shelter/core/authority.py), as
        # opposed to events that could not be applied: shown to an operator per shelter,
        # since a stream of them is what a stolen laptop looks like.
        "ALTER TABLE sync_quarantine ADD COLUMN refused INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sync_quarantine ADD COLUMN shelter_id TEXT",
        "CREATE INDEX sync_quarantine_refused ON sync_quarantine (refused, shelter_id)",
        # Sessions live on the server: logging out, disabling the account or expiry ends
        # them, and a replayed cookie then names nothing. Only a hash of the session's
        # random id is stored.
        """CREATE TABLE staff_sessions (
            session_hash TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            ended_at TEXT
        )""",
        "CREATE INDEX staff_sessions_user ON staff_sessions (username)",
    )


def m013_sign_in_attempts(db: Database) -> None:
    run(
        db,
        # Sign-in attempts of the last quarter hour (shelter/domain/signin.py), shared by the node's
        # HTTP and HTTPS processes. A row is written before the password is checked, in the
        # same transaction that decides whether the attempt may go ahead, so that parallel
        # guesses cannot slip past the count. Old rows are deleted: the audit log keeps the
        # record, this table only the count.
        """CREATE TABLE sign_in_attempts (
            attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL,
            address TEXT NOT NULL,
            at TEXT NOT NULL,
            outcome TEXT NOT NULL DEFAULT 'pending'
        )""",
        "CREATE INDEX sign_in_attempts_pair ON sign_in_attempts (username, address, at)",
        "CREATE INDEX sign_in_attempts_address ON sign_in_attempts (address, at)",
        "CREATE INDEX sign_in_attempts_at ON sign_in_attempts (at)",
        "CREATE INDEX staff_sessions_created ON staff_sessions (created_at)",
    )


def m014_accounts_planted_over_sync(db: Database) -> None:
    """Before every event was checked against its sender, a node could send account
    events over sync and HQ applied them. Accounts and tokens that came that way are
    disabled and revoked here, with a row in the audit log for each (events are kept:
    they are the record). On a node, and on an HQ nobody attacked, this changes nothing."""
    own = ("(SELECT value FROM meta WHERE key = 'node_id' UNION SELECT value FROM "
           "json_each('[\"' || replace(coalesce((SELECT value FROM meta WHERE key = "
           "'previous_node_ids'), ''), ',', '\",\"') || '\"]'))")
    planted_users = (f"SELECT json_extract(payload, '$.user_id') FROM events WHERE type = "
                     f"'user_added' AND node_id NOT IN {own}")
    planted_tokens = (f"SELECT json_extract(payload, '$.token_id') FROM events WHERE type = "
                      f"'token_created' AND node_id NOT IN {own}")
    run(
        db,
        f"""INSERT INTO audit_log (at, actor, action, subject, detail)
            SELECT strftime('%Y-%m-%dT%H:%M:%fZ'), 'upgrade', 'account_planted_over_sync',
                   username, 'disabled' FROM users WHERE user_id IN ({planted_users})""",
        f"UPDATE users SET disabled = 1 WHERE user_id IN ({planted_users})",
        f"""INSERT INTO audit_log (at, actor, action, subject, detail)
            SELECT strftime('%Y-%m-%dT%H:%M:%fZ'), 'upgrade', 'token_planted_over_sync',
                   token_id, 'revoked' FROM tokens WHERE token_id IN ({planted_tokens})""",
        f"UPDATE tokens SET revoked = 1 WHERE token_id IN ({planted_tokens})",
    )


def m015_refusal_messages(db: Database) -> None:
    run(
        db,
        # A refusal's message template and what fills it (shelter/core/authority.py: Refusal),
        # so an operator reads why in their own language; `reason` keeps the English text.
        "ALTER TABLE sync_quarantine ADD COLUMN reason_template TEXT",
        "ALTER TABLE sync_quarantine ADD COLUMN reason_params TEXT",
    )
