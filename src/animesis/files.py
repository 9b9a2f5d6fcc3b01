"""Writing files so that a kill, a full disk or a read-only folder never leaves a half-written one.

Every file the project writes for later use (checkpoints, pointers, reports, label maps) goes through
`write_atomic`: written beside its target under a temporary name, flushed to disk, renamed over the
target, and the folder's entry flushed too. A failure leaves the previous file as it was and raises
`SaveError` with one line saying where and why.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animesis.errors import UserError


class SaveError(UserError):
    """A file or folder that could not be written: full disk, no permission, a file in the way."""


def describe_os_error(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "no space left on the device"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.EROFS:
        return "read-only file system"
    return e.strerror or str(e)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new entry in `folder` survive a power cut (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) to fill a temporary file beside `path`, then move it into place.

    The temporary file is created with the user's umask (like any new file), not 0600.
    """
    path = Path(path)
    tmp = _temp_path(path)
    try:
        # Create it first with plain open() semantics so its mode follows the umask.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SaveError(f"{path}: cannot write ({describe_os_error(e)})") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


def sha256(path: Path) -> str:
    """The file's SHA-256, hex (read in chunks: weights can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fsync_tree(folder: Path) -> None:
    """Flush every file of a (flat) folder and the folder itself."""
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(folder)


def replace_folder(tmp: Path, folder: Path) -> None:
    """Move a fully written temporary folder onto `folder` (an older one there is removed first)."""
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    fsync_dir(folder.parent)


def ensure_writable_dir(folder: Path, what: str) -> Path:
    """Create `folder` if needed and prove we can write there, before any long work starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SaveError(f"{folder}: {what} must be a folder, but a file has that name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SaveError(f"{folder}: cannot write the {what} there ({describe_os_error(e)})") from e
    return folder
