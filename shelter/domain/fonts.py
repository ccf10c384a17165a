"""The fonts every PDF prints with (cards, the poster, the reports), chosen per run of text.

One name can need two fonts: no font on a Debian laptop has Japanese, simplified Chinese,
Korean and Vietnamese all together. So text is cut into runs by script and each run gets
the first font here that has its glyphs, embedded (reportlab subsets a TrueType font into
the PDF, so the sheet prints the same on any printer, any reader):

* Japanese (kana, and kanji the JIS sets have): IPAGothic (fonts-ipafont-gothic), whose
  kanji have the Japanese shapes;
* Korean (Hangul), simplified Chinese (张伟), and a kanji IPAGothic lacks: WenQuanYi Zen Hei
  (fonts-wqy-zenhei; TrueType outlines, unlike Noto CJK's CFF, which reportlab cannot
  embed); Chinese text of a Chinese household takes it for all its Han characters;
* Latin letters with stacked diacritics (Vietnamese: Nguyễn): DejaVu Sans
  (fonts-dejavu-core), since neither CJK font has them.

A machine without one of them (a fresh demo laptop) still prints: the run falls back to a
standard CID font the reader supplies (HeiseiKakuGo-W5, STSong-Light, HYGothic-Medium: not
embedded, so a reader without them shows boxes), or, for Vietnamese, to Helvetica with the
accents dropped; the log says once which font is missing and which package brings it.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from pathlib import Path
from typing import Any

log = logging.getLogger("shelter")

# name: (where Debian and others put it, index in a collection, the Debian package)
_TTF: dict[str, tuple[tuple[Path, ...], int, str]] = {
    "DejaVuSans": ((Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                    Path("/usr/share/fonts/TTF/DejaVuSans.ttf")), 0, "fonts-dejavu-core"),
    "IPAGothic": ((Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"),
                   Path("/usr/share/fonts/truetype/ipafont-gothic/ipag.ttf")), 0,
                  "fonts-ipafont-gothic"),
    "WenQuanYiZenHei": ((Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
                         Path("/usr/share/fonts/wenquanyi/wqy-zenhei/wqy-zenhei.ttc")), 0,
                        "fonts-wqy-zenhei"),
}
_ready: dict[str, Any] = {}  # name: the registered font (None: not on this machine)
_lock = threading.Lock()  # a page's threads: each font read (Zen Hei: 17 MB) and said once
# A kind of run: the fonts to try, best first; then the fallback that is always there.
_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "ja": (("IPAGothic", "WenQuanYiZenHei"), "HeiseiKakuGo-W5"),
    "zh": (("WenQuanYiZenHei", "IPAGothic"), "STSong-Light"),
    "ko": (("WenQuanYiZenHei",), "HYGothic-Medium"),
    "latin": (("DejaVuSans",), "Helvetica"),
}
_CID = ("HeiseiKakuGo-W5", "STSong-Light", "HYGothic-Medium")


def _ttf(name: str) -> Any:
    """The registered TrueType font, or None (said in the log once) when it is missing."""
    if name in _ready:
        return _ready[name]
    with _lock:
        return _ready[name] if name in _ready else _register(name)


def _register(name: str) -> Any:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    paths, index, package = _TTF[name]
    path = next((p for p in paths if p.exists()), None)
    font = None
    if path is not None:
        try:
            font = TTFont(name, str(path), subfontIndex=index)
            pdfmetrics.registerFont(font)
        except Exception as error:  # noqa: BLE001 - a broken font file must not stop a PDF
            log.warning("PDF font %s at %s cannot be used (%s): PDFs fall back to "
                        "fonts they do not embed", name, path, type(error).__name__)
            font = None
    else:
        log.warning("PDF font %s is not installed (Debian package %s): PDFs fall back "
                    "to fonts they do not embed", name, package)
    _ready[name] = font
    return font


def _cid(name: str) -> str:
    if name not in _ready:
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont(name))
        _ready[name] = name
    return name


def _kind(ch: str) -> str | None:
    """The script a character needs a font for; None for what every font has (ASCII
    letters, digits, spaces, punctuation), which goes with the run it is in."""
    code = ord(ch)
    if code < 0x80:
        return None
    if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "ko"
    if 0xC0 <= code <= 0x24F or 0x300 <= code <= 0x36F or 0x1E00 <= code <= 0x1EFF:
        return "latin"
    if 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF \
            or code >= 0x20000:
        return "cjk"  # Han, kana, CJK punctuation, full-width forms
    return None


def _font(kind: str, text: str) -> str:
    """The first font for ``kind`` that has every glyph of ``text``; else the fallback."""
    names, fallback = _CHOICES[kind]
    for name in names:
        font = _ttf(name)
        if font is not None and all(ord(ch) in font.face.charToGlyph
                                    for ch in text if _kind(ch)):
            return name
    if kind == "ja" and _ttf("IPAGothic") is not None:
        fallback = "STSong-Light"  # kanji the JIS sets lack: simplified Chinese (张伟)
    return _cid(fallback) if fallback in _CID else fallback


def runs(text: str, language: str = "ja") -> list[tuple[str, str]]:
    """``text`` cut into (font, text) runs that print every character: what a PDF draws.
    ``language``: the text's own (a Chinese household's names take Chinese glyphs)."""
    pieces: list[list[str]] = []  # [kind, text]; kind "" until the run meets a script
    for ch in text:
        kind = _kind(ch)
        if kind == "cjk":
            kind = "zh" if language.startswith("zh") else "ja"
        if pieces and (kind is None or pieces[-1][0] in ("", kind)):
            pieces[-1][0] = kind or pieces[-1][0]
            pieces[-1][1] += ch
        else:
            pieces.append([kind or "", ch])
    out: list[tuple[str, str]] = []
    for kind, piece in pieces:
        font = _font(kind or "ja", piece)  # "ja": also a kanji IPAGothic lacks (张伟)
        piece = printable(piece, font)
        if out and out[-1][0] == font:
            out[-1] = (font, out[-1][1] + piece)
        else:
            out.append((font, piece))
    return out or [(_font("ja", ""), "")]


def font_for(text: str, language: str = "ja") -> str:
    """One font for the whole of ``text`` (its first run's): for text of one script."""
    return runs(text, language)[0][0]


def printable(text: str, font: str) -> str:
    """``text`` as ``font`` can show it: Helvetica (no DejaVu here) loses its accents
    rather than printing empty boxes."""
    if font != "Helvetica":
        return text
    return "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch)).encode("latin-1", "replace").decode(
        "latin-1")


def width(text: str, size: float, language: str = "ja") -> float:
    """How wide ``text`` prints at ``size`` points, in points."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return sum(stringWidth(piece, font, size) for font, piece in runs(text, language))


def draw(c: Any, text: str, x: float, y: float, size: float, language: str = "ja") -> None:
    """Draw ``text`` centred on ``x`` on a reportlab canvas at ``size`` points, each run in
    its font."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    parts = runs(text, language)
    at = x - sum(stringWidth(piece, font, size) for font, piece in parts) / 2
    for font, piece in parts:
        c.setFont(font, size)
        c.drawString(at, y, piece)
        at += stringWidth(piece, font, size)
