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
so an agent can touch nothing but its own run. The API is served by aiohttp, and each
call, which waits on the engine or on iptables, runs on a worker thread, so calls are
answered side by side and the event loop never blocks. It runs from the image of the
run's nodes, which carries the package's runtime dependencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from aiohttp import web
from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.jsonhttp import HttpStatusError, JsonHttpClient, TransportError
from gossipcert.chaos.runlabels import ROLE_LABEL, RUN_LABEL

TOKEN_ENV = "GOSSIPCERT_AGENT_TOKEN"
RUN_ENV = "GOSSIPCERT_AGENT_RUN"
HOST_PROC = "/host/proc"
DOCKER_SOCKET = "/var/run/docker.sock"
IPTABLES_TIMEOUT_S = 15.0
CONTAINER_ACTIONS = ("kill", "pause", "unpause")
# Calls answered at once: each waits on the engine or on iptables, on a thread of its own.
CALL_THREADS = 32


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


class Refused(Exception):
    """A call the agent answers with an error status and ``{"error": "agent", message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Agent:
    """The calls of one agent, answered from its host's engine and ``/proc``.

    :meth:`answer` blocks (engine calls, iptables): the server runs it on a worker thread.
    """

    def __init__(self, token: str, run: str, socket_path: str = DOCKER_SOCKET,
                 proc: str = HOST_PROC) -> None:
        self.token = token
        self.run = run
        self.socket_path = socket_path
        self.proc = proc

    def answer(self, method: str, target: str, raw_body: bytes) -> tuple[int, Any]:
        """(status, JSON body) of one ``GET`` or ``POST`` of ``target`` (path and query,
        as the request line has them)."""
        try:
            parts = self._parts(target)
            if method == "GET":
                return 200, self._get(parts, target)
            return 200, self._post(parts, _json_body(raw_body), target)
        except Refused as exc:
            return exc.status, {"error": "agent", "message": exc.message}

    def _parts(self, target: str) -> list[str]:
        parts = [p for p in target.split("?")[0].split("/") if p]
        if not parts or parts[0] != self.token:
            raise Refused(403, "wrong or missing token")
        return parts[1:]

    def _container(self, cid: str) -> dict[str, Any]:
        """The container's inspect; refused when missing or not the run's."""
        status, body = engine("GET", f"/containers/{quote(cid)}/json", self.socket_path)
        if status != 200 or not isinstance(body, dict):
            raise Refused(404, f"no container {cid} on this node")
        labels = (body.get("Config") or {}).get("Labels") or {}
        if labels.get(RUN_LABEL) != self.run:
            raise Refused(403, f"container {cid} is not of run {self.run}")
        return body

    def _get(self, parts: list[str], target: str) -> Any:
        if parts == ["health"]:
            _, info = engine("GET", "/info", self.socket_path)
            swarm = (info or {}).get("Swarm") or {} if isinstance(info, dict) else {}
            return {"node_id": swarm.get("NodeID"), "hostname": socket.gethostname()}
        if parts == ["containers"]:
            return self._run_containers()
        if len(parts) == 2 and parts[0] == "containers":
            return self._container(parts[1]).get("State") or {}
        raise Refused(404, f"no such path {target}")

    def _run_containers(self) -> list[dict[str, Any]]:
        """The run's containers on this host but the agents' own (any state)."""
        query = quote(json.dumps({"label": [f"{RUN_LABEL}={self.run}"]}))
        status, listed = engine("GET", f"/containers/json?all=1&filters={query}",
                                self.socket_path)
        if status != 200 or not isinstance(listed, list):
            return []
        return [{"id": c.get("Id"), "name": (c.get("Names") or ["?"])[0].lstrip("/"),
                 "state": c.get("State")}
                for c in listed if (c.get("Labels") or {}).get(ROLE_LABEL) != "agent"]

    def _post(self, parts: list[str], body: Any, target: str) -> Any:
        if parts == ["iptables"]:
            pid = body.get("pid") if isinstance(body, dict) else None
            args = body.get("args") if isinstance(body, dict) else None
            if not isinstance(pid, int) or pid <= 0 or not isinstance(args, list):
                raise Refused(400, "iptables needs {pid: int > 0, args: [str]}")
            return run_iptables(pid, [str(a) for a in args], self.proc)
        if len(parts) == 3 and parts[0] == "containers" and parts[2] in CONTAINER_ACTIONS:
            cid, action = parts[1], parts[2]
            self._container(cid)
            query = "?signal=KILL" if action == "kill" else ""
            status, answer = engine("POST", f"/containers/{quote(cid)}/{action}{query}",
                                    self.socket_path)
            if status >= 400:
                message = answer.get("message") if isinstance(answer, dict) else answer
                raise Refused(status, f"{action} {cid}: {message}")
            return {"done": action}
        raise Refused(404, f"no such path {target}")


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise Refused(400, "body is not JSON") from None


def build_app(agent: Agent) -> web.Application:
    """The agent's API: every ``GET`` and ``POST`` goes to :meth:`Agent.answer`, on the
    loop's executor."""

    async def call(request: web.Request) -> web.Response:
        raw = await request.read()
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(None, agent.answer, request.method,
                                                  request.raw_path, raw)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("GET", "/{path:.*}", call)
    app.router.add_route("POST", "/{path:.*}", call)
    return app


def _access_log() -> logging.Logger:
    """Each request's line and status on stderr, after ``agent:``."""
    log = logging.getLogger("gossipcert.chaos.swarm_agent.access")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("agent: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


async def serve(agent: Agent, host: str, port: int) -> None:
    """Serve the API on ``host:port`` until the process ends (SIGTERM's default action
    ends it at once, as nothing here needs cleaning up)."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="agent"))
    runner = web.AppRunner(build_app(agent), access_log=_access_log(),
                           access_log_format='"%r" %s %b', handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        print(f"agent listening on {host}:{port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gossipcert.chaos.swarm_agent",
                                     description="the swarm backend's per-node fault agent")
    parser.add_argument("--listen", default="0.0.0.0:7950", help="HOST:PORT to serve on")
    args = parser.parse_args(argv)
    token, run = os.environ.get(TOKEN_ENV, ""), os.environ.get(RUN_ENV, "")
    if not token or not run:
        parser.error(f"{TOKEN_ENV} and {RUN_ENV} must be set")
    host, _, port = args.listen.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Agent(token, run), host or "0.0.0.0", int(port)))
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
