"""Our own Toxiproxy client, against our server: every call, and errors as ToxiproxyError."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gossipcert.chaos.toxiproxy import BackgroundServer
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer("127.0.0.1:0") as srv:
        yield srv


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(server.url) as c:
        yield c
        for name in c.proxies():
            c.delete_proxy(name)


def test_every_call(client: ToxiproxyClient) -> None:
    assert client.version()
    name = "run-7:n1->n2"  # the harness's names carry ':' and '>'
    proxy = client.create_proxy(name, "127.0.0.1:0", "127.0.0.1:9")
    assert proxy["name"] == name and proxy["enabled"] is True
    assert client.get_proxy(name) == proxy
    assert set(client.proxies()) == {name}

    toxic = client.add_toxic(name, "timeout", {"timeout": 0}, name="cut", stream="upstream")
    assert toxic == {
        "name": "cut",
        "type": "timeout",
        "stream": "upstream",
        "toxicity": 1.0,
        "attributes": {"timeout": 0},
    }
    assert client.add_toxic(name, "latency")["name"] == "latency_downstream"
    assert [t["name"] for t in client.toxics(name)] == ["cut", "latency_downstream"]
    updated = client.update_toxic(name, "latency_downstream", {"jitter": 3}, toxicity=0.5)
    assert updated["attributes"] == {"latency": 0, "jitter": 3} and updated["toxicity"] == 0.5
    assert client.get_toxic(name, "latency_downstream") == updated
    client.remove_toxic(name, "cut")
    assert [t["name"] for t in client.toxics(name)] == ["latency_downstream"]

    assert client.disable_proxy(name)["enabled"] is False
    assert client.update_proxy(name, upstream="127.0.0.1:10")["upstream"] == "127.0.0.1:10"
    client.reset()
    after = client.get_proxy(name)
    assert after["enabled"] is True and after["toxics"] == []

    populated = client.populate(
        [{"name": "other", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:11"}]
    )
    assert [p["name"] for p in populated] == ["other"]
    client.delete_proxy(name)
    assert set(client.proxies()) == {"other"}


def test_errors_carry_status_and_message(client: ToxiproxyClient) -> None:
    with pytest.raises(ToxiproxyError) as missing:
        client.get_proxy("nope")
    assert (missing.value.status, missing.value.message) == (404, "proxy not found")
    client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:9")
    with pytest.raises(ToxiproxyError) as exists:
        client.create_proxy("p", "127.0.0.1:0", "127.0.0.1:9")
    assert (exists.value.status, exists.value.message) == (409, "proxy already exists")
    with pytest.raises(ToxiproxyError) as bad:
        client.add_toxic("p", "no_such_toxic")
    assert bad.value.status == 400
    with pytest.raises(ToxiproxyError) as gone:
        client.remove_toxic("p", "nope")
    assert (gone.value.status, gone.value.message) == (404, "toxic not found")


def test_no_server_is_an_oserror() -> None:
    with BackgroundServer("127.0.0.1:0") as srv:
        url = srv.url
    with ToxiproxyClient(url, timeout_s=2) as c, pytest.raises(OSError):
        c.version()


def test_base_url_forms(server: BackgroundServer) -> None:
    for url in (server.url, server.url + "/", server.address):
        with ToxiproxyClient(url) as c:
            assert c.version()
    with pytest.raises(ValueError):
        ToxiproxyClient("https://example.invalid")
