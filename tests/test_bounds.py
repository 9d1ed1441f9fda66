"""The bound evaluator computes arithmetic and refuses everything else."""

from __future__ import annotations

import math

import pytest
from gossipcert.harness.judging.bounds import (
    BoundError,
    compile_bound,
    derived_parameters,
    evaluate,
)

LAN = {
    "probe_interval_ms": 1000,
    "probe_timeout_ms": 500,
    "indirect_checks": 3,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "gossip_interval_ms": 200,
    "fanout": 3,
    "retransmit_mult": 4,
    "push_pull_interval_ms": 30000,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("-n + 10", 5),
        ("7 // 2", 3),
        ("2 ** 10", 1024),
        ("n / 2", 2.5),
        ("max(n, 3, 9)", 9),
        ("min(n, 3)", 3),
        ("ceil(log(n) / log(1 + 3))", 2),
        ("floor(log2(n))", 2),
        ("log10(100)", 2),
        ("log(8, 2)", 3),
        ("sqrt(16)", 4),
        ("(2*n - 1) * 300 + 1.5e3", 4200),
    ],
)
def test_expressions_evaluate(expression: str, expected: float) -> None:
    assert evaluate(expression, {"n": 5}) == pytest.approx(expected)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "n.real",
        "().__class__",
        "[1, 2][0]",
        "{'a': 1}",
        "lambda: 1",
        "'text'",
        "1 if n else 2",
        "n < 3",
        "not n",
        "abs(-1)",
        "open('/etc/passwd')",
        "max(n, key=1)",
        "n; 1",
        "x := 1",
        "True + 1",
        "_secret",
        "1 & 2",
        "9 ** 9 ** 9",
        "",
    ],
)
def test_unsafe_or_malformed_expressions_are_refused(expression: str) -> None:
    with pytest.raises(BoundError):
        evaluate(expression, {"n": 5, "x": 1})


def test_unknown_name_is_named_in_the_error() -> None:
    with pytest.raises(BoundError, match="probe_interval"):
        evaluate("probe_interval * 2", {"n": 5})


def test_arithmetic_errors_become_bound_errors() -> None:
    with pytest.raises(BoundError):
        evaluate("1 / (n - 5)", {"n": 5})
    with pytest.raises(BoundError):
        evaluate("log(0)", {})


def test_compiled_bound_can_be_reused() -> None:
    tree = compile_bound("n * 2")
    assert evaluate(tree, {"n": 3}) == 6
    assert evaluate(tree, {"n": 4}) == 8


def test_suspicion_timeouts_match_memberlist_lan_figures() -> None:
    # docs/protocol-notes.md: LAN, N <= 10 gives 4 s / 24 s; N = 100 gives 8 s / 48 s.
    small = derived_parameters(LAN, 10)
    assert small["suspicion_min_ms"] == pytest.approx(4000)
    assert small["suspicion_max_ms"] == pytest.approx(24000)
    large = derived_parameters(LAN, 100)
    assert large["suspicion_min_ms"] == pytest.approx(8000)
    assert large["suspicion_max_ms"] == pytest.approx(48000)


def test_retransmit_limit_and_dissemination() -> None:
    params = derived_parameters(LAN, 5)
    assert params["retransmit_limit"] == 4 * math.ceil(math.log10(6))
    assert params["gossip_rounds"] == 2  # ceil(log_4 5)
    assert params["dissemination_ms"] == (2 + 4) * 200 + 30000
    exact_power = derived_parameters(LAN, 16)
    assert exact_power["gossip_rounds"] == 2  # log_4 16 is exactly 2, not 3


def test_small_clusters_and_defaults() -> None:
    one = derived_parameters({}, 1)
    assert one["n"] == 1
    assert one["gossip_rounds"] == 0
    assert one["probe_interval_ms"] == 1000  # memberlist LAN default
    assert derived_parameters({}, 0)["n"] == 1


def test_catalogue_constants_are_included_unless_replaced() -> None:
    assert derived_parameters(LAN, 5)["slack_ms"] > 0
    assert derived_parameters(LAN, 5, constants={"slack_ms": 7})["slack_ms"] == 7
    assert "slack_ms" not in derived_parameters(LAN, 5, constants={})


def test_non_numeric_timing_values_are_ignored() -> None:
    params = derived_parameters({"probe_interval_ms": 200, "profile": "lan", "flag": True}, 3)
    assert params["probe_interval_ms"] == 200
    assert "profile" not in params and "flag" not in params
