"""Files ledgerlink writes that hold customer data or secrets: private from the start.

The ledger, audit exports, log files, the webhook secret and sandbox state are made
with mode 0600 (folders 0700) as they are created, never chmod-ed afterwards, so no
other user can read them even for a moment. A whole file (an export, a secret, a
state) is written to a private temporary file beside it and renamed over the target,
so a full disk or a crash leaves the old file or none, never half of one.

Every failure is a :class:`FileError`: one line that names the path and says what to
do (exit 2), never an ``OSError`` with a traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import IO

from ._errors import ConfigError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class FileError(ConfigError):
    """A file or folder ledgerlink must write (or read) cannot be used: one line, exit 2."""


def describe_os_error(path: Path | str, exc: OSError, what: str = "file") -> str:
    """One line for an ``OSError`` on ``path``: what is wrong there and what to do."""
    path = Path(path)
    folder = path.parent
    code = exc.errno
    if code == errno.ENOENT:
        if not folder.exists():
            return f"{path}: the folder {folder} does not exist; create it or give another path for the {what}"
        return f"{path}: the {what} does not exist; check the path"
    if code == errno.EISDIR:
        return f"{path} is a folder, not a {what}; give the path of a file"
    if code == errno.ENOTDIR:
        return f"{path}: a part of the path ({_not_a_folder(path)}) is a file, not a folder; give another path"
    if code in (errno.EACCES, errno.EPERM):
        if path.exists():
            return (f"{path}: no permission to write the {what}; let this user write it (chmod/chown) or give "
                    "another path")
        return (f"{path}: no permission to create the {what} in {folder}; let this user write in that folder "
                "or give another path")
    if code == errno.EROFS:
        return f"{path}: the file system is read-only; give a path on a writable disk for the {what}"
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"{path}: the disk is full (or a size limit was reached) while writing the {what}; free some "
                "space and run the command again (nothing was half-written)")
    reason = exc.strerror or type(exc).__name__
    return f"{path}: cannot write the {what} ({reason}); check the path and its folder"


def _not_a_folder(path: Path) -> Path:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path.parent


def write_private(path: Path | str, data: str | bytes, *, what: str = "file", sync: bool = True) -> None:
    """Write a whole file, mode 0600, atomically: a private temporary file beside it,
    flushed to disk (``sync``), then renamed over ``path`` (an existing file is replaced whole)."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_dir():
        raise FileError(describe_os_error(path, IsADirectoryError(errno.EISDIR, "Is a directory"), what))
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise FileError(describe_os_error(path, exc, what)) from None
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


def create_private(path: Path | str, *, what: str = "file") -> bool:
    """Create ``path`` empty with mode 0600 if no file is there; True if it was created.
    For files another library fills (SQLite keeps the mode for its journal files)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    except FileExistsError:
        return False
    except OSError as exc:
        raise FileError(describe_os_error(path, exc, what)) from None
    os.close(fd)
    return True


def open_private_append(path: Path | str, *, what: str = "file") -> IO[str]:
    """Open a text file for appending; a new one is made with mode 0600 (a log file)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    except OSError as exc:
        raise FileError(describe_os_error(path, exc, what)) from None
    return os.fdopen(fd, "a", encoding="utf-8")


def make_private_dir(path: Path | str, *, what: str = "folder") -> None:
    """Make a folder (and missing parents) with mode 0700; an existing one is kept as it is."""
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                raise FileError(f"{folder} is a file, not a folder; give another path for the {what}") from None
        except OSError as exc:
            raise FileError(describe_os_error(folder, exc, what)) from None
    if not path.is_dir():
        raise FileError(f"{path} is a file, not a folder; give another path for the {what}")


__all__ = ["FileError", "PRIVATE_DIR", "PRIVATE_FILE", "create_private", "describe_os_error", "make_private_dir",
           "open_private_append", "write_private"]
