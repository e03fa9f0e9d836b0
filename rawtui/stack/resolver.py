"""What every next-hop resolver is, sans-IO: :class:`~rawtui.stack.arp.ArpResolver` (IPv4) and
:class:`~rawtui.stack.ndp.NdpResolver` (IPv6) share this state, their output queues and the calls
:class:`~rawtui.stack.host.Host` makes, so the host drives either without asking which."""

from __future__ import annotations

from rawtui.stack.events import Event


class Resolver:
    """One next hop's link-layer address: asked ``retries`` times, ``interval`` seconds apart."""

    def __init__(self, local_mac: bytes, local_ip: bytes, target_ip: bytes, retries: int, interval: float) -> None:
        self.local_mac = local_mac
        self.local_ip = local_ip
        self.target_ip = target_ip
        self.retries = retries
        self.interval = interval
        self.mac: bytes | None = None
        self.failed = False
        self.attempts = 0
        self._sent_at = 0.0
        self._deadline: float | None = None
        self._frames: list[bytes] = []
        self._events: list[Event] = []

    @property
    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def done(self) -> bool:
        """A MAC to send to, or given up: what the host waits for before connecting."""
        return self.mac is not None or self.failed

    # -- what the host calls (each resolver says what they mean for it) ----------------------------

    def start(self, now: float) -> None:
        raise NotImplementedError

    def on_timer(self, now: float) -> None:
        raise NotImplementedError

    def cached(self, mac: bytes, now: float) -> None:
        """The next hop's MAC is already known (an earlier connection's answer): nothing to ask."""
        raise NotImplementedError

    def used(self, now: float) -> None:
        """We sent through the entry."""
        raise NotImplementedError

    def confirm(self, now: float) -> None:
        """The connection made progress: the next hop is reachable."""
        raise NotImplementedError

    def failure_message(self, iface: str = "", role: str = "next hop") -> str:
        raise NotImplementedError

    # -- output -------------------------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        """Frames or events are waiting for :meth:`take_frames` / :meth:`take_events`."""
        return bool(self._frames or self._events)

    def take_frames(self) -> list[bytes]:
        out, self._frames = self._frames, []
        return out

    def take_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out
