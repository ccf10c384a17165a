"""What the desk (web/node/desk.py) and the kiosk's household code page
(web/node/arrival.py) share, neither being the other's blueprint: reading a camera's frames
for QR codes, the preview of a household code, and a refusal in the reader's words.

Camera frames are decoded on the node with zxing-cpp: iPad Safari and Chromium on Linux
have no BarcodeDetector, and decoding on the node needs no third-party code in the page.
"""

from __future__ import annotations

import io
import json
from typing import Any

from shelter.core.errors import ShelterError
from shelter.domain import households
from shelter.domain.accounts import audit
from shelter.web.base import node
from shelter.web.i18n import gettext

# What a refused household code or scan shows (a ShelterError's own status, 4xx).
Refusal = tuple[str, list[str], int]


def refusal(error: ShelterError) -> Refusal:
    """The message, each field's message (a household code whose registration needs
    attention), and the status of a refusal, in the reader's language."""
    if error.status >= 500:
        raise error
    fields = error.field_texts(gettext)
    return error.text(gettext), list(dict.fromkeys(fields.values())), error.status


def preview_household(code: str, actor: str) -> dict[str, Any]:
    """What a household code says, as this shelter sees it (``households.preview_code``:
    reads and checks, writes nothing); the look is audited as any look at a household."""
    ctx = node()
    found = households.preview_code(ctx.db, code, ctx.shelter_id)
    audit(ctx.store, actor, "view_household_code", found["household_id"],
          f"members={len(found['members'])}")
    return found


# --- the camera: the desk's (web/node/desk.py) and the kiosk's (web/node/arrival.py) -----

MAX_FRAME_PIXELS = 2_500_000

MAX_FRAME_SIDE = 4096


def codes_in(frame: bytes) -> dict[str, Any]:
    """The QR codes in one camera frame: ``{"codes": [...]}``, or ``{"codes": [], "error":
    ...}`` for a frame that is not a picture we can read or declares more pixels than a
    tablet camera sends. Used by the desk's camera and the kiosk's (web/node/arrival.py)."""
    import logging

    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    try:
        # Image.open reads the header only; the size is known before any decoding.
        # A header past PIL's own bomb limit raises DecompressionBombError here.
        image = Image.open(io.BytesIO(frame), formats=("JPEG", "PNG"))
    except Image.DecompressionBombError:
        return {"codes": [], "error": "frame too large"}
    except UnidentifiedImageError:
        return {"codes": [], "error": "not an image"}
    except Exception as error:  # noqa: BLE001 - any broken header is one bad frame
        logging.getLogger("shelter").debug("camera frame refused (%s)", type(error).__name__)
        return {"codes": [], "error": "not an image"}
    with image:
        width, height = image.size
        if width * height > MAX_FRAME_PIXELS or max(width, height) > MAX_FRAME_SIDE:
            return {"codes": [], "error": "frame too large"}
        try:
            found = zxingcpp.read_barcodes(image.convert("L"),
                                           formats=zxingcpp.barcode_formats_from_str("QRCode"))
        except Exception as error:  # noqa: BLE001 - truncated or corrupt image data
            logging.getLogger("shelter").debug("camera frame unreadable (%s)",
                                               type(error).__name__)
            return {"codes": [], "error": "not an image"}
    return {"codes": [r.text for r in found if r.valid]}


def serve_camera(ws: Any) -> None:
    """A camera socket: each binary message is one frame, each answer ``codes_in`` it.

    A frame that is not a picture we can read is answered ``{"codes": [], "error": ...}``
    (the page then sends its next frame) and the socket stays open: nothing a client sends
    ends it but silence."""
    while ws.connected:
        frame = ws.receive(timeout=120)
        if frame is None:
            break  # a camera screen silent for two minutes has gone away
        if not isinstance(frame, bytes | bytearray):
            ws.send(json.dumps({"codes": [], "error": "send frames as binary messages"}))
            continue
        ws.send(json.dumps(codes_in(bytes(frame))))
