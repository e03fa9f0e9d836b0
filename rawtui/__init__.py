"""rawtui: an HTTP downloader with its own ARP/IPv4/TCP stack on an AF_PACKET socket."""

from rawtui import dataclass_cache

__version__ = "0.1.0"

dataclass_cache.install()  # before any of rawtui's dataclasses is defined
