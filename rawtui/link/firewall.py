"""The firewall guard: stop the kernel from resetting a connection it does not know it has.

The kernel has no socket for our TCP connection, so it answers the server's SYN-ACK with a RST.
The guard drops exactly those kernel RSTs (to the server, from our port) on the output hook: a table
``inet rawtui_<pid>_<port>`` that rawtui installs itself, in one nftables netlink batch, so no tool is
needed; its rule matches ``ip daddr`` or ``ip6 daddr``, the server's family. Only when the kernel refuses
that batch for another reason than a missing privilege (no nf_tables, say) does the guard run the ``nft``
binary or, failing that, iptables (ip6tables for IPv6). Frames sent through
AF_PACKET bypass that hook, so the stack's own RSTs still go out. Every table and rule carries the
owner's pid so a crashed run's can be found and removed (cleanup_stale).

The netlink messages are packed here with struct: the very expressions ``nft --debug=netlink`` shows
for the text rule (the tests check them against nft 1.0.6 and against pyroute2's decoder). pyroute2
itself is not imported: it costs 0.13-0.3 s, which the download path avoids (see rawtui.link.route).
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import os
import re
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from rawtui.aside import Aside
from rawtui.errors import LinkError, PrivilegeError

_TIMEOUT = 10.0
_NAME = re.compile(r"^rawtui_(\d+)(?:_\d+)?$")
_PERMISSION_WORDS = ("Operation not permitted", "Permission denied", "must be root")
_PRIVILEGE_ERRNOS = (errno.EPERM, errno.EACCES)
BACKENDS = ("netlink", "nft", "iptables")

# <linux/netlink.h>, <linux/netfilter/nfnetlink.h>, <linux/netfilter/nf_tables.h>, <linux/netfilter.h>
NETLINK_NETFILTER = 12
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x300, 0x200, 0x400, 0x800
NLA_F_NESTED, NLA_TYPE_MASK = 0x8000, 0x3FFF
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE = 0, 1, 2, 3, 6
NFPROTO_UNSPEC, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6 = 0, 1, 2, 10
NF_INET_LOCAL_OUT = 3
NF_DROP, NF_ACCEPT = 0, 1
IPPROTO_TCP = 6
TCP_RST = 0x04
NFTA_TABLE_NAME, NFTA_TABLE_FLAGS = 1, 2
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HOOK, NFTA_CHAIN_POLICY, NFTA_CHAIN_TYPE = 1, 3, 4, 5, 7
NFTA_HOOK_HOOKNUM, NFTA_HOOK_PRIORITY = 1, 2
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS = 1, 2, 4
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE = 1
NFTA_META_DREG, NFTA_META_KEY = 1, 2
NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_OFFSET, NFTA_PAYLOAD_LEN = 1, 2, 3, 4
NFTA_CMP_SREG, NFTA_CMP_OP, NFTA_CMP_DATA = 1, 2, 3
NFTA_BITWISE_SREG, NFTA_BITWISE_DREG, NFTA_BITWISE_LEN = 1, 2, 3
NFTA_BITWISE_MASK, NFTA_BITWISE_XOR, NFTA_BITWISE_OP = 4, 5, 6
NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA = 1, 2
NFT_REG_VERDICT, NFT_REG_1 = 0, 1
NFT_CMP_EQ = 0
NFT_BITWISE_BOOL = 0
_META_KEYS = {"nfproto": 15, "l4proto": 16}
_PAYLOAD_BASES = {"network": 1, "transport": 2}
_VERDICTS = {"drop": NF_DROP, "accept": NF_ACCEPT}


@dataclass(frozen=True, slots=True)
class Family:
    """What the rule says differently for IPv4 and IPv6: the one parameter of the rule's building."""

    nfproto: int  # meta nfproto's value
    daddr_offset: int  # the destination address in the network header
    nft: str  # the nft keyword of the network header ("ip daddr", "ip6 daddr")
    iptables: str  # the fallback binary


FAMILIES = {
    4: Family(NFPROTO_IPV4, 16, "ip", "iptables"),
    6: Family(NFPROTO_IPV6, 24, "ip6", "ip6tables"),
}


# --- netlink attributes (TLVs, 4-byte aligned; nftables numbers are big-endian) -------------------


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("!I", value))


def _i32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("!i", value))


def _text(kind: int, value: str) -> bytes:
    return _attr(kind, value.encode() + b"\0")


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, value) of each attribute in data."""
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & NLA_TYPE_MASK, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def _words(data: bytes) -> str:
    """Register data as nft --debug=netlink prints it: 32-bit words in (little-endian) host order."""
    padded = data + b"\0" * (-len(data) % 4)
    return " ".join(f"0x{word:08x}" for (word,) in struct.iter_unpack("<I", padded))


# --- the rule's expressions: one record per `[ ... ]` line of nft --debug=netlink ------------------


def _expression(name: str, *attrs: bytes) -> bytes:
    return _nested(NFTA_LIST_ELEM, _text(NFTA_EXPR_NAME, name), _nested(NFTA_EXPR_DATA, *attrs))


@dataclass(frozen=True, slots=True)
class Meta:
    """Load a packet property (nfproto: the layer-3 family; l4proto: the layer-4 protocol) into reg 1."""

    key: str

    def encode(self) -> bytes:
        return _expression("meta", _u32(NFTA_META_KEY, _META_KEYS[self.key]), _u32(NFTA_META_DREG, NFT_REG_1))

    def __str__(self) -> str:
        return f"[ meta load {self.key} => reg 1 ]"


@dataclass(frozen=True, slots=True)
class Payload:
    """Load length bytes at offset of the network or transport header into reg 1."""

    base: str
    offset: int
    length: int

    def encode(self) -> bytes:
        return _expression(
            "payload",
            _u32(NFTA_PAYLOAD_DREG, NFT_REG_1),
            _u32(NFTA_PAYLOAD_BASE, _PAYLOAD_BASES[self.base]),
            _u32(NFTA_PAYLOAD_OFFSET, self.offset),
            _u32(NFTA_PAYLOAD_LEN, self.length),
        )

    def __str__(self) -> str:
        return f"[ payload load {self.length}b @ {self.base} header + {self.offset} => reg 1 ]"


@dataclass(frozen=True, slots=True)
class Cmp:
    """Go on only if reg 1 equals data (its length is the length compared)."""

    data: bytes

    def encode(self) -> bytes:
        return _expression(
            "cmp",
            _u32(NFTA_CMP_SREG, NFT_REG_1),
            _u32(NFTA_CMP_OP, NFT_CMP_EQ),
            _nested(NFTA_CMP_DATA, _attr(NFTA_DATA_VALUE, self.data)),
        )

    def __str__(self) -> str:
        return f"[ cmp eq reg 1 {_words(self.data)} ]"


@dataclass(frozen=True, slots=True)
class Bitwise:
    """reg 1 = (reg 1 & mask) ^ xor, over len(mask) bytes."""

    mask: bytes
    xor: bytes

    def encode(self) -> bytes:
        return _expression(
            "bitwise",
            _u32(NFTA_BITWISE_SREG, NFT_REG_1),
            _u32(NFTA_BITWISE_DREG, NFT_REG_1),
            _u32(NFTA_BITWISE_OP, NFT_BITWISE_BOOL),
            _u32(NFTA_BITWISE_LEN, len(self.mask)),
            _nested(NFTA_BITWISE_MASK, _attr(NFTA_DATA_VALUE, self.mask)),
            _nested(NFTA_BITWISE_XOR, _attr(NFTA_DATA_VALUE, self.xor)),
        )

    def __str__(self) -> str:
        return f"[ bitwise reg 1 = ( reg 1 & {_words(self.mask)} ) ^ {_words(self.xor)} ]"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's end: drop (or accept) the packet."""

    verdict: str

    def encode(self) -> bytes:
        code = _i32(NFTA_VERDICT_CODE, _VERDICTS[self.verdict])
        return _expression(
            "immediate",
            _u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT),
            _nested(NFTA_IMMEDIATE_DATA, _nested(NFTA_DATA_VERDICT, code)),
        )

    def __str__(self) -> str:
        return f"[ immediate reg 0 {self.verdict} ]"


Expression = Meta | Payload | Cmp | Bitwise | Verdict


@dataclass(frozen=True, slots=True)
class NftMessage:
    """One nftables request of a batch: NFT_MSG_* kind, NLM_F_* flags (besides REQUEST and ACK), attributes."""

    kind: int
    flags: int
    attrs: bytes
    family: int = NFPROTO_INET


def _batch(messages: Sequence[NftMessage]) -> bytes:
    """The datagram the kernel applies all or nothing: BATCH_BEGIN (seq 0), messages (seq 1..n), END."""

    def header(kind: int, flags: int, seq: int, family: int, res_id: int, attrs: bytes) -> bytes:
        return (
            struct.pack("=IHHII", 20 + len(attrs), kind, NLM_F_REQUEST | flags, seq, 0)
            + struct.pack("!BBH", family, 0, res_id)
            + attrs
        )

    parts = [header(NFNL_MSG_BATCH_BEGIN, 0, 0, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES, b"")]
    for seq, message in enumerate(messages, 1):
        kind = (NFNL_SUBSYS_NFTABLES << 8) | message.kind
        parts.append(header(kind, NLM_F_ACK | message.flags, seq, message.family, 0, message.attrs))
    parts.append(header(NFNL_MSG_BATCH_END, 0, len(messages) + 1, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES, b""))
    return b"".join(parts)


def _replies(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in a datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            return
        yield kind, seq, data[offset + 16 : offset + length]
        offset += (length + 3) & ~3


def _netlink_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.settimeout(_TIMEOUT)
    sock.bind((0, 0))
    return sock


def _transact(messages: Sequence[NftMessage], release: list[Aside[None]] | None = None) -> None:
    """Send one batch and wait for the kernel's verdict; raise OSError(errno) when it refuses it.

    Every message asks for an ACK. The kernel handles the batch inside sendto(), so once the first
    error is read the rest of the answers are already queued: drain them without waiting. (A refusal
    of the whole batch, EPERM say, is one error for BATCH_BEGIN and no ACK for the messages.)

    ``release``: the socket is closed in a thread appended there. After a batch that deleted something
    the close waits for the kernel to free it (nf_tables flushes its destroy work on the socket's release:
    an RCU grace period, 5-29 ms measured), though the batch took effect when its ACKs came.
    """
    sock = _netlink_socket()
    try:
        sock.sendto(_batch(messages), (0, 0))
        waiting = set(range(1, len(messages) + 1))
        failure = 0
        while waiting:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            for kind, seq, payload in _replies(data):
                if kind == NLMSG_ERROR and len(payload) >= 4:
                    waiting.discard(seq)
                    code = -struct.unpack_from("=i", payload)[0]
                    if code and not failure:
                        failure = code
                        sock.setblocking(False)
        if failure:
            raise OSError(failure, os.strerror(failure))
    finally:
        if release is None:
            sock.close()
        else:
            release.append(Aside(sock.close, "rawtui-netlink-close"))


def _netlink_table_names() -> list[str]:
    """The names of the inet tables, by a netlink dump; OSError when the kernel refuses it."""
    return [name for _, name in _netlink_tables(NFPROTO_INET)]


def _netlink_tables(family: int = NFPROTO_UNSPEC) -> list[tuple[int, str]]:
    """(family, name) of the nftables tables (of one family, or all), by a netlink dump; OSError when the
    kernel refuses it."""
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE
    request = struct.pack("=IHHII", 20, kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + struct.pack("!BBH", family, 0, 0)
    tables: list[tuple[int, str]] = []
    with _netlink_socket() as sock:
        sock.sendto(request, (0, 0))
        while True:
            for reply, _seq, payload in _replies(sock.recv(1 << 16)):
                if reply == NLMSG_DONE:
                    return tables
                if reply == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    raise OSError(code, os.strerror(code))
                if reply == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE:
                    for attr, value in _attrs(payload[4:]):
                        if attr == NFTA_TABLE_NAME:
                            tables.append((payload[0], value.rstrip(b"\0").decode(errors="replace")))


def _delete_table(name: str) -> NftMessage:
    return NftMessage(NFT_MSG_DELTABLE, 0, _text(NFTA_TABLE_NAME, name))


def _errno_text(exc: OSError) -> str:
    """e.g. "Operation not supported (EOPNOTSUPP)"."""
    if exc.errno is None:
        return str(exc) or type(exc).__name__
    name = "EOPNOTSUPP" if exc.errno == errno.EOPNOTSUPP else errno.errorcode.get(exc.errno, exc.errno)
    return f"{os.strerror(exc.errno)} ({name})"


# --- the guard -----------------------------------------------------------------------------------


class FirewallGuard:
    """One rule dropping the kernel's RSTs for one connection, from install() until remove().

    ``backend`` None means netlink, falling back to the nft binary then iptables when the kernel
    refuses netlink for a reason other than a missing privilege; "netlink", "nft" or "iptables" use that
    one only. After install() ``backend`` says which one holds the rule, ``description`` says it in words.
    """

    def __init__(
        self,
        remote_ip: str,
        remote_port: int,
        local_port: int,
        pid: int | None = None,
        backend: str | None = None,
    ) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown firewall backend {backend!r}")
        address = ipaddress.ip_address(remote_ip.partition("%")[0])  # a zone names the link, not the host
        self.remote_ip = str(address)
        self.family = FAMILIES[address.version]
        self._daddr = address.packed
        self.remote_port = remote_port
        self.local_port = local_port
        self.pid = os.getpid() if pid is None else pid
        self.name = f"rawtui_{self.pid}_{local_port}"  # a valid nft identifier, unique per connection
        self.backend = backend or "netlink"
        self.fallback = backend is None  # may leave netlink for a binary
        self.netlink_refused: str | None = None  # why the kernel refused netlink, when it fell back
        self.installed = False
        self.last_error: str | None = None  # what the last failed remove() met

    @property
    def description(self) -> str:
        """One line: which way holds the rule, its name, what it drops (and why not netlink)."""
        host = f"[{self.remote_ip}]" if self.family.nfproto == NFPROTO_IPV6 else self.remote_ip
        flow = f"local port {self.local_port} -> {host}:{self.remote_port}"
        where = {
            "netlink": f"netlink nftables table inet {self.name}",
            "nft": f"nft binary table inet {self.name}",
            "iptables": f"{self.family.iptables} binary OUTPUT rule {self.name}",
        }[self.backend]
        refused = f" (netlink refused: {self.netlink_refused})" if self.netlink_refused else ""
        return f"{where}: drop kernel RST {flow}{refused}"

    # --- what is installed --------------------------------------------------------------------

    def rule_expressions(self) -> list[Expression]:
        """``ip daddr R tcp sport L tcp dport P tcp flags & rst == rst drop`` (``ip6 daddr`` for IPv6) as
        nft 1.0.6 compiles it in an inet table: the family check first, both ports in one 4-byte load."""
        return [
            Meta("nfproto"),
            Cmp(bytes([self.family.nfproto])),
            Payload("network", self.family.daddr_offset, len(self._daddr)),
            Cmp(self._daddr),
            Meta("l4proto"),
            Cmp(bytes([IPPROTO_TCP])),
            Payload("transport", 0, 4),
            Cmp(struct.pack("!HH", self.local_port, self.remote_port)),
            Payload("transport", 13, 1),
            Bitwise(bytes([TCP_RST]), b"\0"),
            Cmp(bytes([TCP_RST])),
            Verdict("drop"),
        ]

    def netlink_create(self) -> list[NftMessage]:
        """The batch install() sends first: create the table (refused with EEXIST, changing nothing, when
        a table of that name exists), its output chain and the rule."""
        return [
            NftMessage(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, self._table_attrs()),
            *self._contents(),
        ]

    def netlink_replace(self) -> list[NftMessage]:
        """The batch that replaces a table of the same name (left by a crashed run with our pid and port),
        as nft_ruleset() does: add the table (a no-op if it exists), delete it, create it anew."""
        table = NftMessage(NFT_MSG_NEWTABLE, NLM_F_CREATE, self._table_attrs())
        return [table, _delete_table(self.name), table, *self._contents()]

    def _table_attrs(self) -> bytes:
        return _text(NFTA_TABLE_NAME, self.name) + _u32(NFTA_TABLE_FLAGS, 0)

    def _contents(self) -> list[NftMessage]:
        chain = (
            _text(NFTA_CHAIN_TABLE, self.name)
            + _text(NFTA_CHAIN_NAME, "output")
            + _text(NFTA_CHAIN_TYPE, "filter")
            + _u32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            + _nested(
                NFTA_CHAIN_HOOK, _u32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT), _i32(NFTA_HOOK_PRIORITY, 0)
            )
        )
        rule = (
            _text(NFTA_RULE_TABLE, self.name)
            + _text(NFTA_RULE_CHAIN, "output")
            + _nested(NFTA_RULE_EXPRESSIONS, *(expr.encode() for expr in self.rule_expressions()))
        )
        return [
            NftMessage(NFT_MSG_NEWCHAIN, NLM_F_CREATE, chain),
            NftMessage(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, rule),
        ]

    def nft_ruleset(self) -> str:
        """The nft script that replaces any table of the same name, atomically (the nft fallback's
        netlink_replace())."""
        return f"table inet {self.name} {{}}\ndelete table inet {self.name}\n" + self._nft_table()

    def nft_create(self) -> str:
        """The nft script the nft fallback runs first: it creates the table, or fails changing nothing (one
        transaction) when a table of that name exists. Cheaper than nft_ruleset(), whose ``delete table``
        makes nft wait for an RCU grace period (~5-10 ms) even when there was nothing to delete."""
        return f"create table inet {self.name}\n" + self._nft_table()

    def _nft_table(self) -> str:
        return (
            f"table inet {self.name} {{\n"
            "  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    {self.family.nft} daddr {self.remote_ip} tcp sport {self.local_port} tcp dport {self.remote_port}"
            " tcp flags & rst == rst drop\n"
            "  }\n"
            "}\n"
        )

    def iptables_rule(self) -> list[str]:
        """The OUTPUT rule's match and target, as iptables (ip6tables) arguments after -I/-D OUTPUT."""
        return [
            "-p", "tcp", "-d", self.remote_ip,
            "--sport", str(self.local_port), "--dport", str(self.remote_port),
            "--tcp-flags", "RST", "RST",
            "-m", "comment", "--comment", self.name,
            "-j", "DROP",
        ]  # fmt: skip

    # --- install and remove -------------------------------------------------------------------

    def install(self) -> None:
        """Add the rule; raise PrivilegeError without CAP_NET_ADMIN, LinkError when every way refuses."""
        if self.installed:
            return
        if self.backend == "netlink":
            try:
                self._install_netlink()
            except OSError as exc:
                if exc.errno in _PRIVILEGE_ERRNOS:
                    raise PrivilegeError(
                        "installing the firewall rule over netlink needs root or CAP_NET_ADMIN: run with sudo"
                    ) from None
                if not self.fallback:
                    raise LinkError(f"the kernel refused the nftables rule: {_errno_text(exc)}") from None
                self._install_with_a_binary(_errno_text(exc))
        else:
            self._install_with(self.backend)
        self.installed = True
        atexit.register(self.remove)

    def _install_netlink(self) -> None:
        try:
            _transact(self.netlink_create())
        except FileExistsError:  # left by a crashed run with the same pid and port: replace it
            _transact(self.netlink_replace())

    def _install_with_a_binary(self, refused: str) -> None:
        """The fallback: the nft binary, then iptables; the last refusal when none takes the rule."""
        import shutil  # (the fallbacks' modules load when a fallback runs: not at start-up)

        ways = {"nft": "nft", "iptables": self.family.iptables}  # backend: its binary
        binaries = [backend for backend, name in ways.items() if shutil.which(name)]
        if not binaries:
            raise LinkError(
                f"the kernel refused the nftables rule over netlink ({refused}) and neither nft nor "
                f"{self.family.iptables} is available"
            )
        for binary in binaries:
            try:
                self._install_with(binary)
            except LinkError:
                if binary == binaries[-1]:
                    raise
                continue
            self.backend, self.netlink_refused = binary, refused
            return

    def _install_with(self, binary: str) -> None:
        if binary == "nft":
            if _run(["nft", "-f", "-"], self.nft_create()) is None:  # it exists (or nft fails: say why)
                _run_checked(["nft", "-f", "-"], self.nft_ruleset())
        else:
            _run_checked([self.family.iptables, "-w", "-I", "OUTPUT", *self.iptables_rule()])

    def remove(self, release: list[Aside[None]] | None = None) -> None:
        """Remove the rule if installed; never raises, so it is safe from signal handlers and atexit.

        ``release`` (netlink): the rule is gone when this returns, and the netlink socket's close, which
        then waits for the kernel to free the table (an RCU grace period), goes on in a thread appended
        there: the end of a download waits for it beside its raw socket's close, not before its summary."""
        if not self.installed:
            return
        self.installed = False
        atexit.unregister(self.remove)
        if self.backend == "netlink":
            try:
                _transact([_delete_table(self.name)], release)
            except OSError as exc:
                self.last_error = _errno_text(exc)
            else:
                self.last_error = None
            return
        if self.backend == "nft":
            command = ["nft", "delete", "table", "inet", self.name]
        else:
            command = [self.family.iptables, "-w", "-D", "OUTPUT", *self.iptables_rule()]
        import subprocess

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

    nftables tables are listed and deleted over netlink (with the nft binary only when the kernel refuses
    netlink for another reason than a missing privilege); iptables (ip6tables) rules with iptables
    (ip6tables), if installed.
    Best effort: without privileges, or without any way, it removes nothing and says nothing.
    """
    import shutil

    removed: list[str] = []
    tables: list[tuple[int, str]] | None = None
    try:
        tables = _netlink_tables()
    except OSError as exc:
        if exc.errno not in _PRIVILEGE_ERRNOS and shutil.which("nft"):
            for name in _stale(_nft_table_names()):
                if _run(["nft", "delete", "table", "inet", name]) is not None:
                    removed.append(f"nft table inet {name}")
    else:
        for name in _stale([name for family, name in tables if family == NFPROTO_INET]):
            try:
                _transact([_delete_table(name)])
            except OSError:
                continue
            removed.append(f"nftables table inet {name}")
    for family in FAMILIES.values():
        binary = family.iptables
        if shutil.which(binary) and (tables is None or _iptables_may_hold_rules(family, tables)):
            for rule, name in _iptables_rawtui_rules(binary):
                if name in _stale([name]) and _run([binary, "-w", "-D", *rule]) is not None:
                    removed.append(f"{binary} OUTPUT rule {name}")
    return removed


# Where iptables-legacy lists the x_tables tables that exist (none loaded: no file, or an empty one)
_LEGACY_TABLES = {NFPROTO_IPV4: "/proc/net/ip_tables_names", NFPROTO_IPV6: "/proc/net/ip6_tables_names"}


def _iptables_may_hold_rules(family: Family, tables: list[tuple[int, str]]) -> bool:
    """Could ``iptables -S OUTPUT`` (``ip6tables``) show any rule? The nft-based iptables keeps its rules in
    the nftables table ``ip filter`` (``ip6 filter``), which the netlink dump lists; iptables-legacy keeps
    them in x_tables, whose tables the kernel names in /proc/net/ip_tables_names. Neither table: no rule of
    any process, and no program to start (two of them took 5-10 ms at the end of every download)."""
    if (family.nfproto, "filter") in tables:
        return True
    try:
        with open(_LEGACY_TABLES[family.nfproto]) as f:
            return "filter" in f.read().split()
    except OSError:
        return False


def _run_checked(command: list[str], stdin: str | None = None) -> None:
    import subprocess

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
    import subprocess

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
    import json

    try:
        items = json.loads(listing).get("nftables", [])
    except (ValueError, AttributeError):
        return []
    return [
        item["table"]["name"] for item in items if "table" in item and item["table"].get("family") == "inet"
    ]


def _iptables_rawtui_rules(binary: str = "iptables") -> list[tuple[list[str], str]]:
    """The OUTPUT rules with a rawtui comment (of iptables or ip6tables): (rule arguments after -D, the
    comment)."""
    import shlex

    listing = _run([binary, "-w", "-S", "OUTPUT"])
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
