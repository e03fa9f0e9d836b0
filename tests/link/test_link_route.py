"""rawtui.link.route: host resolution, and route choice checked against `ip route get` in a namespace."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import child_env, lab_unavailable, lab_unavailable_reason

from rawtui.errors import LinkError, UsageError
from rawtui.link import route
from rawtui.link.route import Destination, choose_address, list_interfaces, resolve_route

REPO = Path(__file__).resolve().parents[2]


def test_ipv4_literal_passes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route.socket, "getaddrinfo", None)  # never asked
    assert choose_address("10.1.2.3") == Destination("10.1.2.3", 4, "a literal IPv4 address")


def test_ipv6_literals_pass_through_with_their_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route.socket, "getaddrinfo", None)
    assert choose_address("2001:db8:0::2") == Destination("2001:db8::2", 6, "a literal IPv6 address")
    linked = choose_address("fe80::2%eth0", 6)
    assert linked == Destination("fe80::2", 6, "a literal IPv6 address on eth0", "eth0")
    assert linked.address == "fe80::2%eth0"


@pytest.mark.parametrize(
    ("host", "family", "message"),
    [
        ("2001:db8::2%eth0", None, "a zone \\(%eth0\\) belongs to a link-local address"),
        ("fe80::2%", None, "empty zone"),
        ("10.1.2.3", 6, "10.1.2.3 is an IPv4 address, but -6 asks for IPv6"),
        ("2001:db8::2", 4, "2001:db8::2 is an IPv6 address, but -4 asks for IPv4"),
    ],
)
def test_bad_literals_are_usage_errors(host: str, family: int | None, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        choose_address(host, family)
    assert caught.value.exit_code == 2


def fake_resolver(monkeypatch: pytest.MonkeyPatch, *addresses: str, routed: str | None = "eth0") -> None:
    """getaddrinfo answering ``addresses`` (A and AAAA, in that order) for example.test; the kernel routes
    IPv6 out of ``routed`` (None: no IPv6 route)."""

    def getaddrinfo(host: str, port: None, family: int, kind: int) -> list[Any]:
        assert (host, port, family, kind) == ("example.test", None, socket.AF_UNSPEC, socket.SOCK_STREAM)
        return [
            (socket.AF_INET6, kind, 6, "", (a, 0, 0, 0)) if ":" in a else (socket.AF_INET, kind, 6, "", (a, 0))
            for a in addresses
        ]

    def resolve_route(dst: str) -> Any:
        if routed is None:
            raise LinkError(f"no IPv6 route to {dst} (see `ip -6 route`)")
        return SimpleNamespace(iface=routed)

    monkeypatch.setattr(route.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(route, "resolve_route", resolve_route)


@pytest.mark.parametrize(
    ("addresses", "routed", "family", "expected"),
    [
        (["192.0.2.7", "192.0.2.8"], "eth0", None, Destination("192.0.2.7", 4, "A record only")),
        (["2001:db8:2::2"], None, None, Destination("2001:db8:2::2", 6, "AAAA record only")),
        (["2001:db8:2::2", "2001:db8:2::3", "192.0.2.7"], "eth0", None, Destination(
            "2001:db8:2::2", 6, "AAAA and A records; IPv6 because the kernel routes 2001:db8:2::2 via eth0")),
        (["192.0.2.7", "2001:db8:2::2"], None, None,
         Destination("192.0.2.7", 4, "AAAA and A records; IPv4: no IPv6 route")),
        (["2001:db8:2::2", "192.0.2.7"], "eth0", 4,
         Destination("192.0.2.7", 4, "-4: its A record, not its AAAA record")),
        (["2001:db8:2::2", "192.0.2.7"], None, 6,
         Destination("2001:db8:2::2", 6, "-6: its AAAA record, not its A record")),
        (["192.0.2.7"], None, 4, Destination("192.0.2.7", 4, "-4: its A record")),
        (["fe80::1%eth0"], None, None, Destination("fe80::1", 6, "AAAA record only", "eth0")),  # /etc/hosts zone
    ],
)  # fmt: skip
def test_a_name_gets_ipv6_when_the_kernel_routes_it(
    monkeypatch: pytest.MonkeyPatch,
    addresses: list[str],
    routed: str | None,
    family: int | None,
    expected: Destination,
) -> None:
    fake_resolver(monkeypatch, *addresses, routed=routed)
    assert choose_address("example.test", family) == expected


@pytest.mark.parametrize(
    ("addresses", "family", "message"),
    [
        (["2001:db8::5", "2001:db8::6"], 4,
         "host 'example.test' has no IPv4 address (it has 2001:db8::5, 2001:db8::6); drop -4"),
        (["192.0.2.7"], 6, "host 'example.test' has no IPv6 address (it has 192.0.2.7); drop -6"),
    ],
)  # fmt: skip
def test_a_name_without_the_asked_family_is_exit_4(
    monkeypatch: pytest.MonkeyPatch, addresses: list[str], family: int, message: str
) -> None:
    fake_resolver(monkeypatch, *addresses)
    with pytest.raises(LinkError) as caught:
        choose_address("example.test", family)
    assert (caught.value.message, caught.value.exit_code) == (message, 4)


def test_unresolvable_host_is_a_link_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(*_args: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(route.socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(
        LinkError, match="cannot resolve host 'nowhere.test': Name or service not known"
    ) as caught:
        choose_address("nowhere.test")
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(
    ("dst", "message"),
    [
        ("127.0.0.1", "raw sockets cannot reach loopback"),
        ("127.8.9.10", "raw sockets cannot reach loopback"),
        ("224.0.0.1", "not a unicast address"),
        ("example.test", "not an IP address"),
        ("::1", "raw sockets cannot reach loopback"),
        ("ff02::1", "not a unicast address"),
        ("::", "not a unicast address"),
        ("::ffff:10.1.2.3", "an IPv4-mapped address, use 10.1.2.3"),
        ("2001:db8::1%eth0", "a zone \\(%eth0\\) belongs to a link-local address"),
    ],
)
def test_unreachable_kinds_of_destination(dst: str, message: str) -> None:
    with pytest.raises(LinkError, match=message):
        resolve_route(dst)


def test_a_link_local_destination_needs_its_interface() -> None:
    with pytest.raises(UsageError, match="a link-local address needs its interface") as caught:
        resolve_route("fe80::2")
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match="fe80::2%eth0 is on eth0, but -i says eth1"):
        resolve_route("fe80::2%eth0", "eth1")


def test_list_interfaces_includes_loopback() -> None:
    names = {info.name: info for info in list_interfaces()}
    assert any(info.kind == "loopback" and not info.ethernet for info in names.values())


# --- lab: one namespace holding every kind of interface the checks need ---------------------------


def sh(ns: str, *command: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *command], check=True, capture_output=True, text=True
    ).stdout


def _build_ns(*, policy: bool) -> str:
    """ve0 (10.77.0.2/24, default via .1), ve1 (10.88.0.2/24, 198.51.100/24 via .1), an unreachable route,
    br0 down, tn0 tun; with ``policy`` two rules ("to 198.18.0.7 lookup 100", "from 10.88.0.2 lookup
    101", both tables via ve1), without it ve2 (10.99.0.2/24) whose peer is down (no carrier)."""
    ns = f"rtlink-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        veths = [("ve0", "10.77.0.2/24"), ("ve1", "10.88.0.2/24")] + ([] if policy else [("ve2", "10.99.0.2/24")])
        for name, address in veths:
            sh(ns, "ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
            sh(ns, "ip", "addr", "add", address, "dev", name)
            sh(ns, "ip", "link", "set", name, "up")
            if name != "ve2":
                sh(ns, "ip", "link", "set", f"{name}p", "up")
        sh(ns, "ip", "route", "add", "default", "via", "10.77.0.1")
        sh(ns, "ip", "route", "add", "198.51.100.0/24", "via", "10.88.0.1", "dev", "ve1")
        sh(ns, "ip", "route", "add", "unreachable", "203.0.113.0/24")
        if policy:  # one destination by a rule of its own, and one table for ve1's source address
            sh(ns, "ip", "route", "add", "198.18.0.0/24", "via", "10.88.0.1", "dev", "ve1", "table", "100")
            sh(ns, "ip", "rule", "add", "to", "198.18.0.7", "table", "100", "priority", "100")
            sh(ns, "ip", "route", "add", "100.64.0.0/10", "via", "10.88.0.1", "dev", "ve1", "table", "101")
            sh(ns, "ip", "rule", "add", "from", "10.88.0.2", "table", "101", "priority", "101")
        sh(ns, "ip", "link", "add", "br0", "type", "bridge")
        sh(ns, "ip", "addr", "add", "10.66.0.2/24", "dev", "br0")
        sh(ns, "ip", "tuntap", "add", "mode", "tun", "name", "tn0")
        sh(ns, "ip", "addr", "add", "10.55.0.2/24", "dev", "tn0")
        sh(ns, "ip", "link", "set", "tn0", "up")
    except BaseException:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        raise
    return ns


def _namespace(*, policy: bool) -> Iterator[str]:
    reason = lab_unavailable_reason()  # root, iproute2, namespaces; the tests are marked lab as well
    if reason is not None:
        lab_unavailable(reason)
    ns = _build_ns(policy=policy)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture(scope="module")
def lab_ns() -> Iterator[str]:
    """The namespace of _build_ns with its two policy rules."""
    yield from _namespace(policy=True)


RESOLVE = """
import dataclasses, json, sys
from rawtui.errors import LinkError
from rawtui.link.route import resolve_route, list_interfaces

out = {}
for dst, iface in json.loads(sys.argv[1]):
    try:
        out[f"{dst} {iface}"] = dataclasses.asdict(resolve_route(dst, iface))
    except LinkError as exc:
        out[f"{dst} {iface}"] = {"error": exc.message}
out["interfaces"] = [dataclasses.asdict(info) for info in list_interfaces()]
print(json.dumps(out))
"""


def resolve_in(ns: str, *queries: tuple[str, str | None]) -> dict[str, Any]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", RESOLVE, json.dumps(queries)],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def link(ns: str, name: str) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(sh(ns, "ip", "-j", "link", "show", name))[0]
    return info


@pytest.mark.lab
@pytest.mark.parametrize("dst", ["192.0.2.10", "10.77.0.9", "198.51.100.7", "10.88.0.200"])
def test_kernel_choice_matches_ip_route_get(lab_ns: str, dst: str) -> None:
    kernel = json.loads(sh(lab_ns, "ip", "-j", "route", "get", dst))[0]
    got = resolve_in(lab_ns, (dst, None))[f"{dst} None"]
    assert got["iface"] == kernel["dev"]
    assert got["gateway"] == kernel.get("gateway")
    assert got["next_hop"] == kernel.get("gateway", dst)
    assert got["src_ip"] == kernel["prefsrc"]
    assert got["dst_ip"] == dst
    assert got["src_mac"] == link(lab_ns, kernel["dev"])["address"]
    assert got["ifindex"] == link(lab_ns, kernel["dev"])["ifindex"]
    assert got["mtu"] == 1500
    assert got["reason"].startswith("kernel route (table main, ")
    assert got["warning"] is None


@pytest.mark.lab
def test_default_route_gives_the_gateway(lab_ns: str) -> None:
    got = resolve_in(lab_ns, ("192.0.2.10", None))["192.0.2.10 None"]
    assert (got["iface"], got["gateway"], got["src_ip"]) == ("ve0", "10.77.0.1", "10.77.0.2")
    assert got["reason"] == "kernel route (table main, 192.0.2.10 via 10.77.0.1 dev ve0)"


@pytest.mark.lab
def test_forced_interface(lab_ns: str) -> None:
    out = resolve_in(
        lab_ns,
        ("10.88.0.5", "ve1"),
        ("198.51.100.7", "ve1"),
        ("198.51.100.7", "ve0"),
        ("192.0.2.10", "ve1"),
    )
    on_link = out["10.88.0.5 ve1"]
    assert (on_link["gateway"], on_link["next_hop"], on_link["src_ip"]) == (None, "10.88.0.5", "10.88.0.2")
    assert on_link["warning"] is None
    assert on_link["reason"].startswith("-i ve1 (override")

    routed = out["198.51.100.7 ve1"]
    assert (routed["gateway"], routed["warning"]) == ("10.88.0.1", None)

    other = out["198.51.100.7 ve0"]
    assert (other["iface"], other["gateway"], other["src_ip"]) == ("ve0", "10.77.0.1", "10.77.0.2")
    assert other["warning"] == "the kernel would use ve1, not ve0"

    guessed = out["192.0.2.10 ve1"]
    assert (guessed["gateway"], guessed["next_hop"], guessed["src_ip"]) == (None, "192.0.2.10", "10.88.0.2")
    assert "assuming it is on-link" in guessed["warning"]
    assert "the kernel would use ve0, not ve1" in guessed["warning"]


@pytest.mark.lab
@pytest.mark.parametrize(
    ("dst", "iface", "message"),
    [
        ("192.0.2.10", "nope", "unknown interface 'nope' (available: lo, "),
        ("192.0.2.10", "br0", "interface 'br0' is down"),
        ("192.0.2.10", "lo", "is of link type loopback: rawtui needs an Ethernet or a layer-3"),
        ("10.77.0.9", "ve0p", "interface 've0p' has no IPv4 address"),
        ("10.77.0.2", None, "it is an address of this machine"),
        ("203.0.113.5", None, "no route to 203.0.113.5: "),
    ],
)
def test_refusals(lab_ns: str, dst: str, iface: str | None, message: str) -> None:
    got = resolve_in(lab_ns, (dst, iface))[f"{dst} {iface}"]
    assert message in got.get("error", "")
    if iface == "nope":
        assert "ve0" in got["error"] and "tn0" in got["error"]


@pytest.mark.lab
def test_a_tun_route_is_point_to_point(lab_ns: str) -> None:
    """A layer-3 interface (tun: ARPHRD_NONE) is used as Medium.IP: no MAC, no next hop to resolve."""
    out = resolve_in(lab_ns, ("10.55.0.9", None), ("10.55.0.9", "tn0"))
    for got in (out["10.55.0.9 None"], out["10.55.0.9 tn0"]):
        assert (got["iface"], got["medium"], got["src_ip"]) == ("tn0", "ip", "10.55.0.2"), got
        assert (got["src_mac"], got["next_hop"]) == ("", "point-to-point")


@pytest.mark.lab
def test_list_interfaces(lab_ns: str) -> None:
    infos = {info["name"]: info for info in resolve_in(lab_ns)["interfaces"]}
    assert set(infos) == {"lo", "ve0", "ve0p", "ve1", "ve1p", "br0", "tn0"}
    ve0 = infos["ve0"]
    assert (ve0["kind"], ve0["up"], ve0["carrier"], ve0["ethernet"]) == ("veth", True, True, True)
    assert ve0["ipv4"] == ["10.77.0.2/24"] and ve0["mtu"] == 1500
    assert ve0["mac"] == link(lab_ns, "ve0")["address"]
    assert (infos["br0"]["kind"], infos["br0"]["up"]) == ("bridge", False)
    assert (infos["tn0"]["kind"], infos["tn0"]["ethernet"], infos["tn0"]["medium"]) == ("tun", False, "ip")
    assert (infos["lo"]["kind"], infos["lo"]["ethernet"], infos["lo"]["medium"]) == ("loopback", False, None)
    assert ve0["medium"] == "ethernet"
    assert [info["index"] for info in infos.values()] == sorted(info["index"] for info in infos.values())


EXPLAIN = """
import dataclasses, json, sys
from rawtui.link.route import explain_route

dst, iface = json.loads(sys.argv[1])
print(json.dumps(dataclasses.asdict(explain_route(dst, iface))))
"""


def explain_in(ns: str, dst: str, iface: str | None = None) -> dict[str, Any]:
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", EXPLAIN, json.dumps([dst, iface])],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.lab
def test_policy_routed_destination_names_its_table_and_rule(lab_ns: str) -> None:
    kernel = json.loads(sh(lab_ns, "ip", "-j", "route", "get", "198.18.0.7"))[0]
    assert (kernel["dev"], kernel["gateway"], kernel["table"]) == ("ve1", "10.88.0.1", "100")
    got = resolve_in(lab_ns, ("198.18.0.7", None))["198.18.0.7 None"]
    assert (got["iface"], got["gateway"], got["src_ip"]) == ("ve1", "10.88.0.1", kernel["prefsrc"])
    # without RTM_F_LOOKUP_TABLE the kernel answers "table main" for every route
    assert got["reason"] == (
        "kernel route (table 100, 198.18.0.7 via 10.88.0.1 dev ve1; rule 100: from all to 198.18.0.7 lookup 100)"
    )


@pytest.mark.lab
def test_forced_interface_follows_policy_rules(lab_ns: str) -> None:
    out = resolve_in(lab_ns, ("198.18.0.7", "ve0"), ("198.18.0.7", "ve1"), ("100.64.1.1", "ve1"))
    other = out["198.18.0.7 ve0"]
    assert (other["iface"], other["gateway"]) == ("ve0", "10.77.0.1")
    assert other["warning"] == "the kernel would use ve1, not ve0"
    assert other["reason"] == "-i ve0 (override, default via 10.77.0.1, table main)"
    chosen = out["198.18.0.7 ve1"]
    assert (chosen["gateway"], chosen["warning"]) == ("10.88.0.1", None)
    assert chosen["reason"] == "-i ve1 (override, 198.18.0.0/24 via 10.88.0.1, table 100)"
    # only the source rule leads to a route through ve1: found as a connection from 10.88.0.2 would be
    kernel = json.loads(
        sh(lab_ns, "ip", "-j", "route", "get", "100.64.1.1", "from", "10.88.0.2", "oif", "ve1")
    )[0]
    by_source = out["100.64.1.1 ve1"]
    assert (
        (by_source["gateway"], by_source["src_ip"])
        == (kernel["gateway"], "10.88.0.2")
        == ("10.88.0.1", "10.88.0.2")
    )
    assert by_source["warning"] == "the kernel would use ve0, not ve1"


@pytest.mark.lab
def test_explain_route(lab_ns: str) -> None:
    got = explain_in(lab_ns, "198.18.0.7")
    fib = json.loads(sh(lab_ns, "ip", "-j", "route", "get", "fibmatch", "198.18.0.7"))[0]
    assert got["kernel_iface"] == "ve1" and got["error"] is None
    matched = got["matched"]
    assert matched["prefix"] == fib["dst"] == "198.18.0.0/24"
    assert (matched["table_name"], matched["gateway"], matched["protocol"]) == ("100", "10.88.0.1", "boot")
    assert matched["rule"] == {"priority": 100, "table": 100, "text": "from all to 198.18.0.7 lookup 100"}
    overrides = {ov["iface"]: ov for ov in got["overrides"]}
    assert [ov["iface"] for ov in got["overrides"]] == ["lo", "ve0p", "ve0", "ve1p", "ve1", "br0", "tn0"]
    assert overrides["ve1"]["kernel_choice"] and overrides["ve1"]["summary"] == "via 10.88.0.1"
    assert overrides["ve0"]["summary"] == "via 10.77.0.1" and overrides["ve0"]["reaches"]
    assert overrides["ve0"]["matched"]["prefix"] == "0.0.0.0/0"
    assert overrides["tn0"]["usable"] and not overrides["tn0"]["reaches"]  # a layer-3 link, without the route
    assert overrides["br0"]["detail"] == "it is down: bring it up with `ip link set br0 up`"
    assert overrides["ve0p"]["detail"] == "no IPv4 address"
    assert not overrides["lo"]["usable"]


@pytest.mark.lab
def test_explain_route_without_a_kernel_route(lab_ns: str) -> None:
    got = explain_in(lab_ns, "203.0.113.5")
    assert (got["kernel_iface"], got["matched"], got["route"]) == (None, None, None)
    assert got["kernel_error"] == "No route to host"
    assert got["error"] == "no route to 203.0.113.5: No route to host"
    ve0 = next(ov for ov in got["overrides"] if ov["iface"] == "ve0")
    assert (ve0["summary"], ve0["reaches"], ve0["next_hop"]) == ("cannot reach", False, "203.0.113.5")
    assert "this subnet (10.77.0.0/24) cannot reach the host" in ve0["detail"]


@pytest.fixture(scope="module")
def plain_ns() -> Iterator[str]:
    """Only the three standard policy rules (the download's rtnetlink shortcut applies)."""
    yield from _namespace(policy=False)


BOTH_WAYS = """
import dataclasses, ipaddress, json, sys
from rawtui.errors import LinkError
from rawtui.link.route import _kernel_choice_by_ip, resolve_route

def answer(dst, shortcut):
    try:
        return dataclasses.asdict(resolve_route(dst, shortcut=shortcut))
    except LinkError as exc:
        return {"error": exc.message}

out = {}
for dst in json.loads(sys.argv[1]):
    quick = _kernel_choice_by_ip(ipaddress.IPv4Address(dst))
    out[dst] = {"quick": None if quick is None else dataclasses.asdict(quick),
                "shortcut": answer(dst, True), "netlink": answer(dst, False)}
print(json.dumps(out))
"""


@pytest.mark.lab
def test_the_rtnetlink_shortcut_answers_like_pyroute2(plain_ns: str) -> None:
    usual = ["192.0.2.10", "10.77.0.9", "198.51.100.7", "10.88.0.200", "10.99.0.7", "10.55.0.9"]  # (a tun too)
    unusual = ["203.0.113.5", "10.77.0.2"]  # unreachable, local: the netlink way says why
    done = subprocess.run(
        ["ip", "netns", "exec", plain_ns, sys.executable, "-c", BOTH_WAYS, json.dumps(usual + unusual)],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for dst in usual:
        assert out[dst]["quick"] is not None, dst  # the shortcut was taken...
        assert out[dst]["quick"] == out[dst]["netlink"], dst  # ...and said what netlink says
        assert out[dst]["shortcut"] == out[dst]["netlink"], dst
    assert out["10.99.0.7"]["quick"]["warning"] == "interface 've2' has no carrier"
    for dst in unusual:
        assert out[dst]["quick"] is None, dst
        assert "error" in out[dst]["shortcut"] and out[dst]["shortcut"] == out[dst]["netlink"], dst
