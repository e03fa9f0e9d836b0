"""Listeners on the event stream: the headless view, the NDJSON log, and the Textual app (``views.tui``).

None of them knows which source feeds it (a live download or a recording).
"""

from rawtui.api import lazy

__all__ = ["HeadlessView", "NdjsonWriter", "fanout"]
__getattr__ = lazy(__name__, {"HeadlessView": "headless", "NdjsonWriter": "ndjson", "fanout": "ndjson"})
