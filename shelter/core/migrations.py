"""The schema, as numbered migrations (sqlite-utils): each runs once per database, in
order, when ``shelter.core.db.connect`` opens it. A new table or column is a new migration
at the end; a released one never changes.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("shelter")


def _run(db: Database, *statements: str) -> None:
    for sql in statements:
        db.execute(sql)


@migrations()
def m001_event_store(db: Database) -> None:
    _run(
        db,
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE events (
            event_id TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            hlc TEXT NOT NULL,
            type TEXT NOT NULL,
            schema_version INTEGER NOT NULL,
            payload TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            UNIQUE (node_id, seq)
        )""",
        "CREATE INDEX events_hlc ON events (hlc)",
        # Events are immutable: the database itself refuses to change or remove one.
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'events are immutable'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'events are immutable'); END""",
    )


@migrations()
def m002_registry(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE households (
            household_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            address TEXT NOT NULL,
            postal_code TEXT NOT NULL,
            phone TEXT NOT NULL,
            whereabouts TEXT NOT NULL,
            consent TEXT NOT NULL,
            language TEXT NOT NULL,
            registered_hlc TEXT NOT NULL,
            registered_at TEXT NOT NULL,
            origin_node TEXT NOT NULL
        )""",
        """CREATE TABLE persons (
            person_id TEXT PRIMARY KEY,
            household_id TEXT NOT NULL REFERENCES households(household_id),
            family_name TEXT NOT NULL,
            given_name TEXT NOT NULL,
            family_name_kana TEXT NOT NULL,
            given_name_kana TEXT NOT NULL,
            name_key TEXT NOT NULL,
            kana_key TEXT NOT NULL,
            birth_date TEXT NOT NULL,
            sex TEXT NOT NULL,
            needs TEXT NOT NULL,
            allergies TEXT NOT NULL,
            short_code TEXT NOT NULL UNIQUE,
            card_code TEXT NOT NULL,
            issuing_shelter TEXT NOT NULL,
            position INTEGER NOT NULL
        )""",
        "CREATE INDEX persons_household ON persons (household_id)",
        "CREATE INDEX persons_name_birth ON persons (name_key, birth_date)",
        "CREATE INDEX persons_kana_birth ON persons (kana_key, birth_date)",
        """CREATE TABLE duplicate_flags (
            person_id TEXT NOT NULL REFERENCES persons(person_id),
            other_person_id TEXT NOT NULL REFERENCES persons(person_id),
            reason TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            flagged_hlc TEXT NOT NULL,
            PRIMARY KEY (person_id, other_person_id)
        )""",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # Public keys of the nodes whose cards this node can verify (its own, and others
        # learnt through sync).
        """CREATE TABLE card_keys (
            node_id TEXT PRIMARY KEY,
            public_key TEXT NOT NULL,
            shelter_id TEXT NOT NULL
        )""",
    )


@migrations()
def m003_access(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE users (
            user_id TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE tokens (
            token_id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0
        )""",
        # Who looked at or changed what. Append-only, like the events.
        """CREATE TABLE audit_log (
            audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    )


@migrations()
def m004_presence(db: Database) -> None:
    _run(
        db,
        # Where each person is now, as far as this store knows: the latest presence event
        # (by HLC) wins. Provisional rows are people admitted on a card from elsewhere.
        """CREATE TABLE presence (
            person_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            status TEXT NOT NULL,
            last_action TEXT NOT NULL,
            since TEXT NOT NULL,
            since_hlc TEXT NOT NULL,
            destination TEXT NOT NULL DEFAULT '',
            destination_detail TEXT NOT NULL DEFAULT '',
            provisional INTEGER NOT NULL DEFAULT 0,
            registered_shelter TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '',
            card_verified INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX presence_shelter_status ON presence (shelter_id, status)",
        # Every presence change, for household histories and arrivals per hour.
        """CREATE TABLE presence_log (
            event_id TEXT PRIMARY KEY,
            person_id TEXT NOT NULL,
            shelter_id TEXT NOT NULL,
            action TEXT NOT NULL,
            destination TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL,
            hlc TEXT NOT NULL,
            actor TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX presence_log_at ON presence_log (shelter_id, at)",
        "CREATE INDEX presence_log_person ON presence_log (person_id, hlc)",
        "CREATE INDEX audit_log_actor_action ON audit_log (action, actor, at)",
        "CREATE INDEX persons_birth ON persons (birth_date)",
    )


# The basic eight (基本8品目) plus drinking water. Fixed ids, the same on every node, so HQ
# can add up one item across shelters. Norms are per person per day (editable by managers):
# water 3 L and food 3 meals (2,100 kcal) from Sphere and Japan's shelter guidelines; the
# others are planning figures, adjusted to each shelter's experience.
BASIC_ITEMS = [
    # item_id, Japanese name, English name, unit, norm per day, audience, ration hours
    ("water", "飲料水", "Drinking water", "L", 3.0, "everyone", 0),
    ("food", "食料", "Food", "meal", 3.0, "everyone", 0),
    ("blanket", "毛布", "Blankets", "piece", None, "everyone", 0),
    ("infant_formula", "乳児用粉ミルク", "Infant formula", "g", 150.0, "infants", 24),
    ("infant_diapers", "乳児用おむつ", "Infant diapers", "piece", 8.0, "infants", 24),
    ("adult_diapers", "大人用おむつ", "Adult diapers", "piece", 1.0, "elderly", 24),
    ("portable_toilet", "携帯・簡易トイレ", "Portable toilets", "use", 5.0, "everyone", 0),
    ("toilet_paper", "トイレットペーパー", "Toilet paper", "roll", 0.2, "everyone", 0),
    ("sanitary", "生理用品", "Sanitary products", "piece", 0.5, "everyone", 24),
]


@migrations()
def m005_supplies(db: Database) -> None:
    _run(
        db,
        """CREATE TABLE items (
            item_id TEXT PRIMARY KEY,
            name_ja TEXT NOT NULL,
            name_en TEXT NOT NULL,
            unit TEXT NOT NULL,
            norm_per_day REAL,
            audience TEXT NOT NULL DEFAULT 'everyone',
            ration_hours INTEGER NOT NULL DEFAULT 0,
            position INTEGER NOT NULL
        )""",
        # On hand per lot ('' is stock without a lot). Only movements change it.
        """CREATE TABLE stock_lots (
            item_id TEXT NOT NULL REFERENCES items(item_id),
            lot TEXT NOT NULL,
            expires_on TEXT NOT NULL DEFAULT '',
            on_hand INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (item_id, lot)
        )""",
        """CREATE TABLE stock_movements (
            movement_id TEXT PRIMARY KEY,
            event_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            delta INTEGER NOT NULL,
            lot TEXT NOT NULL DEFAULT '',
            household_id TEXT,
            destination TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL DEFAULT '',
            reason TEXT NOT NULL DEFAULT '',
            override INTEGER NOT NULL DEFAULT 0,
            request_id TEXT,
            at TEXT NOT NULL,
            hlc TEXT NOT NULL,
            actor TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX stock_movements_item ON stock_movements (item_id, at)",
        "CREATE INDEX stock_movements_household ON stock_movements (household_id, item_id, at)",
        """CREATE TABLE supply_requests (
            request_id TEXT PRIMARY KEY,
            shelter_id TEXT NOT NULL,
            status TEXT NOT NULL,
            urgency TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            lines TEXT NOT NULL,
            dispatched TEXT,
            expected_arrival TEXT,
            received TEXT,
            requested_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            history TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX supply_requests_status ON supply_requests (status)",
        """CREATE TABLE day_notes (
            event_id TEXT PRIMARY KEY,
            day TEXT NOT NULL,
            text TEXT NOT NULL,
            actor TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX day_notes_day ON day_notes (day)",
    )
    for position, (item_id, ja, en, unit, norm, audience, ration) in enumerate(BASIC_ITEMS):
        db.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [item_id, ja, en, unit, norm, audience, ration, position])


@migrations()
def m006_sync_receiving(db: Database) -> None:
    _run(
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


@migrations()
def m007_shelter_aware_state(db: Database) -> None:
    """HQ applies every shelter's events with the same projections: stock, notes and
    settings now say whose they are (existing rows are this node's own)."""
    own = "coalesce((SELECT value FROM meta WHERE key = 'shelter_id'), '')"
    _run(
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


@migrations()
def m008_enrollment(db: Database) -> None:
    _run(
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


@migrations()
def m009_presence_flags(db: Database) -> None:
    _run(
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


@migrations()
def m010_sync_outbox(db: Database) -> None:
    _run(
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
    role = db.execute("SELECT value FROM meta WHERE key = 'role'").fetchone()
    if role and role[0] == "hq":
        from shelter.core.outbox import backfill

        backfill(db)


@migrations()
def m011_hq_registry_and_stats(db: Database) -> None:
    _run(
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


@migrations()
def m012_trust(db: Database) -> None:
    _run(
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


@migrations()
def m013_sign_in_attempts(db: Database) -> None:
    _run(
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


@migrations()
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
    _run(
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


@migrations()
def m015_refusal_messages(db: Database) -> None:
    _run(
        db,
        # A refusal's message template and what fills it (shelter/core/authority.py: Refusal),
        # so an operator reads why in their own language; `reason` keeps the English text.
        "ALTER TABLE sync_quarantine ADD COLUMN reason_template TEXT",
        "ALTER TABLE sync_quarantine ADD COLUMN reason_params TEXT",
    )
