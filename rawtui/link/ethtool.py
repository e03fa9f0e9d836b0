"""An interface's offload features (GRO, GSO, TSO, checksumming), read with the ethtool ioctl.

The same three requests `ethtool -k` makes: ETHTOOL_GSSET_INFO (how many feature names),
ETHTOOL_GSTRINGS (the names) and ETHTOOL_GFEATURES (their bits). All three are allowed without
privileges. Nothing here changes a setting.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from dataclasses import dataclass

# <linux/sockios.h>, <linux/ethtool.h>
SIOCETHTOOL = 0x8946
ETHTOOL_GSTRINGS = 0x1B
ETHTOOL_GSSET_INFO = 0x37
ETHTOOL_GFEATURES = 0x3A
ETH_SS_FEATURES = 4
ETH_GSTRING_LEN = 32
IFNAMSIZ = 16

_SSET_INFO = struct.Struct("=IIQI")  # cmd, reserved, sset_mask, data[1]
_GSTRINGS = struct.Struct("=III")  # cmd, string_set, len; then len * 32 bytes
_GFEATURES = struct.Struct("=II")  # cmd, size; then size * ethtool_get_features_block
_BLOCK = struct.Struct("=IIII")  # available, requested, active, never_changed
_IFREQ = struct.Struct(f"{IFNAMSIZ}sP{40 - IFNAMSIZ - struct.calcsize('P')}x")  # name, ifr_data; 40 bytes


@dataclass(frozen=True, slots=True)
class Feature:
    active: bool
    fixed: bool  # the driver does not let it change ("[fixed]" in `ethtool -k`)


@dataclass(frozen=True, slots=True)
class Offloads:
    """The offloads that change what a raw socket sees or sends; None: the driver does not say."""

    gro: bool | None  # rx-gro: received TCP segments merged, frames bigger than the MTU
    lro: bool | None  # rx-lro: the same, done by the NIC
    gso: bool | None  # tx-generic-segmentation: the kernel's own big sends split late
    tso: bool | None  # tx-tcp-segmentation: the NIC splits the kernel's big TCP sends
    rx_csum: bool | None  # rx-checksum: the NIC verifies checksums (PACKET_AUXDATA says so)
    tx_csum: bool | None  # tx-checksum-ipv4 or -ip-generic: outgoing checksums may be left partial

    def enabled(self) -> list[str]:
        """The short names of the offloads that are on, in a fixed order."""
        names = ("GRO", "LRO", "GSO", "TSO", "rx-csum", "tx-csum")
        values = (self.gro, self.lro, self.gso, self.tso, self.rx_csum, self.tx_csum)
        return [name for name, on in zip(names, values, strict=True) if on]


def read_features(ifname: str) -> dict[str, Feature] | None:
    """Every named feature of ifname, as `ethtool -k` lists them; None if the interface has none to give."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            count = _feature_count(sock, ifname)
            if count == 0:
                return None
            names = _feature_names(sock, ifname, count)
            blocks = _feature_blocks(sock, ifname, count)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENODEV, errno.EINVAL, errno.EPERM, errno.EACCES):
                return None
            raise
    features: dict[str, Feature] = {}
    for bit, name in enumerate(names):
        if not name:
            continue
        available, _requested, active, never_changed = blocks[bit // 32]
        mask = 1 << (bit % 32)
        features[name] = Feature(bool(active & mask), not (available & mask) or bool(never_changed & mask))
    return features


def read_offloads(ifname: str) -> Offloads | None:
    """The offloads that matter to rawtui on ifname, or None when the driver reports no features."""
    features = read_features(ifname)
    if features is None:
        return None
    return offloads_from(features)


def offloads_from(features: dict[str, Feature]) -> Offloads:
    def on(*names: str) -> bool | None:
        known = [features[name].active for name in names if name in features]
        return any(known) if known else None

    return Offloads(
        gro=on("rx-gro"),
        lro=on("rx-lro"),
        gso=on("tx-generic-segmentation"),
        tso=on("tx-tcp-segmentation"),
        rx_csum=on("rx-checksum"),
        tx_csum=on("tx-checksum-ipv4", "tx-checksum-ip-generic"),
    )


def _ioctl(sock: socket.socket, ifname: str, data: ctypes.Array[ctypes.c_char]) -> None:
    """SIOCETHTOOL on ifname with data (the ethtool command structure), which the kernel fills in."""
    name = ifname.encode()
    if len(name) >= IFNAMSIZ:
        raise OSError(errno.ENODEV, f"interface name {ifname!r} is too long")
    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, _IFREQ.pack(name, ctypes.addressof(data)))


def _feature_count(sock: socket.socket, ifname: str) -> int:
    buf = ctypes.create_string_buffer(_SSET_INFO.pack(ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_FEATURES, 0))
    _ioctl(sock, ifname, buf)
    _cmd, _reserved, mask, count = _SSET_INFO.unpack(buf.raw[: _SSET_INFO.size])
    return int(count) if mask & (1 << ETH_SS_FEATURES) else 0


def _feature_names(sock: socket.socket, ifname: str, count: int) -> list[str]:
    size = _GSTRINGS.size + count * ETH_GSTRING_LEN
    buf = ctypes.create_string_buffer(size)
    _GSTRINGS.pack_into(buf, 0, ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count)
    _ioctl(sock, ifname, buf)
    raw = buf.raw
    return [
        raw[_GSTRINGS.size + i * ETH_GSTRING_LEN : _GSTRINGS.size + (i + 1) * ETH_GSTRING_LEN]
        .split(b"\0", 1)[0]
        .decode(errors="replace")
        for i in range(count)
    ]


def _feature_blocks(sock: socket.socket, ifname: str, count: int) -> list[tuple[int, int, int, int]]:
    nblocks = (count + 31) // 32
    buf = ctypes.create_string_buffer(_GFEATURES.size + nblocks * _BLOCK.size)
    _GFEATURES.pack_into(buf, 0, ETHTOOL_GFEATURES, nblocks)
    _ioctl(sock, ifname, buf)
    raw = buf.raw
    return [_BLOCK.unpack_from(raw, _GFEATURES.size + i * _BLOCK.size) for i in range(nblocks)]
