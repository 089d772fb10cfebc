"""Reading a file whose name comes from a config or a command line: regular files only, never past a limit.

A FIFO would block the read forever and a device (``/dev/zero``) never ends, so both are refused before a
byte is read; a regular file is read in chunks and refused as soon as it passes the limit, so a file that
grows while it is read cannot exhaust memory either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The limits, one per kind of file (docs/security.md lists them).
SECRET_FILE_BYTES = 64 * 1024
# a plan that onboards 100,000 members and 10,000 teams into an empty provider is 69 MB (110,000 creates)
PLAN_FILE_BYTES = 256 * 1024 * 1024
USERMAP_FILE_BYTES = 50 * 1024 * 1024
CHUNK = 1024 * 1024


class FileRefused(Exception):
    """The file cannot be read as asked; the message is one line and names no content."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def read_limited(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``; FileRefused if it is anything else or larger than ``limit``.
    OSError (missing, no permission) is left to the caller, which knows how to word it."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"is {_kind(st.st_mode)}; only regular files are read")
    if st.st_size > limit:
        raise FileRefused(f"is {st.st_size:,} bytes; the limit is {limit:,} bytes")
    # O_NONBLOCK: should the path have been swapped for a FIFO since the stat, open does not block on it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"is {_kind(st.st_mode)}; only regular files are read")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileRefused(f"is more than {limit:,} bytes; the limit is {limit:,} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
