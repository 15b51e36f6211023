"""Child processes of ``shoal run``: the private redis-server and the workers (with their Chromiums).

Each starts in a session of its own, so that a terminal's Ctrl+C (a SIGINT to the terminal's whole
process group) reaches only ``shoal run``, which pauses the crawl and then stops its children in
order. On Linux each child also gets SIGTERM from the kernel when ``shoal run`` dies, however it dies
(PR_SET_PDEATHSIG), so none outlives it.
"""

import ctypes
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _exit_with_parent() -> None:
    """In a child before exec: have Linux send it SIGTERM when the thread that started it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_options() -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` / ``asyncio.create_subprocess_exec``: a session of the
    child's own, and (on Linux) death with its parent."""
    return {"start_new_session": True, "preexec_fn": _exit_with_parent if sys.platform == "linux" else None}
