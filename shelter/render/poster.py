"""The printable poster: scan this with your own phone to register."""

from __future__ import annotations

import io

from shelter.core.tls import lan_addresses
from shelter.domain import cards, fonts


def registration_url(host_url: str, http_port: int | None = None) -> str:
    """Where a phone on the shelter's Wi-Fi reaches the registration form.

    The plain-HTTP port (``http_port``: the node's --http-port) is preferred: a phone must
    not meet a certificate warning. A loopback host name is swapped for the machine's LAN
    address, since a phone cannot reach "localhost".
    """
    scheme, rest = host_url.rstrip("/").split("://", 1)
    host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if host in ("localhost", "127.0.0.1", "[::1]"):
        lan = lan_addresses()
        host = lan[0] if lan else host
    if http_port:
        return f"http://{host}:{http_port}/register"
    return f"{scheme}://{host}{':' + port if port else ''}/register"


def poster_pdf(url: str, shelter_name: str, wifi_name: str) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    w, h = A4
    c = canvas.Canvas(out, pagesize=A4)
    c.setTitle("Registration poster")
    fonts.draw(c, "避難者登録 Registration", w / 2, h - 35 * mm, 30)
    fonts.draw(c, shelter_name, w / 2, h - 47 * mm, 16)
    lines = [
        ("スマートフォンでこのQRコードを読み取ってください", "ja"),
        ("Scan this code with your phone to register", "en"),
        ("用手机扫描二维码登记", "zh"),
        ("휴대폰으로 QR 코드를 스캔하여 등록하세요", "ko"),
        ("Quét mã QR bằng điện thoại để đăng ký", "vi"),
    ]
    y = h - 62 * mm
    for text, language in lines:
        fonts.draw(c, text, w / 2, y, 13, language)
        y -= 8 * mm
    size = 110 * mm
    qy = y - size - 5 * mm
    cards.draw_qr(c, url, (w - size) / 2, qy, size)
    c.setFont("Helvetica", 12)
    c.drawCentredString(w / 2, qy - 8 * mm, url)
    if wifi_name:
        fonts.draw(c, f"Wi-Fi: {wifi_name}", w / 2, qy - 22 * mm, 16)
    fonts.draw(c, "受付でタブレットからも登録できます / You can also register at the desk",
               w / 2, 20 * mm, 11)
    c.showPage()
    c.save()
    return out.getvalue()
