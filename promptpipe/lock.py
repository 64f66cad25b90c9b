"""Single-instance lock on the state directory.

The lock is an exclusive ``flock`` on ``{STATE_DIR}/promptpipe.lock`` held for the
process lifetime. The file is opened without truncation and rewritten to ``pid=<pid>``
only once the lock is held, so a second instance can read and report the holder's PID.
The kernel drops the lock when the holder exits, so a file left behind by a crashed
process does not block the next start.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import sys
from pathlib import Path
from types import TracebackType
from typing import Final

from promptpipe.errors import LockHeldError, PromptPipeError

logger = logging.getLogger(__name__)

LOCK_FILENAME: Final = "promptpipe.lock"
LOCK_FILE_MODE: Final = 0o644
# A holder that releases unlinks the file, so a racing acquirer can lock a file that no
# longer has the name and must retry. Needing more attempts than this means another
# program keeps deleting the lock file.
_MAX_ACQUIRE_ATTEMPTS: Final = 10
_HOLDER_PID: Final = re.compile(rb"pid=([0-9]+)")


def _read_holder_pid(fd: int) -> int | None:
    """Return the PID written in the lock file, or None when it holds none yet."""
    try:
        content = os.pread(fd, 64, 0)
    except OSError:
        return None
    match = _HOLDER_PID.match(content)
    return int(match.group(1)) if match else None


def _is_process_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The process exists but belongs to another user.
        return True
    return True


def _is_same_file(fd: int, path: Path) -> bool:
    """Return whether ``path`` still names the file open as ``fd``."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (opened.st_dev, opened.st_ino)


class StateLock:
    """An acquired state directory lock; ``release`` it or use it as a context manager.

    Create it with ``acquire_state_lock``.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def is_held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file, then unlock and close it; later calls do nothing.

        The file is removed while still locked, so no other process can lock it and
        then lose it. It is left alone if it was replaced by another instance's file.
        """
        fd = self._fd
        if fd is None:
            return
        self._fd = None
        try:
            if _is_same_file(fd, self.path):
                os.unlink(self.path)
        except OSError as exc:
            logger.warning(
                "failed to remove lock file %s: %s",
                self.path,
                exc,
                extra={"event": "lock_remove_failed", "path": str(self.path)},
            )
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _try_lock(path: Path) -> int | None:
    """Open and lock ``path``; return the locked fd, or None if the file was replaced.

    Raises:
        LockHeldError: another open file description holds the lock.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            os.close(fd)
            raise
        pid = _read_holder_pid(fd)
        os.close(fd)
        running = _is_process_running(pid) if pid is not None else None
        raise LockHeldError(str(path), pid, running) from None

    # A releasing holder unlinks the file before unlocking it, so the lock just taken
    # may be on a file that no longer has this name.
    if not _is_same_file(fd, path):
        os.close(fd)
        return None
    return fd


def acquire_state_lock(state_dir: Path | str) -> StateLock:
    """Take the exclusive lock ``{state_dir}/promptpipe.lock`` without blocking.

    On success the file contains ``pid=<this pid>`` and a trailing newline.

    Raises:
        LockHeldError: another process, or another open of the file in this process,
            holds the lock. ``pid`` and ``running`` describe the holder when its
            file names one.
        OSError: the lock file cannot be created or written.
    """
    path = Path(state_dir) / LOCK_FILENAME
    for _ in range(_MAX_ACQUIRE_ATTEMPTS):
        fd = _try_lock(path)
        if fd is not None:
            break
    else:
        raise OSError(
            errno.EAGAIN,
            "lock file keeps being replaced while locking; check that no other "
            "program deletes it",
            str(path),
        )

    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    logger.debug(
        "state lock acquired", extra={"event": "lock_acquired", "path": str(path)}
    )
    return StateLock(path, fd)


def take_state_lock(state_dir: Path) -> StateLock | None:
    """Take the state-directory lock, or print why not and return ``None``.

    ``serve`` and ``login`` both hold it, because both write the state directory
    (the login writes the WhatsApp device database).
    """
    try:
        return acquire_state_lock(state_dir)
    except PromptPipeError as exc:
        print(f"promptpipe: error: {exc}", file=sys.stderr)
    except OSError as exc:
        print(
            f"promptpipe: error: cannot create the lock file in {state_dir}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
    return None
