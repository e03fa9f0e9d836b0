"""`rawtui interfaces` without root: warnings, kinds, policy rules, offloads, the ARP probe on a fake link."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest
from conftest import require_tool
from rich.console import Console

from rawtui import cli
from rawtui.link import afpacket
from rawtui.link.ethtool import Feature, Offloads, offloads_from, read_features, read_offloads
from rawtui.link.route import (
    InterfaceInfo,
    MatchedRoute,
    Override,
    PolicyRule,
    RouteExplanation,
    RouteInfo,
    interface_kind,
    rule_matches,
    rule_text,
    selecting_rule,
)
from rawtui.stack.events import Medium
from rawtui.tools import interfaces as ifs
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp, parse_arp
from rawtui.wire.ethernet import ETH_P_ARP, build_ethernet, mac_bytes, parse_ethernet
from rawtui.wire.ipv4 import ip_bytes

# -- warnings -------------------------------------------------------------------------------------

LAYER3 = "layer-3 link: bare IP packets, point-to-point (no link-layer address to resolve)"


def info(**kw: Any) -> InterfaceInfo:
    base: dict[str, Any] = {
        "name": "eth0", "index": 2, "kind": "veth", "up": True, "carrier": True, "operstate": "UP",
        "mac": "02:00:00:00:00:01", "ipv4": ("10.0.0.2/24",), "mtu": 1500, "ethernet": True,
        "medium": Medium.ETHERNET,
    }  # fmt: skip
    base.update(kw)
    return InterfaceInfo(**base)


def test_an_interface_with_only_ipv6_is_usable() -> None:
    row = ifs.interface_row(info(ipv4=(), ipv6=("2001:db8::2/64", "fe80::1/64")), None)
    assert row.usable and row.warnings == ("no IPv4 address (IPv6 only)",)


@pytest.mark.parametrize(
    ("kw", "warnings"),
    [
        ({}, []),
        ({"kind": "physical"}, []),
        ({"name": "lo", "kind": "loopback", "ethernet": False, "ipv4": ("127.0.0.1/8",), "mtu": 65536,
          "medium": None}, ["loopback: rawtui cannot use it (raw sockets cannot reach loopback)"]),
        ({"kind": "tun", "ethernet": False, "carrier": False, "medium": Medium.IP}, [LAYER3]),
        ({"kind": "wireguard", "ethernet": False, "medium": Medium.IP}, [LAYER3]),
        ({"kind": "infiniband", "ethernet": False, "medium": None},
         ["link type infiniband: rawtui cannot run there (it runs on Ethernet and layer-3 links)"]),
        ({"up": False, "carrier": False}, ["down"]),
        ({"carrier": False}, ["no carrier: nothing is connected, or the other end is down"]),
        ({"ipv4": ()}, ["no IPv4 address"]),
        ({"ipv4": (), "master": "br0"}, ["no IPv4 address: a port of br0, use br0"]),
        ({"ipv4": (), "ipv6": ("fe80::1/64",)}, ["no IPv4 address"]),  # only the link-local every link has
        ({"ipv6": ("2001:db8::2/64", "fe80::1/64")}, []),
        ({"mtu": 500}, ["MTU 500 is below 576, the IPv4 minimum: expect tiny segments or none"]),
        ({"up": False, "ipv4": (), "mtu": 400}, ["down", "no IPv4 address",
                                                 "MTU 400 is below 576, the IPv4 minimum: expect tiny segments or none"]),
    ],
)  # fmt: skip
def test_interface_warnings(kw: dict[str, Any], warnings: list[str]) -> None:
    assert ifs.interface_warnings(info(**kw)) == warnings
    row = ifs.interface_row(info(**kw), None)
    assert row.usable == (not warnings or warnings == ["no carrier: nothing is connected, or the other end is down"]
                          or warnings[0].startswith("MTU") or warnings == [LAYER3])  # fmt: skip


# -- kinds ----------------------------------------------------------------------------------------


class FakeLink(dict[str, Any]):
    """Enough of a pyroute2 RTM_NEWLINK message: fields by [], attributes by get()."""

    def __init__(self, name: str, index: int, ifi_type: int = 1, info_kind: str | None = None) -> None:
        super().__init__(index=index, ifi_type=ifi_type, flags=1, IFLA_IFNAME=name)
        self.info_kind = info_kind

    def get_nested(self, *keys: str) -> Any:
        return self.info_kind if keys == ("IFLA_LINKINFO", "IFLA_INFO_KIND") else None


def sysfs_entry(root: Path, name: str, index: int, *dirs: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "ifindex").write_text(f"{index}\n")
    for d in dirs:
        (root / name / d).mkdir()


def test_interface_kinds(tmp_path: Path) -> None:
    sysfs_entry(tmp_path, "enp1s0", 2, "device")
    sysfs_entry(tmp_path, "wlan0", 3, "device", "wireless")
    sysfs_entry(tmp_path, "wlp2s0", 4, "device", "phy80211")
    sysfs_entry(tmp_path, "eth9", 99, "device")  # another namespace's eth9: its index differs
    assert interface_kind(FakeLink("enp1s0", 2), tmp_path) == "physical"
    assert interface_kind(FakeLink("wlan0", 3), tmp_path) == "wireless"
    assert interface_kind(FakeLink("wlp2s0", 4), tmp_path) == "wireless"
    assert interface_kind(FakeLink("eth9", 5), tmp_path) == "ether"
    assert interface_kind(FakeLink("ghost", 6), tmp_path) == "ether"
    assert interface_kind(FakeLink("lo", 1, ifi_type=772), tmp_path) == "loopback"
    assert interface_kind(FakeLink("tun0", 7, ifi_type=65534, info_kind="tun"), tmp_path) == "tun"
    assert interface_kind(FakeLink("tap0", 8, info_kind="tun"), tmp_path) == "tap"
    assert interface_kind(FakeLink("ve0", 9, info_kind="veth"), tmp_path) == "veth"
    assert interface_kind(FakeLink("wg0", 10, ifi_type=65534), tmp_path) == "none"


# -- policy rules -------------------------------------------------------------------------------------


def rule(priority: int, table: int = 254, action: int = 1, **kw: Any) -> dict[str, Any]:
    """A fake RTM_NEWRULE message (a dict answers both msg["field"] and msg.get("FRA_...")."""
    msg: dict[str, Any] = {"dst_len": 0, "src_len": 0, "tos": 0, "table": table, "action": action, "flags": 0,
                           "FRA_PRIORITY": priority, "FRA_TABLE": table, "FRA_SUPPRESS_PREFIXLEN": 0xFFFFFFFF}  # fmt: skip
    msg.update(kw)
    return msg


DEFAULT_RULES = [rule(0, 255), rule(32766, 254), rule(32767, 253)]
DST = ipaddress.IPv4Address("192.0.2.10")


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        (rule(0, 255), "from all lookup local"),
        (rule(100, 100, dst_len=32, FRA_DST="192.0.2.10"), "from all to 192.0.2.10 lookup 100"),
        (rule(100, 100, src_len=24, FRA_SRC="10.0.0.0"), "from 10.0.0.0/24 lookup 100"),
        (rule(5, 51820, flags=2, FRA_FWMARK=0xCA6C), "not from all fwmark 0xca6c lookup 51820"),
        (rule(6, 254, FRA_SUPPRESS_PREFIXLEN=0), "from all lookup main suppress_prefixlength 0"),
        (rule(7, 0, action=2, FRA_GOTO=100), "from all goto 100"),
        (rule(8, 0, action=7), "from all unreachable"),
        (rule(9, 10, FRA_IIFNAME="eth0", FRA_UID_RANGE={"start": 1000, "end": 1000}),
         "from all iif eth0 uidrange 1000-1000 lookup 10"),
        (rule(9, 10, FRA_FWMARK=1, FRA_FWMASK=0xFF, FRA_IP_PROTO=6, FRA_DPORT_RANGE={"start": 80, "end": 80}),
         "from all ipproto 6 fwmark 0x1/0xff dport 80-80 lookup 10"),
    ],
)  # fmt: skip
def test_rule_text_reads_like_ip_rule(msg: dict[str, Any], text: str) -> None:
    assert rule_text(msg) == text


@pytest.mark.parametrize(
    ("msg", "src", "oif", "uid", "matches"),
    [
        (rule(1), None, None, 0, True),
        (rule(1, dst_len=24, FRA_DST="192.0.2.0"), None, None, 0, True),
        (rule(1, dst_len=24, FRA_DST="198.51.100.0"), None, None, 0, False),
        (rule(1, dst_len=24, FRA_DST="198.51.100.0", flags=2), None, None, 0, True),
        (rule(1, src_len=32, FRA_SRC="10.0.0.2"), None, None, 0, False),  # `route get` has no source
        (rule(1, src_len=32, FRA_SRC="10.0.0.2"), "10.0.0.2", None, 0, True),
        (rule(1, FRA_IIFNAME="lo"), None, None, 0, True),  # locally generated traffic comes "from lo"
        (rule(1, FRA_IIFNAME="eth0"), None, None, 0, False),
        (rule(1, FRA_OIFNAME="eth1"), None, None, 0, False),
        (rule(1, FRA_OIFNAME="eth1"), None, "eth1", 0, True),
        (rule(1, FRA_FWMARK=0xCA6C), None, None, 0, False),  # no mark on our lookup
        (rule(1, FRA_FWMARK=0xCA6C, flags=2), None, None, 0, True),
        (rule(1, FRA_UID_RANGE={"start": 1000, "end": 2000}), None, None, 0, False),
        (rule(1, FRA_UID_RANGE={"start": 1000, "end": 2000}), None, None, 1500, True),
        (rule(1, FRA_IP_PROTO=6), None, None, 0, False),
        (rule(1, tos=0x10), None, None, 0, False),
        (rule(1, FRA_L3MDEV=1), None, None, 0, False),
    ],
)
def test_rule_matches(msg: dict[str, Any], src: str | None, oif: str | None, uid: int, matches: bool) -> None:
    assert rule_matches(msg, DST, src, oif, uid=uid) is matches


def test_the_rule_that_chose_the_table() -> None:
    rules = [*DEFAULT_RULES, rule(1000, 100, dst_len=32, FRA_DST="192.0.2.10")]
    rules.sort(key=lambda r: r["FRA_PRIORITY"])
    assert selecting_rule(rules, 100, 32, DST, None, None) == PolicyRule(
        1000, 100, "from all to 192.0.2.10 lookup 100"
    )
    assert selecting_rule(rules, 254, 0, DST, None, None) == PolicyRule(32766, 254, "from all lookup main")
    assert selecting_rule(rules, 77, 0, DST, None, None) is None  # no rule leads there: say so


def test_suppress_prefixlength_as_wg_quick_sets_it_up() -> None:
    rules = [
        rule(0, 255),
        rule(32764, 254, FRA_SUPPRESS_PREFIXLEN=0),
        rule(32765, 51820, flags=2, FRA_FWMARK=0xCA6C),
        rule(32766, 254),
        rule(32767, 253),
    ]
    # a specific route in main: the suppress rule found it
    assert selecting_rule(rules, 254, 24, DST, None, None).priority == 32764  # type: ignore[union-attr]
    # the default route of main is suppressed there; the tunnel's table comes first
    assert selecting_rule(rules, 51820, 0, DST, None, None).priority == 32765  # type: ignore[union-attr]
    # (and if it were the main default after all, only the plain main rule could have chosen it)
    assert selecting_rule(rules, 254, 0, DST, None, None).priority == 32766  # type: ignore[union-attr]


def test_goto_skips_rules_and_terminal_actions_end_the_walk() -> None:
    rules = [
        rule(0, 255),
        rule(10, 0, action=2, FRA_GOTO=30000),
        rule(20, 100),
        rule(30000, 100),
        rule(32766),
    ]
    assert selecting_rule(rules, 100, 0, DST, None, None).priority == 30000  # type: ignore[union-attr]
    blackholed = [rule(0, 255), rule(10, 0, action=6), rule(32766)]
    assert selecting_rule(blackholed, 254, 0, DST, None, None) is None


# -- offloads -----------------------------------------------------------------------------------------


def test_offloads_from_feature_names() -> None:
    on, off = Feature(True, False), Feature(False, True)
    got = offloads_from({"rx-gro": on, "tx-generic-segmentation": on, "tx-tcp-segmentation": off,
                         "rx-checksum": on, "tx-checksum-ipv4": off, "tx-checksum-ip-generic": on})  # fmt: skip
    assert got == Offloads(gro=True, lro=None, gso=True, tso=False, rx_csum=True, tx_csum=True)
    assert got.enabled() == ["GRO", "GSO", "rx-csum", "tx-csum"]
    assert offloads_from({}).enabled() == []


def test_read_features_of_loopback_match_ethtool() -> None:
    features = read_features("lo")
    assert features is not None and "rx-gro" in features and "" not in features
    ethtool = require_tool("ethtool")  # to compare with
    text = subprocess.run([ethtool, "-k", "lo"], capture_output=True, text=True, check=True).stdout
    compared = 0
    for line in text.splitlines()[1:]:
        name, _, state = line.strip().partition(": ")
        if name in features:
            assert features[name].active == state.startswith("on"), name
            assert features[name].fixed == state.endswith("[fixed]"), name
            compared += 1
    assert compared >= len(features) // 2, f"only {compared} of {len(features)} features found in ethtool -k"


def test_no_such_interface_has_no_offloads() -> None:
    assert read_offloads("rtif-nope0") is None


# -- the probe, on a fake link --------------------------------------------------------------------------

ROUTE = RouteInfo("eth0", 2, "10.0.0.2", "02:00:00:00:00:01", "192.0.2.10", "10.0.0.1", "10.0.0.1", 1500,
                  "kernel route", None)  # fmt: skip
GW_MAC = "02:00:00:00:00:99"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def wait(self, _sock: object, timeout: float) -> None:
        self.now += min(timeout, 0.002) if self.pending else timeout

    pending = False


class FakeLinkSocket:
    """Answers the n-th ARP request (from another IP first, then from the gateway), after 2 ms."""

    answer_on: int | None = 2
    sent: ClassVar[list[bytes]] = []

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self.queue: list[tuple[bytes, int]] = []
        FakeLinkSocket.sent = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def set_filter(self, remote_ip: str) -> None:
        assert remote_ip == ROUTE.next_hop

    def send(self, frame: bytes) -> bool:
        FakeLinkSocket.sent.append(frame)
        request = parse_arp(parse_ethernet(frame).payload)
        assert request.op == OP_REQUEST
        if len(FakeLinkSocket.sent) == self.answer_on:
            for sender in ("10.0.0.77", ROUTE.next_hop):
                pkt = ArpPacket(OP_REPLY, mac_bytes(GW_MAC), ip_bytes(sender), request.sender_mac,
                                request.sender_ip)  # fmt: skip
                self.queue.append(
                    (build_ethernet(request.sender_mac, mac_bytes(GW_MAC), ETH_P_ARP, build_arp(pkt)), 0)
                )
            CLOCK.pending = True
        return True

    def recv_many(self) -> list[tuple[bytes, int]]:
        out, self.queue = self.queue, []
        CLOCK.pending = False
        return out


CLOCK = FakeClock()


@pytest.fixture
def fake_link(monkeypatch: pytest.MonkeyPatch) -> type[FakeLinkSocket]:
    global CLOCK
    CLOCK = FakeClock()
    monkeypatch.setattr(afpacket, "PacketSocket", FakeLinkSocket)
    monkeypatch.setattr(ifs, "_kernel_neighbour", lambda ifindex, ip: f"{GW_MAC} (STALE)")
    return FakeLinkSocket


def test_probe_shows_the_exchange_and_the_rtt(fake_link: type[FakeLinkSocket]) -> None:
    fake_link.answer_on = 2
    got = ifs.probe_next_hop(ROUTE, clock=CLOCK, wait=CLOCK.wait)
    assert got.error is None and got.mac == GW_MAC and got.attempts == 2
    assert got.rtt_ms == pytest.approx(2.0)
    assert [(s.kind, s.text) for s in got.steps] == [
        ("request", "who-has 10.0.0.1 tell 10.0.0.2 (try 1 of 3)"),
        ("request", "who-has 10.0.0.1 tell 10.0.0.2 (try 2 of 3)"),
        ("ignored", f"10.0.0.77 is-at {GW_MAC}: ignored, reply from an IP we did not ask"),
        ("reply", f"10.0.0.1 is-at {GW_MAC} (RTT 2.000 ms)"),
    ]
    assert [s.t for s in got.steps][:2] == [0.0, 1.0]
    assert got.kernel_neighbour == f"{GW_MAC} (STALE)"


def test_probe_without_a_reply(fake_link: type[FakeLinkSocket]) -> None:
    fake_link.answer_on = None
    got = ifs.probe_next_hop(ROUTE, clock=CLOCK, wait=CLOCK.wait)
    assert got.mac is None and got.attempts == 3 and len(fake_link.sent) == 3
    assert got.error == (
        "no ARP reply from 10.0.0.1 on eth0 after 3 tries: the gateway 10.0.0.1 is not on eth0's link, or it is down"
    )
    on_link = dataclasses.replace(ROUTE, gateway=None, next_hop="10.0.0.9")
    assert "the host 10.0.0.9 is not on eth0's link" in ifs.no_reply_message(on_link, 3)


# -- output ---------------------------------------------------------------------------------------------


def sample_report(probe: ifs.ProbeResult | None = None) -> ifs.Report:
    rule_ = PolicyRule(1000, 100, "from all to 192.0.2.10 lookup 100")
    matched = MatchedRoute(100, "100", "192.0.2.10/32", 0, "boot", "unicast", "10.0.0.1", "eth0", rule_)
    overrides = (
        Override("lo", False, False, False, None, None, None, None, "unusable", "loopback: raw sockets cannot..."),
        Override("eth0", True, True, True, "10.0.0.2", "10.0.0.1", "10.0.0.1", matched, "via 10.0.0.1", "via ..."),
        Override("eth1", False, True, False, "10.1.0.2", None, "192.0.2.10", None, "cannot reach",
                 "this subnet (10.1.0.0/24) cannot reach the host"),
    )  # fmt: skip
    explanation = RouteExplanation("192.0.2.10", "eth0", None, matched, ROUTE, None, overrides)
    rows = (
        ifs.interface_row(info(name="lo", kind="loopback", ethernet=False, index=1), None),
        ifs.interface_row(info(), Offloads(True, False, True, True, True, True)),
        ifs.interface_row(info(name="eth1", index=3, carrier=False, ipv4=("10.1.0.2/24",)), None),
    )
    dest = ifs.Destination("http://example.test/x", "example.test", "192.0.2.10", 80)
    return ifs.Report(rows, dest, None, explanation, probe)


def test_json_output_is_plain_data() -> None:
    out = ifs.to_json(sample_report())
    again = json.loads(json.dumps(out))
    assert again["route"]["iface"] == "eth0"
    assert again["matched"]["rule"] == {
        "priority": 1000,
        "table": 100,
        "text": "from all to 192.0.2.10 lookup 100",
    }
    assert [o["summary"] for o in again["overrides"]] == ["unusable", "via 10.0.0.1", "cannot reach"]
    assert again["interfaces"][1]["offloads"]["gro"] is True
    assert again["destination"] == {"url": "http://example.test/x", "host": "example.test", "ip": "192.0.2.10",
                                    "port": 80, "family": 4, "reason": ""}  # fmt: skip


def test_rendered_text() -> None:
    probe = ifs.ProbeResult("eth0", "10.0.0.2", "02:00:00:00:00:01", "10.0.0.1",
                            (ifs.ProbeStep(0.0, "request", "who-has 10.0.0.1 tell 10.0.0.2 (try 1 of 3)"),
                             ifs.ProbeStep(0.0004, "reply", f"10.0.0.1 is-at {GW_MAC} (RTT 0.400 ms)")),
                            1, GW_MAC, 0.4, None, None)  # fmt: skip
    console = Console(record=True, width=120)
    console.print(ifs.render(sample_report(probe)))
    text = " ".join(console.export_text().replace("│", " ").split())
    for expected in (
        "eth0 ◀",
        "GRO GSO TSO rx-csum tx-csum",
        "eth1 no carrier: nothing is connected, or the other end is down",
        "Route to example.test (192.0.2.10, port 80)",
        "matched route 192.0.2.10/32 via 10.0.0.1 dev eth0 table 100 proto boot",
        "policy rule 1000: from all to 192.0.2.10 lookup 100",
        "next hop gateway 10.0.0.1: rawtui ARPs for it on eth0",
        "eth1 cannot reach 10.1.0.2 this subnet (10.1.0.0/24) cannot reach the host",
        "→ who-has 10.0.0.1 tell 10.0.0.2 (try 1 of 3)",
        "kernel cache no entry for it",
        f"result 10.0.0.1 is at {GW_MAC}, RTT 0.400 ms",
    ):
        assert expected in text, expected


def test_exit_code_follows_the_route_and_the_probe() -> None:
    assert sample_report().exit_code == 0
    explanation = sample_report().explanation
    assert explanation is not None
    failed = dataclasses.replace(explanation, route=None, error="interface 'tun0' is not Ethernet")
    assert dataclasses.replace(sample_report(), explanation=failed).exit_code == 4
    silent = ifs.ProbeResult(
        "eth0", "10.0.0.2", "02:00:00:00:00:01", "10.0.0.1", (), 3, None, None, None, "no ARP"
    )
    assert sample_report(silent).exit_code == 4


# -- command line ---------------------------------------------------------------------------------------


def test_listing_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["interfaces", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = {row["name"]: row for row in out["interfaces"]}
    assert names["lo"]["kind"] == "loopback" and not names["lo"]["usable"]


@pytest.mark.parametrize("args", [["--probe"], ["-i", "eth0"]])
def test_probe_and_interface_need_a_url(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["interfaces", *args]) == 2
    assert "needs a URL" in capsys.readouterr().err


def test_a_bad_destination_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["interfaces", "http://127.0.0.1/x"]) == 4
    assert capsys.readouterr().err == (
        "rawtui: error: cannot reach 127.0.0.1: raw sockets cannot reach loopback, use a real interface\n"
    )
    assert cli.main(["interfaces", "--json", "http://127.0.0.1/x"]) == 4
    assert json.loads(capsys.readouterr().out)["exit_code"] == 4


def test_rendered_ipv6_route_with_a_link_local_gateway() -> None:
    route = RouteInfo("eth0", 2, "2001:db8:1::2", "02:00:00:00:00:01", "2001:db8:2::2", "fe80::1", "fe80::1", 1500,
                      "kernel route (table main, 2001:db8:2::2 via fe80::1 dev eth0)", None, family=6,
                      local_addresses=("fe80::ff:fe00:1",))  # fmt: skip
    matched = MatchedRoute(254, "main", "::/0", 1024, "static", "unicast", "fe80::1", "eth0",
                           PolicyRule(32766, 254, "from all lookup main"))  # fmt: skip
    explanation = RouteExplanation("2001:db8:2::2", "eth0", None, matched, route, None, ())
    dest = ifs.Destination("http://www.lab/", "www.lab", "2001:db8:2::2", 80, 6,
                           "AAAA and A records; IPv6 because the kernel routes 2001:db8:2::2 via eth0")
    routes = (
        MatchedRoute(254, "main", "0.0.0.0/0", 0, "boot", "unicast", "10.0.0.1", "eth0", None),
        matched,
    )
    rows = (ifs.interface_row(info(ipv6=("2001:db8:1::2/64", "fe80::ff:fe00:1/64")), None),)
    console = Console(record=True, width=160)
    console.print(ifs.render(ifs.Report(rows, dest, None, explanation, routes=routes)))
    text = " ".join(console.export_text().replace("│", " ").split())
    for expected in (
        "Route to www.lab (2001:db8:2::2, port 80)",
        "address IPv6: AAAA and A records; IPv6 because the kernel routes 2001:db8:2::2 via eth0",
        "matched route default via fe80::1 dev eth0 table main metric 1024 proto static",
        "next hop gateway fe80::1 (link-local): rawtui asks neighbor discovery (NS/NA) for it on eth0",
        "also ours fe80::ff:fe00:1 (rawtui answers solicitations for it)",
        "2001:db8:1::2/64",
        "fe80::ff:fe00:1/64",
        "IPv4 default via 10.0.0.1 dev eth0 proto boot",
        "IPv6 default via fe80::1 dev eth0 metric 1024 proto static",
    ):
        assert expected in text, expected
    out = json.loads(json.dumps(ifs.to_json(ifs.Report(rows, dest, None, explanation, routes=routes))))
    assert [r["prefix"] for r in out["routes"]] == ["0.0.0.0/0", "::/0"]
    assert out["route"]["local_addresses"] == ["fe80::ff:fe00:1"] and out["destination"]["family"] == 6


@pytest.mark.parametrize("argv", [["-4", "-6", "http://x/"], ["interfaces", "--ipv4", "--ipv6", "http://x/"]])
def test_minus_4_and_minus_6_exclude_each_other(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # `rawtui interfaces` lets argparse exit, as for its other options
        code = exc.code
    assert code == 2
    assert "argument -6/--ipv6: not allowed with argument -4/--ipv4" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://[fe80::1]/"], "cannot route to fe80::1: a link-local address needs its interface"),
        (["-4", "http://[2001:db8::1]/"], "2001:db8::1 is an IPv6 address, but -4 asks for IPv4"),
        (["http://[2001:db8::1%25eth0]/"], "a zone (%25eth0) belongs to a link-local address, not 2001:db8::1"),
    ],
)
def test_bad_ipv6_destinations_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["interfaces", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
