"""One call run beside the calling thread, for set-up and tear-down steps that mostly wait in the kernel.

Opening the AF_PACKET socket's receive ring and closing it wait for an RCU grace period (~7 ms each, in
the kernel, the GIL released), removing the firewall rule for another, sweeping stale rules for a
subprocess: run beside each other (or beside imports), two of them take the time of the longer one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Aside(threading.Thread, Generic[T]):
    """``call()`` in a daemon thread, started at once; ``result()`` waits for it and returns its value or
    raises its exception (in the caller's thread, as if called there)."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._call = call
        self._value: T | None = None
        self._raised: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as e:  # noqa: BLE001 - handed to the caller by result()
            self._raised = e

    def result(self) -> T:
        self.join()
        if self._raised is not None:
            raise self._raised
        return self._value  # type: ignore[return-value]
