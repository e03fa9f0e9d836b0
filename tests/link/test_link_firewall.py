"""rawtui.link.firewall: the netlink messages (against nft 1.0.6 and pyroute2's decoder), the nft and
iptables fallbacks, error mapping, and in a namespace: install, effect, remove, stale, privilege."""

from __future__ import annotations

import atexit
import errno
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pytest
from conftest import child_env, nft_tables, require_tool, sh

from rawtui.errors import LinkError, PrivilegeError
from rawtui.link import firewall
from rawtui.link.firewall import FirewallGuard, NftMessage

REPO = Path(__file__).resolve().parents[2]
DEAD_PID = 4_194_305  # above the largest pid_max: never a running process
REAL_TRANSACT = firewall._transact
needs_nft = pytest.mark.needs_tool("ip", "nft")  # and root: the tests using it are marked lab too

# `nft --debug=netlink -f -` (nft 1.0.6) of
# `table inet t { chain output { ...; ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop } }`
NFT_DEBUG_NETLINK = """\
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x0202000a ]
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ payload load 4b @ transport header + 0 => reg 1 ]
  [ cmp eq reg 1 0x901f409c ]
  [ payload load 1b @ transport header + 13 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x00000004 ) ^ 0x00000000 ]
  [ cmp eq reg 1 0x00000004 ]
  [ immediate reg 0 drop ]
"""


# the same for `ip6 daddr 2001:db8:2::2 ...` (nft 1.0.6)
NFT_DEBUG_NETLINK6 = NFT_DEBUG_NETLINK.replace("""\
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x0202000a ]
""", """\
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ cmp eq reg 1 0xb80d0120 0x00000200 0x00000000 0x02000000 ]
""")


def guard(**kwargs: Any) -> FirewallGuard:
    return FirewallGuard("10.0.2.2", 8080, 40000, pid=1234, **kwargs)


def guard6(**kwargs: Any) -> FirewallGuard:
    return FirewallGuard("2001:db8:2::2", 8080, 40000, pid=1234, **kwargs)


# --- the netlink messages -------------------------------------------------------------------------


def test_rule_expressions_are_what_nft_compiles_from_the_text_rule() -> None:
    lines = "".join(f"  {expr}\n" for expr in guard().rule_expressions())
    assert lines == NFT_DEBUG_NETLINK


def test_ipv6_rule_expressions_are_what_nft_compiles_from_the_ip6_rule() -> None:
    assert NFT_DEBUG_NETLINK6 != NFT_DEBUG_NETLINK
    lines = "".join(f"  {expr}\n" for expr in guard6().rule_expressions())
    assert lines == NFT_DEBUG_NETLINK6
    zoned = FirewallGuard("fe80::2%eth0", 80, 40000, pid=1)  # the zone names the link: not in the rule
    assert zoned.remote_ip == "fe80::2" and "ip6 daddr fe80::2 tcp sport 40000 tcp dport 80" in zoned.nft_create()


def test_ipv6_rule_in_the_scripts_and_the_description() -> None:
    g = guard6()
    assert "ip6 daddr 2001:db8:2::2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in g.nft_ruleset()
    assert " ".join(g.iptables_rule()).startswith("-p tcp -d 2001:db8:2::2 --sport 40000 --dport 8080")
    flow = "drop kernel RST local port 40000 -> [2001:db8:2::2]:8080"
    assert g.description == f"netlink nftables table inet rawtui_1234_40000: {flow}"
    assert guard6(backend="iptables").description == f"ip6tables binary OUTPUT rule rawtui_1234_40000: {flow}"


def plain(value: Any) -> Any:
    """A pyroute2 message or attribute as plain dicts and lists."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if hasattr(value, "get") and "attrs" in value:
        return {slot[0]: plain(slot[1]) for slot in value["attrs"]}
    return value


def decode_batch(data: bytes) -> list[tuple[int, int, int, int, dict[str, Any]]]:
    """(type, flags, seq, family, attributes) of each message, decoded by pyroute2."""
    nftsocket = pytest.importorskip("pyroute2.netlink.nfnetlink.nftsocket")
    from pyroute2.netlink.nfnetlink import nfgen_msg

    classes = {0: nftsocket.nft_table_msg, 2: nftsocket.nft_table_msg, 3: nftsocket.nft_chain_msg,
               6: nftsocket.nft_rule_msg}  # fmt: skip
    decoded = []
    offset = 0
    while offset < len(data):
        (length, kind) = struct.unpack_from("=IH", data, offset)
        cls = classes[kind & 0xFF] if kind >> 8 == firewall.NFNL_SUBSYS_NFTABLES else nfgen_msg
        msg = cls(data[offset : offset + length])
        msg.decode()
        header = msg["header"]
        assert header["length"] == length
        decoded.append((kind, header["flags"], header["sequence_number"], msg["nfgen_family"], plain(msg)))
        offset += length
    assert offset == len(data)
    return decoded


def test_create_batch_decodes_as_table_chain_rule_with_pyroute2() -> None:
    messages = decode_batch(firewall._batch(guard().netlink_create()))
    request, ack, create, excl, append = 0x1, 0x4, 0x400, 0x200, 0x800
    assert [(kind, flags, seq, family) for kind, flags, seq, family, _ in messages] == [
        (0x10, request, 0, 0),  # BATCH_BEGIN, res_id NFNL_SUBSYS_NFTABLES
        (0xA00, request | ack | create | excl, 1, 1),  # NEWTABLE inet, fails if it exists
        (0xA03, request | ack | create, 2, 1),  # NEWCHAIN
        (0xA06, request | ack | create | append, 3, 1),  # NEWRULE
        (0x11, request, 4, 0),  # BATCH_END
    ]
    table, chain, rule = (attrs for _, _, _, _, attrs in messages[1:4])
    assert table == {"NFTA_TABLE_NAME": "rawtui_1234_40000", "NFTA_TABLE_FLAGS": 0}
    assert chain == {
        "NFTA_CHAIN_TABLE": "rawtui_1234_40000",
        "NFTA_CHAIN_NAME": "output",
        "NFTA_CHAIN_TYPE": "filter",
        "NFTA_CHAIN_POLICY": 1,  # NF_ACCEPT
        "NFTA_CHAIN_HOOK": {"NFTA_HOOK_HOOKNUM": 3, "NFTA_HOOK_PRIORITY": 0},  # NF_INET_LOCAL_OUT
    }
    assert rule["NFTA_RULE_TABLE"] == "rawtui_1234_40000" and rule["NFTA_RULE_CHAIN"] == "output"
    exprs = [(e["NFTA_EXPR_NAME"], e["NFTA_EXPR_DATA"]) for e in rule["NFTA_RULE_EXPRESSIONS"]]
    reg1 = "NFT_REG_1"

    def cmp(data: bytes) -> tuple[str, dict[str, Any]]:
        return ("cmp", {"NFTA_CMP_SREG": reg1, "NFTA_CMP_OP": "NFT_CMP_EQ",
                        "NFTA_CMP_DATA": {"NFTA_DATA_VALUE": data}})  # fmt: skip

    def payload(base: str, offset: int, length: int) -> tuple[str, dict[str, Any]]:
        return ("payload", {"NFTA_PAYLOAD_DREG": reg1, "NFTA_PAYLOAD_BASE": f"NFT_PAYLOAD_{base}_HEADER",
                            "NFTA_PAYLOAD_OFFSET": offset, "NFTA_PAYLOAD_LEN": length})  # fmt: skip

    assert exprs == [
        ("meta", {"NFTA_META_KEY": "NFT_META_NFPROTO", "NFTA_META_DREG": reg1}),
        cmp(b"\x02"),  # NFPROTO_IPV4
        payload("NETWORK", 16, 4),
        cmp(bytes([10, 0, 2, 2])),
        ("meta", {"NFTA_META_KEY": "NFT_META_L4PROTO", "NFTA_META_DREG": reg1}),
        cmp(b"\x06"),
        payload("TRANSPORT", 0, 4),
        cmp(struct.pack("!HH", 40000, 8080)),
        payload("TRANSPORT", 13, 1),
        ("bitwise", {"NFTA_BITWISE_SREG": reg1, "NFTA_BITWISE_DREG": reg1, "NFTA_BITWISE_OP": "NFT_BITWISE_BOOL",
                     "NFTA_BITWISE_LEN": 1, "NFTA_BITWISE_MASK": {"NFTA_DATA_VALUE": b"\x04"},
                     "NFTA_BITWISE_XOR": {"NFTA_DATA_VALUE": b"\x00"}}),
        cmp(b"\x04"),
        ("immediate", {"NFTA_IMMEDIATE_DREG": "NFT_REG_VERDICT",
                       "NFTA_IMMEDIATE_DATA": {"NFTA_DATA_VERDICT": {"NFTA_VERDICT_CODE": "NF_DROP"}}}),
    ]  # fmt: skip


def test_replace_batch_adds_deletes_and_recreates_the_table() -> None:
    g = guard()
    replace = g.netlink_replace()
    kinds = [(m.kind, m.flags) for m in replace]
    assert kinds == [
        (firewall.NFT_MSG_NEWTABLE, firewall.NLM_F_CREATE),  # no EXCL: a no-op when it exists
        (firewall.NFT_MSG_DELTABLE, 0),
        (firewall.NFT_MSG_NEWTABLE, firewall.NLM_F_CREATE),
        (firewall.NFT_MSG_NEWCHAIN, firewall.NLM_F_CREATE),
        (firewall.NFT_MSG_NEWRULE, firewall.NLM_F_CREATE | firewall.NLM_F_APPEND),
    ]
    assert replace[3:] == g.netlink_create()[1:]
    deleted = decode_batch(firewall._batch(replace))[2]
    assert deleted[0] == 0xA02 and deleted[4] == {"NFTA_TABLE_NAME": "rawtui_1234_40000"}


def test_description_says_which_way_holds_the_rule() -> None:
    flow = "drop kernel RST local port 40000 -> 10.0.2.2:8080"
    assert guard().description == f"netlink nftables table inet rawtui_1234_40000: {flow}"
    assert guard(backend="nft").description == f"nft binary table inet rawtui_1234_40000: {flow}"
    assert guard(backend="iptables").description == f"iptables binary OUTPUT rule rawtui_1234_40000: {flow}"
    with pytest.raises(ValueError, match="unknown firewall backend"):
        guard(backend="pf")


# --- install: netlink first, binaries as the fallback ---------------------------------------------


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """subprocess.run records its commands and succeeds: a test asserts it stays empty, or what ran."""
    calls: list[list[str]] = []

    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def fake_transact(monkeypatch: pytest.MonkeyPatch, *failures: OSError | None) -> list[list[NftMessage]]:
    """_transact records its batches and raises the given errors in turn (None: succeeds)."""
    batches: list[list[NftMessage]] = []
    queue = list(failures)

    def transact(messages: list[NftMessage], release: list[Any] | None = None) -> None:
        batches.append(list(messages))
        failure = queue.pop(0) if queue else None
        if failure is not None:
            raise failure

    monkeypatch.setattr(firewall, "_transact", transact)
    return batches


def test_netlink_install_creates_then_replaces_only_a_table_that_exists(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]]
) -> None:
    g = guard()
    batches = fake_transact(monkeypatch)
    g.install()  # the usual case: one batch, no delete
    assert batches == [g.netlink_create()] and g.installed and g.backend == "netlink"
    g.install()  # installed: nothing more
    assert len(batches) == 1
    g.remove()
    assert batches[-1] == [firewall._delete_table("rawtui_1234_40000")] and g.last_error is None

    batches = fake_transact(monkeypatch, FileExistsError(errno.EEXIST, "File exists"))
    g.install()  # left by a crashed run with the same pid and port: replaced
    assert batches == [g.netlink_create(), g.netlink_replace()] and g.installed
    g.remove()
    assert no_subprocess == []


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES])
def test_netlink_permission_error_is_a_privilege_error_without_fallback(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]], code: int
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    fake_transact(monkeypatch, OSError(code, os.strerror(code)))
    g = guard()
    with pytest.raises(PrivilegeError, match="needs root or CAP_NET_ADMIN") as caught:
        g.install()
    assert caught.value.exit_code == 3
    assert not g.installed and g.backend == "netlink"
    assert no_subprocess == []  # nft was there, but a missing privilege is not a reason to try it


def test_netlink_refusal_falls_back_to_nft_then_iptables(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    ran: list[str] = []

    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(command[0])
        code = 1 if command[0] == "nft" else 0  # nft needs nf_tables too: refused as well
        return subprocess.CompletedProcess(command, code, "", "Error: Could not process rule: Not supported")

    monkeypatch.setattr(subprocess, "run", run)
    fake_transact(monkeypatch, refused)
    g = guard()
    g.install()
    assert ran == ["nft", "nft", "iptables"]  # create, then replace, then iptables
    assert g.installed and g.backend == "iptables"
    assert g.description.endswith(
        "drop kernel RST local port 40000 -> 10.0.2.2:8080 (netlink refused: Operation not supported (EOPNOTSUPP))"
    )
    g.remove()
    assert ran[-1] == "iptables"

    ran.clear()
    monkeypatch.setattr(subprocess, "run", lambda command, **_kw: subprocess.CompletedProcess(command, 0))
    fake_transact(monkeypatch, OSError(errno.ENOENT, "No such file or directory"))
    g = guard()
    g.install()
    assert g.backend == "nft"
    assert g.description.startswith("nft binary table inet rawtui_1234_40000:")
    assert "(netlink refused: No such file or directory (ENOENT))" in g.description
    atexit.unregister(g.remove)


def test_ipv6_netlink_refusal_falls_back_to_nft_then_ip6tables(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "nft" else f"/usr/sbin/{name}")
    fake_transact(monkeypatch, OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)))
    g = guard6()
    g.install()
    assert g.backend == "iptables" and no_subprocess == [["ip6tables", "-w", "-I", "OUTPUT", *g.iptables_rule()]]
    assert g.description.startswith("ip6tables binary OUTPUT rule rawtui_1234_40000:")
    g.remove()
    assert no_subprocess[-1] == ["ip6tables", "-w", "-D", "OUTPUT", *g.iptables_rule()]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    fake_transact(monkeypatch, OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)))
    with pytest.raises(LinkError, match="neither nft nor ip6tables is available"):
        guard6().install()


def test_netlink_refused_and_no_binary_is_a_link_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    fake_transact(monkeypatch, OSError(errno.EPROTONOSUPPORT, "Protocol not supported"))
    with pytest.raises(LinkError, match=r"refused the nftables rule over netlink \(Protocol not supported "
                                        r"\(EPROTONOSUPPORT\)\) and neither nft nor iptables is available"):  # fmt: skip
        guard().install()


def test_explicit_netlink_backend_does_not_fall_back(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}")
    fake_transact(monkeypatch, OSError(errno.EOPNOTSUPP, "Operation not supported"))
    with pytest.raises(LinkError, match="the kernel refused the nftables rule: Operation not supported"):
        guard(backend="netlink").install()
    assert no_subprocess == []


def test_netlink_remove_is_idempotent_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]]
) -> None:
    g = guard()
    batches = fake_transact(monkeypatch)
    g.remove()  # not installed: nothing to do
    assert batches == []
    with g:
        assert g.installed
    assert batches[-1] == [firewall._delete_table(g.name)] and len(batches) == 2
    g.remove()
    assert len(batches) == 2
    fake_transact(monkeypatch, None, OSError(errno.ENOENT, "No such file or directory"))
    g.install()
    g.remove()
    assert g.last_error == "No such file or directory (ENOENT)" and not g.installed

    def no_socket() -> Any:
        raise OSError(errno.EMFILE, "Too many open files")

    fake_transact(monkeypatch)
    g.install()
    monkeypatch.setattr(firewall, "_transact", REAL_TRANSACT)  # on a socket that cannot be opened
    monkeypatch.setattr(firewall, "_netlink_socket", no_socket)
    g.remove()
    assert g.last_error == "Too many open files (EMFILE)" and not g.installed


class FakeNetlink:
    """A netlink socket that answers every send with scripted datagrams, then EAGAIN."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.sent: list[bytes] = []
        self.blocking = True
        self.closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    def sendto(self, data: bytes, _address: tuple[int, int]) -> int:
        self.sent.append(data)
        return len(data)

    def setblocking(self, flag: bool) -> None:
        self.blocking = flag

    def recv(self, _size: int) -> bytes:
        if self.answers:
            return self.answers.pop(0)
        if self.blocking:
            raise AssertionError("would wait for an answer that never comes")
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


def ack(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHII", 36, firewall.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -code) + bytes(16)


def test_transact_reads_every_ack_and_does_not_wait_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = guard().netlink_create()
    fake = FakeNetlink([ack(1) + ack(2), ack(3)])
    monkeypatch.setattr(firewall, "_netlink_socket", lambda: fake)
    firewall._transact(messages)
    assert fake.sent == [firewall._batch(messages)] and fake.blocking and fake.closed

    fake = FakeNetlink([ack(0, errno.EPERM)])  # the whole batch refused: one error, for BATCH_BEGIN
    monkeypatch.setattr(firewall, "_netlink_socket", lambda: fake)
    with pytest.raises(PermissionError):
        firewall._transact(messages)

    fake = FakeNetlink([ack(1, errno.EEXIST), ack(2), ack(3)])
    monkeypatch.setattr(firewall, "_netlink_socket", lambda: fake)
    with pytest.raises(FileExistsError):
        firewall._transact(messages)
    assert fake.answers == [] and fake.closed  # the rest drained


def test_the_removal_is_answered_before_it_returns_and_its_socket_closes_beside(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A download's end: the kernel's ACK of the table's deletion is read in remove(); the netlink socket's
    close (which waits for the kernel to free the table) runs in a thread handed to the caller."""
    g = guard()
    fake_transact(monkeypatch)
    g.install()
    monkeypatch.undo()
    fake = FakeNetlink([ack(1)])
    monkeypatch.setattr(firewall, "_netlink_socket", lambda: fake)
    release: list[Any] = []
    g.remove(release)
    assert fake.sent == [firewall._batch([firewall._delete_table(g.name)])] and fake.answers == []
    assert not g.installed and g.last_error is None
    assert len(release) == 1
    release[0].result()
    assert fake.closed
    g.remove(release)  # removed once
    assert len(fake.sent) == 1 and len(release) == 1


def test_netlink_table_listing_parses_a_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    def table(name: str) -> bytes:
        attrs = firewall._text(firewall.NFTA_TABLE_NAME, name) + firewall._u32(firewall.NFTA_TABLE_FLAGS, 0)
        return struct.pack("=IHHII", 20 + len(attrs), 0xA00, 2, 1, 0) + struct.pack("!BBH", 1, 0, 0) + attrs

    done = struct.pack("=IHHII", 20, firewall.NLMSG_DONE, 2, 1, 0) + bytes(4)
    fake = FakeNetlink([table("rawtui_7_1") + table("other"), table("x") + done])
    monkeypatch.setattr(firewall, "_netlink_socket", lambda: fake)
    assert firewall._netlink_table_names() == ["rawtui_7_1", "other", "x"]
    kind, flags = struct.unpack_from("=HH", fake.sent[0], 4)
    assert (kind, flags, fake.sent[0][16]) == (0xA01, 0x301, 1)  # GETTABLE, REQUEST|DUMP, inet


def test_cleanup_stale_uses_nft_only_when_netlink_is_refused_for_a_non_privilege_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listing = json.dumps({"nftables": [{"table": {"family": "inet", "name": f"rawtui_{DEAD_PID}_1"}}]})
    ran: list[list[str]] = []

    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, listing if "list" in command else "", "")

    def refuse(code: int) -> Callable[[], list[tuple[int, str]]]:
        def tables() -> list[tuple[int, str]]:
            raise OSError(code, os.strerror(code))

        return tables

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/sbin/nft" if name == "nft" else None)
    monkeypatch.setattr(firewall, "_netlink_tables", refuse(errno.EPERM))
    assert firewall.cleanup_stale() == [] and ran == []
    monkeypatch.setattr(firewall, "_netlink_tables", refuse(errno.EOPNOTSUPP))
    assert firewall.cleanup_stale() == [f"nft table inet rawtui_{DEAD_PID}_1"]
    assert ran[-1] == ["nft", "delete", "table", "inet", f"rawtui_{DEAD_PID}_1"]


def test_cleanup_stale_starts_iptables_only_where_a_filter_table_can_hold_its_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """iptables-nft keeps rules in the nftables table ip filter (ip6 filter), iptables-legacy in x_tables
    (named in /proc/net/ip_tables_names): with neither, ``iptables -S`` is not started at all."""
    ran: list[str] = []

    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        ran.append(command[0])
        return subprocess.CompletedProcess(command, 0, "", "")

    legacy4, legacy6 = tmp_path / "ip_tables_names", tmp_path / "ip6_tables_names"
    monkeypatch.setattr(firewall, "_LEGACY_TABLES", {firewall.NFPROTO_IPV4: str(legacy4),
                                                     firewall.NFPROTO_IPV6: str(legacy6)})
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/sbin/{name}" if name.endswith("tables") else None)
    tables: list[tuple[int, str]] = [(firewall.NFPROTO_INET, "filter"), (firewall.NFPROTO_IPV4, "nat")]
    monkeypatch.setattr(firewall, "_netlink_tables", lambda: tables)
    assert firewall.cleanup_stale() == [] and ran == []  # no file: x_tables not even loaded
    legacy4.write_text("")
    legacy6.write_text("mangle\n")
    assert firewall.cleanup_stale() == [] and ran == []
    tables.append((firewall.NFPROTO_IPV6, "filter"))  # ip6tables-nft made its table
    assert firewall.cleanup_stale() == [] and ran == ["ip6tables"]
    legacy4.write_text("filter\nmangle\n")  # iptables-legacy's filter table
    ran.clear()
    assert firewall.cleanup_stale() == [] and ran == ["iptables", "ip6tables"]


# --- the binaries (the fallback, or chosen) -------------------------------------------------------


def test_nft_ruleset_drops_only_the_connections_rsts() -> None:
    g = guard(backend="nft")
    ruleset = g.nft_ruleset()
    assert "table inet rawtui_1234_40000 {" in ruleset
    assert "type filter hook output priority 0; policy accept;" in ruleset
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in ruleset
    assert ruleset.index("delete table inet rawtui_1234_40000") < ruleset.rindex("table inet rawtui_1234_40000")


def test_nft_install_creates_and_replaces_only_a_table_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    g = guard(backend="nft")
    create = g.nft_create()
    assert create.startswith("create table inet rawtui_1234_40000\n") and "delete" not in create
    assert create.endswith(g.nft_ruleset().split("delete table inet rawtui_1234_40000\n", 1)[1])
    scripts: list[str] = []
    exists = False

    def run(command: list[str], input: str | None = None, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command == ["nft", "-f", "-"]
        assert input is not None
        scripts.append(input)
        if exists and input.startswith("create table"):
            return subprocess.CompletedProcess(command, 1, "", "Error: Could not process rule: File exists")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    g.install()  # the usual case: one nft run, no `delete table`
    assert scripts == [create] and g.installed
    g.installed = False
    atexit.unregister(g.remove)
    exists, scripts[:] = True, []
    g.install()  # left by a crashed run with the same pid and port: replaced
    assert scripts == [create, g.nft_ruleset()] and g.installed
    atexit.unregister(g.remove)


def test_iptables_rule_is_commented_with_the_pid() -> None:
    rule = " ".join(guard(backend="iptables").iptables_rule())
    assert rule == (
        "-p tcp -d 10.0.2.2 --sport 40000 --dport 8080 --tcp-flags RST RST "
        "-m comment --comment rawtui_1234_40000 -j DROP"
    )


def fake_run(returncode: int, stderr: str = "", raises: BaseException | None = None) -> Callable[..., Any]:
    def run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        if raises is not None:
            raise raises
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    return run


@pytest.mark.parametrize(
    ("backend", "stderr"),
    [
        ("nft", "netlink: Error: cache initialization failed: Operation not permitted"),
        ("iptables", ("iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: "
                      "Permission denied (you must be root)")),
    ],
)  # fmt: skip
def test_binary_permission_failure_is_a_privilege_error(
    monkeypatch: pytest.MonkeyPatch, backend: str, stderr: str
) -> None:
    monkeypatch.setattr(subprocess, "run", fake_run(1, stderr))
    g = guard(backend=backend)
    with pytest.raises(PrivilegeError, match="needs root or CAP_NET_ADMIN") as caught:
        g.install()
    assert caught.value.exit_code == 3
    assert not g.installed


def test_binary_other_failure_is_a_link_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", fake_run(1, "Error: syntax error, unexpected junk\nmore"))
    with pytest.raises(LinkError, match="nft refused the firewall rule: Error: syntax error, unexpected junk$"):
        guard(backend="nft").install()


def test_binary_remove_is_idempotent_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, no_subprocess: list[list[str]]
) -> None:
    g = FirewallGuard("10.0.2.2", 80, 40000, pid=77, backend="nft")
    g.remove()  # not installed: nothing to do
    assert no_subprocess == []
    with g:
        assert g.installed
    assert no_subprocess[-1] == ["nft", "delete", "table", "inet", "rawtui_77_40000"]
    g.remove()
    assert len(no_subprocess) == 2

    g.install()
    monkeypatch.setattr(subprocess, "run", fake_run(0, raises=OSError("nft vanished")))
    g.remove()
    assert g.last_error == "nft vanished"
    assert not g.installed


def test_stale_names_are_those_of_dead_pids() -> None:
    names = [
        f"rawtui_{DEAD_PID}_40000",
        f"rawtui_{os.getpid()}_40000",
        f"rawtui_{DEAD_PID}",
        "other",
        "rawtui_x",
    ]
    assert firewall._stale(names) == [f"rawtui_{DEAD_PID}_40000", f"rawtui_{DEAD_PID}"]


# --- lab: in throwaway namespaces ------------------------------------------------------------------


def run_in(ns: str, code: str, *args: str, prefix: tuple[str, ...] = (), path: str | None = None) -> Any:
    """Run Python code inside namespace ns (after the prefix command); return the JSON it prints last."""
    env = child_env()
    if path is not None:
        env["PATH"] = path
    done = subprocess.run(
        [shutil.which("ip") or "ip", "netns", "exec", ns, *prefix, sys.executable, "-c", code, *args],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def without_handles(listing: str) -> str:
    return re.sub(r' # handle \d+|"handle": \d+', "", listing)  # the text's and the JSON's


@pytest.fixture
def empty_path(tmp_path: Path) -> str:
    """A PATH with no program at all: what is done here is done without nft, iptables or ip."""
    path = tmp_path / "empty-bin"
    path.mkdir()
    return str(path)


INSTALL_REMOVE = """
import json
from rawtui.link.firewall import FirewallGuard, _netlink_table_names

guard = FirewallGuard("10.0.2.2", 8080, 40000)
guard.install()
guard.install()  # twice: still one table, one rule
during = _netlink_table_names()
backend, description = guard.backend, guard.description
guard.remove()
guard.remove()
print(json.dumps({"name": guard.name, "during": during, "after": _netlink_table_names(),
                  "backend": backend, "description": description, "error": guard.last_error}))
"""


@pytest.mark.lab
@needs_nft
def test_netlink_guard_installs_and_removes_its_table_without_any_binary(
    netns: Callable[[], str], empty_path: str
) -> None:
    ns = netns()
    out = run_in(ns, INSTALL_REMOVE, path=empty_path)
    assert out["name"].startswith("rawtui_") and out["name"].endswith("_40000")
    assert out["during"] == [out["name"]]
    assert out["after"] == []
    assert out["backend"] == "netlink"
    assert out["description"].startswith(f"netlink nftables table inet {out['name']}: drop kernel RST")
    assert out["error"] is None
    assert nft_tables(ns) == []


LIST_ONE = """
import atexit, json, subprocess, sys
from rawtui.link.firewall import FirewallGuard

guard = FirewallGuard(sys.argv[2] if len(sys.argv) > 2 else "10.0.2.2", 8080, 40000, pid=1234, backend=sys.argv[1])
guard.install()
atexit.unregister(guard.remove)
listings = [subprocess.run(["nft", *flags, "list", "table", "inet", guard.name], capture_output=True,
                           text=True, check=True).stdout for flags in ([], ["-a", "--debug=netlink"], ["-j"])]
guard.remove()
print(json.dumps(listings))
"""


@pytest.mark.lab
@needs_nft
def test_netlink_table_lists_exactly_as_the_nft_script_table(netns: Callable[[], str]) -> None:
    ns = netns()
    by_netlink = run_in(ns, LIST_ONE, "netlink")
    by_nft = run_in(ns, LIST_ONE, "nft")
    assert [without_handles(text) for text in by_netlink] == [without_handles(text) for text in by_nft]
    text, debug, _json = by_netlink
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in text
    assert "type filter hook output priority filter; policy accept;" in text
    assert NFT_DEBUG_NETLINK in debug
    assert nft_tables(ns) == []


@pytest.mark.lab
@needs_nft
def test_ipv6_netlink_table_lists_exactly_as_the_nft_script_table(netns: Callable[[], str]) -> None:
    ns = netns()
    by_netlink = run_in(ns, LIST_ONE, "netlink", "2001:db8:2::2")
    by_nft = run_in(ns, LIST_ONE, "nft", "2001:db8:2::2")
    assert [without_handles(text) for text in by_netlink] == [without_handles(text) for text in by_nft]
    text, debug, _json = by_netlink
    assert "ip6 daddr 2001:db8:2::2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in text
    assert NFT_DEBUG_NETLINK6 in debug
    assert nft_tables(ns) == []


REPLACE = """
import json, subprocess, sys
from rawtui.link.firewall import FirewallGuard

guard = FirewallGuard("10.0.2.2", 8080, 40000, backend=sys.argv[1])
left = (f"table inet {guard.name} {{ chain output {{ type filter hook output priority 0; policy accept;"
        " ip daddr 10.0.2.99 tcp flags & rst == rst drop; }; chain junk { }; }")
subprocess.run(["nft", "-f", "-"], input=left, text=True, check=True)  # as a crashed run with our pid left it
guard.install()
rules = subprocess.run(["nft", "list", "table", "inet", guard.name], capture_output=True, text=True).stdout
guard.remove()
print(json.dumps({"rules": rules, "error": guard.last_error}))
"""


@pytest.mark.lab
@needs_nft
@pytest.mark.parametrize("backend", ["netlink", "nft"])
def test_guard_replaces_a_table_of_the_same_name(netns: Callable[[], str], backend: str) -> None:
    ns = netns()
    out = run_in(ns, REPLACE, backend)
    assert out["rules"].count("tcp flags & rst == rst drop") == 1
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080" in out["rules"]
    assert "10.0.2.99" not in out["rules"] and "junk" not in out["rules"]
    assert out["error"] is None
    assert nft_tables(ns) == []


FALLBACK = """
import errno, json, subprocess
from rawtui.link import firewall

def refuse(messages):
    raise OSError(errno.EOPNOTSUPP, "Operation not supported")

firewall._transact = refuse  # as a kernel without nf_tables netlink would answer
guard = firewall.FirewallGuard("10.0.2.2", 8080, 40000)
guard.install()
rules = subprocess.run(["nft", "list", "table", "inet", guard.name], capture_output=True, text=True).stdout
backend, description = guard.backend, guard.description
guard.remove()
print(json.dumps({"rules": rules, "backend": backend, "description": description, "error": guard.last_error}))
"""


@pytest.mark.lab
@needs_nft
def test_netlink_refused_falls_back_to_the_nft_binary(netns: Callable[[], str]) -> None:
    ns = netns()
    out = run_in(ns, FALLBACK)
    assert out["backend"] == "nft"
    assert out["description"].startswith("nft binary table inet rawtui_")
    assert out["description"].endswith("(netlink refused: Operation not supported (EOPNOTSUPP))")
    assert "ip daddr 10.0.2.2 tcp sport 40000 tcp dport 8080 tcp flags & rst == rst drop" in out["rules"]
    assert out["error"] is None
    assert nft_tables(ns) == []


NO_CAP_NET_ADMIN = """
import json
from rawtui.errors import PrivilegeError
from rawtui.link.firewall import FirewallGuard, cleanup_stale

guard = FirewallGuard("10.0.2.2", 8080, 40000)
try:
    guard.install()
except PrivilegeError as exc:
    out = {"error": exc.message, "exit": exc.exit_code, "backend": guard.backend}
else:
    out = {"error": None}
out["stale"] = cleanup_stale()
print(json.dumps(out))
"""


@pytest.mark.lab
@needs_nft
def test_without_cap_net_admin_install_is_a_privilege_error_and_cleanup_does_nothing(
    netns: Callable[[], str],
) -> None:
    setpriv = require_tool("setpriv")
    ns = netns()
    sh(ns, "nft", "add", "table", "inet", f"rawtui_{DEAD_PID}_40000")
    # root still, but CAP_NET_ADMIN is gone from every set: the kernel says EPERM
    out = run_in(ns, NO_CAP_NET_ADMIN, prefix=(setpriv, "--bounding-set=-net_admin", "--inh-caps=-net_admin"))
    assert out == {
        "error": "installing the firewall rule over netlink needs root or CAP_NET_ADMIN: run with sudo",
        "exit": 3,
        "backend": "netlink",  # not a reason to try nft or iptables
        "stale": [],
    }
    assert nft_tables(ns) == [f"rawtui_{DEAD_PID}_40000"]


ATEXIT = """
from rawtui.link.firewall import FirewallGuard
FirewallGuard("10.0.2.2", 8080, 40000, backend=__import__("sys").argv[1]).install()
print("{}")
"""


@pytest.mark.lab
@needs_nft
@pytest.mark.parametrize("backend", ["netlink", "nft", "iptables"])
def test_guard_is_removed_at_exit(netns: Callable[[], str], backend: str) -> None:
    if backend != "netlink":
        require_tool(backend)
    ns = netns()
    run_in(ns, ATEXIT, backend)
    assert nft_tables(ns) in ([], ["filter"])  # iptables-nft leaves its empty built-in table
    assert "rawtui" not in sh(ns, "nft", "list", "ruleset")


# A SYN-ACK sent from the server namespace to a port with no socket: the client kernel answers with a RST
# unless the guard drops it (over IPv6 it first finds the server's MAC by neighbor discovery, the server
# namespace's kernel answering). Runs in the server namespace; argv: the client's MAC, the server's and the
# client's address (either family); prints whether a RST came back.
PROBE = """
import ipaddress, json, select, sys, time
from rawtui.link.afpacket import PacketSocket
from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import ETH_P_IP, ETH_P_IPV6, build_ethernet, parse_ethernet
from rawtui.wire.ipv4 import build_ipv4, parse_ipv4
from rawtui.wire.ipv6 import build_ipv6, parse_ipv6
from rawtui.wire.tcp import RST, TcpSegment, build_tcp, parse_tcp

client_mac, server, client = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3]
src, dst = ipaddress.ip_address(server).packed, ipaddress.ip_address(client).packed
build, parse, ethertype = (build_ipv6, parse_ipv6, ETH_P_IPV6) if len(src) == 16 else (build_ipv4, parse_ipv4, ETH_P_IP)
packet = build(src, dst, 6, build_tcp(TcpSegment(8080, 40000, 1000, 2000, 0x12, 65535), src, dst))
with PacketSocket("vb") as sock:
    sock.set_filter(client, 40000, 8080)
    frame = build_ethernet(client_mac, sock.mac, ethertype, packet)
    rst = False
    for _attempt in range(3):
        sock.send(frame)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and not rst:
            select.select([sock], [], [], 0.05)
            for got, _ in sock.recv_many():
                try:
                    eth = parse_ethernet(got)
                    ip, payload = parse(eth.payload) if eth.ethertype == ethertype else (None, b"")
                    if ip is not None and ip.proto == 6:
                        # (not verified: the kernel's IPv6 RST leaves its checksum to the veth's offload)
                        rst = rst or parse_tcp(payload, dst, src, verify=False).has(RST)
                except WireError:
                    pass
print(json.dumps({"rst": rst}))
"""

GUARDED = """
import json, subprocess, sys
from rawtui.link.firewall import FirewallGuard

server_ns, probe, client_mac, backend, ip, server, client = sys.argv[1:]

def rst_seen():
    done = subprocess.run([ip, "netns", "exec", server_ns, sys.executable, "-c", probe, client_mac, server, client],
                          capture_output=True, text=True, check=True, timeout=30)
    return json.loads(done.stdout)["rst"]

out = {"before": rst_seen()}
with FirewallGuard(server, 8080, 40000, backend=backend):
    out["guarded"] = rst_seen()
out["after"] = rst_seen()
print(json.dumps(out))
"""


@pytest.mark.lab
@needs_nft
@pytest.mark.parametrize("backend", ["netlink", "nft", "iptables"])
def test_guard_drops_the_kernels_rst_and_only_while_installed(netns: Callable[[], str], backend: str) -> None:
    if backend != "netlink":
        require_tool(backend)
    client_ns, server_ns = netns(), netns()
    sh(client_ns, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", server_ns)
    sh(client_ns, "ip", "addr", "add", "10.9.0.2/24", "dev", "va")
    sh(server_ns, "ip", "addr", "add", "10.9.0.1/24", "dev", "vb")
    sh(client_ns, "ip", "link", "set", "va", "up")
    sh(server_ns, "ip", "link", "set", "vb", "up")
    client_mac = json.loads(sh(client_ns, "ip", "-j", "link", "show", "va"))[0]["address"].replace(":", "")
    ip = shutil.which("ip") or "ip"
    out = run_in(client_ns, GUARDED, server_ns, PROBE, client_mac, backend, ip, "10.9.0.1", "10.9.0.2")
    assert out == {"before": True, "guarded": False, "after": True}


STALE = """
import json
from rawtui.link.firewall import cleanup_stale
print(json.dumps(cleanup_stale()))
"""


@pytest.mark.lab
@needs_nft
@pytest.mark.parametrize("binaries", ["on PATH", "none"])
def test_cleanup_stale_removes_only_dead_owners(netns: Callable[[], str], empty_path: str, binaries: str) -> None:
    ns = netns()
    for name in (f"rawtui_{DEAD_PID}_40000", "rawtui_1_40001", "other"):  # pid 1 is alive
        sh(ns, "nft", "add", "table", "inet", name)
    sh(ns, "nft", "add", "table", "ip", f"rawtui_{DEAD_PID}_7")  # not inet: never rawtui's
    has_iptables = shutil.which("iptables") is not None
    if has_iptables:
        for pid in (DEAD_PID, 1):
            sh(
                ns, "iptables", "-w", "-I", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
                "-m", "comment", "--comment", f"rawtui_{pid}_5", "-j", "DROP",
            )  # fmt: skip
    removed = run_in(ns, STALE, path=empty_path if binaries == "none" else None)
    expected = [f"nftables table inet rawtui_{DEAD_PID}_40000"]
    iptables_used = has_iptables and binaries == "on PATH"
    if iptables_used:
        expected.append(f"iptables OUTPUT rule rawtui_{DEAD_PID}_5")
    assert removed == expected
    assert sorted(set(nft_tables(ns)) - {"filter"}) == ["other", "rawtui_1_40001", f"rawtui_{DEAD_PID}_7"]
    if has_iptables:
        rules = sh(ns, "iptables", "-w", "-S", "OUTPUT")
        assert "rawtui_1_5" in rules
        assert (f"rawtui_{DEAD_PID}_5" in rules) is not iptables_used


@pytest.mark.lab
@needs_nft
@pytest.mark.parametrize("backend", ["netlink", "nft", "iptables"])
def test_ipv6_guard_drops_the_kernels_rst_and_only_while_installed(netns: Callable[[], str], backend: str) -> None:
    if backend != "netlink":
        require_tool("ip6tables")
    client_ns, server_ns = netns(), netns()
    for ns in (client_ns, server_ns):  # the factory's namespaces have IPv6 off
        sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
           "net.ipv6.conf.default.router_solicitations=0")
    sh(client_ns, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", server_ns)
    sh(client_ns, "ip", "addr", "add", "2001:db8:9::2/64", "dev", "va", "nodad")
    sh(server_ns, "ip", "addr", "add", "2001:db8:9::1/64", "dev", "vb", "nodad")
    sh(client_ns, "ip", "link", "set", "va", "up")
    sh(server_ns, "ip", "link", "set", "vb", "up")
    client_mac = json.loads(sh(client_ns, "ip", "-j", "link", "show", "va"))[0]["address"].replace(":", "")
    ip = shutil.which("ip") or "ip"
    out = run_in(client_ns, GUARDED, server_ns, PROBE, client_mac, backend, ip, "2001:db8:9::1", "2001:db8:9::2")
    assert out == {"before": True, "guarded": False, "after": True}
    assert "rawtui" not in sh(client_ns, "nft", "list", "ruleset")
