"""The Toxiproxy HTTP API on aiohttp: routes, JSON in and out, errors as Toxiproxy words them.

Beyond Toxiproxy's own routes, two extensions, each on paths a real Toxiproxy answers
with 404 so a client can tell them apart: UDP proxies under ``/udp/proxies`` (see
:mod:`chaos.toxiproxy.udp`), and traffic counters:

    GET /proxies/{name}/stats       {name, protocol: "tcp", connections,
                                     upstream: {chunks, bytes}, downstream: {chunks, bytes}}
    GET /udp/proxies/{name}/stats   {name, protocol: "udp", upstream: {datagrams, bytes,
                                     forwarded, dropped}, downstream: {...}}
    GET /stats                      {"proxies": {name: stats}, "udp_proxies": {name: stats}}

``upstream`` is what the proxy's clients sent, ``downstream`` what the upstream answered
on their connections (or to their address), counted as it arrives, before toxics. The
counters live as long as the proxy (``POST /reset`` and disabling keep them); readers
take differences between two readings. See :mod:`chaos.toxiproxy.link`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from gossipcert.chaos.toxiproxy.proxy import ApiError, ProxyCollection, bad_body
from gossipcert.chaos.toxiproxy.udp import UdpProxyCollection

# Real Toxiproxy 2.x answers its own version here; clients only show it. The build
# suffix lets a person tell this server from the Go one.
VERSION = "2.12.0+gossipcert"

COLLECTION: web.AppKey[ProxyCollection] = web.AppKey("collection", ProxyCollection)
UDP: web.AppKey[UdpProxyCollection] = web.AppKey("udp", UdpProxyCollection)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.to_json(), status=exc.status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise bad_body("EOF")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise bad_body(str(exc)) from None


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION]


async def proxy_index(request: web.Request) -> web.Response:
    return web.json_response({p.name: p.to_json() for p in _collection(request)})


async def proxy_create(request: web.Request) -> web.Response:
    proxy = await _collection(request).create(await _body(request))
    return web.json_response(proxy.to_json(), status=201)


async def populate(request: web.Request) -> web.Response:
    proxies = await _collection(request).populate(await _body(request))
    return web.json_response({"proxies": [p.to_json() for p in proxies]}, status=201)


async def proxy_show(request: web.Request) -> web.Response:
    return web.json_response(_collection(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    name = request.match_info["proxy"]
    _collection(request).get(name)  # 404 before complaining about the body
    proxy = await _collection(request).update(name, await _body(request))
    return web.json_response(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    _collection(request).delete(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return web.json_response(proxy.toxics_json())


async def toxic_create(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    spec = proxy.add_toxic(await _body(request))
    return web.json_response(spec.to_json())


async def toxic_show(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return web.json_response(proxy.find_toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    name = request.match_info["toxic"]
    proxy.find_toxic(name)
    spec = proxy.update_toxic(name, await _body(request))
    return web.json_response(spec.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    proxy.remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def proxy_stats(request: web.Request) -> web.Response:
    return web.json_response(_collection(request).get(request.match_info["proxy"]).stats_json())


async def all_stats(request: web.Request) -> web.Response:
    return web.json_response({
        "proxies": {p.name: p.stats_json() for p in _collection(request)},
        "udp_proxies": {p.name: p.stats_json() for p in request.app[UDP]},
    })


async def reset(request: web.Request) -> web.Response:
    await _collection(request).reset()
    if UDP in request.app:
        await request.app[UDP].reset()
    return web.Response(status=204)


# ---- the UDP extension (see chaos.toxiproxy.udp): its own endpoint family -------------


async def udp_index(request: web.Request) -> web.Response:
    return web.json_response({p.name: p.to_json() for p in request.app[UDP]})


async def udp_create(request: web.Request) -> web.Response:
    proxy = await request.app[UDP].create(await _body(request))
    return web.json_response(proxy.to_json(), status=201)


async def udp_show(request: web.Request) -> web.Response:
    return web.json_response(request.app[UDP].get(request.match_info["proxy"]).to_json())


async def udp_update(request: web.Request) -> web.Response:
    name = request.match_info["proxy"]
    request.app[UDP].get(name)
    proxy = await request.app[UDP].update(name, await _body(request))
    return web.json_response(proxy.to_json())


async def udp_delete(request: web.Request) -> web.Response:
    request.app[UDP].delete(request.match_info["proxy"])
    return web.Response(status=204)


async def udp_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[UDP].get(request.match_info["proxy"]).stats_json())


async def udp_toxic_index(request: web.Request) -> web.Response:
    return web.json_response(request.app[UDP].get(request.match_info["proxy"]).toxics_json())


async def udp_toxic_create(request: web.Request) -> web.Response:
    proxy = request.app[UDP].get(request.match_info["proxy"])
    return web.json_response(proxy.add_toxic(await _body(request)).to_json())


async def udp_toxic_show(request: web.Request) -> web.Response:
    proxy = request.app[UDP].get(request.match_info["proxy"])
    return web.json_response(proxy.find_toxic(request.match_info["toxic"]).to_json())


async def udp_toxic_update(request: web.Request) -> web.Response:
    proxy = request.app[UDP].get(request.match_info["proxy"])
    name = request.match_info["toxic"]
    proxy.find_toxic(name)
    return web.json_response(proxy.update_toxic(name, await _body(request)).to_json())


async def udp_toxic_delete(request: web.Request) -> web.Response:
    proxy = request.app[UDP].get(request.match_info["proxy"])
    proxy.remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": VERSION})


def build_app(collection: ProxyCollection,
              udp: UdpProxyCollection | None = None) -> web.Application:
    app = web.Application(middlewares=[_api_errors])
    app[COLLECTION] = collection
    app[UDP] = udp if udp is not None else UdpProxyCollection()
    app.router.add_get("/udp/proxies", udp_index)
    app.router.add_post("/udp/proxies", udp_create)
    app.router.add_get("/udp/proxies/{proxy}", udp_show)
    app.router.add_post("/udp/proxies/{proxy}", udp_update)
    app.router.add_patch("/udp/proxies/{proxy}", udp_update)
    app.router.add_delete("/udp/proxies/{proxy}", udp_delete)
    app.router.add_get("/udp/proxies/{proxy}/stats", udp_stats)
    app.router.add_get("/udp/proxies/{proxy}/toxics", udp_toxic_index)
    app.router.add_post("/udp/proxies/{proxy}/toxics", udp_toxic_create)
    app.router.add_get("/udp/proxies/{proxy}/toxics/{toxic}", udp_toxic_show)
    app.router.add_post("/udp/proxies/{proxy}/toxics/{toxic}", udp_toxic_update)
    app.router.add_patch("/udp/proxies/{proxy}/toxics/{toxic}", udp_toxic_update)
    app.router.add_delete("/udp/proxies/{proxy}/toxics/{toxic}", udp_toxic_delete)
    app.router.add_post("/reset", reset)
    app.router.add_get("/proxies", proxy_index)
    app.router.add_post("/proxies", proxy_create)
    app.router.add_post("/populate", populate)
    app.router.add_get("/proxies/{proxy}", proxy_show)
    app.router.add_post("/proxies/{proxy}", proxy_update)
    app.router.add_patch("/proxies/{proxy}", proxy_update)
    app.router.add_delete("/proxies/{proxy}", proxy_delete)
    app.router.add_get("/proxies/{proxy}/stats", proxy_stats)
    app.router.add_get("/stats", all_stats)
    app.router.add_get("/proxies/{proxy}/toxics", toxic_index)
    app.router.add_post("/proxies/{proxy}/toxics", toxic_create)
    app.router.add_get("/proxies/{proxy}/toxics/{toxic}", toxic_show)
    app.router.add_post("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_patch("/proxies/{proxy}/toxics/{toxic}", toxic_update)
    app.router.add_delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete)
    app.router.add_get("/version", version)
    return app
