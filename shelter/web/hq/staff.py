"""HQ's staff blueprint: the shared sign-in (shelter/web/signin.py), and /staff itself
leading to the dashboard: a shelter's staff pages (households, settings...) are not HQ's."""

from __future__ import annotations

from flask import redirect, url_for
from flask.typing import ResponseReturnValue

from shelter.web import signin

bp = signin.blueprint()


@bp.route("", methods=["GET", "POST"])
@bp.route("/<path:page>", methods=["GET", "POST"])
def home(page: str = "") -> ResponseReturnValue:
    return redirect(url_for("hq_dashboard.dashboard"))
