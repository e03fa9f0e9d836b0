"""Screens over the main view: help, the final summary, an error, and a packet's detail (small terminals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, Tree

from rawtui.events import Done, Error
from rawtui.views.resent import resent_text, witnesses_text
from rawtui.views.tui.describe import FILTER_HELP, Node
from rawtui.views.tui.fmt import human_bytes, human_rate, human_s
from rawtui.views.tui.widgets.detail import fill_tree

HELP = f"""\
[b]Keys[/b]
  [b]q[/b]      quit: stop the download cleanly, wait for it, exit with its code
  [b]p[/b]      pause the display (the download goes on, events are still counted)
  [b]f[/b]      follow the newest packet (moving up in the list turns it off)
  [b]/[/b]      filter the packet list            [b]Enter[/b] / click  a packet's decoded layers
  [b]s[/b]      save a pcap                        [b]e[/b]  save the events (NDJSON)
  [b]?[/b]      this help                          [b]esc[/b]  close a dialog or the detail pane
  [b]l L d D r R b[/b]  lab only (rawtui demo): loss -/+1 %, delay -/+10 ms, rate /2 x2, blackout 3 s

[b]Timeline cursor[/b] (paused, or once the session ended; every panel shows the state at the cursor)
  [b]← →[/b]  one event back / on      [b][ ][/b]  previous / next notable event (loss, retransmission, RTO...)
  [b]Home End[/b]  first / last event   [b]space[/b]  play from the cursor   [b]< >[/b]  speed /2 x2 (1/16 to 64; replays too)
  [b]z[/b]    zoom the graphs around the cursor          [b]esc[/b] or [b]p[/b]  back to the live view

[b]Filter[/b]  space-separated terms, all must match, [b]![/b] negates one:
  {FILTER_HELP}
  [dim]retrans: our retransmissions and the server's resent data · drop: checksum drops, malformed[/dim]

[b]Panels[/b]
  Next hop     ARP (who-has, is-at) or neighbor discovery (NS, NA, the entry's state); none point-to-point
  Connection   the TCP ladder: handshake, request, response, data, close; negotiated options
  Counters     what the stack counted: losses, reordering, drops, RTT estimates
  Graphs       sequence/time (tcptrace style: data, ACK line, window line, [red]x[/red] resent,
               out of order), cwnd and the server's flight, advertised windows, throughput
               (lab: [b]true[/b] = the server's real cwnd, from its TCP_INFO; est. = the flight estimate)
  Times are seconds since the session started.

[dim]esc / ? / enter to close[/dim]"""


class _Dialog(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_dialog", "Close"),
        Binding("q", "app.quit", "Quit"),
    ]

    def action_dismiss_dialog(self) -> None:
        self.dismiss(None)


class HelpScreen(_Dialog):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,enter", "dismiss_dialog", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="help"):
            yield Static(HELP, id="help-text")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "rawtui help"


class SummaryScreen(_Dialog):
    """The download finished: what, how fast, and what went wrong on the way."""

    def __init__(self, done: Done, counters: dict[str, int], saw: Sequence[str] = (),
                 witnesses: tuple[int, int | None, int | None] | None = None) -> None:
        super().__init__()
        self.done = done
        self.counters = counters
        self.saw = list(saw)  # the lab scenario's "what you saw" (ViewModel.what_you_saw)
        self.witnesses = witnesses  # ViewModel.witnesses(); None: asked of the app's model when shown

    def _witnesses_text(self) -> str | None:
        w = self.witnesses
        if w is None:
            model = getattr(self.app, "model", None)
            if model is None or not hasattr(model, "witnesses"):
                return None
            w = model.witnesses()
        # the session's own count, which the stream's events add up to
        return witnesses_text(self.done.counters.get("peer_retrans", w[0]), w[1], w[2], short=True)

    def compose(self) -> ComposeResult:
        d = self.done
        speed = d.bytes / d.duration_s if d.duration_s > 0 else 0.0
        t = Table.grid(padding=(0, 2))
        t.add_column(style="dim", no_wrap=True)
        t.add_column(no_wrap=True, overflow="ellipsis")
        t.add_row("received", Text.assemble(
            (human_bytes(d.bytes), "bold green"), f" ({d.bytes:,} bytes) in ", (human_s(d.duration_s), "bold"),
            f", {human_rate(speed)} on average"))
        t.add_row("saved to", Text(d.path, "bold") if d.path else Text("- (a capture, replayed)", "dim"))
        t.add_row("sha256", d.sha256)
        c = self.counters
        t.add_row("resent", Text(resent_text(d.counters, network=False), "bold yellow"))
        witnesses = self._witnesses_text()
        if witnesses:
            t.add_row("witnesses", Text(witnesses, "bold"))
        t.add_row("trouble", Text.assemble(
            f"retransmitted by us {c.get('retransmits', 0)}  ·  dup data {c.get('dup_data', 0)}"))
        t.add_row("", f"arrived above a hole {c.get('out_of_order', 0)}  ·  dup ACKs sent {c.get('dup_acks_sent', 0)}")
        icmp = f"  ·  ICMP {c['checksum_icmp']}" if c.get("checksum_icmp") else ""
        t.add_row("", f"checksum drops IPv4 {c.get('checksum_ipv4', 0)}  ·  TCP {c.get('checksum_tcp', 0)}{icmp}"
                  f"  ·  malformed {c.get('malformed', 0)}")
        with Vertical(id="dialog", classes="summary"):
            yield Static(t)
            if self.saw:
                yield Static(Text.assemble(("What you saw", "bold"), *(f"\n • {line}" for line in self.saw)),
                             id="what-you-saw")
            yield Static(Text("q quit · esc back to the view (the summary stays in the progress line)", "dim"),
                         classes="hint")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Download complete"


class ErrorScreen(_Dialog):
    def __init__(self, error: Error) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        e = self.error
        with Vertical(id="dialog", classes="error"):
            yield Static(Text(e.message, "bold"), id="error-message")
            yield Static(Text(f"at t={e.t:.3f} s · exit code {e.exit_code}", "dim"))
            yield Static(Text(f"q quit (exit code {e.exit_code}) · esc back to the view", "dim"), classes="hint")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Error"


class DetailScreen(_Dialog):
    """A packet's decoded layers, for terminals too small for the detail pane."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "dismiss_dialog", "Close", show=False)]

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="detail"):
            yield Tree("packet", id="detail-tree")

    def on_mount(self) -> None:
        tree: Tree[None] = self.query_one("#detail-tree", Tree)
        fill_tree(tree, self.node)
        self.query_one("#dialog").border_title = "Packet detail (esc)"
        tree.focus()
