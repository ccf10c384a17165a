"""Courier sync, for weeks with no link: `shelter bundle export|import` on a node and
`shelter hq bundle import` at HQ (sync/bundle.py has the format and the rules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shelter.commands.common import ShelterCommandError, open_existing
from shelter.core.node import NodeContext
from shelter.domain.accounts import audit
from sync.bundle import BundleRefused
from sync.bundle_hq import import_bundle, write_reply
from sync.bundle_node import export_bundle, import_reply

NODE_DATA = click.option("--data", "data", required=True, type=click.Path(file_okay=False),
                         help="The node's data directory.")
HQ_DATA = click.option("--data", "data", required=True, type=click.Path(file_okay=False),
                       help="HQ's data directory (HQ may be serving meanwhile).")


@click.group("bundle", help="Courier sync for a node with no link: export its events to a "
                            "file for HQ, import HQ's reply.")
def node_bundle_group() -> None:
    pass


@node_bundle_group.command("export", help="Write the events HQ has not acknowledged to a "
                                          "signed, encrypted file (a bundle) for HQ.")
@NODE_DATA
@click.option("--to", "to_file", required=True, type=click.Path(dir_okay=False),
              help="The bundle file to write (must not exist).")
def bundle_export(data: str, to_file: str) -> None:
    ctx = open_existing(data, "node")
    try:
        done = export_bundle(ctx, Path(to_file))
    except (BundleRefused, OSError) as error:
        raise ShelterCommandError(f"no bundle written: {error}") from None
    total = sum(done.origins.values())
    audit(ctx.store, "cli", "bundle_export", done.bundle_id, f"{total} events")
    per_origin = ", ".join(f"{o}: {n}" for o, n in done.origins.items())
    click.echo(f"wrote bundle {done.bundle_id} to {to_file}: {total} events ({per_origin}); "
               f"at HQ: shelter hq bundle import --data DIR {Path(to_file).name} "
               "--reply REPLY")
    if done.left:
        click.echo(f"{done.left} more events did not fit: export again once HQ's reply to "
                   "this bundle is imported")


@node_bundle_group.command("import", help="Import HQ's reply to a bundle: the shelter's "
                                          "updates and what HQ has received.")
@NODE_DATA
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def bundle_import(data: str, file: str) -> None:
    ctx = open_existing(data, "node")
    try:
        done = import_reply(ctx, Path(file))
    except BundleRefused as refused:
        audit(ctx.store, "cli", "bundle_reply_refused", _claimed(refused),
              f"{refused.code}: {refused}"[:300])
        raise ShelterCommandError(f"reply refused: {refused}") from None
    audit(ctx.store, "cli", "bundle_reply_import", done.bundle_id,
          f"{done.updates} updates, {done.applied} applied")
    held = ", ".join(f"{o} through {s}" for o, s in sorted(done.acked.items()))
    click.echo(f"imported reply {done.bundle_id} from HQ {done.hq_id}: {done.updates} "
               f"updates (applied {done.applied}, already here "
               f"{done.updates - done.applied - done.quarantined}, quarantined "
               f"{done.quarantined}); HQ holds {held or 'nothing yet'}")


@click.group("bundle", help="Courier bundles from shelter nodes with no link.")
def hq_bundle_group() -> None:
    pass


@hq_bundle_group.command("import", help="Apply a node's bundle once (it may run while HQ "
                                        "serves); --reply writes the shelter's updates.")
@HQ_DATA
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--reply", "reply_file", default=None, type=click.Path(dir_okay=False),
              help="Also write HQ's reply for the node to this file (must not exist).")
def hq_bundle_import(data: str, file: str, reply_file: str | None) -> None:
    ctx = open_existing(data, "hq")
    if reply_file and Path(reply_file).exists():
        raise ShelterCommandError(f"{reply_file} exists; choose a new file name for the "
                                  "reply (nothing was imported)")
    try:
        done = import_bundle(ctx, Path(file))
    except BundleRefused as refused:
        audit(ctx.store, "cli", "bundle_import", _claimed(refused),
              f"refused: {refused.code}: {refused}"[:300])
        if refused.authentic and reply_file:  # imported before: the reply may be lost
            _reply(ctx, refused.header, reply_file)
        raise ShelterCommandError(f"bundle refused: {refused}") from None
    header = done.header
    audit(ctx.store, "cli", "bundle_import", header["node_id"],
          f"bundle {header['bundle_id']}: applied {done.applied}, duplicates "
          f"{done.duplicates}, quarantined {done.quarantined}, refused {done.refused}")
    click.echo(f"imported bundle {header['bundle_id']} from node {header['node_id']} of "
               f"shelter {header['shelter_id']} (made {header['created_at']}): applied "
               f"{done.applied}, duplicates {done.duplicates}, quarantined "
               f"{done.quarantined}, refused {done.refused}, conflicts {done.conflicts}")
    for gap in done.gaps:
        click.echo(f"not applied after a gap: {gap}; the rest comes with the next bundle or "
                   "sync")
    if reply_file:
        _reply(ctx, header, reply_file)


def _reply(ctx: NodeContext, header: dict[str, Any], reply_file: str) -> None:
    try:
        count = write_reply(ctx, header, Path(reply_file))
    except (BundleRefused, OSError) as error:
        raise ShelterCommandError(f"no reply written: {error}") from None
    click.echo(f"reply for node {header['node_id']} written to {reply_file} ({count} "
               f"updates); on the node: shelter bundle import --data DIR "
               f"{Path(reply_file).name}")


def _claimed(refused: BundleRefused) -> str:
    node = refused.header.get("node_id")
    return f"node {node}" if isinstance(node, str) else "unknown sender"
