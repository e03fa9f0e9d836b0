"""The one ``with`` protocol of link/'s resources (sockets, the pcap writer, the diag reader): entering
gives the object, leaving closes it, whatever the ending."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Mixin for a class with ``close()``: ``with obj:`` closes it on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
