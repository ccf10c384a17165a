"""Courier bundles: sync carried by hand (a USB stick) when a shelter has had no link for
weeks. A node writes what HQ has not acknowledged into a bundle; HQ imports it once and can
write a reply with the shelter's updates; the node imports the reply. Sync over the link
then resumes where the bundles left off (docs/sync-protocol.md, "Bundles").

A file is four parts::

    SHELTER-BUNDLE 1\\n                     magic and format version
    {header}\\n                             one line of JSON (at most 64 KiB)
    <64 hex digits>\\n                      HMAC-SHA256 of the two lines above and the body
    <body>                                 AES-256-GCM of zlib-compressed JSON

Both keys come from what both sides hold of the node's credential: HQ keeps only its
SHA-256 (sync/enrollment.py), so each key is HMAC-SHA256(that hex digest, a label naming
the key's use and the file's kind), and a reply can never pass for a bundle. The MAC is
checked before the body is even decrypted; nothing in a file is trusted before that.
This module is the format; sync/bundle_node.py is the node's side, sync/bundle_hq.py
HQ's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelter.core import atrest
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import utc_now_iso
from shelter.core.ids import valid_id
from shelter.core.node import NodeContext
from shelter.core.sql import insert_row
from sync import protocol

FORMAT_VERSION = 1
MAGIC = b"SHELTER-BUNDLE"
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_INFLATED_BYTES = 256 * 1024 * 1024  # a body that inflates past this is refused
MAX_EVENTS = 100_000  # events in one file; a node with more writes the rest next time
MAX_VALUES = 100 * MAX_EVENTS  # JSON values in a body (counted by its commas)
KINDS = ("bundle", "reply")  # a node's events for HQ; HQ's updates for the node
_HEX = re.compile(r"^[0-9a-f]+$")

# What every header has, and what each kind adds (type, or a check).
_COMMON: dict[str, Any] = {
    "format": int, "kind": str, "bundle_id": str, "node_id": str, "credential_node": str,
    "shelter_id": str, "hq_id": str, "created_at": str, "nonce": str, "body_bytes": int,
    "events": int}
_KIND: dict[str, dict[str, Any]] = {
    "bundle": {"pull_cursor": int, "origins": dict},
    "reply": {"in_reply_to": str, "hq_ids": list, "cursor": int, "acked": dict}}


class BundleRefused(InvalidInput, ValueError):
    """A courier file refused as a whole: nothing in it was applied. ``code`` is stable;
    the message says why, in English (the CLI prints it). ``header``: what the file
    claims, for the record; ``authentic``: it verified (refused for another reason, such
    as being imported already)."""

    status = 400
    message = N_("A courier bundle was refused.")

    def __init__(self, code: str, message: str, header: dict[str, Any] | None = None,
                 authentic: bool = False) -> None:
        super().__init__(message, code=code, detail=message)
        self.header = header or {}
        self.authentic = authentic


@dataclass
class Sealed:
    """A file read and its shape checked, not yet verified."""
    header: dict[str, Any]
    signed: bytes  # the magic and header lines, as they were in the file
    mac: bytes
    body: bytes


def credential_hash(credential: str) -> str:
    """What HQ keeps of a credential (sync/enrollment.py: _hash): the key's root."""
    return hashlib.sha256(credential.encode()).hexdigest()


def _key(root: str, use: str, kind: str) -> bytes:
    return hmac.new(root.encode(), f"shelter bundle v{FORMAT_VERSION} {use} {kind}".encode(),
                    hashlib.sha256).digest()


def seal(header: dict[str, Any], body: bytes, root: str) -> bytes:
    """A file's bytes: ``header`` (nonce and body_bytes are filled in here) and ``body``
    (compressed JSON), encrypted and signed under keys from ``root``."""
    nonce = secrets.token_bytes(12)
    header = {**header, "format": FORMAT_VERSION, "nonce": nonce.hex(),
              "body_bytes": len(body) + 16}  # the GCM tag
    signed = (MAGIC + f" {FORMAT_VERSION}\n".encode()
              + json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode() + b"\n")
    ciphertext = AESGCM(_key(root, "encrypt", header["kind"])).encrypt(nonce, body, signed)
    mac = hmac.new(_key(root, "sign", header["kind"]), signed + ciphertext, hashlib.sha256)
    return signed + mac.hexdigest().encode() + b"\n" + ciphertext


def read(path: Path) -> Sealed:
    """A courier file, its shape checked (BundleRefused: what is wrong with it)."""
    try:
        # A regular file, read no further than a bundle may be: a stick may hold a pipe
        # (it would wait for ever) or a link to /dev/zero (it would fill the memory).
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise BundleRefused("not_a_bundle", "this is not a file")
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise BundleRefused("too_large", f"the file is over {MAX_FILE_BYTES:,} bytes, "
                                             "the most a bundle is")
    except OSError as error:
        raise BundleRefused("unreadable", f"cannot read {path}: {error.strerror}") from None
    first = data.find(b"\n", 0, 64)
    if first < 0 or not data.startswith(MAGIC + b" "):
        raise BundleRefused("not_a_bundle", "this is not a shelter courier bundle")
    if data[:first] != MAGIC + f" {FORMAT_VERSION}".encode():
        version = data[len(MAGIC) + 1:first].decode("ascii", "replace")[:20]
        version = version if version.isprintable() else "unknown"  # no terminal escapes
        raise BundleRefused("format_version", f"this bundle is format {version}; this "
                                              f"side reads format {FORMAT_VERSION}")
    second = data.find(b"\n", first + 1, first + 2 + MAX_HEADER_BYTES)
    if second < 0 or data[second + 65:second + 66] != b"\n":
        raise BundleRefused("malformed", "the bundle's header or signature is missing or "
                                         "too long")
    header = _header(data[first + 1:second])
    mac, body = data[second + 1:second + 65], data[second + 66:]
    if not _HEX.match(mac.decode("ascii", "replace")) or header["body_bytes"] != len(body):
        raise BundleRefused("malformed", "the bundle is cut short or has bytes added",
                            header)
    return Sealed(header, data[:second + 1], mac, body)


def _header(line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        raise BundleRefused("malformed", "the bundle's header is not JSON") from None
    if not isinstance(header, dict):
        raise BundleRefused("malformed", "the bundle's header is not an object")
    claimed = {k: header[k] for k in ("bundle_id", "node_id", "shelter_id")
               if isinstance(header.get(k), str) and len(header[k]) <= 64}
    kind = header.get("kind")
    shape = {**_COMMON, **_KIND.get(kind if isinstance(kind, str) else "", {})}
    for name, wanted in shape.items():
        value = header.get(name)
        if not isinstance(value, wanted) or isinstance(value, bool) \
                or (isinstance(value, int) and not 0 <= value < protocol.MAX_INT):
            raise BundleRefused("malformed", f"the bundle's header: {name} is missing or of "
                                             "the wrong type", claimed)
    ids_ok = all(protocol.valid_node_id(header[k]) for k in ("node_id", "credential_node",
                                                              "hq_id"))
    if kind not in KINDS or not ids_ok or not valid_id(header["shelter_id"]) \
            or not re.fullmatch(r"[0-9a-f]{32}", header["bundle_id"]) \
            or not re.fullmatch(r"[0-9a-f]{24}", header["nonce"]) \
            or len(header["created_at"]) > 40 or not header["created_at"].isprintable() \
            or header["events"] > MAX_EVENTS:
        raise BundleRefused("malformed", "the bundle's header does not hold what a bundle's "
                                         "does", claimed)
    return header


def unseal(sealed: Sealed, root: str) -> dict[str, Any]:
    """The body of a file whose signature verifies under ``root``'s key (BundleRefused
    ``bad_signature`` otherwise: changed on the way, or not made with that credential)."""
    kind = sealed.header["kind"]
    expected = hmac.new(_key(root, "sign", kind), sealed.signed + sealed.body,
                        hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, sealed.mac):
        raise BundleRefused("bad_signature", "the bundle's signature does not verify: it "
                            f"was changed on the way, or not made by node "
                            f"{sealed.header['credential_node']}", sealed.header)
    try:
        packed = AESGCM(_key(root, "encrypt", kind)).decrypt(
            bytes.fromhex(sealed.header["nonce"]), sealed.body, sealed.signed)
        inflater = zlib.decompressobj()
        text = inflater.decompress(packed, MAX_INFLATED_BYTES)
    except (InvalidTag, zlib.error):
        raise BundleRefused("malformed", "the bundle's body cannot be read",
                            sealed.header) from None
    if inflater.unconsumed_tail:
        raise BundleRefused("too_large", f"the bundle inflates past {MAX_INFLATED_BYTES:,} "
                                         "bytes", sealed.header)
    body = _parse(text.decode("utf-8", errors="replace"), sealed.header)
    if body.get("type") != f"courier_{kind}":
        raise BundleRefused("malformed", "the bundle's body is not a bundle's",
                            sealed.header)
    return body


def _parse(text: str, header: dict[str, Any]) -> dict[str, Any]:
    """The body's JSON, with a sync frame's checks (sync/protocol.py: decode): no half
    surrogate pairs (valid JSON, but no text), no nesting past what a parser survives."""
    if ("\\ud" in text or "\\uD" in text) and protocol._LONE_SURROGATE.search(text):
        raise BundleRefused("malformed", "the bundle holds half of a surrogate pair, which "
                                         "is not text", header)
    # Parsed, each value costs some 60 bytes: 256 MiB of "{}," would take 6 GiB. An
    # honest body has a comma every 30 bytes or so, at most some 5 million of them.
    if text.count(",") > MAX_VALUES:
        raise BundleRefused("too_large", f"the bundle holds more than {MAX_VALUES:,} "
                                         "values", header)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise BundleRefused("malformed", "the bundle's body is not JSON", header) from None
    if not isinstance(body, dict):
        raise BundleRefused("malformed", "the bundle's body is not an object", header)
    return body


def write_new(path: Path, data: bytes) -> None:
    """Write a courier file that must not exist yet; 0600 (it holds personal data,
    encrypted), and no half file left behind."""
    path = Path(path)
    atrest.make_dirs(path.parent)
    try:
        atrest.private_file(path, exclusive=True)
    except FileExistsError:
        raise BundleRefused("exists", f"{path} exists; choose a new file name") from None
    try:
        with path.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def record_refusal(ctx: NodeContext, kind: str, refused: BundleRefused) -> None:
    """Keep a refusal for an operator: what the file claimed, the reason, when."""
    claimed = refused.header
    with ctx.store.write() as db:
        insert_row(db, "sync_bundle_refusals", {
            "kind": kind, "bundle_id": _claim(claimed, "bundle_id"),
            "node_id": _claim(claimed, "node_id"), "shelter_id": _claim(claimed, "shelter_id"),
            "code": refused.code, "reason": str(refused)[:500], "at": utc_now_iso()})


def _claim(header: dict[str, Any], name: str) -> str | None:
    value = header.get(name)
    return value[:64] if isinstance(value, str) else None


def imported_at(db: Any, bundle_id: str, node_id: str) -> str | None:
    """When this node's file of this id was imported here (the id alone is no proof: it
    stands in every file's plain header, for anyone to copy into a file of their own)."""
    row = db.execute("SELECT imported_at FROM sync_bundles WHERE bundle_id = ? AND "
                     "node_id = ?", [bundle_id, node_id]).fetchone()
    return str(row[0]) if row else None
