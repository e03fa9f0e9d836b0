"""The server's retransmissions in words, and the lab's three witnesses of them: one rule for every view.

rawtui counts what reached it (the TCP machine's ``peer_retrans*`` counters, classified: see
:mod:`rawtui.stack.tcp`); in the lab the server's own TCP_INFO (``retrans_total``) and the router's
drop counters on the way down (``lost``, ``blackout_drops``, ``queue_drops``, ``corrupted``: each a frame
the server had to send again) witness the same thing from the other two places.
"""

from __future__ import annotations

from collections.abc import Mapping

from rawtui.stack.events import RetransmitKind

KINDS = tuple(k.value for k in RetransmitKind)  # in the order shown


def resent_text(counters: Mapping[str, int], network: bool = True) -> str:
    """``server resent 84 (fast 80, timeout 2, tlp 1, spurious 1)``, plus (``network``) what the network
    did itself: copies and late arrivals, not resent by the server."""
    kinds = ", ".join(f"{k} {counters.get('peer_retrans_' + k, 0)}" for k in KINDS)
    text = f"server resent {counters.get('peer_retrans', 0)} ({kinds})"
    copies, late = counters.get("network_copies", 0), counters.get("network_late", 0)
    if network and (copies or late):
        text += f"  ·  not resent: network copies {copies}, arrived late {late}"
    return text


def witnesses_text(ours: int, server: int | None, router: int | None, short: bool = False) -> str | None:
    """``rawtui saw 84 server retransmissions · server TCP_INFO 84 · router dropped 84`` (``short``:
    ``rawtui saw 84 · ...``); None outside the lab (no other witness)."""
    if server is None and router is None:
        return None
    parts = [f"rawtui saw {ours}" + ("" if short else " server retransmissions")]
    if server is not None:
        parts.append(f"server TCP_INFO {server}")
    if router is not None:
        parts.append(f"router dropped {router}")
    return " · ".join(parts)
