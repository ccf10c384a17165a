"""How a tablet comes to trust the node's own certificate authority."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from flask.typing import ResponseReturnValue

from shelter.core.tls import ca_paths, fingerprint
from shelter.web.base import node

bp = Blueprint("trust", __name__)


@bp.get("/trust")
def trust_page() -> ResponseReturnValue:
    ca_cert, _ = ca_paths(node().data_dir)
    return render_template("trust/trust.html",
                           fingerprint=fingerprint(ca_cert) if ca_cert.exists() else None)


@bp.get("/trust/shelter-ca.crt")
def ca_certificate() -> ResponseReturnValue:
    ca_cert, _ = ca_paths(node().data_dir)
    if not ca_cert.exists():
        abort(404)
    return Response(ca_cert.read_bytes(), mimetype="application/x-x509-ca-cert",
                    headers={"Content-Disposition": 'attachment; filename="shelter-ca.crt"'})
