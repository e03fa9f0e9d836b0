"""The kernel's own TCP state of this host's sockets, read over netlink ``inet_diag`` (what ``ss -ti``
shows): congestion window, slow-start threshold, RTT, retransmissions, pacing, for any local connection.

One dump (``SOCK_DIAG_BY_FAMILY``, IPv4, TCP, with the ``INET_DIAG_INFO`` and ``INET_DIAG_CONG``
extensions) lists every TCP socket of the current network namespace; :meth:`TcpDiagReader.find` keeps
the ones of one connection. pyroute2's :class:`~pyroute2.netlink.diag.DiagSocket` builds the request and
decodes ``struct tcp_info``; nothing here needs root.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from rawtui.errors import LinkError
from rawtui.link.closing import Closing

__all__ = ["TcpDiag", "TcpDiagReader"]

# <linux/inet_diag.h>: extension bits are 1 << (attribute - 1)
INET_DIAG_INFO = 2
INET_DIAG_CONG = 4
EXTENSIONS = (1 << (INET_DIAG_INFO - 1)) | (1 << (INET_DIAG_CONG - 1))
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
# <net/tcp_states.h>, <linux/tcp.h>
TCP_STATES = {1: "ESTABLISHED", 2: "SYN-SENT", 3: "SYN-RECEIVED", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
              6: "TIME-WAIT", 7: "CLOSED", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING"}
CA_STATES = {0: "open", 1: "disorder", 2: "cwr", 3: "recovery", 4: "loss"}


@dataclass(frozen=True, slots=True)
class TcpDiag:
    """One local TCP socket's state, as ``ss -tin`` would print it. Times in milliseconds, rates in bytes
    per second; ``cwnd`` and ``ssthresh`` in segments (``ssthresh`` None in the first slow start)."""

    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: str
    inode: int
    uid: int
    congestion: str  # the algorithm: cubic, reno, bbr...
    ca_state: str
    cwnd: int
    ssthresh: int | None
    mss: int  # tcpi_snd_mss
    rtt_ms: float
    rttvar_ms: float
    rto_ms: float
    retrans: int  # retransmitted segments not yet acknowledged (ss: the first number of retrans:a/b)
    total_retrans: int  # segments retransmitted over the connection's life (ss: the second)
    lost: int
    unacked: int
    pacing_bps: int
    delivery_bps: int
    bytes_acked: int
    bytes_received: int
    bytes_sent: int
    bytes_retrans: int
    data_segs_in: int
    data_segs_out: int
    rcv_space: int
    snd_wnd: int
    backoff: int
    probes: int
    reord_seen: int

    @property
    def cwnd_bytes(self) -> int:
        return self.cwnd * self.mss

    def connection(self) -> tuple[str, int, str, int]:
        return self.local_ip, self.local_port, self.remote_ip, self.remote_port


def unmapped(ip: str) -> str:
    """An IPv4-mapped IPv6 address (``::ffff:10.77.1.2``: an IPv4 peer of a socket bound to ``::``) as the
    IPv4 address it is, so that a connection is named the same from either family's dump."""
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def _from_message(msg: Any) -> TcpDiag | None:
    """A :class:`TcpDiag` from an ``inet_diag_msg``; None without a ``tcp_info`` (a TIME-WAIT socket)."""
    info = msg.get_attr("INET_DIAG_INFO")
    if not info:
        return None

    def i(name: str) -> int:
        return int(info.get(name) or 0)

    ssthresh = i("tcpi_snd_ssthresh")
    return TcpDiag(
        local_ip=unmapped(str(msg["idiag_src"])), local_port=int(msg["idiag_sport"]),
        remote_ip=unmapped(str(msg["idiag_dst"])),
        remote_port=int(msg["idiag_dport"]), state=TCP_STATES.get(int(msg["idiag_state"]), "?"),
        inode=int(msg["idiag_inode"]), uid=int(msg["idiag_uid"]),
        congestion=str(msg.get_attr("INET_DIAG_CONG") or ""), ca_state=CA_STATES.get(i("tcpi_ca_state"), "?"),
        cwnd=i("tcpi_snd_cwnd"), ssthresh=None if ssthresh >= TCP_INFINITE_SSTHRESH else ssthresh,
        mss=i("tcpi_snd_mss"), rtt_ms=i("tcpi_rtt") / 1000, rttvar_ms=i("tcpi_rttvar") / 1000,
        rto_ms=i("tcpi_rto") / 1000, retrans=i("tcpi_retrans"), total_retrans=i("tcpi_total_retrans"),
        lost=i("tcpi_lost"), unacked=i("tcpi_unacked"), pacing_bps=i("tcpi_pacing_rate"),
        delivery_bps=i("tcpi_delivery_rate"), bytes_acked=i("tcpi_bytes_acked"),
        bytes_received=i("tcpi_bytes_received"), bytes_sent=i("tcpi_bytes_sent"),
        bytes_retrans=i("tcpi_bytes_retrans"), data_segs_in=i("tcpi_data_segs_in"),
        data_segs_out=i("tcpi_data_segs_out"), rcv_space=i("tcpi_rcv_space"), snd_wnd=i("tcpi_snd_wnd"),
        backoff=i("tcpi_backoff"), probes=i("tcpi_probes"), reord_seen=i("tcpi_reord_seen"),
    )


class TcpDiagReader(Closing):
    """A netlink ``sock_diag`` socket in the current network namespace; one dump per :meth:`sockets`."""

    def __init__(self) -> None:
        from pyroute2.netlink.diag import DiagSocket  # type: ignore[import-untyped]

        try:
            self._ds = DiagSocket()
            self._ds.bind()
        except OSError as exc:
            raise LinkError(f"cannot open a netlink sock_diag socket: {exc.strerror or exc}") from None

    def sockets(self) -> list[TcpDiag]:
        """Every IPv4 and IPv6 TCP socket of this namespace that has a ``tcp_info`` (not listening, not
        TIME-WAIT): one dump per family."""
        from pyroute2.netlink.diag import SS_CONN  # type: ignore[import-untyped]

        msgs: list[Any] = []
        try:
            for family in (socket.AF_INET, socket.AF_INET6):
                msgs += self._ds.get_sock_stats(family=family, states=SS_CONN, extensions=EXTENSIONS)
        except OSError as exc:
            raise LinkError(f"inet_diag dump failed: {exc.strerror or exc}") from None
        found = (_from_message(m) for m in msgs)
        return [d for d in found if d is not None]

    def find(self, a_ip: str, a_port: int, b_ip: str, b_port: int) -> list[TcpDiag]:
        """The local sockets of the connection between a and b (either end may be this host's; both on
        loopback or between two local addresses)."""
        ends = {(a_ip, a_port, b_ip, b_port), (b_ip, b_port, a_ip, a_port)}
        return [d for d in self.sockets() if d.connection() in ends]

    def close(self) -> None:
        self._ds.close()

