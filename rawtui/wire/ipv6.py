"""IPv6 headers (RFC 8200): parse (extension headers walked and skipped, the fragment header recognised,
padding stripped by the payload length) and build; IPv6 addresses and the pure helpers of their scopes.

Extension headers walked: hop-by-hop options (only right after the fixed header, RFC 8200 4.1; a Jumbo
Payload option, RFC 2675, is refused: rawtui never sends a jumbogram), routing and destination options
(skipped by their length), and the fragment header (recorded in :attr:`IPv6Header.fragment`; a
non-first fragment ends the walk, as its payload is the middle of someone else's headers). An atomic
fragment (offset 0, no more fragments: RFC 6946) is the whole packet and :attr:`IPv6Header.is_fragment`
is False for it.

Addresses: 16 bytes everywhere in wire/ and stack/; :func:`ip6_str` and :func:`ip6_bytes` convert, and
:func:`split_zone` / :func:`with_zone` handle the zone of a scoped address (``fe80::1%eth0``, RFC 4007).
The link-local address of a MAC (modified EUI-64, RFC 4291 appendix A), the solicited-node multicast
address of an address (RFC 4291 2.7.1) and the Ethernet MAC of a multicast address (RFC 2464 7:
``33:33`` and its last 32 bits) are pure functions here.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from rawtui.wire.errors import WireError

# Next Header values (IANA "Assigned Internet Protocol Numbers")
NH_HOPOPTS = 0
NH_TCP = 6
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ICMPV6 = 58
NH_NONE = 59
NH_DSTOPTS = 60
_OPTION_HEADERS = frozenset((NH_HOPOPTS, NH_ROUTING, NH_DSTOPTS))  # (next, length in 8-octet units - 1)

HEADER_LEN = 40
MIN_MTU = 1280  # RFC 8200 section 5: every link carries 1280-byte packets
OPT_PAD1, OPT_PADN, OPT_JUMBO = 0x00, 0x01, 0xC2

_HDR = struct.Struct("!IHBB16s16s")
_FRAG = struct.Struct("!BBHI")

UNSPECIFIED = bytes(16)
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
_SOLICITED_PREFIX = bytes.fromhex("ff0200000000000000000001ff")
_LINK_LOCAL_PREFIX = bytes.fromhex("fe800000000000000000000000000000")[:8]


@dataclass(slots=True)
class Fragment:
    """A fragment header (RFC 8200 4.5): where this piece goes, and whether more follow."""

    offset: int  # in bytes (the field counts 8-octet units)
    more: bool
    ident: int


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us per record, per frame
class IPv6Header:
    src: bytes
    dst: bytes
    proto: int  # the upper-layer protocol: the Next Header after the extension headers (6 for TCP)
    hop_limit: int
    traffic_class: int
    flow_label: int
    payload_length: int  # the field: extension headers and upper-layer data, without the fixed 40 bytes
    header_length: int  # 40 + the extension headers walked: where the upper-layer data starts
    next_header: int  # the first Next Header (== proto when there are no extension headers)
    extensions: tuple[int, ...] = ()  # the extension headers walked, in order
    fragment: Fragment | None = None

    @property
    def total_length(self) -> int:
        """The packet's length in bytes, as IPv4's total length counts it."""
        return HEADER_LEN + self.payload_length

    @property
    def is_fragment(self) -> bool:
        """A piece of a fragmented packet (an atomic fragment, RFC 6946, is not: it is the whole packet)."""
        f = self.fragment
        return f is not None and (f.more or f.offset != 0)


def _check_options(opts: memoryview, where: str) -> None:
    """Walk the TLV options of a hop-by-hop or destination options header (RFC 8200 4.2)."""
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_PAD1:
            i += 1
            continue
        if i + 1 >= n or i + 2 + opts[i + 1] > n:
            raise WireError(f"IPv6 {where} option {kind:#04x} overruns its header")
        if kind == OPT_JUMBO:
            raise WireError("IPv6 jumbogram (RFC 2675): not supported")
        i += 2 + opts[i + 1]


def parse_ipv6(buf: bytes | bytearray | memoryview) -> tuple[IPv6Header, memoryview]:
    """Parse a header and its extension headers; return it and the upper-layer data, cut to the payload
    length (Ethernet padding dropped). IPv6 has no header checksum. Raises :class:`WireError`."""
    mv = memoryview(buf)
    n = len(mv)
    if n < HEADER_LEN:
        raise WireError(f"IPv6 packet of {n} bytes is shorter than its 40-byte header")
    vtf, plen, nh, hop, src, dst = _HDR.unpack_from(mv, 0)
    if vtf >> 28 != 6:
        raise WireError(f"IP version {vtf >> 28} is not 6")
    end = HEADER_LEN + plen
    if end > n:
        raise WireError(f"IPv6 payload length {plen} exceeds the {n - HEADER_LEN} bytes received (truncated)")
    first = proto = nh
    off = HEADER_LEN
    walked: list[int] = []
    fragment: Fragment | None = None
    while proto in _OPTION_HEADERS or proto == NH_FRAGMENT:
        if off + 8 > end:
            raise WireError(f"IPv6 extension header {proto} at byte {off} is truncated")
        if proto == NH_FRAGMENT:
            if fragment is not None:
                raise WireError("two IPv6 fragment headers in one packet")
            nxt, _, offm, ident = _FRAG.unpack_from(mv, off)
            fragment = Fragment(offm & 0xFFF8, bool(offm & 1), ident)
            walked.append(proto)
            proto, off = nxt, off + 8
            if fragment.offset:
                break  # what follows is the middle of the original packet's data, not headers
            continue
        if proto == NH_HOPOPTS and walked:
            raise WireError("IPv6 hop-by-hop options not right after the fixed header")
        length = (mv[off + 1] + 1) * 8
        if off + length > end:
            raise WireError(f"IPv6 extension header {proto} of {length} bytes overruns the payload")
        if proto != NH_ROUTING:
            _check_options(mv[off + 2 : off + length], "hop-by-hop" if proto == NH_HOPOPTS else "destination")
        walked.append(proto)
        proto, off = mv[off], off + length
    hdr = IPv6Header(src, dst, proto, hop, (vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, off, first, tuple(walked),
                     fragment)
    return hdr, mv[off:end]


def extension(kind: int, body: bytes = b"") -> tuple[int, bytes]:
    """An extension header for :func:`build_ipv6`: ``kind`` and the bytes after its first two. Option
    headers are padded to a multiple of 8 bytes (Pad1 / PadN); a fragment header's body is 6 bytes (see
    :func:`fragment_body`)."""
    if kind == NH_FRAGMENT:
        if len(body) != 6:
            raise WireError("an IPv6 fragment header's body is 6 bytes")
        return kind, body
    if kind not in _OPTION_HEADERS:
        raise WireError(f"{kind} is not an IPv6 extension header rawtui builds")
    pad = -(len(body) + 2) % 8
    if pad == 1:
        body += b"\0"
    elif pad:
        body += bytes((OPT_PADN, pad - 2)) + bytes(pad - 2)
    if len(body) + 2 > 2048:
        raise WireError("an IPv6 extension header is at most 2048 bytes")
    return kind, body


def fragment_body(offset: int, more: bool, ident: int) -> bytes:
    """The 6 bytes after a fragment header's Next Header: reserved, offset and M flag, identification."""
    if offset % 8 or not 0 <= offset <= 0xFFF8:
        raise WireError(f"IPv6 fragment offset {offset} is not a multiple of 8 below 65536")
    return struct.pack("!BHI", 0, offset | int(more), ident & 0xFFFFFFFF)


def build_ipv6(
    src: bytes, dst: bytes, proto: int, payload: bytes | bytearray | memoryview, *, hop_limit: int = 64,
    traffic_class: int = 0, flow_label: int = 0, extensions: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """A packet: the fixed header, ``extensions`` (from :func:`extension`) chained in order, the payload."""
    chain = bytearray()
    kinds = [k for k, _ in extensions] + [proto]
    for i, (kind, body) in enumerate(extensions):
        nxt = kinds[i + 1]
        if kind == NH_FRAGMENT:
            chain += bytes((nxt,)) + body
        else:
            chain += bytes((nxt, (len(body) + 2) // 8 - 1)) + body
    plen = len(chain) + len(payload)
    if plen > 0xFFFF:
        raise WireError(f"IPv6 payload of {plen} bytes is too large (jumbograms are not built)")
    vtf = 6 << 28 | (traffic_class & 0xFF) << 20 | (flow_label & 0xFFFFF)
    return _HDR.pack(vtf, plen, kinds[0], hop_limit, src, dst) + bytes(chain) + bytes(payload)


# -- addresses ------------------------------------------------------------------------------------


def ip6_str(addr: bytes) -> str:
    """16 bytes to the RFC 5952 text form (``fe80::1``)."""
    if len(addr) != 16:
        raise ValueError(f"an IPv6 address is 16 bytes, not {len(addr)}")
    return ipaddress.IPv6Address(addr).compressed


def ip6_bytes(text: str) -> bytes:
    """IPv6 text to 16 bytes (no zone: see :func:`split_zone`)."""
    if "%" in text:
        raise ValueError(f"not an IPv6 address without a zone: {text!r}")
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise ValueError(f"not an IPv6 address: {text!r}") from None


def is_link_local(addr: bytes) -> bool:
    """fe80::/10 (RFC 4291 2.5.6)."""
    return addr[0] == 0xFE and addr[1] & 0xC0 == 0x80


def is_multicast(addr: bytes) -> bool:
    return addr[0] == 0xFF


def is_scoped(addr: bytes) -> bool:
    """An address that means something only on one link, so needs a zone: link-local unicast, and
    multicast of interface- or link-local scope (RFC 4007 6)."""
    return is_link_local(addr) or (addr[0] == 0xFF and addr[1] & 0x0F in (1, 2))


def endpoint_text(host: str | bytes, port: int) -> str:
    """``192.0.2.1:80``, ``[2001:db8::1]:80``, ``www.example:443``: an address (text, or its 4 or 16 bytes)
    or a name with a port, as a URL writes them (an IPv6 address in brackets)."""
    if not isinstance(host, str):
        host = str(ipaddress.ip_address(bytes(host)))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_zone(text: str) -> tuple[bytes, str | None]:
    """``"fe80::1%eth0"`` -> (16 bytes, ``"eth0"``); ``"2001:db8::1"`` -> (16 bytes, None). A zone on an
    address that is not scoped (a global one) is refused: it would be silently meaningless."""
    addr, sep, zone = text.partition("%")
    packed = ip6_bytes(addr)
    if not sep:
        return packed, None
    if not zone:
        raise ValueError(f"empty zone in {text!r}")
    if not is_scoped(packed):
        raise ValueError(f"a zone (%{zone}) belongs to a link-local address, not to {addr}")
    return packed, zone


def with_zone(addr: bytes, zone: str | None) -> str:
    """The text form with ``%zone`` when the address is scoped and a zone is given (``fe80::1%eth0``)."""
    text = ip6_str(addr)
    return f"{text}%{zone}" if zone and is_scoped(addr) else text


def link_local_from_mac(mac: bytes) -> bytes:
    """The fe80::/64 address of an Ethernet MAC: modified EUI-64, the universal/local bit flipped."""
    if len(mac) != 6:
        raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
    return _LINK_LOCAL_PREFIX + bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]))


def solicited_node(addr: bytes) -> bytes:
    """ff02::1:ffXX:XXXX, the multicast address an NS for ``addr`` goes to (its low 24 bits)."""
    return _SOLICITED_PREFIX + addr[13:16]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet MAC of an IPv6 multicast address: 33:33 and its low 32 bits (RFC 2464 7); for a
    solicited-node address that is 33:33:ff:xx:xx:xx."""
    if not is_multicast(group):
        raise ValueError(f"{ip6_str(group)} is not a multicast address")
    return b"\x33\x33" + group[12:16]
