"""The ARP exchange: who-has requests and is-at replies with their times, tries and round trip."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from rawtui.views.tui.widgets.base import ModelPanel

_KIND = {"request": ("->", "yellow"), "reply": ("<-", "bold green"), "ignored": ("x ", "dim")}


class ArpPanel(ModelPanel):
    def titles(self) -> None:
        m = self.model
        if m.arp_mac is not None:
            tries = "try" if m.arp_tries == 1 else "tries"
            subtitle = f"{m.arp_tries} {tries} · RTT {m.arp_rtt_ms:.2f} ms"
        elif m.error is not None and m.arp_tries:
            subtitle = f"no reply after {m.arp_tries} tries"
        elif m.arp_tries:
            subtitle = f"waiting · try {m.arp_tries}"
        else:
            subtitle = ""
        self.set_titles("ARP", subtitle)

    def render(self) -> RenderableType:
        m = self.model
        r = m.route
        if r is None:
            return Text("waiting for the route...", "dim")
        rows: list[Text] = []
        role = "gateway" if r.gateway else "on-link destination"
        rows.append(Text.assemble(("next hop ", "dim"), (r.next_hop, "bold"), (f" ({role})", "dim")))
        resolving = m.arp_mac is None and m.error is None and m.arp_tries > 0
        failed = m.error is not None and m.arp_mac is None and m.arp_tries > 0
        height = max(1, self.content_size.height)
        room = height - 1 - (1 if resolving or failed else 0)
        lines = list(m.arp)[-room:] if room > 0 else []
        for ln in lines:
            arrow, style = _KIND.get(ln.kind, ("  ", ""))
            rows.append(Text.assemble((f"{ln.t:7.4f} ", "dim"), (arrow + " ", style), (ln.text, style)))
        if resolving:
            rows.append(Text("        .. no answer yet", "italic yellow"))
        elif failed:
            rows.append(Text(f"        no answer from {m.arp_target}", "bold red"))
        return Text("\n").join(rows[:height])
