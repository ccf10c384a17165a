"""The `shelter` command."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import click

import shelter.hq  # noqa: F401  (the domain's projections, HQ's store hooks)
from shelter.commands import backup as backup_commands
from shelter.commands import bundle as bundle_commands
from shelter.commands import hq as hq_commands
from shelter.commands import standby as standby_commands
from shelter.commands.common import DATA, ShelterCommandError, open_node
from shelter.commands.replace import rebuild_if_pending
from shelter.core import atrest, keys, server
from shelter.core.node import DB_FILE, NodeContext, cards_issued
from shelter.domain import accounts
from shelter.domain.settings import change_settings, get_settings
from shelter.launch import node_listeners, start_backups, start_sync


@click.group(help="Shelter: evacuation shelter nodes and the prefecture HQ.")
@click.pass_context
def main(click_ctx: click.Context) -> None:
    # Whatever these processes write (data directory, backups, files a listener makes) is
    # readable by its owner alone; the data directory is also tightened on every start.
    previous = os.umask(atrest.UMASK)
    click_ctx.call_on_close(lambda: os.umask(previous))


def _hq_option(_: click.Context, __: click.Parameter, value: str | None) -> str | None:
    """--hq, checked before the data directory is opened: each comma-separated address
    ``https://host:port``, normalized; a bad one is a usage error that names it."""
    from sync import hq_addresses
    try:
        return None if value is None else ",".join(hq_addresses.parse(value))
    except hq_addresses.BadHQAddress as error:
        raise click.BadParameter(str(error)) from None


@main.command("node", help="Run a shelter node: HTTPS on --port, plain HTTP for "
                           "evacuees' own phones on --http-port.")
@DATA
@click.option("--port", type=int, default=8443, show_default=True, help="HTTPS port.")
@click.option("--http-port", type=int, default=None,
              help="Also serve the registration pages over plain HTTP on this port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--shelter-id", default=None, help="The shelter's id (GSI 共通ID), first start.")
@click.option("--shelter-name", default=None, help="The shelter's name, shown on every page.")
@click.option("--hq", "hq_url", default=None, metavar="URL[,URL2]", callback=_hq_option,
              help="The prefecture HQ's base URL (https://host:port), or several, comma-"
                   "separated (a standby HQ at a second site): the node syncs with whichever "
                   "answers, in the background while it serves.")
@click.option("--enroll", "enroll_code", default=None,
              help="The one-time code from `shelter hq enroll` (first start with --hq).")
@click.option("--clock-offset", type=float, default=0.0, hidden=True,
              help="Pretend the wall clock is off by this many seconds (drills, tests).")
@click.option("--sync-max-backoff", type=float, default=60.0, hidden=True,
              help="Longest wait between sync attempts, in seconds (tests shorten it).")
@click.option("--enroll-retry-wait", type=click.FloatRange(min=0), default=1.5, hidden=True,
              help="First wait before trying enrollment again, doubling (tests shorten it).")
@click.option("--sync-standby", is_flag=True, default=False,
              help="Answer a scan or registration only once the standby (`shelter standby`) "
                   "has stored it; without it for a second, go on alone and say so.")
@click.option("--standby-wait", type=click.FloatRange(min=0.05, max=30), default=1.0,
              hidden=True, help="Seconds a write waits for the standby (tests lengthen it).")
@click.option("--backup-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Back the database up by itself into this directory (a USB stick): "
                   "rotating, integrity-checked copies; the desk shows the last good one.")
@click.option("--backup-every", type=click.FloatRange(min=0, min_open=True, max=60),
              default=None, help="Minutes between backups, at most 60 (default 15).")
@click.option("--backup-keep", type=click.IntRange(min=1), default=None,
              help="How many backups to keep in --backup-dir (default 24).")
def node_command(data: str, port: int, http_port: int | None, host: str,
                 shelter_id: str | None, shelter_name: str | None, hq_url: str | None,
                 enroll_code: str | None, clock_offset: float,
                 sync_max_backoff: float, enroll_retry_wait: float,
                 backup_dir: Path | None, backup_every: float | None,
                 backup_keep: int | None, sync_standby: bool = False,
                 standby_wait: float = 1.0) -> None:
    backups = _backup_options(data, backup_dir, backup_every, backup_keep)
    ctx = open_node(data, shelter_id)
    if shelter_name and get_settings(ctx.db)["shelter_name"] != shelter_name:
        change_settings(ctx.store, {"shelter_name": shelter_name})
    if hq_url:
        ctx = _connect_to_hq(ctx, hq_url, enroll_code, shelter_id, enroll_retry_wait)
        rebuild_if_pending(ctx, enroll_retry_wait)  # a replacement code: rebuild from HQ
    sys.exit(run_node(ctx, port, http_port, host, clock_offset,
                      sync_max_backoff=sync_max_backoff, backups=backups,
                      standby_wait=standby_wait if sync_standby else None))


def _backup_options(data: str, directory: Path | None, every: float | None,
                    keep: int | None) -> tuple[Path | None, float, int]:
    """--backup-dir, --backup-every, --backup-keep, checked: the latter two need the first,
    which must lie outside the data directory (a copy beside the original is no backup)."""
    from shelter.core.backups import DEFAULT_EVERY_MINUTES, DEFAULT_KEEP
    if directory is None:
        if every is not None or keep is not None:
            raise click.UsageError("--backup-every and --backup-keep need --backup-dir")
        return None, DEFAULT_EVERY_MINUTES, DEFAULT_KEEP
    inside = Path(directory).resolve()
    if inside == Path(data).resolve() or Path(data).resolve() in inside.parents:
        raise click.BadParameter("choose a directory outside the data directory (a USB "
                                 "stick)", param_hint="'--backup-dir'")
    return directory, every or DEFAULT_EVERY_MINUTES, keep or DEFAULT_KEEP


def _connect_to_hq(ctx: NodeContext, hq_url: str, enroll_code: str | None,
                   shelter_given: str | None = None,
                   retry_wait: float = 1.5) -> NodeContext:
    """The node, enrolled with HQ (with ``enroll_code`` the first time, or again after HQ
    revoked it: then under a new node id, since whoever held the old credential may have
    used the old id's sequence numbers). Without ``shelter_given`` (--shelter-id) a node
    that issued no card yet takes the shelter id the code is for."""
    from shelter.core import backup, meta
    from sync import client, enrollment, hq_addresses

    revoked = meta.get(ctx.db, "sync_state") == "revoked"
    if meta.get(ctx.db, "hq_credential") and not (revoked and enroll_code):
        if meta.get(ctx.db, "hq_url") != hq_url:
            # HQ moved or a standby HQ added: the credential stays (both HQs hold it), and
            # so does the one that answered last if it is among these (an address HQ told
            # does not lead the ones the operator gives now).
            values = {"hq_url": hq_url}
            if meta.get(ctx.db, hq_addresses.CURRENT_KEY) not in hq_url.split(","):
                values[hq_addresses.CURRENT_KEY] = ""
            meta.commit(ctx.store, values)
        return ctx
    if revoked and enroll_code:
        _, new_id = backup.new_epoch(ctx.db.conn, "enrolled again after HQ revoked the node")
        _new_card_key(ctx, new_id)
        ctx = open_node(str(ctx.data_dir))
    if not enroll_code:
        raise ShelterCommandError("this node is not enrolled with HQ yet: start it once "
                                  "with --enroll CODE (from `shelter hq enroll`)")
    # A fresh node (no card issued) started without --shelter-id becomes the code's shelter.
    # "Fresh": no card issued, and no shelter id ever given (it is still the node's own id;
    # a node set up as Y once keeps Y, and a code for X is refused as before).
    fresh = ctx.shelter_id == ctx.node_id and not cards_issued(ctx.db)
    try:
        enrolled = client.enroll(ctx, hq_url, enroll_code,
                                 shelter_from_code=shelter_given is None and fresh,
                                 first_wait=retry_wait)
    except (client.SyncRefused, enrollment.EnrollmentError) as refused:
        if refused.code == "used_code":
            raise ShelterCommandError(
                "enrollment failed: this enrollment code was already used (each code works "
                "once). Ask HQ for a new one (`shelter hq enroll`) and start the node again "
                "with it.") from None
        raise ShelterCommandError(f"enrollment failed: {refused}") from None
    except (OSError, client.SimpleWebsocketError) as error:  # tried again, or definite
        raise ShelterCommandError(f"cannot reach HQ at {hq_url}: {error}") from None
    click.echo(f"enrolled with HQ {enrolled.hq_id} for shelter {enrolled.shelter_id}")
    return open_node(str(ctx.data_dir)) if enrolled.shelter_id != ctx.shelter_id else ctx


def _new_card_key(ctx: NodeContext, node_id: str) -> None:
    """A node enrolled again after HQ revoked it signs new cards with a new key: whoever
    held the old directory holds the old key too. Cards already printed keep verifying
    here under the old ids' keys."""
    from shelter.core import meta

    pem = keys.new_private_key_pem()
    public = keys.public_key_text(keys.load_private_key(pem))
    meta.commit(ctx.store, {"card_signing_key": pem})
    with ctx.store.write() as db:
        db.execute("UPDATE card_keys SET public_key = ? WHERE node_id = ?", [public, node_id])


def run_node(ctx: NodeContext, port: int, http_port: int | None, host: str,
             clock_offset: float = 0.0, banner: str = "",
             sync_max_backoff: float = 60.0,
             backups: tuple[Path | None, float, int] = (None, 15.0, 24),
             standby_wait: float | None = None) -> int:
    listeners, lines = node_listeners(ctx, port, http_port, host, clock_offset,
                                      standby_wait=standby_wait)
    stop = threading.Event()
    lines += start_backups(ctx, stop, *backups)
    click.echo("\n".join(lines) + ("\n" + banner if banner else ""), err=False)
    sys.stdout.flush()
    start_sync(ctx, stop, sync_max_backoff)
    try:
        return server.supervise(listeners)
    finally:
        stop.set()


@main.group("user", help="Staff accounts.")
def user_group() -> None:
    pass


ROLE_HELP = (f"On a node: {', '.join(accounts.NODE_ROLES)}; at HQ: {', '.join(accounts.HQ_ROLES)} "
             "(each side refuses the other's roles).")


def _open_for_role(data: str, role: str) -> NodeContext:
    """The data directory, if ``role`` is one of its side's; a role of the other side is a
    bad --role (exit code 2, like an unknown role). An HQ role never makes a new directory
    (which would be a node's)."""
    if role in accounts.HQ_ROLES and not (Path(data) / DB_FILE).exists():
        raise click.BadParameter(f"{role!r} is an HQ role and {data} holds no HQ yet: make "
                                 f"it first with `shelter hq --data {data}`",
                                 param_hint="'--role'")
    ctx = open_node(data)
    try:
        accounts.check_role(ctx.db, role)
    except accounts.RoleError as error:
        raise click.BadParameter(str(error), param_hint="'--role'") from None
    return ctx


@user_group.command("add", help="Add a staff account (the first manager, for example).")
@DATA
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(accounts.NODE_ROLES + accounts.HQ_ROLES), required=True,
              help=ROLE_HELP)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters, not one of the commonest passwords (asked for "
                   "when not given).")
def user_add(data: str, username: str, role: str, password: str) -> None:
    ctx = _open_for_role(data, role)
    try:
        accounts.add_user(ctx.store, username, password, role)
    except ValueError as error:
        raise ShelterCommandError(str(error)) from None
    click.echo(f"added {role} {username}")


@main.group("token", help="Bearer tokens for scripts.")
def token_group() -> None:
    pass


@token_group.command("create", help="Print a new bearer token for the API.")
@DATA
@click.option("--role", type=click.Choice(accounts.NODE_ROLES + accounts.HQ_ROLES), required=True,
              help=ROLE_HELP)
@click.option("--label", default="", help="What the token is for.")
def token_create(data: str, role: str, label: str) -> None:
    ctx = _open_for_role(data, role)
    click.echo(accounts.create_token(ctx.store, role, label))


@main.command("demo", help="Start a demo on localhost: the prefecture HQ and three shelter "
                           "nodes, enrolled and syncing, with arrivals simulated for a few "
                           "minutes; prints every URL and login.")
@click.option("--data", "data", default="demo-data", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--port", type=int, default=8443, show_default=True,
              help="HTTPS port of the first shelter (the others use the next ones).")
@click.option("--http-port", type=int, default=8080, show_default=True,
              help="HTTP port of the first shelter (the others use the next ones).")
@click.option("--hq-port", type=int, default=9443, show_default=True, help="HQ's HTTPS port.")
@click.option("--minutes", type=float, default=5.0, show_default=True,
              help="How long arrivals are simulated.")
@click.option("--standby", is_flag=True,
              help="Also stream HQ to a replica (Litestream); when HQ's process is killed, "
                   "a standby HQ is restored from it on the next port and the shelters "
                   "move to it.")
def demo_command(data: str, port: int, http_port: int, hq_port: int, minutes: float,
                 standby: bool) -> None:
    from shelter import demo
    sys.exit(demo.run(Path(data), port, http_port, hq_port, minutes, standby))


main.add_command(hq_commands.hq_group)
main.add_command(backup_commands.backup_command)
main.add_command(backup_commands.restore_command)
main.add_command(standby_commands.standby_code_command)
main.add_command(standby_commands.standby_command)
main.add_command(standby_commands.promote_command)
main.add_command(bundle_commands.node_bundle_group)
hq_commands.hq_group.add_command(bundle_commands.hq_bundle_group)
