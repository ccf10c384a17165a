"""Steps 1 to 5: the tables of a shelter on its own, the event store, the registry of
households and people, access (accounts and the audit log), presence and supplies.

Registered, in order, by ``shelter.core.migrations``; a released step never changes.
"""

from __future__ import annotations

from sqlite_utils import Database

from shelter.core.migrations.statements import run


def m001_event_store(db: Database) -> None:
    run(
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


def m002_registry(db: Database) -> None:
    run(
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


def m003_access(db: Database) -> None:
    run(
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


def m004_presence(db: Database) -> None:
    run(
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


def m005_supplies(db: Database) -> None:
    run(
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
