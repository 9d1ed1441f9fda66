"""A Toxiproxy-compatible server: the link plane, speaking Toxiproxy's HTTP API.

The real Toxiproxy binary cannot be installed here, so the project ships this one; the
harness talks to it (or to a real Toxiproxy) through ``chaos.toxiproxy_client``.
Beyond Toxiproxy, which is TCP only, it proxies UDP under ``/udp/proxies`` (an extension
a real Toxiproxy answers with 404; see :mod:`chaos.toxiproxy.udp`), and counts what every
proxy relays (``GET /stats``, ``GET /proxies/{name}/stats``: another extension that a real
Toxiproxy answers with 404; see :mod:`chaos.toxiproxy.api`).
"""

from gossipcert.chaos.toxiproxy.server import READY_LINE, BackgroundServer, ToxiproxyServer, serve

__all__ = ["READY_LINE", "BackgroundServer", "ToxiproxyServer", "serve"]
