"""Helpers for driving the app headless (tests, snapshots, the screenshots script)."""

from __future__ import annotations

import time
from typing import Any

from textual.pilot import Pilot


async def settle(pilot: Pilot[Any], *, timeout: float = 30.0) -> None:
    """Wait until the source has emitted everything and the screen shows all of it.

    "Emitted everything" is the source returning, or a replay's ``exhausted`` event (a replay that holds
    at its end, like a session still in progress). Then nothing may be queued and every panel must be
    drawn from the latest state (``app.ui_settled``).
    """
    app: Any = pilot.app
    exhausted = getattr(getattr(app, "source", None), "exhausted", None)
    deadline = time.monotonic() + timeout
    while True:
        await pilot.pause(0.02)
        emitted = app.source_finished or (exhausted is not None and exhausted.is_set())
        if emitted and app.ui_settled:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app did not settle in {timeout} s (pending={app.pending})")
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.3)  # screens pushed by the last events (the done summary) mount and take focus
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
