"""`shelter hq`: run the prefecture HQ, or manage it (the registry, enrollment codes,
revocation)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import click

from shelter.commands.common import DATA, ShelterCommandError, open_existing, open_hq
from shelter.core import server, tls
from shelter.core.node import NodeContext
from shelter.launch import hq_listener
from sync import hq_addresses, projector


@click.group("hq", invoke_without_command=True,
            help="Run the prefecture HQ (with --data and --port), or manage it.")
@click.option("--data", "data", default=None, type=click.Path(file_okay=False),
              help="HQ's data directory (made if missing).")
@click.option("--port", type=int, default=9443, show_default=True, help="HTTPS port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--stale-minutes", type=click.FloatRange(min=0.05), default=None,
              help="An open shelter not synced for this long is shown as silent (default 60; "
                   "remembered).")
@click.option("--replica", "replica_url", default=None, metavar="URL",
              help="Stream HQ's database continuously to this replica with Litestream (a "
                   "directory on a mounted volume, or sftp://user@host/path), for a standby "
                   "HQ at a second site (`shelter hq restore`).")
@click.option("--addresses", default=None, metavar="URL1,URL2",
              help="HQ's addresses as nodes reach it, this HQ's and its standby's at the "
                   "second site (https://host:port, comma-separated): told to every node "
                   "as it syncs, so that nodes enrolled with one address move to the "
                   "standby too (remembered; \"\" forgets them).")
@click.pass_context
def hq_group(click_ctx: click.Context, data: str | None, port: int, host: str,
             stale_minutes: float | None, replica_url: str | None,
             addresses: str | None) -> None:
    if click_ctx.invoked_subcommand is not None:
        return
    if not data:
        raise click.UsageError("shelter hq needs --data DIR (and --port P)")
    from shelter.hq import replica
    try:
        url = replica.replica_url(replica_url) if replica_url else None
        if url:
            replica.binary()
    except replica.ReplicaError as error:
        raise ShelterCommandError(str(error)) from None
    remembered: dict[str, str] = {}
    if stale_minutes is not None:
        remembered["hq_stale_minutes"] = f"{stale_minutes:g}"
    if addresses is not None:  # "" forgets them
        try:
            told = hq_addresses.parse(addresses) if addresses else []
        except hq_addresses.BadHQAddress as error:
            raise click.BadParameter(str(error), param_hint="--addresses") from None
        remembered[hq_addresses.ADVERTISED_KEY] = ",".join(told)
    ctx = open_hq(data)
    from shelter.hq import outlines
    outlines.ensure(ctx.store)  # an HQ whose registry was imported before there were outlines
    if remembered:
        from shelter.core import meta
        meta.commit(ctx.store, remembered)
    sys.exit(run_hq(ctx, port, host, url))


def run_hq(ctx: NodeContext, port: int, host: str, replica_url: str | None = None) -> int:
    listener, lines = hq_listener(ctx, port, host)
    listeners = [listener]
    from shelter.hq import replica
    if not replica_url:
        replica.forget(ctx.data_dir)
    else:
        try:
            listeners.append(replica.replicator(ctx.data_dir, replica_url))
            replica_url = replica.shown(replica_url)
        except replica.ReplicaError as error:
            raise ShelterCommandError(str(error)) from None
        lines.append(f"  replica:      {replica_url} (Litestream; a standby HQ: "
                     "shelter hq restore --data NEW --replica URL)")
    told = hq_addresses.advertised(ctx.db).get("hq_urls")
    if told:
        lines.append(f"  told nodes:   {', '.join(told)} (HQ's addresses, its standby's "
                     "among them: shelter hq --addresses)")
    click.echo("\n".join(lines))
    sys.stdout.flush()
    return server.supervise(listeners)


@hq_group.command("restore", help="Bring up a standby HQ from HQ's replica, in a new data "
                                  "directory, as a new HQ epoch (with the CA the nodes "
                                  "pinned); then `shelter hq --data NEW` serves it.")
@DATA
@click.option("--replica", "replica_url", required=True, metavar="URL",
              help="The replica `shelter hq --replica` streamed to.")
def hq_restore(data: str, replica_url: str) -> None:
    from shelter.hq import replica
    try:
        old, new, newest = replica.restore(Path(data), replica.replica_url(replica_url))
    except (replica.ReplicaError, OSError) as error:
        raise ShelterCommandError(str(error)) from None
    cert, _ = tls.ca_paths(Path(data))
    click.echo(f"restored HQ {old} as a new epoch: {new}\n"
               f"  the replica's newest event was recorded at {newest or '(none)'} (UTC): "
               "anything later (a revocation, an enrollment) must be done again here\n"
               f"  CA fingerprint (SHA-256): {tls.fingerprint(cert)} (the one nodes pinned)\n"
               f"  serve it: shelter hq --data {data} --port PORT; nodes given both "
               "addresses (--hq URL1,URL2) move to it and re-push what the replica lacked")


@hq_group.command("rebuild", help="Make HQ's read models again from its log, while HQ "
                                  "serves from the old ones, then switch (after a "
                                  "projection bug is fixed).")
@DATA
def hq_rebuild(data: str) -> None:
    from sync import hq_rebuild as rebuilding

    ctx = open_existing(data, "hq")  # never a new, empty HQ "rebuilt"
    projector.adopt_existing(ctx)
    try:
        figures = rebuilding.rebuild(ctx, say=click.echo)
    except rebuilding.NotCovered as error:
        raise ShelterCommandError(f"no rebuild, HQ's read models unchanged: {error}") from None
    except (OSError, sqlite3.Error) as error:
        raise ShelterCommandError(f"the rebuild stopped, HQ's read models unchanged: "
                                  f"{type(error).__name__}: {error}") from None
    click.echo(f"rebuilt HQ's read models from log position 1 to {figures['position']}: "
               f"{figures['log_rows']} rows, {figures['own_events']} of HQ's own steps")


@hq_group.command("import", help="Import or update the shelter registry from GSI GeoJSON/CSV "
                                   "or the standard open-data CSV (指定緊急避難場所一覧).")
@DATA
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def hq_import(data: str, file: str) -> None:
    from shelter.hq.shelters import ImportProblem, import_file

    ctx = open_hq(data)
    try:
        done = import_file(ctx.store, Path(file))
    except ImportProblem as problem:
        raise ShelterCommandError(str(problem)) from None
    click.echo(f"{done['format']}: {done['shelters']} shelters in {done['municipalities']} "
               f"municipalities ({done['new']} new, {done['updated']} updated, "
               f"{done['skipped']} rows skipped)")
    from shelter.hq import outlines
    drawn = outlines.refresh(ctx.store)  # the map's outlines follow the registry
    click.echo(f"map: {drawn['derived']} municipality outlines derived from the shelters"
               + (f", {drawn['imported']} from the imported boundary file"
                  if drawn["imported"] else ""))


@hq_group.command("import-outlines",
                  help="Import municipality boundaries for HQ's map (GeoJSON polygons named "
                       "by municipality or 団体コード, e.g. MLIT's N03): they replace the "
                       "outlines derived from the shelters; a file that cannot be used is "
                       "refused and changes nothing.")
@DATA
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def hq_import_outlines(data: str, file: str) -> None:
    from shelter.hq.outlines import OutlineProblem, import_file

    ctx = open_hq(data)
    try:
        done = import_file(ctx.store, Path(file))
    except OutlineProblem as problem:
        raise ShelterCommandError(f"{Path(file).name}: {problem}") from None
    click.echo(f"map: {done['imported']} municipality outlines from {Path(file).name}, "
               f"{done['derived']} derived from the shelters ({done['ignored']} features "
               "of no municipality in the registry ignored)")
    if done["without"]:
        click.echo("not in the file (derived instead): " + ", ".join(done["without"]),
                   err=True)


@hq_group.command("enroll", help="Print a one-time enrollment code for a shelter's node.")
@DATA
@click.option("--shelter", "shelter_id", required=True, help="The shelter's id.")
@click.option("--replace", is_flag=True,
              help="For a new laptop of a shelter whose node is gone: the node rebuilds the "
                   "shelter from what HQ holds.")
def hq_enroll(data: str, shelter_id: str, replace: bool) -> None:
    from shelter.domain.accounts import audit
    from shelter.domain.cards import valid_id
    from sync import enrollment, history
    if not valid_id(shelter_id):
        raise ShelterCommandError("a shelter id is upper-case letters, digits and '-'")
    ctx = open_hq(data)
    ca_cert = tls.ensure_ca(ctx.data_dir, "Prefecture HQ")  # HQ may be serving: CA only
    import ssl
    der = ssl.PEM_cert_to_DER_cert(ca_cert.read_text())
    with ctx.store.write() as db:
        code = enrollment.issue_code(db, shelter_id, der, replace=replace)
    if replace:  # this code opens the shelter's records to whoever redeems it first
        audit(ctx.store, "cli", "replacement_code", shelter_id, "")
        if not history.has_history(ctx.db, shelter_id):
            click.echo(f"note: HQ holds no records of shelter {shelter_id}: the new node "
                       "will start empty", err=True)
        live = sorted({str(n["node_id"]) for n in enrollment.nodes_of(ctx.db, shelter_id)
                       if not n["revoked"]})
        if live:  # a lost laptop's credential still syncs, into the new node's history too
            click.echo(f"note: node {', '.join(live)} of shelter {shelter_id} is not revoked: "
                       "if the old laptop was lost or stolen, revoke it first (shelter hq "
                       "revoke --data DIR --node ID)", err=True)
    click.echo(code)


@hq_group.command("revoke", help="Revoke a shelter node's sync credential (a stolen or "
                                   "replaced laptop): HQ refuses it from now on.")
@DATA
@click.option("--node", "node_id", required=True, help="The node's id (HQ's sync page).")
def hq_revoke(data: str, node_id: str) -> None:
    from shelter.domain.accounts import audit
    from sync import enrollment
    ctx = open_hq(data)
    with ctx.store.write() as db:
        revoked = enrollment.revoke(db, node_id)
    if not revoked:
        raise ShelterCommandError(f"HQ has no enrolled node {node_id}")
    audit(ctx.store, "cli", "revoke_node", node_id, " ".join(revoked))
    click.echo(f"revoked {', '.join(revoked)}; enroll the shelter again with "
               "`shelter hq enroll`")
