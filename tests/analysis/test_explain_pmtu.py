"""The ticker's line for a lowered path MTU (issue 14): IPv6's Packet Too Big and IPv4's fragmentation-needed."""

from __future__ import annotations

from rawtui.analysis.explain import Explainer
from rawtui.events import PathMtu


def test_packet_too_big_is_explained_with_its_numbers() -> None:
    ex = Explainer()
    (line,) = ex.feed(PathMtu(1.5, 1280, 1280, 1220, 1440, "icmpv6 packet too big"))
    assert line.topic == "path-mtu" and line.t == 1.5
    assert line.text.startswith("Path MTU: a router sent an ICMPv6 Packet Too Big: IPv6 routers never fragment")
    assert "packets of 1,280 bytes get through" in line.text
    assert "The MSS drops from 1,440 to 1,220 bytes (MTU 1,280 less 60 bytes of headers)" in line.text
    (again,) = ex.feed(PathMtu(2.0, 1280, 1280, 1200, 1220, "icmpv6 packet too big"))
    assert again.text == "2nd path MTU drop: path MTU 1,280, MSS 1,220 -> 1,200"


def test_fragmentation_needed_without_a_size() -> None:
    (line,) = Explainer().feed(PathMtu(0.2, 552, 0, 512, 1460, "icmp fragmentation needed"))
    assert "ICMP fragmentation-needed: the packet had Don't Fragment set" in line.text
    assert "no size said" in line.text and "from 1,460 to 512" in line.text
