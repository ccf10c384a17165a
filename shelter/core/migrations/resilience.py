"""Steps 16-18: what keeps a shelter's records when its laptop or its link is gone
(courier bundles, replacement from HQ, a standby at the shelter)."""

from __future__ import annotations

from sqlite_utils import Database


def m016_bundles(db: Database) -> None:
    """Courier bundles HQ has imported (each once) and refused."""


def m017_replacement(db: Database) -> None:
    """Replacement codes and what a replacing node inherits."""


def m018_standby(db: Database) -> None:
    """A node's standby at the shelter."""
