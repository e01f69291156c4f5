"""``JobRun``: one claimed job on its own thread — execute, heartbeat, report, complete.

Order of reports: log lines and stage updates flow through the job's
:class:`~rivet.runner.logs.LogShipper` as they happen; when the executor returns, the
shipper is drained first and only then is the completion posted, so by the time the
server marks the job finished (and ends its log streams) every line is stored.

Cancel: a heartbeat (every ``heartbeat_interval`` seconds) or any other answer from
the server may carry ``cancel_requested``; the job's :class:`CancelToken` is then set
on a helper thread (cancelling removes containers, which takes a moment and must not
hold up heartbeats or log delivery). The executor stops the running process and
reports the job ``cancelled``.

Losing the server changes nothing for the job itself: lines buffer in the shipper,
heartbeats keep trying, and the completion is retried until acknowledged.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from rivet.domain.status import JobStatus
from rivet.engine.events import CancelToken, JobResult
from rivet.engine.executor import Executor, JobSpec
from rivet.limits import MAX_ERROR, truncate
from rivet.observe.logs import bind, forget_secret, in_context, register_secret
from rivet.protocol import Ack, JobAssignment, JobCompletion
from rivet.runner.artifacts import RemoteArtifacts, source_filler
from rivet.runner.client import (
    AttemptRefused,
    JobGone,
    RequestRejected,
    RunnerClient,
    ServerUnavailable,
    TokenRejected,
    deliver,
)
from rivet.runner.logs import LogShipper, ShipperSettings
from rivet.runner.retry import Backoff

__all__ = ["JobRun"]

log = logging.getLogger("rivet.runner")

SERVER_CANCEL = "cancelled from the server"


class JobRun:
    def __init__(
        self,
        assignment: JobAssignment,
        client: RunnerClient,
        executor: Executor,
        *,
        heartbeat_interval: float,
        shipper_settings: ShipperSettings,
        give_up: threading.Event,
        on_done: Callable[[JobRun], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.assignment = assignment
        self.job_id = assignment.job_id
        self.attempt = assignment.attempt
        self.owner = owner
        self.client = client
        self.executor = executor
        self.cancel = CancelToken()
        self.result: JobResult | None = None
        # Well within the lease: three heartbeats may be lost before the job is.
        self._heartbeat_interval = min(heartbeat_interval, assignment.lease_seconds / 3)
        self._shipper: LogShipper | None = None
        self._shipper_settings = shipper_settings
        self._give_up = give_up
        self._on_done = on_done
        self._finished = threading.Event()
        self._cancel_lock = threading.Lock()
        self._cancel_sent = False
        self._thread = threading.Thread(
            target=in_context(self._main), name=f"job-{self.job_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def request_cancel(self, reason: str) -> None:
        """Cancel on a helper thread, so the caller (a heartbeat, the shipper) goes on."""
        with self._cancel_lock:
            if self._cancel_sent:
                return
            self._cancel_sent = True
        threading.Thread(
            target=in_context(lambda: self.cancel.cancel(reason)), name=f"cancel-{self.job_id[:8]}"
        ).start()

    # --- the job thread -------------------------------------------------------------

    def _main(self) -> None:
        # The job's secrets are masked in the runner's own log while it runs.
        secrets = [value.get_secret_value() for value in self.assignment.secrets.values()]
        for value in secrets:
            register_secret(value)
        try:
            with bind(job_id=self.job_id):
                self._run()
        finally:
            for value in secrets:
                forget_secret(value)

    def _run(self) -> None:
        started = time.monotonic()
        heartbeat = threading.Thread(
            target=in_context(self._heartbeats), name=f"heartbeat-{self.job_id[:8]}", daemon=True
        )
        heartbeat.start()
        shipper = LogShipper(
            self.client,
            self.job_id,
            self._shipper_settings,
            give_up=self._give_up,
            on_ack=self._on_ack,
            attempt=self.attempt,
        )
        self._shipper = shipper
        try:
            result = self._execute(shipper)
            self.result = result
            if not shipper.close():
                log.warning("job %s: some log lines could not be delivered", self.job_id)
            try:
                self._complete(result)
            except Exception:  # e.g. the runner aborting under us; never kill the thread
                log.exception("job %s: could not report its completion", self.job_id)
            log.info(
                "job %s finished: %s in %.2f s%s",
                self.job_id,
                result.status.value,
                time.monotonic() - started,
                f" ({result.error})" if result.error else "",
            )
        finally:
            self._finished.set()
            heartbeat.join()
            if self._on_done is not None:
                self._on_done(self)

    def _execute(self, shipper: LogShipper) -> JobResult:
        a = self.assignment
        spec = JobSpec(
            a.job_id,
            a.source,
            a.filename,
            dict(a.inputs),
            first_seq=a.next_seq,
            secrets={name: value.get_secret_value() for name, value in a.secrets.items()},
            withheld_secrets=dict(a.withheld),
            timeout=a.timeout_seconds,
            owner=self.owner,
            artifacts=RemoteArtifacts(self.client, a.job_id, a.attempt, self._give_up),
            fill_workspace=(
                source_filler(
                    self.client, a.job_id, a.attempt, a.source_archive, Path(tempfile.gettempdir())
                )
                if a.source_archive is not None
                else None
            ),
            trace_parent=a.trace_parent,
            attempt=a.attempt,
        )
        try:
            return self.executor.run(spec, shipper, self.cancel)
        except Exception as exc:  # a runner bug must fail the job, not the runner
            log.exception("job %s: the executor raised", self.job_id)
            return JobResult(JobStatus.FAILED, error=f"runner error: {exc}")

    def _complete(self, result: JobResult) -> None:
        status: Literal["succeeded", "failed", "cancelled", "timed_out"] = "failed"
        if result.status is JobStatus.SUCCEEDED:
            status = "succeeded"
        elif result.status is JobStatus.CANCELLED:
            status = "cancelled"
        elif result.status is JobStatus.TIMED_OUT:
            status = "timed_out"
        error = truncate(result.error, MAX_ERROR) if result.error is not None else None
        try:
            completion = JobCompletion(status=status, outputs=result.outputs, error=error)
        except ValueError as exc:  # outputs over a cap: output.set checks, this is a backstop
            completion = _refused(f"the job's outputs break the API's rules: {exc}")
        try:
            self._deliver_completion(completion)
        except RequestRejected as exc:
            # Never leave the job running on the server: report it failed, without the
            # outputs the server refused, saying why.
            log.error("job %s: the server refused its completion: %s", self.job_id, exc)
            try:
                self._deliver_completion(_refused(f"the server refused the job's result: {exc}"))
            except (JobGone, TokenRejected, RequestRejected) as again:
                log.error("job %s: the server refused its completion: %s", self.job_id, again)
        except (JobGone, TokenRejected) as exc:
            log.error("job %s: the server refused its completion: %s", self.job_id, exc)

    def _deliver_completion(self, completion: JobCompletion) -> None:
        ack = deliver(
            lambda: self.client.complete(self.job_id, completion, self.attempt),
            Backoff(0.2, 10.0),
            self._give_up,
        )
        if ack is None:
            log.error(
                "job %s: gave up reporting its completion (%s)", self.job_id, completion.status
            )

    # --- heartbeats -----------------------------------------------------------------

    def _heartbeats(self) -> None:
        backoff = Backoff(0.5, self._heartbeat_interval)
        delay = self._heartbeat_interval
        while not self._finished.wait(delay):
            problem = self._shipper.problem if self._shipper is not None else None
            try:
                self._on_ack(self.client.heartbeat(self.job_id, self.attempt, problem))
                delay = self._heartbeat_interval
                backoff.reset()
            except ServerUnavailable:
                delay = backoff.next_delay()  # come back quickly once the server is up
            except AttemptRefused as exc:
                # Our lease ran out (we were paused, cut off…): the server ended this
                # attempt and may have handed the job on. Stop it; report nothing more.
                log.error("job %s attempt %d: %s; stopping it", self.job_id, self.attempt, exc)
                self.request_cancel(f"the server ended attempt {self.attempt}: {exc}")
                return
            except JobGone as exc:
                log.error("job %s: %s; stopping it", self.job_id, exc)
                self.request_cancel("the server no longer assigns this job to this runner")
                return
            except TokenRejected as exc:
                if exc.removed:  # the job is failed on the server already: stop it
                    log.error("job %s: %s; stopping it", self.job_id, exc)
                    self.request_cancel("this runner was removed by an admin")
                    return
                log.error("job %s: heartbeat refused: %s", self.job_id, exc)
                delay = self._heartbeat_interval
            except RequestRejected as exc:
                log.error("job %s: heartbeat refused: %s", self.job_id, exc)
                delay = self._heartbeat_interval
            except Exception:
                log.exception("job %s: heartbeat failed", self.job_id)
                delay = self._heartbeat_interval

    def _on_ack(self, ack: Ack) -> None:
        if ack.cancel_requested and not self.cancel.cancelled:
            log.info("job %s: cancel requested by the server", self.job_id)
            self.request_cancel(SERVER_CANCEL)


def _refused(why: str) -> JobCompletion:
    return JobCompletion(status="failed", error=truncate(why, MAX_ERROR))
