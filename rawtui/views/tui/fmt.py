"""Number formatting shared by the panels: bytes, rates, times."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """SI units, three significant digits: ``950 B``, ``14.6 kB``, ``2.70 MB``."""
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            v = n / scale
            return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n:.0f} B"


def human_rate(bytes_per_s: float) -> str:
    """Bits per second, as network people say it: ``4.61 Mbit/s``."""
    bits = bytes_per_s * 8
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits >= scale:
            v = bits / scale
            return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{bits:.0f} bit/s"


def human_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def human_s(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    return f"{m}:{sec:02d} min" if m < 60 else f"{m // 60}:{m % 60:02d} h"
