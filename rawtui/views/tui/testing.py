"""Helpers for driving the app headless (tests, snapshots, the screenshots script)."""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Callable, Coroutine
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (no pytest asyncio plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def screen_text(app: App[Any]) -> str:
    """What the terminal shows, as plain text."""
    w, h = app.size
    console = Console(width=w, height=h, file=io.StringIO(), record=True, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()


async def wait_for(condition: Callable[[], bool], pilot: Pilot[Any], timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"not within {timeout} s: {condition}")


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
