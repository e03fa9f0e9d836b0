"""`rawtui watch` names IPv6 ends as URLs do (the lab test: tests/lab/test_lab_watch6.py)."""

from __future__ import annotations

import ipaddress

import pytest

from rawtui.errors import UsageError
from rawtui.link.tcpdiag import unmapped
from rawtui.watch.pick import FlowFilter

A, B = ipaddress.ip_address("2001:db8:1::2").packed, ipaddress.ip_address("2001:db8:2::2").packed


def test_ipv6_host_and_stream_filter() -> None:
    assert FlowFilter.parse("2001:db8:2::2").host == B
    flt = FlowFilter.parse(stream="[2001:db8:1::2]:40000-[2001:db8:2::2]:8080")
    assert flt.exact == frozenset({(A, 40000), (B, 8080)})
    assert flt.matches((B, 8080), (A, 40000)) and not flt.matches((B, 8080), (A, 40001))
    v4 = FlowFilter.parse(stream="10.77.1.2:40000-10.77.2.2:8080")
    assert v4.exact is not None and {len(a) for a, _ in v4.exact} == {4}
    with pytest.raises(UsageError, match="IPv4 or IPv6"):
        FlowFilter.parse("2001:db8::zz")


def test_ipv4_mapped_addresses_read_as_ipv4() -> None:
    assert unmapped("::ffff:10.77.1.2") == "10.77.1.2"
    assert unmapped("2001:db8:1::2") == "2001:db8:1::2" and unmapped("::ffff:a01:102") == "::ffff:a01:102"
