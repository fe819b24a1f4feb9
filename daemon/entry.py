"""The ``alphad`` console script: the command line, and a Ctrl-C while it still loads.

Loading the command line and what it imports takes a few tenths of a second; an
interrupt in that time would print a traceback from inside an import. Here it ends the
command as an interrupt does once it runs: quietly, with 130.
"""

from __future__ import annotations

EXIT_INTERRUPTED = 130


def main() -> int:
    """Load the command line and run it."""
    try:
        from alphad.daemon.cli import main as command
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return command()
