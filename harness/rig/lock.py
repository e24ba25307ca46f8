"""Exclusive use of a lab rig.

The lock is an advisory ``flock`` on a file that also says who holds it, so a second run against
the same rig fails at once with the holder's name instead of fighting over the charger. The
kernel drops the lock when the holder's process dies, so a crashed run never leaves a stale lock.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import getpass
import json
import os
import socket
import tempfile
from pathlib import Path


class RigBusy(RuntimeError):
    """The rig is in use by another run; the message names the holder."""


def default_lock_path(rig_name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in rig_name)
    return Path(tempfile.gettempdir()) / "harness-locks" / f"{safe}.lock"


class RigLock:
    def __init__(self, path: Path, rig_name: str, run_id: str) -> None:
        self.path = path
        self.rig_name = rig_name
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RigBusy(f"rig {self.rig_name!r} is locked by {holder} (lock file {self.path})") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({
            "user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(), "run": self.run_id,
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RigLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        return (f"{info.get('user', '?')}@{info.get('host', '?')} (pid {info.get('pid', '?')}, run "
                f"{info.get('run', '?')}, since {info.get('since', '?')})")
    except (OSError, ValueError):
        return "another process"
