"""The timeline: recording, queries, waiting, and nothing lost when the process dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from harness.trace import Layer, Recorder, TraceTimeout
from harness.trace.recorder import TraceFileError


def test_events_are_written_as_they_happen(tmp_path):
    path = tmp_path / "trace.jsonl"
    recorder = Recorder(path)
    recorder.emit(Layer.OCPP, "BootNotification", "CALL BootNotification", src="evse", dst="csms",
                  payload={"frame": "[2]", "raw": b"\x01\xff"}, keys={"station_id": "CS1", "evse_id": 1})
    # readable before close: a crash after emit() loses nothing
    line = json.loads(path.read_text().splitlines()[0])
    assert line["layer"] == "ocpp" and line["keys"] == {"station_id": "CS1", "evse_id": "1"}
    assert line["payload"]["raw"] == "01FF"  # bytes as uppercase hex
    assert line["wall"].endswith("+00:00") and line["observer"] == "evse"
    recorder.close()


def test_select_by_layer_name_keys_time_and_predicate():
    recorder = Recorder()
    recorder.emit(Layer.OCPP, "TransactionEvent", "a", keys={"transaction_id": "T1"})
    mark = recorder.now()
    recorder.emit(Layer.OCPP, "TransactionEvent", "b", keys={"transaction_id": "T2"}, payload={"seqNo": 0})
    recorder.emit(Layer.METER, "sample", "c", payload={"power": 11000})
    recorder.emit(Layer.OCPP, "TransactionEvent", "d", keys={"transaction_id": "T1"}, payload={"seqNo": 1})
    assert [e.summary for e in recorder.select(keys={"transaction_id": "T1"})] == ["a", "d"]
    assert [e.summary for e in recorder.select(layer="ocpp", since=mark)] == ["b", "d"]
    assert recorder.first(layer=Layer.METER, since=mark).payload["power"] == 11000
    assert recorder.last(name="TransactionEvent").summary == "d"
    assert recorder.select(where=lambda e: (e.payload or {}).get("seqNo") == 1)[0].summary == "d"
    with pytest.raises(TypeError):
        recorder.first(colour="red")


def test_wait_for_sees_events_from_another_thread():
    recorder = Recorder()
    mark = recorder.now()
    threading.Timer(0.05, lambda: recorder.emit(Layer.V2G, "SessionSetupRes", "late")).start()
    assert recorder.wait_for(5.0, name="SessionSetupRes", since=mark).summary == "late"
    with pytest.raises(TraceTimeout, match="SessionStopRes"):
        recorder.wait_for(0.05, name="SessionStopRes")


def test_concurrent_writers_keep_every_event(tmp_path):
    recorder = Recorder(tmp_path / "trace.jsonl")

    def writer(n: int) -> None:
        for i in range(500):
            recorder.emit(Layer.METER, "sample", f"{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    reloaded = Recorder.load(tmp_path / "trace.jsonl")
    assert len(reloaded) == 2000
    assert [e.seq for e in reloaded] == list(range(2000))


def test_a_broken_subscriber_does_not_stop_recording(capsys):
    recorder = Recorder()
    recorder.subscribe(lambda event: 1 / 0)
    recorder.emit(Layer.RIG, "x", "still recorded")
    assert len(recorder) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_load_ignores_a_line_cut_by_a_crash_but_not_a_corrupt_one(tmp_path):
    recorder = Recorder(tmp_path / "trace.jsonl")
    recorder.emit(Layer.RIG, "a", "first")
    recorder.close()
    path = tmp_path / "trace.jsonl"
    with path.open("a") as handle:
        handle.write('{"seq": 1, "mono": 2.0, "wal')  # the process died mid-write
    assert len(Recorder.load(path)) == 1
    path.write_text('not json\n' + path.read_text())
    with pytest.raises(TraceFileError, match="trace.jsonl:1"):
        Recorder.load(path)


def test_a_killed_process_leaves_everything_it_recorded(tmp_path):
    path = tmp_path / "trace.jsonl"
    script = (
        "import sys, time\n"
        "from harness.trace import Recorder, Layer\n"
        f"r = Recorder({str(path)!r})\n"
        "for i in range(200):\n"
        "    r.emit(Layer.OCPP, 'Heartbeat', f'beat {i}')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    events = list(Recorder.load(path))
    assert len(events) == 200 and events[-1].summary == "beat 199"


def test_since_finds_the_same_events_whether_the_timeline_is_in_order_or_not():
    """``since`` bisects a timeline in time order (so a query about the last seconds of a long
    run does not read the whole run) and scans one that is not (a trace joined from captures)."""
    times = iter([1.0, 2.0, 3.0, 4.0, 2.5])
    recorder = Recorder(clock=lambda: next(times))
    for name in ("a", "b", "c", "d"):
        recorder.emit(Layer.RIG, name, name)
    assert [e.name for e in recorder.select(since=2.0)] == ["b", "c", "d"]
    assert recorder.wait_for(0.1, since=3.5).name == "d"
    recorder.emit(Layer.RIG, "late", "late")  # mono 2.5, after 4.0
    assert [e.name for e in recorder.select(since=2.5)] == ["c", "d", "late"]


def test_an_oversized_payload_is_kept_as_its_size_digest_and_head(tmp_path):
    """A 4 MB frame on the timeline costs a few kB of memory and trace, not 4 MB: its size, SHA-256
    and first 4 kB stay (what it was and that it was that big are evidence; the bytes are in the
    capture)."""
    import hashlib
    import json

    from harness.trace.event import MAX_PAYLOAD_TEXT, TRUNCATED_HEAD

    recorder = Recorder(tmp_path / "trace.jsonl")
    frame = "x" * (4 * 1024 * 1024)
    event = recorder.emit("ocpp", "malformed", "a 4 MB frame", src="evse", payload={"frame": frame})
    recorder.emit("ocpp", "Heartbeat", "a small one", src="evse", payload={"frame": "[2,\"1\",\"Heartbeat\",{}]"})
    recorder.close()
    kept = event.payload
    whole = json.dumps({"frame": frame}, separators=(",", ":"))
    assert kept["truncated"] and kept["size"] == len(whole)
    assert kept["sha256"] == hashlib.sha256(whole.encode()).hexdigest() and len(kept["head"]) == TRUNCATED_HEAD
    assert (tmp_path / "trace.jsonl").stat().st_size < MAX_PAYLOAD_TEXT
    assert Recorder.load(tmp_path / "trace.jsonl").last(name="Heartbeat").payload["frame"].startswith("[2,")


def test_a_summary_is_one_bounded_line():
    """A summary that quotes what a peer sent stays a line: at most MAX_SUMMARY characters, then
    how long it was."""
    from harness.trace.recorder import MAX_SUMMARY

    event = Recorder().emit("sdp", "SdpRequest", "SDP request: " + "5A " * 65000, src="ev")
    assert len(event.summary) < MAX_SUMMARY + 40 and event.summary.endswith("(195013 characters)")


def test_a_long_timeline_keeps_only_its_recent_events_in_memory_and_answers_over_all(tmp_path):
    """The timeline streams to its file; memory holds the most recent events up to the budget, and
    every query still answers over the whole run (reading the forgotten part back)."""
    recorder = Recorder(tmp_path / "trace.jsonl", memory_budget=200_000)
    mark_early = recorder.now()
    for n in range(2000):
        recorder.emit(Layer.OCPP, "Heartbeat" if n % 2 else "MeterValues", f"event {n}", src="evse",
                      payload={"n": n, "padding": "x" * 200}, keys={"n": n})
    assert len(recorder) == 2000
    assert 0 < recorder.in_memory < 2000  # the oldest are in the file only
    every = recorder.select()
    assert [e.payload["n"] for e in every] == list(range(2000)) and [e.seq for e in every] == list(range(2000))
    assert [e.payload["n"] for e in recorder.select(since=mark_early, keys={"n": 3})] == [3]
    assert recorder.first(name="Heartbeat").payload["n"] == 1
    assert recorder.last(name="MeterValues").payload["n"] == 1998
    assert recorder.last(keys={"n": 0}).payload["n"] == 0
    assert recorder.wait_for(0.1, keys={"n": 5}).payload["n"] == 5
    assert [e.payload["n"] for e in list(recorder)[:3]] == [0, 1, 2]
    recorder.close()
    assert len(Recorder.load(tmp_path / "trace.jsonl")) == 2000


def test_a_recorder_appending_to_an_existing_file_reads_back_only_its_own_events(tmp_path):
    path = tmp_path / "trace.jsonl"
    earlier = Recorder(path)
    earlier.emit(Layer.RIG, "Earlier", "from another run", src="rig")
    earlier.close()
    recorder = Recorder(path, memory_budget=10_000)
    for n in range(100):
        recorder.emit(Layer.RIG, "Now", f"event {n}", src="rig", payload={"n": n, "padding": "y" * 300})
    assert recorder.in_memory < 100
    assert [e.payload["n"] for e in recorder.select()] == list(range(100))
    assert recorder.select(name="Earlier") == []
