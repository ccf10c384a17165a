"""What comes in is read strictly once, before any view: a request that cannot be read as
text, or as JSON a view could use, is refused with a reason instead of failing later.

* JSON nested deeper than ``MAX_JSON_DEPTH`` (Python's parser recurses per level: 100,000
  ``[`` raise RecursionError, not ValueError), not UTF-8, with NaN or Infinity, or with a lone
  UTF-16 surrogate in any string or key (``"\\udc80"``: UTF-8 and SQLite cannot store one).
* A query string or an urlencoded form whose percent-escapes are not UTF-8. Werkzeug would
  keep ``%ED%B3%80`` as those nine characters, and a name would be saved as them.
* A multipart form field with bytes that are not UTF-8 (Werkzeug turns them into U+FFFD).

Nothing here knows Flask's request beyond what :func:`check_request` reads from it, so the
rules can be tested on bytes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Request

from shelter.core.errors import N_, InvalidInput

MAX_JSON_DEPTH = 32
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_ONE_KIND = str.maketrans("{}", "[]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class MalformedInput(InvalidInput, ValueError):
    """Refused input (400). ``code`` is the API error code (``malformed_json`` or
    ``malformed_text``), ``reason`` what was wrong: ``syntax``, ``depth`` or ``text``."""

    code = "malformed_text"
    status = 400
    message = N_("Some of the text sent could not be read. Please type it again.")
    MESSAGES = {"syntax": N_("The JSON could not be read."),
                "depth": N_("The JSON is nested too deeply.")}

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(self.MESSAGES.get(reason), code=code, detail=f"{code}: {reason}")
        self.reason = reason


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON ``text`` opens more than ``limit`` arrays or objects inside each other.

    No recursion and no loop per character (a 256 KiB body takes milliseconds): strings are
    cut out, then innermost pairs of brackets removed, one level per pass. Brackets inside
    strings do not count. Text that is not JSON may be answered either way: the parser
    refuses it next.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    # Escapes are read left to right, so dropping escaped backslashes and then escaped
    # quotes leaves every remaining quote a string's start or end.
    skeleton = _STRING.sub("", text.replace("\\\\", "").replace('\\"', ""))
    # Only the nesting is left, one kind of bracket (a mismatched pair is the parser's).
    skeleton = _NOT_BRACKET.sub("", skeleton).translate(_ONE_KIND)
    for _ in range(limit):
        inner = skeleton.replace("[]", "")
        if inner == skeleton:
            break
        skeleton = inner
    # Pairs still there are deeper than the limit; brackets never closed (100,000 "[")
    # would make the parser recurse as deep before it finds the end.
    return "[]" in skeleton or skeleton.count("[") > limit


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise ValueError("number out of range")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str) -> Any:
    """The JSON value of ``data``, or :class:`MalformedInput`."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")  # strict: also refuses encoded surrogates
        except UnicodeDecodeError:
            raise MalformedInput("malformed_json", "text") from None
    else:
        text = data
    if too_deep(text):
        raise MalformedInput("malformed_json", "depth")
    try:
        value = json.loads(text, parse_float=_finite, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise MalformedInput("malformed_json", "syntax") from None
    if (_SURROGATE_ESCAPE.search(text) or _SURROGATE.search(text)) and _has_surrogate(value):
        raise MalformedInput("malformed_json", "text")
    return value


def _has_surrogate(value: Any) -> bool:
    """Whether any string or key in ``value`` holds an unpaired surrogate (a pair written as
    two escapes, like an emoji, is joined by the parser and is fine)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_urlencoded(raw: bytes) -> None:
    """Refuse a query string or form body whose escapes are not UTF-8."""
    try:
        unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInput("malformed_text", "text") from None


def check_request(request: Request) -> None:
    """Read what the request carries, strictly; :class:`MalformedInput` when it cannot be.

    The body is read (and kept for the view) only for JSON and urlencoded forms; oversize
    bodies end in werkzeug's 413 here as they would in the view.
    """
    query = request.environ.get("QUERY_STRING", "")
    if query:
        try:
            raw_query = query.encode("latin-1")  # WSGI: the bytes as sent, one per char
        except UnicodeEncodeError:
            raw_query = query.encode("utf-8", "surrogatepass")
        check_urlencoded(raw_query)
    if request.is_json:
        data = request.get_data(cache=True)
        if data.strip():  # an empty body is the view's to refuse
            parse_json(data)
    elif request.mimetype == "application/x-www-form-urlencoded":
        check_urlencoded(request.get_data(cache=True))
    elif request.mimetype == "multipart/form-data":
        for values in request.form.listvalues():
            if any("\ufffd" in v for v in values):
                raise MalformedInput("malformed_text", "text")
