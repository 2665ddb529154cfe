"""hakit.clock: the one wait helper and the fake clock the unit tests give it."""

import pytest

from hakit.clock import SYSTEM_CLOCK, FakeClock, intervals, wait_until
from hakit.errors import OperationFailed


def test_the_first_good_look_is_returned_without_sleeping():
    clock = FakeClock()
    assert wait_until(lambda: "yes", 10, 1, clock=clock) == "yes"
    assert clock.slept == [] and clock.monotonic() == 0


def test_looks_every_interval_until_the_check_holds():
    clock = FakeClock()
    clock.at(2.5, lambda: ready.append(True))
    ready: list[bool] = []
    assert wait_until(lambda: bool(ready), 10, 0.5, clock=clock) is True
    assert clock.slept == [0.5] * 5 and clock.monotonic() == 2.5


def test_the_timeout_returns_the_last_look_after_one_look_past_the_deadline():
    clock = FakeClock()
    looks: list[float] = []

    def look():
        looks.append(clock.monotonic())
        return None
    assert wait_until(look, 1.0, 0.25, clock=clock) is None
    assert looks == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_done_decides_and_the_last_observation_is_returned_on_timeout():
    clock = FakeClock()
    seen = iter(range(100))
    assert wait_until(lambda: next(seen), 3, 1, clock=clock, done=lambda n: n >= 2) == 2
    assert wait_until(lambda: next(seen), 3, 1, clock=clock, done=lambda n: n > 50) == 6  # 3, 4, 5, 6: the last


def test_fail_raises_the_callers_message_with_the_last_look():
    clock = FakeClock()
    with pytest.raises(OperationFailed, match=r"^n1: still 'starting' after 5s$"):
        wait_until(lambda: "starting", 5, 1, clock=clock, done=lambda s: s == "up",
                   fail=lambda last: OperationFailed(f"n1: still {last!r} after 5s"))
    assert clock.monotonic() == 5


def test_an_exception_of_the_check_passes_through():
    def boom():
        raise OperationFailed("n2: replication failed")
    with pytest.raises(OperationFailed, match="replication failed"):
        wait_until(boom, 5, clock=FakeClock())


def test_growing_intervals_repeat_their_last_value():
    clock = FakeClock()
    wait_until(lambda: None, 10, [0.5, 1, 2, 4], clock=clock)
    assert clock.slept == [0.5, 1, 2, 4, 4]
    pause = intervals(3)
    assert [pause(), pause()] == [3.0, 3.0]


def test_the_fake_clock_runs_hooks_in_time_order_and_keeps_wall_time_in_step():
    clock = FakeClock(start=10.0, wall=1000.0)
    order: list[tuple[str, float]] = []
    clock.at(13, lambda: order.append(("b", clock.monotonic())))
    clock.at(11, lambda: order.append(("a", clock.monotonic())))
    calls: list[float] = []
    clock.on_sleep = lambda: calls.append(clock.monotonic())
    clock.sleep(5)
    assert order == [("a", 11.0), ("b", 13.0)] and calls == [15.0]
    assert clock.time() == 1005.0
    clock.sleep(-1)  # a negative sleep passes no time, as none is slept
    assert clock.monotonic() == 15.0


def test_the_system_clock_is_the_machines():
    import time

    before = time.monotonic()
    assert before <= SYSTEM_CLOCK.monotonic() <= time.monotonic()
    assert abs(SYSTEM_CLOCK.time() - time.time()) < 5
    SYSTEM_CLOCK.sleep(0)
