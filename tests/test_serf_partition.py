"""A real UDP gossiper under the packet plane: two HashiCorp Serf agents (Debian package
``serf``) on their own loopback addresses are partitioned both ways by iptables, see each
other ``failed``, and ``alive`` again once healed; no rule is left behind."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gossipcert.chaos.packet import Flow, PacketPlane, unavailable_reason
from gossipcert.chaos.procutil import child_preexec, free_port, stop_process
from gossipcert.harness.drivers.waiting import wait_until
from host_tools import need, need_serf

pytestmark = pytest.mark.slow

HOSTS = ("127.0.0.2", "127.0.0.3")




def _udp_and_tcp_free(host: str) -> int:
    """A port free for TCP on ``host``; serf binds the same number for UDP (checked)."""
    import socket

    for _ in range(20):
        port = free_port(host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no port free for both TCP and UDP on {host}")


class Agent:
    def __init__(self, name: str, host: str, run_dir: Path, join: str | None) -> None:
        self.name = name
        self.bind = f"{host}:{_udp_and_tcp_free(host)}"
        self.rpc = f"127.0.0.1:{free_port('127.0.0.1')}"
        config = run_dir / f"{name}.json"
        # Local timing (memberlist's Local profile) and a quick reconnect of failed
        # members, so the heal shows within seconds (serf's default retries every 30 s).
        config.write_text(json.dumps({"reconnect_interval": "1s", "reconnect_timeout": "1h"}))
        argv = ["serf", "agent", f"-node={name}", f"-bind={self.bind}", f"-rpc-addr={self.rpc}",
                "-profile=local", "-log-level=warn", f"-config-file={config}"]
        if join is not None:
            argv.append(f"-join={join}")
        self.log = (run_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=child_preexec())

    def members(self) -> dict[str, str]:
        out = subprocess.run(["serf", "members", f"-rpc-addr={self.rpc}", "-format=json"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            return {}
        return {m["name"]: m["status"] for m in json.loads(out.stdout).get("members", [])}

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def wait_status(agent: Agent, peer: str, status: str, timeout_s: float) -> float:
    took = wait_until(lambda: agent.members().get(peer) == status, timeout_s, 0.2)
    if took is None:
        raise AssertionError(f"{agent.name} never saw {peer} {status} in {timeout_s:g} s "
                             f"(last view {agent.members()})")
    return took


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[tuple[Agent, Agent]]:
    need_serf()
    need(unavailable_reason())
    a = Agent("a", HOSTS[0], tmp_path, None)
    b: Agent | None = None
    try:
        time.sleep(0.5)
        b = Agent("b", HOSTS[1], tmp_path, a.bind)
        yield a, b
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_serf_agents_fail_under_a_packet_partition_and_recover_after_heal(
    agents: tuple[Agent, Agent],
) -> None:
    a, b = agents
    wait_status(a, "b", "alive", 20)
    wait_status(b, "a", "alive", 20)
    ha, pa_text = a.bind.split(":")
    hb, pb_text = b.bind.split(":")
    pa, pb = int(pa_text), int(pb_text)
    plane = PacketPlane(f"serf-{uuid.uuid4().hex}")
    try:
        # Both directions, TCP and UDP: serf probes over UDP and falls back to TCP, whose
        # connections leave from 127.0.0.1 (memberlist does not bind its dials), so the
        # rules match what goes to each agent's gossip port, whoever sends it.
        plane.cut(Flow(dst=hb, ports=(pb,)), tag="to b")
        plane.cut(Flow(dst=ha, ports=(pa,)), tag="to a")
        assert plane.confirm() and len(plane.listed()) == 4
        wait_status(a, "b", "failed", 30)
        wait_status(b, "a", "failed", 30)
        plane.heal()
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert plane.chain not in saved, "healing left a rule behind"
        wait_status(a, "b", "alive", 30)
        wait_status(b, "a", "alive", 30)
    finally:
        plane.close()
