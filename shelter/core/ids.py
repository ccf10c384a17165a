"""Identifiers: event and person ids (ULIDs), node ids, and the form of a shelter's id."""

from __future__ import annotations

import re
import secrets

from ulid import ULID

from shelter.core.shortcode import ALPHABET

# A shelter's id (the GSI's 共通ID, like E2710000001111) or a node's (N + 9 characters).
_ID_RE = re.compile(r"^[0-9A-Z][0-9A-Z-]{0,31}$")
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_id() -> str:
    return str(ULID())


def new_node_id() -> str:
    """A node's id: N and nine characters of the short-code alphabet (no 0/O, 1/I/L)."""
    return "N" + "".join(secrets.choice(ALPHABET) for _ in range(9))


def valid_id(value: str) -> bool:
    """A shelter or node id: upper-case letters, digits and '-', at most 32."""
    return bool(_ID_RE.match(value))
