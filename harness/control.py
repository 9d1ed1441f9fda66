"""Client of the control API v1 (DESIGN.md): one small HTTP/JSON client per node.

Every call returns a :class:`Reply`; transport failures are classified so the history can
record them as ``fail`` (certainly not applied) or ``info`` (outcome unknown).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Reply:
    status: int  # HTTP status; 0 when no response was received
    body: Any
    outcome: str  # "ok" | "fail" | "info"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class ControlClient:
    """Talks to one node's control API at ``host:port``."""

    def __init__(self, host: str, port: int, timeout_s: float = 2.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Reply:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        sent = False
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=timeout_s or self.timeout_s
                )
            try:
                self._conn.request(method, path, body=payload, headers=headers)
                sent = True
                response = self._conn.getresponse()
                raw = response.read()
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected, http.client.CannotSendRequest) as exc:
                self.close()
                # A kept-alive connection the server closed: retry once on a fresh one.
                if attempt == 0 and not isinstance(exc, ConnectionRefusedError):
                    sent = False
                    continue
                outcome = "info" if sent and method != "GET" else "fail"
                return Reply(0, None, outcome, f"{type(exc).__name__}: {exc}")
            except TimeoutError as exc:
                self.close()
                return Reply(0, None, "info" if method != "GET" else "fail", f"timeout: {exc}")
            except OSError as exc:
                self.close()
                return Reply(0, None, "fail", f"{type(exc).__name__}: {exc}")
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = {"error": "bad_json", "message": raw[:200].decode("utf-8", "replace")}
            if 200 <= response.status < 300:
                return Reply(response.status, data, "ok")
            message = data.get("message") if isinstance(data, dict) else None
            return Reply(response.status, data, "fail", f"HTTP {response.status}: {message}")
        raise AssertionError("unreachable")

    # The v1 calls, named after the contract.
    def node(self) -> Reply:
        return self.request("GET", "/v1/node")

    def members(self) -> Reply:
        return self.request("GET", "/v1/members")

    def join(self, seeds: list[str]) -> Reply:
        return self.request("POST", "/v1/join", {"seeds": seeds})

    def leave(self) -> Reply:
        return self.request("POST", "/v1/leave", {})

    def broadcast(self, msg_id: str, payload: Any) -> Reply:
        return self.request("POST", "/v1/broadcast", {"id": msg_id, "payload": payload})

    def broadcasts(self) -> Reply:
        return self.request("GET", "/v1/broadcasts")

    def put(self, key: str, value: Any, context: Any = None) -> Reply:
        body: dict[str, Any] = {"value": value}
        if context is not None:
            body["context"] = context
        return self.request("PUT", f"/v1/kv/{quote(key, safe='')}", body)

    def get(self, key: str) -> Reply:
        return self.request("GET", f"/v1/kv/{quote(key, safe='')}")

    def delete(self, key: str, context: Any = None) -> Reply:
        body = {} if context is None else {"context": context}
        return self.request("DELETE", f"/v1/kv/{quote(key, safe='')}", body)

    def kv(self) -> Reply:
        return self.request("GET", "/v1/kv")

    def events(self, after: int) -> Reply:
        return self.request("GET", f"/v1/events?after={after}")

    def metrics(self) -> Reply:
        return self.request("GET", "/v1/metrics")
