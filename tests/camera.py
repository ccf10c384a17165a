"""A card held up to a tablet's camera: a Y4M video for Chromium's fake capture device.

Chromium started with ``--use-file-for-fake-video-capture=FILE.y4m`` plays the file as the
camera (looping), so ``getUserMedia`` in the page sees the card.
"""

from __future__ import annotations

import io
from pathlib import Path

import zxingcpp
from PIL import Image, ImageOps

WIDTH, HEIGHT, FPS = 640, 480, 10


def card_from_page(page_png: bytes) -> Image.Image:
    """Cut the first card (QR plus the name and code printed under it) out of a rendered
    card sheet, the way a person would hold one card up."""
    page = Image.open(io.BytesIO(page_png)).convert("L")
    found = zxingcpp.read_barcodes(page, formats=zxingcpp.barcode_formats_from_str("QRCode"))
    assert found, "no QR code on the rendered page"
    pos = found[0].position
    xs = [pos.top_left.x, pos.top_right.x, pos.bottom_left.x, pos.bottom_right.x]
    ys = [pos.top_left.y, pos.top_right.y, pos.bottom_left.y, pos.bottom_right.y]
    size = max(xs) - min(xs)
    box = (max(0, min(xs) - size // 3), max(0, min(ys) - size // 4),
           min(page.width, max(xs) + size // 3), min(page.height, max(ys) + size // 2))
    return page.crop(box)


def write_y4m(card: Image.Image, path: Path, frames: int = 20) -> Path:
    """The card on a grey desk, a little off centre, in every frame."""
    scene = Image.new("L", (WIDTH, HEIGHT), 96)
    fitted = ImageOps.contain(card, (int(WIDTH * 0.7), int(HEIGHT * 0.9)))
    scene.paste(fitted, ((WIDTH - fitted.width) // 2 + 20, (HEIGHT - fitted.height) // 2))
    luma = scene.tobytes()
    chroma = bytes([128]) * ((WIDTH // 2) * (HEIGHT // 2))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + luma + chroma + chroma)
    return path
