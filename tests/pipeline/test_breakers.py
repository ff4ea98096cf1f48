"""Circuit breakers per deployment: the state machine, on a clock the test moves."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from passerelle.config.schema import CircuitBreaker
from passerelle.pipeline.breakers import (
    CIRCUIT_OPEN,
    PROBE_WAIT_S,
    RATE_LIMITED,
    Admitted,
    Breaker,
    BreakerState,
    Refused,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, **settings: object) -> Breaker:
    return Breaker("primary/gpt-4o", CircuitBreaker.model_validate(settings), clock)


def admitted(value: Admitted | Refused) -> Admitted:
    assert isinstance(value, Admitted), value
    return value


def test_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    clock = Clock()
    b = breaker(clock, failures=3, cooldown_s=10)
    for _ in range(2):
        b.failure(admitted(b.admit()))
    b.success(admitted(b.admit()))  # not in a row any more
    assert b.consecutive_failures == 0
    for _ in range(2):
        b.failure(admitted(b.admit()))
    assert b.state is BreakerState.CLOSED
    b.failure(admitted(b.admit()))
    assert b.state is BreakerState.OPEN
    refused = b.admit()
    assert refused == Refused(CIRCUIT_OPEN, 10.0)
    clock.now += 4
    assert b.refusal() == Refused(CIRCUIT_OPEN, 6.0)


def test_half_open_lets_limited_probes_through_and_a_success_closes() -> None:
    clock = Clock()
    b = breaker(clock, failures=1, cooldown_s=5, half_open_probes=2)
    b.failure(admitted(b.admit()))
    clock.now += 5
    assert b.state_now() is BreakerState.HALF_OPEN
    assert b.refusal() is None  # looking takes no slot
    first, second = admitted(b.admit()), admitted(b.admit())
    assert first.probe and second.probe and b.state is BreakerState.HALF_OPEN
    assert b.admit() == Refused(CIRCUIT_OPEN, PROBE_WAIT_S)
    b.success(first)
    assert b.state is BreakerState.CLOSED
    assert not admitted(b.admit()).probe


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_the_maximum() -> None:
    clock = Clock()
    b = breaker(clock, failures=1, cooldown_s=10, max_cooldown_s=25)
    b.failure(admitted(b.admit()))
    waits = []
    for _ in range(3):
        refused = b.admit()
        assert isinstance(refused, Refused)
        waits.append(refused.wait_s)
        clock.now += refused.wait_s
        b.failure(admitted(b.admit()))
    assert waits == [10, 20, 25]
    clock.now += 25
    b.success(admitted(b.admit()))
    b.failure(admitted(b.admit()))  # closed again: the cooldown starts over
    assert b.admit() == Refused(CIRCUIT_OPEN, 10)


def test_a_released_probe_gives_its_slot_back() -> None:
    clock = Clock()
    b = breaker(clock, failures=1, cooldown_s=1)
    b.failure(admitted(b.admit()))
    clock.now += 1
    probe = admitted(b.admit())
    assert isinstance(b.admit(), Refused)
    b.release(probe)  # e.g. the caller went away, or the upstream answered 429
    assert b.state is BreakerState.HALF_OPEN
    assert admitted(b.admit()).probe


def test_late_verdicts_from_before_the_breaker_opened_are_ignored() -> None:
    clock = Clock()
    b = breaker(clock, failures=2, cooldown_s=10)
    slow = admitted(b.admit())  # a long request, started while closed
    b.failure(admitted(b.admit()))
    b.failure(admitted(b.admit()))
    assert b.state is BreakerState.OPEN
    b.success(slow)
    assert b.state is BreakerState.OPEN
    b.failure(slow)
    assert b.admit() == Refused(CIRCUIT_OPEN, 10)  # the cooldown did not restart


def test_a_429_defers_the_deployment_without_counting_as_a_failure() -> None:
    clock = Clock()
    b = breaker(clock, failures=1, max_cooldown_s=60)
    b.defer(3)
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0
    assert b.refusal() == Refused(RATE_LIMITED, 3)
    assert b.admit() == Refused(RATE_LIMITED, 3)
    assert not admitted(b.admit(honour_deferral=False)).probe  # the request that waited
    clock.now += 3
    assert b.refusal() is None
    b.defer(3600)  # an absurd retry-after pauses the deployment at most max_cooldown_s
    assert b.refusal() == Refused(RATE_LIMITED, 60)


def test_a_disabled_breaker_always_lets_requests_through() -> None:
    clock = Clock()
    b = breaker(clock, enabled=False, failures=1)
    for _ in range(10):
        b.failure(admitted(b.admit()))
    b.defer(30)
    assert b.state is BreakerState.CLOSED
    assert b.refusal() is None and isinstance(b.admit(), Admitted)


@pytest.mark.parametrize(
    "settings",
    [
        {"failures": 0},
        {"cooldown_s": 0},
        {"cooldown_s": 60, "max_cooldown_s": 30},
        {"half_open_probes": 0},
        {"failure": 5},  # a typo is an error, not a setting silently ignored
    ],
)
def test_settings_are_validated(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CircuitBreaker.model_validate(settings)
