"""The base of the text panels: they render from the model and set their border titles in ``sync``."""

from __future__ import annotations

from textual.widget import Widget

from ..model import ViewModel


class ModelPanel(Widget):
    """A panel drawn from the :class:`ViewModel`. The app calls :meth:`sync` when the panel's data changed:
    it updates the border titles (which cannot change while rendering) and schedules a render."""

    def __init__(self, model: ViewModel, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model

    def titles(self) -> None:
        """Set ``border_title`` / ``border_subtitle`` from the model (override)."""

    def sync(self) -> None:
        self.titles()
        self.refresh()

    def on_mount(self) -> None:
        self.titles()
