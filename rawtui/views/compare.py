"""What ``rawtui demo --compare`` shows once its runs are done: the curves written to ``--series`` (one CSV),
and, on a terminal without ``--headless``, the comparison screen (:mod:`rawtui.views.tui.compare`). The
table and the verdict are printed by the demo itself (:mod:`rawtui.lab.demo`)."""

from __future__ import annotations

import sys

from rawtui.analysis.compare import CompareCurves, curves_of, write_compare_csv
from rawtui.analysis.series import DEFAULT_STEP
from rawtui.lab.demo import CompareResult

__all__ = ["show_compare"]


def show_compare(result: CompareResult) -> int:
    """Write ``--series``, open the screen when there is a terminal to show it on; the exit code (0)."""
    step = result.series_step or DEFAULT_STEP
    curves: list[CompareCurves] = [curves_of(r.cc, r.events, step, r.metrics) for r in result.runs]
    if result.series:
        write_compare_csv(result.series, curves)
        print(f"series: {result.series} ({sum(len(c.rows) for c in curves)} rows, {len(curves)} runs)",
              file=sys.stderr)
    if result.headless or not (sys.stdout.isatty() and sys.stdin.isatty()):
        return 0
    from rawtui.views.tui.compare import CompareApp

    CompareApp(curves, result.title, result.verdict).run()
    return 0
