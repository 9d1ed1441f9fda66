"""The model checkers on their own: what a converged state must and may hold."""

from __future__ import annotations

import math
import time

from gossipcert.harness.judging.models import (
    CounterOp,
    SetOp,
    Write,
    counter_range,
    lost_writes,
    lww_model,
    mv_model,
    or_set_model,
    quantiles,
    resurrected_deletes,
)


def w(
    value: object,
    node: str = "n1",
    ts: tuple[int, int] | None = None,
    *,
    invoked: float = 0,
    completed: float = 1,
    outcome: str = "ok",
    deleted: bool = False,
    context: object = None,
    result_context: object = None,
) -> Write:
    return Write(
        "k",
        node,
        value,
        invoked,
        completed,
        outcome,
        None if ts is None else (float(ts[0]), float(ts[1])),
        deleted,
        context,
        result_context,
    )


def test_lww_winner_is_the_greatest_timestamp_then_node() -> None:
    model = lww_model([w("a", "n1", (5, 0)), w("b", "n2", (5, 0)), w("c", "n3", (4, 9))])
    assert model.winner is not None and model.winner.value == "b"
    assert model.admits(["b"]) and not model.admits(["a"]) and not model.admits(None)
    assert not model.admits(["b", "a"])


def test_lww_unknown_outcomes_may_win_failed_never() -> None:
    model = lww_model(
        [w("a", ts=(1, 0)), w("t", ts=None, outcome="info"), w("f", ts=(9, 0), outcome="fail")]
    )
    assert model.admits(["a"]) and model.admits(["t"]) and not model.admits(["f"])


def test_lww_without_timestamps_uses_real_time() -> None:
    model = lww_model(
        [
            w("a", invoked=0, completed=10),
            w("b", invoked=20, completed=30),
            w("c", invoked=25, completed=40),
        ]
    )
    assert model.admits(["b"]) and model.admits(["c"]) and not model.admits(["a"])


def test_lww_delete_winner_allows_absence() -> None:
    model = lww_model([w("a", ts=(1, 0)), w(None, ts=(2, 0), deleted=True)])
    assert model.admits(None) and not model.admits(["a"])


def test_mv_maximal_writes_from_contexts() -> None:
    writes = [
        w("a", "n1"),
        w("b", "n2"),
        w("c", "n3", context="C", result_context="D"),
        w("d", "n1", context="D"),
    ]
    model = mv_model(writes, [("C", ["a", "b"])])
    assert model.required == {'"d"'}
    assert model.superseded == {'"a"', '"b"', '"c"'}
    assert model.violations(["d"]) == []
    assert model.violations([]) and model.violations(["c", "d"])


def test_mv_superseding_write_of_unknown_outcome_only_widens() -> None:
    writes = [w("a"), w("b", context="C", outcome="info")]
    model = mv_model(writes, [("C", ["a"])])
    assert model.required == frozenset()
    assert model.violations(["a"]) == [] and model.violations(["a", "b"]) == []


def test_counter_range() -> None:
    span = counter_range(
        [CounterOp(2, "ok"), CounterOp(3, "info"), CounterOp(-1, "info"), CounterOp(7, "fail")]
    )
    assert (span.low, span.high) == (1, 5)
    assert span.admits(3) and not span.admits(6) and not span.admits("3")


def test_or_set_add_wins_model() -> None:
    ops = [
        SetOp("x", True, 0, 1, "ok"),
        SetOp("x", False, 2, 3, "ok"),
        SetOp("y", True, 5, 6, "ok"),
        SetOp("y", False, 0, 1, "ok"),
        SetOp("z", True, 0, 1, "info"),
    ]
    model = or_set_model(ops)
    assert model.required == {'"y"'}
    assert model.allowed == {'"x"', '"y"', '"z"'}
    assert model.violations(["y", "z"]) == []
    assert model.violations(["x"]) and model.violations(["y", "q"])


def test_lost_writes_and_resurrected_deletes() -> None:
    writes = [w("a", "n1", (1, 0)), w("b", "n2", (2, 0))]
    assert lost_writes(writes, ["b"]) == []
    assert [x.value for x in lost_writes(writes, [])] == ["b"]
    assert [x.value for x in lost_writes(writes, ["a"])] == ["b"]
    mv = [w("a"), w("b")]
    assert [x.value for x in lost_writes(mv, ["a"], "mv")] == ["b"]
    deleted = [w("a", ts=(1, 0)), w(None, "n2", (2, 0), deleted=True)]
    assert resurrected_deletes(deleted, ["a"]) and not resurrected_deletes(deleted, [])
    rewritten = [*deleted, w("a", "n3", (3, 0))]
    assert resurrected_deletes(rewritten, ["a"]) == []


def test_quantiles_nearest_rank() -> None:
    q = quantiles(list(range(1, 101)))
    assert (q["p50"], q["p90"], q["p99"], q["max"], q["min"]) == (50, 90, 99, 100, 1)
    assert quantiles([]) == {}


def test_models_are_linear_enough_for_large_histories() -> None:
    """30,000 writes of one key: each model answers in well under a second."""
    writes = [
        w(i, f"n{i % 7}", (i // 3, i % 3), invoked=i, completed=i + 1) for i in range(100_000)
    ]
    t0 = time.perf_counter()
    lww_model(writes)
    lost_writes(writes, [29_999])
    mv_model(writes)
    counter_range(CounterOp(1, "ok") for _ in range(30_000))
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0, elapsed  # generous: shared CI machines; typical ~0.3 s
    assert math.isfinite(elapsed)
