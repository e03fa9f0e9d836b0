"""A source of events: a connection another program makes on this host, watched passively
(``rawtui watch``): a receive-only tap, the choice of the connection to follow, the same analysis as
``rawtui replay`` of a capture, and the kernel's own TCP state of the local socket (inet_diag)."""

from rawtui.api import lazy

__all__ = ["FlowFilter", "FlowPicker", "KernelTcpInfo", "WatchOptions", "WatchSource"]
__getattr__ = lazy(__name__, {"FlowFilter": "pick", "FlowPicker": "pick", "KernelTcpInfo": "events",
                              "WatchOptions": "source", "WatchSource": "source"})
