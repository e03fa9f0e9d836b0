"""The key bar: Textual's Footer, rebuilt only when the keys it shows change.

Textual's Footer composes its keys only at the first "bindings updated" signal, after the first frame
(another layout and paint), and recomposes (a dozen widgets, their styles, a layout) at every such
signal: each focus change, each screen pushed or popped, five times during the app's start-up alone,
~40 ms each on a small machine. Most of those signals change nothing it shows.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer


class KeysFooter(Footer):
    """A :class:`Footer` that shows its keys from the start (with the other widgets, not in a layout of its
    own after the first frame) and skips a recompose when the keys, their labels and their state are
    unchanged."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._shown: tuple[object, ...] | None = None
        self.set_reactive(Footer._bindings_ready, True)

    def compose(self) -> ComposeResult:
        self._shown = self._keys()
        yield from super().compose()

    def _keys(self) -> tuple[object, ...]:
        """Everything :meth:`Footer.compose` reads from the bindings and the footer's own state."""
        keys = tuple(
            (b.key, b.action, b.description, b.key_display, b.group, enabled, tooltip, b.tooltip)
            for (_, b, enabled, tooltip) in self.screen.active_bindings.values()
            if b.show
        )
        return (keys, self._bindings_ready, self.compact, self.show_command_palette, self.combine_groups)

    async def recompose(self) -> None:
        if not self.is_attached:
            return
        keys = self._keys()
        if keys == self._shown:
            return
        self._shown = keys
        await super().recompose()
