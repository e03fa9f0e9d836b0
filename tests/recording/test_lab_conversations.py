"""Captures with several connections, made in the lab with tcpdump on the client: ``rawtui replay --list``
numbers them as tshark's ``tcp.stream`` and counts them as ``tshark -z conv,tcp``; the default replay is
the largest HTTP download; a non-HTTP flow is analysed as a byte stream; HTTPS captures (rawtui's own
``--pcap`` with ``--keylog``, curl's with SSLKEYLOGFILE, TLS 1.3 and 1.2) are decrypted with
``replay --keylog`` and the body's sha256 is the served file's.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import child_env, lab_unavailable, require_tool

from rawtui import events as ev
from rawtui.lab.tcpdump import start_tcpdump
from rawtui.lab.topology import Lab
from rawtui.recording import PcapReplay, conversations

pytestmark = pytest.mark.lab

STREAM_PORT = 9000
STREAM_BYTES = 300_000
SERVE = r"""
import random, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("ready", flush=True)
c, _ = s.accept()
n = int(c.recv(100).split()[1])
c.sendall(random.Random(5).randbytes(n))
c.close()
"""
CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
c.sendall(b"SEND %d\n" % int(sys.argv[3]))
n = 0
while (b := c.recv(65536)):
    n += len(b)
print(n)
"""
FILES = ("one.bin", "1m7.bin", "1m.bin")  # the order curl fetches them: the largest is the second
TLS_PORTS = {"good": 4443, "expired": 4444, "wrong_host": 4445, "unknown_ca": 4446, "redirect": 4447}


def _tshark(pcap: Path, *args: str) -> str:
    res = subprocess.run([require_tool("tshark"), "-n", "-r", str(pcap), *args], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _all_ended(count: int) -> Callable[[Path], bool]:
    def ready(path: Path) -> bool:
        convs = conversations(path).conversations
        return len(convs) == count and all(c.ended for c in convs)
    return ready


@pytest.fixture(scope="module")
def multi(lab: Lab, www, pyserver, tmp_path_factory) -> Iterator[Path]:
    """curl fetching three files over three connections, then a plain TCP transfer of
    STREAM_BYTES from a small Python server: four connections in one tcpdump capture."""
    curl = require_tool("curl")
    d = tmp_path_factory.mktemp("multi")
    server = lab.popen(lab.server_ns, [sys.executable, "-c", SERVE, lab.server_ip, str(STREAM_PORT)],
                       stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("ready")
        dump = start_tcpdump(lab, lab.client_ns, d / "multi.pcap")
        with dump:
            for name in FILES:  # one curl each: one connection each
                r = lab.run(lab.client_ns, [curl, "-sS", "-o", "/dev/null", f"{pyserver}/{name}"],
                            capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stderr
            r = lab.run(lab.client_ns, [sys.executable, "-c", CLIENT, lab.server_ip, str(STREAM_PORT),
                                        str(STREAM_BYTES)], capture_output=True, text=True, timeout=60,
                        env=child_env())
            assert r.stdout.strip() == str(STREAM_BYTES), r.stderr
            dump.wait_for("four connections, each closed both ways", _all_ended(4))
    finally:
        lab.stop(server)
    yield d / "multi.pcap"


def test_streams_numbered_and_counted_as_tshark(multi: Path) -> None:
    table = conversations(multi)
    convs = table.conversations
    assert [c.kind for c in convs] == ["HTTP", "HTTP", "HTTP", "other"]
    assert [c.server[1] for c in convs] == [8080, 8080, 8080, STREAM_PORT]
    # tcp.stream: the same endpoints under the same number; payload and frames per direction
    frames: Counter[tuple[int, str]] = Counter()
    payload: Counter[tuple[int, str]] = Counter()
    for line in _tshark(multi, "-Y", "tcp", "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport",
                        "-e", "tcp.len").splitlines():
        stream, sport, length = line.split("\t")
        frames[int(stream), sport] += 1
        payload[int(stream), sport] += int(length)
    ours_frames: Counter[tuple[int, str]] = Counter()
    ours_payload: Counter[tuple[int, str]] = Counter()
    for c in convs:
        for who, n, b in ((c.client, c.frames_up, c.bytes_up), (c.server, c.frames_down, c.bytes_down)):
            ours_frames[c.index, str(who[1])] = n
            ours_payload[c.index, str(who[1])] = b
    assert ours_frames == frames
    assert ours_payload == payload
    assert convs[3].bytes_down >= STREAM_BYTES  # TCP payload each way, resends included (as tcp.len)
    # -z conv,tcp: "A:p <-> B:q  frames-to-A bytes  frames-from-A bytes ...", one line per conversation
    conv_lines = [line for line in _tshark(multi, "-q", "-z", "conv,tcp").splitlines() if "<->" in line]
    theirs = set()
    for line in conv_lines:
        m = re.match(r"(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+[\d.,]+\s+(?:bytes|kB|MB|GB)\s+(\d+)\s", line)
        assert m, line
        theirs.add((m[1], int(m[2]), m[3], int(m[4]), int(m[5]), int(m[6])))
    mine = {(c.endpoint_str(c.client).rsplit(":", 1)[0], c.client[1], c.endpoint_str(c.server).rsplit(":", 1)[0],
             c.server[1], c.frames_down, c.frames_up) for c in convs}
    assert mine == theirs


def test_list_command(multi: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(multi), "--list"], capture_output=True,
                       text=True, timeout=60, env=child_env(), check=False)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if re.match(r"[ *]\s*\d+\s", line)]
    assert len(rows) == 4
    assert rows[1].startswith("*") and "GET /1m7.bin" in rows[1]  # the default: the largest download
    assert rows[3].rstrip().endswith("other") and f":{STREAM_PORT} " in rows[3]
    assert "--stream N" in r.stdout


def test_default_is_the_largest_http_download(multi: Path, www) -> None:
    replay = PcapReplay(multi, speed=0)
    assert replay.stream == 1 and "stream 1 of 4" in replay.choice and "largest HTTP" in replay.choice
    events = list(replay.events())
    (done,) = [e for e in events if isinstance(e, ev.Done)]
    assert done.sha256 == www.sha256["1m7.bin"] and done.bytes == www.size("1m7.bin")
    assert any(isinstance(e, ev.Info) and e.message == replay.choice for e in events)


def test_each_stream_by_number(multi: Path, www) -> None:
    for stream, name in enumerate(FILES):
        events = list(PcapReplay(multi, speed=0, stream=stream).events())
        (done,) = [e for e in events if isinstance(e, ev.Done)]
        assert done.sha256 == www.sha256[name], (stream, name)


def test_a_non_http_flow_is_a_byte_stream(multi: Path) -> None:
    events = list(PcapReplay(multi, speed=0, stream=3).events())
    assert any(isinstance(e, ev.Info) and e.message.startswith("not HTTP") for e in events)
    assert not any(isinstance(e, ev.Info) and e.level == "warning" for e in events)
    assert any(isinstance(e, ev.Handshake) for e in events)
    assert [e for e in events if isinstance(e, ev.SegmentIn) and e.length]  # the ladder has the data
    (done,) = [e for e in events if isinstance(e, ev.Done)]
    assert done.bytes == STREAM_BYTES
    assert done.sha256 == hashlib.sha256(random.Random(5).randbytes(STREAM_BYTES)).hexdigest()
    prog = [e for e in events if isinstance(e, ev.Progress)]
    assert prog[-1].bytes == STREAM_BYTES


@pytest.mark.parametrize("args, words", [
    (["--stream", "9"], "--stream 9: the capture's TCP streams are 0-3"),
    (["--stream", "-1"], "--stream -1: the capture's TCP streams are 0-3"),
])
def test_bad_stream_is_one_line(multi: Path, args: list[str], words: str) -> None:
    r = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(multi), "--headless", *args],
                       capture_output=True, text=True, timeout=60, env=child_env(), check=False)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"rawtui: error: {multi}: {words} (rawtui replay {multi} --list)"]


# ---------------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def tls_site(lab: Lab, www, tmp_path_factory) -> Iterator[object]:
    from rawtui.lab.nginx import find_nginx, start_nginx
    from rawtui.lab.pki import make_pki, nginx_tls_servers

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    pki = make_pki(tmp_path_factory.mktemp("pki"), lab.server_ip)
    extra = nginx_tls_servers(pki, lab.server_ip, www.root, TLS_PORTS)
    handle = start_nginx(lab, www.root, 4480, extra_conf=extra)
    try:
        yield pki
    finally:
        handle.stop()


def _replay(pcap: Path, keylog: Path | None) -> list[ev.Event]:
    return list(PcapReplay(pcap, speed=0, keylog=keylog).events())


def test_rawtui_pcap_and_keylog_decrypted(run_rawtui, lab: Lab, www, tls_site, tmp_path: Path) -> None:
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "--keylog", "k.txt", "--pcap", "p.pcap", "-o", "o.bin",
                   f"https://{lab.server_ip}:{TLS_PORTS['good']}/1m7.bin")
    assert r.returncode == 0, r.stderr
    events = _replay(tmp_path / "p.pcap", tmp_path / "k.txt")
    (done,) = [e for e in events if isinstance(e, ev.Done)]
    assert done.sha256 == www.sha256["1m7.bin"] and done.bytes == www.size("1m7.bin")
    (tls,) = [e for e in events if isinstance(e, ev.TlsInfo)]
    assert tls.version in ("TLSv1.2", "TLSv1.3") and "rawtui lab test CA" in tls.issuer
    (resp,) = [e for e in events if isinstance(e, ev.HttpResponse)]
    assert resp.status == 200 and resp.content_length == www.size("1m7.bin")
    records = Counter((e.direction, e.content_type) for e in events if isinstance(e, ev.TlsRecord))
    assert records["in", "ApplicationData"] >= www.size("1m7.bin") // 16384
    # the command line: the same sha256 in the summary, no warning
    res = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(tmp_path / "p.pcap"), "--headless",
                          "--keylog", str(tmp_path / "k.txt")], capture_output=True, text=True, timeout=120,
                         env=child_env(COLUMNS="200"), check=False)
    assert res.returncode == 0, res.stderr
    assert www.sha256["1m7.bin"] in res.stdout + res.stderr
    assert "warning" not in res.stdout + res.stderr


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_curl_sslkeylogfile_decrypted(lab: Lab, www, tls_site, tmp_path: Path, version: str) -> None:
    curl = require_tool("curl")
    keys = tmp_path / "keys.txt"
    dump = start_tcpdump(lab, lab.client_ns, tmp_path / "c.pcap")
    with dump:
        tls = ["--tlsv1.3"] if version == "1.3" else ["--tlsv1.2", "--tls-max", "1.2"]
        r = lab.run(lab.client_ns, [curl, "-sS", "--cacert", str(tls_site.ca), *tls, "-o", "/dev/null",
                                    f"https://{lab.server_ip}:{TLS_PORTS['good']}/1m.bin"],
                    capture_output=True, text=True, timeout=60, env=child_env(SSLKEYLOGFILE=str(keys)))
        assert r.returncode == 0, r.stderr
        dump.wait_for("the connection closed", _all_ended(1))
    table = conversations(tmp_path / "c.pcap")
    assert [c.kind for c in table.conversations] == ["TLS"]
    events = _replay(tmp_path / "c.pcap", keys)
    (tls_ev,) = [e for e in events if isinstance(e, ev.TlsInfo)]
    assert tls_ev.version == f"TLSv{version}"
    (done,) = [e for e in events if isinstance(e, ev.Done)]
    assert done.sha256 == www.sha256["1m.bin"]
    # without the key log: the same flow as TLS records, no body, no error
    plain = _replay(tmp_path / "c.pcap", None)
    assert not [e for e in plain if isinstance(e, ev.Done | ev.Error)]
    assert sum(e.length for e in plain if isinstance(e, ev.TlsRecord) and e.direction == "in") > www.size("1m.bin")


def test_keylog_without_the_flows_secrets(run_rawtui, lab: Lab, tls_site, tmp_path: Path) -> None:
    url = f"https://{lab.server_ip}:{TLS_PORTS['good']}/1m.bin"
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "--keylog", "k1.txt", "--pcap", "p1.pcap", "-o", "a", url)
    assert r.returncode == 0, r.stderr
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "--keylog", "k2.txt", "-o", "b", url)
    assert r.returncode == 0, r.stderr
    res = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(tmp_path / "p1.pcap"), "--headless",
                          "--keylog", str(tmp_path / "k2.txt")], capture_output=True, text=True, timeout=120,
                         env=child_env(COLUMNS="300"), check=False)
    assert res.returncode == 0, res.stderr
    warnings = [line for line in (res.stdout + res.stderr).splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "has no secrets for this connection" in warnings[0], warnings
    assert "Traceback" not in res.stderr
