"""The app's own messages: what widgets and the source worker tell the app."""

from __future__ import annotations

from textual.message import Message


class SourceFinished(Message):
    """The event source returned (the worker thread ended) with this exit code."""

    def __init__(self, exit_code: int) -> None:
        super().__init__()
        self.exit_code = exit_code


class EventsApplied(Message):
    """A drain tick folded ``count`` queued events into the view model (``total`` so far)."""

    def __init__(self, count: int, total: int) -> None:
        super().__init__()
        self.count = count
        self.total = total


class PacketHighlighted(Message):
    """The cursor of the packet list is on packet ``number``."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number


class PacketSelected(Message):
    """Packet ``number`` was chosen (Enter or click): show its decoded layers."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number


class FollowChanged(Message):
    """The packet list's follow mode changed (the user scrolled away, or pressed f)."""

    def __init__(self, follow: bool) -> None:
        super().__init__()
        self.follow = follow
