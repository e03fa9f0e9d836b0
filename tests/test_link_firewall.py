"""rawtui.link.firewall: the rule text, error mapping, and in a namespace: install, effect, remove, stale."""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rawtui.errors import LinkError, PrivilegeError
from rawtui.link import firewall
from rawtui.link.firewall import FirewallGuard

REPO = Path(__file__).resolve().parent.parent
DEAD_PID = 4_194_305  # above the largest pid_max: never a running process
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None,
    reason="needs root, iproute2 and nft",
)


def test_nft_ruleset_drops_only_the_connections_rsts() -> None:
    guard = FirewallGuard("10.0.2.2", 8080, 40000, pid=1234, backend="nft")
    ruleset = guard.nft_ruleset()
    assert "table inet rawtui_1234_40000 {" in ruleset
    assert "type filter hook output priority 0; policy accept;" in ruleset
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in ruleset
    assert ruleset.index("delete table inet rawtui_1234_40000") < ruleset.rindex(
        "table inet rawtui_1234_40000"
    )
    assert guard.description == (
        "nft table inet rawtui_1234_40000: drop kernel RST local port 40000 -> 10.0.2.2:8080"
    )


def test_nft_install_creates_and_replaces_only_a_table_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = FirewallGuard("10.0.2.2", 8080, 40000, pid=1234, backend="nft")
    create = guard.nft_create()
    assert create.startswith("create table inet rawtui_1234_40000\n") and "delete" not in create
    assert create.endswith(guard.nft_ruleset().split("delete table inet rawtui_1234_40000\n", 1)[1])
    scripts: list[str] = []
    exists = False

    def run(command: list[str], input: str | None = None, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command == ["nft", "-f", "-"]
        assert input is not None
        scripts.append(input)
        if exists and input.startswith("create table"):
            return subprocess.CompletedProcess(command, 1, "", "Error: Could not process rule: File exists")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(firewall.subprocess, "run", run)
    guard.install()  # the usual case: one nft run, no `delete table`
    assert scripts == [create] and guard.installed
    guard.installed = False
    atexit.unregister(guard.remove)
    exists, scripts[:] = True, []
    guard.install()  # left by a crashed run with the same pid and port: replaced
    assert scripts == [create, guard.nft_ruleset()] and guard.installed
    atexit.unregister(guard.remove)


def test_iptables_rule_is_commented_with_the_pid() -> None:
    guard = FirewallGuard("10.0.2.2", 8080, 40000, pid=1234, backend="iptables")
    rule = " ".join(guard.iptables_rule())
    assert rule == (
        "-p tcp -d 10.0.2.2 --sport 40000 --dport 8080 --tcp-flags RST RST "
        "-m comment --comment rawtui_1234_40000 -j DROP"
    )
    assert guard.description.startswith("iptables OUTPUT rule rawtui_1234_40000:")


def test_backend_prefers_nft_then_iptables(monkeypatch: pytest.MonkeyPatch) -> None:
    on_path: set[str] = {"nft", "iptables"}
    monkeypatch.setattr(
        firewall.shutil, "which", lambda name: f"/usr/sbin/{name}" if name in on_path else None
    )
    assert FirewallGuard("10.0.2.2", 80, 40000).backend == "nft"
    on_path.discard("nft")
    assert FirewallGuard("10.0.2.2", 80, 40000).backend == "iptables"
    on_path.clear()
    with pytest.raises(LinkError, match="neither nft nor iptables is available: install nftables"):
        FirewallGuard("10.0.2.2", 80, 40000)


def fake_run(returncode: int, stderr: str = "", raises: BaseException | None = None) -> Callable[..., Any]:
    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        if raises is not None:
            raise raises
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    return run


@pytest.mark.parametrize(
    "stderr",
    [
        "netlink: Error: cache initialization failed: Operation not permitted",
        "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)",
    ],
)
def test_permission_failure_is_a_privilege_error(monkeypatch: pytest.MonkeyPatch, stderr: str) -> None:
    monkeypatch.setattr(firewall.subprocess, "run", fake_run(1, stderr))
    guard = FirewallGuard("10.0.2.2", 80, 40000, backend="nft")
    with pytest.raises(PrivilegeError, match="needs root or CAP_NET_ADMIN") as caught:
        guard.install()
    assert caught.value.exit_code == 3
    assert not guard.installed


def test_other_failure_is_a_link_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall.subprocess, "run", fake_run(1, "Error: syntax error, unexpected junk\nmore"))
    with pytest.raises(
        LinkError, match="nft refused the firewall rule: Error: syntax error, unexpected junk$"
    ):
        FirewallGuard("10.0.2.2", 80, 40000, backend="nft").install()


def test_remove_is_idempotent_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(firewall.subprocess, "run", run)
    guard = FirewallGuard("10.0.2.2", 80, 40000, pid=77, backend="nft")
    guard.remove()  # not installed: nothing to do
    assert calls == []
    with guard:
        assert guard.installed
    assert calls[-1] == ["nft", "delete", "table", "inet", "rawtui_77_40000"]
    guard.remove()
    assert len(calls) == 2

    monkeypatch.setattr(firewall.subprocess, "run", fake_run(0))
    guard.install()
    monkeypatch.setattr(firewall.subprocess, "run", fake_run(0, raises=OSError("nft vanished")))
    guard.remove()
    assert guard.last_error == "nft vanished"
    assert not guard.installed


def test_stale_names_are_those_of_dead_pids() -> None:
    names = [
        f"rawtui_{DEAD_PID}_40000",
        f"rawtui_{os.getpid()}_40000",
        f"rawtui_{DEAD_PID}",
        "other",
        "rawtui_x",
    ]
    assert firewall._stale(names) == [f"rawtui_{DEAD_PID}_40000", f"rawtui_{DEAD_PID}"]


# --- lab: in throwaway namespaces ------------------------------------------------------------------


def run_in(ns: str, code: str, *args: str) -> Any:
    """Run Python code inside namespace ns; return the JSON it prints last."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def sh(ns: str, *command: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *command], check=True, capture_output=True, text=True
    ).stdout


def nft_tables(ns: str) -> list[str]:
    listing = json.loads(sh(ns, "nft", "-j", "list", "tables"))["nftables"]
    return [item["table"]["name"] for item in listing if "table" in item]


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """A factory of empty namespaces (IPv6 off), all deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"rtlink-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        sh(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


INSTALL_REMOVE = """
import json, subprocess, sys
from rawtui.link.firewall import FirewallGuard

def tables():
    listing = json.loads(subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout)
    return [item["table"]["name"] for item in listing["nftables"] if "table" in item]

guard = FirewallGuard("10.0.2.2", 8080, 40000, backend="nft")
guard.install()
guard.install()  # twice: still one table, one rule
during = tables()
rules = subprocess.run(["nft", "list", "table", "inet", guard.name], capture_output=True, text=True).stdout
guard.remove()
guard.remove()
print(json.dumps({"name": guard.name, "during": during, "rules": rules, "after": tables(),
                  "error": guard.last_error}))
"""


@pytest.mark.lab
@needs_root
def test_nft_guard_installs_and_removes_its_table(netns: Callable[[], str]) -> None:
    ns = netns()
    out = run_in(ns, INSTALL_REMOVE)
    assert out["name"].startswith("rawtui_") and out["name"].endswith("_40000")
    assert out["during"] == [out["name"]]
    assert out["rules"].count("tcp flags & rst == rst drop") == 1
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080" in out["rules"]
    assert out["after"] == []
    assert out["error"] is None
    assert nft_tables(ns) == []


REPLACE = """
import json, subprocess
from rawtui.link.firewall import FirewallGuard

guard = FirewallGuard("10.0.2.2", 8080, 40000, backend="nft")
left = (f"table inet {guard.name} {{ chain output {{ type filter hook output priority 0; policy accept;"
        " ip daddr 10.0.2.99 tcp flags & rst == rst drop; }; chain junk { }; }")
subprocess.run(["nft", "-f", "-"], input=left, text=True, check=True)  # as a crashed run with our pid left it
guard.install()
rules = subprocess.run(["nft", "list", "table", "inet", guard.name], capture_output=True, text=True).stdout
guard.remove()
print(json.dumps({"rules": rules, "error": guard.last_error}))
"""


@pytest.mark.lab
@needs_root
def test_nft_guard_replaces_a_table_of_the_same_name(netns: Callable[[], str]) -> None:
    ns = netns()
    out = run_in(ns, REPLACE)
    assert out["rules"].count("tcp flags & rst == rst drop") == 1
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080" in out["rules"]
    assert "10.0.2.99" not in out["rules"] and "junk" not in out["rules"]
    assert out["error"] is None
    assert nft_tables(ns) == []


ATEXIT = """
from rawtui.link.firewall import FirewallGuard
FirewallGuard("10.0.2.2", 8080, 40000, backend=__import__("sys").argv[1]).install()
print("{}")
"""


@pytest.mark.lab
@needs_root
@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_guard_is_removed_at_exit(netns: Callable[[], str], backend: str) -> None:
    if shutil.which(backend) is None:
        pytest.skip(f"{backend} is not installed")
    ns = netns()
    run_in(ns, ATEXIT, backend)
    assert nft_tables(ns) in ([], ["filter"])  # iptables-nft leaves its empty built-in table
    assert "rawtui" not in sh(ns, "nft", "list", "ruleset")


# A SYN-ACK sent from the server namespace to a port with no socket: the client kernel answers with a RST
# unless the guard drops it. Runs in the server namespace; prints whether a RST came back.
PROBE = """
import json, select, socket, struct, sys, time
from rawtui.link.afpacket import PacketSocket

def checksum(data):
    data += b"\\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

client_mac = bytes.fromhex(sys.argv[1])
src, dst = socket.inet_aton("10.9.0.1"), socket.inet_aton("10.9.0.2")
seg = bytearray(struct.pack("!HHIIBBHHH", 8080, 40000, 1000, 2000, 5 << 4, 0x12, 65535, 0, 0))
struct.pack_into("!H", seg, 16, checksum(src + dst + struct.pack("!BBH", 0, 6, len(seg)) + bytes(seg)))
ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, 0x4000, 64, 6, 0, src, dst))
struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
with PacketSocket("vb") as sock:
    sock.set_filter("10.9.0.2", 40000, 8080)
    frame = client_mac + sock.mac + b"\\x08\\x00" + bytes(ip) + bytes(seg)
    rst = False
    for _attempt in range(3):
        sock.send(frame)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and not rst:
            select.select([sock], [], [], 0.05)
            for got, _ in sock.recv_many():
                if got[12:14] == b"\\x08\\x00" and got[23] == 6:
                    ihl = 4 * (got[14] & 0xF)
                    rst = rst or bool(got[14 + ihl + 13] & 0x04)
print(json.dumps({"rst": rst}))
"""

GUARDED = """
import json, subprocess, sys
from rawtui.link.firewall import FirewallGuard

server_ns, probe, client_mac, backend = sys.argv[1:]

def rst_seen():
    done = subprocess.run(["ip", "netns", "exec", server_ns, sys.executable, "-c", probe, client_mac],
                          capture_output=True, text=True, check=True, timeout=30)
    return json.loads(done.stdout)["rst"]

out = {"before": rst_seen()}
with FirewallGuard("10.9.0.1", 8080, 40000, backend=backend):
    out["guarded"] = rst_seen()
out["after"] = rst_seen()
print(json.dumps(out))
"""


@pytest.mark.lab
@needs_root
@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_guard_drops_the_kernels_rst_and_only_while_installed(netns: Callable[[], str], backend: str) -> None:
    if shutil.which(backend) is None:
        pytest.skip(f"{backend} is not installed")
    client_ns, server_ns = netns(), netns()
    sh(client_ns, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", server_ns)
    sh(client_ns, "ip", "addr", "add", "10.9.0.2/24", "dev", "va")
    sh(server_ns, "ip", "addr", "add", "10.9.0.1/24", "dev", "vb")
    sh(client_ns, "ip", "link", "set", "va", "up")
    sh(server_ns, "ip", "link", "set", "vb", "up")
    client_mac = json.loads(sh(client_ns, "ip", "-j", "link", "show", "va"))[0]["address"].replace(":", "")
    out = run_in(client_ns, GUARDED, server_ns, PROBE, client_mac, backend)
    assert out == {"before": True, "guarded": False, "after": True}


STALE = """
import json, subprocess
from rawtui.link.firewall import cleanup_stale
print(json.dumps(cleanup_stale()))
"""


@pytest.mark.lab
@needs_root
def test_cleanup_stale_removes_only_dead_owners(netns: Callable[[], str]) -> None:
    ns = netns()
    for name in (f"rawtui_{DEAD_PID}_40000", "rawtui_1_40001", "other"):  # pid 1 is alive
        sh(ns, "nft", "add", "table", "inet", name)
    has_iptables = shutil.which("iptables") is not None
    if has_iptables:
        for pid in (DEAD_PID, 1):
            sh(
                ns, "iptables", "-w", "-I", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
                "-m", "comment", "--comment", f"rawtui_{pid}_5", "-j", "DROP",
            )  # fmt: skip
    removed = run_in(ns, STALE)
    expected = [f"nft table inet rawtui_{DEAD_PID}_40000"]
    if has_iptables:
        expected.append(f"iptables OUTPUT rule rawtui_{DEAD_PID}_5")
    assert removed == expected
    assert sorted(set(nft_tables(ns)) - {"filter"}) == ["other", "rawtui_1_40001"]
    if has_iptables:
        rules = sh(ns, "iptables", "-w", "-S", "OUTPUT")
        assert "rawtui_1_5" in rules and f"rawtui_{DEAD_PID}_5" not in rules
