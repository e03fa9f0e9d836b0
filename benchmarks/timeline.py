"""The timeline cursor on a long recording: recording cost, memory, and the time a step or a jump takes.

The timeline (:mod:`rawtui.views.tui.timeline`) is fed as the live view feeds it (batches of 4,096 events
into the view model), from an NDJSON recording streamed from disk. Then, at random places, the cursor
steps one event forward and backward and jumps to a random event, as the keys ``→`` ``←`` and a jump do;
each call is timed (``Timeline.state_at``, i.e. rebuilding the view model at the cursor).

    python benchmarks/timeline.py --events ev.ndjson         # a recording you made
    sudo python benchmarks/timeline.py --record 1G           # records one first: rawtui demo --headless --size 1G

``--record`` runs ``rawtui demo --headless --size SIZE --events TMP`` (root: it builds the lab), says how
long the recording took, and deletes the file at the end (``--keep`` keeps it). Nothing is asserted: it
prints the numbers (milliseconds: median, 95th percentile, max; memory: peak RSS and the timeline's share).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.recording import NdjsonReplay
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.timeline import Timeline

BATCH = 4096


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def record(size: str, path: Path) -> float:
    cmd = [sys.executable, "-m", "rawtui", "demo", "--headless", "--size", size, "--events", str(path)]
    print("recording:", " ".join(cmd), flush=True)
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


PARTS = {"_record": 0.0, "_checkpoint": 0.0}  # seconds spent in these Timeline methods during the feed


def timed_part(name: str, call):  # type: ignore[no-untyped-def]
    def timed(*args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        call(*args)
        PARTS[name] += time.perf_counter() - start
    return timed


def feed(path: Path, every: int) -> tuple[Timeline, ViewModel, float, float, int]:
    """Each batch folded twice, in turn (a busy machine slows both alike): into a model alone, and into
    another through the timeline. Returns the timeline, its model, both times and the event count."""
    tl = Timeline(every=every)
    for name in PARTS:  # time the timeline's own parts: writing the columns, copying the model
        setattr(tl, name, timed_part(name, getattr(tl, name)))
    model, plain = ViewModel(title=str(path)), ViewModel(title=str(path))
    batch: list = []  # type: ignore[type-arg]
    busy = alone = 0.0
    n = 0

    def one(batch: list) -> None:  # type: ignore[type-arg]
        nonlocal busy, alone
        start = time.perf_counter()
        plain.apply_all(batch)
        mid = time.perf_counter()
        tl.feed(model, batch)
        alone += mid - start
        busy += time.perf_counter() - mid

    for ev in NdjsonReplay(path, speed=0).events():
        batch.append(ev)
        if len(batch) == BATCH:
            one(batch)
            n += len(batch)
            batch = []
    one(batch)
    return tl, model, busy, alone, n + len(batch)


def ms(values: list[float]) -> str:
    v = sorted(x * 1000 for x in values)
    return f"median {statistics.median(v):6.1f}   p95 {v[int(len(v) * 0.95) - 1]:6.1f}   max {v[-1]:6.1f} ms"


def timed(call, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    call(*args)
    return time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", type=Path, help="an NDJSON recording")
    src.add_argument("--record", metavar="SIZE", help="record one with the lab first (root), e.g. 1G")
    p.add_argument("--keep", action="store_true", help="keep the recording made by --record")
    p.add_argument("--every", type=int, default=8192, help="checkpoint interval (events)")
    p.add_argument("--samples", type=int, default=200, help="steps and jumps timed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--app", action="store_true",
                   help="also time the keys in the live view (Textual, headless, 120x35): key press to screen updated")
    ns = p.parse_args()
    made = None
    if ns.record:
        fd, name = tempfile.mkstemp(prefix="rawtui-timeline-", suffix=".ndjson")
        os.close(fd)
        made = Path(name)
        took = record(ns.record, made)
        print(f"recorded {made.stat().st_size / 1e6:.0f} MB of events in {took:.1f} s")
        path = made
    else:
        path = ns.events
    try:
        code = run(path, ns)
        if ns.app:
            asyncio.run(run_app(path, ns))
        return code
    finally:
        if made is not None and not ns.keep:
            made.unlink(missing_ok=True)
        elif made is not None:
            print(f"kept {made}")


def run(path: Path, ns: argparse.Namespace) -> int:
    rng = random.Random(ns.seed)
    base = rss_mb()
    tl, model, busy, plain_s, n = feed(path, ns.every)
    after = rss_mb()
    print(f"{n:,} events; folding them into the view model alone: {plain_s:.2f} s ({plain_s / n * 1e6:.2f} us/event)")
    print(f"with the timeline recording them: {busy:.2f} s ({busy / n * 1e6:.2f} us/event, "
          f"+{(busy - plain_s) / n * 1e6:.2f} us/event for the history, of which writing the columns "
          f"{PARTS['_record'] / n * 1e6:.2f} us/event and the checkpoints {PARTS['_checkpoint'] / n * 1e6:.2f})")
    columns = sum(a.buffer_info()[1] * a.itemsize for a in (
        tl._kind, tl._t, tl._pos, tl._seq, tl._ack, tl._win, tl._len, tl._flags, tl._note, tl._packets))
    tracemalloc.start()
    one = model.copy(packets=False)
    cp_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del one
    print(f"memory: RSS {base:.0f} MB at start, {after:.0f} MB after the feed (+{after - base:.0f} MB: the "
          f"timeline and two view models); segment columns {columns / 1e6:.1f} MB "
          f"({columns / n:.1f} bytes/event), {len(tl._others):,} other events kept as objects, "
          f"{tl.checkpoints} checkpoints every {tl.every:,} events, ~{cp_bytes / 1e3:.0f} kB each")
    last = len(tl) - 1
    places = [rng.randrange(1, last) for _ in range(ns.samples)]
    fwd, back, jump, notable = [], [], [], []
    for i in places:
        tl.state_at(i)
        fwd.append(timed(tl.state_at, i + 1))
        back.append(timed(tl.state_at, i))  # one event back from i + 1
    for _ in range(ns.samples):
        jump.append(timed(tl.state_at, rng.randrange(0, last + 1)))
    for i in places[: ns.samples // 2]:
        tl.state_at(i)
        j = tl.next_notable(i) or tl.prev_notable(i) or 0
        notable.append(timed(tl.state_at, j))
    # stepping back event by event, as holding the key does
    tl.state_at(places[0])
    run_back = [timed(tl.state_at, i) for i in range(places[0] - 1, max(0, places[0] - 200), -1)]
    print(f"step forward (one event):   {ms(fwd)}")
    print(f"step back (one event):      {ms(back)}")
    print(f"step back 200 times in a row: {ms(run_back)}")
    print(f"jump to a random event:     {ms(jump)}")
    print(f"jump to a notable event:    {ms(notable)}" if notable else "no notable events")
    print(f"peak RSS {peak_rss_mb():.0f} MB (the process; the events were streamed from disk, never all in memory "
          "as objects)")
    return 0


async def run_app(path: Path, ns: argparse.Namespace) -> None:
    """The same recording replayed (as fast as possible) into the live view; then keys, each timed from the
    press to the app idle again with its screen refreshed (``pilot.press`` then ``pilot.pause``)."""
    from rawtui.recording import NdjsonReplay
    from rawtui.views.tui.app import RawtuiApp
    from rawtui.views.tui.testing import settle

    rng = random.Random(ns.seed)
    app = RawtuiApp(NdjsonReplay(path, speed=0), title=str(path))
    start = time.monotonic()
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot, timeout=600)
        print(f"live view: {len(app.timeline):,} events replayed into it in {time.monotonic() - start:.1f} s")
        timings: dict[str, list[float]] = {}

        async def key(name: str, *keys: str) -> None:
            began = time.perf_counter()
            await pilot.press(*keys)
            await pilot.pause()
            timings.setdefault(name, []).append(time.perf_counter() - began)

        await pilot.press("home")
        n = len(app.timeline)
        for _ in range(max(10, ns.samples // 10)):
            app.move_cursor(rng.randrange(n))
            await pilot.pause()
            await key("x (unbound: the harness alone)", "x")
            await key("→ (one event on)", "right")
            await key("← (one event back)", "left")
            await key("] (next notable)", "right_square_bracket")
            await key("End (jump to the last event)", "end")
            await key("Home (jump to the first event)", "home")
        for name, values in timings.items():
            print(f"  {name:32s} {ms(values)}")
    print(f"peak RSS {peak_rss_mb():.0f} MB (the app: the view model, the timeline, Textual)")


if __name__ == "__main__":
    sys.exit(main())
