"""The base of the text panels: they render from the model and set their border titles in ``sync``."""

from __future__ import annotations

from textual.widget import Widget

from rawtui.views.tui.model import ViewModel


class ModelPanel(Widget):
    """A panel drawn from the :class:`ViewModel`. The app calls :meth:`sync` when the panel's data changed:
    it updates the border titles (which cannot change while rendering) and schedules a render."""

    def __init__(self, model: ViewModel, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self._border_texts: tuple[str | None, str | None] = (None, None)

    def titles(self) -> None:
        """Set ``border_title`` / ``border_subtitle`` from the model (override)."""

    def sync(self) -> None:
        self.titles()
        self.refresh()

    def set_titles(self, title: str, subtitle: str = "") -> None:
        """Set the border titles when they changed (setting one re-parses it and redraws the border)."""
        if title != self._border_texts[0] or subtitle != self._border_texts[1]:
            self._border_texts = (title, subtitle)
            self.border_title, self.border_subtitle = title, subtitle

    def on_mount(self) -> None:
        self.titles()
