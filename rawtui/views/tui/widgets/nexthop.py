"""The next hop: how its link-layer address was found. ARP's who-has / is-at (IPv4), neighbor discovery's
solicitations, advertisements and reachability states (IPv6), or nothing to find on a point-to-point link
(tun, WireGuard, PPP: ``Route.medium`` is ``Medium.IP``)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from rawtui.events import Medium
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.widgets.base import ModelPanel

_KIND = {
    "request": ("->", "yellow"), "reply": ("<-", "bold green"), "ignored": ("x ", "dim"),
    "answered": ("->", "cyan"), "state": ("= ", "magenta"),
}


def resolver_name(model: ViewModel) -> str:
    """``ARP``, ``NDP`` or ``point-to-point``: what finds the next hop's address (the exchange seen, else
    what the route implies: its medium and family)."""
    r = model.route
    if r is not None and r.medium == Medium.IP:
        return "point-to-point"
    if model.resolver is not None:
        return model.resolver
    return "NDP" if r is not None and r.family == 6 else "ARP"


class NextHopPanel(ModelPanel):
    def titles(self) -> None:
        m = self.model
        name = resolver_name(m)
        if name == "point-to-point":
            self.set_titles("Next hop · point-to-point", "")
            return
        ndp = name == "NDP"
        n = m.arp_tries

        def asked(k: int) -> str:
            return f"{k} NS" if ndp else f"{k} try" if k == 1 else f"{k} tries"

        if m.arp_mac is not None:
            subtitle = asked(max(n, 1)) + (f" · RTT {m.arp_rtt_ms:.2f} ms" if m.arp_rtt_ms is not None else "")
        elif m.error is not None and n:
            subtitle = f"no {'NA' if ndp else 'reply'} after {asked(n)}"
        elif n:
            subtitle = f"waiting · {'NS' if ndp else 'try'} {n}"
        else:
            subtitle = ""
        if m.neighbor_state:  # NDP: the entry's reachability, RFC 4861's states
            subtitle = f"{subtitle} · {m.neighbor_state.upper()}" if subtitle else m.neighbor_state.upper()
        self.set_titles(f"Next hop · {name}", subtitle)

    def render(self) -> RenderableType:
        m = self.model
        r = m.route
        if r is None:
            return Text("waiting for the route...", "dim")
        rows: list[Text] = []
        height = max(1, self.content_size.height)
        if r.medium == Medium.IP:
            rows.append(Text.assemble(("via ", "dim"), (r.iface, "bold"), (" (a layer-3 interface)", "dim")))
            said = "point-to-point: no link-layer address"
            if len(said) <= self.content_size.width:
                rows.append(Text(said, "bold"))
            else:  # the panel's nowrap style would cut it: two lines
                rows += [Text("point-to-point:", "bold"), Text("no link-layer address", "bold")]
            rows.append(Text("frames begin with the IP header:", "dim"))
            rows.append(Text("no ARP, no neighbor discovery", "dim"))
            return Text("\n").join(rows[:height])
        role = "gateway" if r.gateway else "on-link destination"
        width = max(1, self.content_size.width)
        head = Text.assemble(("next hop ", "dim"), (r.next_hop, "bold"), (f" ({role})", "dim"))
        if head.cell_len > width:  # a long IPv6 address: on a line of its own, whole (folded if need be)
            rows.append(Text.assemble(("next hop ", "dim"), (f"({role})", "dim"), no_wrap=True, overflow="ellipsis"))
            for i in range(0, len(r.next_hop), width):
                rows.append(Text(r.next_hop[i:i + width], "bold"))
        else:
            rows.append(head)
        head_lines = len(rows)
        resolving = m.arp_mac is None and m.error is None and m.arp_tries > 0
        failed = m.error is not None and m.arp_mac is None and m.arp_tries > 0
        room = height - head_lines - (1 if resolving or failed else 0)
        lines = list(m.arp)[-room:] if room > 0 else []
        for ln in lines:
            arrow, style = _KIND.get(ln.kind, ("  ", ""))
            rows.append(Text.assemble((f"{ln.t:7.4f} ", "dim"), (arrow + " ", style), (ln.text, style),
                                      no_wrap=True, overflow="ellipsis"))
        if resolving:
            rows.append(Text("        .. no answer yet", "italic yellow"))
        elif failed:
            rows.append(Text(f"        no answer from {m.arp_target}", "bold red", no_wrap=True, overflow="ellipsis"))
        return Text("\n").join(rows[:height])
