"""The lab network: client – router – server network namespaces joined by veth pairs.

```
 {prefix}-c              {prefix}-r                    {prefix}-s
 eth0 10.77.1.2/24 ── rc0 10.77.1.1/24
                         rs0 10.77.2.1/24 ── eth0 10.77.2.2/24
```

``Lab.create(ipv6=True)`` makes it dual-stack: 2001:db8:1::2/64 – 2001:db8:1::1/64 on the client side,
2001:db8:2::1/64 – 2001:db8:2::2/64 on the server side (the documentation prefix, so address selection
treats it as global), the router forwarding IPv6, no duplicate-address detection (addresses usable at once)
and no router advertisements (routes are set, not learned). A lab without ``ipv6`` has IPv6 disabled: no
router solicitations, MLD or DAD frames on its links.

``Lab.create(vpn=True)`` adds the "VPN" of :mod:`rawtui.lab.tunnel`: a tun0 in the client and in the
router (10.78.0.2 – 10.78.0.1, MTU 1420) joined by a userspace tunnel over UDP, and the client's default
route through tun0, so the server is reachable only through the tun device (a layer-3 link). With ``ipv6``
too, tun0 also carries IPv6 (2001:db8:78::2/64 – 2001:db8:78::1/64) and the client's IPv6 default route
goes through it as well.

Everything lives inside namespaces this module creates: the veth pairs are created directly inside
their namespaces, so no interface name ever appears in the root namespace. The creating process's pid
(and start time, against pid reuse) is written to ``/run/rawtui-lab/<prefix>.pid`` before any namespace
exists, so :func:`cleanup_stale_labs` can tell a live lab from one left behind by a killed process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

__all__ = ["DEFAULT_PREFIX_PATTERN", "LAB_RUN_DIR", "Lab", "LabError", "cleanup_stale_labs"]

LAB_RUN_DIR = Path("/run/rawtui-lab")
ETC_NETNS = Path("/etc/netns")  # `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*
DEFAULT_PREFIX_PATTERN = r"rt[0-9a-f]{6}"
_NS_SUFFIXES = ("c", "r", "s")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
_IP_TIMEOUT = 20.0


_PING_SCRIPT = r"""
import os, socket, struct, sys, time
dst, timeout = sys.argv[1], float(sys.argv[2])
ident, payload = os.getpid() & 0xFFFF, b"rawtui-lab-ping!"
def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, 1) + payload
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.sendto(pkt, (dst, 0))
deadline = time.monotonic() + timeout
while (left := deadline - time.monotonic()) > 0:
    sock.settimeout(left)
    try:
        data, addr = sock.recvfrom(2048)
    except TimeoutError:
        break
    ihl = (data[0] & 0x0F) * 4
    typ, _, _, rid, _ = struct.unpack_from("!BBHHH", data, ihl)
    if addr[0] == dst and typ == 0 and rid == ident:
        sys.exit(0)
sys.exit(1)
"""


class LabError(RuntimeError):
    """The lab could not be built, used or torn down; the message says why in one sentence."""


# ---------------------------------------------------------------------------------------------------
# small helpers


def _ip_binary() -> str:
    path = shutil.which("ip") or ("/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else None)
    if path is None:
        raise LabError("the lab needs the `ip` command (Debian package iproute2), which is not installed")
    return path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; on failure raise LabError naming the command and its stderr."""
    argv = [_ip_binary(), *args]
    try:
        res = subprocess.run(
            argv, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_IP_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {_IP_TIMEOUT:.0f} s") from exc
    if check and res.returncode != 0:
        msg = (res.stderr or res.stdout).strip() or f"exit status {res.returncode}"
        raise LabError(f"`{' '.join(argv)}` failed: {msg}")
    return res


def list_netns() -> list[str]:
    res = _ip("netns", "list", check=False)
    names = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts:
            names.append(parts[0])
    return names


def _netns_pids(ns: str) -> list[int]:
    res = _ip("netns", "pids", ns, check=False)
    return [int(tok) for tok in res.stdout.split() if tok.isdigit()]


_NETNS_RUN_DIRS = ("/run/netns", "/var/run/netns")
_KILL_TIMEOUT = 10.0


def _netns_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _refers_to(path: str, netns: tuple[int, int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:  # gone, a zombie (no namespaces left), or a dangling fd
        return False
    return (st.st_dev, st.st_ino) == netns


def _in_or_entering(pid: int, netns: tuple[int, int]) -> bool:
    """Whether process ``pid`` has a thread inside ``netns`` or holds a descriptor of it (about to setns).

    The descriptors are read first: a process that opens the namespace, setns()s into it and closes the
    descriptor is then seen either holding it or inside, never neither.
    """
    base = f"/proc/{pid}"
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        fds = []
    if any(_refers_to(f"{base}/fd/{fd}", netns) for fd in fds):
        return True
    try:
        tids = os.listdir(f"{base}/task")
    except OSError:
        return False
    return any(_refers_to(f"{base}/task/{tid}/ns/net", netns) for tid in tids)


def _kill_members(netns: tuple[int, int]) -> list[int]:
    """One pass over /proc: SIGKILL every process in or entering ``netns`` the moment it is seen."""
    me = os.getpid()
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid != me and _in_or_entering(pid, netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _open_netns(ns: str) -> int | None:
    for run_dir in _NETNS_RUN_DIRS:
        try:
            return os.open(f"{run_dir}/{ns}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise LabError(f"cannot open network namespace {ns}: {exc.strerror}") from exc
    return None


def _empty_and_delete_netns(ns: str, timeout: float = _KILL_TIMEOUT) -> None:
    """Delete ``ns`` and SIGKILL every process inside it, including ones still entering it.

    Order matters: the namespace is pinned by a descriptor of our own, its name is deleted first (so no
    new `ip netns exec` can open it), then /proc is swept, killing every process with a thread in the
    namespace or a descriptor of it (one that opened the name before it went and has not setns()ed yet),
    until two passes in a row find none. A process forking while it is killed cannot slip through: a fork
    that has not finished when SIGKILL arrives is abandoned, and a child that did appear is inside the
    namespace, so the next pass kills it. Raises LabError if processes are still there after ``timeout``.
    """
    fd = _open_netns(ns)
    if fd is None:  # no such namespace (any more): just make sure the name is gone
        _delete_netns(ns)
        return
    try:
        netns = _netns_id(fd)
        _delete_netns(ns)
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 2:
            left = _kill_members(netns)
            quiet = 0 if left else quiet + 1
            if left:
                if time.monotonic() > deadline:
                    raise LabError(
                        f"processes still in network namespace {ns} after {timeout:.0f} s of SIGKILL: "
                        + " ".join(map(str, left))
                    )
                time.sleep(0.01)
    finally:
        os.close(fd)


def _delete_netns(ns: str) -> None:
    res = _ip("netns", "delete", ns, check=False)
    if res.returncode != 0 and ns in list_netns():
        raise LabError(f"could not delete network namespace {ns}: {res.stderr.strip()}")


def _proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if the process does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _creator_alive(pid_file: Path) -> bool:
    try:
        parts = pid_file.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return False
    start = _proc_start_time(pid)
    if start is None:
        return False
    return len(parts) < 2 or parts[1] == start


def _pid_file(prefix: str) -> Path:
    return LAB_RUN_DIR / f"{prefix}.pid"


def live_lab_owner(ns: str) -> int | None:
    """The PID of the living process that created the lab namespace ``ns`` (``<prefix>-c|r|s``), else None
    (not a lab's namespace, or its creator is gone: a stale lab)."""
    m = re.match(rf"^(.+)-[{''.join(_NS_SUFFIXES)}]$", ns)
    if not m or not _creator_alive(_pid_file(m.group(1))):
        return None
    try:
        return int(_pid_file(m.group(1)).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------------------------------
# the lab


@dataclass(eq=False)
class Lab:
    """A client – router – server lab of network namespaces; build one with :meth:`Lab.create`."""

    prefix: str
    client_ns: str
    router_ns: str
    server_ns: str
    client_ip: str = "10.77.1.2"
    router_client_ip: str = "10.77.1.1"
    router_server_ip: str = "10.77.2.1"
    server_ip: str = "10.77.2.2"
    prefix_len: int = 24
    ipv6: bool = False
    client_ip6: str = "2001:db8:1::2"
    router_client_ip6: str = "2001:db8:1::1"
    router_server_ip6: str = "2001:db8:2::1"
    server_ip6: str = "2001:db8:2::2"
    prefix_len6: int = 64
    mtu: int = 1500
    client_if: str = "eth0"
    router_cif: str = "rc0"
    router_sif: str = "rs0"
    server_if: str = "eth0"
    vpn: bool = False
    client_tun_ip: str = "10.78.0.2"
    router_tun_ip: str = "10.78.0.1"
    client_tun_ip6: str = "2001:db8:78::2"  # a dual-stack VPN (vpn=True, ipv6=True) carries IPv6 too
    router_tun_ip6: str = "2001:db8:78::1"
    tun_if: str = "tun0"
    tun_mtu: int = 1420
    _created: list[str] = field(default_factory=list, repr=False)
    _procs: list[subprocess.Popen[Any]] = field(default_factory=list, repr=False)
    _owner_pid: int = field(default_factory=os.getpid, repr=False)
    _destroyed: bool = field(default=False, repr=False)
    _owns_pid_file: bool = field(default=False, repr=False)
    _etc_dirs: list[Path] = field(default_factory=list, repr=False)  # /etc/netns/<ns> made by write_hosts

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def create(cls, prefix: str | None = None, *, ipv6: bool = False, vpn: bool = False) -> Lab:
        """Build the three namespaces, the two veth pairs, addresses and routes (``ipv6``: dual-stack;
        ``vpn``: the client reaches the server only through a tun device and the lab's tunnel).

        On any failure everything made so far is removed and LabError is raised.
        """
        if os.geteuid() != 0:
            raise LabError(
                "the lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces"
            )
        _ip_binary()
        if prefix is None:
            prefix = "rt" + secrets.token_hex(3)
        if not _PREFIX_RE.match(prefix):
            raise LabError(f"bad lab prefix {prefix!r}: use letters, digits, '_', '.', '-' (at most 41)")
        lab = cls(prefix=prefix, client_ns=f"{prefix}-c", router_ns=f"{prefix}-r", server_ns=f"{prefix}-s",
                  ipv6=ipv6, vpn=vpn)
        try:
            lab._claim_prefix()
            lab._build()
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original error is the one to report
                lab.destroy()
            if isinstance(exc, LabError):
                raise
            if isinstance(exc, Exception):
                raise LabError(f"could not build the lab: {exc}") from exc
            raise
        atexit.register(lab._atexit)
        return lab

    def _claim_prefix(self) -> None:
        try:
            LAB_RUN_DIR.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LabError(f"cannot create {LAB_RUN_DIR}: {exc.strerror}") from exc
        pid_file = _pid_file(self.prefix)
        existing = set(list_netns())
        clash = [ns for ns in self.namespaces if ns in existing]
        if clash or (pid_file.exists() and _creator_alive(pid_file)):
            what = ", ".join(clash) if clash else str(pid_file)
            raise LabError(f"lab prefix {self.prefix!r} is already in use ({what})")
        start = _proc_start_time(os.getpid()) or "0"
        tmp = pid_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(f"{os.getpid()} {start}\n")
        os.replace(tmp, pid_file)
        self._owns_pid_file = True

    def _build(self) -> None:
        c, r, s = self.namespaces
        for ns in (c, r, s):
            _ip("netns", "add", ns)
            self._created.append(ns)
        # Without ipv6: no IPv6 at all (no router solicitations / MLD / DAD noise on the wire). With it: no
        # DAD (usable at once) and no router solicitations or advertisements. New interfaces inherit both.
        for ns in (c, r, s):
            values = {f"net.ipv6.conf.{w}.disable_ipv6": "0" if self.ipv6 else "1" for w in ("all", "default")}
            if self.ipv6:
                for w in ("all", "default"):
                    values |= {f"net.ipv6.conf.{w}.accept_dad": "0", f"net.ipv6.conf.{w}.accept_ra": "0",
                               f"net.ipv6.conf.{w}.router_solicitations": "0"}
            self._sysctl(ns, values)
        if self.ipv6:
            self._sysctl(r, {"net.ipv6.conf.all.forwarding": "1"})
        self._sysctl(r, {"net.ipv4.ip_forward": "1"})
        _ip("link", "add", self.client_if, "netns", c, "type", "veth", "peer", "name", self.router_cif,
            "netns", r)  # fmt: skip
        _ip("link", "add", self.router_sif, "netns", r, "type", "veth", "peer", "name", self.server_if,
            "netns", s)  # fmt: skip
        plen = self.prefix_len
        for ns, ifname, addr in (
            (c, self.client_if, self.client_ip),
            (r, self.router_cif, self.router_client_ip),
            (r, self.router_sif, self.router_server_ip),
            (s, self.server_if, self.server_ip),
        ):
            _ip("-n", ns, "link", "set", "dev", ifname, "mtu", str(self.mtu))
            _ip("-n", ns, "addr", "add", f"{addr}/{plen}", "dev", ifname)
            _ip("-n", ns, "link", "set", "dev", ifname, "up")
        for ns in (c, r, s):
            _ip("-n", ns, "link", "set", "dev", "lo", "up")
        _ip("-n", c, "route", "add", "default", "via", self.router_client_ip, "dev", self.client_if)
        _ip("-n", s, "route", "add", "default", "via", self.router_server_ip, "dev", self.server_if)
        if self.ipv6:
            for ns, ifname, addr in (
                (c, self.client_if, self.client_ip6),
                (r, self.router_cif, self.router_client_ip6),
                (r, self.router_sif, self.router_server_ip6),
                (s, self.server_if, self.server_ip6),
            ):
                _ip("-n", ns, "-6", "addr", "add", f"{addr}/{self.prefix_len6}", "dev", ifname, "nodad")
            _ip("-n", c, "-6", "route", "add", "default", "via", self.router_client_ip6, "dev", self.client_if)
            _ip("-n", s, "-6", "route", "add", "default", "via", self.router_server_ip6, "dev", self.server_if)
        if self.vpn:
            from rawtui.lab.tunnel import build_vpn

            build_vpn(self)

    def _sysctl(self, ns: str, values: dict[str, str]) -> None:
        script = "; ".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}" for k, v in values.items())
        res = self.run(ns, ["sh", "-ec", script], capture_output=True, text=True, timeout=_IP_TIMEOUT)
        if res.returncode != 0:
            raise LabError(f"could not set {', '.join(values)} in {ns}: {res.stderr.strip()}")

    # -- teardown -------------------------------------------------------------------------------

    def destroy(self) -> None:
        """Kill the processes this lab started (and anything else inside its namespaces), delete them.

        Every namespace is emptied by :func:`_empty_and_delete_netns`: processes that were still entering
        one when destroy() began (an `ip netns exec` between opening the namespace and setns()) are
        killed too. Idempotent. Raises LabError if a namespace could not be deleted or a process in it
        survived SIGKILL for ``_KILL_TIMEOUT`` seconds.
        """
        if self._destroyed:
            return
        self._destroyed = True
        for proc in self._procs:
            _stop_process(proc)
        self._procs.clear()
        errors = []
        for ns in reversed(self._created):
            try:
                _empty_and_delete_netns(ns)
            except LabError as exc:
                errors.append(str(exc))
        self._created.clear()
        for etc in self._etc_dirs:
            shutil.rmtree(etc, ignore_errors=True)
        self._etc_dirs.clear()
        if self._owns_pid_file:
            try:
                _pid_file(self.prefix).unlink()
            except FileNotFoundError:
                pass
        if errors:
            raise LabError("; ".join(errors))

    def _atexit(self) -> None:
        if os.getpid() == self._owner_pid:
            try:
                self.destroy()
            except LabError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- use ------------------------------------------------------------------------------------

    @property
    def namespaces(self) -> tuple[str, str, str]:
        """(client_ns, router_ns, server_ns)."""
        return (self.client_ns, self.router_ns, self.server_ns)

    @property
    def destroyed(self) -> bool:
        return self._destroyed

    def ns(self, name: str) -> str:
        """A namespace by full name or role: "client"/"c", "router"/"r", "server"/"s"."""
        roles = {
            "client": self.client_ns, "c": self.client_ns,
            "router": self.router_ns, "r": self.router_ns,
            "server": self.server_ns, "s": self.server_ns,
        }  # fmt: skip
        if name in roles:
            return roles[name]
        if name in self.namespaces:
            return name
        raise LabError(f"{name!r} is not a namespace of lab {self.prefix}")

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        """The argv that runs ``argv`` inside namespace ``ns`` (`ip netns exec NS ...`)."""
        return [_ip_binary(), "netns", "exec", self.ns(ns), *argv]

    def write_hosts(self, names: dict[str, list[str]], ns: str = "client") -> Path:
        """Name addresses inside namespace ``ns``: ``{"www.lab": [v4, v6]}`` becomes its /etc/hosts
        (``/etc/netns/<ns>/hosts``, which `ip netns exec` bind-mounts over /etc/hosts for what it runs:
        :meth:`run`, :meth:`popen`). Returns the file's path; :meth:`destroy` removes the directory."""
        self._check_alive()
        etc = ETC_NETNS / self.ns(ns)
        if etc not in self._etc_dirs:
            etc.mkdir(parents=True, exist_ok=True)
            self._etc_dirs.append(etc)
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        lines += [f"{address} {name}" for name, addresses in names.items() for address in addresses]
        hosts = etc / "hosts"
        hosts.write_text("\n".join(lines) + "\n")
        return hosts

    def run(self, ns: str, argv: list[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``argv`` inside namespace ``ns``; keyword arguments go to subprocess.run."""
        self._check_alive()
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("check", False)
        return subprocess.run(self.exec_argv(ns, argv), **kw)  # noqa: PLW1510

    def popen(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` of ``argv`` inside ``ns``, in its own session; killed by :meth:`destroy`."""
        self._check_alive()
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.exec_argv(ns, argv), **kw)
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 3.0) -> int | None:
        """Stop a process started with :meth:`popen` (SIGTERM to its group, then SIGKILL)."""
        _stop_process(proc, timeout)
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def set_offloads(self, ns: str, ifname: str, **features: bool | str) -> bool:
        """`ethtool -K IFNAME feature on|off ...` inside ``ns``, e.g. ``set_offloads("s", "eth0", tso=False)``.

        Underscores in feature names become dashes (``tx_checksum_ip_generic``). Returns False, doing
        nothing, when ethtool is not installed; raises LabError when ethtool rejects the change.
        """
        if not features:
            return True
        ethtool = shutil.which("ethtool") or (
            "/usr/sbin/ethtool" if os.path.exists("/usr/sbin/ethtool") else None
        )
        if ethtool is None:
            return False
        argv = [ethtool, "-K", ifname]
        for name, value in features.items():
            if isinstance(value, bool):
                state = "on" if value else "off"
            elif value in ("on", "off"):
                state = value
            else:
                raise ValueError(f"offload {name}: expected a bool, 'on' or 'off', got {value!r}")
            argv += [name.replace("_", "-"), state]
        res = self.run(ns, argv, capture_output=True, text=True, timeout=_IP_TIMEOUT)
        if res.returncode != 0:
            raise LabError(
                f"`ethtool -K {ifname}` in {self.ns(ns)} failed: {(res.stderr or res.stdout).strip()}"
            )
        return True

    def mac(self, ns: str, ifname: str) -> str:
        """The MAC address of ``ifname`` in ``ns`` (lower-case, colon-separated)."""
        res = _ip("-n", self.ns(ns), "-o", "link", "show", "dev", ifname)
        match = re.search(r"link/ether ([0-9a-f:]{17})", res.stdout)
        if not match:
            raise LabError(f"{ifname} in {self.ns(ns)} has no Ethernet address")
        return match.group(1)

    def ping(self, ns: str, dst: str, timeout: float = 2.0) -> bool:
        """Send one ICMP echo from ``ns`` to ``dst``; True if the reply came back within ``timeout``.

        Uses a raw ICMP socket from Python inside the namespace, so iputils-ping is not needed.
        """
        res = self.run(
            ns,
            [sys.executable, "-c", _PING_SCRIPT, dst, str(timeout)],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
        )
        return res.returncode == 0

    def pids(self, ns: str) -> list[int]:
        """Pids of the processes running inside ``ns`` (`ip netns pids`)."""
        return _netns_pids(self.ns(ns))

    @property
    def started_pids(self) -> set[int]:
        """Pids of the running processes this lab started (:meth:`popen`: servers, the relay, the tunnel)."""
        return {proc.pid for proc in self._procs if proc.poll() is None}

    def _check_alive(self) -> None:
        if self._destroyed:
            raise LabError(f"lab {self.prefix} has been destroyed")


def _stop_process(proc: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    """SIGTERM the process group led by ``proc`` (it was started with a new session), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    else:
        proc.wait()
    _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    """Kill what is left of a process group whose leader has exited (e.g. nginx workers)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------------
# stale labs


def cleanup_stale_labs(prefix_pattern: str = DEFAULT_PREFIX_PATTERN) -> list[str]:
    """Delete lab namespaces named ``<prefix>-c|r|s`` (prefix matching ``prefix_pattern``) whose creating
    process is gone, killing whatever still runs inside them. Returns the namespaces deleted.

    A lab whose creator is alive is left alone. Needs root; without it, returns [] .
    """
    if os.geteuid() != 0:
        return []
    ns_re = re.compile(rf"^({prefix_pattern})-[{''.join(_NS_SUFFIXES)}]$")
    by_prefix: dict[str, list[str]] = {}
    for ns in list_netns():
        m = ns_re.match(ns)
        if m:
            by_prefix.setdefault(m.group(1), []).append(ns)
    removed: list[str] = []
    for prefix, namespaces in sorted(by_prefix.items()):
        if _creator_alive(_pid_file(prefix)):
            continue
        for ns in namespaces:
            try:
                _empty_and_delete_netns(ns)
            except LabError:
                if ns in list_netns():  # not deleted; otherwise only a process refused to die
                    continue
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)  # its hosts file (write_hosts), if any
            removed.append(ns)
        try:
            _pid_file(prefix).unlink()
        except FileNotFoundError:
            pass
    # pid files with no namespaces left (creator died between writing the file and `ip netns add`)
    prefix_re = re.compile(rf"^({prefix_pattern})\.pid$")
    if LAB_RUN_DIR.is_dir():
        for pid_file in LAB_RUN_DIR.iterdir():
            m = prefix_re.match(pid_file.name)
            if m and m.group(1) not in by_prefix and not _creator_alive(pid_file):
                try:
                    pid_file.unlink()
                except FileNotFoundError:
                    pass
    return removed
