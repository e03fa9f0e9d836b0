"""The curves of a ``rawtui demo --compare``: one :class:`~rawtui.analysis.series.TimeSeries` per congestion
control, and all of them in one CSV (``--series FILE.csv``).

The CSV is the ``--series`` one with a first column ``cc`` naming the run, the runs one after another
(each with its own ``t`` from its own start): ``cc,t,rwnd,peer_flight,server_cwnd,...``. It is written
atomically (a temporary file beside the target, renamed once complete).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from rawtui.analysis.series import COLUMNS, DEFAULT_STEP, TimeSeries, check_csv_target, write_csv_atomically
from rawtui.events import Event
from rawtui.lab.compare import RunMetrics, run_metrics

__all__ = ["COMPARE_COLUMNS", "CompareCurves", "curves_of", "read_compare_csv", "write_compare_csv"]

COMPARE_COLUMNS = ("cc", *COLUMNS)
Cell = float | int | None


@dataclass(frozen=True)
class CompareCurves:
    """One run's curves (rows in :data:`~rawtui.analysis.series.COLUMNS` order) and numbers."""

    cc: str
    rows: list[tuple[Cell, ...]]
    metrics: RunMetrics

    def column(self, name: str) -> tuple[list[float], list[float]]:
        """(t, value) of one column, the empty cells left out."""
        i = COLUMNS.index(name)
        xs, ys = [], []
        for row in self.rows:
            v = row[i]
            if v is not None:
                t = row[0]
                assert t is not None
                xs.append(float(t))
                ys.append(float(v))
        return xs, ys


def curves_of(cc: str, events: Iterable[Event], step: float = DEFAULT_STEP,
              metrics: RunMetrics | None = None) -> CompareCurves:
    """One run's events folded into its curves (and its numbers, unless given)."""
    events = list(events)
    ts = TimeSeries(step)
    for ev in events:
        ts(ev)
    return CompareCurves(cc, ts.rows(), metrics if metrics is not None else run_metrics(cc, events))


def write_compare_csv(path: str, runs: Sequence[CompareCurves]) -> None:
    """Every run's rows in one CSV at ``path`` (a ``cc`` column first); OutputError if it cannot be written."""
    check_csv_target(path)

    def write(f: IO[str]) -> None:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COMPARE_COLUMNS)
        for run in runs:
            for row in run.rows:
                w.writerow([run.cc, *("" if v is None else v for v in row)])

    write_csv_atomically(path, write)


def read_compare_csv(path: str) -> dict[str, list[dict[str, float | None]]]:
    """A compare CSV back, per ``cc``: each row as a dict of its columns (empty cells are None)."""
    out: dict[str, list[dict[str, float | None]]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or tuple(reader.fieldnames) != COMPARE_COLUMNS:
            raise ValueError(f"{path}: not a compare series (columns {reader.fieldnames})")
        for row in reader:
            out.setdefault(row["cc"], []).append(
                {k: (float(v) if v != "" else None) for k, v in row.items() if k != "cc"})
    return out
