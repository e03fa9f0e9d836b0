"""A source of events: a live download through rawtui's own stack, with its output file and privileges.

:class:`Session` wires link + stack + http for one URL and emits the event stream; :class:`ForkedSource`
runs it in a child process for the live view; :class:`OutputFile` lands the body atomically;
:func:`prepare_download` drops root to the sudo user, keeping CAP_NET_RAW and CAP_NET_ADMIN.
"""

from rawtui.api import lazy

__all__ = ["ForkedSource", "Options", "OutputFile", "Session", "prepare_download"]
__getattr__ = lazy(__name__, {"Options": "session", "Session": "session", "ForkedSource": "forked",
                              "OutputFile": "output", "prepare_download": "privilege"})
