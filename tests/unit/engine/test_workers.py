"""The backend's pooled threads and shared timer: a job never waits for another (a
stream reader blocks for its command's life), threads are reused, timers fire in
order on pooled threads, and cancelled timers do not pile up."""

from __future__ import annotations

import threading

from rivet.engine.backends import workers


def test_every_job_runs_at_once_even_when_all_block() -> None:
    n = 40
    started = threading.Barrier(n + 1, timeout=60)
    release = threading.Event()

    def job() -> None:
        started.wait()  # only passes once all n jobs run at the same time
        release.wait(60)

    for _ in range(n):
        workers.run_in_thread(job)
    started.wait()
    release.set()


def test_idle_threads_are_reused() -> None:
    names: list[str] = []
    done = threading.Event()

    def job() -> None:
        names.append(threading.current_thread().name)
        done.set()

    for _ in range(5):
        done.clear()
        workers.run_in_thread(job)
        assert done.wait(30)
    before = threading.active_count()
    for _ in range(20):
        done.clear()
        workers.run_in_thread(job)
        assert done.wait(30)
    assert threading.active_count() <= before + 1  # sequential jobs need no new thread
    assert all(name == "rivet-io" for name in names)


def test_a_failing_job_leaves_the_pool_working() -> None:
    def boom() -> None:
        raise RuntimeError("job failed")

    workers.run_in_thread(boom)
    done = threading.Event()
    workers.run_in_thread(done.set)
    assert done.wait(30)


def test_timers_fire_in_order_and_cancelled_ones_never() -> None:
    fired: list[str] = []
    lock = threading.Lock()
    all_done = threading.Event()

    def mark(name: str) -> None:
        with lock:
            fired.append(name)
            if len(fired) == 2:
                all_done.set()

    # Far apart: each action runs on a pooled thread, which a loaded host may start
    # late, so only deadlines seconds apart have a certain order.
    workers.call_later(2.0, lambda: mark("late"))
    cancelled = workers.call_later(0.1, lambda: mark("cancelled"))
    workers.call_later(0.05, lambda: mark("early"))
    cancelled.cancel()
    assert all_done.wait(30)
    assert fired == ["early", "late"]  # "cancelled" was due long before "late"


def test_cancelled_timers_do_not_pile_up() -> None:
    handles = [workers.call_later(3600, lambda: None) for _ in range(1000)]
    for handle in handles:
        handle.cancel()
    assert len(workers._timers._heap) < 600
