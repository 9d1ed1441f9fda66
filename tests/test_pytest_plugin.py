"""The pytest plugin: a user's test file gets a live cluster of the chosen implementation."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*gossip implementation under test*", "*--gossip-impl*"])


@pytest.mark.slow
def test_cluster_fixture_runs_a_user_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from gossipcert.harness.drivers.waiting import wait_until

        def test_put_spreads(cluster):
            assert cluster.client("n1").put("colour", "blue").ok

            def everywhere():
                values = [cluster.client(n).get("colour").body for n in cluster.node_ids]
                return all(v and v.get("values") == ["blue"] for v in values)

            assert wait_until(everywhere, 10, 0.1) is not None
            members = cluster.client("n3").members().body["members"]
            assert {m["id"] for m in members if m["status"] == "alive"} == {"n1", "n2", "n3"}
        """
    )
    result = pytester.runpytest_subprocess("--gossip-impl", "reference", "--gossip-nodes", "3")
    result.assert_outcomes(passed=1)


def test_bad_impl_fails_the_test_with_one_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(cluster):\n    pass\n")
    result = pytester.runpytest_subprocess("--gossip-impl", "/nonexistent/manifest.yaml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*gossipcert: manifest /nonexistent/manifest.yaml: no such file*"])
