"""The one wait loop: predicate, failure, timeout, retries, all on a fake clock."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.kubeferry.state_transfer.plugins.module_utils.waiter import (
    WaitFailed,
    WaitTimeout,
    wait_for,
)


def reader(values):
    values = list(values)

    def read():
        value = values.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    return read


def test_returns_the_first_value_the_predicate_accepts(clock):
    value, elapsed = wait_for(reader([0, 1, 2, 3]), lambda v: v >= 2, timeout=60, sleep=5)
    assert value == 2
    assert elapsed == 10
    assert clock.sleeps == [5, 5]


def test_times_out_with_the_last_value(clock):
    with pytest.raises(WaitTimeout) as info:
        wait_for(lambda: "pending", lambda v: False, timeout=12, sleep=5)
    assert info.value.last == "pending"
    assert info.value.elapsed == 12
    # Never sleeps past the deadline, and reads once more at it.
    assert clock.sleeps == [5, 5, 2]
    assert "timed out after 12 s" in str(info.value)


def test_failure_stops_at_once_without_waiting_for_the_timeout(clock):
    with pytest.raises(WaitFailed) as info:
        wait_for(
            reader(["creating", "broken"]),
            lambda v: v == "ready",
            timeout=600,
            sleep=5,
            failure=lambda v, _elapsed: "it broke" if v == "broken" else "",
        )
    assert info.value.msg == "it broke"
    assert info.value.last == "broken"
    assert clock.elapsed == 5


def test_predicate_wins_over_failure():
    value, _elapsed = wait_for(
        lambda: "both", lambda v: True, timeout=1, sleep=1, failure=lambda v, e: "bad"
    )
    assert value == "both"


def test_failure_gets_the_elapsed_time_for_grace_periods(clock):
    seen = []

    def failure(value, elapsed):
        seen.append(elapsed)
        return "too long" if elapsed >= 30 else ""

    with pytest.raises(WaitFailed):
        wait_for(lambda: 1, lambda v: False, timeout=300, sleep=10, failure=failure)
    assert seen == [0, 10, 20, 30]


def test_retries_transient_errors_and_reports_the_last_one(clock):
    with pytest.raises(WaitTimeout) as info:
        wait_for(
            reader([OSError("connection reset")] * 4),
            lambda v: True,
            timeout=6,
            sleep=2,
            retry_on=(OSError,),
        )
    assert "last error: connection reset" in str(info.value)


def test_transient_error_then_success(clock):
    value, _elapsed = wait_for(
        reader([OSError("reset"), "ok"]), lambda v: v == "ok", 10, 1, retry_on=(OSError,)
    )
    assert value == "ok"


def test_other_errors_propagate(clock):
    with pytest.raises(KeyError):
        wait_for(reader([KeyError("x")]), lambda v: True, 10, 1, retry_on=(OSError,))


def test_zero_timeout_reads_once(clock):
    with pytest.raises(WaitTimeout):
        wait_for(reader(["a"]), lambda v: False, timeout=0, sleep=5)
    assert clock.sleeps == []


def test_a_wake_that_sees_a_change_ends_the_pause_at_once(clock):
    pauses = []

    def wake(seconds):
        pauses.append(seconds)
        return True

    value, _elapsed = wait_for(reader([0, 1, 2]), lambda v: v >= 2, timeout=60, sleep=5, wake=wake)
    assert value == 2
    assert pauses == [5, 5]
    assert clock.sleeps == []


def test_a_wake_without_a_change_sleeps_the_rest_of_the_pause(clock):
    def wake(seconds):
        clock.now += 2  # it watched for 2 of the 5 seconds, then gave up
        return False

    wait_for(reader([0, 1, 2]), lambda v: v >= 2, timeout=60, sleep=5, wake=wake)
    assert clock.sleeps == [3, 3]
    assert clock.elapsed == 10
