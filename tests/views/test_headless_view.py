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
