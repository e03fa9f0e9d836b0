"""TCP segments (RFC 9293) with the options MSS, window scale, SACK-permitted, SACK and timestamps."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rawtui.wire.checksum import checksum_from_residue, pseudo_header_residue, residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ipv4 import PROTO_TCP

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_LETTERS = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"), (ECE, "E"), (CWR, "C"))

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_OK, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
_HDR = struct.Struct("!HHIIBBHHH")
MIN_HEADER = 20
_TS_FAST = b"\x01\x01\x08\x0a"  # NOP NOP TS(10): the layout Linux puts on every data segment
_TS_FAST_WORD = int.from_bytes(_TS_FAST, "big")
_TS_ONLY = struct.Struct("!III")  # that prefix, TSval, TSecr
_U32 = struct.Struct("!II")


@dataclass(slots=True, unsafe_hash=True)  # treated as immutable; frozen would cost ~3 us per segment
class TcpOptions:
    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts: tuple[int, int] | None = None  # (TSval, TSecr)
    unknown: tuple[int, ...] = ()  # kinds we skipped


NO_OPTIONS = TcpOptions()


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us per record, per frame
class TcpSegment:
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int  # raw 16-bit field (unscaled)
    options: TcpOptions = NO_OPTIONS
    payload: bytes | memoryview = b""  # a memoryview may point into a receive buffer: copy to keep
    urgent: int = 0
    checksum: int = 0
    header_length: int = MIN_HEADER

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


def flags_str(flags: int) -> str:
    """tcpdump-like letters: S F R P A U E C (e.g. "SA" for a SYN-ACK, "PA" for data)."""
    return "".join(ch for bit, ch in _FLAG_LETTERS if flags & bit) or "."


def parse_options(opts: bytes | memoryview) -> TcpOptions:
    if not opts:
        return NO_OPTIONS
    if len(opts) == 12:  # the common case, unpacked at once (every data segment from Linux)
        prefix, tsval, tsecr = _TS_ONLY.unpack_from(opts)
        if prefix == _TS_FAST_WORD:
            return TcpOptions(None, None, False, (), (tsval, tsecr))
    mss = wscale = ts = None
    sack_ok = False
    sack: tuple[tuple[int, int], ...] = ()
    unknown: list[int] = []
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise WireError(f"TCP option {kind} truncated (no length byte)")
        ln = opts[i + 1]
        if ln < 2 or i + ln > n:
            raise WireError(f"TCP option {kind} has bad length {ln}")
        body = opts[i + 2 : i + ln]
        if kind == OPT_MSS:
            if ln != 4:
                raise WireError(f"TCP MSS option of length {ln}")
            mss = struct.unpack_from("!H", body)[0]
        elif kind == OPT_WSCALE:
            if ln != 3:
                raise WireError(f"TCP window scale option of length {ln}")
            wscale = min(body[0], 14)  # RFC 7323 2.3: treat > 14 as 14
        elif kind == OPT_SACK_OK:
            if ln != 2:
                raise WireError(f"TCP SACK-permitted option of length {ln}")
            sack_ok = True
        elif kind == OPT_SACK:
            if (ln - 2) % 8 or ln == 2:
                raise WireError(f"TCP SACK option of length {ln}")
            sack = tuple(_U32.unpack_from(body, k) for k in range(0, ln - 2, 8))
        elif kind == OPT_TS:
            if ln != 10:
                raise WireError(f"TCP timestamp option of length {ln}")
            ts = _U32.unpack_from(body)
        else:
            unknown.append(kind)
        i += ln
    return TcpOptions(mss, wscale, sack_ok, sack, ts, tuple(unknown))


def build_options(o: TcpOptions) -> bytes:
    """Options in the order Linux uses, NOP-aligned to 32 bits."""
    out = bytearray()
    if o.mss is not None:
        out += struct.pack("!BBH", OPT_MSS, 4, o.mss)
    if o.sack_permitted and o.ts is not None:
        out += struct.pack("!BBBBII", OPT_SACK_OK, 2, OPT_TS, 10, *o.ts)
    else:
        if o.sack_permitted:
            out += b"\x01\x01\x04\x02"
        if o.ts is not None:
            out += _TS_FAST + _U32.pack(*o.ts)
    if o.wscale is not None:
        out += struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, o.wscale)
    if o.sack:
        out += struct.pack("!BBBB", OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * len(o.sack))
        for left, right in o.sack:
            out += _U32.pack(left, right)
    if len(out) % 4:
        out += b"\x01" * (4 - len(out) % 4)
    if len(out) > 40:
        raise WireError(f"TCP options of {len(out)} bytes exceed 40")
    return bytes(out)


# pure ACKs: [NOP NOP TS(10) TSval TSecr] [NOP NOP SACK(2+8n) blocks], the layout Linux sends and the
# bytes build_options gives for the same options, packed at once (the receive path sends one per 2 segments)
_ACK_PLAIN = struct.Struct("!HHIIBBHHH")
_ACK_TS = struct.Struct("!HHIIBBHHHIII")
_ACK_SACK_TS = [struct.Struct("!HHIIBBHHHIIII" + "II" * n) for n in range(4)]
_ACK_SACK = [struct.Struct("!HHIIBBHHHI" + "II" * n) for n in range(5)]


def build_pure_ack(
    src_port: int, dst_port: int, seq: int, ack: int, window: int, ts: tuple[int, int] | None,
    sack: tuple[tuple[int, int], ...], pseudo_residue: int,
) -> bytes:
    """A segment with only ACK set and no payload: byte for byte what :func:`build_tcp` makes of
    ``TcpSegment(src_port, dst_port, seq, ack, ACK, window, TcpOptions(ts=ts, sack=sack))``, in one pack.

    ``pseudo_residue`` is ``pseudo_header_residue(src_ip, dst_ip, PROTO_TCP, 0)`` (the length is added
    here), so a connection computes it once. At most 3 SACK blocks with timestamps, 4 without.
    """
    seq &= 0xFFFFFFFF
    if sack:
        n = len(sack)
        blocks = [x for b in sack for x in b]
        if ts is not None:
            hdr = _ACK_SACK_TS[n].pack(src_port, dst_port, seq, ack, (9 + 2 * n) << 4, ACK, window, 0, 0,
                                       _TS_FAST_WORD, ts[0], ts[1], 0x01010500 | (2 + 8 * n), *blocks)
        else:
            hdr = _ACK_SACK[n].pack(src_port, dst_port, seq, ack, (6 + 2 * n) << 4, ACK, window, 0, 0,
                                    0x01010500 | (2 + 8 * n), *blocks)
    elif ts is not None:
        hdr = _ACK_TS.pack(src_port, dst_port, seq, ack, 0x80, ACK, window, 0, 0, _TS_FAST_WORD, ts[0], ts[1])
    else:
        hdr = _ACK_PLAIN.pack(src_port, dst_port, seq, ack, 0x50, ACK, window, 0, 0)
    csum = checksum_from_residue(pseudo_residue + len(hdr) + residue(hdr))
    return hdr[:16] + csum.to_bytes(2, "big") + hdr[18:]


def parse_tcp(
    buf: bytes | bytearray | memoryview, src_ip: bytes, dst_ip: bytes, verify: bool = True
) -> TcpSegment:
    """Parse a segment (``buf`` = the IP payload, already cut to the IPv4 total length or the IPv6 payload
    length). ``src_ip`` / ``dst_ip`` are 4 bytes (IPv4) or 16 (IPv6): they choose the pseudo-header.

    ``verify=False`` skips the checksum. Raises :class:`ChecksumError` (layer "tcp") or
    :class:`WireError`.
    """
    mv = memoryview(buf)
    n = len(mv)
    if n < MIN_HEADER:
        raise WireError(f"TCP segment of {n} bytes is shorter than its 20-byte header")
    sport, dport, seq, ack, off, flags, win, csum, urg = _HDR.unpack_from(mv, 0)
    hl = (off >> 4) * 4
    if hl < MIN_HEADER or hl > n:
        raise WireError(f"TCP data offset {hl} is outside 20..{n}")
    if verify and (pseudo_header_residue(src_ip, dst_ip, PROTO_TCP, n) + residue(mv)) % 0xFFFF:
        raise ChecksumError("tcp")
    options = parse_options(mv[MIN_HEADER:hl]) if hl > MIN_HEADER else NO_OPTIONS
    return TcpSegment(sport, dport, seq, ack, flags, win, options, mv[hl:], urg, csum, hl)


def build_tcp(seg: TcpSegment, src_ip: bytes, dst_ip: bytes) -> bytes:
    """Serialise with a correct checksum (``seg.checksum`` and ``seg.header_length`` are ignored)."""
    opts = build_options(seg.options) if seg.options is not NO_OPTIONS else b""
    hl = MIN_HEADER + len(opts)
    hdr = bytearray(
        _HDR.pack(seg.src_port, seg.dst_port, seg.seq & 0xFFFFFFFF, seg.ack & 0xFFFFFFFF, (hl // 4) << 4,
                  seg.flags, seg.window, 0, seg.urgent)
    )
    hdr += opts
    data = bytes(hdr) + bytes(seg.payload)
    r = pseudo_header_residue(src_ip, dst_ip, PROTO_TCP, len(data)) + residue(data)
    csum = checksum_from_residue(r)
    return data[:16] + csum.to_bytes(2, "big") + data[18:]


