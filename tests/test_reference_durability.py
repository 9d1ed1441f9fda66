"""`--data-dir`, crash-restart and graceful leave, with real processes and kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gossipcert.reference_node.core import Node, NodeConfig
from gossipcert.reference_node.persist import DataDir, PersistError
from test_reference_runtime import Proc, http, spawn, stop, wait_for


def events_about(proc: Proc, member: str) -> list[dict[str, object]]:
    events = proc.get("/v1/events?after=0")["events"]
    return [e for e in events if e["kind"] == "member" and e["member"] == member]


def incarnation_of(proc: Proc, member: str) -> int | None:
    for record in proc.get("/v1/members")["members"]:
        if record["id"] == member:
            return int(record["incarnation"])
    return None


def kill9(proc: Proc) -> None:
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(timeout=5)


# ---- the data dir itself -----------------------------------------------------------------


def test_data_dir_keeps_incarnation_log_and_snapshot(tmp_path: Path) -> None:
    data_dir = DataDir.open(tmp_path / "d")
    assert data_dir.load().incarnation is None
    data_dir.save_incarnation(3)
    data_dir.save_incarnation(2)  # never goes down
    data_dir.append([{"k": 1}, {"k": 2}])
    with open(tmp_path / "d" / "writes.log", "a") as log:
        log.write('{"k": 3')  # a crash in the middle of an append
    with pytest.raises(PersistError, match="in use"):
        DataDir.open(tmp_path / "d")
    data_dir.close()

    again = DataDir.open(tmp_path / "d")
    stored = again.load()
    assert stored.incarnation == 3 and stored.writes == [{"k": 1}, {"k": 2}] and stored.torn_tail
    again.append([{"k": 4}])
    again.compact({"incarnation": 3, "kv": []})
    again.close()
    final = DataDir.open(tmp_path / "d")
    stored = final.load()
    assert stored.snapshot == {"incarnation": 3, "kv": []} and stored.writes == []
    final.close()


def test_node_snapshot_restores_state_and_a_higher_incarnation() -> None:
    config = NodeConfig(node_id="a", gossip_address="a:1")
    first = Node(config, 0)
    first.kv_put("k", "v", 10)
    first.kv_delete("gone", 11)
    first.restore_incarnation(6, 12)
    snapshot = first.snapshot()
    second = Node(config, 100)
    second.restore(snapshot, 100)
    assert second.incarnation == 8  # above the 7 the first life used
    assert second.kv_get("k") is not None and second.kv_get("gone") is None


def test_unusable_data_dir_exits_2_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    command = [sys.executable, "-m", "reference_node", "--id", "x", "--gossip",
               "127.0.0.1:0", "--control", "127.0.0.1:0", "--data-dir", str(blocker)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data dir" in lines[0] and "Traceback" not in result.stderr


# ---- real processes ------------------------------------------------------------------


def test_kill_9_right_after_acknowledged_writes_loses_none(tmp_path: Path) -> None:
    data = str(tmp_path / "solo")
    proc = spawn("solo", "127.0.0.31", "--data-dir", data)
    acked: dict[str, int] = {}
    try:
        wait_for(lambda: proc.get("/v1/node")["ready"], 10)
        before = incarnation_of(proc, "solo")
        for i in range(40):
            status, _ = http("PUT", proc.url(f"/v1/kv/key-{i}"), {"value": i})
            assert status == 200
            acked[f"key-{i}"] = i
        status, _ = http("DELETE", proc.url("/v1/kv/key-0"), {})
        assert status == 200
        del acked["key-0"]
        kill9(proc)  # no chance to write a final snapshot
    finally:
        stop([proc])
    reborn = spawn("solo", "127.0.0.31", "--data-dir", data)
    try:
        wait_for(lambda: reborn.get("/v1/node")["ready"], 10)
        entries = reborn.get("/v1/kv")["entries"]
        assert {k: v["values"] for k, v in entries.items()} == {k: [v] for k, v in acked.items()}
        assert before is not None and (incarnation_of(reborn, "solo") or 0) > before
    finally:
        stop([reborn])


@pytest.mark.slow
def test_crash_restart_rejoins_alive_above_its_old_dead_with_its_writes(tmp_path: Path) -> None:
    procs = [spawn(n, "127.0.0.32", "--data-dir", str(tmp_path / n)) for n in ("a", "b", "c")]
    reborn: Proc | None = None
    try:
        a, b, c = procs
        wait_for(lambda: all(p.get("/v1/node")["ready"] for p in procs), 10)
        for proc in (b, c):
            assert http("POST", proc.url("/v1/join"), {"seeds": [a.gossip]})[0] == 200
        wait_for(lambda: all(set(p.statuses().values()) == {"alive"} for p in procs), 10)
        wait_for(lambda: all(len(p.statuses()) == 3 for p in procs), 10)
        # The kill comes before gossip can carry the writes anywhere: only the log has them.
        for i in range(10):
            assert http("PUT", c.url(f"/v1/kv/c-{i}"), {"value": i})[0] == 200
        kill9(c)
        wait_for(lambda: all(p.statuses().get("c") == "dead" for p in (a, b)), 20)
        dead_incarnation = incarnation_of(a, "c")
        assert dead_incarnation is not None

        reborn = spawn("c", "127.0.0.32", "--data-dir", str(tmp_path / "c"), "--seed", a.gossip)
        live = [a, b, reborn]
        wait_for(lambda: all(p.statuses().get("c") == "alive" for p in live), 15)
        for proc in live:
            assert (incarnation_of(proc, "c") or 0) > dead_incarnation
        values = {k: v["values"] for k, v in reborn.get("/v1/kv")["entries"].items()}
        assert all(values.get(f"c-{i}") == [i] for i in range(10))
        wait_for(lambda: all(len(p.get("/v1/kv")["entries"]) >= 10 for p in live), 10)
        # Alive stays alive: the old dead never shadows the new life.
        time.sleep(2)
        assert all(p.statuses().get("c") == "alive" for p in live)
    finally:
        stop([*procs, *([reborn] if reborn else [])])


@pytest.mark.slow
def test_graceful_leave_ends_as_left_everywhere_and_the_leaver_goes_quiet() -> None:
    procs = [spawn(n, "127.0.0.33") for n in ("a", "b", "c", "d")]
    try:
        a = procs[0]
        wait_for(lambda: all(p.get("/v1/node")["ready"] for p in procs), 10)
        for proc in procs[1:]:
            assert http("POST", proc.url("/v1/join"), {"seeds": [a.gossip]})[0] == 200
        wait_for(lambda: all(len(p.statuses()) == 4 for p in procs), 10)
        leaver, others = procs[3], procs[:3]
        status, _ = http("POST", leaver.url("/v1/leave"))
        assert status == 202
        wait_for(lambda: all(p.statuses().get("d") == "left" for p in others), 10)
        time.sleep(2.0)  # past the leave linger
        quiet_from = leaver.get("/v1/metrics")["messages_sent"]
        # Longer than the largest suspicion timeout (6 x 1.2 s): a quiet leaver that
        # were merely suspected would be declared dead by now.
        time.sleep(8.0)
        assert leaver.get("/v1/metrics")["messages_sent"] == quiet_from
        for proc in others:
            assert proc.statuses()["d"] == "left"
            assert {e["status"] for e in events_about(proc, "d")} <= {"alive", "left"}
    finally:
        stop(procs)
