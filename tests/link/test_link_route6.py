"""rawtui.link.route over IPv6, in the dual-stack lab: resolve_route against `ip -6 route get`, both ways
(the rtnetlink shortcut and pyroute2), a link-local gateway, a route's MTU, no route (exit 4), and
`rawtui interfaces` listing and explaining IPv6."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import RunRawtui, child_env

from rawtui.lab.topology import Lab

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.lab

BOTH_WAYS = """
import dataclasses, ipaddress, json, socket, sys
from rawtui.errors import RawtuiError
from rawtui.link.route import _kernel_choice_by_ip, resolve_route

def answer(dst, iface, shortcut):
    try:
        return dataclasses.asdict(resolve_route(dst, iface, shortcut=shortcut))
    except RawtuiError as exc:
        return {"error": exc.message, "exit_code": exc.exit_code}

out = {}
for dst, iface in json.loads(sys.argv[1]):
    address, _, zone = dst.partition("%")
    oif = socket.if_nametoindex(zone) if zone else None
    quick = _kernel_choice_by_ip(ipaddress.ip_address(address), oif)
    out[f"{dst} {iface}"] = {"quick": None if quick is None else dataclasses.asdict(quick),
                             "shortcut": answer(dst, iface, True), "netlink": answer(dst, iface, False)}
print(json.dumps(out))
"""


def resolve(lab: Lab, *queries: tuple[str, str | None]) -> dict[str, Any]:
    """resolve_route in the lab's client, both ways, for each (destination, -i)."""
    done = lab.run(lab.client_ns, [sys.executable, "-c", BOTH_WAYS, json.dumps(queries)],
                   capture_output=True, text=True, timeout=60, cwd=REPO, env=child_env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ip_json(lab: Lab, *argv: str) -> Any:
    done = lab.run(lab.client_ns, ["ip", "-j", *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def link_local(lab: Lab) -> str:
    """The client eth0's fe80:: address (the kernel made it from the MAC)."""
    addrs = ip_json(lab, "-6", "addr", "show", "dev", "eth0")[0]["addr_info"]
    return str(next(a["local"] for a in addrs if a.get("scope") == "link"))


def the_same_both_ways(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer, checked to be the same from the shortcut and from pyroute2 (and the shortcut taken)."""
    assert answer["quick"] is not None, answer
    assert answer["quick"] == answer["netlink"] == answer["shortcut"]
    got: dict[str, Any] = answer["netlink"]
    return got


def test_global_gateway_matches_ip_route_get(lab6: Lab) -> None:
    out = resolve(lab6, (lab6.server_ip6, None), (lab6.router_client_ip6, None))
    kernel = ip_json(lab6, "-6", "route", "get", lab6.server_ip6)[0]
    got = the_same_both_ways(out[f"{lab6.server_ip6} None"])
    assert (got["iface"], got["gateway"], got["src_ip"]) == (kernel["dev"], kernel["gateway"], kernel["prefsrc"])
    assert (got["gateway"], got["next_hop"], got["src_ip"]) == (lab6.router_client_ip6, lab6.router_client_ip6,
                                                                 lab6.client_ip6)  # fmt: skip
    assert (got["family"], got["dst_ip"], got["mtu"], got["warning"]) == (6, lab6.server_ip6, 1500, None)
    assert got["local_addresses"] == [link_local(lab6)]  # the NS for it must be answered too
    assert got["reason"] == f"kernel route (table main, {lab6.server_ip6} via {lab6.router_client_ip6} dev eth0)"
    on_link = the_same_both_ways(out[f"{lab6.router_client_ip6} None"])
    assert (on_link["gateway"], on_link["next_hop"]) == (None, lab6.router_client_ip6)


def test_link_local_gateway_and_zoned_destination(fresh_lab6: Lab) -> None:
    lab = fresh_lab6
    lab.run(lab.router_ns, ["ip", "addr", "add", "fe80::1/64", "dev", "rc0", "nodad"], check=True)
    lab.run(lab.client_ns, ["ip", "-6", "route", "replace", "default", "via", "fe80::1", "dev", "eth0"], check=True)
    out = resolve(lab, (lab.server_ip6, None), ("fe80::1%eth0", None), ("fe80::1", "eth0"), ("fe80::1", None),
                  ("fe80::1%eth0", "lo"))  # fmt: skip
    via = the_same_both_ways(out[f"{lab.server_ip6} None"])
    assert (via["iface"], via["gateway"], via["next_hop"], via["src_ip"]) == ("eth0", "fe80::1", "fe80::1",
                                                                               lab.client_ip6)  # fmt: skip
    assert via["reason"] == f"kernel route (table main, {lab.server_ip6} via fe80::1 dev eth0)"
    zoned = the_same_both_ways(out["fe80::1%eth0 None"])
    kernel = ip_json(lab, "-6", "route", "get", "fe80::1", "oif", "eth0")[0]
    assert (zoned["gateway"], zoned["next_hop"], zoned["dst_ip"]) == (None, "fe80::1", "fe80::1")
    assert zoned["src_ip"] == kernel["prefsrc"] == link_local(lab)  # a link-local source for a link-local peer
    assert zoned["local_addresses"] == [lab.client_ip6]
    assert out["fe80::1 eth0"]["netlink"] == zoned  # -i names the link of a zoneless link-local address
    assert out["fe80::1 None"]["netlink"]["exit_code"] == 2
    assert out["fe80::1%eth0 lo"]["netlink"] == {"error": "fe80::1%eth0 is on eth0, but -i says lo", "exit_code": 2}


def test_the_mtu_of_a_route(fresh_lab6: Lab) -> None:
    lab = fresh_lab6
    lab.run(lab.client_ns, ["ip", "-6", "route", "add", "2001:db8:2::/64", "via", lab.router_client_ip6, "mtu",
                            "1400"], check=True)  # fmt: skip
    got = the_same_both_ways(resolve(lab, (lab.server_ip6, None))[f"{lab.server_ip6} None"])
    assert got["mtu"] == 1400


def test_no_ipv6_route_is_exit_4(fresh_lab6: Lab, run_rawtui: RunRawtui) -> None:
    lab = fresh_lab6
    lab.run(lab.client_ns, ["ip", "-6", "route", "del", "default"], check=True)
    message = "no IPv6 route to 2001:db8::9 (see `ip -6 route`)"
    out = resolve(lab, ("2001:db8::9", None))["2001:db8::9 None"]
    assert out["quick"] is None
    assert out["shortcut"] == out["netlink"] == {"error": message, "exit_code": 4}
    done = run_rawtui(lab, "--headless", "-o", "out.bin", "http://[2001:db8::9]:8080/x", timeout=60)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"rawtui: error: {message}"
    explained = run_rawtui(lab, "interfaces", "http://[2001:db8::9]/", env={"COLUMNS": "200"})
    assert explained.returncode == 4 and message in explained.stdout
    assert explained.stderr.strip() == f"rawtui: error: {message}"


def test_interfaces_lists_and_explains_ipv6(lab6: Lab, run_rawtui: RunRawtui) -> None:
    done = run_rawtui(lab6, "interfaces", "--json", f"http://[{lab6.server_ip6}]:8080/x")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    eth0 = next(row for row in out["interfaces"] if row["name"] == "eth0")
    assert f"{lab6.client_ip6}/64" in eth0["ipv6"] and f"{link_local(lab6)}/64" in eth0["ipv6"]
    routes = {(r["prefix"], r["gateway"], r["iface"]) for r in out["routes"]}
    assert ("::/0", lab6.router_client_ip6, "eth0") in routes and ("2001:db8:1::/64", None, "eth0") in routes
    assert ("0.0.0.0/0", lab6.router_client_ip, "eth0") in routes
    assert out["destination"]["family"] == 6 and out["destination"]["reason"] == "a literal IPv6 address"
    assert out["route"]["next_hop"] == lab6.router_client_ip6 and out["matched"]["prefix"] == "::/0"
    text = run_rawtui(lab6, "interfaces", f"http://[{lab6.server_ip6}]:8080/x", env={"COLUMNS": "200"})
    assert text.returncode == 0, text.stderr
    flat = " ".join(text.stdout.replace("│", " ").split())
    for expected in (
        "address IPv6: a literal IPv6 address",
        f"next hop gateway {lab6.router_client_ip6}: rawtui asks neighbor discovery (NS/NA) for it on eth0",
        f"IPv6 default via {lab6.router_client_ip6} dev eth0",
        f"also ours {link_local(lab6)}",
        "policy rule 32766: from all lookup main",
    ):
        assert expected in flat, expected


def test_a_dual_stack_name_and_minus_4(fresh_lab6: Lab, run_rawtui: RunRawtui) -> None:
    lab = fresh_lab6
    lab.write_hosts({"www.lab": [lab.server_ip, lab.server_ip6], "v6only.lab": [lab.server_ip6]})

    def destination(*args: str) -> Any:
        done = run_rawtui(lab, "interfaces", "--json", *args)
        out = json.loads(done.stdout)
        return out.get("destination", out)

    assert destination("http://www.lab/") == {
        "url": "http://www.lab/", "host": "www.lab", "ip": lab.server_ip6, "port": 80, "family": 6,
        "reason": f"AAAA and A records; IPv6 because the kernel routes {lab.server_ip6} via eth0",
    }  # fmt: skip
    assert destination("-4", "http://www.lab/")["ip"] == lab.server_ip
    assert destination("-4", "http://v6only.lab/") == {
        "error": f"host 'v6only.lab' has no IPv4 address (it has {lab.server_ip6}); drop -4", "exit_code": 4,
    }
    lab.run(lab.client_ns, ["ip", "-6", "route", "del", "default"], check=True)
    assert destination("http://www.lab/")["reason"] == "AAAA and A records; IPv4: no IPv6 route"
    done = run_rawtui(lab, "--headless", "-4", "http://v6only.lab/", timeout=60)
    assert done.returncode == 4
    assert done.stderr.strip().splitlines()[-1] == (
        f"rawtui: error: host 'v6only.lab' has no IPv4 address (it has {lab.server_ip6}); drop -4"
    )


def test_ipv4_unchanged_next_to_ipv6(lab6: Lab) -> None:
    """The IPv4 answer in the dual-stack lab: family 4, no IPv6 addresses in it."""
    got = the_same_both_ways(resolve(lab6, (lab6.server_ip, None))[f"{lab6.server_ip} None"])
    assert (got["family"], got["local_addresses"], got["next_hop"]) == (4, [], lab6.router_client_ip)


def test_probe_resolves_an_ipv6_next_hop(lab6: Lab, run_rawtui: RunRawtui) -> None:
    """`--probe` with neighbor discovery: the router advertises its MAC; a missing host is exit 4."""
    done = run_rawtui(lab6, "interfaces", "--probe", "--json", f"http://[{lab6.server_ip6}]:8080/")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)["probe"]
    router_mac = json.loads(lab6.run(lab6.router_ns, ["ip", "-j", "link", "show", "rc0"], capture_output=True,
                                     text=True, check=True).stdout)[0]["address"]  # fmt: skip
    assert (probe["family"], probe["target_ip"], probe["mac"], probe["error"]) == (
        6, lab6.router_client_ip6, router_mac, None)
    assert probe["steps"][0]["text"] == (
        f"neighbor solicitation for {lab6.router_client_ip6} from {lab6.client_ip6} (try 1 of 3)"
    )
    assert probe["steps"][-1]["text"].startswith(f"{lab6.router_client_ip6} advertised at {router_mac} (RTT ")
    missing = run_rawtui(lab6, "interfaces", "--probe", "http://[2001:db8:1::99]/", env={"COLUMNS": "200"})
    assert missing.returncode == 4
    assert missing.stderr.strip() == (
        "rawtui: error: no answer from 2001:db8:1::99 on eth0 to 3 neighbor solicitations: the host "
        "2001:db8:1::99 is not on eth0's link, or it is down"
    )
    assert "Neighbor discovery probe for 2001:db8:1::99 on eth0" in missing.stdout


def test_an_ipv6_policy_rule_is_explained(fresh_lab6: Lab, run_rawtui: RunRawtui) -> None:
    """A rule of its own sends the server's address to table 100: the shortcut steps aside (the standard
    IPv6 rules are local and main only) and pyroute2's answer names the rule."""
    lab = fresh_lab6
    lab.run(lab.client_ns, ["ip", "-6", "route", "add", "2001:db8:2::/64", "via", lab.router_client_ip6,
                            "dev", "eth0", "table", "100"], check=True)  # fmt: skip
    lab.run(lab.client_ns, ["ip", "-6", "rule", "add", "to", lab.server_ip6, "table", "100", "priority", "100"],
            check=True)  # fmt: skip
    out = resolve(lab, (lab.server_ip6, None))[f"{lab.server_ip6} None"]
    assert out["quick"] is None and out["shortcut"] == out["netlink"]
    assert out["netlink"]["reason"] == (
        f"kernel route (table 100, {lab.server_ip6} via {lab.router_client_ip6} dev eth0; "
        f"rule 100: from all to {lab.server_ip6} lookup 100)"
    )
    done = run_rawtui(lab, "interfaces", "--json", f"http://[{lab.server_ip6}]/")
    matched = json.loads(done.stdout)["matched"]
    assert (matched["prefix"], matched["table"]) == ("2001:db8:2::/64", 100)
    assert matched["rule"] == {"priority": 100, "table": 100, "text": f"from all to {lab.server_ip6} lookup 100"}
