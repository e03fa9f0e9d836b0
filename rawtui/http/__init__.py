"""The protocols on top of the stack's byte stream: HTTP/1.1 (h11) and TLS (``ssl.MemoryBIO``)."""

from rawtui.api import lazy

__all__ = ["HttpExchange", "PlainChannel", "RecordTracker", "TlsChannel", "Url", "make_context", "parse_url"]
__getattr__ = lazy(__name__, {
    "PlainChannel": "channel", "RecordTracker": "channel", "HttpExchange": "client", "Url": "client",
    "parse_url": "client", "TlsChannel": "tls", "make_context": "tls",
})
