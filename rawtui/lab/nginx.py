"""nginx in the lab's server namespace: a minimal config in a temp dir, started and stopped by pid.

Nothing outside the temp dir is read or written (no /etc/nginx, /var/log/nginx, /var/lib/nginx, /run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from rawtui.lab.topology import Lab, LabError

__all__ = ["NginxHandle", "find_nginx", "start_nginx"]

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log {access_log};
{temp_paths}
    types {{
        application/octet-stream bin;
        text/html html;
        text/plain txt;
    }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server_tokens off;

    server {{
        listen {ip}:{port} reuseport;{listen6}
        server_name _;
        root {root};
        location / {{
        }}
    }}
{extra_conf}
}}
"""


def find_nginx() -> str | None:
    """Path of the nginx binary, or None."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(eq=False)
class NginxHandle:
    """A running nginx: ``url`` is its base URL, ``stop()`` kills it by pid and removes its temp dir."""

    lab: Lab
    proc: subprocess.Popen[Any]
    tmpdir: Path
    ip: str
    port: int
    ip6: str | None = None  # the server's IPv6 address in a dual-stack lab (nginx listens on [::] too)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.ip}" if self.port == 80 else f"http://{self.ip}:{self.port}"

    @property
    def url6(self) -> str:
        """The base URL over IPv6 (a dual-stack lab only)."""
        if self.ip6 is None:
            raise LabError("nginx listens on IPv6 only in a dual-stack lab (Lab.create(ipv6=True))")
        return f"http://[{self.ip6}]" if self.port == 80 else f"http://[{self.ip6}]:{self.port}"

    @property
    def error_log(self) -> str:
        try:
            return (self.tmpdir / "error.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop nginx (SIGTERM to its process group, then SIGKILL) and remove its temp dir. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.lab.stop(self.proc)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_nginx(
    lab: Lab,
    root_dir: str | os.PathLike[str],
    port: int = 80,
    *,
    access_log: bool = False,
    timeout: float = 10.0,
    extra_conf: str = "",
) -> NginxHandle:
    """Start nginx in ``lab``'s server namespace serving ``root_dir`` on ``lab.server_ip:port`` (and on
    ``[::]:port`` in a dual-stack lab: ``handle.url6``).

    ``extra_conf`` is pasted into the ``http`` block (more ``server`` blocks: TLS sites, redirects).
    Returns once the port accepts connections (checked from inside the server namespace).
    Raises LabError if nginx is not installed or does not come up.
    """
    nginx = find_nginx()
    if nginx is None:
        raise LabError("nginx is not installed (Debian: apt-get install nginx-light)")
    root = Path(root_dir).resolve()
    if not root.is_dir():
        raise LabError(f"nginx root {root} is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f"rawtui-nginx-{lab.prefix}-"))
    try:
        temp_paths = "\n".join(f"    {name}_temp_path {tmp}/{name};" for name in _TEMP_PATHS)
        conf = tmp / "nginx.conf"
        conf.write_text(
            _CONF.format(
                tmp=tmp,
                access_log=f"{tmp}/access.log" if access_log else "off",
                temp_paths=temp_paths,
                ip=lab.server_ip,
                port=port,
                listen6=f"\n        listen [::]:{port} ipv6only=on reuseport;" if lab.ipv6 else "",
                root=root,
                extra_conf=extra_conf,
            )
        )
        out = (tmp / "stdout.log").open("wb")
        with out:
            proc = lab.popen(
                lab.server_ns,
                [nginx, "-p", f"{tmp}/", "-c", str(conf), "-e", f"{tmp}/error.log"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    handle = NginxHandle(lab=lab, proc=proc, tmpdir=tmp, ip=lab.server_ip, port=port,
                         ip6=lab.server_ip6 if lab.ipv6 else None)
    try:
        _wait_listening(lab, handle, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


_CONNECT_SCRIPT = """
import socket, sys, time
ip, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((ip, port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.02)
"""


def _wait_listening(lab: Lab, handle: NginxHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if handle.proc.poll() is not None:
            log = (handle.tmpdir / "stdout.log").read_text(errors="replace") + handle.error_log
            raise LabError(f"nginx exited with status {handle.proc.returncode}: {log.strip()[-2000:]}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise LabError(
                f"nginx did not accept connections on {handle.ip}:{handle.port} within {timeout} s"
            )
        res = lab.run(
            lab.server_ns,
            [sys.executable, "-c", _CONNECT_SCRIPT, handle.ip, str(handle.port), str(min(left, 1.0))],
            capture_output=True,
            timeout=left + 10,
        )
        if res.returncode == 0:
            return
