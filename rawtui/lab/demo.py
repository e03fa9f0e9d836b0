"""`rawtui demo`: the teaching lab. Build a client - router - server network of namespaces, impair the
router (loss, delay, a bottleneck, reordering, duplication, corruption, blackouts: see
:mod:`rawtui.lab.impair`), serve a generated file, download it with rawtui from the client namespace,
check it is byte-exact and, for a named scenario, that the phenomenon it teaches really happened.

The download runs as a child ``ip netns exec <client> python -m rawtui ... --lab-control SOCK`` that
inherits the terminal, so the live view (or the headless progress bar) is exactly what a user of
``rawtui URL`` sees, plus the lab's side channel: the server's true TCP state (TCP_INFO), the knobs in
force and the router's counters (:mod:`rawtui.lab.control`). The live view can turn the knobs through
the same socket (:class:`rawtui.lab.control.LabControl`).

Needs only root, Python and iproute2 (offloads are switched with ioctls, not ethtool).

Every ending removes the lab (see :class:`_Interrupts`): SIGINT, SIGTERM and SIGHUP (the terminal closed)
end the download child cleanly, then delete the namespaces with the relay and the server in them; a second
signal stops waiting for the child but still removes the lab. A lab left by a demo that was killed (kill -9)
is removed by the next demo, or by ``rawtui lab down``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rawtui.endings import SignalPipe, isatty, point_at_devnull, was_tty, write_quietly
from rawtui.errors import EXIT_USAGE, PrivilegeError, RawtuiError
from rawtui.lab.compare import CCS, RunMetrics, compare_table, parse_cc_list, run_metrics
from rawtui.lab.control import ControlError, LabControl
from rawtui.lab.impair import KNOB_NAMES, ImpairError, child_env, parse_ms, parse_rate, start_relay
from rawtui.lab.scenarios import SCENARIOS, Scenario, load_events, server_samples
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError, cleanup_stale_labs

__all__ = ["CompareResult", "CompareRun", "CompareView", "ensure_cc", "main", "parse_size", "start_pyserver"]

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)i?[bB]?$")
DEFAULT_SIZE = "50M"
PYSERVER_PORT = 8080
READY_TIMEOUT = 20.0  # seconds a lab server may take to say "ready"


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise RawtuiError(f"bad size {text!r}: use e.g. 500K, 50M, 1G", EXIT_USAGE)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def start_pyserver(lab: Lab, root: str, port: int = PYSERVER_PORT, report: str | None = None,
                   cc: str | None = None) -> subprocess.Popen[str]:
    """The embedded HTTP server in the server namespace (publishing TCP_INFO samples on the control socket
    ``report`` when given; its connections use the congestion control ``cc`` when given); returns once it
    is listening (on ``::``, IPv4 and IPv6, in a dual-stack lab)."""
    argv = [sys.executable, "-m", "rawtui.lab.server", "--root", root, "--port", str(port)]
    if report:
        argv += ["--report", report]
    if cc:
        argv += ["--cc", cc]
    return _start_ready(lab, lab.server_ns, argv, "the lab HTTP server")


def _start_ready(lab: Lab, ns: str, argv: list[str], what: str) -> subprocess.Popen[str]:
    """Start ``argv`` in ``ns`` and wait for its "ready" line (``READY_TIMEOUT`` at most). Its stderr goes to a file (never to a pipe
    nobody reads), shown if it fails to start; with RAWTUI_DEMO_LOGS=DIR the file is kept in DIR."""
    log_dir = os.environ.get("RAWTUI_DEMO_LOGS")
    if log_dir:
        tag = argv[argv.index("-m") + 1] if "-m" in argv else Path(argv[0]).name
        err = open(os.path.join(log_dir, f"{tag}-{os.getpid()}-{time.monotonic_ns()}.log"), "w+b")  # noqa: SIM115
    else:
        err = tempfile.TemporaryFile()  # noqa: SIM115
    try:
        proc = lab.popen(ns, argv, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
        assert proc.stdout is not None
        line = ""
        if select.select([proc.stdout], [], [], READY_TIMEOUT)[0]:
            line = proc.stdout.readline()
        if not line.startswith("ready"):
            lab.stop(proc)
            err.seek(0)
            text = err.read().decode(errors="replace")
            why = text.strip()[-800:] or line.strip() or f"no ready line within {READY_TIMEOUT:g} s"
            raise LabError(f"{what} did not start: {why}")
    finally:
        err.close()
    threading.Thread(target=_drain, args=(proc,), daemon=True).start()
    return proc


def _drain(proc: subprocess.Popen[str]) -> None:
    if proc.stdout is not None:
        for _ in proc.stdout:
            pass


# ---------------------------------------------------------------------------------------------------
# command line


def _percent(text: str) -> float:
    try:
        v = float(text.rstrip("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage") from None
    if not 0 <= v <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 100")
    return v


def _ms(text: str) -> float:
    try:
        return parse_ms(text)
    except ImpairError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cc_list(text: str) -> list[str]:
    try:
        return parse_cc_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> int:
    try:
        return parse_rate(text)
    except ImpairError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rawtui demo",
        description="The teaching lab: build a client - router - server network of namespaces, impair the "
        "router, serve a generated file and download it with rawtui's own stack.",
        epilog="Impairment options apply to the server->client direction (the data) unless --dir says "
        "otherwise; they add to (and override) a scenario's. Example: sudo rawtui demo --loss 2 --delay 40ms "
        "--rate 20mbit. Scenarios: " + ", ".join(SCENARIOS) + " (--list-scenarios explains them).",
    )
    p.add_argument("--scenario", choices=list(SCENARIOS), metavar="NAME",
                   help="run a named scenario and check that its phenomenon appears")
    p.add_argument("--list-scenarios", action="store_true", help="list the scenarios and what each shows")
    p.add_argument("--fast", action="store_true",
                   help="run the scenario at full speed (a few seconds or less, for tests) instead of the "
                   "default watchable pace (15-60 s, the phenomenon repeating)")
    p.add_argument("--size", help=f"size of the generated file (default {DEFAULT_SIZE}, or the scenario's; "
                   "--list-scenarios gives the sizes each scenario accepts)")
    p.add_argument("--server", choices=["python", "nginx"], default="python",
                   help="the lab's HTTP server (default: Python's http.server, no install needed)")
    p.add_argument("--ipv6", action="store_true",
                   help="build a dual-stack lab and download over IPv6 (the URL holds the server's IPv6 literal; "
                   "the relay forwards and impairs IPv6 as it does IPv4); with --scenario, --compare, --cc too")
    p.add_argument("--cc", choices=CCS, metavar="ALGO",
                   help="the server's congestion control: " + ", ".join(CCS) + " (default: the scenario's, "
                   "else the kernel's default)")
    p.add_argument("--compare", type=_cc_list, metavar="ALGO,ALGO,...",
                   help="run the same link (same knobs, same --seed) once per congestion control, e.g. "
                   "reno,cubic,bbr (each on the live view, or headless), then show their cwnd, RTT and "
                   "throughput side by side and a table (--headless: the table; --series: every curve in one "
                   "CSV; --events / --pcap: one file per run, e.g. ev-bbr.ndjson)")
    g = p.add_argument_group("impairments (on the router)")
    g.add_argument("--loss", type=_percent, metavar="P", help="drop P %% of frames at random")
    g.add_argument("--delay", type=_ms, metavar="D", help="add D of one-way delay (40ms, 0.1s)")
    g.add_argument("--jitter", type=_ms, metavar="D", help="+-D of uniform jitter on the delay")
    g.add_argument("--rate", type=_rate, metavar="R", help="bottleneck rate (20mbit, 500kbit)")
    g.add_argument("--queue", type=int, metavar="N", help="bottleneck queue in frames (default 100)")
    g.add_argument("--reorder", type=_percent, metavar="P", help="hold P %% of frames back behind 3 others")
    g.add_argument("--dup", type=_percent, metavar="P", help="send P %% of frames twice")
    g.add_argument("--corrupt", type=_percent, metavar="P", help="flip a payload bit in P %% of frames")
    g.add_argument("--dir", choices=["down", "up", "both"], default="down",
                   help="where the options above apply: down = server->client (default), up, both")
    g.add_argument("--seed", type=int, help="seed the router's random choices (reproducible runs)")
    p.add_argument("--headless", action="store_true", help="progress bar and summary instead of the live view")
    p.add_argument("--events", metavar="FILE", help="write the event stream as NDJSON")
    p.add_argument("--pcap", metavar="FILE", help="write every frame sent and received")
    p.add_argument("--series", metavar="FILE.csv",
                   help="write the time series (windows, flight, true cwnd, RTT, throughput...) as CSV")
    p.add_argument("--series-step", metavar="SECONDS", type=float, help="the CSV's time step (default 0.1 s)")
    p.add_argument("--exit-on-done", action="store_true", help="live view: exit when the download ends")
    p.add_argument("--explain", action="store_true", help="headless: print what just happened, line by line")
    return p


def cli_knobs(ns: argparse.Namespace) -> dict[str, float]:
    """The knob values given on the command line (knob name -> value)."""
    given = {
        "loss": ns.loss, "delay_ms": ns.delay, "jitter_ms": ns.jitter, "rate_bps": ns.rate, "queue": ns.queue,
        "reorder": ns.reorder, "dup": ns.dup, "corrupt": ns.corrupt,
    }
    knobs = {k: v for k, v in given.items() if v is not None}
    assert set(knobs) <= set(KNOB_NAMES)
    return knobs


def list_scenarios() -> str:
    out = []
    for s in SCENARIOS.values():
        w = s.watchable()
        out.append(f"{s.name}  ({w.size / (1 << 20):g} MB, {w.pace}; {s.size_range()})\n  {s.title}\n"
                   + textwrap.indent(textwrap.fill(w.explanation, 96), "  ")
                   + f"\n  look for: {s.look_for}\n  --fast: {s.size / (1 << 20):g} MB, {s.pace}\n")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------
# the demo


def main(argv: list[str], compare_view: CompareView | None = None) -> int:
    """``rawtui demo ARGS``; ``compare_view`` shows a ``--compare`` (the table is printed without one)."""
    ns = parser().parse_args(argv)
    if ns.list_scenarios:
        print(list_scenarios())
        return 0
    if ns.compare and ns.cc:
        raise RawtuiError("argument --cc: not with --compare (which names the algorithms to run)", EXIT_USAGE)
    scenario = SCENARIOS[ns.scenario] if ns.scenario else None
    if scenario is not None and not ns.fast:
        scenario = scenario.watchable()  # the default: a pace to watch (--fast: the short run)
    size = parse_size(ns.size) if ns.size else (scenario.size if scenario else parse_size(DEFAULT_SIZE))
    if scenario is not None:  # a size the phenomenon cannot show with is refused; else the knobs fit it
        problem = scenario.size_problem(size)
        if problem is not None:
            raise RawtuiError(problem, EXIT_USAGE)
        scenario = scenario.for_size(size)
    knobs = merge_knobs(scenario, cli_knobs(ns), ns.dir)
    if os.geteuid() != 0:
        raise PrivilegeError("the demo builds network namespaces: run it as root (sudo rawtui demo)")
    with _Interrupts() as interrupts:
        if ns.compare:
            return _compare(ns, scenario, size, knobs, interrupts, compare_view)
        return _demo(ns, scenario, size, knobs, interrupts)


def _demo(ns: argparse.Namespace, scenario: Scenario | None, size: int, knobs: dict[str, dict[str, float]],
          interrupts: _Interrupts) -> int:
    lab: Lab | None = None
    tmp: str | None = None
    interrupted = False
    try:
        try:
            removed = cleanup_stale_labs()  # left by a demo that was killed (kill -9)
        except LabError:
            removed = []
        if removed:
            _say(f"removed a lab left behind: {' '.join(removed)}")
        tmp = tempfile.mkdtemp(prefix="rawtui-demo-")
        try:
            lab = Lab.create(ipv6=ns.ipv6)
        except LabError as e:
            raise RawtuiError(f"cannot build the lab: {e}", 4) from None
        try:
            return _run(lab, ns, tmp, scenario, size, knobs, interrupts)
        except (LabError, ImpairError, ControlError) as e:
            raise RawtuiError(f"the lab failed: {e}", 4) from None
    except KeyboardInterrupt:
        interrupted = True
        return 130
    finally:
        # from here on a signal only hurries: this clean-up always runs to its end
        interrupts.cleaning = True
        if interrupts.received:
            interrupts.forget_terminal_if_gone()
        interrupts.end_child()
        try:
            if lab is not None:
                lab.destroy()  # the relay, the server, anything else in the namespaces, the namespaces
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        if interrupted:
            _say("rawtui: demo interrupted; lab removed")


class _Interrupts(SignalPipe):
    """SIGINT, SIGTERM and SIGHUP during the demo.

    The first one interrupts the demo (KeyboardInterrupt where the main thread is) unless the clean-up runs
    already; the clean-up then runs to its end whatever comes next: the download child is asked to end
    (SIGTERM: it restores the terminal and removes its firewall rule; ``CHILD_GRACE`` seconds), then the
    lab is destroyed (namespaces, relay, server). A second signal hurries: the child gets
    ``HURRIED_CHILD_GRACE`` (enough to put the terminal back; it hurries too) before SIGKILL, and the lab
    still goes. A third ends the process at once, as does a clean-up still running ``BOUND`` seconds after
    the first signal (``HURRIED_BOUND`` after the second): ``rawtui lab down``, or the next demo, removes
    what is left then.

    The handler raises or writes to a pipe and nothing else (no lock: it runs between two bytecodes of the
    main thread, whatever that thread holds, see :class:`rawtui.endings.SignalPipe`); a daemon thread keeps
    the time.
    """

    THREAD_NAME = "rawtui-demo-bound"
    CHILD_GRACE = 1.0
    HURRIED_CHILD_GRACE = 0.8  # more than the child's own bound after a second signal (rawtui.cli.HURRY)
    BOUND = 5.0
    HURRIED_BOUND = 2.0

    def __init__(self) -> None:
        super().__init__()
        self.received: list[int] = []
        self._count = itertools.count(1)
        self.cleaning = False
        self.child: subprocess.Popen[Any] | None = None
        self._hurried_at = 0.0

    @property
    def hurry(self) -> bool:
        return len(self.received) > 1

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        # One C call: a second signal's handler, which can run inside this one between any two bytecodes,
        # gets the next number (counting with len(received) instead, both calls could see 2: no interrupt).
        n = next(self._count)
        if n == 2:
            self._hurried_at = time.monotonic()
        self.received.append(signum)
        self._post(signum)
        if n >= 3:
            write_quietly(2, b"rawtui: demo: leaving now; `rawtui lab down` removes what is left\n")
            os._exit(130)
        if n == 1 and not self.cleaning:
            raise KeyboardInterrupt

    def _watch(self, r: int) -> None:
        deadline: float | None = None
        count = 0
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if select.select([r], [], [], timeout)[0]:
                for b in os.read(r, 64):
                    if b == 0:
                        return
                    count += 1
                    now = time.monotonic()
                    limit = now + (self.BOUND if count == 1 else self.HURRIED_BOUND)
                    deadline = limit if deadline is None else min(deadline, limit)
            elif deadline is not None and time.monotonic() >= deadline:
                write_quietly(2, b"rawtui: demo: the clean-up did not finish in time; `rawtui lab down` "
                                 b"removes what is left\n")
                os._exit(130)

    def end_child(self) -> None:
        """End the download child, if it still runs: SIGTERM, ``CHILD_GRACE`` (``HURRIED_CHILD_GRACE``
        once hurried), then SIGKILL."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        _kill(child, signal.SIGTERM)
        deadline = time.monotonic() + self.CHILD_GRACE
        while child.poll() is None:
            if self.hurry:
                deadline = min(deadline, self._hurried_at + self.HURRIED_CHILD_GRACE)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if child.poll() is None:
            _kill(child, signal.SIGKILL)
        try:
            child.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass  # the lab's destruction kills what is left in its namespaces

    def forget_terminal_if_gone(self) -> None:
        """After a hang-up, point our standard streams at /dev/null: the last messages then go nowhere
        instead of failing (EIO) half-way through the clean-up."""
        ttys = [fd for fd in (0, 1, 2) if was_tty(fd)]
        if ttys and not all(isatty(fd) for fd in ttys):
            point_at_devnull(ttys)


def _kill(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass



def merge_knobs(scenario: Scenario | None, cli: dict[str, float], where: str) -> dict[str, dict[str, float]]:
    knobs = {"down": dict(scenario.down) if scenario else {}, "up": dict(scenario.up) if scenario else {}}
    for d in (("down", "up") if where == "both" else (where,)):
        knobs[d].update(cli)
    return knobs


def _run(lab: Lab, ns: argparse.Namespace, tmp: str, scenario: Scenario | None, size: int,
         knobs: dict[str, dict[str, float]], interrupts: _Interrupts, compared: str | None = None) -> int:
    """One download in ``lab``; ``compared``: the algorithm of one run of a ``--compare`` (its checks are
    the file and the algorithm; the scenario's own check is for its own algorithm)."""
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    name = f"demo-{scenario.name if scenario else 'file'}-{size}.bin"
    src = os.path.join(www, name)
    if not os.path.exists(src):
        make_file(src, size)
    want = sha256_file(src)
    control = os.path.join(tmp, "control.sock")
    start_relay(lab, control, seed=ns.seed)
    cc = compared or ns.cc or (scenario.server_cc if scenario is not None else None)
    if cc:
        ensure_cc(cc)
    if cc and ns.server == "nginx":  # nginx has no setting for it: the namespace's default (per-netns sysctl)
        _set_server_cc(lab, cc)
    if ns.server == "nginx":
        from rawtui.lab.nginx import start_nginx

        handle = start_nginx(lab, www, port=80)
        _start_ready(lab, lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--sample-port", "80",
                                          "--report", control], "the TCP_INFO sampler")
        url = f"{handle.url6 if ns.ipv6 else handle.url}/{name}"
    else:
        start_pyserver(lab, www, PYSERVER_PORT, report=control, cc=cc)
        host = f"[{lab.server_ip6}]" if ns.ipv6 else lab.server_ip
        url = f"http://{host}:{PYSERVER_PORT}/{name}"
    with LabControl(control) as ctl:
        if scenario is not None:
            ctl.announce(scenario.announcement())
        for d in ("down", "up"):
            if knobs[d]:
                ctl.request({"cmd": "set", "dir": d, **knobs[d]})
        for action in scenario.actions if scenario is not None else ():
            ctl.request({"cmd": "arm", "dir": "down", "after_bytes": action.at_bytes, "then": action.cmd})

    events_path = _per_run(os.path.abspath(ns.events), compared) if ns.events else os.path.join(
        tmp, f"events-{compared}.ndjson" if compared else "events.ndjson")
    out = os.path.join(tmp, "downloaded.bin")
    argv_child = [sys.executable, "-m", "rawtui", url, "-o", out, "--lab-control", control,
                  "--events", events_path]
    if ns.headless:
        argv_child.append("--headless")
        if compared:
            argv_child.append("-q")  # the comparison's table is the summary
    if ns.exit_on_done or compared:  # a comparison goes on to the next run, then to its own screen
        argv_child.append("--exit-on-done")
    if ns.explain:
        argv_child.append("--explain")
    if ns.pcap:
        argv_child += ["--pcap", _per_run(os.path.abspath(ns.pcap), compared)]
    if ns.series and not compared:  # a comparison writes one CSV of every run's curves
        argv_child += ["--series", os.path.abspath(ns.series)]
    if ns.series_step is not None:
        argv_child += ["--series-step", str(ns.series_step)]
    if scenario is not None and scenario.stall:
        argv_child += ["--stall", scenario.stall]
    client_ip, server_ip = (lab.client_ip6, lab.server_ip6) if ns.ipv6 else (lab.client_ip, lab.server_ip)
    _say(f"lab {lab.prefix}: client {client_ip} -> router -> server {server_ip}; "
         f"downloading {url} ({size:,} bytes)")
    _say("router: " + describe_knobs(knobs))
    if cc:
        _say(f"server: congestion control {cc}" + (" (the namespace's default)" if ns.server == "nginx" else
                                                     " (TCP_CONGESTION on its sockets)"))
    if scenario is not None and not compared:
        _say(f"scenario {scenario.name}: {scenario.title} ({scenario.pace})")
        _say(textwrap.fill(scenario.explanation, 100, initial_indent="  ", subsequent_indent="  "))
        _say(f"  look for: {scenario.look_for}")
    # the child shares our terminal (and process group): a signal from the terminal reaches it too; the
    # others are forwarded by _Interrupts.end_child
    child = interrupts.child = subprocess.Popen(lab.exec_argv(lab.client_ns, argv_child), env=child_env())
    # polled, not Popen.wait(): on a KeyboardInterrupt that one waits 0.25 s more for the child before
    # letting the clean-up start
    while (code := child.poll()) is None:
        time.sleep(0.05)
    try:
        with LabControl(control) as ctl:
            stats: dict[str, Any] | None = ctl.state()["stats"]
    except ControlError:
        stats = None
    return report(code, out, want, events_path, None if compared else scenario, stats, cc)


AVAILABLE_CC = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def ensure_cc(cc: str) -> None:
    """Make sure the kernel offers the congestion control ``cc``: load its module (``modprobe tcp_<cc>``)
    when it is not listed yet; LabError saying what the kernel has otherwise."""
    def available() -> list[str]:
        try:
            return Path(AVAILABLE_CC).read_text().split()
        except OSError:
            return []

    if cc in available():
        return
    why = ""
    modprobe = shutil.which("modprobe") or shutil.which("modprobe", path="/usr/sbin:/sbin")
    if modprobe:
        res = subprocess.run([modprobe, f"tcp_{cc}"], capture_output=True, text=True, timeout=20, check=False)
        if cc in available():
            return
        why = f"; modprobe tcp_{cc}: {res.stderr.strip() or 'no error, but still not offered'}"
    raise LabError(f"this kernel has no congestion control {cc!r} (it offers: {' '.join(available()) or '?'})"
                   + why)


def _per_run(path: str, cc: str | None) -> str:
    """``ev.ndjson`` -> ``ev-bbr.ndjson``: one file per run of a comparison."""
    if not cc:
        return path
    stem, ext = os.path.splitext(path)
    return f"{stem}-{cc}{ext}"


@dataclass
class CompareRun:
    """One run of a ``--compare``: its algorithm, exit code (the demo's checks), events and numbers."""

    cc: str
    code: int
    events: list[Any]
    metrics: RunMetrics


@dataclass
class CompareResult:
    """Every run of a ``--compare``, for a view (:data:`CompareView`)."""

    runs: list[CompareRun]
    title: str  # the link: scenario and knobs
    verdict: list[str] = field(default_factory=list)  # the scenario's PASS/FAIL lines on the comparison
    headless: bool = False
    series: str | None = None  # --series FILE.csv
    series_step: float | None = None


CompareView = Callable[[CompareResult], int]  # shows (or writes) a comparison; returns an exit code


def _compare(ns: argparse.Namespace, scenario: Scenario | None, size: int, knobs: dict[str, dict[str, float]],
             interrupts: _Interrupts, view: CompareView | None) -> int:
    """``--compare A,B,C``: one fresh lab per algorithm (nothing cached between runs: no tcp_metrics, no
    ARP entry), the same knobs and seed, one after another; then the table, the scenario's verdict on the
    comparison, and the view."""
    if ns.seed is None:
        ns.seed = int.from_bytes(os.urandom(2), "big")  # one seed for every run: the same router choices
    tmp = tempfile.mkdtemp(prefix="rawtui-compare-")
    interrupted = False
    runs: list[CompareRun] = []
    try:
        try:
            removed = cleanup_stale_labs()
        except LabError:
            removed = []
        if removed:
            _say(f"removed a lab left behind: {' '.join(removed)}")
        for cc in ns.compare:
            _say(f"== {cc} ({len(runs) + 1}/{len(ns.compare)}), router seed {ns.seed} ==")
            lab: Lab | None = None
            try:
                try:
                    lab = Lab.create(ipv6=ns.ipv6)
                except LabError as e:
                    raise RawtuiError(f"cannot build the lab: {e}", 4) from None
                try:
                    code = _run(lab, ns, tmp, scenario, size, knobs, interrupts, compared=cc)
                except (LabError, ImpairError, ControlError) as e:
                    raise RawtuiError(f"the lab failed: {e}", 4) from None
            finally:
                interrupts.end_child()
                if lab is not None:
                    lab.destroy()
            events = _read_events(_per_run(os.path.abspath(ns.events), cc) if ns.events
                                  else os.path.join(tmp, f"events-{cc}.ndjson"))
            runs.append(CompareRun(cc, code, events, run_metrics(cc, events)))
    except KeyboardInterrupt:
        interrupted = True
        return 130
    finally:
        interrupts.cleaning = True
        interrupts.end_child()
        shutil.rmtree(tmp, ignore_errors=True)
        if interrupted:
            _say("rawtui: demo interrupted; lab removed")
    title = (f"scenario {scenario.name}: " if scenario is not None else "") + describe_knobs(knobs)
    print(f"{' vs '.join(ns.compare)} on one link ({title}; {size:,} bytes, router seed {ns.seed})")
    print(compare_table([r.metrics for r in runs]), flush=True)
    verdict: list[str] = []
    ok = all(r.code == 0 for r in runs)
    findings = scenario.compare({r.cc: r.metrics for r in runs}) if scenario and scenario.compare else None
    if scenario is not None and findings is not None:
        failures, evidence = findings
        verdict = [f"      {line}" for line in evidence]
        verdict += [f"FAIL  {scenario.name}: {line}" for line in failures]
        if not failures:
            verdict.append(f"PASS  {scenario.name}: {scenario.compare_look_for}")
        ok = ok and not failures
    elif scenario is not None and scenario.compare is not None:
        verdict = [f"      ({scenario.name}: compare bbr with reno or cubic to see {scenario.compare_look_for})"]
    for line in verdict:
        _say(line)
    code = next((r.code for r in runs if r.code != 0), 0 if ok else 1)
    if view is not None:
        shown = view(CompareResult(runs, title, verdict, headless=ns.headless, series=ns.series,
                                   series_step=ns.series_step))
        code = code or shown
    return code


def _set_server_cc(lab: Lab, cc: str) -> None:
    res = lab.run(lab.server_ns, ["sh", "-ec", f"echo {shlex.quote(cc)} > /proc/sys/net/ipv4/tcp_congestion_control"],
                  capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        raise LabError(f"cannot switch the server's congestion control to {cc}: {res.stderr.strip()}")


def describe_knobs(knobs: dict[str, dict[str, float]]) -> str:
    parts = []
    for d, arrow in (("down", "server->client"), ("up", "client->server")):
        k = knobs[d]
        if not k:
            continue
        words = []
        for name, v in k.items():
            if name == "rate_bps":
                words.append(f"rate {v / 1e6:g} Mbit/s")
            elif name == "queue":
                words.append(f"queue {v:g} frames")
            elif name.endswith("_ms"):
                words.append(f"{name[:-3]} {v:g} ms")
            else:
                words.append(f"{name} {v:g} %")
        parts.append(f"{arrow}: " + ", ".join(words))
    return "; ".join(parts) if parts else "a perfect link (no impairment; the live view can add some)"


def report(code: int, out: str, want: str, events_path: str, scenario: Scenario | None,
           stats: dict[str, Any] | None = None, cc: str | None = None) -> int:
    """Print PASS/FAIL lines; the exit code: the child's if it failed, 1 if a check failed, else 0. With
    ``cc``, also that the server's kernel used that congestion control (its TCP_INFO samples say)."""
    if code != 0:
        _say(f"FAIL  the download failed (rawtui exit code {code})")
        return code
    ok = True
    got = sha256_file(out) if os.path.exists(out) else "(no file)"
    if got == want:
        _say(f"PASS  file byte-exact (sha256 {got})")
    else:
        _say(f"FAIL  file differs: sha256 {got}, expected {want}")
        ok = False
    events = _read_events(events_path)
    if cc:
        samples = server_samples(events)
        seen = sorted({s.cc for s in samples})
        if seen == [cc]:
            _say(f"PASS  the server's connection used {cc} (TCP_CONGESTION, in all {len(samples)} TCP_INFO samples)")
        else:
            _say(f"FAIL  the server's connection used {', '.join(seen) or 'an unknown algorithm (no sample)'}, "
                 f"not {cc}")
            ok = False
    summary = router_summary(stats) if stats else ""
    if summary:
        _say(f"      router: {summary}")
    if scenario is not None:
        failures, evidence = scenario.examine(events)
        for line in evidence:
            _say(f"      {line}")
        if failures:
            for line in failures:
                _say(f"FAIL  {scenario.name}: {line}")
            ok = False
        else:
            _say(f"PASS  {scenario.name}: {scenario.look_for}")
        saw = scenario.what_you_saw(events)
        if saw:
            _say("what you saw:")
            for line in saw:
                _say(textwrap.fill(line, 100, initial_indent="  - ", subsequent_indent="    "))
    return 0 if ok else 1


_COUNTED = (("lost", "lost"), ("blackout_drops", "dropped in blackouts"), ("queue_drops", "dropped by the full queue"),
            ("corrupted", "corrupted"), ("duplicated", "duplicated"), ("reordered", "reordered"))


def router_summary(stats: dict[str, dict[str, int]]) -> str:
    """What the router did to the frames (its counters per direction); "" when it did nothing."""
    parts = []
    for d, arrow in (("down", "server->client"), ("up", "client->server")):
        st = stats.get(d) or {}
        words = [f"{st[k]} {what}" for k, what in _COUNTED if st.get(k)]
        if words:
            parts.append(f"{arrow} {st.get('frames_in', 0)} frames: " + ", ".join(words))
    return "; ".join(parts)


def _read_events(path: str) -> list[Any]:
    if not Path(path).exists():
        return []
    return load_events(path)


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass  # the terminal is gone (EIO): nobody left to tell
