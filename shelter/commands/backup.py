"""`shelter backup` and `shelter restore`: a node's (or HQ's) database copied while it
runs, and brought back as a new epoch."""

from __future__ import annotations

from pathlib import Path

import click

from shelter.commands.common import DATA, ShelterCommandError


@click.command("backup", help="Copy the node's (or HQ's) database to a file while it runs.")
@DATA
@click.option("--to", "to_file", required=True, type=click.Path(dir_okay=False),
              help="The backup file to write (must not exist).")
def backup_command(data: str, to_file: str) -> None:
    from shelter.core import backup
    try:
        size = backup.backup(Path(data), Path(to_file))
    except (ValueError, OSError) as error:
        raise ShelterCommandError(str(error)) from None
    click.echo(f"backed up to {to_file} ({size:,} bytes)")


@click.command("restore", help="Bring a backup back as a new epoch (the current database "
                              "is kept aside). Run it while the node is stopped.")
@DATA
@click.option("--from", "from_file", required=True,
              type=click.Path(dir_okay=False, exists=True), help="The backup file.")
def restore_command(data: str, from_file: str) -> None:
    from shelter.core import backup
    try:
        old, new = backup.restore(Path(data), Path(from_file))
    except (ValueError, OSError) as error:
        raise ShelterCommandError(str(error)) from None
    click.echo(f"restored; new epoch: node {old} continues as {new} (sequence numbers "
               "are never reused)")
