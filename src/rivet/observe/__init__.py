"""Observability shared by the server and the runner: structured logs (``logs.py``:
one line per record as JSON or text, with the job, runner and request ids of the
context, secrets redacted), per-logger levels (``levels.py``) and the CPU and memory
of containers read from their cgroups (``cgroups.py``). Light imports only: every
process's start-up reads the settings, which use ``levels.py``."""
