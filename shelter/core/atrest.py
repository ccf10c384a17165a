"""Data at rest: a data directory, and every file in it, readable by its owner alone.

A node's database holds the session secret, the card signing key and the HQ credential in
clear, and the personal data of everyone registered; its TLS keys sit beside it. Whoever
else has an account on the laptop must read none of it, so the directory is 0700 and every
file in it 0600, whichever process made it and whenever (also before this rule existed:
``tighten`` puts an old directory right on start). SQLite gives the ``-wal`` and ``-shm``
files it makes the database file's own mode, so a database made 0600 keeps its companions
0600 in every process that opens it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077  # for processes that run a node: whatever they write is private

log = logging.getLogger("shelter")


def _chmod(path: Path, mode: int, current: int) -> None:
    if stat.S_IMODE(current) == mode:
        return
    try:
        os.chmod(path, mode)
    except PermissionError as error:
        # Not ours (someone ran the node as another user once): say so, keep serving; a
        # shelter must not go dark over a file mode.
        log.warning("cannot make %s private: %s", path, error.strerror)


def make_dirs(path: Path) -> Path:
    """Make ``path`` and any missing parents, each one made here 0700. Directories that
    exist are left as they are (the owner's choice: a home directory, a USB stick)."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made at the same moment by another process
        _chmod(directory, DIR_MODE, directory.stat().st_mode)  # mkdir's mode meets the umask
    return path


def private_dir(path: Path) -> Path:
    """``make_dirs(path)``, and ``path`` itself 0700 even if it existed."""
    make_dirs(path)
    _chmod(path, DIR_MODE, path.stat().st_mode)
    return path


def tighten(data_dir: Path) -> None:
    """Every directory under ``data_dir`` (itself included) 0700, every file 0600.
    Symbolic links are not followed: what they point at is outside the data directory."""
    data_dir = Path(data_dir)
    _chmod(data_dir, DIR_MODE, data_dir.stat().st_mode)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile (SQLite drops -wal/-shm on its last close)
            if stat.S_ISDIR(info.st_mode):
                _chmod(path, DIR_MODE, info.st_mode)
            elif stat.S_ISREG(info.st_mode):
                _chmod(path, FILE_MODE, info.st_mode)


def private_file(path: Path, exclusive: bool = False) -> Path:
    """Make ``path`` an (empty, if new) file only its owner can read; tighten an existing
    one. ``exclusive``: refuse with FileExistsError if it already exists."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    fd = os.open(path, flags, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return Path(path)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, a file only its owner can read (never readable by others,
    not even for the moment between creating and restricting it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def restrict_database(path: Path) -> None:
    """The database file and its ``-wal`` / ``-shm`` companions, if present, 0600."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        companion = Path(f"{path}{suffix}")
        try:
            info = companion.stat()
        except FileNotFoundError:
            continue
        _chmod(companion, FILE_MODE, info.st_mode)
