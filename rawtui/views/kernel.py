"""One line for a local socket's kernel TCP state (``rawtui watch``'s inet_diag samples), shared by the
headless summary and the live view's lab/kernel line."""

from __future__ import annotations

from rawtui.events import KernelTcpInfo


def kernel_text(k: KernelTcpInfo) -> str:
    """``receiver socket 10.77.1.2:41166  established  cubic  cwnd 10 (14.5 KB)  ssthresh -  rtt 4.10/1.02 ms
    retrans 0/0  received 4,194,560 B  acked 79 B``: what ``ss -ti`` says, in its words."""
    ssthresh = f"{k.ssthresh_bytes // max(k.mss, 1)}" if k.ssthresh_bytes is not None else "-"
    kb = k.cwnd_bytes / 1000
    return (f"{k.role} socket {k.local}  {k.state.lower()}  {k.congestion}  cwnd {k.cwnd} ({kb:.1f} KB)  "
            f"ssthresh {ssthresh}  rtt {k.rtt_ms:.2f}/{k.rttvar_ms:.2f} ms  retrans {k.retrans_out}/{k.retrans_total}"
            f"  received {k.bytes_received:,} B  acked {k.bytes_acked:,} B")
