"""What every `shelter` subcommand shares: its error, and opening a data directory."""

from __future__ import annotations

from pathlib import Path

import click

from shelter.core.errors import ShelterError
from shelter.core.node import DB_FILE, NodeContext


# Both bases have ``message``; click declares its own final. Here both mean the English
# text the operator reads, so there is no catalog template to keep apart from it.
class ShelterCommandError(ShelterError, click.ClickException):  # type: ignore[misc]
    """A command that cannot go ahead: click prints ``message`` and exits with status 1."""

    code = "command_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message, detail=message)  # ClickException keeps it as .message


DATA = click.option("--data", "data", required=True, type=click.Path(file_okay=False),
                    help="The node's data directory (made if missing).")


def open_node(data: str, shelter_id: str | None = None) -> NodeContext:
    return _opened(data, shelter_id=shelter_id)


def open_hq(data: str) -> NodeContext:
    return _opened(data, role="hq")


def open_existing(data: str, role: str) -> NodeContext:
    """An existing data directory of this role (never a new one made by mistake)."""
    if not (Path(data) / DB_FILE).exists():
        raise ShelterCommandError(f"{data} holds no {'HQ' if role == 'hq' else 'node'}")
    return _opened(data, role=role)


def _opened(data: str, role: str | None = None, shelter_id: str | None = None) -> NodeContext:
    """The data directory's context; a directory of another kind is a command error."""
    try:
        return NodeContext(data, role=role, shelter_id=shelter_id)
    except ValueError as error:
        raise ShelterCommandError(str(error)) from None
