"""Issue 12, "no firewall binary needed": with neither nft nor iptables on PATH, `rawtui URL` and
`rawtui demo` download byte-exact, the RST guard goes in and out over nftables netlink, the event
stream says so, and no rawtui table is left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rawtui.lab.server import sha256_file
from rawtui.lab.topology import Lab, list_netns

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
FIREWALL_TOOLS = re.compile(r"^(nft|iptables|ip6tables|xtables|ebtables|arptables)")
NETLINK_LINE = re.compile(
    r"firewall: netlink nftables table inet rawtui_(\d+)_(\d+): drop kernel RST local port (\d+) -> (\S+):(\d+)"
)


@pytest.fixture(scope="module")
def firewall_free_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH of one directory: a link to every program of this PATH except nft and the iptables family.

    The lab itself still needs `ip` and `sh`; rawtui finds its helpers through PATH only.
    """
    farm = tmp_path_factory.mktemp("no-firewall-bin")
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
    for directory in dirs:
        if not directory or not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = farm / entry.name
            if FIREWALL_TOOLS.match(entry.name) or target.exists() or target.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    path = str(farm)
    assert shutil.which("nft", path=path) is None and shutil.which("iptables", path=path) is None
    assert shutil.which("ip", path=path) is not None and shutil.which("sh", path=path) is not None
    return path


def firewall_lines(events_path: Path) -> list[str]:
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    return [e["message"] for e in events if e["type"] == "info" and e["message"].startswith("firewall")]


def rawtui_tables(lab: Lab) -> list[str]:
    """The rawtui tables in the client namespace: by the real nft when this machine has it, else netlink."""
    nft = shutil.which("nft")
    if nft is not None:
        res = lab.run(lab.client_ns, [nft, "-j", "list", "tables"], capture_output=True, text=True, timeout=20)
        assert res.returncode == 0, res.stderr
        names = [item["table"]["name"] for item in json.loads(res.stdout)["nftables"] if "table" in item]
    else:
        code = "import json; from rawtui.link.firewall import _netlink_table_names; print(json.dumps(_netlink_table_names()))"
        res = lab.run(lab.client_ns, [sys.executable, "-c", code], capture_output=True, text=True, timeout=20,
                      env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        assert res.returncode == 0, res.stderr
        names = json.loads(res.stdout)
    return [name for name in names if name.startswith("rawtui")]


def test_download_without_nft_or_iptables(
    lab: Lab, pyserver: str, www: Any, run_rawtui: Any, firewall_free_path: str
) -> None:
    result = run_rawtui(
        "--headless", "--events", "ev.ndjson", "-o", "out.bin", f"{pyserver}/1m7.bin",
        env={"PATH": firewall_free_path},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sha256_file(result.cwd / "out.bin") == www.sha256["1m7.bin"]
    lines = firewall_lines(result.cwd / "ev.ndjson")
    assert len(lines) == 1, lines
    match = NETLINK_LINE.fullmatch(lines[0])
    assert match, lines[0]
    assert match.group(2) == match.group(3)  # the table is named after the connection's local port
    assert (match.group(4), match.group(5)) == (lab.server_ip, "8080")
    assert rawtui_tables(lab) == []


def test_demo_without_nft_or_iptables(tmp_path: Path, firewall_free_path: str) -> None:
    events = tmp_path / "e.ndjson"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": firewall_free_path}
    res = subprocess.run(
        [sys.executable, "-m", "rawtui", "demo", "--headless", "--size", "2M", "--events", str(events)],
        capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    lines = firewall_lines(events)
    assert len(lines) == 1 and NETLINK_LINE.fullmatch(lines[0]), lines
    # the guard lived in the demo's client namespace, which is gone with the lab: nothing can be left
    lab_name = re.search(r"^lab (rt[0-9a-f]{6}):", res.stderr, re.MULTILINE)
    assert lab_name, res.stderr[-3000:]
    assert not [ns for ns in list_netns() if ns.startswith(lab_name.group(1))]
