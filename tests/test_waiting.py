"""``wait_until``, the one polling loop: what it returns, how often it looks, when it stops."""

from __future__ import annotations

import pytest
from gossipcert.harness.drivers.waiting import wait_until


class FakeClock:
    """A virtual clock whose sleep only moves time on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_seconds_it_took() -> None:
    fake = FakeClock()
    took = wait_until(lambda: fake.now >= 101.0, 5.0, 0.25, clock=fake.clock, sleep=fake.sleep)
    assert took == pytest.approx(1.0)
    assert fake.sleeps == [0.25] * 4


def test_a_condition_that_already_holds_is_zero_not_none() -> None:
    fake = FakeClock()
    took = wait_until(lambda: True, 5.0, clock=fake.clock, sleep=fake.sleep)
    assert took == 0.0 and took is not None and fake.sleeps == []


def test_gives_up_after_the_timeout_with_a_last_look_at_the_deadline() -> None:
    fake = FakeClock()
    looked: list[float] = []

    def never() -> bool:
        looked.append(fake.now)
        return False

    assert wait_until(never, 1.0, 0.3, clock=fake.clock, sleep=fake.sleep) is None
    assert looked[0] == 100.0 and looked[-1] == pytest.approx(101.0)
    assert fake.sleeps[-1] == pytest.approx(0.1)  # never sleeps past the deadline
    assert fake.now == pytest.approx(101.0)


def test_looks_once_even_with_no_time() -> None:
    fake = FakeClock()
    calls = []
    assert wait_until(lambda: calls.append(1), 0.0, clock=fake.clock, sleep=fake.sleep) is None
    assert calls == [1] and fake.sleeps == []


def test_a_condition_that_raises_ends_the_wait() -> None:
    def exited() -> bool:
        raise ProcessLookupError("node exited")

    with pytest.raises(ProcessLookupError):
        wait_until(exited, 10.0)


def test_runs_on_the_wall_clock_by_default() -> None:
    took = wait_until(lambda: True, 1.0)
    assert took is not None and 0.0 <= took < 0.5
    assert wait_until(lambda: False, 0.05, 0.01) is None
