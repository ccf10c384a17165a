"""The schema, as numbered migrations (sqlite-utils): each runs once per database, in
order, when ``shelter.core.db.connect`` opens it. A released step never changes: its name is
recorded in every database's ``_sqlite_migrations`` table. A new table or column is a new
step, a function ``mNNN_what(db)`` at the end of the newest module here: ``STEPS``
finds it by its number.

    node.py      steps 1-5: a shelter on its own (events, registry, access, presence,
                 supplies)
    network.py   steps 6-15: sync, enrollment, the outbox, HQ's read models, trust
    resilience.py  steps 16-18: courier bundles, replacement from HQ, the standby
    arrival.py   step 19: households made from a household code
    daylong.py   steps 20-21: staff corrections, HQ's map outlines
    logfirst.py  step 22: HQ's own events' places among its log's (store first, project after)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from shelter.core.migrations import arrival, daylong, logfirst, network, node, resilience


def _steps() -> tuple[Callable[[Database], None], ...]:
    """Every ``mNNN_`` function of the modules, by number; a gap or a repeat is a bug."""
    modules = (node, network, resilience, arrival, daylong, logfirst)
    found = sorted((fn for module in modules for name, fn in vars(module).items()
                    if re.fullmatch(r"m\d{3}_\w+", name)), key=lambda fn: fn.__name__)
    numbers = [int(fn.__name__[1:4]) for fn in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration steps out of order: {numbers}")
    return tuple(found)


STEPS = _steps()
migrations = Migrations("shelter")
for step in STEPS:  # by its function's name, the name recorded in each database
    migrations()(step)
