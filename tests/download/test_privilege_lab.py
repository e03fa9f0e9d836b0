"""Privileges end to end in the lab: a sudo run drops to the invoking user keeping only CAP_NET_RAW and
CAP_NET_ADMIN (the file is created by that user); a non-root run with just those two capabilities
(ambient, as ``setpriv``/``capsh`` grant them) works; with one missing it is exit 3 naming it.

Running Python as another user needs an interpreter, rawtui and its packages that user can read; the
checkout, its venv or the interpreter may be under a 0700 directory (a clone in /root/x, pyenv in /root).
Those runs use the session's readable copy (the ``userland`` plugin, tests/userland.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from userland import Userland

pytestmark = pytest.mark.lab
pytest_plugins = ("userland",)  # fixtures userland, user_dir

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def run(lab, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return lab.run(lab.client_ns, argv, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def sudo(land: Userland, **extra: str) -> dict[str, str]:
    """The environment of ``sudo rawtui`` run by uid 65534, with the readable copy on the path."""
    return land.env(SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY), SUDO_USER="nobody", **extra)


def nft_tables(lab) -> str:
    return lab.run(lab.client_ns, ["nft", "list", "tables"], capture_output=True, text=True).stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rawtui(land: Userland, *args: str) -> list[str]:
    return land.rawtui("--headless", "-q", *args)


def test_sudo_run_drops_to_the_user_keeping_the_download(lab, pyserver, www, userland, user_dir):
    """The output, events and pcap files are *created* by uid 65534 (the events and pcap files are never
    chowned, so their owner proves the drop), the download is byte-exact, the table is removed."""
    argv = rawtui(userland, "-o", "out.bin", "--events", "ev.ndjson", "--pcap", "cap.pcap", f"{pyserver}/1m.bin")
    r = run(lab, argv, user_dir, sudo(userland))
    assert r.returncode == 0, r.stderr
    assert "staying root" not in r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m.bin"]
    for name in ("out.bin", "ev.ndjson", "cap.pcap"):
        st = (user_dir / name).stat()
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), name
    assert "rawtui_" not in nft_tables(lab)


def test_sudo_run_writes_only_where_the_user_may(lab, pyserver, userland, tmp_path):
    """Directory permissions are the user's: root's 0700 directory is exit 7, and nothing lands there."""
    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    argv = rawtui(userland, "-o", str(root_only / "x.bin"), f"{pyserver}/one.bin")
    r = run(lab, argv, Path("/"), sudo(userland))
    assert r.returncode == 7, r.stderr
    assert "staying root" not in r.stderr
    assert "cannot write" in r.stderr and "permission denied" in r.stderr
    assert list(root_only.iterdir()) == []
    assert "rawtui_" not in nft_tables(lab)


def test_sudo_run_with_python_the_user_cannot_read_stays_root(lab, pyserver, www, userland, user_dir, tmp_path):
    """When the user could not read what Python still imports after the drop (here rawtui itself, first on
    the path from a 0700 directory; in life a venv or pyenv in root's home), dropping would break those
    imports: rawtui says so, stays root, and still hands the finished file to the user."""
    hidden = tmp_path / "root-only"
    hidden.mkdir(mode=0o700)
    (hidden / "rawtui").symlink_to(userland.site / "rawtui", target_is_directory=True)
    argv = rawtui(userland, "-o", "out.bin", "--events", "ev.ndjson", f"{pyserver}/1m.bin")
    r = run(lab, argv, user_dir, sudo(userland, PYTHONPATH=f"{hidden}{os.pathsep}{userland.site}"))
    assert r.returncode == 0, r.stderr
    assert ("rawtui: warning: staying root: uid 65534 (SUDO_UID) cannot read "
            f"{hidden}/rawtui/__init__.py") in r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m.bin"]
    assert (user_dir / "out.bin").stat().st_uid == NOBODY  # handed over by output.py
    assert (user_dir / "ev.ndjson").stat().st_uid == 0  # created by root: the drop did not happen


def test_readable_copy_is_what_the_user_runs(userland):
    """uid 65534 runs rawtui and its packages from the copy, not from this checkout or its venv."""
    code = "import rawtui, textual, h11; print(rawtui.__file__, textual.__file__, h11.__file__)"
    r = subprocess.run([userland.python, "-c", code], capture_output=True, text=True, timeout=60,
                       env=userland.env(), cwd="/", user=NOBODY, group=NOBODY, extra_groups=[], check=True)
    files = r.stdout.split()
    assert files[0] == str(userland.site / "rawtui" / "__init__.py")
    assert all(f.startswith(f"{userland.site}{os.sep}") for f in files), files
    assert not any(f.startswith((f"{REPO}{os.sep}", f"{sys.prefix}{os.sep}")) for f in files), files


def setpriv(*caps: str) -> list[str]:
    listed = ",".join(f"+{c}" for c in caps)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps=-all,{listed}", f"--ambient-caps={listed}"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_non_root_with_ambient_net_raw_and_net_admin_works(lab, pyserver, www, userland, user_dir):
    argv = setpriv("net_raw", "net_admin") + rawtui(userland, "-o", "out.bin", f"{pyserver}/1m7.bin")
    r = run(lab, argv, user_dir, userland.env())
    assert r.returncode == 0, r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m7.bin"]
    assert (user_dir / "out.bin").stat().st_uid == NOBODY
    assert "rawtui_" not in nft_tables(lab)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
@pytest.mark.parametrize(("have", "missing", "present"), [
    ("net_raw", "CAP_NET_ADMIN", "CAP_NET_RAW"),
    ("net_admin", "CAP_NET_RAW", "CAP_NET_ADMIN"),
])
def test_non_root_missing_one_capability_is_exit_3_naming_it(lab, pyserver, userland, user_dir, have, missing,
                                                            present):
    argv = setpriv(have) + rawtui(userland, "-o", "out.bin", f"{pyserver}/one.bin")
    r = run(lab, argv, user_dir, userland.env())
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rawtui: error: missing {missing} (needed for ")
    assert f"{present} (needed" not in last and "Traceback" not in r.stderr
    assert list(user_dir.iterdir()) == []
    assert "rawtui_" not in nft_tables(lab)
