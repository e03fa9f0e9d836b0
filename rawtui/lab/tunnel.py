"""The lab's "VPN": a small userspace point-to-point tunnel, so a client reaches the server only through a
tun device (a layer-3 link, as WireGuard's or OpenVPN's), the way a laptop behind a VPN does.

```
 {prefix}-c                                   {prefix}-r                      {prefix}-s
 tun0 10.78.0.2 peer 10.78.0.1 (MTU 1420)     tun0 10.78.0.1 peer 10.78.0.2
   │ tunnel: IP packets in UDP 10.77.1.2:51820 <─> 10.77.1.1:51820 │
 eth0 10.77.1.2/24 ───────────────────────── rc0   rs0 ──────────────── eth0 10.77.2.2/24
 default dev tun0 (the server only through it)    (forwards tun0 <-> rs0)
```

One :class:`Tunnel` runs in the client's namespace and one in the router's; each reads IP packets from its
tun device and sends each in one UDP datagram to the other end, and writes what it receives to its tun,
where the kernel routes it on. No encryption, no handshake: the tunnel is what carries the packets, and
the benchmark's bottleneck, so it reads and writes in batches of up to :data:`BATCH` packets per wake-up,
on non-blocking descriptors and large socket buffers. A packet that does not fit a full buffer is dropped
(counted), as a real link would. Packets written to a tun carry no
checksum state (as behind wireguard-go or OpenVPN; in-kernel WireGuard marks them verified): the client's
kernel, and rawtui, verify every checksum. The tun MTU (1420, WireGuard's default) leaves room for the outer IPv4 +
UDP headers within the veth's 1500: TCP's MSS over it is 1380.

``python -m rawtui.lab.tunnel --tun tun0 --local A:PORT --peer B:PORT`` (inside a namespace whose tun0
exists, from :func:`build_vpn`); it prints ``ready`` once attached and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rawtui.lab.topology import Lab

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32

VPN_MTU = 1420  # WireGuard's default: 1500 - 80 of its overhead (this tunnel needs only 28)
TUNNEL_PORT = 51820
BATCH = 256  # packets moved per wake-up and direction, at most
BUFFER = 16 << 20  # each UDP socket's send and receive buffer


def open_tun(name: str) -> int:
    """Attach to the tun device ``name`` (IFF_TUN, no packet-information header): a non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Tunnel:
    """One end: tun ``name`` <-> UDP ``local`` <-> UDP ``peer``."""

    def __init__(self, name: str, local: tuple[str, int], peer: tuple[str, int]) -> None:
        self.tun = open_tun(name)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, force, BUFFER)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER)
        self.sock.bind(local)
        self.sock.connect(peer)
        self.sock.setblocking(False)
        self.stopped = False
        self.counters = {"to_peer": 0, "from_peer": 0, "dropped": 0}

    def stop(self) -> None:
        self.stopped = True

    def run(self) -> None:
        tun, sock = self.tun, self.sock
        sfd = sock.fileno()
        read, write, send, recv_into = os.read, os.write, sock.send, sock.recv_into
        buf = bytearray(65536)
        view = memoryview(buf)
        c = self.counters
        poller = select.epoll()
        poller.register(tun, select.EPOLLIN)
        poller.register(sfd, select.EPOLLIN)
        try:
            while not self.stopped:
                for fd, _ in poller.poll(0.5):
                    n = 0
                    if fd == tun:
                        while n < BATCH:
                            try:
                                packet = read(tun, 65536)
                            except BlockingIOError:
                                break
                            n += 1
                            try:
                                send(packet)
                            except (BlockingIOError, ConnectionRefusedError):
                                c["dropped"] += 1
                        c["to_peer"] += n
                    else:
                        while n < BATCH:
                            try:
                                size = recv_into(buf)
                            except (BlockingIOError, ConnectionRefusedError):
                                break
                            n += 1
                            try:
                                write(tun, view[:size])
                            except (BlockingIOError, OSError):
                                c["dropped"] += 1
                        c["from_peer"] += n
        except InterruptedError:
            pass
        finally:
            poller.close()

    def close(self) -> None:
        self.sock.close()
        os.close(self.tun)


# ---------------------------------------------------------------------------------------------------
# the lab's side: the tun devices, addresses and routes, and the two tunnel processes


def build_vpn(lab: Lab, timeout: float = 20.0) -> list[subprocess.Popen[str]]:
    """Make the VPN of the module's picture on a built lab: tun0 in the client and the router, the client's
    default route through it, and the tunnel in both namespaces (started, ready; stopped by lab.destroy)."""
    from rawtui.lab.topology import LabError, _ip

    c, r = lab.client_ns, lab.router_ns
    for ns, mine, theirs in ((c, lab.client_tun_ip, lab.router_tun_ip), (r, lab.router_tun_ip, lab.client_tun_ip)):
        _ip("-n", ns, "tuntap", "add", "dev", lab.tun_if, "mode", "tun")
        _ip("-n", ns, "link", "set", "dev", lab.tun_if, "mtu", str(lab.tun_mtu))
        _ip("-n", ns, "addr", "add", mine, "peer", f"{theirs}/32", "dev", lab.tun_if)
        _ip("-n", ns, "link", "set", "dev", lab.tun_if, "up")
    procs = []
    for ns, local, peer in ((c, lab.client_ip, lab.router_client_ip), (r, lab.router_client_ip, lab.client_ip)):
        argv = [sys.executable, "-m", "rawtui.lab.tunnel", "--tun", lab.tun_if, "--local", f"{local}:{TUNNEL_PORT}",
                "--peer", f"{peer}:{TUNNEL_PORT}"]
        procs.append(_start(lab, ns, argv, timeout, LabError))
    # the server only through the tunnel: the client's default route is tun0 (the router's eth0 address
    # stays on-link, for the tunnel's own datagrams)
    _ip("-n", c, "route", "del", "default")
    _ip("-n", c, "route", "add", "default", "dev", lab.tun_if, "src", lab.client_tun_ip)
    if lab.ipv6:  # the tunnel carries any IP packet: IPv6 through it too, and only through it
        for ns, mine in ((c, lab.client_tun_ip6), (r, lab.router_tun_ip6)):
            _ip("-n", ns, "-6", "addr", "add", f"{mine}/64", "dev", lab.tun_if, "nodad")
        _ip("-n", c, "-6", "route", "replace", "default", "dev", lab.tun_if, "src", lab.client_tun_ip6)
    return procs


def _start(lab: Lab, ns: str, argv: list[str], timeout: float, error: type[Exception]) -> subprocess.Popen[str]:
    from rawtui.lab.impair import child_env

    err = tempfile.TemporaryFile()  # noqa: SIM115 - stderr to a file: never a pipe nobody reads
    try:
        proc = lab.popen(ns, argv, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            line = proc.stdout.readline()
        if not line.startswith("ready"):
            lab.stop(proc)
            err.seek(0)
            text = err.read().decode(errors="replace")
            raise error(f"the lab's tunnel did not start in {ns}: {(text or line).strip()[-800:]}")
    finally:
        err.close()
    return proc


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rawtui.lab.tunnel", description=__doc__.splitlines()[0])
    p.add_argument("--tun", required=True, help="the tun device to attach to (it exists)")
    p.add_argument("--local", required=True, type=_address, help="ADDRESS:PORT to send from and receive on")
    p.add_argument("--peer", required=True, type=_address, help="the other end's ADDRESS:PORT")
    ns = p.parse_args(argv)
    try:
        tunnel = Tunnel(ns.tun, ns.local, ns.peer)
    except OSError as exc:
        print(f"cannot start the tunnel: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> Any:
        tunnel.stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    print(f"ready {ns.tun} {ns.local[0]}:{ns.local[1]} <-> {ns.peer[0]}:{ns.peer[1]}", flush=True)
    try:
        tunnel.run()
    finally:
        tunnel.close()
    print(" ".join(f"{k}={v}" for k, v in tunnel.counters.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
