"""The byte channel between the TCP stream and HTTP: plain, or TLS (:mod:`rawtui.http.tls`).

Both channels have the same small interface, so the session drives them alike:
``start()`` -> wire bytes to send once the connection is up; ``incoming(data)`` -> plaintext (wire
bytes the TLS machine wants to send meanwhile are in ``take_wire()``); ``outgoing(plaintext)`` -> wire
bytes; ``eof()`` -> the last plaintext once the peer closed; ``ready`` once application data may flow.

This module holds what a plain ``http://`` download needs, and the TLS record tracker, none of which
needs ``ssl``: the TLS channel and its import of ``ssl`` are loaded for ``https://`` only.
"""

from __future__ import annotations


class PlainChannel:
    ready = True
    tls = False

    def start(self) -> bytes:
        return b""

    def incoming(self, data: bytes) -> bytes:
        return data

    def take_wire(self) -> bytes:
        return b""

    def outgoing(self, plaintext: bytes) -> bytes:
        return plaintext

    def eof(self) -> bytes:
        return b""


_CONTENT_TYPES = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData", 24: "Heartbeat"}


class RecordTracker:
    """Finds TLS record boundaries in one direction of the in-order byte stream (headers only: the
    content stays encrypted). ``feed`` returns ``(content type name, length)`` for each record that
    starts in the bytes given; it never copies the stream."""

    def __init__(self) -> None:
        self._skip = 0  # bytes of the current record's body still to pass over
        self._head = b""  # a record header split across chunks

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            need = 5 - len(self._head)
            self._head += data[i : i + need]
            i += min(need, n - i)
            if len(self._head) < 5:
                break
            ctype, length = self._head[0], int.from_bytes(self._head[3:5], "big")
            out.append((_CONTENT_TYPES.get(ctype, f"type {ctype}"), length))
            self._head = b""
            self._skip = length
        return out
