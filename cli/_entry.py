"""The ``prefpaint`` console script: own SIGINT and SIGTERM before the command line is imported.

Importing the command modules (typer, rich, every command group) takes a few tenths of a second. A signal
in that time would meet Python's defaults: SIGTERM kills the process (exit -15), SIGINT prints a traceback.
So this module, which imports only the small signal module of the SDK, installs the handlers first; a signal
that arrives while the rest is imported ends the run with its exit code (130/143) and the one
"interrupted" line, as it would later. Only the interpreter's own start (before this module runs) is left.
"""

from __future__ import annotations

import sys


def main() -> None:
    from prefpaint_sdk import interrupts

    interrupts.install(reset=True)
    try:
        from ._common import run_main
        from .main import app

        interrupts.check()  # a signal some import swallowed is still on record
        run_main(app, reset=False)  # keeps the record: a signal during the imports is not forgotten
    except KeyboardInterrupt:  # before run_main took over (its own exits are SystemExit)
        interrupts.exiting()
        sys.stderr.write("interrupted\n")
        sys.exit(interrupts.exit_code())


if __name__ == "__main__":
    main()
