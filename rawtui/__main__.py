"""The program: ``python -m rawtui`` and the installed ``rawtui`` script (``rawtui.__main__:run``)."""

import gc
import sys


def run() -> int:
    """Run the command line in ``sys.argv``; returns the exit code (or ends the process with it: leave()).

    The cyclic GC stays off while the command's modules load (~50 collections walking objects that cannot be
    garbage); ``rawtui.cli.imports_done`` freezes what they made and turns it back on.
    """
    gc.disable()
    from rawtui.cli import main

    code = main()
    leave(code)
    return code


def leave(code: int) -> None:
    """End the process with ``code`` now, as the interpreter's exit would, less its teardown of every module
    and object (~3 ms after a download, of a process whose memory goes back to the OS anyway): the atexit
    handlers run and the standard streams are flushed first. Returns (the interpreter then exits as usual)
    while a non-daemon thread still runs, or when a handler or a flush fails (the interpreter says it)."""
    import atexit
    import os
    import threading

    main = threading.main_thread()
    if any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return
    try:
        atexit._run_exitfuncs()  # the interpreter's own step, run here before os._exit
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 - the interpreter's exit reports it as it would have
        return
    os._exit(code)


if __name__ == "__main__":
    sys.exit(run())
