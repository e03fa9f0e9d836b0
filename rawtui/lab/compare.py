"""One impaired link, several congestion controls: the numbers of each run (``rawtui demo --compare``).

:func:`run_metrics` sums up one download's events (rawtui's own and the lab server's TCP_INFO samples):
goodput, the server's retransmissions, its mean RTT and queueing delay, the time to finish, and the
congestion control the server's kernel really used. :func:`compare_table` lays several runs side by side
as text (the headless output); a scenario's ``compare`` check (:mod:`rawtui.lab.scenarios`) reads them.

The RTT figures are the server's own: the mean of its smoothed RTT over the TCP_INFO samples taken while
it had data in flight (one every ~10 ms), and its ``tcpi_min_rtt``, the path's RTT without a queue. Their
difference is the queueing delay the algorithm caused.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rawtui.events import Done, Event, Handshake, LabStats, Progress, ServerTcpInfo
from rawtui.lab.events import server_frames_lost

__all__ = ["CCS", "HEADERS", "RunMetrics", "compare_table", "parse_cc_list", "run_metrics", "table_rows"]

CCS = ("reno", "cubic", "bbr")  # what this lab teaches (the kernel may offer more)


def parse_cc_list(text: str) -> list[str]:
    """``"reno,cubic,bbr"`` -> ``["reno", "cubic", "bbr"]``; ValueError naming what is wrong."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise ValueError(f"{text!r}: name at least two of {', '.join(CCS)}, separated by commas")
    bad = [n for n in names if n not in CCS]
    if bad:
        raise ValueError(f"{text!r}: unknown congestion control {bad[0]!r} (use {', '.join(CCS)})")
    if len(set(names)) != len(names):
        raise ValueError(f"{text!r}: each congestion control once")
    return names


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """One run of the comparison, from its events."""

    cc: str  # the congestion control asked for
    cc_seen: str  # what the server's kernel reported (TCP_CONGESTION); "" when no sample said
    bytes: int  # the file's bytes received
    time_s: float  # from the connection established to the last byte
    goodput_bps: float  # file bits per second over time_s
    retrans: int  # the server's retransmitted segments (tcpi_total_retrans)
    rtt_mean_ms: float  # mean of the server's smoothed RTT while it had data in flight
    rtt_max_ms: float
    min_rtt_ms: float  # the server's tcpi_min_rtt: the path without a queue
    rtt_samples: int  # TCP_INFO samples the means are taken over
    router_drops: int  # server frames the router dropped (loss, full queue, blackout, corruption)
    queue_max: int  # the deepest the router's bottleneck queue got (frames)
    complete: bool  # a Done event arrived

    @property
    def queue_delay_ms(self) -> float:
        """Mean RTT above the path's own: the time a segment waited in queues, on average."""
        return max(0.0, self.rtt_mean_ms - self.min_rtt_ms)


def _our_samples(events: Sequence[Event]) -> list[ServerTcpInfo]:
    port = None
    for ev in events:
        if isinstance(ev, Handshake):
            port = ev.local_port
    return [ev for ev in events if isinstance(ev, ServerTcpInfo) and (port is None or ev.peer_port == port)]


def run_metrics(cc: str, events: Sequence[Event]) -> RunMetrics:
    """The numbers of one run (``cc``: the algorithm asked for) from its event stream."""
    samples = _our_samples(events)
    sending = [s for s in samples if s.unacked > 0 and s.rtt_ms > 0]
    rtts = [s.rtt_ms for s in sending]
    seen = [s.cc for s in samples if s.cc]
    hs = next((ev for ev in events if isinstance(ev, Handshake)), None)
    done = next((ev for ev in reversed(events) if isinstance(ev, Done)), None)
    progress = [ev for ev in events if isinstance(ev, Progress)]
    nbytes = done.bytes if done is not None else (progress[-1].bytes if progress else 0)
    start = hs.t if hs is not None else (progress[0].t if progress else 0.0)
    end = done.t if done is not None else (progress[-1].t if progress else start)
    took = max(0.0, end - start)
    stats = next((ev for ev in reversed(events) if isinstance(ev, LabStats)), None)
    down = stats.down if stats is not None else {}
    mins = [s.min_rtt_ms for s in samples if s.min_rtt_ms > 0]
    return RunMetrics(
        cc=cc,
        cc_seen=statistics.mode(seen) if seen else "",
        bytes=nbytes,
        time_s=took,
        goodput_bps=nbytes * 8 / took if took > 0 else 0.0,
        retrans=max((s.retrans_total for s in samples), default=0),
        rtt_mean_ms=statistics.fmean(rtts) if rtts else 0.0,
        rtt_max_ms=max(rtts, default=0.0),
        min_rtt_ms=min(mins) if mins else min(rtts, default=0.0),
        rtt_samples=len(rtts),
        router_drops=server_frames_lost(down),
        queue_max=int(down.get("queue_max", 0)),
        complete=done is not None,
    )


HEADERS = ("cc", "goodput", "time", "retrans", "mean RTT", "queueing", "min RTT", "router drops", "samples")


def table_rows(runs: Iterable[RunMetrics]) -> list[tuple[str, ...]]:
    """The table's cells, one tuple per run, in :data:`HEADERS` order."""
    rows: list[tuple[str, ...]] = []
    for m in runs:
        name = m.cc if not m.cc_seen or m.cc_seen == m.cc else f"{m.cc} (server: {m.cc_seen})"
        rows.append((name, f"{m.goodput_bps / 1e6:.2f} Mbit/s", f"{m.time_s:.2f} s" + ("" if m.complete else " (cut)"),
                     str(m.retrans), f"{m.rtt_mean_ms:.1f} ms", f"{m.queue_delay_ms:.1f} ms", f"{m.min_rtt_ms:.1f} ms",
                     str(m.router_drops), str(m.rtt_samples)))
    return rows


def compare_table(runs: Sequence[RunMetrics]) -> str:
    """The runs side by side, as aligned text (the headless ``--compare`` output)."""
    rows = [HEADERS, *table_rows(runs)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
