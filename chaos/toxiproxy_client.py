"""A small synchronous client of the Toxiproxy HTTP API, for ours or a real Toxiproxy.

toxiproxy-python keeps its host and port process-global, which rules it out when one
process talks to more than one server. This one holds its own base URL; the connection,
timeouts and JSON are :class:`chaos.jsonhttp.JsonHttpClient`'s, stdlib only.

Two extensions of the project's own server are here too, on paths a real Toxiproxy
answers with 404: UDP proxies (``create_udp_proxy``, ``udp_proxies``, ``delete_udp_proxy``,
and ``udp=True`` on the toxic calls) and traffic counters (``stats``,
``proxy_stats``; ``stats`` returns None from a server without them).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.jsonhttp import HttpStatusError, JsonHttpClient

__all__ = ["ToxiproxyClient", "ToxiproxyError"]


class ToxiproxyError(HttpStatusError, ChaosError):
    """The server answered with an error status; ``message`` is its ``error`` field."""


def _quote(name: str) -> str:
    """Proxy and toxic names go in the path; ours contain ':' and '>'."""
    return urllib.parse.quote(name, safe="")


def _proxy_path(name: str, udp: bool) -> str:
    """A TCP proxy's path, or with ``udp`` the path of the UDP proxy of that name (our
    server's ``/udp/proxies`` family; the same toxic API under it)."""
    return f"{'/udp' if udp else ''}/proxies/{_quote(name)}"


class ToxiproxyClient(JsonHttpClient):
    """``ToxiproxyClient("http://127.0.0.1:8474")``; every method is one API call.

    Transport failures raise :class:`chaos.jsonhttp.TransportError` (an ``OSError``),
    error statuses :class:`ToxiproxyError`.
    """

    status_error = ToxiproxyError
    message_fields = ("error",)  # Toxiproxy's error bodies: {"error": text, "status": n}

    def __init__(self, base_url: str = "http://127.0.0.1:8474", timeout_s: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(base_url if "//" in base_url else f"http://{base_url}")
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"not an http:// URL: {base_url!r}")
        super().__init__(parsed.hostname, parsed.port or 8474, timeout_s, parsed.path)
        self.base_url = base_url.rstrip("/")

    # Server
    def version(self) -> str:
        data = self.call("GET", "/version")
        return str(data["version"]) if isinstance(data, dict) else str(data)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.call("POST", "/reset")

    # Proxies
    def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(self.call("GET", "/proxies"))

    def create_proxy(
        self, name: str, listen: str, upstream: str, enabled: bool = True
    ) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self.call("POST", "/proxies", body))

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self.call("POST", "/populate", proxies)["proxies"] or [])

    def get_proxy(self, name: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/proxies/{_quote(name)}"))

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
        return dict(self.call("POST", f"/proxies/{_quote(name)}", body))

    def enable_proxy(self, name: str) -> dict[str, Any]:
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> dict[str, Any]:
        """Close the proxy's listener and every open connection (a crash, not a partition)."""
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        self.call("DELETE", f"/proxies/{_quote(name)}")

    # Toxics
    def toxics(self, proxy: str, *, udp: bool = False) -> list[dict[str, Any]]:
        return list(self.call("GET", f"{_proxy_path(proxy, udp)}/toxics"))

    def get_toxic(self, proxy: str, name: str, *, udp: bool = False) -> dict[str, Any]:
        return dict(self.call("GET", f"{_proxy_path(proxy, udp)}/toxics/{_quote(name)}"))

    def add_toxic(
        self,
        proxy: str,
        type: str,
        attributes: dict[str, Any] | None = None,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        *,
        udp: bool = False,
    ) -> dict[str, Any]:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        return dict(self.call("POST", f"{_proxy_path(proxy, udp)}/toxics", body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
        *,
        udp: bool = False,
    ) -> dict[str, Any]:
        """Merge ``attributes`` into the toxic's and/or set its toxicity."""
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = f"{_proxy_path(proxy, udp)}/toxics/{_quote(name)}"
        return dict(self.call("POST", path, body))

    def remove_toxic(self, proxy: str, name: str, *, udp: bool = False) -> None:
        self.call("DELETE", f"{_proxy_path(proxy, udp)}/toxics/{_quote(name)}")

    # Extensions of the project's server (a real Toxiproxy answers 404)
    def stats(self) -> dict[str, dict[str, dict[str, Any]]] | None:
        """Every proxy's traffic counters: ``{"proxies": {name: stats}, "udp_proxies":
        {name: stats}}``; None when the server does not count (a real Toxiproxy).

        TCP stats: ``{connections, upstream: {chunks, bytes}, downstream: {...}}``; UDP:
        ``{upstream: {datagrams, bytes, forwarded, dropped}, downstream: {...}}``.
        Counters only grow while a proxy exists: take differences between readings.
        """
        try:
            data = self.call("GET", "/stats")
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
        return dict(self.call("GET", f"/proxies/{_quote(name)}/stats"))

    def create_udp_proxy(self, name: str, listen: str, upstream: str,
                         enabled: bool = True) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self.call("POST", "/udp/proxies", body))

    def udp_proxies(self) -> dict[str, dict[str, Any]]:
        """Every UDP proxy by name, each with its toxics (``GET /udp/proxies``)."""
        return dict(self.call("GET", "/udp/proxies"))

    def delete_udp_proxy(self, name: str) -> None:
        self.call("DELETE", _proxy_path(name, True))
