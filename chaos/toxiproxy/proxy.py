"""Proxies and their toxics: the state behind the HTTP API, and the listeners it drives.

Everything here runs on the one event loop of the server, so state needs no locks
except around operations that await (a listener start) and must not interleave.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from gossipcert.chaos.toxiproxy.link import (
    Connection,
    Endpoint,
    LinkTraffic,
    bind_socket,
    socket_address,
    split_hostport,
)
from gossipcert.chaos.toxiproxy.toxics import (
    STREAMS,
    TOXIC_KINDS,
    InvalidAttributes,
    ToxicSpec,
    merge_attributes,
)

DEFAULT_LISTEN = "127.0.0.1:0"


class ApiError(Exception):
    """An error the API reports as ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status, **self.extra}


def bad_body(reason: str) -> ApiError:
    return ApiError(f"bad request body: {reason}", 400)


def bind_listener(listen: str) -> socket.socket:
    """Bind synchronously, so a taken address is a clean 500 before anything else."""
    try:
        return bind_socket(listen)
    except ValueError as exc:
        raise ApiError(f"listen tcp {listen}: {exc}", 500) from None
    except OSError as exc:
        raise ApiError(f"listen tcp {listen}: bind: {exc.strerror or exc}", 500) from None


class Proxy:
    """One named proxy: a listener on ``listen`` forwarding to ``upstream`` through toxics."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicSpec] = []
        self.connections: set[Connection] = set()
        self.traffic = LinkTraffic()
        self._server: asyncio.AbstractServer | None = None

    @property
    def toxic_specs(self) -> Iterable[ToxicSpec]:
        return list(self.toxics)

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def _accept(self) -> Endpoint:
        conn = Connection(self, asyncio.get_running_loop())
        self.connections.add(conn)
        self.traffic.connections += 1
        return conn.client

    async def start(self) -> None:
        if self._server is not None:
            return
        sock = bind_listener(self.listen)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._accept, sock=sock)
        except OSError as exc:
            sock.close()
            raise ApiError(f"listen tcp {self.listen}: {exc}", 500) from None
        self.listen = socket_address(sock)
        self.enabled = True

    def stop(self) -> None:
        """Close the listener and drop every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()
        self.enabled = False

    # Toxics
    def find_toxic(self, name: str) -> ToxicSpec:
        return find_toxic(self.toxics, name)

    def add_toxic(self, body: Any) -> ToxicSpec:
        defaults = {name: kind.defaults for name, kind in TOXIC_KINDS.items()}
        spec = new_toxic(body, defaults, self.toxics, "invalid toxic type")
        self.toxics.append(spec)
        for conn in list(self.connections):
            conn.add_toxic(spec)
        return spec

    def update_toxic(self, name: str, body: Any) -> ToxicSpec:
        spec = self.find_toxic(name)
        update_toxic(spec, TOXIC_KINDS[spec.type].defaults, body)
        for conn in list(self.connections):
            conn.update_toxic(spec)
        return spec

    def remove_toxic(self, name: str) -> None:
        spec = self.find_toxic(name)
        self.toxics.remove(spec)
        for conn in list(self.connections):
            conn.remove_toxic(spec)

    def reset_toxics(self) -> None:
        for spec in list(self.toxics):
            self.remove_toxic(spec.name)

    def toxics_json(self) -> list[dict[str, Any]]:
        """Upstream toxics first, then downstream, as real Toxiproxy lists them."""
        ordered = sorted(self.toxics, key=lambda spec: STREAMS.index(spec.stream))
        return [spec.to_json() for spec in ordered]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

    def stats_json(self) -> dict[str, Any]:
        """The traffic counters (``GET /proxies/{name}/stats``, an extension)."""
        return {"name": self.name, "protocol": "tcp", **self.traffic.to_json()}


def read_toxicity(body: dict[str, Any], default: float) -> float:
    value = body.get("toxicity", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_body("toxicity must be a number")
    return float(value)


def _text_field(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_body(f"{key} must be a string")
    return value


class ProxyCollection:
    """All proxies of one server, keyed by name."""

    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}
        self._lock = asyncio.Lock()

    def __iter__(self) -> Iterator[Proxy]:
        return iter(list(self.proxies.values()))

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError("proxy not found", 404) from None

    @staticmethod
    def _parse_new(body: Any, where: str = "") -> tuple[str, str, str, bool]:
        if not isinstance(body, dict):
            raise bad_body("expected a JSON object")
        name = _text_field(body, "name", "")
        upstream = _text_field(body, "upstream", "")
        listen = _text_field(body, "listen", "") or DEFAULT_LISTEN
        enabled = body.get("enabled", True)
        if enabled is None:
            enabled = True
        if not isinstance(enabled, bool):
            raise bad_body("enabled must be a boolean")
        if not name:
            raise ApiError(f"missing required field: name{where}", 400)
        if not upstream:
            raise ApiError(f"missing required field: upstream{where}", 400)
        return name, listen, upstream, enabled

    async def create(self, body: Any) -> Proxy:
        name, listen, upstream, enabled = self._parse_new(body)
        async with self._lock:
            if name in self.proxies:
                raise ApiError("proxy already exists", 409)
            proxy = Proxy(name, listen, upstream)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
            return proxy

    async def populate(self, body: Any) -> list[Proxy]:
        """Validate every entry first; then keep identical proxies and replace the others."""
        if not isinstance(body, list):
            raise bad_body("expected a JSON array of proxies")
        wanted: list[tuple[str, str, str, bool]] = []
        seen: set[str] = set()
        for index, entry in enumerate(body, start=1):
            name, listen, upstream, enabled = self._parse_new(entry, f" at proxy {index}")
            if name in seen:
                raise ApiError(f"duplicate proxy name {name!r}", 400)
            seen.add(name)
            if enabled:
                for address, label in ((listen, "listen"), (upstream, "upstream")):
                    try:
                        split_hostport(address)
                    except ValueError as exc:
                        message = f"invalid {label} address at proxy {index}: {exc}"
                        raise ApiError(message, 400) from None
            wanted.append((name, listen, upstream, enabled))
        applied: list[Proxy] = []
        async with self._lock:
            for name, listen, upstream, enabled in wanted:
                existing = self.proxies.get(name)
                if existing is not None:
                    if existing.listen == listen and existing.upstream == upstream:
                        applied.append(existing)
                        continue
                    existing.stop()
                    del self.proxies[name]
                proxy = Proxy(name, listen, upstream)
                if enabled:
                    try:
                        await proxy.start()
                    except ApiError as exc:
                        exc.extra["proxies"] = [p.to_json() for p in applied]
                        raise
                self.proxies[name] = proxy
                applied.append(proxy)
        return applied

    async def update(self, name: str, body: Any) -> Proxy:
        """Change listen/upstream (restarting the listener) and/or enabled."""
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise bad_body("expected a JSON object")
        listen = _text_field(body, "listen", proxy.listen)
        upstream = _text_field(body, "upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise bad_body("enabled must be a boolean")
        async with self._lock:
            if listen != proxy.listen or upstream != proxy.upstream:
                proxy.stop()
                proxy.listen, proxy.upstream = listen, upstream
            if enabled and not proxy.enabled:
                await proxy.start()
            elif not enabled and proxy.enabled:
                proxy.stop()
        return proxy

    def delete(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        async with self._lock:
            for proxy in self:
                if not proxy.enabled:
                    await proxy.start()
                proxy.reset_toxics()

    def close(self) -> None:
        for proxy in self:
            proxy.stop()
        self.proxies.clear()


# Toxic validation shared by the TCP proxies and the UDP extension.


def find_toxic(toxics: list[ToxicSpec], name: str) -> ToxicSpec:
    for spec in toxics:
        if spec.name == name:
            return spec
    raise ApiError("toxic not found", 404)


def new_toxic(body: Any, defaults: Mapping[str, Mapping[str, Any]], existing: list[ToxicSpec],
              unknown_type: str) -> ToxicSpec:
    """Validate a toxic creation body against the known types and their default attributes."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    stream = body.get("stream", "downstream")
    if not isinstance(stream, str) or stream.lower() not in STREAMS:
        raise ApiError("stream was invalid, can be either upstream or downstream", 400)
    stream = stream.lower()
    toxic_type = body.get("type")
    name = body.get("name") or f"{toxic_type}_{stream}"
    if not isinstance(name, str):
        raise bad_body("name must be a string")
    if not isinstance(toxic_type, str) or toxic_type not in defaults:
        raise ApiError(unknown_type, 400)
    if any(spec.name == name for spec in existing):
        raise ApiError("toxic already exists", 409)
    known = defaults[toxic_type]
    try:
        attributes = merge_attributes(known, known, body.get("attributes"))
    except InvalidAttributes as exc:
        raise bad_body(str(exc)) from None
    return ToxicSpec(name, toxic_type, stream, read_toxicity(body, 1.0), attributes)


def update_toxic(spec: ToxicSpec, defaults: Mapping[str, Any], body: Any) -> None:
    """Merge an update body into ``spec``: attributes and toxicity."""
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    try:
        attributes = merge_attributes(defaults, spec.attributes, body.get("attributes"))
    except InvalidAttributes as exc:
        raise bad_body(str(exc)) from None
    spec.toxicity = read_toxicity(body, spec.toxicity)
    spec.attributes = attributes
