"""Starting a node's or HQ's servers and its sync: what `shelter node`, `shelter hq` and the
demo all do, with the lines that tell people where to find them."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from shelter.core import meta, server, tls
from shelter.core.node import NodeContext
from shelter.domain.settings import get_settings
from sync import projector


def node_listeners(ctx: NodeContext, port: int, http_port: int | None, host: str,
                   clock_offset: float = 0.0, standby_wait: float | None = None
                   ) -> tuple[list[server.Listener], list[str]]:
    """A node's web servers, and the lines that tell people where to find them.
    ``standby_wait``: writes wait up to that many seconds for the standby (--sync-standby)."""
    name = get_settings(ctx.db)["shelter_name"]
    cert, key = tls.ensure_certificates(ctx.data_dir, name)
    common = {"CLOCK_OFFSET_SECONDS": clock_offset or None,
              "STANDBY_WAIT_SECONDS": standby_wait}
    listeners = [server.Listener(f"https {ctx.shelter_id}", f"{host}:{port}",
                                 server.app_env(ctx.data_dir, SESSION_COOKIE_SECURE=True,
                                                PUBLIC_HTTP_PORT=http_port, **common),
                                 tls=(cert, key))]
    if http_port:
        listeners.append(server.Listener(
            f"http {ctx.shelter_id}", f"{host}:{http_port}",
            server.app_env(ctx.data_dir, HTTPS_PORT=port, SESSION_COOKIE_NAME="shelter_public",
                           **common)))
    ca_cert, _ = tls.ca_paths(ctx.data_dir)
    lan = tls.lan_addresses()
    shown = lan[0] if lan and host not in ("127.0.0.1", "localhost") else "localhost"
    lines = [f"Shelter node {ctx.node_id} ({ctx.shelter_id}) — {name}",
             f"  staff, desk tablets:  https://{shown}:{port}/staff",
             f"  kiosk tablet:         https://{shown}:{port}/kiosk"]
    if http_port:
        lines.append(f"  evacuees' own phones: http://{shown}:{http_port}/register")
        lines.append(f"  household codes:      http://{shown}:{http_port}/prepare")
    lines += [f"  trust this node:      http://{shown}:{http_port or port}/trust",
              f"  CA fingerprint (SHA-256): {tls.fingerprint(ca_cert)}"]
    if standby_wait is not None:
        lines.append(f"  standby: a write is answered once the standby has it (alone, and "
                     f"every desk says so, when it has not within {standby_wait:g} s)")
    return listeners, lines


def start_sync(ctx: NodeContext, stop: threading.Event, max_backoff: float = 60.0) -> None:
    if meta.get(ctx.db, "hq_credential"):
        from sync.client import SyncClient
        SyncClient(ctx.data_dir, stop, max_backoff=max_backoff).start()


def start_backups(ctx: NodeContext, stop: threading.Event, directory: Path | None,
                  every_minutes: float, keep: int) -> list[str]:
    """Backups by themselves into ``directory`` (none without it); the lines to print."""
    from shelter.core import backups
    backups.configure(ctx, directory)
    if directory is None:
        return ["  backups: none automatic (start with --backup-dir DIR, a USB stick)"]
    backups.BackupSchedule(ctx, directory, stop, every_minutes, keep).start()
    lines = [f"  backups: every {every_minutes:g} min into {directory}, the newest {keep} kept"]
    try:
        if os.stat(directory).st_dev == os.stat(ctx.data_dir).st_dev:
            lines.append("  note: the backup directory is on the same disk as the data; "
                         "a copy there does not survive that disk")
    except OSError:
        lines.append("  note: the backup directory is not there now (the desk warns "
                     "until it is)")
    return lines


def hq_listener(ctx: NodeContext, port: int, host: str) -> tuple[server.Listener, list[str]]:
    cert, key = tls.ensure_certificates(ctx.data_dir, "Prefecture HQ")
    from shelter.hq import replica
    with ctx.store.write() as db:  # a replica or backup carries the CA the nodes pinned
        replica.carry_ca(db, ctx.data_dir)
    # An HQ from before the log adopts its stored events as the log's first rows; a
    # restored one fences its log past what its read models hold (sync/projector.py).
    projector.adopt_existing(ctx)
    listener = server.Listener("https hq", f"{host}:{port}", server.app_env(
        ctx.data_dir, ROLE="hq", SESSION_COOKIE_SECURE=True, PROJECTOR="process"),
        tls=(cert, key),
        threads=server.HQ_THREADS)
    ca_cert, _ = tls.ca_paths(ctx.data_dir)
    shown = "localhost" if host in ("127.0.0.1", "localhost") else \
        (tls.lan_addresses() or ["localhost"])[0]
    return listener, [f"Prefecture HQ {ctx.node_id}",
                      f"  staff:        https://{shown}:{port}/hq",
                      f"  nodes sync:   https://{shown}:{port} (shelter node --hq ...)",
                      f"  CA fingerprint (SHA-256): {tls.fingerprint(ca_cert)}"]
