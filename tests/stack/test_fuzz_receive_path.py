"""scripts/fuzz.py at a CI size (a few seconds): generated and mutated frames through every parser and a
connected Host, random segment sequences through TcpConnection. The full run (10^5 frames, 10^4 sequences)
is ``python scripts/fuzz.py``; its numbers go in the closing note."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from rawtui.stack.events import Medium

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("rawtui_fuzz", _PATH)
assert _spec is not None and _spec.loader is not None
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["rawtui_fuzz"] = fuzz
_spec.loader.exec_module(fuzz)


@pytest.mark.parametrize("medium", list(Medium))
@pytest.mark.parametrize("seed", [1, 2])
def test_frames(seed, medium):
    rep = fuzz.fuzz_frames(6000, seed, medium)
    assert rep.failures == []
    s = rep.stats
    # the run really reached every layer and every outcome
    assert s["checked:bytes_delivered"] > 100_000
    for key in ("checked:malformed", "checked:csum_drop_tcp", "checked:csum_drop_ipv4", "checked:out_of_order",
                "checked:challenge_acks", "checked:ip_fragments", "parse:tcp_ok", "kind:mutated-valid-odd"):
        assert s[key] > 0, key


@pytest.mark.parametrize("seed", [1, 2])
def test_tcp_sequences(seed):
    rep = fuzz.fuzz_sequences(400, seed)
    assert rep.failures == []
    assert rep.stats["final_passes"] > 50 and rep.stats["segments"] > 20_000


def test_a_sequence_replays_deterministically():
    a = fuzz.one_sequence(4711)
    b = fuzz.one_sequence(4711)
    assert a == b and a[0] is None
