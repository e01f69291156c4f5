"""The token bucket behind ``http.rate`` / ``http.burst`` / ``http.max_wait``, on a fake
clock: deterministic, no sleeping."""

from __future__ import annotations

import pytest

from rivet.engine.modules.http_module.rate_limit import RateLimited, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_full_bucket_serves_the_burst_at_once() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.reserve(0) for _ in range(3)] == [0, 0, 0]


def test_burst_plus_one_without_waiting_is_refused_and_takes_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    for _ in range(3):
        bucket.reserve(0)
    with pytest.raises(RateLimited) as info:
        bucket.reserve(0)
    assert info.value.wait == pytest.approx(0.5)  # one token at 2/s
    assert bucket.tokens == pytest.approx(0)  # the refusal took nothing
    with pytest.raises(RateLimited):
        bucket.reserve(0.49)


def test_waits_queue_behind_each_other_at_exactly_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    assert bucket.reserve(10) == 0
    assert bucket.reserve(10) == pytest.approx(0.25)
    assert bucket.reserve(10) == pytest.approx(0.50)  # behind the pending reservation
    assert bucket.reserve(10) == pytest.approx(0.75)
    with pytest.raises(RateLimited) as info:
        bucket.reserve(0.9)
    assert info.value.wait == pytest.approx(1.0)


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    for _ in range(5):
        bucket.reserve(0)
    clock.advance(0.25)  # 2.5 tokens back
    assert bucket.reserve(0) == 0
    assert bucket.reserve(0) == 0
    with pytest.raises(RateLimited) as info:
        bucket.reserve(0)
    assert info.value.wait == pytest.approx(0.05)
    clock.advance(3600)  # a long pause refills to the burst, never beyond
    assert bucket.tokens == pytest.approx(5)
    assert [bucket.reserve(0) for _ in range(5)] == [0] * 5
    with pytest.raises(RateLimited):
        bucket.reserve(0)


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(rate=1, burst=0)
