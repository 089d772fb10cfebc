"""How reconciler asks glibc's malloc to hold memory: one call at start-up (``tune_malloc``).

Pages of a list are read on up to ``concurrency`` threads at once, and each answer's body (about 1 MB at
1,000 users a page) is allocated on its thread. glibc gives each thread an arena of its own (up to eight
per core) and, once a large block has been freed, raises the size below which it serves such blocks
from those arenas instead of mapping them afresh. Freed bodies then stay in the arenas, scattered among
the objects that live on, and the process keeps them: at 100,000 members that was about 45 MB of a
no-op plan's peak (464 MB; 418 MB with the settings below, measured in one process each, the same
pages). Two settings undo it: blocks of 128 KiB and more are always mapped on their own (and returned
when freed), and two arenas serve all threads (the GIL lets one thread at a time allocate anyway).

Variables that set the same in the environment win (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_ARENA_MAX``),
``RECONCILER_MALLOC=default`` leaves malloc as it is, and on a C library other than glibc nothing is done.
"""

from __future__ import annotations

import os
import sys

# mallopt(3) parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value; setting it turns its dynamic growth off
ARENA_MAX = 2


def tune_malloc() -> dict[str, int]:
    """Apply the settings where they apply; what was set (empty: nothing)."""
    if not sys.platform.startswith("linux") or os.environ.get("RECONCILER_MALLOC") == "default":
        return {}
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    done: dict[str, int] = {}
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX)):
        if env not in os.environ and mallopt(param, value) == 1:
            done[env] = value
    return done
