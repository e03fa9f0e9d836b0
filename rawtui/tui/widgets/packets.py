"""The packet list: newest at the bottom, follow mode, a filter box; rows from the model's ring.

The model keeps the last 5,000 packets; the table lists the last ``cap`` (1,500) of them, adding at most
``append_max`` rows per redraw so that a flood of packets never stalls the screen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.widgets import DataTable, Input
from textual.widgets.data_table import RowKey

from rawtui.stack.events import Event

from ..describe import Predicate, direction, parse_filter, styled_summary
from ..messages import FollowChanged, PacketHighlighted, PacketSelected
from ..model import ViewModel

COLUMNS = (("No.", "no", 6), ("Time", "t", 7), ("", "dir", 2))
FIXED_W = sum(w + 2 for _, _, w in COLUMNS) + 2 + 1  # cell padding, Info's padding, the scrollbar


def gap_row(count: int) -> tuple[Text, Text, Text, Text]:
    """The row standing for ``count`` packets that came too fast to list (they are all counted)."""
    note = Text(f"... {count:,} packets not listed (too fast to read; all counted; p pauses)", "dim italic")
    return (Text("...", "dim"), Text(""), Text(""), note)


def make_row(no: int, ev: Event, short: bool = False) -> tuple[Text, Text, Text, Text]:
    d = direction(ev)
    arrow = Text("->", "bold") if d == "out" else Text("<-", "bold cyan")
    return (Text(str(no), "dim"), Text(f"{ev.t:.4f}"), arrow, styled_summary(ev, short=short))


class PacketTable(DataTable[Text]):
    """A DataTable that tells the app when the user moves away from the bottom (follow off).

    Every column has a fixed width and every row is one line, so there is nothing to measure when rows
    are added: :meth:`_update_dimensions` only sets the virtual size (DataTable measures every new cell,
    ~0.2 ms a row, which would cap the list at a few hundred rows a second).
    """

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        try:
            if any(col.auto_width for col in self.columns.values()):
                raise AttributeError("auto width")
            width = sum(col.get_render_width(self) for col in self.columns.values())
            header = self.header_height if self.show_header else 0
            self.virtual_size = Size(width + self._row_label_column_width, self._total_row_height + header)
        except AttributeError:  # a Textual without these internals, or auto-width columns: measure
            super()._update_dimensions(new_rows)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "user_up", "Up", show=False),
        Binding("pageup", "user_page_up", "Page up", show=False),
        Binding("home", "user_home", "Top", show=False),
    ]

    def _stop_following(self) -> None:
        self.post_message(FollowChanged(False))

    def action_user_up(self) -> None:
        self._stop_following()
        self.action_cursor_up()

    def action_user_page_up(self) -> None:
        self._stop_following()
        self.action_page_up()

    def action_user_home(self) -> None:
        self._stop_following()
        self.action_scroll_top()

    def _on_mouse_scroll_up(self, event: object) -> None:
        self._stop_following()

    async def _on_click(self, event: events.Click) -> None:
        """One click on a row shows its detail (DataTable alone wants a second click)."""
        before = self.cursor_row
        await super()._on_click(event)
        row = event.style.meta.get("row", -1)
        if isinstance(row, int) and row >= 0 and row != before:
            self._stop_following()
            self.action_select_cursor()

    def on_resize(self) -> None:
        if isinstance(self.parent, PacketList):
            self.parent.fit_info()


class PacketList(Vertical):
    """Filter input + table. ``sync`` appends the model's new packets in bulk (or rebuilds)."""

    DEFAULT_CSS = """
    PacketList > Input { height: 1; border: none; padding: 0 1; }
    PacketList > PacketTable { height: 1fr; }
    """

    def __init__(self, model: ViewModel, *, cap: int = 1500, append_max: int = 120, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self.cap = cap
        self.append_max = append_max
        self.short = False  # short summaries when the Info column is narrow
        self._shown: deque[tuple[Text, ...]] = deque(maxlen=cap)
        self.follow = True
        self.predicate: Predicate | None = None
        self.filter_text = ""
        self._last_no = 0  # the highest packet number looked at
        self.border_title = "Packets"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter:  retrans  arp  flags:R  in  out  drop  t>2  (? help)", id="filter")
        table = PacketTable(id="packet-table", cursor_type="row", zebra_stripes=False)
        yield table

    def on_mount(self) -> None:
        table = self.table
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.add_column("Info", key="info", width=self._info_width())

    @property
    def table(self) -> PacketTable:
        return self.query_one(PacketTable)

    def _info_width(self) -> int:
        return max(16, self.table.size.width - FIXED_W)

    def fit_info(self) -> None:
        """Give the Info column the rest of the table's width."""
        table = self.table
        width = self._info_width()
        for key, col in table.columns.items():
            if key == "info":
                col.width = width
                table._require_update_dimensions = True
                table.refresh()
        short = width < 44
        if short != self.short:
            self.short = short
            if self.is_mounted and table.row_count:
                self.rebuild()

    # -- syncing from the model ----------------------------------------------------------------------

    def sync(self) -> None:
        """Add the packets that arrived since the last call, in bulk.

        At most ``append_max`` rows a call: when more arrived (thousands a second), the older ones are
        replaced by one "not listed" row; they are all counted, and a filter or a pause lists them from
        the model's ring. Past ``cap + cap // 2`` rows the table is rebuilt with its last ``cap`` rows.
        """
        m = self.model
        if m.packet_count == self._last_no:
            return
        ring = m.packets
        first_no = ring[0][0] if ring else 0
        start = max(self._last_no + 1, first_no)
        skipped = start - (self._last_no + 1)
        new = [ring[i] for i in range(start - first_no, len(ring))]
        self._last_no = m.packet_count
        if self.predicate is not None:
            new = [p for p in new if self.predicate(p[1])]
        rows: list[tuple[Text, ...]] = []
        if len(new) > self.append_max:
            skipped += len(new) - self.append_max
            new = new[-self.append_max:]
        if skipped > 0:
            rows.append(gap_row(skipped))
        rows.extend(make_row(no, ev, self.short) for no, ev in new)
        if not rows:
            return
        self._shown.extend(rows)
        table = self.table
        if table.row_count + len(rows) > self.cap + self.cap // 2:
            table.clear()
            table.add_rows(self._shown)
        else:
            table.add_rows(rows)
        self._after_change()

    def rebuild(self) -> None:
        """Fill the table again from the model's ring (after the filter changed)."""
        m = self.model
        table = self.table
        keep = None if self.follow else self._number_at(table.cursor_row)
        table.clear()
        rows = [p for p in m.packets if self.predicate is None or self.predicate(p[1])][-self.cap:]
        self._last_no = m.packet_count
        self._shown.clear()
        self._shown.extend(make_row(no, ev, self.short) for no, ev in rows)
        table.add_rows(self._shown)
        if keep is not None:
            at = next((i for i, (no, _) in enumerate(rows) if no >= keep), len(rows) - 1)
            table.move_cursor(row=max(at, 0), animate=False)
        self._after_change()

    def _after_change(self) -> None:
        m = self.model
        table = self.table
        shown = table.row_count
        flt = f" · filter '{self.filter_text}': {shown:,} shown" if self.filter_text else ""
        self.border_title = f"Packets {m.packet_count:,}{flt}"
        self.border_subtitle = "follow" if self.follow else "follow off (f)"
        if self.follow and shown:
            table.move_cursor(row=shown - 1, animate=False)

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        self._after_change()

    # -- events --------------------------------------------------------------------------------------

    def _number_at(self, row_index: int) -> int | None:
        table = self.table
        if not 0 <= row_index < table.row_count:
            return None
        cell = table.get_row_at(row_index)[0]
        try:
            return int(str(cell))
        except ValueError:
            return None

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.predicate = parse_filter(self.filter_text)
        self.rebuild()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.table.focus()

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        no = self._number_at(event.cursor_row)
        if no is not None:
            self.post_message(PacketHighlighted(no))

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        no = self._number_at(event.cursor_row)
        if no is not None:
            self.post_message(PacketSelected(no))
