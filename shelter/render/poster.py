"""The printable poster: scan this with your own phone to register."""

from __future__ import annotations

import io

from shelter.core.tls import lan_addresses
from shelter.domain import cards


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
    jp = cards.font_for("避難所", "ja")
    c.setFont(jp, 30)
    c.drawCentredString(w / 2, h - 35 * mm, "避難者登録 Registration")
    c.setFont(jp, 16)
    c.drawCentredString(w / 2, h - 47 * mm, shelter_name)
    c.setFont(jp, 14)
    lines = [
        "スマートフォンでこのQRコードを読み取ってください",
        "Scan this code with your phone to register",
        "用手机扫描二维码登记",
        "휴대폰으로 QR 코드를 스캔하여 등록하세요",
        "Quét mã QR bằng điện thoại để đăng ký",
    ]
    y = h - 62 * mm
    for text in lines:
        font = cards.font_for(text, "zh" if "登记" in text else "ja")
        c.setFont(font, 13)
        c.drawCentredString(w / 2, y, cards.printable(text, font))
        y -= 8 * mm
    size = 110 * mm
    qy = y - size - 5 * mm
    cards.draw_qr(c, url, (w - size) / 2, qy, size)
    c.setFont("Helvetica", 12)
    c.drawCentredString(w / 2, qy - 8 * mm, url)
    if wifi_name:
        c.setFont(jp, 16)
        c.drawCentredString(w / 2, qy - 22 * mm, f"Wi-Fi: {wifi_name}")
    c.setFont(jp, 11)
    c.drawCentredString(w / 2, 20 * mm,
                        "受付でタブレットからも登録できます / You can also register at the desk")
    c.showPage()
    c.save()
    return out.getvalue()
