"""The runner process: register once, long-poll for jobs, run each on its own thread.

Claiming: one poller thread fills the free slots (``concurrency``). While a slot is
free it holds one long poll (``POST /api/runner/claim`` with ``wait_seconds``) open;
the server answers the moment a matching job is launched, so an idle runner starts a
job within milliseconds. The server matches jobs against the tags and plugins it
stored for this runner at registration (an admin changes them; see
:meth:`Agent._learn_offer` for the start-up check); the runner only sends the plugins
its runtime provides, which can narrow them. When the server is unreachable the poller retries with
capped, jittered backoff; running jobs are not affected (see :mod:`rivet.runner.job`).

Shutdown (:func:`run_runner` maps signals onto these): :meth:`Agent.stop` stops
claiming and lets running jobs finish and deliver their logs; :meth:`Agent.cancel_jobs`
cancels them (they still report ``cancelled``); :meth:`Agent.abort` stops retrying
deliveries and ends at once. A long poll already in flight when the runner stops is
abandoned; the server notices the disconnect and does not hand it a job.
"""

from __future__ import annotations

import logging
import os
import threading
from types import FrameType

import httpx

from rivet.engine.backends.podman import PodmanBackend
from rivet.engine.backends.userns import check_subids
from rivet.engine.executor import Executor, ExecutorSettings
from rivet.engine.workspaces import prepare_root
from rivet.errors import ConfigError
from rivet.home import make_private_dir, tighten
from rivet.observe import tracing
from rivet.observe.levels import parse_levels
from rivet.observe.logs import bind, configure_logging, register_secret
from rivet.protocol import ClaimRequest, JobAssignment
from rivet.runner.cleanup import RUNNER_LOCK, clean_earlier_lives, hold_lock
from rivet.runner.client import (
    RequestRejected,
    RunnerClient,
    ServerUnavailable,
    TokenRejected,
)
from rivet.runner.config import RunnerSettings, resolve_settings
from rivet.runner.job import JobRun
from rivet.runner.metrics import MeasuredBackend, MetricsServer, RunnerMetrics
from rivet.runner.registration import RegistrationFailed, register_runner
from rivet.runner.retry import Backoff
from rivet.settings import Flags
from rivet.stop_signals import handling_stop_signals, signal_name

__all__ = ["Agent", "run_runner"]

log = logging.getLogger("rivet.runner")


class Agent:
    def __init__(
        self,
        settings: RunnerSettings,
        *,
        executor: Executor | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.client = RunnerClient(settings.server, settings.token, transport=transport)
        self.metrics = RunnerMetrics(self._slot_use)
        self.executor = executor or Executor(
            MeasuredBackend(PodmanBackend(), self.metrics),
            ExecutorSettings(
                settings.workspace_root,
                settings.default_image,
                limits=settings.limits,
                policy=settings.policy,
                plugins=settings.plugin_catalog,
            ),
        )
        self.runner_id = settings.runner_id
        self.exit_code = 0
        self.aborted = False
        self.claimed: list[str] = []
        self._stopping = threading.Event()
        self._give_up = threading.Event()
        self._done = threading.Event()
        self._slots = threading.Semaphore(settings.concurrency)
        self._lock = threading.Lock()
        # By (job, attempt): a job lost by this runner may come back to it as a new
        # attempt while the old one is still winding down.
        self._jobs: dict[tuple[str, int], JobRun] = {}
        self._cancel_reason: str | None = None
        self._registered_now = False
        self._home_lock: int | None = None
        self._poller = threading.Thread(target=self._poll, name="claim-poller", daemon=True)

    # --- control (any thread) -------------------------------------------------------

    def start(self) -> None:
        self._poller.start()

    def _slot_use(self) -> tuple[int, int]:
        with self._lock:
            return len(self._jobs), self.settings.concurrency

    def wait(self, timeout: float | None = None) -> bool:
        """True once stopped with no job left running."""
        return self._done.wait(timeout)

    def run(self) -> int:
        self.start()
        self._done.wait()
        return self.exit_code

    def stop(self) -> None:
        """Claim nothing more; finish the running jobs, then end."""
        self._stopping.set()
        with self._lock:
            running = len(self._jobs)
            if not running:
                self._done.set()
        if running:
            log.info("stopping: no new jobs; waiting for %d running job(s)", running)

    def cancel_jobs(self, reason: str) -> None:
        self.stop()
        with self._lock:
            self._cancel_reason = reason
            runs = list(self._jobs.values())
        for run in runs:
            log.info("job %s: cancelling (%s)", run.job_id, reason)
            run.request_cancel(reason)

    def abort(self) -> None:
        """Stop retrying anything and end now, whatever is still undelivered."""
        self.aborted = True
        self._give_up.set()
        self.cancel_jobs("runner aborted")
        self._done.set()

    def close(self) -> None:
        self.client.close()
        if self._home_lock is not None:
            os.close(self._home_lock)
            self._home_lock = None

    # --- the poller thread ----------------------------------------------------------

    def _poll(self) -> None:
        try:
            if self._ensure_registered():
                self._claim_loop()
        except Exception:  # never die silently: a dead poller would look like idleness
            if self._stopping.is_set():
                return  # the client was closed under a long poll we no longer need
            log.exception("runner: unexpected error; stopping")
            self.exit_code = 1
            self.stop()

    def _claim_loop(self) -> None:
        s = self.settings
        # No tags: the server matches the ones it stored (claim-time tags are ignored).
        request = ClaimRequest(wait_seconds=s.claim_wait, plugins=list(s.plugins))
        backoff = Backoff(0.5, 10.0)
        known = False
        cleaned = False
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=0.2):
                continue
            try:
                if not known:
                    self._learn_offer()
                    known = True
                if not cleaned:
                    self._clean_earlier_lives()
                    cleaned = True
                assignment = self.client.claim(request)
            except ServerUnavailable:
                self._slots.release()
                self._stopping.wait(backoff.next_delay())
                continue
            except TokenRejected as exc:
                self._slots.release()
                if exc.removed:
                    self._fail(f"stopping: {exc}")
                    return
                if self._registered_now or not s.registration_token:
                    self._fail(
                        f"the server rejected this runner's token ({exc}); register it again "
                        "with --registration-token (create one with `rivet runner token create`)"
                    )
                    return
                log.warning("saved runner token rejected (%s); registering again", exc)
                if not self._register():
                    return
                known = False  # a new runner record: read its tags again
                continue
            except RequestRejected as exc:
                self._slots.release()
                log.error("claim rejected: %s", exc)
                self._stopping.wait(backoff.next_delay())
                continue
            backoff.reset()
            if assignment is None:
                self._slots.release()
            else:
                self._start_job(assignment)

    def _learn_offer(self) -> None:
        """Read the tags and plugins the server stored for this runner, log them as the
        ones that apply, and warn when this runner was configured with other ones.

        Tags are fixed at registration and changed only by an admin, so that no runner
        can claim jobs (and their secrets) meant for others by claiming with their tags;
        a restarted runner without ``--tag`` therefore keeps its tags."""
        s = self.settings
        try:
            view = self.client.whoami()
        except RequestRejected as exc:  # a server too old to say: it still decides
            log.warning("cannot read this runner's tags from the server: %s", exc)
            view = None
        tags = view.tags if view is not None else s.tags
        self.runner_id = view.id if view is not None else self.runner_id
        log.info(
            "runner %s ready (id %s): server %s, tags %s (as stored by the server), "
            "concurrency %d, default image %s",
            s.name,
            self.runner_id or "?",
            s.server,
            _tags(tags),
            s.concurrency,
            s.default_image,
        )
        versions = s.plugin_catalog.versions()
        log.info(
            "plugins of this runtime: %s",
            ", ".join(f"{n} {versions.get(n, '?')}" for n in s.plugins) or "none",
        )
        for where, problem in sorted(s.plugin_catalog.problems.items()):
            log.warning("plugin %s not loaded: %s", where, problem)
        if view is None:
            return
        runner_ref = view.id[:8]
        if s.tags_given and s.tags != view.tags:
            log.warning(
                "this runner was started with tags %s, but the server has %s for it and "
                "the server's tags apply (tags are fixed at registration); an admin "
                "changes them with: rivet runner set-tags %s %s",
                _tags(s.tags),
                _tags(view.tags),
                runner_ref,
                " ".join(f"{k}={v}" for k, v in sorted(s.tags.items())) or "--clear",
            )
        unrecorded = sorted(set(s.plugins) - set(view.plugins))
        if unrecorded:
            log.warning(
                "this runtime provides plugins %s that the server has not recorded for this "
                "runner, so it is not handed jobs needing them; an admin adds them with: "
                "rivet runner set-plugins %s %s",
                ",".join(unrecorded),
                runner_ref,
                " ".join(sorted(set(s.plugins) | set(view.plugins))),
            )
        missing = sorted(set(view.plugins) - set(s.plugins))
        if missing:
            log.info("not offering plugins %s: this runtime lacks them", ",".join(missing))

    def _clean_earlier_lives(self) -> None:
        """Before the first claim: remove what an earlier life of this runner left
        (:mod:`rivet.runner.cleanup`) and have the server end its attempts."""
        if self.runner_id is None:
            return
        # Held for this process's life (the kernel drops it when the process dies,
        # SIGKILL included): another live process of this runner on this home — one
        # still draining — keeps its containers and jobs.
        self._home_lock = hold_lock(self.settings.workspace_root / RUNNER_LOCK)
        if self._home_lock is None:
            log.warning(
                "not cleaning up after earlier lives: another live runner process holds %s",
                self.settings.workspace_root / RUNNER_LOCK,
            )
            return
        backend = self.executor.backend
        if isinstance(backend, MeasuredBackend):  # the metrics' wrapper: clean the real one
            backend = backend.backend
        podman = backend if isinstance(backend, PodmanBackend) else None
        found = clean_earlier_lives(
            self.runner_id,
            self.settings.workspace_root,
            podman,
            self.executor.settings.secrets_root,
        )
        if found.any:
            log.warning(
                "cleaned up after an earlier life of this runner: jobs %s (%d container(s), "
                "%d workspace(s), %d secret dir(s) removed)",
                ", ".join(sorted(found.jobs)) or "none",
                found.containers,
                found.workspaces,
                found.secret_dirs,
            )
        try:
            answer = self.client.restarted(sorted(found.jobs))
        except RequestRejected as exc:  # a server that predates the report
            log.warning("could not report the restart to the server: %s", exc)
            return
        if answer.ended:
            log.warning(
                "the server ended the attempts this runner left running as lost: jobs %s",
                ", ".join(answer.ended),
            )

    def _start_job(self, assignment: JobAssignment) -> None:
        # The job's threads are made here and keep these ids in their log lines.
        with bind(runner_id=self.runner_id, job_id=assignment.job_id):
            self._start_run(assignment)

    def _start_run(self, assignment: JobAssignment) -> None:
        with self._lock:
            stale = [r for k, r in self._jobs.items() if k[0] == assignment.job_id]
        for old in stale:
            # The server ended that attempt (it handed us a new one): the old one must
            # not share the job's containers and workspace with the new one.
            log.warning(
                "job %s: attempt %d ended on the server; stopping it before attempt %d",
                old.job_id,
                old.attempt,
                assignment.attempt,
            )
            old.request_cancel(f"the server started attempt {assignment.attempt}")
            old.join(120)
        run = JobRun(
            assignment,
            self.client,
            self.executor,
            heartbeat_interval=self.settings.heartbeat_interval,
            shipper_settings=self.settings.shipper,
            give_up=self._give_up,
            on_done=self._job_done,
            owner=self.runner_id,
        )
        with self._lock:
            self._jobs[(run.job_id, run.attempt)] = run
            self.claimed.append(run.job_id)
            reason = self._cancel_reason
        log.info(
            "claimed job %s (%s v%d, attempt %d, lease %g s)",
            run.job_id,
            assignment.pipeline,
            assignment.version,
            assignment.attempt,
            assignment.lease_seconds,
        )
        run.start()
        if reason is not None:  # claimed while shutting down with cancellation
            run.request_cancel(reason)

    def _job_done(self, run: JobRun) -> None:
        status = run.result.status.value if run.result is not None else "failed"
        self.metrics.job_finished(status)
        with self._lock:
            self._jobs.pop((run.job_id, run.attempt), None)
            if self._stopping.is_set() and not self._jobs:
                self._done.set()
        self._slots.release()

    # --- registration ---------------------------------------------------------------

    def _ensure_registered(self) -> bool:
        return bool(self.client.token) or self._register()

    def _register(self) -> bool:
        try:
            runner_id = register_runner(self.client, self.settings, self._stopping)
        except RegistrationFailed as exc:
            self._fail(str(exc))
            return False
        if runner_id is None:
            return False
        if self.client.token:
            register_secret(self.client.token)  # the token just issued: masked in logs too
        self.runner_id = runner_id
        self._registered_now = True
        return True

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code = 1
        self.stop()


def _tags(tags: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tags.items())) or "none"


def _secure_files(settings: RunnerSettings) -> None:
    """The runner's own files private (see :mod:`rivet.home`): the workspace root 0700,
    the config file (it holds the token) and its directory tightened when too open.
    No process umask: it would reach the files pipelines write in their workspaces."""
    if settings.config_file.exists():
        make_private_dir(settings.config_file.parent)
        tighten(settings.config_file)
    make_private_dir(settings.workspace_root)


def _plain_logging() -> None:
    """Text lines on stderr, for an error before the settings say otherwise."""
    if not logging.getLogger().handlers:
        configure_logging("text", parse_levels("info"))


def _metrics_server(agent: Agent) -> MetricsServer | None:
    port = agent.settings.metrics_port
    if port is None:
        return None
    return MetricsServer(agent.metrics, agent.settings.metrics_host, port)


def run_runner(flags: Flags | None = None) -> int:
    """``rivet runner``: run an agent with the settings ``flags`` (by setting) and the
    rest of the chain give (:func:`rivet.runner.config.resolve_settings`) until
    signalled; returns the exit status (2 for a bad setting).

    SIGINT, SIGTERM or SIGHUP (:data:`rivet.stop_signals.STOP_SIGNALS`, any mix) once:
    stop claiming, finish running jobs. Twice: cancel them (their containers are
    removed, they report ``cancelled``). Three times: exit at once, even with logs or
    completions undelivered.
    """
    try:
        settings = resolve_settings(flags)
    except ConfigError as exc:
        _plain_logging()
        log.error("%s", exc)
        return 2
    if not logging.getLogger().handlers:  # a test may have set up its own
        configure_logging(settings.log_format, parse_levels(settings.log_level))
    for secret in (settings.token, settings.registration_token):
        if secret:
            register_secret(secret)
    try:
        _secure_files(settings)
        # Refuse an unsafe workspace root before claiming anything, not job by job.
        note = prepare_root(settings.workspace_root)
        if settings.policy.container.userns == "auto":
            check_subids()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot prepare %s: %s", exc.filename or "the runner's files", exc.strerror)
        return 2
    if note is not None:
        log.warning("%s", note)
    tracing.configure("rivet-runner")  # only with OTEL_EXPORTER_OTLP_ENDPOINT set
    agent = Agent(settings)
    try:
        metrics = _metrics_server(agent)
    except OSError as exc:
        log.error(
            "cannot serve metrics on %s port %s: %s",
            settings.metrics_host,
            settings.metrics_port,
            exc.strerror or exc,
        )
        agent.close()
        return 2
    signals = 0

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: stopping (again to cancel running jobs)", signal_name(signum))
            agent.stop()
        elif signals == 2:
            log.info("%s: cancelling the running jobs (again to exit at once)", signal_name(signum))
            agent.cancel_jobs("the runner is shutting down")
        else:
            log.warning("exiting now; undelivered logs and results are lost")
            agent.abort()

    try:
        with handling_stop_signals(on_signal):
            agent.start()
            while not agent.wait(0.5):
                pass
    finally:
        agent.close()
        if metrics is not None:
            metrics.close()
        tracing.shutdown()
    log.info("runner stopped")
    return agent.exit_code if not agent.aborted else 1
