"""What the live view costs per event, sans-IO: the forked download child's encoding, the UI's decoding,
explaining, recording and folding, measured on a recorded event stream (no lab, no root, no Textual).

Record a stream first, e.g. in the lab (the events are the ones the live view would get):

    sudo rawtui --headless --events ev.ndjson http://10.77.2.2/big.bin
    python benchmarks/live_view_cost.py ev.ndjson

For each part it prints the CPU time per event and the share of a core it takes at the recorded pace
(its time divided by the recording's length): the child's share is taken from the stack's core, the UI's
from the other one (which the server and the kernel use too, in the lab). Best of ``--reps``; nothing is
asserted.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.analysis.explain import Explained
from rawtui.download import forked
from rawtui.events import Event
from rawtui.recording import load_events
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.timeline import Timeline

TICK = 1 / 12  # the app's drain interval


def encode(events: list[Event]) -> list[bytes]:
    """The child's side: the events through forked._Outbox, its clock following the events' times."""
    sink: list[bytes] = []
    clock = [0.0]
    real_monotonic = forked.time.monotonic
    fd = os.open(os.devnull, os.O_WRONLY)
    out = forked._Outbox(fd)

    def write() -> None:
        sink.extend(out._backlog)
        out._backlog.clear()
        out._backlog_bytes = 0

    out._write = write  # type: ignore[method-assign]
    forked.time.monotonic = lambda: clock[0]  # type: ignore[attr-defined]
    try:
        for ev in events:
            clock[0] = ev.t
            out.emit(ev)
        out._flush()
    finally:
        forked.time.monotonic = real_monotonic  # type: ignore[attr-defined]
        os.close(fd)
    return sink


def decode(chunks: list[bytes]) -> list[Event]:
    """The UI's side of the pipe: ForkedSource's framing and unpickling."""
    src = forked.ForkedSource.__new__(forked.ForkedSource)
    src._buf = bytearray()
    got: list[Event] = []
    for c in chunks:
        src._buf += c
        got.extend(m for m in src._messages() if not isinstance(m, tuple))
    return got


def explain(events: list[Event]) -> list[Event]:
    class Listed:
        def run(self, emit: Callable[[Event], None], stop: object) -> int:
            for ev in events:
                emit(ev)
            return 0

    got: list[Event] = []
    Explained(Listed()).run(got.append, None)  # type: ignore[arg-type]
    return got


def fold(events: list[Event]) -> ViewModel:
    """The app's drain ticks: every TICK seconds of event time, the batch into the timeline and the model."""
    model, timeline = ViewModel(), Timeline()
    batch: list[Event] = []
    next_tick = events[0].t + TICK if events else 0.0
    for ev in events:
        if ev.t >= next_tick:
            timeline.feed(model, batch)
            batch = []
            next_tick = ev.t + TICK
        batch.append(ev)
    timeline.feed(model, batch)
    return model


def best(reps: int, fn: Callable[[], object]) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(reps):
        gc.collect()
        t0 = time.process_time()
        result = fn()
        times.append(time.process_time() - t0)
    return min(times), result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("events", help="an NDJSON recording (rawtui --events)")
    p.add_argument("--reps", type=int, default=3)
    ns = p.parse_args(argv)
    events = [e for e in load_events(ns.events) if e.type != "explain"]
    if not events:
        print("no events", file=sys.stderr)
        return 1
    span = max(1e-9, events[-1].t - events[0].t)
    kinds = Counter(e.type for e in events)
    print(f"{len(events):,} events over {span:.3f} s ({len(events) / span:,.0f}/s): "
          + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common(6)))
    t_enc, chunks = best(ns.reps, lambda: encode(events))
    assert isinstance(chunks, list)
    nbytes = sum(len(c) for c in chunks)
    t_dec, decoded = best(ns.reps, lambda: decode(chunks))
    assert isinstance(decoded, list)
    t_exp, explained = best(ns.reps, lambda: explain(decoded))
    assert isinstance(explained, list)
    t_fold, _ = best(ns.reps, lambda: fold(explained))
    print(f"pipe: {len(chunks):,} batches, {nbytes / 1e6:.2f} MB ({nbytes / span / 1e6:.2f} MB/s), "
          f"{nbytes / len(events):.0f} bytes an event")
    for name, secs, where in (("encode (child)", t_enc, "the stack's core"), ("decode (UI)", t_dec, "UI"),
                              ("explain (UI)", t_exp, "UI"), ("timeline + model (UI)", t_fold, "UI")):
        print(f"  {name:24} {1e6 * secs / len(events):6.2f} us/event  {secs:7.3f} s  "
              f"{100 * secs / span:5.1f} % of a core at this pace ({where})")
    ui = t_dec + t_exp + t_fold
    print(f"  {'UI, before redrawing':24} {1e6 * ui / len(events):6.2f} us/event  {ui:7.3f} s  "
          f"{100 * ui / span:5.1f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
