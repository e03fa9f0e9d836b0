"""Time series at a fixed step, from the event stream (``--series FILE.csv``): for notebooks and graders.

:class:`TimeSeries` is a sans-IO listener: give it every event (a live download's, a replayed log's, the
demo's), in time order, and it keeps one row per step: memory grows with the download's duration, not
with its number of events. :class:`SeriesWriter` writes the rows as CSV when closed, atomically (a
temporary file beside the target, renamed when complete), on every ending: an error's stream is worth
plotting too.

The row at ``t`` describes the step that ends at ``t`` (the interval ``(t - step, t]``): the last value
of each quantity known at ``t``, and what arrived during the step. A quantity nobody reported yet is an
empty cell (the server's cwnd outside the lab, its ssthresh during the first slow start, our RTT before
there is one). The columns:

- ``t``: seconds since the session started (the events' clock);
- ``rwnd``: the window rawtui advertises, bytes; ``peer_flight``: rawtui's estimate of the server's
  bytes in flight (both from the ``window`` events);
- ``server_cwnd``, ``server_ssthresh``, ``server_rtt_ms``, ``server_retrans_total``: the lab server's
  own TCP_INFO (ground truth, ``rawtui demo`` only);
- ``srtt_ms``: rawtui's smoothed RTT;
- ``throughput_bps``: TCP payload bytes received during the step, per second (duplicates included: what
  the path delivered); ``bytes``: the same, cumulated;
- ``server_retransmits``: the server's retransmissions as rawtui saw them arrive, cumulated: the
  classified ``peer_retransmit`` events when the stream has them, else the segments that filled a hole
  or repeated data (``segment_in`` note ``fill``, ``dup_data``).
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable
from typing import IO

from rawtui.errors import OutputError
from rawtui.events import (
    DupData,
    Event,
    Handshake,
    PeerRetransmit,
    Progress,
    SegmentIn,
    ServerTcpInfo,
    Window,
)

__all__ = ["COLUMNS", "DEFAULT_STEP", "SeriesWriter", "TimeSeries"]

DEFAULT_STEP = 0.1  # seconds

COLUMNS = ("t", "rwnd", "peer_flight", "server_cwnd", "server_ssthresh", "srtt_ms", "server_rtt_ms",
           "throughput_bps", "bytes", "server_retransmits", "server_retrans_total")

Cell = float | int | None


class TimeSeries:
    """Fold events into rows at a fixed ``step`` (seconds): call it with each event, then :meth:`rows`."""

    def __init__(self, step: float = DEFAULT_STEP) -> None:
        if not step > 0:
            raise ValueError(f"the series step must be > 0 seconds (got {step})")
        self.step = step
        self._k0: int | None = None  # the first row's index (its t is k0 * step)
        self._k = 0  # the row being filled
        self._done: list[tuple[Cell, ...]] = []  # finished rows, without t, throughput and the retransmit count
        self._step_bytes: list[int] = []  # payload bytes received per finished row
        self._retrans_seen: list[tuple[int, int]] = []  # (classified, fills + dups) per finished row
        # the state now
        self._rwnd: int | None = None
        self._peer_flight: int | None = None
        self._srtt: float | None = None
        self._server: ServerTcpInfo | None = None
        self._port: int | None = None
        self._bytes = 0  # payload bytes so far
        self._row_bytes = 0  # ... in the row being filled
        self._progress_bytes = 0  # the last progress event's bytes (for streams without segments)
        self._segments = False  # the stream has per-segment events
        self._classified = 0  # peer_retransmit events so far
        self._repairs = 0  # hole fills and dup data so far

    def __call__(self, ev: Event) -> None:
        k = math.ceil(ev.t / self.step - 1e-9)
        if self._k0 is None:
            self._k0 = self._k = k
        elif k > self._k:  # (a late event, e.g. from the lab's side channel, counts in the row being filled)
            self._close_rows(k)
        if isinstance(ev, SegmentIn):
            self._segments = True
            if ev.length:
                self._bytes += ev.length
                self._row_bytes += ev.length
                if ev.note == "fill":
                    self._repairs += 1
        elif isinstance(ev, Window):
            self._rwnd, self._peer_flight, self._srtt = ev.rwnd, ev.peer_flight, ev.srtt_ms
        elif isinstance(ev, ServerTcpInfo):
            if self._port is None or not ev.peer_port or ev.peer_port == self._port:
                self._server = ev
        elif isinstance(ev, PeerRetransmit):
            self._classified += 1
        elif isinstance(ev, DupData):
            self._repairs += 1
        elif isinstance(ev, Progress):
            if not self._segments and ev.bytes > self._progress_bytes:  # a log without segments
                self._bytes += ev.bytes - self._progress_bytes
                self._row_bytes += ev.bytes - self._progress_bytes
            self._progress_bytes = max(self._progress_bytes, ev.bytes)
        elif isinstance(ev, Handshake):
            self._port = ev.local_port

    def _close_rows(self, upto: int) -> None:
        """Finish the rows before ``upto`` (the quantities hold their last value through the empty ones)."""
        while self._k < upto:
            self._finish_row()
            self._k += 1

    def _state(self) -> tuple[Cell, ...]:
        s = self._server
        return (self._rwnd, self._peer_flight,
                s.cwnd_bytes if s else None, s.ssthresh_bytes if s else None,
                None if self._srtt is None else round(self._srtt, 3), round(s.rtt_ms, 3) if s else None,
                self._bytes, s.retrans_total if s else None)

    def _finish_row(self) -> None:
        self._done.append(self._state())
        self._step_bytes.append(self._row_bytes)
        self._retrans_seen.append((self._classified, self._repairs))
        self._row_bytes = 0

    def rows(self) -> list[tuple[Cell, ...]]:
        """Every row so far (the one being filled included), in :data:`COLUMNS` order."""
        if self._k0 is None:
            return []
        done = [*self._done, self._state()]
        step_bytes = [*self._step_bytes, self._row_bytes]
        seen = [*self._retrans_seen, (self._classified, self._repairs)]
        classified = seen[-1][0] > 0  # the stream has the classified retransmissions: count those
        digits = max(0, -math.floor(math.log10(self.step))) + 3
        out: list[tuple[Cell, ...]] = []
        for i, (row, got, (cls, repairs)) in enumerate(zip(done, step_bytes, seen, strict=True)):
            rwnd, flight, cwnd, ssthresh, srtt, srv_rtt, total, srv_retrans = row
            out.append((round((self._k0 + i) * self.step, digits), rwnd, flight, cwnd, ssthresh, srtt, srv_rtt,
                        round(got / self.step, 1), total, cls if classified else repairs, srv_retrans))
        return out

    def write_csv(self, f: IO[str]) -> None:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for row in self.rows():
            w.writerow(["" if v is None else v for v in row])


class SeriesWriter(TimeSeries):
    """:class:`TimeSeries` written to ``path`` as CSV when closed (a temporary file renamed: nothing
    half-written under the name). Checks at once that the directory can take the file."""

    def __init__(self, path: str, step: float = DEFAULT_STEP) -> None:
        super().__init__(step)
        self.path = path
        check_csv_target(path)
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        write_csv_atomically(self.path, self.write_csv)


def check_csv_target(path: str) -> None:
    """OutputError at once when the directory of ``path`` cannot take the file (before a run, not after)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise OutputError(f"cannot write the series {path}: {directory} is not a writable directory")


def write_csv_atomically(path: str, write: Callable[[IO[str]], None]) -> None:
    """``write`` fills a temporary file beside ``path``, renamed to it when complete: nothing half-written
    under the name. OutputError (one line) when it cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write the series {path}: {e.strerror}") from None
