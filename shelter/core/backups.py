"""Backups that happen by themselves: ``shelter node --backup-dir DIR`` (a USB stick).

A thread of the `shelter node` process copies the database into DIR every few minutes, the
first soon after start, with ``backup.backup`` (SQLite's online backup, then
``PRAGMA integrity_check``; the file 0600). It writes ``.shelter-<stamp>.db.partial`` and
renames it ``shelter-<UTC stamp>.db`` only once the copy passed its check, so a file of that
name is always a whole, good copy; then it deletes the oldest files of that name beyond the
newest ``keep``, of those it wrote itself (their names are in the node's meta: another
node's copies on the same stick are never its to delete). Nothing else in DIR is ever
touched (only that name; not a link either).

What happened is kept in the node's meta (``backup_dir``, ``backup_last_ok_at``,
``backup_last_file``, ``backup_last_error``: a reason code, no personal data), where the
desk reads it (``status``). A missing or unwritable directory (the stick pulled, or full) is
recorded, never raised: the node serves on, and the next run tries again, at once when the
directory comes back. The thread looks every few seconds whether the directory is there,
so pulling the stick shows on the desk within seconds, not at the next backup.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shelter.core import backup, meta
from shelter.core.node import NodeContext

log = logging.getLogger("shelter")

DEFAULT_EVERY_MINUTES = 15.0
# The desk warns when the last good backup is over an hour old, so backups are at least
# hourly: a longer interval would keep the warning up between every two of them.
MAX_EVERY_MINUTES = 60.0
DEFAULT_KEEP = 24
MADE_KEPT = 500  # names of the copies it wrote a node remembers (only those it deletes)
STALE_SECONDS = 3600.0
FIRST_AFTER_SECONDS = 5.0  # the first backup, once the listeners have started
WATCH_SECONDS = 2.0  # how often the thread looks whether the directory is there
STAMP = "%Y%m%dT%H%M%SZ"
OURS = re.compile(r"shelter-\d{8}T\d{6}Z\.db")
PARTIAL = re.compile(r"\.shelter-\d{8}T\d{6}Z\.db\.partial(-journal|-wal|-shm)?")
# Why the last try failed: what the desk has words for.
REASONS = ("missing", "unwritable", "full", "damaged", "failed")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def configure(ctx: NodeContext, directory: Path | None) -> None:
    """Record at start whether this node backs up by itself, and where. A node started
    without --backup-dir shows nothing about backups; one given another directory starts
    its record afresh (the last good backup elsewhere is not on this stick)."""
    wanted = os.path.abspath(directory) if directory else ""
    if (meta.get(ctx.db, "backup_dir") or "") == wanted:
        return
    meta.commit(ctx.store, {"backup_dir": wanted, "backup_since": _iso(datetime.now(UTC)),
                            "backup_last_ok_at": "", "backup_last_file": "",
                            "backup_last_error": "", "backup_same_disk": ""})


def run_once(ctx: NodeContext, directory: Path, keep: int) -> str | None:
    """One backup into ``directory``, then the rotation. Returns None, or the reason it
    failed (one of REASONS); either way it is recorded in the node's meta."""
    started = datetime.now(UTC)
    name = f"shelter-{started.strftime(STAMP)}.db"
    partial = directory / f".{name}.partial"
    attempt = {"backup_last_attempt_at": _iso(started)}
    try:
        if not directory.is_dir():
            raise FileNotFoundError(errno.ENOENT, "the backup directory is not there")
        _clear_partials(directory)
        backup.backup(ctx.data_dir, partial, make_dirs=False)  # checked, or removed
        _sync(partial)
        os.replace(partial, directory / name)  # only a good, whole copy gets the name
        _sync(directory)
        same_disk = os.stat(directory).st_dev == os.stat(ctx.data_dir).st_dev
    except Exception as error:  # noqa: BLE001 - a backup that fails must not stop the node
        reason = _reason(error)
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass  # the stick is gone: nothing to tidy
        log.warning("automatic backup failed: %s (%s)", reason, type(error).__name__)
        meta.commit(ctx.store, {**attempt, "backup_last_error": reason})
        return reason
    made = _made(ctx) + [name]
    gone = rotate(directory, keep, name, made)
    meta.commit(ctx.store, {**attempt, "backup_last_ok_at": _iso(started),
                            "backup_files": json.dumps([n for n in made if n not in gone]
                                                       [-max(MADE_KEPT, 2 * keep):]),
                            "backup_last_file": name, "backup_last_error": "",
                            "backup_same_disk": "1" if same_disk else ""})
    return None


def _made(ctx: NodeContext) -> list[str]:
    """The names of the copies this node wrote (the newest MADE_KEPT, or twice keep)."""
    try:
        names = json.loads(meta.get(ctx.db, "backup_files") or "[]")
    except ValueError:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def rotate(directory: Path, keep: int, newest: str, made: list[str]) -> list[str]:
    """Delete the oldest of this schedule's files beyond ``keep``, never ``newest`` (the
    copy just made: a clock set back must not make it the first to go), and only those
    this node wrote (``made``): a stick that holds another node's copies (the laptop this
    one replaced, another shelter's) keeps them. Returns what was deleted."""
    mine = set(made)
    ours = sorted(entry.name for entry in os.scandir(directory)
                  if OURS.fullmatch(entry.name) and entry.name != newest
                  and entry.name in mine and entry.is_file(follow_symlinks=False))
    gone = ours[:max(0, len(ours) - (keep - 1))]
    for old in gone:
        try:
            (directory / old).unlink()
        except OSError as error:
            log.warning("could not delete an old backup (%s)", type(error).__name__)
    return gone


def _clear_partials(directory: Path) -> None:
    """A half copy left by a crash or a stick pulled mid-write (its name, never another)."""
    for entry in os.scandir(directory):
        if PARTIAL.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def _sync(path: Path) -> None:
    """Down to the stick before the name says it is there (a directory, too, where the
    file system allows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if path.is_dir():
            return  # some file systems do not open directories
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "missing"
    if isinstance(error, PermissionError):
        return "unwritable"
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return "full"
        return "unwritable" if error.errno == errno.EROFS else "failed"
    if isinstance(error, sqlite3.Error):
        code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
        return {13: "full", 8: "unwritable", 14: "unwritable", 11: "damaged",
                26: "damaged"}.get(code, "failed")  # FULL, READONLY, CANTOPEN, CORRUPT
    if isinstance(error, ValueError) and "integrity" in str(error):
        return "damaged"
    return "failed"


def status(db: meta.Handle, now: datetime | None = None) -> dict[str, Any] | None:
    """What the desk shows; None when this node was started without --backup-dir.
    ``missing``: the directory is not there now; ``stale``: the last good backup is over
    an hour old, or there has been none for an hour; ``error``: why the last try failed."""
    directory = meta.get(db, "backup_dir")
    if not directory:
        return None
    now = now or datetime.now(UTC)
    last_ok = meta.get(db, "backup_last_ok_at") or None
    since = last_ok or meta.get(db, "backup_since")
    try:
        age = (now - datetime.fromisoformat(since)).total_seconds() if since else None
    except ValueError:
        age = None
    return {"dir": directory, "last_ok_at": last_ok,
            "last_file": meta.get(db, "backup_last_file") or None,
            "missing": not Path(directory).is_dir(),
            "stale": age is None or age > STALE_SECONDS,
            "error": meta.get(db, "backup_last_error") or None,
            "same_disk": meta.get(db, "backup_same_disk") == "1"}


class BackupSchedule(threading.Thread):
    """Runs in the `shelter node` process beside its web servers."""

    def __init__(self, ctx: NodeContext, directory: Path, stop: threading.Event,
                 every_minutes: float = DEFAULT_EVERY_MINUTES, keep: int = DEFAULT_KEEP) -> None:
        super().__init__(name="backups", daemon=True)
        self.ctx, self.directory, self.stop_event = ctx, Path(directory), stop
        self.every, self.keep = every_minutes * 60.0, keep

    def run(self) -> None:
        next_at = time.monotonic() + min(FIRST_AFTER_SECONDS, self.every)
        present = self.directory.is_dir()
        while not self.stop_event.wait(max(0.0, min(WATCH_SECONDS,
                                                    next_at - time.monotonic()))):
            try:
                if self.directory.is_dir() != present:  # the stick pulled or put back
                    present = not present
                    if present:
                        next_at = time.monotonic()  # back: a backup now
                    else:
                        meta.commit(self.ctx.store, {"backup_last_error": "missing"})
                if time.monotonic() >= next_at:
                    next_at = time.monotonic() + self.every
                    run_once(self.ctx, self.directory, self.keep)
            except Exception as error:  # noqa: BLE001 - the thread must outlive any bug
                log.warning("automatic backups: %s", type(error).__name__)
