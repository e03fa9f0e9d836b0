"""The one error type every parser in wire/ raises: arbitrary bytes in, a WireError (or nothing) out."""

from __future__ import annotations


class WireError(ValueError):
    """The bytes are not a valid packet of this format."""


class ChecksumError(WireError):
    """The packet parsed but its checksum is wrong. ``layer`` is "ipv4", "tcp", "icmp" or "icmpv6"."""

    def __init__(self, layer: str, message: str = "") -> None:
        super().__init__(message or f"bad {layer} checksum")
        self.layer = layer
