from __future__ import annotations

import fcntl
import os
import re
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptpipe.errors import LockHeldError
from promptpipe.lock import LOCK_FILENAME, acquire_state_lock


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir()
    return directory


def test_acquire_state_lock_writes_pid(state_dir: Path) -> None:
    lock = acquire_state_lock(state_dir)
    try:
        path = state_dir / LOCK_FILENAME
        assert lock.path == path
        assert path.read_text() == f"pid={os.getpid()}\n"
        assert lock.is_held
    finally:
        lock.release()


def test_acquire_state_lock_file_mode(state_dir: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        with acquire_state_lock(state_dir) as lock:
            assert stat.S_IMODE(os.stat(lock.path).st_mode) == 0o644
    finally:
        os.umask(old_umask)


def test_acquire_state_lock_second_acquirer_rejected(state_dir: Path) -> None:
    path = state_dir / LOCK_FILENAME
    with acquire_state_lock(state_dir):
        with pytest.raises(LockHeldError) as info:
            acquire_state_lock(state_dir)
        # The refused attempt must not have wiped the holder's PID.
        assert path.read_text() == f"pid={os.getpid()}\n"

    assert info.value.path == str(path)
    assert info.value.pid == os.getpid()
    assert info.value.running is True
    assert str(info.value) == (
        f"state directory lock {path} is held by PID {os.getpid()} (running); "
        "another PromptPipe instance uses this state directory. Stop it first, or "
        "remove the lock file by hand only if no other instance is running"
    )


def test_release_removes_file_and_allows_reacquire(state_dir: Path) -> None:
    path = state_dir / LOCK_FILENAME
    lock = acquire_state_lock(state_dir)
    lock.release()

    assert not path.exists()
    assert not lock.is_held
    again = acquire_state_lock(state_dir)
    assert path.read_text() == f"pid={os.getpid()}\n"
    again.release()
    assert not path.exists()


def test_release_twice_is_harmless(state_dir: Path) -> None:
    lock = acquire_state_lock(state_dir)
    lock.release()
    lock.release()
    assert not (state_dir / LOCK_FILENAME).exists()


def test_release_keeps_replaced_file(state_dir: Path) -> None:
    """A lock file replaced by hand belongs to someone else and is not removed."""
    path = state_dir / LOCK_FILENAME
    lock = acquire_state_lock(state_dir)
    path.unlink()
    path.write_text("pid=1\n")
    lock.release()
    assert path.read_text() == "pid=1\n"


def test_acquire_state_lock_leftover_file_reused(state_dir: Path) -> None:
    path = state_dir / LOCK_FILENAME
    path.write_text("pid=999999999\nmore text that must disappear\n")
    with acquire_state_lock(state_dir):
        assert path.read_text() == f"pid={os.getpid()}\n"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_acquire_state_lock_stale_holder_reported(state_dir: Path) -> None:
    """A holder whose PID is gone (a forked process kept the lock) shows as stale."""
    path = state_dir / LOCK_FILENAME
    dead = _dead_pid()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"pid={dead}\n".encode())
        with pytest.raises(LockHeldError) as info:
            acquire_state_lock(state_dir)
    finally:
        os.close(fd)

    assert info.value.pid == dead
    assert info.value.running is False
    assert f"held by PID {dead} (not running - stale lock)" in str(info.value)


def test_acquire_state_lock_unknown_holder(state_dir: Path) -> None:
    path = state_dir / LOCK_FILENAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LockHeldError) as info:
            acquire_state_lock(state_dir)
    finally:
        os.close(fd)

    assert info.value.pid is None
    assert info.value.running is None
    assert re.match(
        rf"^state directory lock {re.escape(str(path))} is held by an unknown "
        "process; ",
        str(info.value),
    )


_HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from promptpipe.lock import acquire_state_lock

    lock = acquire_state_lock(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
    """
)


@pytest.fixture
def child_holder(state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    # Leaving the with block closes the pipes and waits for the child.
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER_SCRIPT, str(state_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        try:
            assert child.stdout.readline() == "locked\n"
            yield child
        finally:
            if child.poll() is None:
                child.kill()


@pytest.mark.slow
def test_acquire_state_lock_child_holder_rejected(
    state_dir: Path, child_holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LockHeldError) as info:
        acquire_state_lock(state_dir)

    assert info.value.path == str(state_dir / LOCK_FILENAME)
    assert info.value.pid == child_holder.pid
    assert info.value.running is True
    assert f"held by PID {child_holder.pid} (running)" in str(info.value)


@pytest.mark.slow
def test_acquire_state_lock_after_child_releases(
    state_dir: Path, child_holder: subprocess.Popen[str]
) -> None:
    assert child_holder.stdin is not None
    assert child_holder.stdout is not None
    child_holder.stdin.write("\n")
    child_holder.stdin.flush()
    assert child_holder.stdout.readline() == "released\n"
    assert child_holder.wait(timeout=10) == 0

    assert not (state_dir / LOCK_FILENAME).exists()
    with acquire_state_lock(state_dir) as lock:
        assert lock.path.read_text() == f"pid={os.getpid()}\n"


@pytest.mark.slow
def test_acquire_state_lock_after_child_killed(
    state_dir: Path, child_holder: subprocess.Popen[str]
) -> None:
    """The kernel drops the lock of a killed holder, whose file is left behind."""
    child_holder.kill()
    child_holder.wait(timeout=10)

    assert (state_dir / LOCK_FILENAME).exists()
    with acquire_state_lock(state_dir) as lock:
        assert lock.path.read_text() == f"pid={os.getpid()}\n"
