"""The connection ladder: SYN, SYN-ACK, ACK, the request, the response, data, FIN/RST, with times."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from rawtui.views.tui.model import LadderStep
from rawtui.views.tui.widgets.base import ModelPanel

TIME_W = 8  # "12.3456 "


def _arrow(step: LadderStep, width: int) -> Text:
    """An arrow ``width`` cells wide between the client (left) and server (right) lines."""
    inner = max(4, width - 2)
    data = step.style == "data"
    line = "═" if data else "─"
    label = f" {step.label} " if not data else f" data x{step.count:,} "
    label = label[: max(0, inner - 3)]
    free = inner - len(label) - 1
    left = free // 2
    right = free - left
    style = ("bold dodger_blue1" if data else "bold yellow" if step.style == "resent"
             else (step.style or ("bold" if step.direction == "out" else "bold cyan")))
    t = Text("│", "dim")
    if step.direction == "out":
        t.append(line * left + label + line * right + "▶", style)
    else:
        t.append("◀" + line * left + label + line * right, style)
    t.append("│", "dim")
    return t


def _fit(steps: list[LadderStep], room: int) -> list[LadderStep | None]:
    """The steps that fit in ``room`` rows: the first and the last ones, and always the data and the
    server's retransmissions (the transfer itself); None where steps are left out (a "⋮" row)."""
    if len(steps) <= room:
        return list(steps)
    pinned = [i for i, s in enumerate(steps) if s.style in ("data", "resent")]
    budget = max(2, room - 2 - len(pinned))  # two rows for gaps
    k = max(1, budget // 2)
    keep = set(range(k)) | set(pinned) | set(range(len(steps) - (budget - k), len(steps)))
    shown: list[LadderStep | None] = []
    for i, s in enumerate(steps):
        if i in keep:
            shown.append(s)
        elif shown and shown[-1] is not None:
            shown.append(None)
    return shown[:room] if len(shown) > room else shown


class LadderPanel(ModelPanel):
    def titles(self) -> None:
        m = self.model
        hs = m.handshake
        attempt = f" · attempt {m.retries[-1].attempt}/{m.retries[-1].attempts}" if m.retries else ""
        if m.path_mtu is not None:  # a Packet Too Big / fragmentation-needed came (the options line: the MSS)
            rtt = f"RTT {hs.rtt_ms:.1f} ms · " if hs else ""
            subtitle = f"{rtt}path MTU {m.path_mtu.mtu}"
        else:
            subtitle = f"handshake RTT {hs.rtt_ms:.1f} ms" if hs else ""
        self.set_titles(f"Connection · {m.tcp_state}{attempt}", subtitle)

    def render(self) -> RenderableType:
        m = self.model
        width = max(20, self.content_size.width)
        height = max(3, self.content_size.height)
        diagram_w = width - TIME_W
        head = Text(" " * (TIME_W - 3) + "client", "bold")
        head.append(" " * max(1, diagram_w - 9) + "server", "bold")
        rows: list[Text] = [head]
        room = height - 2
        steps = m.ladder
        if not steps:
            body = [Text(" " * TIME_W) + Text("│", "dim") + Text(" " * (diagram_w - 2)) + Text("│", "dim")]
        else:
            shown = _fit(steps, room)
            body = []
            for st in shown:
                if st is None:
                    body.append(Text(" " * TIME_W + "⋮" + " " * (diagram_w - 2) + "⋮", "dim"))
                else:
                    body.append(Text(f"{st.t:7.4f} ", "dim") + _arrow(st, diagram_w))
        rows.extend(body)
        while len(rows) < height - 1:
            rows.append(Text(" " * TIME_W) + Text("│", "dim") + Text(" " * (diagram_w - 2)) + Text("│", "dim"))
        rows.append(self._options())
        return Text("\n", no_wrap=True, overflow="ellipsis").join(rows[:height])

    def _options(self) -> Text:
        hs = self.model.handshake
        if hs is None:
            return Text(" options: not negotiated yet", "dim")

        def yes(flag: bool) -> tuple[str, str]:
            return ("✓", "bold green") if flag else ("✗", "red")

        ws = f"{hs.wscale if hs.wscale is not None else '-'}/{hs.peer_wscale if hs.peer_wscale is not None else '-'}"
        pmtu = self.model.path_mtu
        if pmtu is not None:  # a Packet Too Big / fragmentation-needed lowered it: what it is now, and why
            mss: tuple[Text | str | tuple[str, str], ...] = (
                "MSS ", (str(hs.mss), "bold"), " → ", (str(pmtu.mss), "bold yellow"))
        else:
            mss = ("MSS ", (str(hs.mss), "bold"))
        return Text.assemble(
            *mss, " · ws ", (ws, "bold"),
            " · SACK ", yes(hs.sack), " · TS ", yes(hs.timestamps), overflow="ellipsis", no_wrap=True,
        )
