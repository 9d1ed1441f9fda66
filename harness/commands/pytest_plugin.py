"""pytest plugin: a ``cluster`` fixture running the implementation chosen by ``--gossip-impl``.

Users write their own tests against a live cluster::

    def test_put_spreads(cluster):
        cluster.client("n1").put("k", "v")
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gossipcert.harness.drivers.cluster import Cluster


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gossipcert", "gossip implementation under test")
    group.addoption("--gossip-impl", action="store", default=None,
                    help="'reference' or the path of an implementation manifest")
    group.addoption("--gossip-nodes", action="store", type=int, default=None,
                    help="nodes in the cluster fixture (default 3)")
    parser.addini("gossip_impl", "default for --gossip-impl", default="reference")
    parser.addini("gossip_nodes", "default for --gossip-nodes", default="3")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gossip_nodes(n): cluster size for this test's fixture")


def _option(config: pytest.Config, name: str, ini: str) -> str:
    value = config.getoption(name)
    return str(value) if value is not None else str(config.getini(ini))


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    """A started cluster of the chosen implementation; stopped (nothing left) after the test."""
    # Imported here so that loading the plugin costs nothing in test runs that never use it.
    from gossipcert.harness.drivers.cluster import Cluster
    from gossipcert.harness.errors import USER_ERRORS
    from gossipcert.harness.manifest import load_manifest

    config = request.config
    impl = _option(config, "--gossip-impl", "gossip_impl")
    marker = request.node.get_closest_marker("gossip_nodes")
    n = int(marker.args[0]) if marker else int(_option(config, "--gossip-nodes", "gossip_nodes"))
    try:
        manifest = load_manifest(impl)
    except USER_ERRORS as exc:
        pytest.fail(f"gossipcert: {exc}", pytrace=False)
    run_dir = tmp_path_factory.mktemp("gossip-cluster")
    node = Cluster(manifest, n, run_dir)
    try:
        node.start()
    except USER_ERRORS as exc:
        node.close()
        pytest.fail(f"gossipcert: cluster did not start: {exc}", pytrace=False)
    try:
        yield node
    finally:
        node.close()
