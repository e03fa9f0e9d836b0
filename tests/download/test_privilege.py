"""rawtui.download.privilege without the lab: reading capability sets, the messages, and the drop itself (in a
forked child, so the test process keeps root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import child_env

from rawtui.download import privilege as P
from rawtui.errors import PrivilegeError

STATUS = """Name:\tpython
Uid:\t1000\t1000\t1000\t1000
CapInh:\t0000000000000000
CapPrm:\t{eff}
CapEff:\t{eff}
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
"""


def status(eff: int) -> str:
    return STATUS.format(eff=f"{eff:016x}")


def test_capability_sets_parses_proc_status():
    sets = P.capability_sets(status(0x3000))
    assert sets["CapEff"] == 0x3000 and sets["CapBnd"] == 0x1FFFFFFFFFF and sets["CapAmb"] == 0
    assert set(sets) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert "CapEff" in P.capability_sets()  # the real file


@pytest.mark.parametrize(
    ("eff", "missing"),
    [
        (0x3000, []),
        (0x1FFFFFFFFFF, []),
        (1 << P.CAP_NET_RAW, ["CAP_NET_ADMIN"]),
        (1 << P.CAP_NET_ADMIN, ["CAP_NET_RAW"]),
        (0, ["CAP_NET_RAW", "CAP_NET_ADMIN"]),
    ],
)
def test_require_capabilities_names_exactly_what_is_missing(eff, missing):
    if not missing:
        P.require_capabilities(status(eff))
        return
    with pytest.raises(PrivilegeError) as info:
        P.require_capabilities(status(eff))
    msg = info.value.message
    assert info.value.exit_code == 3
    for name in ("CAP_NET_RAW", "CAP_NET_ADMIN"):
        if name in missing:
            assert f"{name} (needed for" in msg
        else:
            assert f"{name} (needed for" not in msg
    assert msg.endswith("run as root (sudo) or grant CAP_NET_RAW+CAP_NET_ADMIN")


def test_admin_message_says_why():
    msg = P.missing_message([P.CAP_NET_ADMIN])
    assert msg == ("missing CAP_NET_ADMIN (needed for the firewall rule that stops the kernel's RSTs): "
                   "run as root (sudo) or grant CAP_NET_RAW+CAP_NET_ADMIN")


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"SUDO_UID": "1000", "SUDO_GID": "1001"}, (1000, 1001)),
        ({"SUDO_UID": "0", "SUDO_GID": "0"}, None),  # sudo from root: stay root
        ({"SUDO_UID": "1000"}, None),
        ({}, None),
        ({"SUDO_UID": "-1", "SUDO_GID": "5"}, None),
        ({"SUDO_UID": "1e3", "SUDO_GID": "5"}, None),
        ({"SUDO_UID": "٣", "SUDO_GID": "5"}, None),  # a non-ASCII digit
        ({"SUDO_UID": str(1 << 32), "SUDO_GID": "5"}, None),
    ],
)
def test_sudo_ids(env, want):
    assert P.sudo_ids(env) == want


def test_readable_follows_every_directory(tmp_path):
    d = tmp_path / "a" / "b"
    d.mkdir(parents=True)
    f = d / "m.py"
    f.write_text("x = 1\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "a", 0o755)
    os.chmod(d, 0o755)
    os.chmod(f, 0o644)
    other = 54321
    # the pytest tmp root itself may be 0700: judge only from tmp_path down by pretending to own the rest
    assert P.readable(str(f), os.stat(f).st_uid, [])
    parents_ok = P.readable(str(tmp_path), other, [])
    assert P.readable(str(f), other, []) == parents_ok
    os.chmod(tmp_path / "a", 0o700)
    assert not P.readable(str(f), other, [])
    os.chmod(tmp_path / "a", 0o750)
    assert P.readable(str(f), other, [os.stat(tmp_path / "a").st_gid]) == parents_ok
    os.chmod(f, 0o600)
    assert not P.readable(str(f), other, [os.stat(f).st_gid])
    assert not P.readable(str(tmp_path / "nope.py"), other, [])


_CHILD_REPORT = """
import json, os, subprocess
from rawtui.download import privilege as P
d = P.drop_to_sudo_user({uid}, {gid}, [{gid}])
r = {{"dropped": [d.uid, d.gid, list(d.groups)], "sets": P.capability_sets(),
      "ids": [os.getresuid(), os.getresgid(), os.getgroups()]}}
try:
    os.setresuid(0, 0, 0)
    r["regained"] = True
except PermissionError:
    r["regained"] = False
child = subprocess.run(["grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status"], capture_output=True, text=True)
r["child"] = dict(line.split(":\\t") for line in child.stdout.splitlines())
P.require_capabilities()
print(json.dumps(r))
"""


@pytest.mark.needs_root
def test_drop_keeps_exactly_net_raw_and_net_admin_also_for_children():
    """In a child process: after the drop, uid/gid are the user's, the five capability sets are exactly
    {NET_RAW, NET_ADMIN} (ambient too, so a child like nft has them), root cannot be regained."""
    code = _CHILD_REPORT.format(uid=65534, gid=65534)
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                         env=child_env())
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["dropped"] == [65534, 65534, [65534]]
    assert r["ids"] == [[65534] * 3, [65534] * 3, [65534]]
    assert r["sets"] == {"CapInh": 0x3000, "CapPrm": 0x3000, "CapEff": 0x3000, "CapBnd": 0x3000, "CapAmb": 0x3000}
    assert r["regained"] is False
    child = r["child"]
    assert int(child["CapEff"], 16) == 0x3000 and int(child["CapAmb"], 16) == 0x3000
    assert child["NoNewPrivs"].strip() == "1"


@pytest.mark.needs_root
def test_prepare_download_without_sudo_stays_root(monkeypatch):
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.delenv("SUDO_GID", raising=False)
    assert P.prepare_download() is None
    assert os.geteuid() == 0


@pytest.mark.needs_root
def test_prepare_download_stays_root_when_python_is_unreadable(monkeypatch, tmp_path):
    """A drop that would break later imports is skipped with a warning (the file is still chowned)."""
    monkeypatch.setenv("SUDO_UID", "65534")
    monkeypatch.setenv("SUDO_GID", "65534")
    monkeypatch.setattr(P, "unreadable_for", lambda uid, groups: "/root/x/site-packages/h11/__init__.py")
    said: list[str] = []
    assert P.prepare_download(warn=said.append) is None
    assert os.geteuid() == 0
    assert said and said[0].startswith("staying root: uid 65534 (SUDO_UID) cannot read /root/x/")
    # and drop=False (the demo's child) does not even look
    monkeypatch.setattr(P, "drop_to_sudo_user", lambda *a: pytest.fail("dropped"))
    monkeypatch.setattr(P, "unreadable_for", lambda uid, groups: None)
    assert P.prepare_download(drop=False) is None
