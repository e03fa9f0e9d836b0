"""The decoded layers of the chosen packet, as a tree."""

from __future__ import annotations

from textual.widgets import Tree

from rawtui.views.tui.describe import Node, detail_tree
from rawtui.views.tui.model import ViewModel


def fill_tree(tree: Tree[None], node: Node) -> None:
    tree.clear()
    tree.root.set_label(node.label)

    def add(parent, n: Node) -> None:  # type: ignore[no-untyped-def]
        if n.children:
            child = parent.add(n.label, expand=True)
            for c in n.children:
                add(child, c)
        else:
            parent.add_leaf(n.label)

    for c in node.children:
        add(tree.root, c)
    tree.root.expand()


class PacketDetail(Tree[None]):
    """Shows :func:`~rawtui.views.tui.describe.detail_tree` of one packet of the model's ring."""

    def __init__(self, model: ViewModel, **kw: object) -> None:
        super().__init__("select a packet", **kw)  # type: ignore[arg-type]
        self.model = model
        self.number: int | None = None
        self._shown: object = None
        self.border_title = "Detail"
        self.show_root = True

    def show(self, number: int) -> bool:
        """Show packet ``number``; False when it has left the ring."""
        ev = find_packet(self.model, number)
        if ev is None:
            return False
        if number == self.number and ev == self._shown:
            return True  # (the timeline cursor moved, the packet is the same)
        self.number, self._shown = number, ev
        fill_tree(self, detail_tree(number, ev, self.model))
        return True


def find_packet(model: ViewModel, number: int):  # type: ignore[no-untyped-def]
    ring = model.packets
    if not ring:
        return None
    i = number - ring[0][0]
    if 0 <= i < len(ring) and ring[i][0] == number:
        return ring[i][1]
    return None
