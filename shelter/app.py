"""The application factory: one package, two roles ("node" for a shelter, "hq").

The role is decided here and nowhere else, by the data directory: each role has its table of
routes (the blueprints it serves, and nothing more), what the pages both share show for it,
and what it starts beside them. Views and templates never ask which role they run in.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

import shelter.hq  # noqa: F401  (the domain's projections, HQ's store hooks)
from shelter import projecting
from shelter.core.errors import N_
from shelter.core.node import NodeContext
from shelter.hq import refresher
from shelter.web import errors, hooks, prepare, templating, trust
from shelter.web import standby as standby_pages
from shelter.web.hq import api as hq_api
from shelter.web.hq import dashboard, enquiry, exports, maps, public, shelters, sync_socket
from shelter.web.hq import requests as hq_requests
from shelter.web.hq import staff as hq_staff
from shelter.web.node import (
    api,
    arrival,
    corrections,
    desk,
    kiosk,
    staff,
    standby_socket,
    supplies_pages,
)
from shelter.web.templating import Look
from sync import projector
from sync.standby_dir import StandbyContext
from sync.ws_link import ReaderThread

ROOT = Path(__file__).resolve().parent.parent

# Every route of each role, by blueprint: a role serves these and nothing else.
ROUTES: dict[str, tuple[Blueprint, ...]] = {
    "node": (staff.bp, trust.bp, kiosk.bp, api.bp, desk.bp, arrival.bp, supplies_pages.bp,
             standby_socket.bp, prepare.bp, corrections.bp),
    "hq": (hq_staff.bp, trust.bp, sync_socket.bp, hq_api.api, dashboard.bp, shelters.bp,
           hq_requests.bp, enquiry.bp, exports.bp, public.bp, prepare.bp, maps.bp),
    # A standby at the shelter (`shelter standby`): its status, and that it is one.
    "standby": (trust.bp, standby_pages.bp),
}
# What the pages both roles share show: where "back to the start" leads, the staff menu,
# and the name in the header (a shelter's is its own, from its settings).
LOOKS: dict[str, Look] = {
    "node": Look(start="kiosk.register", staff_menu="staff/_menu_node.html"),
    "hq": Look(start="hq_dashboard.dashboard", staff_menu="staff/_menu_hq.html",
               brand=N_("Prefecture HQ")),
    "standby": Look(start="standby_page.status_page", staff_menu="staff/_menu_node.html"),
}
# What a role runs beside its routes: HQ projects its log into its read models
# (sync/projector.py) and keeps its numbers ready (shelter/hq/refresher.py).
def _hq_beside(ctx: NodeContext, config: Any) -> None:
    if config["PROJECTOR"] == "process":  # HQ's server: on a core of its own
        projecting.start(ctx.data_dir)
    else:
        projector.ensure_projector(ctx)
    refresher.ensure_refresher(ctx)


START: dict[str, Callable[[NodeContext, Any], None]] = {"hq": _hq_beside}


def create_app(data_dir: str | Path | None = None, role: str = "node",
               test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask("shelter", template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.from_mapping(
        DATA_DIR=str(data_dir) if data_dir else "data",
        ROLE=role,  # "node" or "hq"; must match the data directory's
        SHELTER_ID=None,
        CLOCK_OFFSET_SECONDS=0.0,
        MAX_CONTENT_LENGTH=256 * 1024,
        SESSION_COOKIE_NAME="shelter_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=4),  # idle time; see web/base.py
        HTTPS_PORT=None,  # set when this server is the plain-HTTP one beside an HTTPS one
        PUBLIC_HTTP_PORT=None,  # on the HTTPS one: the plain-HTTP port phones register on
        JSON_SORT_KEYS=False,
        # Websockets. No protocol-level pings: simple-websocket then waits in select() on
        # the raw socket, which misses data TLS has already buffered, and a camera frame
        # would sit unread for a whole ping interval. The live screen sends its own
        # keepalive instead. A camera frame is a small JPEG.
        SOCK_SERVER_OPTIONS={"max_message_size": 1_500_000,
                             "thread_class": ReaderThread},  # sync/ws_link.py
        # `shelter node --sync-standby`: seconds a write waits for the standby (None: none).
        STANDBY_WAIT_SECONDS=None,
        # HQ: "process" runs the projector as a process of its own (shelter/projecting.py),
        # as `shelter hq` does; else a thread of this one.
        PROJECTOR="thread",
    )
    app.config.from_prefixed_env("SHELTER")
    if test_config:
        app.config.update(test_config)
    # A standby's directory has no identity of its own to open (sync/standby_dir.py).
    context = StandbyContext if app.config["ROLE"] == "standby" else NodeContext
    node = context(app.config["DATA_DIR"], role=app.config["ROLE"],
                   shelter_id=app.config["SHELTER_ID"],
                   clock_offset_seconds=float(app.config["CLOCK_OFFSET_SECONDS"]))
    app.extensions["shelter"] = node
    app.secret_key = node.secret_key
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Japanese stays readable
    templating.init_app(app, LOOKS[node.role])
    hooks.init_app(app)  # language, strict input, HTTPS and CSRF, headers
    errors.init_app(app)  # every error answered in one place: JSON for /api/, else a page
    for blueprint in ROUTES[node.role]:
        app.register_blueprint(blueprint)
    if node.role in START:
        START[node.role](node, app.config)
    return app
