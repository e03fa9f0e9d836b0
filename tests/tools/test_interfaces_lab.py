"""`rawtui interfaces` and `-i` in the lab: the answers match `ip route get`, downloads go where they say.

One topology, built once for the module on a lab of its own plus two namespaces named ``rtif-<hex>``:

```
 client                                    router2 (rtif-..)               server
 eth0 10.77.1.2/24 ─── lab router ──────────────────────────────────────── eth0 10.77.2.2/24 (+ .3)
 eth1 10.79.1.2/24 ─── e1 10.79.1.1  e2 10.79.2.1 ──────────────────────── eth1 10.79.2.2/24
 br0  10.83.0.2/24 [port eth4] ─── b1 10.83.0.1
 eth0.42 10.77.42.2/24 (VLAN 42 over eth0, to the lab router's rc0.42) - when the kernel has 802.1Q
 eth2 10.80.0.2/24, eth5 10.84.0.2/24 mtu 500, eth3 10.81.0.2/24 (down) ─── void (rtif-..): no addresses
 tun0 10.82.0.2/24 (no Ethernet, no process behind it)

 client routes: default via 10.77.1.1 (eth0); 10.79.2.0/24 via 10.83.0.1 (br0);
                10.77.2.3 via 10.77.42.1 (eth0.42); rule "to 10.77.2.2 lookup 100": via 10.79.1.1 (eth1)
```
"""

from __future__ import annotations

import json
import secrets
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, lab_unavailable, lab_unavailable_reason, require_tool

from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PORT = 8080
FILE = "1m.bin"
POLICY_HOST = "10.77.2.2"  # the rule sends it through eth1 and router2
VLAN_HOST = "10.77.2.3"  # routed through the VLAN sub-interface
BRIDGE_HOST = "10.79.2.2"  # routed through the bridge
LAYER3 = "layer-3 link: bare IP packets, point-to-point (no link-layer address to resolve)"


@dataclass
class Topology:
    lab: Lab
    router2: str
    void: str
    www: Path
    sha256: str
    vlan: str | None  # why there is no VLAN sub-interface, or None when there is one
    macs: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> str:
        return self.lab.client_ns

    def url(self, host: str) -> str:
        return f"http://{host}:{PORT}/{FILE}"


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done.stdout


def sysctl(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}"], check=True, timeout=20)


def _build(topo: Topology) -> None:
    c, r, s = topo.lab.namespaces
    r2, void = topo.router2, topo.void
    for ns in (r2, void):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
        sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
        sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
    sysctl(r2, "net.ipv4.ip_forward", "1")

    def veth(ns_a: str, a: str, ns_b: str, b: str) -> None:
        ip("link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)

    def addr(ns: str, dev: str, address: str | None, up: bool = True) -> None:
        if address:
            ip("-n", ns, "addr", "add", address, "dev", dev)
        if up:
            ip("-n", ns, "link", "set", dev, "up")

    # the second path: client eth1 - router2 - server eth1, and the policy rule for one host
    veth(c, "eth1", r2, "e1")
    veth(r2, "e2", s, "eth1")
    addr(c, "eth1", "10.79.1.2/24")
    addr(r2, "e1", "10.79.1.1/24")
    addr(r2, "e2", "10.79.2.1/24")
    addr(s, "eth1", "10.79.2.2/24")
    ip("-n", r2, "route", "add", f"{POLICY_HOST}/32", "via", "10.79.2.2")
    ip("-n", s, "route", "add", "10.79.1.0/24", "via", "10.79.2.1")
    ip("-n", c, "route", "add", f"{POLICY_HOST}/32", "via", "10.79.1.1", "dev", "eth1", "table", "100")
    ip("-n", c, "rule", "add", "to", POLICY_HOST, "table", "100", "priority", "1000")
    # a bridge with one port, its far end on router2
    ip("-n", c, "link", "add", "br0", "type", "bridge")
    veth(c, "eth4", r2, "b1")
    ip("-n", c, "link", "set", "eth4", "master", "br0")
    addr(c, "eth4", None)
    addr(c, "br0", "10.83.0.2/24")
    addr(r2, "b1", "10.83.0.1/24")
    ip("-n", c, "route", "add", "10.79.2.0/24", "via", "10.83.0.1", "dev", "br0")
    ip("-n", s, "route", "add", "10.83.0.0/24", "via", "10.79.2.1")
    # links to nowhere: a working one, one with a tiny MTU, one that is down; and a tun device
    veth(c, "eth2", void, "v2")
    veth(c, "eth5", void, "v5")
    veth(c, "eth3", void, "v3")
    addr(c, "eth2", "10.80.0.2/24")
    ip("-n", c, "link", "set", "eth5", "mtu", "500")
    ip("-n", void, "link", "set", "v5", "mtu", "500")
    addr(c, "eth5", "10.84.0.2/24")
    addr(c, "eth3", "10.81.0.2/24", up=False)
    for dev in ("v2", "v3", "v5"):
        addr(void, dev, None)
    ip("-n", c, "tuntap", "add", "mode", "tun", "name", "tun0")
    addr(c, "tun0", "10.82.0.2/24")
    # VLAN 42 over the client-router veth, when this kernel has 802.1Q
    vlan = subprocess.run(
        ["ip", "-n", c, "link", "add", "link", "eth0", "name", "eth0.42", "type", "vlan", "id", "42"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if vlan.returncode != 0:
        topo.vlan = f"this kernel cannot make a VLAN sub-interface ({vlan.stderr.strip()}): no 802.1Q support"
    else:
        ip("-n", r, "link", "add", "link", "rc0", "name", "rc0.42", "type", "vlan", "id", "42")
        addr(c, "eth0.42", "10.77.42.2/24")
        addr(r, "rc0.42", "10.77.42.1/24")
        ip("-n", s, "addr", "add", f"{VLAN_HOST}/24", "dev", "eth0")
        ip("-n", c, "route", "add", f"{VLAN_HOST}/32", "via", "10.77.42.1", "dev", "eth0.42")
    for ns, dev in ((r2, "e1"), (r2, "b1")):
        topo.macs[f"{ns}:{dev}"] = _mac(ns, dev)


def _mac(ns: str, dev: str) -> str:
    return str(json.loads(ip("-n", ns, "-j", "link", "show", dev))[0]["address"])


def _start_server(topo: Topology) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "rawtui.lab.server", "--root", str(topo.www), "--port", str(PORT)]
    proc = topo.lab.popen(topo.lab.server_ns, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          env=child_env(COLUMNS="120"))  # fmt: skip
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        line = proc.stdout.readline().decode() if sel.select(20) else ""
    if not line.startswith("ready"):
        topo.lab.stop(proc)
        raise LabError(f"the lab HTTP server did not start: {line!r}")
    return proc


@pytest.fixture(scope="module")
def topo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    reason = lab_unavailable_reason()  # the module is marked lab too: this is for a direct fixture use
    if reason is not None:
        lab_unavailable(reason)
    lab = Lab.create()
    tag = secrets.token_hex(3)
    www = tmp_path_factory.mktemp("ifwww")
    make_file(www / FILE, 1 << 20, seed=7)
    topology = Topology(
        lab, f"rtif-{tag}", f"rtif-{secrets.token_hex(3)}", www, sha256_file(www / FILE), None
    )
    server = None
    try:
        _build(topology)
        server = _start_server(topology)
        yield topology
        left = lab.pids("client")
        assert not left, f"processes left in the client namespace: {left}"
    finally:
        if server is not None:
            lab.stop(server)
        lab.destroy()
        for ns in (topology.router2, topology.void):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False)


# -- helpers ------------------------------------------------------------------------------------


def in_client(topo: Topology, *argv: str, timeout: float = 60, cwd: Path | None = None,
              prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return topo.lab.run(topo.client, [*prefix, *argv], capture_output=True, text=True, timeout=timeout,
                        env=child_env(COLUMNS="120"), cwd=cwd or REPO)  # fmt: skip


def rawtui(topo: Topology, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return in_client(topo, sys.executable, "-m", "rawtui", *args, **kw)


def interfaces_json(topo: Topology, *args: str, code: int = 0, **kw: Any) -> dict[str, Any]:
    done = rawtui(topo, "interfaces", "--json", *args, **kw)
    assert done.returncode == code, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def ip_json(topo: Topology, *args: str) -> list[dict[str, Any]]:
    done = in_client(topo, "ip", "-j", *args)
    assert done.returncode == 0, done.stderr
    out: list[dict[str, Any]] = json.loads(done.stdout)
    return out


def route_get(topo: Topology, dst: str, *extra: str) -> dict[str, Any]:
    return ip_json(topo, "route", "get", dst, *extra)[0]


def fibmatch_prefix(topo: Topology, dst: str, *extra: str) -> str:
    entry = ip_json(topo, "route", "get", "fibmatch", dst, *extra)[0]
    prefix = str(entry["dst"])
    if prefix == "default":
        return "0.0.0.0/0"
    return prefix if "/" in prefix else f"{prefix}/32"


def download(
    topo: Topology, tmp_path: Path, host: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    events = tmp_path / "events.ndjson"
    out = tmp_path / "out.bin"
    done = rawtui(topo, "--headless", "--timeout", "10", "--events", str(events), "-o", str(out), *args,
                  topo.url(host), timeout=120, cwd=tmp_path)  # fmt: skip
    return done, events


def route_event(events: Path) -> dict[str, Any]:
    for line in events.read_text().splitlines():
        ev = json.loads(line)
        if ev["type"] == "route":
            return dict(ev)
    raise AssertionError("no route event")


# -- the listing --------------------------------------------------------------------------------


def test_listing_matches_ip_link_and_ethtool(topo: Topology) -> None:
    got = {row["name"]: row for row in interfaces_json(topo)["interfaces"]}
    links = {link["ifname"]: link for link in ip_json(topo, "-d", "addr", "show")}
    assert set(got) == set(links)
    for name, link in links.items():
        row = got[name]
        assert row["index"] == link["ifindex"]
        assert row["mtu"] == link["mtu"]
        assert row["up"] == ("UP" in link["flags"]), name
        if row["up"]:
            assert row["carrier"] == ("NO-CARRIER" not in link["flags"]), name
        assert row["mac"] == link.get("address", "") or (row["mac"] == "" and link["link_type"] == "none")
        v4 = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"]
        assert list(row["ipv4"]) == v4, name
        kind = link.get("linkinfo", {}).get("info_kind")
        if kind:
            assert row["kind"] == kind, name
    ethtool = shutil.which("ethtool")
    if ethtool is not None:
        for name in ("eth0", "br0", "tun0"):
            text = in_client(topo, ethtool, "-k", name).stdout
            state = dict(line.strip().split(": ", 1) for line in text.splitlines()[1:] if ": " in line)
            offloads = got[name]["offloads"]
            assert offloads["gro"] == state["generic-receive-offload"].startswith("on")
            assert offloads["gso"] == state["generic-segmentation-offload"].startswith("on")
            assert offloads["tso"] == state["tx-tcp-segmentation"].startswith("on")
            assert offloads["rx_csum"] == state["rx-checksumming"].startswith("on")


def test_listing_kinds_and_warnings(topo: Topology) -> None:
    got = {row["name"]: row for row in interfaces_json(topo)["interfaces"]}
    assert got["eth0"]["kind"] == "veth" and got["eth0"]["usable"] and got["eth0"]["warnings"] == []
    assert got["br0"]["kind"] == "bridge" and got["br0"]["usable"]
    assert got["eth4"]["master"] == "br0"
    assert got["eth4"]["warnings"] == ["no IPv4 address: a port of br0, use br0"]
    assert (got["tun0"]["kind"], got["tun0"]["usable"], got["tun0"]["medium"]) == ("tun", True, "ip")
    assert got["tun0"]["warnings"] == [LAYER3]
    assert got["eth3"]["warnings"] == ["down"] and not got["eth3"]["usable"]
    assert got["lo"]["kind"] == "loopback" and "loopback" in got["lo"]["warnings"][0]
    assert any("MTU 500 is below 576" in w for w in got["eth5"]["warnings"])
    if topo.vlan is None:
        assert (got["eth0.42"]["kind"], got["eth0.42"]["vlan_id"], got["eth0.42"]["parent"]) == (
            "vlan",
            42,
            "eth0",
        )


def test_listing_needs_no_privileges(topo: Topology) -> None:
    drop = (require_tool("setpriv"), "--inh-caps=-all", "--bounding-set=-all")
    done = rawtui(topo, "interfaces", "--json", topo.url(POLICY_HOST), prefix=drop)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["route"]["iface"] == "eth1"
    assert any(row["offloads"] for row in answer["interfaces"])
    probe = rawtui(topo, "interfaces", "--probe", topo.url(POLICY_HOST), prefix=drop)
    assert probe.returncode == 3
    assert "needs root or CAP_NET_RAW" in probe.stderr


# -- the route, as `ip route get` sees it ---------------------------------------------------------


CASES = {
    # dst: (interface, gateway, table, rule)
    POLICY_HOST: ("eth1", "10.79.1.1", "100", "1000: from all to 10.77.2.2 lookup 100"),
    "10.77.2.9": ("eth0", "10.77.1.1", "main", "32766: from all lookup main"),
    BRIDGE_HOST: ("br0", "10.83.0.1", "main", "32766: from all lookup main"),
    "10.79.1.1": ("eth1", None, "main", "32766: from all lookup main"),
    "10.81.0.9": ("eth0", "10.77.1.1", "main", "32766: from all lookup main"),  # eth3 is down
    "10.82.0.9": ("tun0", None, "main", "32766: from all lookup main"),
    VLAN_HOST: ("eth0.42", "10.77.42.1", "main", "32766: from all lookup main"),
}


@pytest.mark.parametrize("dst", list(CASES))
def test_route_matches_ip_route_get(topo: Topology, dst: str) -> None:
    if dst == VLAN_HOST and topo.vlan is not None:
        pytest.skip(f"{topo.vlan} (a kernel limit, not a broken lab: a skip even under RAWTUI_REQUIRE_LAB=1)")
    iface, gateway, table, rule = CASES[dst]
    kernel = route_get(topo, dst)
    assert (kernel["dev"], kernel.get("gateway"), kernel.get("table", "main")) == (iface, gateway, table)
    answer = interfaces_json(topo, f"http://{dst}/x")
    assert answer["kernel_iface"] == kernel["dev"]
    matched = answer["matched"]
    assert matched["table_name"] == kernel.get("table", "main")
    assert matched["gateway"] == kernel.get("gateway")
    assert matched["prefix"] == fibmatch_prefix(topo, dst)
    assert f"{matched['rule']['priority']}: {matched['rule']['text']}" == rule
    route = answer["route"]
    assert (route["iface"], route["gateway"], route["src_ip"]) == (kernel["dev"], kernel.get("gateway"),
                                                                   kernel["prefsrc"])  # fmt: skip
    if iface == "tun0":  # a layer-3 link: nothing to resolve
        assert (route["next_hop"], route["medium"], route["src_mac"]) == ("point-to-point", "ip", "")
    else:
        assert (route["next_hop"], route["medium"]) == (kernel.get("gateway", dst), "ethernet")
    assert answer["error"] is None


def test_overrides_match_ip_route_get_oif(topo: Topology) -> None:
    answer = interfaces_json(topo, topo.url(POLICY_HOST))
    overrides = {ov["iface"]: ov for ov in answer["overrides"]}
    assert sum(ov["usable"] for ov in overrides.values()) >= 2  # eth0 and eth1 at least: the loop checks them
    for name, ov in overrides.items():
        if not ov["usable"]:
            continue
        kernel = route_get(topo, POLICY_HOST, "oif", name)
        assert kernel["dev"] == name
        assert ov["gateway"] == kernel.get("gateway"), name
        assert ov["src_ip"] == kernel["prefsrc"], name
        if ov["reaches"]:
            assert ov["matched"]["prefix"] == fibmatch_prefix(topo, POLICY_HOST, "oif", name)
    assert overrides["eth1"]["kernel_choice"] and overrides["eth1"]["summary"] == "via 10.79.1.1"
    assert overrides["eth0"]["summary"] == "via 10.77.1.1" and overrides["eth0"]["reaches"]
    assert overrides["eth0"]["matched"]["rule"]["text"] == "from all lookup main"
    assert overrides["br0"]["reaches"] is False
    for name in ("eth2", "eth5"):
        assert overrides[name]["summary"] == "cannot reach"
        assert "cannot reach the host" in overrides[name]["detail"]
    assert "10.80.0.0/24" in overrides["eth2"]["detail"]
    assert overrides["tun0"]["usable"] and overrides["tun0"]["summary"] == "cannot reach"
    assert "no route to 10.77.2.2 through tun0, so rawtui would send to 10.77.2.2 into that link" in (
        overrides["tun0"]["detail"])
    assert overrides["eth3"]["detail"].startswith("it is down")
    assert overrides["eth4"]["detail"] == "no IPv4 address: it is a port of br0, use that"
    assert overrides["lo"]["usable"] is False


def test_forced_interface_is_explained(topo: Topology) -> None:
    answer = interfaces_json(topo, "-i", "eth0", topo.url(POLICY_HOST))
    route = answer["route"]
    assert (route["iface"], route["gateway"]) == ("eth0", "10.77.1.1")
    assert route["warning"] == "the kernel would use eth1, not eth0"
    assert answer["kernel_iface"] == "eth1"


def test_table_output_says_it_in_words(topo: Topology) -> None:
    done = rawtui(topo, "interfaces", topo.url(POLICY_HOST))
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for expected in (
        "policy rule 1000: from all to 10.77.2.2 lookup 100",
        "matched route 10.77.2.2/32 via 10.79.1.1 dev eth1 table 100",
        "gateway 10.79.1.1: rawtui ARPs for it on eth1",
        "this subnet (10.80.0.0/24) cannot reach the host",
        LAYER3,
        "no IPv4 address: a port of br0, use br0",
    ):
        assert expected in text, expected


# -- downloads through -i -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "iface", "expect_iface"),
    [
        (POLICY_HOST, None, "eth1"),
        (POLICY_HOST, "eth1", "eth1"),
        (BRIDGE_HOST, "br0", "br0"),
        (VLAN_HOST, "eth0.42", "eth0.42"),
    ],
)
def test_download_through_the_chosen_interface(
    topo: Topology, tmp_path: Path, host: str, iface: str | None, expect_iface: str
) -> None:
    if host == VLAN_HOST and topo.vlan is not None:
        pytest.skip(f"{topo.vlan} (a kernel limit, not a broken lab: a skip even under RAWTUI_REQUIRE_LAB=1)")
    done, events = download(topo, tmp_path, host, *(("-i", iface) if iface else ()))
    assert done.returncode == 0, done.stderr
    assert sha256_file(tmp_path / "out.bin") == topo.sha256
    route = route_event(events)
    assert route["iface"] == expect_iface
    assert route["warning"] is None
    assert "warning" not in done.stderr


def test_download_against_the_kernels_choice_warns_and_works(topo: Topology, tmp_path: Path) -> None:
    done, events = download(topo, tmp_path, POLICY_HOST, "-i", "eth0")
    assert done.returncode == 0, done.stderr
    assert sha256_file(tmp_path / "out.bin") == topo.sha256
    route = route_event(events)
    assert (route["iface"], route["gateway"]) == ("eth0", "10.77.1.1")
    assert route["warning"] == "the kernel would use eth1, not eth0"
    assert "the kernel would use eth1, not eth0" in " ".join(done.stderr.split())


def test_download_where_the_host_is_not_on_the_link(topo: Topology, tmp_path: Path) -> None:
    done, events = download(topo, tmp_path, POLICY_HOST, "-i", "eth2")
    assert done.returncode == 4
    err = " ".join(done.stderr.split())
    assert "no ARP reply from 10.77.2.2 on eth2 after 3 tries: the host 10.77.2.2 is not on eth2's link" in err
    route = route_event(events)
    assert "no route to 10.77.2.2 via eth2: assuming it is on-link" in route["warning"]
    assert "the kernel would use eth1, not eth2" in route["warning"]
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize(
    ("iface", "message"),
    [
        ("eth3", "interface 'eth3' is down: bring it up with `ip link set eth3 up`"),
        ("eth4", "interface 'eth4' has no IPv4 address"),
    ],
)
def test_download_refused_on_unusable_interfaces(
    topo: Topology, tmp_path: Path, iface: str, message: str
) -> None:
    done, _events = download(topo, tmp_path, POLICY_HOST, "-i", iface)
    assert done.returncode == 4
    assert message in " ".join(done.stderr.split())


# -- the ARP probe --------------------------------------------------------------------------------


def test_probe_gets_the_gateways_mac(topo: Topology) -> None:
    answer = interfaces_json(topo, "--probe", topo.url(POLICY_HOST))
    probe = answer["probe"]
    assert (probe["iface"], probe["target_ip"], probe["error"]) == ("eth1", "10.79.1.1", None)
    assert probe["mac"] == topo.macs[f"{topo.router2}:e1"]
    assert probe["rtt_ms"] is not None and 0 <= probe["rtt_ms"] < 1000
    kinds = [step["kind"] for step in probe["steps"]]
    assert kinds[0] == "request" and "reply" in kinds


def test_probe_without_a_reply_says_what_is_not_on_the_link(topo: Topology) -> None:
    started = time.monotonic()
    done = rawtui(topo, "interfaces", "--json", "--probe", "-i", "eth2", topo.url(POLICY_HOST))
    assert done.returncode == 4
    probe = json.loads(done.stdout)["probe"]
    message = "no ARP reply from 10.77.2.2 on eth2 after 3 tries: the host 10.77.2.2 is not on eth2's link"
    assert probe["error"].startswith(message)
    assert [step["kind"] for step in probe["steps"]] == ["request"] * 3
    assert message in done.stderr
    assert time.monotonic() - started >= 3
