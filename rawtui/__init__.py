"""rawtui: an HTTP downloader with its own ARP/IPv4/TCP stack on an AF_PACKET socket."""

__version__ = "0.1.0"
