"""Sans-IO protocol machines: they take bytes and a time, return frames, deadlines and events.

No sockets, clocks, threads or randomness: the caller (``rawtui.download.session`` live,
``rawtui.recording.pcap`` for a capture, the tests with a fake clock) feeds what arrived and the time,
and takes what to send (``take_segments`` / ``take_frames``), the events, and ``next_deadline``.
"""

from rawtui.api import lazy

__all__ = [
    "TRANSITIONS", "ArpResolver", "CongestionControl", "CongestionFactory", "Host", "Input", "NdpResolver", "Reno",
    "State", "TcpConnection", "next_state",
]
__getattr__ = lazy(__name__, {
    "ArpResolver": "arp", "CongestionControl": "congestion", "CongestionFactory": "congestion", "Reno": "congestion",
    "Host": "host", "NdpResolver": "ndp", "TcpConnection": "tcp", "TRANSITIONS": "tcp_states", "Input": "tcp_states",
    "State": "tcp_states", "next_state": "tcp_states",
})
