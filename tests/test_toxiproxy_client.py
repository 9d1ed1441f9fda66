"""Our own Toxiproxy client, against our server: every call, and errors as ToxiproxyError."""

from __future__ import annotations

import pytest
from gossipcert.chaos.toxiproxy import BackgroundServer
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError


def test_every_call(proxy_client: ToxiproxyClient) -> None:
    assert proxy_client.version()
    name = "run-7:n1->n2"  # the harness's names carry ':' and '>'
    proxy = proxy_client.create_proxy(name, "127.0.0.1:0", "127.0.0.1:9")
    assert proxy["name"] == name and proxy["enabled"] is True
    assert proxy_client.get_proxy(name) == proxy
    assert set(proxy_client.proxies()) == {name}

    toxic = proxy_client.add_toxic(name, "timeout", {"timeout": 0}, name="cut", stream="upstream")
    assert toxic == {
        "name": "cut",
        "type": "timeout",
        "stream": "upstream",
        "toxicity": 1.0,
        "attributes": {"timeout": 0},
    }
    assert proxy_client.add_toxic(name, "latency")["name"] == "latency_downstream"
    assert [t["name"] for t in proxy_client.toxics(name)] == ["cut", "latency_downstream"]
    updated = proxy_client.update_toxic(name, "latency_downstream", {"jitter": 3}, toxicity=0.5)
    assert updated["attributes"] == {"latency": 0, "jitter": 3} and updated["toxicity"] == 0.5
    assert proxy_client.get_toxic(name, "latency_downstream") == updated
    proxy_client.remove_toxic(name, "cut")
    assert [t["name"] for t in proxy_client.toxics(name)] == ["latency_downstream"]

    assert proxy_client.disable_proxy(name)["enabled"] is False
    assert proxy_client.update_proxy(name, upstream="127.0.0.1:10")["upstream"] == "127.0.0.1:10"
    proxy_client.reset()
    after = proxy_client.get_proxy(name)
    assert after["enabled"] is True and after["toxics"] == []

    populated = proxy_client.populate(
        [{"name": "other", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:11"}]
    )
    assert [p["name"] for p in populated] == ["other"]
    proxy_client.delete_proxy(name)
    assert set(proxy_client.proxies()) == {"other"}


def test_errors_carry_status_and_message(proxy_client: ToxiproxyClient) -> None:
    with pytest.raises(ToxiproxyError) as missing:
        proxy_client.get_proxy("nope")
    assert (missing.value.status, missing.value.message) == (404, "proxy not found")
    proxy_client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:9")
    with pytest.raises(ToxiproxyError) as exists:
        proxy_client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:9")
    assert (exists.value.status, exists.value.message) == (409, "proxy already exists")
    with pytest.raises(ToxiproxyError) as bad:
        proxy_client.add_toxic("p", "no_such_toxic")
    assert bad.value.status == 400
    with pytest.raises(ToxiproxyError) as gone:
        proxy_client.remove_toxic("p", "nope")
    assert (gone.value.status, gone.value.message) == (404, "toxic not found")


def test_no_server_is_an_oserror() -> None:
    with BackgroundServer("127.0.0.1:0") as srv:
        url = srv.url
    with ToxiproxyClient(url, timeout_s=2) as c, pytest.raises(OSError):
        c.version()


def test_base_url_forms(shared_proxy_server: BackgroundServer) -> None:
    server = shared_proxy_server
    for url in (server.url, server.url + "/", server.address):
        with ToxiproxyClient(url) as c:
            assert c.version()
    with pytest.raises(ValueError):
        ToxiproxyClient("https://example.invalid")
