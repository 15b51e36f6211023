"""How much memory a worker uses: its process and every descendant (a browser's processes too)."""

import contextlib

import psutil


def tree_memory() -> int:
    """Proportional set size in bytes of this process and its descendants: pages shared between them
    (Chromium's processes share many) are counted once across the tree, not once per process."""
    root = psutil.Process()
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_full_info().pss
    return total
