"""The explainer (rawtui.analysis.explain): synthetic event sequences, one per topic, the rate limiting,
streams with and without the newer event types, and the recorded fast-retransmit scenario."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from rawtui.analysis import Explain, Explained, Explainer
from rawtui.events import (
    ChecksumDrop,
    Done,
    DupAck,
    DupData,
    Emit,
    Event,
    Handshake,
    LabKnobs,
    LabStats,
    OutOfOrder,
    PeerRetransmit,
    Retransmit,
    RouterAction,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    TcpState,
    Window,
)
from rawtui.recording import load_events
from rawtui.stack.tcp_states import State

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "v1"  # made before PeerRetransmit
MSS = 1448


def explain(events: Iterable[Event], **kw: float) -> list[Explain]:
    x = Explainer(**kw)  # type: ignore[arg-type]
    out: list[Explain] = []
    for ev in events:
        out.extend(x.feed(ev))
    return out


def topics(out: list[Explain]) -> list[str]:
    return [e.topic for e in out]


def handshake(t: float = 0.01, rtt_ms: float = 10.0) -> Handshake:
    return Handshake(t, 40000, 8080, 1, 1, 1460, 1460, 7, 7, True, True, rtt_ms)


def seg(t: float, seq: int, note: str = "", length: int = MSS, flags: str = "A") -> SegmentIn:
    return SegmentIn(t, seq, 1, flags, 65535, length, (), note)


def hole_then_fill(t0: float, hole: int, *, fill_after: float, dupacks: int = 3,
                   classified: str | None = None) -> list[Event]:
    """In-order data up to ``hole``, then ``dupacks`` segments above it (each answered by a duplicate
    ACK), then the missing segment ``fill_after`` seconds after the first one above it; with
    ``classified``, the stack's PeerRetransmit for it too."""
    evs: list[Event] = [seg(t0, hole - MSS)]
    for i in range(dupacks):
        t = t0 + 0.0001 * (i + 1)
        above = hole + MSS * (i + 1)
        evs += [OutOfOrder(t, above, MSS, hole, MSS * (i + 1)), DupAck(t, hole, i + 1, "out"), seg(t, above, "ooo")]
    t = t0 + 0.0001 + fill_after
    evs.append(seg(t, hole, "fill"))
    if classified is not None:
        evs.append(PeerRetransmit(t, hole, MSS, classified, fill_after * 1000, dupacks))
    return evs


# -- each topic -------------------------------------------------------------------------------------


def test_first_loss_three_dup_acks_and_the_fast_retransmit_with_their_numbers() -> None:
    out = explain([handshake(), *hole_then_fill(1.0, 100_001, fill_after=0.012, dupacks=4), Done(2.0, 1, "", 1.0, "")])
    assert topics(out) == ["loss", "dup-acks", "fast-retransmit"]
    loss, acks, fast = out
    assert loss.text.startswith("First loss: seq 100,001 (1,448 bytes) is missing") and loss.seq == 100_001
    assert loss.t == 1.0001
    assert acks.text.startswith("3 duplicate ACKs for seq 100,001 sent in 0.2 ms")
    assert fast.text.startswith("Fast retransmit: the server resent seq 100,001 (1,448 bytes) after 4 duplicate "
                                "ACKs, 12 ms after the hole opened (RTT 10 ms)")
    assert fast.seq == 100_001


def test_the_stacks_classification_wins_and_nothing_is_told_twice() -> None:
    evs = [handshake(), *hole_then_fill(1.0, 100_001, fill_after=0.3, dupacks=1, classified="timeout")]
    out = explain([*evs, Done(2.0, 1, "", 1.0, "")])
    # the legacy guess (a 0.3 s silence would be a timeout too) is dropped for the stack's own event
    assert topics(out) == ["loss", "timeout"]
    assert out[1].text.startswith("Timeout retransmit: after 300 ms of silence")


def test_without_peer_retransmit_a_long_silence_is_a_timeout() -> None:
    evs: list[Event] = [handshake(), seg(1.0, 1), seg(1.5, 1, "dup"), Done(2.0, 1, "", 1.0, "")]
    evs.insert(2, DupData(1.5, 1, MSS))
    out = explain(evs)
    assert topics(out) == ["timeout"]
    assert "after 500 ms of silence" in out[0].text and "seq 1 " in out[0].text


def test_repeated_data_without_silence_is_a_spurious_retransmit() -> None:
    out = explain([handshake(), seg(1.0, 1), DupData(1.001, 1, MSS), seg(1.001, 1, "dup"), Done(2.0, 1, "", 1.0, "")])
    assert topics(out) == ["spurious"]


def test_tail_loss_probe_and_spurious_from_the_stack() -> None:
    out = explain([handshake(), PeerRetransmit(1.0, 5000, MSS, "tlp", 21.0, 0),
                   PeerRetransmit(2.0, 9000, MSS, "spurious", 1.0, 0)])
    assert topics(out) == ["tlp", "spurious"]
    assert "after 21 ms without an ACK" in out[0].text


def test_a_hole_filled_sooner_than_a_round_trip_is_reordering() -> None:
    out = explain([handshake(rtt_ms=10.0), *hole_then_fill(1.0, 100_001, fill_after=0.001, dupacks=2)])
    assert topics(out) == ["loss", "reorder"]
    assert out[1].text.startswith("Reordering: seq 100,001 arrived 1.0 ms after data above it")


def test_the_router_saying_reorder_is_believed() -> None:
    evs = [handshake(rtt_ms=1.0),
           RouterAction(0.999, "down", "reorder", 100_001, MSS, "A", 8080, 40000, 5.0, "reorder 5 %"),
           *hole_then_fill(1.0, 100_001, fill_after=0.005, dupacks=3, classified="fast")]
    out = explain(evs)
    assert "reorder" in topics(out) and "fast-retransmit" not in topics(out)
    assert "the router held it back (reorder 5 %)" in next(e.text for e in out if e.topic == "reorder")


def test_a_hole_names_the_router_drop_that_made_it() -> None:
    evs = [handshake(), RouterAction(0.999, "down", "drop", 100_001, MSS, "A", 8080, 40000, 5.0, "loss 1 %"),
           *hole_then_fill(1.0, 100_001, fill_after=0.012, classified="fast")]
    out = explain(evs)
    router, loss = out[0], out[1]
    assert router.topic == "router" and router.text.startswith("Router dropped seq 100,001 (1,448 bytes), "
                                                                "server -> client, at t=1.00 s (loss 1 %)")
    assert loss.topic == "loss" and "the router dropped it (loss 1 %)" in loss.text


def test_router_actions_of_another_connection_are_not_ours() -> None:
    out = explain([handshake(), RouterAction(1.0, "down", "drop", 1, MSS, "A", 8080, 40001, 5.0, "loss 1 %")])
    assert out == []


def test_legacy_router_counters_when_the_relay_reports_no_actions() -> None:
    knobs = LabKnobs(0.0, {"loss": 2.0}, {})
    out = explain([knobs, LabStats(0.25, {"lost": 0}, {}), LabStats(0.5, {"lost": 3}, {})])
    assert [e.text for e in out] == ["Router dropped 3 frames of the server's since its last report (loss 2 %): 3 in all"]
    # with RouterAction events, the counters say nothing (the actions are told one by one)
    out = explain([RouterAction(0.1, "down", "corrupt", 1, MSS, "A", 0, 0, 1.0, "corrupt 1 %"),
                   LabStats(0.25, {"corrupted": 0}, {}), LabStats(0.5, {"corrupted": 1}, {})])
    assert topics(out) == ["router"]


def server(t: float, state: str = "open", cwnd: int = 100 * MSS, ssthresh: int | None = None, *, backoff: int = 0,
           rto: float = 212.0, lost: int = 0, retrans: int = 0, probes: int = 0) -> ServerTcpInfo:
    return ServerTcpInfo(t, cwnd, ssthresh, 10.0, 1.0, retrans, 0, 0, MSS, ca_state=state, rto_ms=rto,
                         backoff=backoff, lost=lost, probes=probes)


def test_recovery_in_and_out() -> None:
    out = explain([server(1.0), server(1.01, "recovery", 50 * MSS, 50 * MSS, lost=2, retrans=2),
                   server(1.03, "open", 50 * MSS, 50 * MSS, retrans=2)])
    assert topics(out) == ["recovery", "recovery"]
    assert out[0].text.startswith("Server entered fast recovery: 2 segment(s) marked lost, 2 resent in all; "
                                  "cwnd 72,400 bytes, ssthresh 72,400")
    assert out[1].text.startswith("Server left recovery after 20 ms: every hole repaired")


def test_the_servers_rto_and_its_backoff() -> None:
    out = explain([server(1.0), server(1.2, "loss", MSS, backoff=1, rto=400), server(1.6, "loss", MSS, backoff=2, rto=800),
                   server(2.4, "loss", MSS, backoff=3, rto=1600)])
    assert topics(out) == ["rto", "rto", "rto"]
    assert "backoff 1, RTO 400 ms" in out[0].text and "cwnd back to 1,448 bytes (1 segment)" in out[0].text
    assert out[1].text.startswith("RTO again: still no ACK, so the server doubles its timer (backoff 2, RTO 800 ms)")
    assert out[2].text == "2nd RTO backoff: backoff 3, RTO 1600 ms"


def test_slow_start_to_congestion_avoidance_only_when_ssthresh_is_known() -> None:
    assert explain([server(1.0, cwnd=10 * MSS), server(1.1, cwnd=200 * MSS)]) == []  # ssthresh still infinite
    out = explain([server(1.0, cwnd=10 * MSS, ssthresh=40 * MSS), server(1.1, cwnd=20 * MSS, ssthresh=40 * MSS),
                   server(1.2, cwnd=41 * MSS, ssthresh=40 * MSS), server(1.3, cwnd=42 * MSS, ssthresh=40 * MSS)])
    assert topics(out) == ["slow-start"]
    assert out[0].text.startswith("Server left slow start: cwnd 59,368 bytes reached ssthresh 57,920")
    # right after a recovery cwnd = ssthresh: that is congestion avoidance already, not the end of a slow start
    assert explain([server(1.0, "recovery", 40 * MSS, 40 * MSS), server(1.1, "open", 40 * MSS, 40 * MSS)])[-1].topic \
        == "recovery"


def window(t: float, rwnd: int) -> Window:
    return Window(t, 14480, 1 << 30, rwnd, 65535, 0, 10.0, 5.0, 200.0)


def test_zero_window_probes_and_the_window_update() -> None:
    out = explain([window(1.0, 100_000), window(2.0, 0), seg(2.3, 5000, "", length=0), seg(2.9, 5000, "", length=0),
                   window(4.0, 500_000)])
    assert topics(out) == ["zero-window", "window-probe", "window-probe", "window-update"]
    assert out[1].text.startswith("Window probe: the server sent a probe 300 ms into the zero window (probe 1)")
    assert out[2].text == "2nd window probe: 600 ms after the previous one"
    assert out[3].text.startswith("Window update: the application reads again and rawtui reopens its window to "
                                  "500,000 bytes after 2.00 s at zero and 2 probe(s)")


def test_zero_window_seen_in_our_segments_and_the_servers_probe_count() -> None:
    out = explain([SegmentOut(1.0, 1, 1, "A", 0, 0), server(1.5, probes=1),
                   SegmentOut(2.0, 1, 1, "A", 200, 0, note="window-update")])
    assert topics(out) == ["zero-window", "window-probe", "window-update"]


def test_syn_retry_our_rto_and_checksum_drop() -> None:
    out = explain([TcpState(0.0, State.CLOSED, State.SYN_SENT), Retransmit(1.0, 0, 0, "syn", 1),
                   Retransmit(5.0, 1, 157, "rto", 1), LabKnobs(5.0, {"corrupt": 1.0}, {}),
                   ChecksumDrop(6.0, "tcp", 1514)])
    assert topics(out) == ["syn-retry", "rto", "checksum"]
    assert out[0].text.startswith("SYN retry: no SYN-ACK came, so rawtui sends its SYN again (attempt 2 1.00 s "
                                  "after the first)")
    assert "resent seq 1 (157 bytes) of its request, backoff 1" in out[1].text
    assert out[2].text.startswith("Checksum drop: a 1,514-byte frame failed its TCP checksum: corrupted on the way "
                                  "(the router corrupts 1 %)")


def test_router_duplicates_are_not_resends() -> None:
    out = explain([handshake(), seg(1.0, 1),
                   RouterAction(1.0, "down", "duplicate", 1, MSS, "A", 8080, 40000, 1.0, "dup 1 %"),
                   DupData(1.001, 1, MSS), seg(1.001, 1, "dup"), PeerRetransmit(1.001, 1, MSS, "spurious", 1.0)])
    assert topics(out) == ["router", "duplicate"]


# -- rate limiting ----------------------------------------------------------------------------------


def many_fast_retransmits(n: int, spacing: float) -> list[Event]:
    evs: list[Event] = [handshake(rtt_ms=1.0)]
    for i in range(n):
        evs += hole_then_fill(1.0 + i * spacing, 1 + i * 100 * MSS, fill_after=0.002, classified="fast")
    return evs


def test_ten_thousand_losses_give_a_few_lines_a_second() -> None:
    evs = [*many_fast_retransmits(10_000, 0.001), Done(20.0, 1, "", 1.0, "")]  # 10 s of losses
    out = explain(evs)
    fast = [e for e in out if e.topic == "fast-retransmit"]
    assert fast[0].text.startswith("Fast retransmit:")
    assert fast[1].text.startswith("2nd fast retransmit: ") and fast[2].text.startswith("3rd fast retransmit: ")
    aggregated = fast[3:]
    assert 9 <= len(aggregated) <= 11  # one a second, the last one told at the end
    assert aggregated[0].text.startswith("1,000 more fast retransmits in 1.00 s (1,003 in all); latest: seq ")
    assert aggregated[-1].text.split("(")[1].startswith("10,000 in all")
    assert len(out) < 60


def test_spaced_occurrences_are_each_told() -> None:
    out = [e for e in explain(many_fast_retransmits(6, 2.0)) if e.topic == "fast-retransmit"]
    assert [e.text.split(":")[0] for e in out] == ["Fast retransmit", "2nd fast retransmit", "3rd fast retransmit",
                                                    "4th fast retransmit", "5th fast retransmit",
                                                    "6th fast retransmit"]


def test_held_lines_are_told_when_the_connection_closes() -> None:
    evs = many_fast_retransmits(5, 0.001)
    out = explain([*evs, TcpState(1.2, State.ESTABLISHED, State.FIN_WAIT_1)])
    assert out[-1].topic == "fast-retransmit" and out[-1].text.startswith("2 more fast retransmits")
    assert out[-1].t == 1.2


# -- the wrapper: one rule in one place, never twice -----------------------------------------------


class ListSource:
    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.title = "a list"

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        return 0


def test_explained_adds_after_the_cause_and_keeps_the_ending_last() -> None:
    evs = [*many_fast_retransmits(5, 0.001), Done(3.0, 1, "", 1.0, "")]
    got: list[Event] = []
    source = Explained(ListSource(evs))
    assert source.title == "a list"
    assert source.run(got.append, threading.Event()) == 0
    assert isinstance(got[-1], Done)
    assert [e for e in got if not isinstance(e, Explain)] == evs
    first = next(i for i, e in enumerate(got) if isinstance(e, Explain) and e.topic == "fast-retransmit")
    assert isinstance(got[first - 1], PeerRetransmit)
    # a recording that has explanations already: they are made again, not doubled
    again: list[Event] = []
    Explained(ListSource(got)).run(again.append, threading.Event())
    assert again == got


def test_the_recorded_fast_retransmit_scenario() -> None:
    """A recording made before PeerRetransmit and RouterAction existed: the legacy path."""
    events = load_events(RECORDED / "fast-retransmit.ndjson")
    out = explain(events)
    fast = [e for e in out if e.topic == "fast-retransmit"]
    assert fast[0].text == ("Fast retransmit: the server resent seq 14,670 (1,448 bytes) after 6 duplicate ACKs, "
                            "11 ms after the hole opened (RTT 12 ms), without waiting for its retransmission timer "
                            "(216 ms)")
    assert fast[0].seq == 14_670 and fast[0].t == 0.167913
    assert fast[-1].text.startswith("11 more fast retransmits") and "(14 in all)" in fast[-1].text
    holes_filled = next(e for e in events if isinstance(e, Done)).counters["holes_filled"]
    assert holes_filled == 14  # the stack's own count: the same 14
    first = out[0]
    assert first.topic == "loss" and first.text.startswith("First loss: seq 14,670 (1,448 bytes) is missing")
    assert [e.topic for e in out if e.topic == "recovery"] == ["recovery"] * 6
    assert len(out) < 30


class _Listed:
    def __init__(self, events: list[Event]) -> None:
        self.events = events

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        return 0


def test_the_explained_stream_stays_in_time_order() -> None:
    """A line resolved by a later event is stamped when it is told: the stream (and the NDJSON log) never
    goes back in time, on both recordings (one resolved by PeerRetransmit events, one by the fallback)."""
    for path in (RECORDED / "fast-retransmit.ndjson", RECORDED.parent / "fast-retransmit.ndjson"):
        got: list[Event] = []
        Explained(_Listed(list(load_events(path)))).run(got.append, threading.Event())
        times = [e.t for e in got]
        assert times == sorted(times), path
        assert sum(e.type == "explain" for e in got) > 3
