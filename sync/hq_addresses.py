"""A node's HQ addresses: the primary HQ and a standby at a second site (`--hq URL1,URL2`).

Meta ``hq_url`` holds them comma-separated (a single URL is a list of one); ``hq_url_learned``
those HQ told at its last welcome (``hq_urls``: its own and its standby's, given to HQ with
``shelter hq --addresses``), so that a node enrolled with one address fails over too;
``hq_url_current`` the one that answered last. Every connection tries that one first, then
the rest in the given order (then the told ones), moving on at once when one cannot be
reached, so a node whose HQ died reaches the standby in the same try. Both HQs serve with
the CA pinned at enrollment (the standby is restored from the primary's replica), so no
address needs enrolling of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from shelter.core import meta

LIST_KEY = "hq_url"
LEARNED_KEY = "hq_url_learned"
CURRENT_KEY = "hq_url_current"
MAX_LEARNED = 8  # addresses taken from one welcome
T = TypeVar("T")


class BadHQAddress(ValueError):
    """An HQ address that is not ``https://host:port``; the message says which and why."""


def parse(text: str) -> list[str]:
    """The addresses in ``text`` (comma-separated), each checked and normalized to
    ``https://host:port`` (no path), duplicates dropped; BadHQAddress for a bad one."""
    addresses: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            raise BadHQAddress(f"empty HQ address in {text!r} (give https://host:port, "
                               "comma-separated)")
        address = validate(part)
        if address not in addresses:
            addresses.append(address)
    return addresses


def validate(url: str) -> str:
    """``url`` as ``https://host:port``; BadHQAddress unless it is https with a host and a
    port (a path, query or credentials in it are refused too: the node adds ``/sync``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:  # a port that is no number, or out of range
        raise BadHQAddress(f"bad HQ address {url!r}: {error}") from None
    why = ("it must start with https://" if parts.scheme != "https"
           else "it has no host" if not parts.hostname
           else "its host name is too long" if len(parts.hostname) > 253
           or any(len(label) > 63 for label in parts.hostname.split("."))
           else "it must not hold a comma (addresses are comma-separated)" if "," in url
           else "it has no port (https://host:port)" if port is None
           else "it must not hold a user name or password" if "@" in parts.netloc
           else "it must be the base URL, with no path" if parts.path not in ("", "/")
           or parts.query or parts.fragment else "")
    if why:
        raise BadHQAddress(f"bad HQ address {url!r}: {why}")
    return f"https://{parts.netloc.lower()}"


def ordered(addresses: Sequence[str], current: str | None) -> list[str]:
    """``addresses`` with ``current`` (the one that answered last) first, if it is one."""
    rest = [a for a in addresses if a != current]
    return ([current] if current in addresses and current is not None else []) + rest


def of_node(db: meta.Handle) -> list[str]:
    """The node's HQ addresses from meta (checked when given or told): those it was given,
    then those HQ told, the one that answered last first; [] when it has none."""
    given = _split(meta.get(db, LIST_KEY))
    told = [a for a in _split(meta.get(db, LEARNED_KEY)) if a not in given]
    return ordered(given + told, meta.get(db, CURRENT_KEY))


def _split(text: str | None) -> list[str]:
    return [a.strip() for a in (text or "").split(",") if a.strip()]


def told(welcome: dict[str, Any]) -> str | None:
    """The addresses HQ's ``welcome`` tells (``hq_urls``), those that are ``https://host:port``
    (at most MAX_LEARNED), as meta keeps them; None when it tells none (an HQ from before,
    or not given ``--addresses``: what was learned before stays)."""
    urls = welcome.get("hq_urls")
    if not isinstance(urls, list):
        return None
    good: list[str] = []
    for url in urls[:8 * MAX_LEARNED]:  # the good ones among the first few, not the first 8
        try:
            address = validate(url) if isinstance(url, str) else None
        except BadHQAddress:
            continue
        if address is not None and address not in good and len(good) < MAX_LEARNED:
            good.append(address)
    return ",".join(good)


def current(db: meta.Handle) -> str | None:
    """The HQ address the node talks to now (the one that answered last), else its first."""
    addresses = of_node(db)
    return addresses[0] if addresses else None


def remember(store: meta.Writer, db: meta.Handle, address: str) -> None:
    """Keep ``address`` as the one to try first next time (written only when it changed)."""
    if meta.get(db, CURRENT_KEY) != address:
        meta.commit(store, {CURRENT_KEY: address})


def first_answering(addresses: Sequence[str], attempt: Callable[[str], T],
                    transient: Callable[[BaseException], bool]) -> tuple[str, T]:
    """``attempt`` on each address in turn until one answers: that address and what
    ``attempt`` returned. A failure on the way (``transient``: refused, reset, timed out)
    moves on to the next address; an answer (HQ refused us) is raised at once, as is the
    last address's failure when none answered."""
    if not addresses:
        raise BadHQAddress("no HQ address given")
    for index, address in enumerate(addresses):
        try:
            return address, attempt(address)
        except Exception as error:  # noqa: BLE001 - re-raised unless it means "try another"
            if index == len(addresses) - 1 or not transient(error):
                raise
    raise AssertionError("unreachable")


ADVERTISED_KEY = "hq_addresses"  # in HQ's meta: what its welcome tells every node


def advertised(db: meta.Handle) -> dict[str, Any]:
    """The welcome's ``hq_urls`` (HQ's addresses, its standby's among them) if HQ was given
    any with ``--addresses`` (none, once it was told to forget them); nothing otherwise."""
    kept = meta.get(db, ADVERTISED_KEY)
    # None: never given (nothing told, what nodes learned stays); "": forgotten (told so).
    return {} if kept is None else {"hq_urls": _split(kept)}


class SupersededHQ(OSError):
    """An HQ whose id the node has seen replaced by a newer epoch (a primary that came back
    after its standby took over): treated like an address that does not answer, so the
    node moves on and never splits its events between the two."""


def superseded(db: meta.Handle, welcome: dict[str, Any]) -> bool:
    """Whether ``welcome`` comes from an HQ epoch older than the one the node last synced
    with (the last welcome's ``hq_ids``: the earlier epochs, then the current one)."""
    try:
        known = [str(i) for i in json.loads(meta.get(db, "hq_ids") or "[]")]
    except ValueError:
        return False
    return str(welcome.get("hq_id")) in known[:-1]
