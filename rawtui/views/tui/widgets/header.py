"""The header lines: the URL and where the session is; the interface, addresses and why (and, for IPv6 or a
point-to-point path, the address family and why it was chosen, on a line of its own)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.reactive import reactive

from rawtui.events import Medium, Route, TlsInfo
from rawtui.views.tui.widgets.base import ModelPanel

PHASE_STYLES = {
    "ERROR": "bold white on red",
    "DONE": "bold black on green",
    "DOWNLOADING": "bold white on dodger_blue2",
    "RESOLVING": "bold black on yellow",
    "CONNECTING": "bold black on yellow",
    "ENDED": "bold black on grey70",
}


class SessionHeader(ModelPanel):
    """Line 1: title/URL, phase, TCP state and event time. Line 2: the route (for IPv6 or a point-to-point
    path: the family and why, the interface; then the addresses on a line of their own, as IPv6 addresses are
    long). Then (HTTPS only) what TLS negotiated and who the certificate says the server is."""

    DEFAULT_CSS = """
    SessionHeader { height: 2; }
    SessionHeader.-tls { height: 3; }
    """

    paused: reactive[bool] = reactive(False)
    stopping: reactive[bool] = reactive(False)
    cursor: Text | None = None  # the timeline cursor's line (the app sets it): one more header line

    def set_cursor(self, line: Text | None) -> None:
        """Show the timeline cursor's line under the others (None: no cursor)."""
        self.cursor = line
        self.set_class(line is not None, "-cursor")
        self._set_height()
        self.refresh()

    def _set_height(self) -> None:
        m = self.model
        n = 2 + (m.tls is not None) + (self.cursor is not None) + (m.route is not None and two_route_lines(m.route))
        if self.cursor is not None:
            n += self.cursor.plain.count("\n")
        if self.styles.height is None or self.styles.height.value != n:
            self.styles.height = n

    def sync(self) -> None:
        self.set_class(self.model.tls is not None, "-tls")
        self._set_height()
        super().sync()

    def render(self) -> RenderableType:
        m = self.model
        width = self.size.width
        title = Text.assemble((" rawtui ", "bold reverse"), "  ", (m.title or "", "bold"))
        if m.redirects:
            title.append(f"  -> {m.redirects[-1].location}", "yellow")
        right = Text()
        if self.stopping:
            right.append(" STOPPING ", "bold black on yellow")
            right.append(" ")
        if self.paused:
            right.append(" PAUSED ", "bold black on bright_yellow")
            right.append(" ")
        if self.cursor is not None:
            right.append(" CURSOR ", "bold black on yellow")
            right.append(" ")
        cc = m.server_info.cc if m.server_info is not None else ""
        if cc:  # the lab server's congestion control, as its TCP_INFO samples say (rawtui demo --cc)
            right.append(f" server {cc} ", "bold black on cyan")
            right.append(" ")
        phase = m.phase
        right.append(f" {phase} ", PHASE_STYLES.get(phase, "bold reverse"))
        right.append(f"  TCP {m.tcp_state}", "bold")
        right.append(f"  t={m.t_last:.3f} s ")
        room = max(0, width - right.cell_len)
        title.truncate(room, overflow="ellipsis", pad=True)
        top = title + right

        r = m.route
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        lines = [top, line]
        if r is None:
            line.append(" waiting for the route...", "dim")
        elif two_route_lines(r):
            line.append(f" IPv{r.family}", "bold magenta")
            if r.family_reason:
                line.append(f" · {r.family_reason}", "magenta")
            line.append(f"   {r.iface}", "bold cyan")
            line.append(f" ({r.reason})", "dim")
            if r.medium == Medium.IP:
                line.append("  point-to-point", "bold")
            line.append(f"   MTU {r.mtu}")
            if m.path_mtu is not None:
                line.append(f" · path MTU {m.path_mtu.mtu}", "bold yellow")
            addresses = Text(no_wrap=True, overflow="ellipsis", end="")
            # long IPv6 addresses: what fits (the next-hop panel shows the gateway and its MAC in full)
            for macs, gw, ours in ((True, True, True), (False, True, True), (False, False, True), (False, False, False)):
                addresses = Text(no_wrap=True, overflow="ellipsis", end="")
                self._addresses(addresses, r, macs=macs, gw=gw, ours=ours)
                if addresses.cell_len <= width:
                    break
            if r.warning:
                addresses.append(f"   ! {r.warning}", "yellow")
            addresses.truncate(width, overflow="ellipsis")
            lines.append(addresses)
        else:
            line.append(f" {r.iface}", "bold cyan")
            line.append(f" ({r.reason})", "dim")
            self._addresses(line, r)
            line.append(f"   MTU {r.mtu}")
            if m.path_mtu is not None:
                line.append(f" · path MTU {m.path_mtu.mtu}", "bold yellow")
            if r.warning:
                line.append(f"   ! {r.warning}", "yellow")
            if r.family_reason:
                line.append(f"   IPv{r.family}: {r.family_reason}", "dim")
        line.truncate(width, overflow="ellipsis")
        if m.tls is not None:
            lines.append(tls_line(m.tls, width))
        if self.cursor is not None:
            for part in self.cursor.split("\n"):
                part.truncate(width, overflow="ellipsis")
                lines.append(part)
        return Text("\n", no_wrap=True).join(lines)

    def _addresses(self, line: Text, r: Route, *, macs: bool = True, gw: bool = True, ours: bool = True) -> None:
        """`` us ADDR MAC  -> gw ADDR MAC  -> DST:PORT`` (no MACs on a point-to-point path; an IPv6
        destination in brackets before its port, as in a URL). Without ``macs``, the gateway (``gw``: the
        next-hop panel shows both) and ``ours`` (our address) when full-length IPv6 addresses do not fit."""
        m = self.model
        macs = macs and r.medium != Medium.IP
        if ours:
            line.append("   us ", "dim")
            line.append(f"{r.src_ip} {r.src_mac}" if macs else r.src_ip)
        if r.gateway and gw:
            line.append("  -> gw " if ours else "   gw ", "dim")
            line.append(f"{r.gateway} ")
            if macs:
                line.append(m.arp_mac or "?", "" if m.arp_mac else "yellow")
        elif not r.gateway and r.medium != Medium.IP:
            line.append("  (on-link) ", "dim")
        line.append("  -> ", "dim")
        port = f":{m.handshake.remote_port}" if m.handshake is not None else ""
        line.append(f"[{r.dst_ip}]" if port and ":" in r.dst_ip else r.dst_ip, "bold")
        line.append(port, "bold")


def two_route_lines(r: Route) -> bool:
    """IPv6 and point-to-point routes take two header lines: the family and why, then the addresses."""
    return r.family == 6 or r.medium == Medium.IP


def tls_line(tls: TlsInfo, width: int = 0) -> Text:
    """`` TLSv1.3 TLS_AES_256_GCM_SHA384 h2 · handshake 12.3 ms · cert CN=... issued by ... until ...``,
    with a red ``NOT VERIFIED`` first when the certificate was not verified."""
    line = Text(no_wrap=True, overflow="ellipsis", end="")
    if not tls.verified:  # first, so that no truncation hides it
        line.append(" NOT VERIFIED ", "bold white on red")
    line.append(f" {tls.version}", "bold green" if tls.verified else "bold")
    line.append(f" {tls.cipher}")
    if tls.alpn:
        line.append(f" {tls.alpn}", "dim")
    line.append(f" · handshake {tls.handshake_ms:.1f} ms", "dim")
    line.append(" · cert ", "dim")
    line.append(tls.subject or "?", "bold")
    line.append(" issued by ", "dim")
    line.append(tls.issuer or "?")
    line.append(" until ", "dim")
    line.append(tls.not_after or "?")
    if width:
        line.truncate(width, overflow="ellipsis")
    return line
