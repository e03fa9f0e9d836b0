"""The event stream's NDJSON form round-trips every event type."""

import json

from rawtui.stack import events as E


def test_handshake_sack_flag_round_trips():
    ev = E.Handshake(0.5, 40000, 80, 1, 2, 1460, 1460, 7, 8, True, True, 0.3)
    back = E.from_dict(json.loads(json.dumps(E.to_dict(ev))))
    assert back == ev and back.sack is True


def test_sack_blocks_round_trip_as_tuples():
    ev = E.SegmentIn(1.0, 100, 1, "A", 65535, 0, ((200, 300), (400, 500)), "ooo")
    back = E.from_dict(json.loads(json.dumps(E.to_dict(ev))))
    assert back == ev and back.sack == ((200, 300), (400, 500))


def test_every_type_is_registered_under_its_name():
    for name, cls in E.EVENT_TYPES.items():
        assert cls.type == name
