"""The trainer's event stream (util/run_events.py): lines as the module documents them, read back
whole while a writer is still writing, another version refused."""
import json

import pytest

from util import run_events as ev


def test_round_trip_and_partial_lines(tmp_path):
    path = str(tmp_path / "events.jsonl")
    reader = ev.EventReader(path)
    assert reader.read() == []
    with ev.EventWriter(path) as writer:
        writer.emit(ev.Planned(iterations=12, seconds_per_iteration=0.5))
        writer.emit(ev.Progress(iteration=1, total=12, loss=0.25))
        assert reader.read() == [ev.Planned(12, 0.5), ev.Progress(1, 12, 0.25)]
    with open(path, "a") as f:                       # a line still being written
        f.write('{"v": 1, "type": "validation", "time": 0, "iteration": 4, ')
    assert reader.read() == []
    with open(path, "a") as f:
        f.write('"jf": 41.5, "best": true, "later_field": 3}\n{"v": 1, "type": "a_new_kind", "time": 0}\n')
    assert reader.read() == [ev.Validation(iteration=4, jf=41.5, best=True)]
    first = json.loads(open(path).readline())
    assert first["v"] == 1 and first["type"] == "planned" and first["iterations"] == 12


def test_other_version_and_bad_reason_refused(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"v": 2, "type": "progress", "iteration": 1}\n')
    with pytest.raises(ev.EventsVersionError):
        ev.EventReader(str(path)).read()
    with pytest.raises(ValueError):
        ev.encode(ev.Finished(iteration=3, reason="crashed"))
