"""``describe_wait``: the sentence and counts that explain why a queued job has no
runner, for every reason (issue 14). The database-reading ``explain_wait`` is tested
against a real server in tests/integration/cli/test_archive_rerun_remove.py and e2e."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rivet.orchestrator.services.waiting import ONLINE_WITHIN, describe_wait
from rivet.protocol import RunnerView

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
LINUX = {"os": "linux", "arch": "x86_64"}


def runner(
    tags: dict[str, str],
    *,
    seen: timedelta | None = timedelta(seconds=5),
    jobs: int = 0,
    plugins: list[str] | None = None,
    removed: bool = False,
) -> RunnerView:
    return RunnerView(
        id="ab" * 16,
        name="r",
        tags=tags,
        plugins=plugins or [],
        last_seen=None if seen is None else NOW - seen,
        current_jobs=[f"{i:032x}" for i in range(jobs)],
        created_at=NOW - timedelta(days=1),
        removed_at=NOW if removed else None,
    )


def test_none_of_the_online_runners_match() -> None:
    wait = describe_wait(LINUX, [], [runner({"os": "mac"}), runner({"os": "linux"})], NOW)
    assert wait.message == (
        "waiting for a runner with os=linux, arch=x86_64 (none of the 2 online runners match)"
    )
    assert (wait.reason, wait.online, wait.matching, wait.busy) == ("no_match", 2, 0, 0)
    single = describe_wait(LINUX, [], [runner({"os": "mac"})], NOW)
    assert single.message.endswith("(the only online runner does not match)")


def test_all_matching_runners_busy_and_a_free_one() -> None:
    busy = [runner(LINUX, jobs=1), runner(LINUX, jobs=2), runner({"os": "mac"})]
    wait = describe_wait(LINUX, [], busy, NOW)
    assert wait.message.endswith("(all 2 matching runners are busy)")
    assert (wait.reason, wait.online, wait.matching, wait.busy) == ("all_busy", 3, 2, 2)
    one = describe_wait(LINUX, [], [runner(LINUX, jobs=1)], NOW)
    assert one.message.endswith("(the 1 matching runner is busy)")
    free = describe_wait(LINUX, [], [runner(LINUX, jobs=1), runner(LINUX)], NOW)
    assert free.reason == "free_runner"
    assert free.message.endswith("(1 matching runner is free and should take it)")


def test_offline_removed_and_unregistered_runners() -> None:
    stale = ONLINE_WITHIN + timedelta(seconds=1)
    runners = [runner(LINUX, seen=stale), runner(LINUX, seen=None), runner(LINUX, removed=True)]
    wait = describe_wait(LINUX, [], runners, NOW)
    assert wait.reason == "no_runner_online" and wait.online == 0
    assert wait.message.endswith(
        "(no runner is online: none of the 2 runners registered was seen in the last 90 s)"
    )
    nobody = describe_wait({}, [], [], NOW)
    assert nobody.message == (
        "waiting for a runner (no runner is registered; start one with 'rivet up' or "
        "'rivet runner')"
    )


def test_plugins_are_required_like_tags() -> None:
    runners = [runner(LINUX, plugins=["git"]), runner(LINUX, plugins=["git", "docker"])]
    wait = describe_wait(LINUX, ["docker"], runners, NOW)
    assert wait.matching == 1 and wait.reason == "free_runner"
    assert wait.message.startswith(
        "waiting for a runner with os=linux, arch=x86_64 and plugins docker"
    )
    none = describe_wait({}, ["docker"], [runner({})], NOW)
    assert none.message == (
        "waiting for a runner with plugins docker (the only online runner does not match)"
    )
