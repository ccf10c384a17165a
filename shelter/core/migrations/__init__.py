"""The schema, as numbered migrations (sqlite-utils): each runs once per database, in
order, when ``shelter.core.db.connect`` opens it. A released step never changes: its name is
recorded in every database's ``_sqlite_migrations`` table. A new table or column is a new
step, a function ``mNNN_what(db)`` at the end of the newest module here and of ``STEPS``.

    node.py      steps 1-5: a shelter on its own (events, registry, access, presence,
                 supplies)
    network.py   steps 6-15: sync, enrollment, the outbox, HQ's read models, trust
"""

from __future__ import annotations

from sqlite_utils.migrations import Migrations

from shelter.core.migrations.network import (
    m006_sync_receiving,
    m007_shelter_aware_state,
    m008_enrollment,
    m009_presence_flags,
    m010_sync_outbox,
    m011_hq_registry_and_stats,
    m012_trust,
    m013_sign_in_attempts,
    m014_accounts_planted_over_sync,
    m015_refusal_messages,
)
from shelter.core.migrations.node import (
    m001_event_store,
    m002_registry,
    m003_access,
    m004_presence,
    m005_supplies,
)

STEPS = (
    m001_event_store,
    m002_registry,
    m003_access,
    m004_presence,
    m005_supplies,
    m006_sync_receiving,
    m007_shelter_aware_state,
    m008_enrollment,
    m009_presence_flags,
    m010_sync_outbox,
    m011_hq_registry_and_stats,
    m012_trust,
    m013_sign_in_attempts,
    m014_accounts_planted_over_sync,
    m015_refusal_messages,
)

migrations = Migrations("shelter")
for step in STEPS:  # by its function's name, the name recorded in each database
    migrations()(step)
