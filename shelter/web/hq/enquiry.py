"""Safety enquiries (安否確認) at HQ: staff search for someone a relative or an acquaintance
asks about, and are told only what that person consented to (shelter/domain/enquiry.py).

After an answer the form is empty again: the next caller never finds the last one's name
in it (nor the browser's autofill: ``autocomplete="off"``). The answer says whom it is for,
until "next caller" clears it. A form that cannot be searched keeps what was typed, for the
same caller."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from shelter.core.errors import InvalidInput, TooMany
from shelter.domain import enquiry as enquiries
from shelter.hq import board
from shelter.web import i18n
from shelter.web.base import node, require
from shelter.web.hq import actor

bp = Blueprint("hq_enquiry", __name__, url_prefix="/hq")


@bp.route("/enquiry", methods=["GET", "POST"])
@require("operator")
def enquiry() -> str | tuple[str, int]:
    if request.method == "GET":
        return render_template("hq/enquiry.html", form={}, results=None, problem=None,
                               asked=None)
    ctx = node()
    fields = enquiries.read_form(request.form)
    try:
        results = enquiries.answer(ctx.store, actor(), fields, board.shelter_names(ctx))
    except (InvalidInput, TooMany) as refused:
        return render_template("hq/enquiry.html", form=fields, results=None, asked=None,
                               problem=refused.text(i18n.gettext)), refused.status
    return render_template("hq/enquiry.html", form={}, results=results, problem=None,
                           asked=fields)
