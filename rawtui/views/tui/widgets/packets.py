"""The packet list: newest at the bottom, follow mode, a filter box; a virtual table over the model's ring.

:class:`PacketTable` is a Line-API widget: it holds references to the model's packets (``(number,
event)``, no rendering), and draws only the rows on screen, each built once and cached. Adding a
thousand packets costs a ``deque.extend``; a redraw costs the dozen visible lines. (A DataTable
measures and renders every cell it is given: ~50 us a row to add and ~3 ms a line to draw, which took
the GIL from the stack thread while a download ran.)

:class:`PacketList` feeds it from the model's ring (the last 5,000 packets), through the filter. When the
ring moved on by more than it holds between two redraws, one "not listed" row stands for the packets that
came and went unseen (they are all counted).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input

from rawtui.events import Event
from rawtui.views.tui.describe import Predicate, direction, parse_filter, styled_summary
from rawtui.views.tui.messages import FollowChanged, PacketHighlighted, PacketSelected
from rawtui.views.tui.model import ViewModel

#: One row of the list: ``(packet number, event)``, or ``(0, count)`` for ``count`` packets not listed.
Item = tuple[int, "Event | int"]

COLUMNS = (("No.", 6), ("Time", 7), ("", 2))  # then Info, the rest of the width
CELL_PAD = 1  # blank cells either side of each column
FIXED_W = sum(w + 2 * CELL_PAD for _, w in COLUMNS) + 2 * CELL_PAD
SHORT_BELOW = 44  # Info narrower than this: short summaries


def gap_row(count: int) -> tuple[Text, Text, Text, Text]:
    """The row standing for ``count`` packets that came and went too fast to list (all counted)."""
    note = Text(f"... {count:,} packets not listed (too fast to read; all counted; p pauses)", "dim italic")
    return (Text("...", "dim"), Text(""), Text(""), note)


def make_row(no: int, ev: Event, short: bool = False, out_shift: int = 0) -> tuple[Text, Text, Text, Text]:
    d = direction(ev)
    arrow = Text("->", "bold") if d == "out" else Text("<-", "bold cyan")
    return (Text(str(no), "dim"), Text(f"{ev.t:.4f}"), arrow, styled_summary(ev, short=short, out_shift=out_shift))


def item_cells(item: Item, short: bool = False, out_shift: int = 0) -> tuple[Text, Text, Text, Text]:
    no, ev = item
    if no == 0:
        assert isinstance(ev, int)
        return gap_row(ev)
    assert not isinstance(ev, int)
    return make_row(no, ev, short, out_shift)


class PacketTable(ScrollView, can_focus=True):
    """The rows of the packet list, drawn on demand; a header line; a row cursor.

    DataTable-like where the app and tests need it (``row_count``, ``cursor_row``, ``move_cursor``,
    ``get_row_at``). Posts :class:`PacketHighlighted` when the cursor lands on another packet and
    :class:`PacketSelected` on Enter or a click. Moving up (keys or wheel) turns follow mode off.
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"packet-table--header", "packet-table--cursor"}

    DEFAULT_CSS = """
    PacketTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        & > .packet-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .packet-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus {
            background-tint: $foreground 5%;
            & > .packet-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "user_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "user_page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "user_home", "Top", show=False),
        Binding("end", "end", "Bottom", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    STRIP_CACHE = 2000  # rendered rows kept (cleared when full; only visible rows are ever rendered)

    def __init__(self, *, cap: int = 5000, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.cap = cap
        self.items: deque[Item] = deque(maxlen=cap)
        self.cursor_row = 0
        self.short = False
        self.out_shift = 0  # our window scale, for the windows of the segments we sent
        self._strips: dict[tuple[int, int, int, bool], Strip] = {}  # (number, gap count, width, short)
        self._header: tuple[tuple[object, ...], Strip] | None = None
        self._styles: tuple[tuple[object, ...], Style, Style] | None = None  # (key, base, cursor)
        self._highlighted: int | None = None
        # Follow mode: the view shows the newest rows whatever scroll_y says, so that new rows never
        # scroll the widget (a scroll makes Textual recomposite the whole screen: ~20 ms a redraw).
        self.anchored = True

    # -- contents ----------------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self.items)

    def get_row_at(self, index: int) -> tuple[Text, Text, Text, Text]:
        """The cells of row ``index``: number, time, direction, summary."""
        return item_cells(self.items[index], self.short, self.out_shift)

    def number_at(self, index: int) -> int | None:
        """The packet number of row ``index`` (None for a "not listed" row or no such row)."""
        if 0 <= index < len(self.items):
            return self.items[index][0] or None
        return None

    def set_out_shift(self, shift: int) -> None:
        if shift != self.out_shift:
            self.out_shift = shift
            self._strips.clear()
            self.refresh()

    def set_items(self, items: Iterable[Item], *, keep: int | None = None) -> None:
        """Replace the rows; the cursor goes to packet ``keep`` (or the next one listed), else the end."""
        self.items = deque(items, maxlen=self.cap)
        at = len(self.items) - 1
        if keep is not None:
            at = next((i for i, (no, _) in enumerate(self.items) if no >= keep), at)
        self._resized()
        self.move_cursor(row=at)

    def add_items(self, items: list[Item]) -> None:
        """Append rows; the oldest fall off past ``cap`` (the cursor and the view stay on their rows)."""
        dropped = max(0, len(self.items) + len(items) - self.cap)
        self.items.extend(items)
        if dropped:
            self.cursor_row = max(0, self.cursor_row - dropped)
            if self.scroll_y and not self.anchored:
                self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True, force=True)
        self._resized()
        self.refresh()

    def clear(self) -> None:
        self.set_items(())

    def _resized(self) -> None:
        size = Size(self.scrollable_content_region.width, len(self.items) + 1)  # + the header
        old = self.virtual_size
        if size == old:
            return
        page = self.scrollable_content_region.height
        if size.width != old.width or (size.height > page) != (old.height > page) or not self.show_vertical_scrollbar:
            self.virtual_size = size  # the scrollbar comes or goes: a layout
            self.call_after_refresh(self._sync_scrollbar)
            return
        # Only more rows: a layout of the whole screen for that would cost ~25 ms a redraw while packets
        # flood in. The table's region is unchanged; tell the scrollbar, and draw.
        self.set_reactive(PacketTable.virtual_size, size)
        bar = self.vertical_scrollbar
        bar.window_virtual_size = size.height
        bar.position = self.top

    @property
    def top(self) -> int:
        """The index of the first row on screen."""
        if self.anchored:
            return max(0, len(self.items) - self._page)
        return round(self.scroll_y)

    def set_anchored(self, anchored: bool) -> None:
        """Follow mode on or off. Off, scroll_y takes over from where the view is."""
        if anchored == self.anchored:
            return
        top = self.top
        self.anchored = anchored
        self.scroll_to(y=top if not anchored else self.max_scroll_y, animate=False, immediate=True, force=True)
        self.call_after_refresh(self._sync_scrollbar)
        self.refresh()

    # -- the cursor --------------------------------------------------------------------------------

    @property
    def _page(self) -> int:
        """Rows visible under the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        n = len(self.items)
        self.cursor_row = max(0, min(row, n - 1))
        if scroll and n and not self.anchored:
            # force: right after rows were added the scrollbar may not be shown yet (no layout since),
            # and Textual would refuse to scroll
            top = round(self.scroll_y)
            if self.cursor_row < top:
                self.scroll_to(y=self.cursor_row, animate=animate, immediate=True, force=True)
                self.call_after_refresh(self._sync_scrollbar)
            elif self.cursor_row >= top + self._page:
                self.scroll_to(y=self.cursor_row - self._page + 1, animate=animate, immediate=True, force=True)
                self.call_after_refresh(self._sync_scrollbar)
        self.refresh()
        no = self.number_at(self.cursor_row)
        if no is not None and no != self._highlighted:
            self._highlighted = no
            self.post_message(PacketHighlighted(no))

    def _sync_scrollbar(self) -> None:
        """Textual moves the scrollbar's thumb only when the scroll changes while the bar is shown: after
        rows were added the bar may have appeared later, its thumb still at the top."""
        if self.show_vertical_scrollbar and self.vertical_scrollbar.position != self.top:
            self.vertical_scrollbar.position = self.top

    def _stop_following(self) -> None:
        if isinstance(self.parent, PacketList):
            self.parent.set_follow(False)
        self.post_message(FollowChanged(False))

    def action_user_up(self) -> None:
        self._stop_following()
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_user_page_up(self) -> None:
        self._stop_following()
        self.move_cursor(row=self.cursor_row - self._page)

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page)

    def action_user_home(self) -> None:
        self._stop_following()
        self.move_cursor(row=0)

    def action_end(self) -> None:
        self.move_cursor(row=len(self.items) - 1)

    def action_select(self) -> None:
        no = self.number_at(self.cursor_row)
        if no is not None:
            self.post_message(PacketSelected(no))

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._stop_following()

    async def _on_click(self, event: events.Click) -> None:
        """A click on a row selects it (and shows its detail)."""
        row = self.top + event.y - 1
        if event.y >= 1 and 0 <= row < len(self.items):
            self._stop_following()
            self.move_cursor(row=row)
            self.action_select()

    # -- drawing -----------------------------------------------------------------------------------

    def on_resize(self) -> None:
        short = self.info_width < SHORT_BELOW
        if short != self.short:
            self.short = short
            self._strips.clear()
        self._header = None
        self._resized()
        if isinstance(self.parent, PacketList) and self.parent.follow:
            self.move_cursor(row=len(self.items) - 1)

    @property
    def info_width(self) -> int:
        return max(8, self.scrollable_content_region.width - FIXED_W)

    def _line(self, cells: tuple[Text, ...], width: int) -> Strip:
        line = Text(no_wrap=True, end="")
        pad = " " * CELL_PAD
        for cell, (_, w) in zip(cells, (*COLUMNS, ("", self.info_width)), strict=True):
            cell.truncate(w, overflow="ellipsis", pad=True)
            line.append(pad)
            line.append_text(cell)
            line.append(pad)
        return Strip(line.render(self.app.console)).crop_extend(0, width, None)

    def _row_styles(self) -> tuple[tuple[object, ...], Style, Style]:
        """The base and cursor styles (computing them is not free: once per focus / theme change)."""
        key = (self.has_focus, self.app.theme)
        if self._styles is None or self._styles[0] != key:
            base = self.rich_style
            self._styles = (key, base, base + self.get_component_rich_style("packet-table--cursor"))
        return self._styles

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        key, base, cursor = self._row_styles()
        if y == 0:
            hkey = (width, *key)
            if self._header is None or self._header[0] != hkey:
                cells = tuple(Text(label) for label, _ in (*COLUMNS, ("Info", 0)))
                style = base + self.get_component_rich_style("packet-table--header")
                self._header = (hkey, self._line(cells, width).apply_style(style))
            return self._header[1]
        index = self.top + y - 1
        items = self.items
        if not 0 <= index < len(items):
            return Strip.blank(width, base)
        item = items[index]
        no, ev = item
        skey = (no, ev if isinstance(ev, int) else 0, width, self.short)
        strip = self._strips.get(skey)
        if strip is None:
            if len(self._strips) >= self.STRIP_CACHE:
                self._strips.clear()
            strip = self._strips[skey] = self._line(item_cells(item, self.short, self.out_shift), width)
        return strip.apply_style(cursor if index == self.cursor_row else base).apply_offsets(0, index)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header = None
        self._styles = None


class PacketList(Vertical):
    """Filter input + table. ``sync`` hands the table the model's new packets (or rebuilds)."""

    DEFAULT_CSS = """
    PacketList > Input { height: 1; border: none; padding: 0 1; }
    PacketList > PacketTable { height: 1fr; }
    """

    def __init__(self, model: ViewModel, *, cap: int = 5000, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self.cap = cap
        self.follow = True
        self.predicate: Predicate | None = None
        self.filter_text = ""
        self._last_no = 0  # the highest packet number looked at
        self._titles = ("Packets", "")
        self.border_title = "Packets"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="/ filter:  retrans  arp  flags:R  in  out  drop  t>2  (? help)", id="filter")
        yield PacketTable(cap=self.cap, id="packet-table")

    @property
    def table(self) -> PacketTable:
        return self.query_one(PacketTable)

    # -- syncing from the model ----------------------------------------------------------------------

    def sync(self) -> None:
        """Hand the table the packets that arrived since the last call."""
        m = self.model
        if m.packet_count == self._last_no:
            return
        self.table.set_out_shift(m.out_shift)
        ring = m.packets
        first_no = ring[0][0] if ring else 0
        start = max(self._last_no + 1, first_no)
        skipped = start - (self._last_no + 1)
        count = m.packet_count - start + 1
        arrived = list(islice(reversed(ring), count))[::-1] if count > 0 else []
        self._last_no = m.packet_count
        pred = self.predicate
        new: list[Item] = [p for p in arrived if pred is None or pred(p[1])]
        if skipped > 0:
            room = self.table.cap - 1  # the "not listed" row must not push itself out
            if len(new) > room:
                skipped += len(new) - room
                new = new[len(new) - room:]
            new.insert(0, (0, skipped))
        if new:
            self.table.add_items(new)
        self._after_change()

    def rebuild(self) -> None:
        """List the model's ring again (after the filter changed)."""
        m = self.model
        table = self.table
        keep = None if self.follow else table.number_at(table.cursor_row)
        self._last_no = m.packet_count
        pred = self.predicate
        table.set_items((p for p in m.packets if pred is None or pred(p[1])), keep=keep)
        self._after_change()

    @property
    def listed(self) -> int:
        """Rows in the list."""
        return self.table.row_count

    def _after_change(self) -> None:
        m = self.model
        table = self.table
        flt = f" · filter '{self.filter_text}': {self.listed:,} shown" if self.filter_text else ""
        title = f"Packets {m.packet_count:,}{flt}"
        subtitle = "follow" if self.follow else "follow off (f)"
        if title != self._titles[0] or subtitle != self._titles[1]:  # setting a title redraws the border
            self._titles = (title, subtitle)
            self.border_title, self.border_subtitle = title, subtitle
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def set_follow(self, follow: bool) -> None:
        self.follow = follow
        self.table.set_anchored(follow)
        self._after_change()

    # -- events --------------------------------------------------------------------------------------

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.predicate = parse_filter(self.filter_text)
        self.rebuild()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.table.focus()

