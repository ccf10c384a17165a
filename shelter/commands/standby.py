"""`shelter standby-code`, `shelter standby` and `shelter promote`: a second machine at the
shelter that follows the node's records continuously (sync/follower.py), and makes itself
the shelter's node when the node is lost."""

from __future__ import annotations

import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import click
from simple_websocket.errors import SimpleWebsocketError

from shelter.commands.common import DATA, ShelterCommandError, open_node
from shelter.core import meta, server, tls
from shelter.core.node import DB_FILE, NodeContext
from shelter.domain.settings import get_settings
from shelter.launch import node_listeners, start_sync
from sync import follower, standby, standby_dir

NODE_START_SECONDS = 30.0
STANDBY_DATA = click.option("--data", "data", required=True, type=click.Path(file_okay=False),
                            help="The standby's data directory (made if missing).")


@click.command("standby-code", help="Print a one-time code that enrolls a standby of this "
                                    "node (`shelter standby --enroll`): valid 24 hours; it "
                                    "pins this node's certificate.")
@DATA
def standby_code_command(data: str) -> None:
    if not (Path(data) / DB_FILE).exists():
        raise ShelterCommandError(f"there is no node in {data}")
    ctx = open_node(data)
    if ctx.role != "node":
        raise ShelterCommandError(f"{data} holds HQ's data: a standby follows a shelter node")
    ca_cert = tls.ensure_ca(ctx.data_dir, get_settings(ctx.db)["shelter_name"])
    with ctx.store.write() as db:
        code = standby.issue_code(db, ssl.PEM_cert_to_DER_cert(ca_cert.read_text()))
    click.echo(code)
    click.echo("on the second machine: shelter standby --data DIR --port P --primary "
               "https://THIS-NODE:PORT --enroll CODE", err=True)


def _shown(host: str) -> str:
    """The address tablets reach this machine at."""
    lan = tls.lan_addresses()
    return lan[0] if lan and host not in ("127.0.0.1", "localhost", "::1") else "localhost"


def _probe(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - any address


@click.command("standby", help="Run a standby of a shelter node on a second machine: it "
                               "follows the node's records continuously and shows how far "
                               "behind it is on --port; `shelter promote` makes it the node.")
@STANDBY_DATA
@click.option("--port", type=int, default=8443, show_default=True,
              help="HTTPS port of the standby's status page, and of the node once promoted.")
@click.option("--http-port", type=int, default=None,
              help="Once promoted: also serve the registration pages over plain HTTP here.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--primary", "primary_url", required=True,
              help="The node's address (https://host:port, as the tablets use it).")
@click.option("--enroll", "enroll_code", default=None,
              help="The one-time code from `shelter standby-code` on the node (first start).")
@click.option("--enroll-retry-wait", type=click.FloatRange(min=0), default=1.0, hidden=True,
              help="First wait before trying enrollment again, doubling (tests shorten it).")
def standby_command(data: str, port: int, http_port: int | None, host: str, primary_url: str,
                    enroll_code: str | None, enroll_retry_wait: float) -> None:
    data_dir = Path(data)
    if urlsplit(primary_url).scheme != "https" or not urlsplit(primary_url).netloc:
        raise click.BadParameter("the node's HTTPS address, https://host:port",
                                 param_hint="'--primary'")
    try:
        db = standby_dir.prepare(data_dir)
    except ValueError as error:
        raise ShelterCommandError(str(error)) from None
    store = follower.writer(db)
    meta.commit(store, {"standby_port": str(port), "standby_host": host,
                        "standby_http_port": str(http_port or "")})
    refused = (meta.get(db, "standby_state") or "").startswith("refused")
    if enroll_code and (not meta.get(db, "standby_credential") or refused):
        try:
            answer = follower.enroll(db, data_dir, primary_url, enroll_code,
                                     first_wait=enroll_retry_wait)
        except standby.StandbyError as refusal:
            raise ShelterCommandError(f"enrollment failed: {refusal.message}") from None
        except (OSError, SimpleWebsocketError) as error:
            raise ShelterCommandError(f"cannot reach the node at {primary_url}: {error}") \
                from None
        click.echo(f"enrolled as the standby of node {answer['node_id']} "
                   f"(shelter {answer['shelter_id']})")
    elif not meta.get(db, "standby_credential"):
        raise ShelterCommandError("this standby is not enrolled yet: start it once with "
                                  "--enroll CODE (from `shelter standby-code --data NODE_DIR` "
                                  "on the node)")
    meta.commit(store, {"standby_primary": primary_url})  # the node may have moved
    db.conn.close()
    stop = threading.Event()
    following = follower.Follower(data_dir, stop)
    following.start()
    if not (standby_dir.meta_of(data_dir, "node_id") and (data_dir / "tls/ca.crt").exists()):
        if not following.received.wait(NODE_START_SECONDS):  # the first start: its records
            raise ShelterCommandError(f"the node at {primary_url} sent nothing within "
                                      f"{NODE_START_SECONDS:.0f} s: is it running?")
    sys.exit(_serve(data_dir, port, http_port, host, primary_url, stop))


def _serve(data_dir: Path, port: int, http_port: int | None, host: str, primary_url: str,
           stop: threading.Event) -> int:
    """The standby's status page until it is promoted; then, on the same port, the node."""
    ctx = standby_dir.StandbyContext(data_dir)
    name = get_settings(ctx.db)["shelter_name"]
    cert, key = tls.ensure_certificates(data_dir, name)
    listener = server.Listener("https standby", f"{host}:{port}", server.app_env(
        data_dir, ROLE="standby", SESSION_COOKIE_SECURE=True), tls=(cert, key))
    shown = _shown(host)
    click.echo("\n".join([
        f"Standby of shelter {ctx.shelter_id} (node {ctx.node_id}) — {name}",
        f"  following:  {primary_url}", f"  status:     https://{shown}:{port}/standby",
        f"  if the node is lost: shelter promote --data {data_dir}"]))
    sys.stdout.flush()
    server.supervise([listener], until=lambda: standby_dir.promoted(data_dir))
    stop.set()
    if not standby_dir.promoted(data_dir):
        return 0  # stopped (SIGTERM), still a standby
    node = NodeContext(data_dir)
    listeners, lines = node_listeners(node, port, http_port, host)
    node_stop = threading.Event()
    click.echo("\n".join(["promoted: this machine now serves as the shelter's node", *lines]))
    sys.stdout.flush()
    start_sync(node, node_stop)
    try:
        return server.supervise(listeners)
    finally:
        node_stop.set()


def _answers(url: str, context: ssl.SSLContext) -> int | None:
    """The HTTP status ``url`` answers with (None: nothing answered)."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as answer:  # noqa: S310
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, ValueError):
        return None


@click.command("promote", help="Make this standby the shelter's node (the node is lost): a "
                               "new epoch; the shelter's cards still verify and it goes on "
                               "syncing to HQ. Prints the address the tablets must now use.")
@STANDBY_DATA
@click.option("--force", is_flag=True, default=False,
              help="Promote even though the node still answers (both would take scans).")
def promote_command(data: str, force: bool) -> None:
    data_dir = Path(data)
    if standby_dir.meta_of(data_dir, "role") not in (standby_dir.ROLE, standby_dir.PROMOTING):
        raise ShelterCommandError(f"{data} is not a standby's data directory")
    primary = standby_dir.meta_of(data_dir, "standby_primary")
    ca = data_dir / follower.PRIMARY_CA_FILE
    if primary and ca.exists() and not force and _answers(
            f"https://{urlsplit(primary).netloc}/trust",
            ssl.create_default_context(cafile=str(ca))) is not None:
        raise ShelterCommandError(f"the node at {primary} still answers: stop it first (two "
                                  "nodes of one shelter would both take scans), or promote "
                                  "with --force")
    port = int(standby_dir.meta_of(data_dir, "standby_port") or 8443)
    host = standby_dir.meta_of(data_dir, "standby_host") or "0.0.0.0"  # noqa: S104
    http_port = standby_dir.meta_of(data_dir, "standby_http_port") or ""
    local = ssl._create_unverified_context()  # noqa: S323 - our own server, on this machine
    base = f"https://{_probe(host)}:{port}"
    running = _answers(f"{base}/standby/status.json", local) == 200
    try:
        old, new = standby_dir.promote(data_dir)
    except ValueError as error:
        raise ShelterCommandError(str(error)) from None
    shelter = standby_dir.meta_of(data_dir, "shelter_id")
    click.echo(f"promoted: shelter {shelter} continues as node {new}, a new epoch after node "
               f"{old} (its cards still verify)")
    hq = standby_dir.meta_of(data_dir, "hq_url")
    if hq:
        hqs = hq.replace(",", " or ") + (" (whichever answers)" if "," in hq else "")
        click.echo(f"  it goes on syncing to HQ at {hqs} under the node's enrollment")
    start = f"shelter node --data {data} --port {port}" + (
        f" --http-port {http_port}" if http_port else "")
    if running:
        deadline = time.monotonic() + NODE_START_SECONDS
        while _answers(f"{base}/register", local) != 200:
            if time.monotonic() > deadline:
                raise ShelterCommandError(f"promoted, but the standby did not start serving "
                                          f"as the node: start it with `{start}`")
            time.sleep(0.2)
        click.echo(f"  the standby now serves as the node on port {port}")
    else:
        click.echo(f"  the standby is not running: start the node with `{start}`")
    shown = _shown(host)
    click.echo(f"tablets must now use: https://{shown}:{port}/desk (staff), "
               f"https://{shown}:{port}/kiosk (kiosk)"
               + (f", http://{shown}:{http_port}/register (phones)" if http_port else ""))
