"""The program: ``python -m rawtui`` and the installed ``rawtui`` script (``rawtui.__main__:run``)."""

import gc
import sys


def run() -> int:
    """Run the command line in ``sys.argv``; returns the exit code.

    The cyclic GC stays off while the command's modules load (~50 collections walking objects that cannot be
    garbage); ``rawtui.cli.imports_done`` freezes what they made and turns it back on.
    """
    gc.disable()
    from rawtui.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
