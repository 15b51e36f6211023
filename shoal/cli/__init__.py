"""The ``shoal`` command: ``main`` parses the command line (shoal.cli.parser) and runs the command."""

import os
import signal
import sys

from shoal.cli.parser import build_parser
from shoal.cli.terminal import console


class _Terminated(Exception):
    """SIGTERM reached a command that does not handle it itself."""


def _stop_now(signum: int, frame: object) -> None:
    """Ctrl+C or SIGTERM outside the commands that handle them (service processes, a crawl of shoal run):
    raised where the program is. Not asyncio.run's Ctrl+C, which cancels the command's task: a Redis
    command cancelled at the wrong moment can swallow that, and ``shoal items --follow`` went on."""
    raise KeyboardInterrupt if signum == signal.SIGINT else _Terminated


def main(argv: list[str] | None = None) -> None:
    """Run the command ``argv`` (default: the command line) and exit with its status."""
    args = build_parser().parse_args(argv)
    before = {sig: signal.signal(sig, _stop_now) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        console.print("shoal: stopped (Ctrl+C)")
        sys.exit(130)
    except _Terminated:
        console.print("shoal: stopped (SIGTERM)")
        sys.exit(143)
    except BrokenPipeError:  # the reader went away (`shoal items ... | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
