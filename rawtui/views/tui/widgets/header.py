"""The two header lines: the URL and where the session is; the interface, addresses and why."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.reactive import reactive

from rawtui.events import TlsInfo
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
    """Line 1: title/URL, phase, TCP state and event time. Line 2: the route. Line 3 (HTTPS only): what
    TLS negotiated and who the certificate says the server is."""

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
        self.refresh()


    def sync(self) -> None:
        self.set_class(self.model.tls is not None, "-tls")
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
        if r is None:
            line.append(" waiting for the route...", "dim")
        else:
            line.append(f" {r.iface}", "bold cyan")
            line.append(f" ({r.reason})", "dim")
            line.append("   us ", "dim")
            line.append(f"{r.src_ip} {r.src_mac}")
            if r.gateway:
                line.append("  -> gw ", "dim")
                line.append(f"{r.gateway} ")
                line.append(m.arp_mac or "?", "" if m.arp_mac else "yellow")
            else:
                line.append("  (on-link) ", "dim")
            line.append("  -> ", "dim")
            line.append(r.dst_ip, "bold")
            if m.handshake is not None:
                line.append(f":{m.handshake.remote_port}", "bold")
            line.append(f"   MTU {r.mtu}")
            if r.warning:
                line.append(f"   ! {r.warning}", "yellow")
        line.truncate(width, overflow="ellipsis")
        lines = [top, line]
        if m.tls is not None:
            lines.append(tls_line(m.tls, width))
        if self.cursor is not None:
            for part in self.cursor.split("\n"):
                part.truncate(width, overflow="ellipsis")
                lines.append(part)
        return Text("\n", no_wrap=True).join(lines)


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
