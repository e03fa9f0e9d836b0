"""The progress line: a bar, bytes, percent, speed and ETA (from event times), or the final result."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from rawtui.views.tui.fmt import human_bytes, human_rate, human_s
from rawtui.views.tui.widgets.base import ModelPanel


class ProgressLine(ModelPanel):
    DEFAULT_CSS = """
    ProgressLine { height: 1; }
    """


    def render(self) -> RenderableType:
        m = self.model
        width = self.size.width
        if m.error is not None:
            t = Text.assemble(
                (" ERROR ", "bold white on red"), " ", (m.error.message, "bold red"),
                (f"   (exit code {m.error.exit_code})", "red"),
            )
            t.truncate(width, overflow="ellipsis")
            return t
        if m.done is not None:
            d = m.done
            speed = d.bytes / d.duration_s if d.duration_s > 0 else 0.0
            t = Text.assemble(
                (" DONE ", "bold black on green"), " ",
                (f"{human_bytes(d.bytes)} in {human_s(d.duration_s)}", "bold green"),
                f"  ({human_rate(speed)})   ",
                *((("saved to ", ""), (d.path, "bold")) if d.path else (("replayed from a capture", "dim"),)),
                "   sha256 ", (d.sha256[:16] + "...", "dim"),
            )
            t.truncate(width, overflow="ellipsis")
            return t
        total, got = m.total, m.received
        if m.progress is None and m.http is None:
            msg = m.infos[-1].message if m.infos else ""
            t = Text.assemble((" no data yet ", "reverse dim"), "  ", (msg, "dim"))
            t.truncate(width, overflow="ellipsis")
            return t
        frac = (got / total) if total else None
        eta = m.eta_s
        tail = Text()
        if frac is not None:
            tail.append(f" {frac * 100:5.1f} %", "bold")
        tail.append(f"   {human_bytes(got)}")
        if total:
            tail.append(f" of {human_bytes(total)}", "dim")
        if m.progress is not None and m.progress.file_bytes is not None:  # --compressed: the wire, then the file
            tail.append(f" on the wire · file {human_bytes(m.progress.file_bytes)}", "dim")
        tail.append(f"   {human_rate(m.speed_bps)}", "bold cyan")
        tail.append(f"   ETA {human_s(eta)} " if eta is not None else "   ETA - ")
        bar_w = max(0, width - tail.cell_len - 2)
        bar = Text(" ")
        if frac is None:
            bar.append("-" * bar_w, "dim")
        else:
            full = round(bar_w * min(frac, 1.0))
            bar.append("━" * full, "bold dodger_blue2")
            bar.append("━" * (bar_w - full), "grey30")
        return bar + tail
