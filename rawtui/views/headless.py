"""The headless view: a rich progress bar on stderr while the file arrives, then a one-screen summary.

rich is imported when there is something to draw: ``-q`` (quiet) never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rawtui import events as E
from rawtui.lab.events import server_frames_lost
from rawtui.views.kernel import kernel_text
from rawtui.views.resent import resent_text, witnesses_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class HeadlessView:
    """Listens to the event stream; draws on stderr. Cheap for the per-packet events it ignores."""

    def __init__(self, console: Console | None = None, quiet: bool = False, explain: bool = False) -> None:
        self._console = console
        self.quiet = quiet
        self.explain = explain  # print the explanations (``--explain``) as they come
        self.route: E.Route | None = None
        self.arp: E.ArpReply | E.NdpAdvert | None = None  # the next hop's MAC: ARP's reply or NDP's advertisement
        self.neighbor_state: str | None = None  # NDP: the next hop's entry, last seen
        self.path_mtu: E.PathMtu | None = None
        self.handshake: E.Handshake | None = None
        self.response: E.HttpResponse | None = None
        self.tls: E.TlsInfo | None = None
        self.done: E.Done | None = None
        self.error: E.Error | None = None
        self.window: E.Window | None = None
        self.server_info: E.ServerTcpInfo | None = None  # the lab server's last TCP_INFO for our connection
        self.lab_stats: E.LabStats | None = None  # the lab router's last counters
        self.kernel_info: E.KernelTcpInfo | None = None  # `rawtui watch`: the local socket's inet_diag state
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, ev: E.Event) -> None:
        t = ev.type
        if t in ("segment_in", "segment_out", "window", "dup_ack", "out_of_order", "dup_data"):
            if t == "window":
                self.window = ev  # type: ignore[assignment]
            return
        if t == "progress":
            self._on_progress(ev)  # type: ignore[arg-type]
        elif isinstance(ev, E.Route):
            self.route = r = ev
            if not self.quiet:  # (_esc loads rich: -q never does)
                via = "point-to-point" if r.medium == E.Medium.IP else r.gateway or "on-link"
                self._say(f"route: {r.dst_ip} via {via} on {r.iface} ({_esc(r.reason)})")
                if r.family_reason:
                    self._say(f"family: IPv{r.family} ({_esc(r.family_reason)})")
        elif t == "arp_reply" or t == "ndp_advert":
            self.arp = ev  # type: ignore[assignment]
            self._say(f"{'arp' if t == 'arp_reply' else 'ndp'}: {ev.ip} is at {ev.mac} "  # type: ignore[attr-defined]
                      f"({ev.rtt_ms:.2f} ms)")  # type: ignore[attr-defined]
        elif t == "arp_request" and ev.attempt > 1:  # type: ignore[attr-defined]
            self._say(f"arp: no reply yet, asking again for {ev.target_ip} (try {ev.attempt})")  # type: ignore[attr-defined]
        elif t == "ndp_solicit" and (ev.attempt > 1 or ev.unicast):  # type: ignore[attr-defined]
            what = "probing" if ev.unicast else "no advertisement yet, soliciting again"  # type: ignore[attr-defined]
            self._say(f"ndp: {what} {ev.target_ip} (try {ev.attempt})")  # type: ignore[attr-defined]
        elif t == "neighbor_state":
            self.neighbor_state = ev.new  # type: ignore[attr-defined]
        elif isinstance(ev, E.PathMtu):
            self.path_mtu = p = ev
            self._say(f"[yellow]path mtu:[/] {pmtu_text(p)}")
        elif t == "server_tcp_info":
            port = self.handshake.local_port if self.handshake else 0
            if not ev.peer_port or not port or ev.peer_port == port:  # type: ignore[attr-defined]
                self.server_info = ev  # type: ignore[assignment]
        elif t == "lab_stats":
            self.lab_stats = ev  # type: ignore[assignment]
        elif t == "kernel_tcp_info":
            self.kernel_info = ev  # type: ignore[assignment]
        elif t == "handshake":
            self.handshake = ev  # type: ignore[assignment]
        elif t == "tls":
            self.tls = ev  # type: ignore[assignment]
        elif t == "http_response":
            self.response = ev  # type: ignore[assignment]
        elif t == "explain":
            if self.explain:
                self._say(f"[dim]{ev.t:8.3f} s[/]  {_esc(ev.text)}")  # type: ignore[attr-defined]
        elif t == "redirect":
            self._say(f"redirect {ev.hop}: {_esc(ev.location)}")  # type: ignore[attr-defined]
        elif t == "info" and ev.level == "warning":  # type: ignore[attr-defined]
            self._say(f"[yellow]warning:[/] {_esc(ev.message)}")  # type: ignore[attr-defined]
        elif t == "done":
            self.done = ev  # type: ignore[assignment]
            self._stop_progress()
            if not self.quiet:
                self.console.print(self.summary())
        elif t == "error":
            self.error = ev  # type: ignore[assignment]
            self._stop_progress()

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, emoji=False)
        return self._console

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def _on_progress(self, ev: E.Progress) -> None:
        if self.quiet:
            return
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self._progress.start()
            name = self.route.dst_ip if self.route else "download"
            self._task = self._progress.add_task(name, total=ev.total)
        assert self._task is not None
        desc = None
        if ev.file_bytes is not None:  # --compressed: the bar counts the wire, the file grows faster
            name = self.route.dst_ip if self.route else "download"
            desc = f"{name} (file {human_bytes(ev.file_bytes)})"
        self._progress.update(self._task, completed=ev.bytes, total=ev.total, description=desc)

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop_progress()

    def summary(self) -> Table:
        from rich.table import Table

        d = self.done
        assert d is not None
        c = d.counters
        tbl = Table(show_header=False, box=None, padding=(0, 1))
        tbl.add_column(style="bold cyan", justify="right")
        tbl.add_column()
        if self.route:
            r = self.route
            tbl.add_row("interface", _esc(f"{r.iface}  {r.src_ip}  {r.src_mac}  mtu {r.mtu}  ({r.reason})"))
            if r.family_reason or r.family == 6:
                tbl.add_row("family", _esc(f"IPv{r.family}" + (f"  ({r.family_reason})" if r.family_reason else "")))
            gw = f"{r.gateway}" if r.gateway else f"{r.next_hop} (on-link)"
            if r.medium == E.Medium.IP:
                tbl.add_row("next hop", _esc(f"{r.gateway or r.dst_ip}  point-to-point: no link-layer address"))
            else:
                mac = self.arp.mac if self.arp else "?"
                how = "arp" if r.family == 4 else "ndp"
                arp = f"  {how} {self.arp.rtt_ms:.2f} ms" if self.arp else ""
                state = f"  {self.neighbor_state.upper()}" if self.neighbor_state else ""
                tbl.add_row("next hop", _esc(f"{gw}  is at {mac}{arp}{state}"))
        if self.handshake:
            h = self.handshake
            opts = [f"mss {h.mss}"]
            if h.wscale is not None:
                opts.append(f"wscale {h.peer_wscale}/{h.wscale}")
            if h.sack:
                opts.append("sack")
            if h.timestamps:
                opts.append("timestamps")
            tbl.add_row("handshake", f"{h.rtt_ms:.2f} ms  port {h.local_port} -> {h.remote_port}  "
                        + ", ".join(opts))
        if self.path_mtu:
            tbl.add_row("path mtu", pmtu_text(self.path_mtu))
        if self.tls:
            x = self.tls
            tbl.add_row("tls", _esc(f"{x.version} {x.cipher}  alpn {x.alpn or '-'}  handshake {x.handshake_ms:.2f} ms"))
            if x.verified:
                tbl.add_row("certificate", _esc(f"{x.subject}  issued by {x.issuer}  expires {x.not_after}"))
            elif x.subject and not x.subject.startswith("(not verified"):  # read from a capture, not checked
                tbl.add_row("certificate", _esc(f"{x.subject}  issued by {x.issuer or '?'}  expires "
                                                f"{x.not_after or '?'}  (from the capture: not verified)"))
            else:
                tbl.add_row("certificate", "[bold red]not verified (--insecure)[/]")
        if self.response:
            tbl.add_row("response", _esc(f"HTTP {self.response.status} {self.response.reason}"))
        speed = d.bytes / d.duration_s if d.duration_s > 0 else 0.0
        tbl.add_row("saved", _esc(f"{d.path}  {d.bytes:,} bytes in {d.duration_s:.2f} s  "
                    f"({human_bytes(speed)}/s)"))
        tbl.add_row("sha256", d.sha256)
        if d.wire_bytes is not None:  # --compressed: what crossed the wire vs what the file holds
            ratio = f"  ({d.bytes / d.wire_bytes:.1f}x)" if d.wire_bytes else ""
            tbl.add_row("decoded", f"{d.wire_bytes:,} bytes on the wire -> {d.bytes:,} bytes in the file{ratio}")
        if d.resumed_from:
            tbl.add_row("resumed", f"from byte {d.resumed_from:,}: {d.bytes - d.resumed_from:,} bytes fetched now")
        tbl.add_row("resent", resent_text(c))
        witnesses = witnesses_text(
            c.get("peer_retrans", 0),
            self.server_info.retrans_total if self.server_info else None,
            server_frames_lost(self.lab_stats.down) if self.lab_stats else None,
        )
        if witnesses:
            tbl.add_row("witnesses", witnesses)
        tbl.add_row("tcp", f"our retransmissions {c.get('retransmits', 0)}  dup data {c.get('dup_data', 0)}  "
                    f"arrived above a hole {c.get('out_of_order', 0)}  dup acks sent {c.get('dup_acks_sent', 0)}"
                    + (f"  d-sacks sent {c['dsacks_sent']}" if c.get("dsacks_sent") else ""))
        ipv4 = "" if self.route is not None and self.route.family == 6 else f"ipv4 {c.get('csum_drop_ipv4', 0)} "
        tbl.add_row("checksums", f"dropped {ipv4}tcp {c.get('csum_drop_tcp', 0)}  "  # (IPv6 has no header checksum)
                    f"offloaded {c.get('csum_offloaded', 0)}  kernel-verified {c.get('csum_kernel_verified', 0)}"
                    f"  malformed {c.get('malformed', 0)}")
        if c.get("rx_wakeups"):
            gathered = c.get("rx_coalesced", 0)
            drops = c.get("kernel_drops", 0)
            tbl.add_row("receive", f"{c.get('frames_in', 0):,} frames in {c['rx_wakeups']:,} wake-ups"
                        + (f", {gathered:,} of them waiting min(0.5 ms, RTT/40) for more" if gathered else "")
                        + (f"  [bold red]{drops:,} dropped by the kernel (rawtui fell behind)[/]" if drops else ""))
        if self.kernel_info is not None:
            tbl.add_row("kernel", _esc(kernel_text(self.kernel_info) + "  (inet_diag, as ss -ti)"))
        if self.window and self.window.srtt_ms is not None:
            w = self.window
            tbl.add_row("rtt", f"srtt {w.srtt_ms:.2f} ms  rttvar {w.rttvar_ms or 0:.2f} ms  rto {w.rto_ms:.0f} ms")
        return tbl


def pmtu_text(ev: E.PathMtu) -> str:
    """``1280 (icmpv6 packet too big from 2001:db8:2::1, said 1280): MSS 1440 -> 1220``."""
    said = f", said {ev.reported}" if ev.reported and ev.reported != ev.mtu else ""
    sender = f" from {ev.sender}" if ev.sender else ""
    return f"{ev.mtu} ({ev.source}{sender}{said}): MSS {ev.old_mss} -> {ev.mss}"


def _esc(text: str) -> str:
    """Text from the network or the user, shown as it is: no rich markup (``[...]``) in it is obeyed."""
    from rich.markup import escape

    return escape(text)
