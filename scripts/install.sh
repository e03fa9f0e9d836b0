#!/usr/bin/env bash
# Install rawtui from this checkout, on a fresh Debian/Ubuntu machine, as root or as a user with sudo.
#
#   bash scripts/install.sh                 install: .venv in the checkout, `rawtui` in /usr/local/bin
#   bash scripts/install.sh --demo [ARGS]   install, then run `rawtui demo ARGS` as root
#
# Why not plain `pip install .`: Debian 12 and Ubuntu 24.04 mark their Python "externally managed"
# (PEP 668) and refuse it; a fresh Debian has no sudo; and `sudo rawtui` does not find a command that
# lives in a venv (sudo resets PATH to its secure_path). So this script
#   1. installs what is missing from the system with apt-get (python3-venv, iproute2), as root or
#      through sudo; nothing else is needed (no nft, no iptables: rawtui speaks nftables netlink);
#   2. makes a virtual environment .venv in the checkout, owned by whoever runs the script, and
#      installs rawtui into it with pip;
#   3. links /usr/local/bin/rawtui to it (in sudo's secure_path, so `sudo rawtui URL` works);
#   4. with --demo, runs `rawtui demo` with root rights (through sudo when not root).
# Run it again at any time: it only does what is not done yet (pip reinstalls the checkout).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"
link=/usr/local/bin/rawtui

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

demo=0
if [ "${1:-}" = "--demo" ]; then
    demo=1
    shift
elif [ $# -gt 0 ]; then
    case "$1" in
        -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (use --demo [ARGS])" ;;
    esac
fi

# root, or sudo for what needs root
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    die "run this as root, or install sudo: rawtui needs root (or CAP_NET_RAW+CAP_NET_ADMIN)"
fi

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "cannot install $* here (no apt-get): install it, then run this again"
    if [ "$apt_updated" = 0 ]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. the system: Python >= 3.11 with venv and ensurepip, iproute2's ip
command -v "$python" >/dev/null 2>&1 || apt_install python3
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "rawtui needs Python 3.11 or newer; $python is $("$python" -V 2>&1)"
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
fi
if ! command -v ip >/dev/null 2>&1 && [ ! -x /usr/sbin/ip ] && [ ! -x /sbin/ip ]; then
    apt_install iproute2
fi

# 2. the virtual environment (a broken or foreign one is made again)
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "python venv in $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
say "pip install $here"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$here"
# every dataclass's methods compiled once, now, by the user who may write the package (rawtui/dataclass_cache.py);
# -I: the installed package, not the checkout in the current directory
"$venv/bin/python" -I -m rawtui.tools.warm

# 3. a command sudo can find
if [ "$(readlink "$link" 2>/dev/null || true)" != "$venv/bin/rawtui" ]; then
    "${as_root[@]}" mkdir -p "$(dirname "$link")"
    "${as_root[@]}" ln -sfn "$venv/bin/rawtui" "$link"
fi
say "installed: $link -> $venv/bin/rawtui ($("$venv/bin/rawtui" --version))"

# 4. the demo, with root rights
if [ "$demo" = 1 ]; then
    say "${as_root[*]:+${as_root[*]} }rawtui demo $*"
    exec "${as_root[@]}" "$venv/bin/rawtui" demo "$@"
fi
