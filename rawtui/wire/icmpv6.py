"""ICMPv6 (RFC 4443) and the neighbor discovery messages (RFC 4861): typed records, parse and build.

The checksum covers the IPv6 pseudo-header (RFC 8200 8.1), the same rule TCP's checksum uses
(:func:`rawtui.wire.checksum.pseudo_header_residue`, which takes 4- or 16-byte addresses). Each message
type is a record with ``TYPE`` and its own ``_pack`` / ``_unpack``; :func:`parse_icmpv6` picks the record
by the type byte from one table, and any other type comes back as :class:`Icmpv6Other`.

Neighbor discovery options (RFC 4861 4.6) are read into :class:`NdpOptions`: the source and target
link-layer addresses (6 bytes: Ethernet), the MTU, the prefixes; unknown ones are skipped, a zero length
is malformed (RFC 4861 4.6: "nodes MUST silently discard").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from rawtui.wire.checksum import checksum_from_residue, pseudo_header_residue, residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.icmp import QuotedTcp
from rawtui.wire.ipv6 import HEADER_LEN, NH_ICMPV6, NH_TCP, is_multicast, parse_ipv6

DEST_UNREACHABLE, PACKET_TOO_BIG, TIME_EXCEEDED, PARAMETER_PROBLEM = 1, 2, 3, 4
ECHO_REQUEST, ECHO_REPLY = 128, 129
ROUTER_SOLICIT, ROUTER_ADVERT, NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT, REDIRECT = 133, 134, 135, 136, 137

OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR, OPT_PREFIX_INFO, OPT_REDIRECTED, OPT_MTU = 1, 2, 3, 4, 5
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
# RFC 4443 2.4 (c): an error message carries as much of the invoking packet as fits in 1280 bytes
MAX_INVOKING = 1280 - HEADER_LEN - 8

_HDR = struct.Struct("!BBH")
_PREFIX = struct.Struct("!BBIII16s")  # after type and length: 30 bytes


@dataclass(frozen=True, slots=True)
class Prefix:
    """A prefix information option (RFC 4861 4.6.2)."""

    prefix: bytes
    length: int
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int


@dataclass(frozen=True, slots=True)
class NdpOptions:
    source_lladdr: bytes | None = None
    target_lladdr: bytes | None = None
    mtu: int | None = None
    prefixes: tuple[Prefix, ...] = ()
    unknown: tuple[int, ...] = ()  # option types skipped


NO_NDP_OPTIONS = NdpOptions()


def parse_ndp_options(buf: bytes | memoryview) -> NdpOptions:
    mv = memoryview(buf)
    src = tgt = None
    mtu: int | None = None
    prefixes: list[Prefix] = []
    unknown: list[int] = []
    i, n = 0, len(mv)
    while i < n:
        if i + 2 > n:
            raise WireError("NDP option truncated (no length byte)")
        kind, units = mv[i], mv[i + 1]
        length = units * 8
        if units == 0:
            raise WireError(f"NDP option {kind} has length 0")
        if i + length > n:
            raise WireError(f"NDP option {kind} of {length} bytes overruns the message")
        if kind in (OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR):
            if units != 1:
                raise WireError(f"NDP link-layer address option of {length} bytes is not Ethernet's 8")
            if kind == OPT_SOURCE_LLADDR:
                src = bytes(mv[i + 2 : i + 8])
            else:
                tgt = bytes(mv[i + 2 : i + 8])
        elif kind == OPT_MTU:
            if units != 1:
                raise WireError(f"NDP MTU option of {length} bytes")
            mtu = struct.unpack_from("!I", mv, i + 4)[0]
        elif kind == OPT_PREFIX_INFO:
            if units != 4:
                raise WireError(f"NDP prefix information option of {length} bytes")
            plen, flags, valid, preferred, _, prefix = _PREFIX.unpack_from(mv, i + 2)
            prefixes.append(Prefix(prefix, plen, bool(flags & 0x80), bool(flags & 0x40), valid, preferred))
        else:
            unknown.append(kind)
        i += length
    return NdpOptions(src, tgt, mtu, tuple(prefixes), tuple(unknown))


def build_ndp_options(o: NdpOptions) -> bytes:
    out = bytearray()
    if o.source_lladdr is not None:
        out += bytes((OPT_SOURCE_LLADDR, 1)) + o.source_lladdr
    if o.target_lladdr is not None:
        out += bytes((OPT_TARGET_LLADDR, 1)) + o.target_lladdr
    if o.mtu is not None:
        out += struct.pack("!BBHI", OPT_MTU, 1, 0, o.mtu)
    for p in o.prefixes:
        flags = (0x80 if p.on_link else 0) | (0x40 if p.autonomous else 0)
        out += bytes((OPT_PREFIX_INFO, 4)) + _PREFIX.pack(
            p.length, flags, p.valid_lifetime, p.preferred_lifetime, 0, p.prefix)
    return bytes(out)


# -- the messages ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NeighborSolicit:
    TYPE: ClassVar[int] = NEIGHBOR_SOLICIT
    target: bytes
    options: NdpOptions = NO_NDP_OPTIONS

    def _pack(self) -> tuple[int, bytes]:
        return 0, bytes(4) + self.target + build_ndp_options(self.options)

    @classmethod
    def _unpack(cls, code: int, body: memoryview) -> NeighborSolicit:
        _ndp_checks(code, body, 20, "neighbor solicitation")
        return cls(bytes(body[4:20]), parse_ndp_options(body[20:]))


@dataclass(frozen=True, slots=True)
class NeighborAdvert:
    TYPE: ClassVar[int] = NEIGHBOR_ADVERT
    target: bytes
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: NdpOptions = NO_NDP_OPTIONS

    def _pack(self) -> tuple[int, bytes]:
        flags = (NA_ROUTER if self.router else 0) | (NA_SOLICITED if self.solicited else 0) | (
            NA_OVERRIDE if self.override else 0)
        return 0, struct.pack("!I", flags) + self.target + build_ndp_options(self.options)

    @classmethod
    def _unpack(cls, code: int, body: memoryview) -> NeighborAdvert:
        _ndp_checks(code, body, 20, "neighbor advertisement")
        (flags,) = struct.unpack_from("!I", body, 0)
        return cls(bytes(body[4:20]), bool(flags & NA_ROUTER), bool(flags & NA_SOLICITED),
                   bool(flags & NA_OVERRIDE), parse_ndp_options(body[20:]))


@dataclass(frozen=True, slots=True)
class RouterSolicit:
    TYPE: ClassVar[int] = ROUTER_SOLICIT
    options: NdpOptions = NO_NDP_OPTIONS

    def _pack(self) -> tuple[int, bytes]:
        return 0, bytes(4) + build_ndp_options(self.options)

    @classmethod
    def _unpack(cls, code: int, body: memoryview) -> RouterSolicit:
        _ndp_checks(code, body, 4, "router solicitation")
        return cls(parse_ndp_options(body[4:]))


@dataclass(frozen=True, slots=True)
class RouterAdvert:
    TYPE: ClassVar[int] = ROUTER_ADVERT
    hop_limit: int = 64
    managed: bool = False
    other: bool = False
    lifetime: int = 1800  # seconds as a default router (0: not one)
    reachable_time: int = 0  # ms, 0: unspecified
    retrans_timer: int = 0  # ms, 0: unspecified
    options: NdpOptions = NO_NDP_OPTIONS

    def _pack(self) -> tuple[int, bytes]:
        flags = (0x80 if self.managed else 0) | (0x40 if self.other else 0)
        return 0, struct.pack("!BBHII", self.hop_limit, flags, self.lifetime, self.reachable_time,
                              self.retrans_timer) + build_ndp_options(self.options)

    @classmethod
    def _unpack(cls, code: int, body: memoryview) -> RouterAdvert:
        _ndp_checks(code, body, 12, "router advertisement")
        hop, flags, life, reach, retrans = struct.unpack_from("!BBHII", body, 0)
        return cls(hop, bool(flags & 0x80), bool(flags & 0x40), life, reach, retrans, parse_ndp_options(body[12:]))


@dataclass(frozen=True, slots=True)
class Echo:
    """An echo request (``reply`` False) or reply."""

    TYPE: ClassVar[int] = ECHO_REQUEST  # and ECHO_REPLY: see _TYPE_OF
    ident: int
    seq: int
    data: bytes = b""
    reply: bool = False

    def _pack(self) -> tuple[int, bytes]:
        return 0, struct.pack("!HH", self.ident, self.seq) + self.data

    @classmethod
    def _unpack(cls, code: int, body: memoryview, reply: bool = False) -> Echo:
        if len(body) < 4:
            raise WireError(f"ICMPv6 echo of {len(body) + 4} bytes is shorter than 8")
        ident, seq = struct.unpack_from("!HH", body, 0)
        return cls(ident, seq, bytes(body[4:]), reply)


@dataclass(frozen=True, slots=True)
class PacketTooBig:
    """RFC 4443 3.2: a router could not forward ``invoking`` (the start of a packet we sent) over a link
    of ``mtu`` bytes."""

    TYPE: ClassVar[int] = PACKET_TOO_BIG
    mtu: int
    invoking: bytes

    def _pack(self) -> tuple[int, bytes]:
        return 0, struct.pack("!I", self.mtu) + self.invoking[:MAX_INVOKING]

    @classmethod
    def _unpack(cls, code: int, body: memoryview) -> PacketTooBig:
        if len(body) < 4:
            raise WireError("ICMPv6 packet too big of less than 8 bytes")
        return cls(struct.unpack_from("!I", body, 0)[0], bytes(body[4:]))


@dataclass(frozen=True, slots=True)
class Icmpv6Other:
    """Any other message (destination unreachable, time exceeded, redirect...): type, code, the rest."""

    type: int
    code: int
    body: bytes

    def _pack(self) -> tuple[int, bytes]:
        return self.code, self.body


Icmpv6Message = NeighborSolicit | NeighborAdvert | RouterSolicit | RouterAdvert | Echo | PacketTooBig | Icmpv6Other

_PARSERS = {cls.TYPE: cls._unpack for cls in (NeighborSolicit, NeighborAdvert, RouterSolicit, RouterAdvert,
                                              PacketTooBig)}


def _ndp_checks(code: int, body: memoryview, fixed: int, what: str) -> None:
    """RFC 4861 6.1 / 7.1: code 0 and the fixed part present (the hop limit of 255 is the caller's, who
    has the IPv6 header)."""
    if code != 0:
        raise WireError(f"ICMPv6 {what} with code {code}")
    if len(body) < fixed:
        raise WireError(f"ICMPv6 {what} of {len(body) + 4} bytes is shorter than {fixed + 4}")
    if fixed == 20 and is_multicast(bytes(body[4:20])):
        raise WireError(f"ICMPv6 {what} for a multicast target")


def _type_of(msg: Icmpv6Message) -> int:
    if isinstance(msg, Icmpv6Other):
        return msg.type
    if isinstance(msg, Echo):
        return ECHO_REPLY if msg.reply else ECHO_REQUEST
    return msg.TYPE


def parse_icmpv6(
    buf: bytes | bytearray | memoryview, src: bytes, dst: bytes, verify: bool = True
) -> Icmpv6Message:
    """Parse one message (``buf`` = the IPv6 upper-layer data). Raises :class:`ChecksumError` (layer
    "icmpv6") or :class:`WireError`."""
    mv = memoryview(buf)
    n = len(mv)
    if n < 4:
        raise WireError(f"ICMPv6 message of {n} bytes is shorter than its 4-byte header")
    kind, code, _ = _HDR.unpack_from(mv, 0)
    if verify and (pseudo_header_residue(src, dst, NH_ICMPV6, n) + residue(mv)) % 0xFFFF:
        raise ChecksumError("icmpv6")
    body = mv[4:]
    if kind in (ECHO_REQUEST, ECHO_REPLY):
        return Echo._unpack(code, body, kind == ECHO_REPLY)
    parser = _PARSERS.get(kind)
    if parser is None:
        return Icmpv6Other(kind, code, bytes(body))
    return parser(code, body)


def build_icmpv6(msg: Icmpv6Message, src: bytes, dst: bytes) -> bytes:
    """Serialise with the checksum over the IPv6 pseudo-header of ``src`` -> ``dst``."""
    code, body = msg._pack()
    data = _HDR.pack(_type_of(msg), code, 0) + body
    csum = checksum_from_residue(pseudo_header_residue(src, dst, NH_ICMPV6, len(data)) + residue(data))
    return data[:2] + csum.to_bytes(2, "big") + data[4:]


def quoted_tcp6(invoking: bytes | memoryview) -> QuotedTcp | None:
    """The TCP flow in an ICMPv6 error's invoking packet, or None when it is not TCP or is cut before
    the sequence number. The payload length may exceed what was quoted: the header is checked alone."""
    mv = memoryview(invoking)
    if len(mv) < HEADER_LEN + 8:
        return None
    plen = struct.unpack_from("!H", mv, 4)[0]
    # parse the quoted header as if the packet were complete (the quote is cut short on purpose)
    whole = bytes(mv[:HEADER_LEN]) + bytes(mv[HEADER_LEN:]).ljust(plen, b"\0")
    try:
        ip, tcp = parse_ipv6(whole)
    except WireError:
        return None
    if ip.proto != NH_TCP or ip.is_fragment or ip.header_length + 8 > len(mv) or len(tcp) < 8:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", tcp, 0)
    return QuotedTcp(ip.src, ip.dst, sport, dport, seq, ip.total_length)
