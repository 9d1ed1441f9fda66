"""Client of the control API v1 (docs/contract.md): one small HTTP/JSON client per node.

Every call returns a :class:`Reply`; transport failures are classified so the history can
record them as ``fail`` (certainly not applied) or ``info`` (outcome unknown). The
connection, timeouts and JSON are :class:`chaos.jsonhttp.JsonHttpClient`'s.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gossipcert.chaos.jsonhttp import JsonHttpClient, TransportError
from gossipcert.harness.errors import HOST_ERRNOS, HostError


@dataclass(frozen=True)
class Reply:
    status: int  # HTTP status; 0 when no response was received
    body: Any
    outcome: str  # "ok" | "fail" | "info"
    error: str | None = None
    is_json: bool = True  # False: the body was text, not JSON (``body`` then says so)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class ControlClient(JsonHttpClient):
    """Talks to one node's control API at ``host:port``."""

    def __init__(self, host: str, port: int, timeout_s: float = 2.0) -> None:
        super().__init__(host, port, timeout_s)

    def request(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Reply:
        try:
            answer = self.exchange(method, path, body, timeout_s)
        except TransportError as exc:
            cause = exc.cause
            if isinstance(cause, OSError) and cause.errno in HOST_ERRNOS:
                raise HostError(
                    f"cannot reach the node at {self.address}: {cause.strerror} (errno "
                    f"{errno.errorcode.get(cause.errno or 0, cause.errno)}), a fault of the "
                    "harness's host, not of the node") from None
            # Sent and not a read: the node may have acted on it, so the outcome is unknown.
            outcome = "info" if exc.sent and method != "GET" else "fail"
            error = f"timeout: {cause}" if exc.timed_out else f"{type(cause).__name__}: {cause}"
            return Reply(0, None, outcome, error)
        data = answer.data
        is_json = answer.is_json or not answer.text
        if not is_json:
            data = {"error": "bad_json", "message": answer.text[:200]}
        if answer.ok:
            return Reply(answer.status, data, "ok", is_json=is_json)
        return Reply(answer.status, data, "fail",
                     f"HTTP {answer.status}: {self.error_message(answer)}", is_json=is_json)

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
