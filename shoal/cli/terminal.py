"""What the commands print and log: the consoles, JSON lines, error messages, log records."""

import logging
import sys
from typing import Any

from rich.console import Console

#: The width of a console that is not a terminal: lines are neither cut nor wrapped.
UNBOUNDED = 1_000_000
#: The levels --log-level takes.
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def _console(stderr: bool = False) -> Console:
    """A console that fits its terminal; writing to a file or a pipe, it never cuts or wraps a line."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=UNBOUNDED)


console = _console(stderr=True)  # progress and messages
out = _console()  # what a command was asked to show


def print_json(value: Any) -> None:
    """Print ``value`` (dataclasses and msgspec Structs included) as one line of JSON on stdout."""
    import msgspec

    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """Print an error message as it is (no rich markup: it may hold brackets)."""
    console.print(f"shoal: {message}", style="red", markup=False, highlight=False)


def log_to_console(level: str) -> None:
    """Log shoal's records, and spiders' records, at ``level`` and above to stderr."""
    from shoal.spiders.spider import ConsoleHandler, set_console_log_level

    layout = "%(asctime)s %(name)s %(levelname)s: %(message)s"
    logging.basicConfig(level=level, format=layout, handlers=[ConsoleHandler()])
    set_console_log_level(level)
