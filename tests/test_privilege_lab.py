"""Privileges end to end in the lab: a sudo run drops to the invoking user keeping only CAP_NET_RAW and
CAP_NET_ADMIN (the file is created by that user); a non-root run with just those two capabilities
(ambient, as ``setpriv``/``capsh`` grant them) works; with one missing it is exit 3 naming it.

Running Python as another user needs an interpreter that user can read. Here it may live under root's
0700 home (pyenv in /root). Rather than copy or chmod anything, such a run goes through
``unshare -m``: in a private mount namespace (inside the client's network namespace, gone when the
process ends) the unreadable directory is covered by an empty 0755 tmpfs holding only a bind mount of the
interpreter's tree, so every path stays the same and nothing else of that directory is exposed. When the
interpreter is already readable (a venv in the clone, as in CI) no wrapper is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534


def _blocked_dir(path: str) -> tuple[str, str] | None:
    """(D, child) when directory D on the way to ``path`` is not traversable by others, else None."""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(1, len(parts)):
        d = os.sep.join(parts[:i]) or os.sep
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return d, parts[i]
    return None


_READABLE = r"""
d=$1; c=$2; stash=$3; shift 3
mount --bind "$d/$c" "$stash"
mount -t tmpfs -o mode=0755,size=64k rawtui-test "$d"
mkdir "$d/$c"
mount --move "$stash" "$d/$c"
exec "$@"
"""


@pytest.fixture
def as_other_user() -> Iterator[list[str]]:
    """An argv prefix under which another user can run this Python (see the module docstring)."""
    blocked = _blocked_dir(sys.base_prefix) or _blocked_dir(sys.prefix)
    if blocked is None:
        yield []
        return
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    stash = tempfile.mkdtemp(prefix="rawtui-stash-")
    try:
        yield ["unshare", "-m", "--propagation", "private", "sh", "-ec", _READABLE, "sh", *blocked, stash]
    finally:
        os.rmdir(stash)


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory the test user owns (pytest's tmp_path is root's and 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rawtui-user-"))
    os.chmod(d, 0o755)
    os.chown(d, NOBODY, NOBODY)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    e.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", **extra)
    return e


def run(lab, argv: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return lab.run(lab.client_ns, argv, cwd=cwd, capture_output=True, text=True, timeout=120, env=env(**extra))


def nft_tables(lab) -> str:
    return lab.run(lab.client_ns, ["nft", "list", "tables"], capture_output=True, text=True).stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rawtui(*args: str) -> list[str]:
    return [sys.executable, "-m", "rawtui", "--headless", "-q", *args]


def test_sudo_run_drops_to_the_user_keeping_the_download(lab, pyserver, www, as_other_user, user_dir):
    """The output, events and pcap files are *created* by uid 65534 (the events and pcap files are never
    chowned, so their owner proves the drop), the download is byte-exact, the table is removed."""
    argv = as_other_user + rawtui("-o", "out.bin", "--events", "ev.ndjson", "--pcap", "cap.pcap",
                                  f"{pyserver}/1m.bin")
    r = run(lab, argv, user_dir, SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY), SUDO_USER="nobody")
    assert r.returncode == 0, r.stderr
    assert "staying root" not in r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m.bin"]
    for name in ("out.bin", "ev.ndjson", "cap.pcap"):
        st = (user_dir / name).stat()
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), name
    assert "rawtui_" not in nft_tables(lab)


def test_sudo_run_writes_only_where_the_user_may(lab, pyserver, as_other_user, tmp_path):
    """Directory permissions are the user's: root's 0700 directory is exit 7, and nothing lands there."""
    root_only = tmp_path / "root-only"
    root_only.mkdir(mode=0o700)
    argv = as_other_user + rawtui("-o", str(root_only / "x.bin"), f"{pyserver}/one.bin")
    r = run(lab, argv, Path("/"), SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY))
    assert r.returncode == 7, r.stderr
    assert "cannot write" in r.stderr and "permission denied" in r.stderr
    assert list(root_only.iterdir()) == []
    assert "rawtui_" not in nft_tables(lab)


def test_sudo_run_with_python_the_user_cannot_read_stays_root(lab, pyserver, www, user_dir):
    """Without the wrapper, when the interpreter is under a 0700 directory, dropping would break the
    imports still to come: rawtui says so, stays root, and still hands the finished file to the user."""
    if _blocked_dir(sys.base_prefix) is None and _blocked_dir(sys.prefix) is None:
        pytest.skip("this interpreter is readable by everyone: nothing to stay root for")
    argv = rawtui("-o", "out.bin", "--events", "ev.ndjson", f"{pyserver}/1m.bin")
    r = run(lab, argv, user_dir, SUDO_UID=str(NOBODY), SUDO_GID=str(NOBODY))
    assert r.returncode == 0, r.stderr
    assert "rawtui: warning: staying root: uid 65534 (SUDO_UID) cannot read" in r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m.bin"]
    assert (user_dir / "out.bin").stat().st_uid == NOBODY  # handed over by output.py
    assert (user_dir / "ev.ndjson").stat().st_uid == 0  # created by root: the drop did not happen


def setpriv(*caps: str) -> list[str]:
    listed = ",".join(f"+{c}" for c in caps)
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps=-all,{listed}", f"--ambient-caps={listed}"]


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
def test_non_root_with_ambient_net_raw_and_net_admin_works(lab, pyserver, www, as_other_user, user_dir):
    argv = as_other_user + setpriv("net_raw", "net_admin") + rawtui("-o", "out.bin", f"{pyserver}/1m7.bin")
    r = run(lab, argv, user_dir)
    assert r.returncode == 0, r.stderr
    assert sha256(user_dir / "out.bin") == www.sha256["1m7.bin"]
    assert (user_dir / "out.bin").stat().st_uid == NOBODY
    assert "rawtui_" not in nft_tables(lab)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")
@pytest.mark.parametrize(("have", "missing", "present"), [
    ("net_raw", "CAP_NET_ADMIN", "CAP_NET_RAW"),
    ("net_admin", "CAP_NET_RAW", "CAP_NET_ADMIN"),
])
def test_non_root_missing_one_capability_is_exit_3_naming_it(lab, pyserver, as_other_user, user_dir, have,
                                                            missing, present):
    argv = as_other_user + setpriv(have) + rawtui("-o", "out.bin", f"{pyserver}/one.bin")
    r = run(lab, argv, user_dir)
    assert r.returncode == 3, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rawtui: error: missing {missing} (needed for ")
    assert f"{present} (needed" not in last and "Traceback" not in r.stderr
    assert list(user_dir.iterdir()) == []
    assert "rawtui_" not in nft_tables(lab)
