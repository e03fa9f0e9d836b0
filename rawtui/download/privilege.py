"""Privileges for a download: exactly CAP_NET_RAW and CAP_NET_ADMIN, and the invoking user for the rest.

rawtui needs two capabilities: CAP_NET_RAW for the AF_PACKET socket and CAP_NET_ADMIN for the firewall
rule that stops the kernel's RSTs (an nftables netlink batch; the ``nft``/``iptables`` child only when the
kernel refuses netlink) and for SO_RCVBUFFORCE. Nothing else.

- Run through sudo (root, with SUDO_UID/SUDO_GID set): :func:`drop_to_sudo_user` becomes the invoking
  user (uid, gid, supplementary groups) and keeps only those two capabilities: permitted, effective,
  inheritable *and ambient* (so a fallback firewall tool it runs gets CAP_NET_ADMIN too), with every other
  capability removed from the bounding set and ``no_new_privs`` set. Files are then created by that
  user, in directories that user may write: the download belongs to the user, not to root.
- Plain root (no sudo): stays root.
- Not root, with the two capabilities (``setcap cap_net_raw,cap_net_admin+ep``, ``capsh --addamb``,
  ``setpriv --ambient-caps``): works as is. :func:`require_capabilities` names what is missing.

The drop is skipped (with a warning; the finished file is still handed to the user by
:mod:`rawtui.download.output`) when the invoking user could not read Python or rawtui itself, since modules are
still imported after the drop (for example an interpreter under root's 0700 home).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pwd
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass

from rawtui.errors import PrivilegeError

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
NEEDED: dict[int, tuple[str, str]] = {
    CAP_NET_RAW: ("CAP_NET_RAW", "needed for the raw socket"),
    CAP_NET_ADMIN: ("CAP_NET_ADMIN", "needed for the firewall rule that stops the kernel's RSTs"),
}
KEEP_MASK = (1 << CAP_NET_RAW) | (1 << CAP_NET_ADMIN)

# <linux/prctl.h>, <linux/capability.h>
PR_CAPBSET_DROP = 24
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# what must stay readable after the drop: modules are imported lazily (the views, rich, textual, and
# pyroute2 at the route lookup); json stands for the stdlib (os is frozen)
_MODULES_AFTER_DROP = ("json", "rawtui", "h11", "rich", "textual", "pyroute2")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@dataclass(frozen=True, slots=True)
class Dropped:
    """What :func:`drop_to_sudo_user` did."""

    uid: int
    gid: int
    groups: tuple[int, ...]


# -- reading ------------------------------------------------------------------------------------------


def capability_sets(status_text: str | None = None) -> dict[str, int]:
    """The Cap* lines of /proc/self/status (CapInh, CapPrm, CapEff, CapBnd, CapAmb) as integers."""
    if status_text is None:
        # bytes, no text codec: a process that cannot read its own Python any more (dropped to a user
        # without access to it) still gets here, and a codec would be a lazy import
        with open("/proc/self/status", "rb") as f:
            raw = f.read()
    else:
        raw = status_text.encode()
    sets: dict[str, int] = {}
    for line in raw.splitlines():
        key, _, value = line.partition(b":")
        if key.startswith(b"Cap"):
            try:
                sets[key.decode()] = int(value.strip(), 16)
            except ValueError:
                continue
    return sets


def missing_capabilities(effective: int) -> list[int]:
    """The needed capabilities absent from ``effective``, CAP_NET_RAW first."""
    return [cap for cap in (CAP_NET_RAW, CAP_NET_ADMIN) if not effective >> cap & 1]


def missing_message(missing: list[int]) -> str:
    what = " and ".join(f"{NEEDED[c][0]} ({NEEDED[c][1]})" for c in missing)
    return f"missing {what}: run as root (sudo) or grant CAP_NET_RAW+CAP_NET_ADMIN"


def require_capabilities(status_text: str | None = None) -> None:
    """Raise PrivilegeError naming each of CAP_NET_RAW / CAP_NET_ADMIN the process does not have."""
    effective = capability_sets(status_text).get("CapEff", 0)
    missing = missing_capabilities(effective)
    if missing:
        raise PrivilegeError(missing_message(missing))


def sudo_ids(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[int, int] | None:
    """(uid, gid) of the user who ran sudo, or None (no sudo, sudo from root, or nonsense values)."""
    env = os.environ if environ is None else environ
    uid, gid = env.get("SUDO_UID", ""), env.get("SUDO_GID", "")
    if not (uid.isascii() and uid.isdigit() and gid.isascii() and gid.isdigit()):
        return None
    if int(uid) == 0 or int(uid) >= 1 << 32 or int(gid) >= 1 << 32:
        return None
    return int(uid), int(gid)


def supplementary_groups(uid: int, gid: int) -> list[int]:
    """The user's groups (from the group database), or just ``gid`` for a uid with no passwd entry."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return [gid]
    try:
        return sorted(set(os.getgrouplist(name, gid)))
    except OSError:
        return [gid]


def unreadable_for(uid: int, groups: list[int], modules: tuple[str, ...] = _MODULES_AFTER_DROP) -> str | None:
    """The first file the user could not read among what Python still imports after the drop, or None."""
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not os.path.isabs(spec.origin):
            continue
        if not readable(spec.origin, uid, groups):
            return spec.origin
    return None


def readable(path: str, uid: int, groups: list[int]) -> bool:
    """Whether ``uid`` (with ``groups``) may traverse every directory to ``path`` and read it."""
    parts = os.path.abspath(path).split(os.sep)
    for i in range(1, len(parts) + 1):
        p = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(p)
        except OSError:
            return False
        need = 1 if stat.S_ISDIR(st.st_mode) else 4  # x on directories, r on the file
        if st.st_uid == uid:
            ok = st.st_mode >> 6 & need
        elif st.st_gid in groups:
            ok = st.st_mode >> 3 & need
        else:
            ok = st.st_mode & need
        if not ok:
            return False
    return True


# -- changing -----------------------------------------------------------------------------------------


def _libc() -> ctypes.CDLL:
    # the process's own symbols, libc's among them: no search (find_library runs ldconfig, ~5 ms)
    return ctypes.CDLL(None, use_errno=True)


def _prctl(libc: ctypes.CDLL, option: int, arg2: int = 0, arg3: int = 0) -> None:
    args = (ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0))
    if libc.prctl(ctypes.c_int(option), *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}, {arg2}, {arg3}): {os.strerror(err)}")


def _capset(libc: ctypes.CDLL, mask: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = data[i].inheritable = word
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40


def drop_to_sudo_user(uid: int, gid: int, groups: list[int] | None = None) -> Dropped:
    """Become ``uid``/``gid`` (with ``groups``) keeping CAP_NET_RAW and CAP_NET_ADMIN (also ambient).

    Must be called as root. Raises PrivilegeError when a step fails; a failure after the uid changed
    leaves a process without the capabilities, never one with more.
    """
    libc = _libc()
    groups = supplementary_groups(uid, gid) if groups is None else groups
    try:
        # 1. the bounding set: nothing but the two (needs CAP_SETPCAP, so before the uid change)
        for cap in range(_last_cap() + 1):
            if not KEEP_MASK >> cap & 1:
                _prctl(libc, PR_CAPBSET_DROP, cap)
        # 2. keep the permitted set across setuid, then change groups, gid, uid (in that order)
        _prctl(libc, PR_SET_KEEPCAPS, 1)
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        _prctl(libc, PR_SET_KEEPCAPS, 0)
        # 3. exactly the two, effective and inheritable too, then ambient for the children
        _capset(libc, KEEP_MASK)
        _prctl(libc, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in (CAP_NET_RAW, CAP_NET_ADMIN):
            _prctl(libc, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
        # 4. no set-uid or file-capability program run from here on can gain anything
        _prctl(libc, PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise PrivilegeError(f"cannot drop privileges to uid {uid}: {e.strerror or e}") from None
    if os.getuid() != uid or os.geteuid() != uid or os.getegid() != gid:
        raise PrivilegeError(f"cannot drop privileges to uid {uid}: the ids did not change")
    return Dropped(uid, gid, tuple(groups))


def prepare_download(*, drop: bool = True, warn: Callable[[str], None] | None = None) -> Dropped | None:
    """The one call before a download: drop to the sudo user when possible, then check capabilities.

    ``drop=False`` stays as we are (the lab demo's child works in the demo's root-owned directory).
    ``warn`` gets one sentence when a drop that was asked for is skipped (default: stderr).
    """
    dropped = None
    ids = sudo_ids() if drop and os.geteuid() == 0 else None
    if ids is not None:
        uid, gid = ids
        groups = supplementary_groups(uid, gid)
        blocked = unreadable_for(uid, groups)
        if blocked is not None:
            say = warn or (lambda m: print(f"rawtui: warning: {m}", file=sys.stderr))
            say(f"staying root: uid {uid} (SUDO_UID) cannot read {blocked}, which Python still needs; "
                "the finished file is still handed to that user")
        else:
            dropped = drop_to_sudo_user(uid, gid, groups)
    require_capabilities()
    return dropped
