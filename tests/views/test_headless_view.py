"""The headless view prints what the network said as it is: no rich markup or emoji codes obeyed."""

from __future__ import annotations

import pytest

from rawtui import events as E
from rawtui.views.headless import HeadlessView


def test_network_text_is_shown_literally(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    view = HeadlessView()
    mac = "5a:3e:18:ab:b0:40"  # ":ab:" is an emoji code to rich
    view(E.Route(0.0, "eth0", 2, "10.0.0.2", "0e:c5:92:b9:b6:87", "10.0.0.9", "10.0.0.1", "10.0.0.1", 1500,
                 "kernel route [table main]"))
    view(E.ArpReply(0.001, "10.0.0.1", mac, 0.3))
    view(E.Redirect(0.01, 302, "http://host/[/]x", 1))
    view(E.Info(0.02, "odd [bold]header[/bold] [/]", "warning"))
    view(E.HttpResponse(0.03, 200, "OK [/]", None))
    view(E.Done(0.5, 10, "ab" * 32, 0.4, "/tmp/[red]out[/].bin"))
    out = capsys.readouterr().err
    for literal in (mac, "kernel route [table main]", "http://host/[/]x", "odd [bold]header[/bold] [/]",
                    "OK [/]", "/tmp/[red]out[/].bin"):
        assert literal in out, literal
    assert "\N{NEGATIVE SQUARED AB}" not in out


def _peer_counters() -> dict[str, int]:
    return {"retransmits": 1, "peer_retrans": 84, "peer_retrans_fast": 80, "peer_retrans_timeout": 2,
            "peer_retrans_tlp": 1, "peer_retrans_spurious": 1, "dup_data": 1}


def test_summary_headlines_the_servers_retransmissions(capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    view = HeadlessView()
    view(E.Done(1.0, 10, "ab" * 32, 1.0, "/tmp/out.bin", _peer_counters()))
    out = capsys.readouterr().err
    assert "server resent 84 (fast 80, timeout 2, tlp 1, spurious 1)" in out
    assert "our retransmissions 1" in out
    assert "witnesses" not in out  # outside the lab, no other witness


def test_summary_in_the_lab_puts_three_witnesses_on_one_line(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    view = HeadlessView()
    view(E.Handshake(0.02, 40000, 8080, 1, 2, 1460, 1460, 7, 7, True, True, 20.0))
    view(E.ServerTcpInfo(0.5, 14600, None, 20.0, 2.0, 83, 0, 0, 1460, peer_port=40000))
    view(E.ServerTcpInfo(0.6, 14600, None, 20.0, 2.0, 999, 0, 0, 1460, peer_port=40001))  # another connection
    view(E.LabStats(0.7, {"lost": 80, "blackout_drops": 2, "queue_drops": 1, "corrupted": 1, "duplicated": 5}))
    view(E.Done(1.0, 10, "ab" * 32, 1.0, "/tmp/out.bin", _peer_counters()))
    out = capsys.readouterr().err
    assert "rawtui saw 84 server retransmissions · server TCP_INFO 83 · router dropped 84" in out
