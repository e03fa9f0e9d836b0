"""The firewall guard: stop the kernel from resetting a connection it does not know it has.

The kernel has no socket for our TCP connection, so it answers the server's SYN-ACK with a RST.
The guard drops exactly those kernel RSTs (to the server, from our port) on the output hook, with
nftables or, when nft is missing, iptables. Frames sent through AF_PACKET bypass that hook, so the
stack's own RSTs still go out. Every rule carries the owner's pid so a crashed run's rules can be
found and removed (cleanup_stale).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shlex
import shutil
import subprocess
from types import TracebackType
from typing import Self

from rawtui.errors import LinkError, PrivilegeError

_TIMEOUT = 10.0
_NAME = re.compile(r"^rawtui_(\d+)(?:_\d+)?$")
_PERMISSION_WORDS = ("Operation not permitted", "Permission denied", "must be root")


class FirewallGuard:
    """One rule dropping the kernel's RSTs for one connection, from install() until remove()."""

    def __init__(
        self,
        remote_ip: str,
        remote_port: int,
        local_port: int,
        pid: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.remote_ip = remote_ip
        self.remote_port = remote_port
        self.local_port = local_port
        self.pid = os.getpid() if pid is None else pid
        self.name = f"rawtui_{self.pid}_{local_port}"  # a valid nft identifier, unique per connection
        self.backend = backend or _pick_backend()
        if self.backend not in ("nft", "iptables"):
            raise ValueError(f"unknown firewall backend {self.backend!r}")
        self.installed = False
        self.last_error: str | None = None  # what the last failed remove() met
        flow = f"local port {local_port} -> {remote_ip}:{remote_port}"
        where = (
            f"nft table inet {self.name}" if self.backend == "nft" else f"iptables OUTPUT rule {self.name}"
        )
        self.description = f"{where}: drop kernel RST {flow}"

    def nft_ruleset(self) -> str:
        """The nft script that replaces any table of the same name, atomically: what install() runs when
        its table already exists (left by a crashed run with the same pid and port)."""
        return f"table inet {self.name} {{}}\ndelete table inet {self.name}\n" + self._nft_table()

    def nft_create(self) -> str:
        """The nft script install() runs first: it creates the table, or fails changing nothing (one
        transaction) when a table of that name exists. Cheaper than nft_ruleset(), whose ``delete table``
        makes nft wait for an RCU grace period (~5-10 ms) even when there was nothing to delete."""
        return f"create table inet {self.name}\n" + self._nft_table()

    def _nft_table(self) -> str:
        return (
            f"table inet {self.name} {{\n"
            "  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    ip daddr {self.remote_ip} tcp sport {self.local_port} tcp dport {self.remote_port}"
            " tcp flags & rst == rst drop\n"
            "  }\n"
            "}\n"
        )

    def iptables_rule(self) -> list[str]:
        """The OUTPUT rule's match and target, as iptables arguments after -I/-D OUTPUT."""
        return [
            "-p", "tcp", "-d", self.remote_ip,
            "--sport", str(self.local_port), "--dport", str(self.remote_port),
            "--tcp-flags", "RST", "RST",
            "-m", "comment", "--comment", self.name,
            "-j", "DROP",
        ]  # fmt: skip

    def install(self) -> None:
        """Add the rule; raise PrivilegeError without CAP_NET_ADMIN, LinkError when the tool refuses."""
        if self.installed:
            return
        if self.backend == "nft":
            if _run(["nft", "-f", "-"], self.nft_create()) is None:  # it exists (or nft fails: say why)
                _run_checked(["nft", "-f", "-"], self.nft_ruleset())
        else:
            _run_checked(["iptables", "-w", "-I", "OUTPUT", *self.iptables_rule()])
        self.installed = True
        atexit.register(self.remove)

    def remove(self) -> None:
        """Remove the rule if installed; never raises, so it is safe from signal handlers and atexit."""
        if not self.installed:
            return
        self.installed = False
        atexit.unregister(self.remove)
        if self.backend == "nft":
            command = ["nft", "delete", "table", "inet", self.name]
        else:
            command = ["iptables", "-w", "-D", "OUTPUT", *self.iptables_rule()]
        try:
            done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            self.last_error = str(exc)
        else:
            self.last_error = _first_line(done.stderr) if done.returncode else None

    def __enter__(self) -> Self:
        self.install()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def cleanup_stale() -> list[str]:
    """Remove the guards left by rawtui processes that are gone; return what was removed.

    Best effort: without privileges, or without the tools, it removes nothing and says nothing.
    """
    removed: list[str] = []
    if shutil.which("nft"):
        for name in _stale(_nft_table_names()):
            if _run(["nft", "delete", "table", "inet", name]) is not None:
                removed.append(f"nft table inet {name}")
    if shutil.which("iptables"):
        for rule, name in _iptables_rawtui_rules():
            if name in _stale([name]) and _run(["iptables", "-w", "-D", *rule]) is not None:
                removed.append(f"iptables OUTPUT rule {name}")
    return removed


def _pick_backend() -> str:
    if shutil.which("nft"):
        return "nft"
    if shutil.which("iptables"):
        return "iptables"
    raise LinkError("neither nft nor iptables is available: install nftables")


def _run_checked(command: list[str], stdin: str | None = None) -> None:
    try:
        done = subprocess.run(
            command, check=False, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT
        )
    except PermissionError:
        raise PrivilegeError(f"cannot run {command[0]}: permission denied") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise LinkError(f"cannot run {command[0]}: {exc}") from None
    if done.returncode == 0:
        return
    message = done.stderr.strip() or done.stdout.strip()
    if any(word in message for word in _PERMISSION_WORDS):
        raise PrivilegeError(
            f"installing the firewall rule with {command[0]} needs root or CAP_NET_ADMIN: run with sudo"
        )
    raise LinkError(f"{command[0]} refused the firewall rule: {_first_line(message)}")


def _run(command: list[str], stdin: str | None = None) -> str | None:
    """Run a command; its stdout, or None when it failed."""
    try:
        done = subprocess.run(
            command, check=False, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _nft_table_names() -> list[str]:
    listing = _run(["nft", "-j", "list", "tables"])
    if listing is None:
        return []
    try:
        items = json.loads(listing).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    return [
        item["table"]["name"] for item in items if "table" in item and item["table"].get("family") == "inet"
    ]


def _iptables_rawtui_rules() -> list[tuple[list[str], str]]:
    """The OUTPUT rules with a rawtui comment: (rule arguments after -D, the comment)."""
    listing = _run(["iptables", "-w", "-S", "OUTPUT"])
    found = []
    for line in (listing or "").splitlines():
        words = shlex.split(line)
        if words[:2] != ["-A", "OUTPUT"] or "--comment" not in words:
            continue
        comment = words[words.index("--comment") + 1]
        if _NAME.match(comment):
            found.append((words[1:], comment))
    return found


def _stale(names: list[str]) -> list[str]:
    """The rawtui names among names whose pid is no longer running."""
    stale = []
    for name in names:
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            stale.append(name)
    return stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no pid at all
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")
