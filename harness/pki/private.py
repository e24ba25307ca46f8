"""Files only their owner may read (mode 0600): private keys, and the TLS key logs that decrypt
every captured session (OCPP Basic-auth passwords at security profile 2 included)."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, readable and writable by its owner only, whatever mode a file
    already there had."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, PRIVATE)  # an existing file keeps its mode through O_CREAT
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists with mode 0600 before another writer (OpenSSL's key log) appends
    to it: a file it creates itself gets the process's umask, usually 0644."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE))
    os.chmod(path, PRIVATE)
    return path
