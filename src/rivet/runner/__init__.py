"""The runner: claims jobs from an orchestrator over HTTP and runs them with the executor.

Modules: :mod:`~rivet.runner.agent` (the claim loop, slots, shutdown),
:mod:`~rivet.runner.job` (one job: execute, heartbeat, complete),
:mod:`~rivet.runner.logs` (batched, retried log shipping),
:mod:`~rivet.runner.client` (the HTTP protocol), :mod:`~rivet.runner.registration`
(token exchange), :mod:`~rivet.runner.config` and
:mod:`~rivet.runner.config_file` (settings and the saved token),
:mod:`~rivet.runner.retry` (backoff, reachability logging). The runner never imports
the orchestrator or the store: it knows the server only through :mod:`rivet.protocol`.
"""
