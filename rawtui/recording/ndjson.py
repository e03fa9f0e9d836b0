"""Replay rawtui's own ``--events`` log (NDJSON: one event object per line)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rawtui.errors import UsageError
from rawtui.events import (
    Event,
    from_dict,
)
from rawtui.recording.replay import Replay


class NdjsonReplay(Replay):
    """Replays an NDJSON events file (maybe gzip-compressed): one :func:`~rawtui.events.to_dict` object per
    line.

    Blank lines and lines starting with ``#`` are skipped. A line that is not a known event raises
    :class:`~rawtui.errors.UsageError` naming the file and line.
    """

    def __init__(self, path: str | Path, *, speed: float | None = 1.0, hold: bool = False) -> None:
        super().__init__(speed=speed, hold=hold)
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"cannot read the recording {self.path}: no such file")

    def events(self) -> Iterator[Event]:
        lineno = 0
        try:
            with _open_text(self.path) as f:
                for lineno, line in enumerate(f, 1):
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    try:
                        yield decode(json.loads(line))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise UsageError(f"{self.path}:{lineno}: not a rawtui event ({exc})") from exc
        except UnicodeDecodeError:
            raise UsageError(f"{self.path}:{lineno + 1}: not a recording rawtui reads (neither a capture nor"
                             " rawtui's NDJSON events)") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise UsageError(f"cannot read the recording {self.path}: {exc}") from None


def _open_text(path: Path) -> TextIO:
    """The file as text, decompressed when it is gzip-compressed."""
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def decode(d: dict[str, Any]) -> Event:
    """One NDJSON record back to its event (:func:`~rawtui.events.from_dict`)."""
    return from_dict(d)
