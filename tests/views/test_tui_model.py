"""The view model, the filter and the decoded tree: plain Python, no Textual."""

from __future__ import annotations

from pathlib import Path

import pytest

from rawtui.events import ArpRequest, ChecksumDrop, Handshake, Progress, SegmentIn, SegmentOut, TlsRecord
from rawtui.recording import load_events
from rawtui.views.tui.describe import detail_tree, hexdump, parse_filter, summary
from rawtui.views.tui.fmt import human_bytes, human_ms, human_rate, human_s
from rawtui.views.tui.model import Series, ViewModel, request_label
from rawtui.views.tui.widgets.graphs import downsample

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def model_of(name: str) -> ViewModel:
    m = ViewModel(title="http://10.0.2.2:8080/big.bin")
    m.apply_all(load_events(FIXTURES / f"{name}.ndjson"))
    return m


def test_complete_download_folds_to_the_done_counters() -> None:
    m = model_of("complete_download")
    assert m.done is not None and m.phase == "DONE"
    c = m.counters
    d = m.done.counters
    assert (c.retransmits, c.dup_data, c.out_of_order, c.dup_acks_out) == (
        d["retransmits"], d["dup_data"], d["out_of_order"], d["dup_acks_sent"])
    assert (c.checksum_ipv4, c.checksum_tcp, c.malformed) == (d["checksum_ipv4"], d["checksum_tcp"], d["malformed"])
    assert (c.segments_in, c.segments_out) == (d["segments_in"], d["segments_out"])
    assert m.arp_tries == 2 and m.arp_mac == "02:00:0a:00:01:01" and c.arp_ignored == 1
    assert [s.label for s in m.ladder] == [
        "SYN", "SYN,ACK", "ACK", "GET /big.bin", "HTTP 200 OK", "data",
        "server resent seq 1,741,781 (fast) · 11 so far", "FIN", "FIN", "ACK"]
    assert m.received == 2_000_000 and m.eta_s == 0.0


def test_mid_download_progress_from_event_times() -> None:
    m = model_of("mid_download")
    assert m.phase == "DOWNLOADING"
    assert m.total == 6_000_000 and m.received == m.progress.bytes  # type: ignore[union-attr]
    assert m.eta_s is not None and abs(m.eta_s - (6_000_000 - m.received) / m.speed_bps) < 1e-9


def test_versions_move_only_for_touched_areas() -> None:
    m = ViewModel()
    before = dict(m.versions)
    m.apply(ChecksumDrop(1.0, "tcp", 1514))
    changed = {k for k in m.versions if m.versions[k] != before[k]}
    assert changed == {"counters", "packets"}


def test_series_is_bounded_and_keeps_ends() -> None:
    s = Series(cap=100)
    for i in range(10_000):
        s.add(i, i)
    assert len(s) < 100 and s.xs[0] == 0 and s.xs == sorted(s.xs)
    xs, ys = downsample(list(range(1000)), [0] * 500 + [9] + [0] * 499, 50)
    assert len(xs) <= 100 and 9 in ys


def test_packet_ring_is_bounded() -> None:
    m = ViewModel(ring_size=10)
    m.apply_all([SegmentIn(i, i, 0, "A", 0, 0) for i in range(25)])
    assert m.packet_count == 25 and [no for no, _ in m.packets] == list(range(16, 26))


def test_filters() -> None:
    syn = SegmentOut(0.0, 0, 0, "S", 64240, 0)
    rst = SegmentIn(1.0, 5, 1, "RA", 0, 0)
    retx = SegmentOut(2.0, 1, 1, "PA", 100, 95, note="retransmit")
    dup = SegmentIn(3.0, 100, 96, "A", 100, 1460, note="dup")
    ooo = SegmentIn(4.0, 100, 96, "A", 100, 1460, note="ooo")
    arp = ArpRequest(0.5, "10.0.1.1", 1)
    drop = ChecksumDrop(5.0, "ipv4", 1514)
    evs = [syn, rst, retx, dup, ooo, arp, drop]

    def sel(text: str) -> list[object]:
        p = parse_filter(text)
        assert p is not None
        return [e for e in evs if p(e)]

    assert parse_filter("  ") is None
    assert sel("arp") == [arp]
    assert sel("flags:R") == [rst]
    assert sel("retrans") == [retx, dup]
    assert sel("in") == [rst, dup, ooo, drop]
    assert sel("out tcp") == [syn, retx]
    assert sel("!tcp") == [arp, drop]
    assert sel("drop") == [drop]
    assert sel("t>=3 t<5") == [dup, ooo]
    assert sel("ooo") == [ooo]
    assert sel("data in") == [dup, ooo]
    assert sel("who-has") == [arp]


def test_summaries_and_tree() -> None:
    m = model_of("mid_download")
    no, ev = next((no, e) for no, e in m.packets if getattr(e, "note", "") == "dup-ack" and e.sack)
    assert summary(ev).startswith("A   seq=96 ack=") and "[dup-ack]" in summary(ev) and "sack=" in summary(ev)
    tree = detail_tree(no, ev, m)
    labels = []

    def walk(n):  # type: ignore[no-untyped-def]
        labels.append(n.label)
        for c in n.children:
            walk(c)

    walk(tree)
    assert "ports 40312 -> 8080" in labels and "flags 0x010 [ACK]" in labels
    assert any(x.startswith("SACK blocks") for x in labels)
    assert any("duplicate ACK" in x for x in labels)
    assert "not recorded: events carry fields, not frames" in labels


def test_hexdump() -> None:
    assert hexdump(b"GET / HTTP/1.1\r\n\x00") == [
        "0000  47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a  GET / HTTP/1.1..",
        "0010  00                                               .",
    ]


def test_formatting() -> None:
    assert human_bytes(950) == "950 B" and human_bytes(14600) == "14.6 kB" and human_bytes(2_680_000) == "2.68 MB"
    assert human_rate(670_000) == "5.36 Mbit/s"
    assert human_ms(0.42) == "0.42 ms" and human_ms(21.12) == "21.1 ms" and human_ms(1500) == "1.50 s"
    assert human_s(4.96) == "5.0 s" and human_s(75) == "1:15 min" and human_s(None) == "-"
    assert request_label("http://h:8080/a/b?c") == "GET /a/b?c" and request_label("replay") == "request"


def test_our_windows_are_scaled_by_our_window_scale() -> None:
    """SegmentOut carries the 16-bit window field (as the stack emits it); the screen shows bytes."""
    m = ViewModel()
    hs = Handshake(0.02, 40000, 80, 1000, 2000, 1460, 1460, 7, 9, True, True, 20.0)
    syn = SegmentOut(0.0, 0, 0, "S", 64240, 0)
    ack = SegmentOut(0.03, 1, 1, "A", 2048, 0)
    m.apply_all([syn, hs, ack])
    assert m.out_shift == 7
    assert m.graphs.seq_window.ys[-1] == 1 + 2048 * 128
    assert "win=262144" in summary(ack, out_shift=7) and "win=64240" in summary(syn, out_shift=7)
    labels = [n.label for n in _nodes(detail_tree(3, ack, m))]
    assert "window 2,048 x 128 (scale 7) = 262,144 B" in labels


def _nodes(node):  # type: ignore[no-untyped-def]
    yield node
    for c in node.children:
        yield from _nodes(c)


def test_tls_records_are_listed_and_filtered() -> None:
    rec_out = TlsRecord(0.1, "out", "Handshake", 517)
    rec_in = TlsRecord(0.2, "in", "ApplicationData", 16401)
    m = ViewModel()
    m.apply_all([rec_out, rec_in])
    assert [no for no, _ in m.packets] == [1, 2]
    assert summary(rec_in) == "TLS ApplicationData record, 16,401 B"
    flt = parse_filter("tls out")
    assert flt is not None and flt(rec_out) and not flt(rec_in)
    labels = [n.label for n in _nodes(detail_tree(2, rec_in, m))]
    assert "content type ApplicationData" in labels and labels[0].startswith("#2 received")


def test_throughput_bins_adapt_to_a_short_transfer() -> None:
    """The recorded fast-retransmit run is over in 0.3 s: its progress events all say speed 0 (the
    session measures speed over >= 0.25 s), yet the throughput graph has ~100 bins with the real rate."""
    events = load_events(FIXTURES / "recorded" / "fast-retransmit.ndjson")
    assert all(ev.speed_bps == 0 for ev in events if isinstance(ev, Progress))
    m = ViewModel()
    m.apply_all(events)
    rate = m.graphs.throughput
    payload = sum(ev.length for ev in events if isinstance(ev, SegmentIn))
    data = [ev.t for ev in events if isinstance(ev, SegmentIn) and ev.length]
    assert 64 <= len(rate) <= 128
    assert rate.width * len(rate) >= data[-1] - data[0]
    assert rate.width <= (data[-1] - data[0]) / 64  # fine enough for the transfer's length
    assert sum(rate.ys) * rate.width == pytest.approx(payload)
    assert sum(1 for y in rate.ys if y > 0) > len(rate) // 2 and max(rate.ys) > 10e6


def test_throughput_bins_widen_for_a_long_transfer() -> None:
    """40 s at 1 MB/s: the bins widen (pairs merge) to stay at most 128, and each reads 1 MB/s."""
    m = ViewModel()
    m.apply_all(SegmentIn(i * 0.001, i * 1000, 1, "A", 65535, 1000) for i in range(40_000))
    rate = m.graphs.throughput
    assert 64 <= len(rate) <= 128 and rate.width >= 40 / 128
    assert rate.ys[1:-1] == pytest.approx([1e6] * (len(rate) - 2), rel=0.01)
    assert rate.now_bps == pytest.approx(1e6, rel=0.01)


def test_what_you_saw_from_the_recorded_scenario() -> None:
    m = ViewModel()
    m.apply_all(load_events(FIXTURES / "recorded" / "fast-retransmit.ndjson"))
    saw = m.what_you_saw()
    assert saw and "repaired by fast retransmit" in saw[0]
    assert ViewModel().what_you_saw() == []


def test_server_retransmissions_are_counted_by_kind_drawn_and_witnessed() -> None:
    from rawtui.events import LabStats, PeerRetransmit, ServerTcpInfo

    m = ViewModel()
    m.apply(Handshake(0.02, 40000, 8080, 1, 2, 1460, 1460, 7, 7, True, True, 20.0))
    assert m.witnesses() == (0, None, None)
    m.apply_all([
        PeerRetransmit(1.0, 14601, 1448, "fast", 3.0, 3),
        PeerRetransmit(1.5, 29201, 1448, "timeout", 420.0, 1),
        PeerRetransmit(1.6, 30649, 1448, "fast", 2.0, 5),
    ])
    c = m.counters
    assert (c.peer_retrans, c.peer_fast, c.peer_timeout, c.peer_tlp, c.peer_spurious) == (3, 2, 1, 0, 0)
    steps = [s for s in m.ladder if s.label.startswith("server resent")]
    assert len(steps) == 1 and steps[0].label == "server resent seq 30,649 (fast) · 3 so far"
    assert m.graphs.seq_retrans.ys == [14601 + 1448, 29201 + 1448, 30649 + 1448]
    m.apply(ServerTcpInfo(1.7, 14600, None, 20.0, 2.0, 4, 0, 0, 1460, peer_port=40000))
    m.apply(LabStats(1.8, {"lost": 3, "queue_drops": 1, "duplicated": 7}))
    assert m.witnesses() == (3, 4, 4)
