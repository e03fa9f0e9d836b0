"""Capture files as other tools write them: every container, byte order, timestamp resolution and link
type gives the same analysis as the Ethernet pcap they were made from; broken and hostile files end in one
line or a partial analysis that says where the capture broke off.

The variants are written in-process (tests/recording/capture_files.py) from the download of
test_tui_pcap_replay.py (a lost and resent segment, reordering, a duplicate, corrupted frames). What is
compared: every event as NDJSON would hold it (``to_dict``, times rounded to the microsecond), except the
link-level ones (``route``: a cooked or raw capture has no next-hop MAC; the ARP exchange, which raw IP
cannot carry: those variants are compared with the Ethernet capture less its ARP frames) and the frame
length of a ``checksum_drop`` (it counts the link header). The file name in the "replaying ..." line is
the variant's.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from capture_files import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    Rec,
    gzipped,
    idb,
    pcap_bytes,
    pcapng_bytes,
    read_classic,
    relink,
    shb,
    spb,
)
from test_tui_pcap_replay import BODY, write_download

from rawtui.errors import EXIT_USAGE, UsageError
from rawtui.events import ArpIgnored, ArpReply, ArpRequest, Done, Event, Info, Route, to_dict
from rawtui.recording import NdjsonReplay, PcapReplay, load_events, open_capture, open_replay
from rawtui.recording.capture import CaptureError, NotACapture
from rawtui.wire.ipv4 import PROTO_TCP
from rawtui.wire.tcp import ACK, SYN

LINK_EVENTS = (Route, ArpRequest, ArpReply, ArpIgnored)


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> list[Rec]:
    path = tmp_path_factory.mktemp("cap") / "download.pcap"
    write_download(path)
    return read_classic(path)


def normal(evs: list[Event], name: str) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        if isinstance(e, LINK_EVENTS):
            continue
        d = to_dict(e)
        if d["type"] == "checksum_drop":
            d.pop("length")
        if d["type"] == "info":
            d["message"] = d["message"].replace(name, "FILE")
        out.append(d)
    return out


def analysis(path: Path) -> list[dict[str, Any]]:
    return normal(load_events(path), path.name)


def non_arp(recs: list[Rec]) -> list[Rec]:
    return [r for r in recs if struct.unpack_from("!H", r.data, 12)[0] != 0x0806]


def relinked(recs: list[Rec], linktype: int, **kw: Any) -> list[Rec]:
    out = []
    for r in recs:
        data = relink(r.data, linktype, **kw)
        if data is not None:
            out.append(Rec(r.sec, r.nsec, data, r.iface))
    return out


@pytest.fixture(scope="module")
def reference(recs: list[Rec], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    d = tmp_path_factory.mktemp("ref")
    (d / "eth.pcap").write_bytes(pcap_bytes(recs, 1))
    (d / "ip.pcap").write_bytes(pcap_bytes(non_arp(recs), 1))
    ref = {"eth": analysis(d / "eth.pcap"), "ip": analysis(d / "ip.pcap")}
    assert any(e["type"] == "done" for e in ref["eth"]) and len(ref["eth"]) > 60
    return ref


CONTAINERS = {
    "pcap-le-usec": lambda r, lt: pcap_bytes(r, lt),
    "pcap-be-usec": lambda r, lt: pcap_bytes(r, lt, order=">"),
    "pcap-le-nsec": lambda r, lt: pcap_bytes(r, lt, nano=True),
    "pcap-be-nsec": lambda r, lt: pcap_bytes(r, lt, order=">", nano=True),
    "pcap-fcs4": lambda r, lt: pcap_bytes(r, lt, fcs=4),
    "pcapng-le": lambda r, lt: pcapng_bytes(r, [(lt, None)]),
    "pcapng-be": lambda r, lt: pcapng_bytes(r, [(lt, None)], order=">"),
    "pcapng-le-nsec": lambda r, lt: pcapng_bytes(r, [(lt, 9)]),
    "pcapng-be-nsec-tsoffset": lambda r, lt: pcapng_bytes(r, [(lt, 9)], order=">", tsoffset=1_600_000_000),
    "pcapng-usec-explicit": lambda r, lt: pcapng_bytes(r, [(lt, 6)], unknown=False),
    "pcap.gz": lambda r, lt: gzipped(pcap_bytes(r, lt, nano=True)),
    "pcapng.gz": lambda r, lt: gzipped(pcapng_bytes(r, [(lt, 9)], order=">")),
}


@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_gives_the_same_analysis(container: str, recs: list[Rec], tmp_path: Path,
                                                 reference: dict[str, list[dict[str, Any]]]) -> None:
    path = tmp_path / f"x.{container}"
    path.write_bytes(CONTAINERS[container](recs, 1))
    evs = load_events(path)
    assert normal(evs, path.name) == reference["eth"]
    route = next(e for e in evs if isinstance(e, Route))
    assert (route.src_mac, route.gateway) == ("02:00:0a:00:01:02", "10.0.1.1")  # from the Ethernet/ARP frames


LINKS: dict[str, tuple[int, dict[str, Any], str]] = {  # name: (link type, relink options, reference)
    "vlan": (1, {"vlans": [(ETH_P_8021Q, 42)]}, "eth"),
    "qinq": (1, {"vlans": [(ETH_P_8021AD, 100), (ETH_P_8021Q, 42)]}, "eth"),
    "sll": (113, {}, "eth"),
    "sll-outgoing": (113, {"outgoing": True}, "eth"),
    "sll2": (276, {}, "eth"),
    "raw": (101, {}, "ip"),
    "ipv4": (228, {}, "ip"),
    "null-le": (0, {"null_order": "<"}, "ip"),
    "null-be": (0, {"null_order": ">"}, "ip"),
    "loop": (108, {}, "ip"),
}


@pytest.mark.parametrize("link", list(LINKS))
@pytest.mark.parametrize("container", ["pcap-be-nsec", "pcapng-le"])
def test_every_link_type_gives_the_same_analysis(link: str, container: str, recs: list[Rec], tmp_path: Path,
                                                 reference: dict[str, list[dict[str, Any]]]) -> None:
    linktype, kw, ref = LINKS[link]
    path = tmp_path / f"x.{link}.{container}"
    path.write_bytes(CONTAINERS[container](relinked(recs, linktype, **kw), linktype))
    assert analysis(path) == reference[ref]


def test_two_interfaces_of_different_link_types_and_resolutions(recs: list[Rec], tmp_path: Path,
                                                                 reference: dict[str, list[dict[str, Any]]]) -> None:
    """As mergecap writes two captures: the client's frames on an Ethernet interface in microseconds, the
    server's on a Linux cooked v2 interface in nanoseconds (and the ARP on the Ethernet one)."""
    mixed = []
    for r in recs:
        from_server = r.data[6:12] != bytes.fromhex("02000a000102")  # not sent by the client's MAC
        if from_server and struct.unpack_from("!H", r.data, 12)[0] == 0x0800:
            data = relink(r.data, 276)
            assert data is not None
            mixed.append(Rec(r.sec, r.nsec, data, 1))
        else:
            mixed.append(Rec(r.sec, r.nsec, r.data, 0))
    path = tmp_path / "merged.pcapng"
    path.write_bytes(pcapng_bytes(mixed, [(1, None), (276, 9)], order=">"))
    cap = open_capture(path)
    frames = list(cap)
    assert {f.linktype for f in frames} == {1, 276} and {f.interface for f in frames} == {0, 1}
    assert [f.number for f in frames] == list(range(1, len(recs) + 1)) and cap.truncated_at is None
    assert analysis(path) == reference["eth"]


def test_sections_of_both_byte_orders_one_after_another(recs: list[Rec], tmp_path: Path,
                                                          reference: dict[str, list[dict[str, Any]]]) -> None:
    """``cat a.pcapng b.pcapng``: a second section starts again with its own byte order and interfaces."""
    half = len(recs) // 2
    path = tmp_path / "two-sections.pcapng"
    path.write_bytes(pcapng_bytes(recs[:half], [(1, 9)]) + pcapng_bytes(recs[half:], [(1, None)], order=">"))
    assert analysis(path) == reference["eth"]


def test_simple_packet_blocks(recs: list[Rec], tmp_path: Path) -> None:
    path = tmp_path / "spb.pcapng"
    path.write_bytes(shb(">") + idb(">", 1, snaplen=100) + b"".join(spb(">", r.data) for r in recs[:5]))
    frames = list(open_capture(path))
    assert [f.data for f in frames] == [r.data[:100] for r in recs[:5]]  # cut to the interface's snap length
    assert {f.ts for f in frames} == {0.0}


def test_timestamps_of_every_resolution(tmp_path: Path) -> None:
    rec = Rec(1_700_000_000, 123_456_789, b"\0" * 60)
    for res, expect in [(None, 0.123456), (9, 0.123456789), (3, 0.123), (0x80 | 20, 0.123456)]:
        path = tmp_path / "ts.pcapng"
        path.write_bytes(pcapng_bytes([rec], [(1, res)], unknown=False))
        (frame,) = open_capture(path)
        assert frame.ts == pytest.approx(1_700_000_000 + expect, abs=1e-6), res
    path.write_bytes(pcap_bytes([rec], 1, order=">", nano=True))
    (frame,) = open_capture(path)
    assert frame.ts == pytest.approx(1_700_000_000.123456789, abs=1e-7)


def test_the_fcs_is_cut_off(tmp_path: Path) -> None:
    rec = Rec(1, 0, bytes(range(60)))
    path = tmp_path / "fcs.pcap"
    path.write_bytes(pcap_bytes([rec], 1, fcs=4))
    (frame,) = open_capture(path)
    assert frame.data == rec.data and frame.linktype == 1


# -- refusals: one line each ---------------------------------------------------------------------------

def test_a_link_type_rawtui_does_not_read_is_named(recs: list[Rec], tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    path.write_bytes(pcap_bytes(recs, 105))
    with pytest.raises(UsageError, match=r"link type IEEE 802.11 \(105\) is not one rawtui reads") as err:
        open_replay(path)
    assert err.value.exit_code == EXIT_USAGE and "\n" not in err.value.message
    path.write_bytes(pcap_bytes(recs, 266))
    with pytest.raises(UsageError, match=r"link type 266 is not"):
        open_replay(path)


def ipv6_tcp_frame(flags: int, sport: int = 50000, dport: int = 443) -> bytes:
    src, dst = bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8000000000000000000000002")
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    ip6 = struct.pack("!IHBB", 6 << 28, len(tcp), PROTO_TCP, 64) + src + dst
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd" + ip6 + tcp


def test_ipv6_flows_are_analysed_beside_ipv4_ones(recs: list[Rec], tmp_path: Path) -> None:
    """Since issue 14 an IPv6 flow is analysed (tests/recording/test_capture_ipv6.py: the same download as
    IPv6); beside an IPv4 download the largest HTTP download is still the one chosen, and nothing is refused."""
    v6 = [Rec(1_700_000_000, 0, ipv6_tcp_frame(SYN)), Rec(1_700_000_000, 1000, ipv6_tcp_frame(ACK))]
    path = tmp_path / "v6.pcapng"
    path.write_bytes(pcapng_bytes(v6, [(1, None)]))
    src = open_replay(path, speed=0)
    assert isinstance(src, PcapReplay) and src.flow.name == "[2001:db8::1]:50000 -> [2001:db8::2]:443"
    both = tmp_path / "both.pcap"
    both.write_bytes(pcap_bytes(v6 + recs, 1))
    evs = load_events(both)
    assert not [e for e in evs if isinstance(e, Info) and "IPv6" in e.message]
    assert any(isinstance(e, Done) for e in evs)


def test_gzip_ndjson_and_files_that_are_no_recording(tmp_path: Path) -> None:
    lines = Path(__file__).parent.parent.joinpath("fixtures", "complete_download.ndjson").read_bytes()
    gz = tmp_path / "events.ndjson.gz"
    gz.write_bytes(gzip.compress(lines))
    src = open_replay(gz, speed=0)
    assert isinstance(src, NdjsonReplay)
    assert [to_dict(e) for e in src.events()] == [to_dict(e) for e in load_events(
        Path(__file__).parent.parent / "fixtures" / "complete_download.ndjson")]
    for name, content in [("random.bin", bytes(range(256)) * 10), ("junk.gz", gzip.compress(bytes(range(256)))),
                          ("broken.gz", b"\x1f\x8b\x08\0" + b"\xff" * 40), ("text.txt", b"hello\nworld\n")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UsageError) as err:
            load_events(path)
        assert "\n" not in err.value.message and str(path) in err.value.message, name
    with pytest.raises(NotACapture):
        open_capture(tmp_path / "text.txt")
    with pytest.raises(CaptureError, match="cannot read the capture"):
        open_capture(tmp_path / "missing.pcap")


# -- broken captures: a partial analysis that says where --------------------------------------------------

def test_a_capture_cut_short_is_analysed_up_to_the_cut(recs: list[Rec], tmp_path: Path) -> None:
    full = pcapng_bytes(recs, [(1, 9)], unknown=False)
    path = tmp_path / "cut.pcapng"
    path.write_bytes(full[:len(full) * 2 // 3])
    cap = open_capture(path)
    n = sum(1 for _ in cap)
    assert 0 < n < len(recs) and cap.truncated_at == n + 1
    assert "ends in the middle of a block" in (cap.problem or "")
    evs = load_events(path)
    note = [e for e in evs if isinstance(e, Info) and e.message.startswith("capture truncated")]
    assert [e.message for e in note] == [f"capture truncated at frame {n + 1}: the file ends in the middle of a block"]
    assert not any(isinstance(e, Done) for e in evs)


@pytest.mark.parametrize("where", ["pcap", "pcapng"])
def test_a_huge_length_field_allocates_nothing(where: str, recs: list[Rec], tmp_path: Path) -> None:
    path = tmp_path / f"huge.{where}"
    if where == "pcap":
        data = bytearray(pcap_bytes(recs, 1))
        pos = 24
        for _ in range(10):
            pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        struct.pack_into("<I", data, pos + 8, 0xFFFFFFF0)  # the 11th record says 4 GB
    else:
        data = bytearray(pcapng_bytes(recs, [(1, None)], unknown=False))
        pos = len(shb("<")) + len(idb("<", 1))
        for _ in range(10):
            pos += struct.unpack_from("<I", data, pos + 4)[0]
        struct.pack_into("<I", data, pos + 4, 0xFFFFFFFC)
    path.write_bytes(bytes(data))
    cap = open_capture(path)
    assert sum(1 for _ in cap) == 10 and cap.truncated_at == 11 and "impossible" in (cap.problem or "")
    assert cap.bytes_read <= len(data)
    src = open_replay(path, speed=0)
    assert isinstance(src, PcapReplay)
    evs = list(src.events())
    assert any(isinstance(e, Info) and e.message.startswith("capture truncated at frame 11") for e in evs)


def test_cli_says_one_line(recs: list[Rec], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rawtui.cli import main

    path = tmp_path / "arp-only.pcap"  # no TCP at all
    path.write_bytes(pcap_bytes([r for r in recs if struct.unpack_from("!H", r.data, 12)[0] == 0x0806], 1))
    code = main(["replay", "--headless", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_USAGE and len(err) == 1 and "no TCP over IPv4 or IPv6" in err[0] and "Traceback" not in err[0]


def test_gzip_capture_through_the_cli(recs: list[Rec], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rawtui.cli import main

    path = tmp_path / "download.pcapng.gz"
    path.write_bytes(gzipped(pcapng_bytes(recs, [(1, 9)])))
    assert main(["replay", "--headless", str(path)]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert hashlib.sha256(BODY).hexdigest() in out.out + out.err


def test_a_mangled_request_line_or_host_is_not_a_traceback(recs: list[Rec], tmp_path: Path) -> None:
    """The title and the HTTP parser take the URL from the captured request: bytes a bit flip left in its
    Host header or path fall back to the server's address (found by test_capture_fuzz.py)."""
    bad = [Rec(r.sec, r.nsec, r.data.replace(b"Host: example.test", b"Host: e\x00\xffmple.test")
               .replace(b"GET /big.bin", b"GET /b\x01g.bin"), r.iface) for r in recs]
    path = tmp_path / "mangled.pcap"
    path.write_bytes(pcap_bytes(bad, 1))
    src = open_replay(path, speed=0)
    assert isinstance(src, PcapReplay) and src.title == "http://10.0.2.2:8080/"
    assert any(isinstance(e, Done) for e in src.events())
