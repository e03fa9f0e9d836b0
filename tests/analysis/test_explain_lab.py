"""`--explain` in the lab: the fast-retransmit scenario, headless, prints the explanation of its fast
retransmissions, and its event log holds the same lines as ``explain`` events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

pytestmark = pytest.mark.lab


def test_demo_headless_explain_tells_the_fast_retransmit(tmp_path: Path) -> None:
    log = tmp_path / "events.ndjson"
    res = subprocess.run([sys.executable, "-m", "rawtui", "demo", "--headless", "--scenario", "fast-retransmit",
                          "--fast", "--explain", "--events", str(log)], capture_output=True, text=True,
                         timeout=180, env=child_env(COLUMNS="400"), stdin=subprocess.DEVNULL, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    told = [e for e in events if e["type"] == "explain"]
    fast = [e for e in told if e["topic"] == "fast-retransmit"]
    assert fast, [e["text"] for e in told]
    assert fast[0]["text"].startswith("Fast retransmit: the server resent seq ")
    assert fast[0]["seq"] is not None and f"seq {fast[0]['seq']:,} " in fast[0]["text"]
    printed = " ".join(res.stderr.split())
    assert " ".join(fast[0]["text"].split()) in printed  # the headless view printed it as it happened
    # one line per told moment, not one per event: the log has far more events than explanations
    assert len(told) < len(events) / 20
