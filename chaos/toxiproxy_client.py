"""A small synchronous client of the Toxiproxy HTTP API, for ours or a real Toxiproxy.

toxiproxy-python keeps its host and port process-global, which rules it out when one
process talks to more than one server. This one holds its own base URL and one
keep-alive connection (a partition of a 10-node cluster is ~180 calls), stdlib only.

Two extensions of the project's own server are here too, on paths a real Toxiproxy
answers with 404: UDP proxies (``create_udp_proxy``) and traffic counters (``stats``,
``proxy_stats``; ``stats`` returns None from a server without them).
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from types import TracebackType
from typing import Any

_RETRYABLE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
)


class ToxiproxyError(Exception):
    """The server answered with an error status; ``message`` is its ``error`` field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _quote(name: str) -> str:
    """Proxy and toxic names go in the path; ours contain ':' and '>'."""
    return urllib.parse.quote(name, safe="")


class ToxiproxyClient:
    """``ToxiproxyClient("http://127.0.0.1:8474")``; every method is one API call."""

    def __init__(self, base_url: str = "http://127.0.0.1:8474", timeout_s: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(base_url if "//" in base_url else f"http://{base_url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parsed.hostname
        self._port = parsed.port or 8474
        self._prefix = parsed.path.rstrip("/")
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    # Plumbing
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(
                        self._host, self._port, timeout=self._timeout_s
                    )
                try:
                    self._conn.request(method, self._prefix + path, payload, headers)
                    response = self._conn.getresponse()
                    status, raw = response.status, response.read()
                    break
                except _RETRYABLE:
                    # A kept-alive connection the server closed meanwhile: one fresh try.
                    self.close_connection()
                    if attempt == 2:
                        raise
                except BaseException:
                    self.close_connection()
                    raise
        data: Any = None
        if raw.strip():
            try:
                data = json.loads(raw)
            except ValueError:
                data = raw.decode(errors="replace").strip()
        if status >= 400:
            message = data.get("error", str(data)) if isinstance(data, dict) else str(data)
            raise ToxiproxyError(status, message)
        return data

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_connection()

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Server
    def version(self) -> str:
        data = self._request("GET", "/version")
        return str(data["version"]) if isinstance(data, dict) else str(data)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._request("POST", "/reset")

    # Proxies
    def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(self._request("GET", "/proxies"))

    def create_proxy(
        self, name: str, listen: str, upstream: str, enabled: bool = True
    ) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self._request("POST", "/proxies", body))

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._request("POST", "/populate", proxies)["proxies"] or [])

    def get_proxy(self, name: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/proxies/{_quote(name)}"))

    def update_proxy(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        listen: str | None = None,
        upstream: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if enabled is not None:
            body["enabled"] = enabled
        if listen is not None:
            body["listen"] = listen
        if upstream is not None:
            body["upstream"] = upstream
        return dict(self._request("POST", f"/proxies/{_quote(name)}", body))

    def enable_proxy(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> dict[str, Any]:
        """Close the proxy's listener and every open connection (a crash, not a partition)."""
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        self._request("DELETE", f"/proxies/{_quote(name)}")

    # Toxics
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/proxies/{_quote(proxy)}/toxics"))

    def get_toxic(self, proxy: str, name: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}"))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
    ) -> dict[str, Any]:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        return dict(self._request("POST", f"/proxies/{_quote(proxy)}/toxics", body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> dict[str, Any]:
        """Merge ``attributes`` into the toxic's and/or set its toxicity."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}"
        return dict(self._request("POST", path, body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._request("DELETE", f"/proxies/{_quote(proxy)}/toxics/{_quote(name)}")

    # Extensions of the project's server (a real Toxiproxy answers 404)
    def stats(self) -> dict[str, dict[str, dict[str, Any]]] | None:
        """Every proxy's traffic counters: ``{"proxies": {name: stats}, "udp_proxies":
        {name: stats}}``; None when the server does not count (a real Toxiproxy).

        TCP stats: ``{connections, upstream: {chunks, bytes}, downstream: {...}}``; UDP:
        ``{upstream: {datagrams, bytes, forwarded, dropped}, downstream: {...}}``.
        Counters only grow while a proxy exists: take differences between readings.
        """
        try:
            data = self._request("GET", "/stats")
        except ToxiproxyError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict) or not isinstance(data.get("proxies"), dict):
            return None
        return {"proxies": dict(data["proxies"]),
                "udp_proxies": dict(data.get("udp_proxies") or {})}

    def proxy_stats(self, name: str) -> dict[str, Any]:
        """One TCP proxy's counters (404 from a real Toxiproxy, or for no such proxy)."""
        return dict(self._request("GET", f"/proxies/{_quote(name)}/stats"))

    def create_udp_proxy(self, name: str, listen: str, upstream: str,
                         enabled: bool = True) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self._request("POST", "/udp/proxies", body))

    def udp_proxy_stats(self, name: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/udp/proxies/{_quote(name)}/stats"))
