"""Steps 16-18: what keeps a shelter's records when its laptop or its link is gone
(courier bundles, replacement from HQ, a standby at the shelter)."""

from __future__ import annotations

from sqlite_utils import Database


def m016_bundles(db: Database) -> None:
    """Courier bundles HQ has imported (each once) and refused."""
    for sql in (
        # Each courier file imported here (sync/bundle.py): at HQ a node's bundle, at a node
        # HQ's reply. The primary key is what makes a second import of one file a refusal;
        # per node, since the id is in the file's plain header: another shelter's node
        # signing its own file with that id must not make this one's "imported already".
        """CREATE TABLE sync_bundles (
            bundle_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            node_id TEXT NOT NULL,
            shelter_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            events INTEGER NOT NULL,
            applied INTEGER NOT NULL,
            duplicates INTEGER NOT NULL,
            quarantined INTEGER NOT NULL,
            refused INTEGER NOT NULL,
            PRIMARY KEY (bundle_id, node_id)
        )""",
        "CREATE INDEX sync_bundles_imported ON sync_bundles (imported_at)",
        # Files refused, with the reason, for an operator (HQ's sync page). The node and
        # shelter are what the file claims (a forged file names whom it likes).
        """CREATE TABLE sync_bundle_refusals (
            refusal_id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            bundle_id TEXT,
            node_id TEXT,
            shelter_id TEXT,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX sync_bundle_refusals_at ON sync_bundle_refusals (at)",
    ):
        db.execute(sql)


def m017_replacement(db: Database) -> None:
    """Replacement codes and what a replacing node inherits."""
    for sql in (
        # HQ: a code made with `shelter hq enroll --replace` (a new laptop for a shelter
        # whose node is gone), and the credential redeemed with it: only such a credential
        # may download its shelter's history (sync/history.py). A node keeps what it
        # inherited in its meta (`inherited_node_ids`, the rebuild's cursor).
        "ALTER TABLE hq_enrollments ADD COLUMN replacement INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE hq_credentials ADD COLUMN replacement INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(sql)


def m018_standby(db: Database) -> None:
    """A node's standby at the shelter (sync/standby.py): the one-time codes a manager
    makes for one (`shelter standby-code`) and the credential a standby redeemed its code
    for, both as SHA-256 hashes only. A node has one standby at a time: a code redeemed
    revokes the credential before it. The standby keeps its own progress in its meta
    (`standby_*`)."""
    for sql in (
        """CREATE TABLE standby_codes (
            code_hash TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            standby_id TEXT
        )""",
        """CREATE TABLE standby_credentials (
            standby_id TEXT PRIMARY KEY,
            credential_hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            revoked INTEGER NOT NULL DEFAULT 0
        )""",
    ):
        db.execute(sql)
