"""The fault agent of the swarm backend: one per swarm node (a global service), applying
packet and process faults to the run's containers on its own host.

A swarm manager can schedule containers on other machines but cannot signal them, pause
them or enter their network namespaces; this agent can, on its host. It runs in the
host's network namespace with ``NET_ADMIN``, ``SYS_ADMIN`` and ``SYS_PTRACE``, the host's
``/proc`` mounted at ``/host/proc`` (Docker 20.10 services can be neither privileged nor
in the host's pid namespace, so a container's namespace is entered by path:
``nsenter --net=/host/proc/<pid>/ns/net``) and the engine's socket at
``/var/run/docker.sock``. It serves a small JSON API:

| call | what |
|---|---|
| ``GET /<token>/health`` | ``{"node_id", "hostname"}`` of the swarm node it runs on |
| ``GET /<token>/containers`` | the run's containers on this host, but the agents' own |
| ``GET /<token>/containers/<id>`` | the container's ``State`` (``Pid``, ``Running``, ...) |
| ``POST /<token>/containers/<id>/kill`` / ``pause`` / ``unpause`` | through the engine |
| ``POST /<token>/iptables {"pid", "args"}`` | ``iptables -w 5 ARGS`` in the netns of ``pid`` |

``<token>`` is a secret the harness gives the agent's service (the agent listens on the
host's network); container calls are refused for a container without the run's label,
so an agent can touch nothing but its own run. Standard library only: it runs from the
image of the run's nodes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.jsonhttp import HttpStatusError, JsonHttpClient, TransportError
from gossipcert.chaos.runlabels import ROLE_LABEL, RUN_LABEL

TOKEN_ENV = "GOSSIPCERT_AGENT_TOKEN"
RUN_ENV = "GOSSIPCERT_AGENT_RUN"
HOST_PROC = "/host/proc"
DOCKER_SOCKET = "/var/run/docker.sock"
IPTABLES_TIMEOUT_S = 15.0
CONTAINER_ACTIONS = ("kill", "pause", "unpause")


class AgentError(ChaosError):
    """The fault agent of a swarm node did not answer or refused a call."""


# ---- the agent ----------------------------------------------------------------------


def engine(method: str, path: str, socket_path: str = DOCKER_SOCKET,
           timeout_s: float = 30.0) -> tuple[int, Any]:
    """One call to the host's Docker engine API: (status, decoded JSON body or text)."""
    with JsonHttpClient.unix(socket_path, timeout_s) as client:
        answer = client.exchange(method, path)
    empty = not answer.text.strip()
    return answer.status, answer.data if answer.is_json or empty else answer.text


def run_iptables(pid: int, args: Sequence[str], proc: str = HOST_PROC) -> dict[str, Any]:
    argv = ["nsenter", f"--net={proc}/{pid}/ns/net", "iptables", "-w", "5", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"returncode": -1, "stdout": "", "stderr": str(exc)}
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


class AgentHandler(BaseHTTPRequestHandler):
    server: AgentServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        sys.stderr.write("agent: " + (format % args) + "\n")

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._reply(status, {"error": "agent", "message": message})

    def _parts(self) -> list[str] | None:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        if not parts or parts[0] != self.server.token:
            self._error(403, "wrong or missing token")
            return None
        return parts[1:]

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def _container(self, cid: str) -> dict[str, Any] | None:
        """The container's inspect, or None (answered) when missing or not the run's."""
        status, body = engine("GET", f"/containers/{quote(cid)}/json",
                              self.server.socket_path)
        if status != 200 or not isinstance(body, dict):
            self._error(404, f"no container {cid} on this node")
            return None
        labels = (body.get("Config") or {}).get("Labels") or {}
        if labels.get(RUN_LABEL) != self.server.run:
            self._error(403, f"container {cid} is not of run {self.server.run}")
            return None
        return body

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = self._parts()
        if parts is None:
            return
        if parts == ["health"]:
            status, info = engine("GET", "/info", self.server.socket_path)
            swarm = (info or {}).get("Swarm") or {} if isinstance(info, dict) else {}
            self._reply(200, {"node_id": swarm.get("NodeID"), "hostname": socket.gethostname()})
        elif parts == ["containers"]:
            self._reply(200, self._run_containers())
        elif len(parts) == 2 and parts[0] == "containers":
            found = self._container(parts[1])
            if found is not None:
                self._reply(200, found.get("State") or {})
        else:
            self._error(404, f"no such path {self.path}")

    def _run_containers(self) -> list[dict[str, Any]]:
        """The run's containers on this host but the agents' own (any state)."""
        query = quote(json.dumps({"label": [f"{RUN_LABEL}={self.server.run}"]}))
        status, listed = engine("GET", f"/containers/json?all=1&filters={query}",
                                self.server.socket_path)
        if status != 200 or not isinstance(listed, list):
            return []
        return [{"id": c.get("Id"), "name": (c.get("Names") or ["?"])[0].lstrip("/"),
                 "state": c.get("State")}
                for c in listed if (c.get("Labels") or {}).get(ROLE_LABEL) != "agent"]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        parts = self._parts()
        if parts is None:
            return
        try:
            body = self._body()
        except ValueError:
            self._error(400, "body is not JSON")
            return
        if parts == ["iptables"]:
            pid, args = body.get("pid"), body.get("args")
            if not isinstance(pid, int) or pid <= 0 or not isinstance(args, list):
                self._error(400, "iptables needs {pid: int > 0, args: [str]}")
                return
            self._reply(200, run_iptables(pid, [str(a) for a in args], self.server.proc))
        elif len(parts) == 3 and parts[0] == "containers" and parts[2] in CONTAINER_ACTIONS:
            if self._container(parts[1]) is None:
                return
            query = "?signal=KILL" if parts[2] == "kill" else ""
            status, answer = engine("POST", f"/containers/{quote(parts[1])}/{parts[2]}{query}",
                                    self.server.socket_path)
            if status >= 400:
                message = answer.get("message") if isinstance(answer, dict) else answer
                self._error(status, f"{parts[2]} {parts[1]}: {message}")
            else:
                self._reply(200, {"done": parts[2]})
        else:
            self._error(404, f"no such path {self.path}")


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str, run: str,
                 socket_path: str = DOCKER_SOCKET, proc: str = HOST_PROC) -> None:
        super().__init__(address, AgentHandler)
        self.token = token
        self.run = run
        self.socket_path = socket_path
        self.proc = proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gossipcert.chaos.swarm_agent",
                                     description="the swarm backend's per-node fault agent")
    parser.add_argument("--listen", default="0.0.0.0:7950", help="HOST:PORT to serve on")
    args = parser.parse_args(argv)
    token, run = os.environ.get(TOKEN_ENV, ""), os.environ.get(RUN_ENV, "")
    if not token or not run:
        parser.error(f"{TOKEN_ENV} and {RUN_ENV} must be set")
    host, _, port = args.listen.rpartition(":")
    server = AgentServer((host or "0.0.0.0", int(port)), token, run)
    print(f"agent listening on {args.listen}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


# ---- the harness's side -------------------------------------------------------------


class AgentClient(JsonHttpClient):
    """The harness's client of one node's agent."""

    def __init__(self, host: str, port: int, token: str, timeout_s: float = 20.0) -> None:
        super().__init__(host, port, timeout_s, prefix=f"/{token}")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return self.call(method, path, body)
        except (TransportError, HttpStatusError) as exc:
            raise AgentError(f"fault agent at {self.address}: {method} {path}: {exc}") from None

    def health(self) -> dict[str, Any]:
        answer = self._call("GET", "/health")
        return answer if isinstance(answer, dict) else {}

    def run_containers(self) -> list[dict[str, Any]]:
        answer = self._call("GET", "/containers")
        return answer if isinstance(answer, list) else []

    def state(self, container: str) -> dict[str, Any]:
        answer = self._call("GET", f"/containers/{container}")
        return answer if isinstance(answer, dict) else {}

    def container(self, container: str, action: str) -> None:
        self._call("POST", f"/containers/{container}/{action}")

    def iptables(self, pid: int, args: Sequence[str]) -> tuple[int, str, str]:
        answer = self._call("POST", "/iptables", {"pid": pid, "args": list(args)})
        if not isinstance(answer, dict):
            raise AgentError(f"fault agent at {self.address}: iptables: no answer")
        return (int(answer.get("returncode", -1)), str(answer.get("stdout", "")),
                str(answer.get("stderr", "")))


if __name__ == "__main__":
    raise SystemExit(main())
