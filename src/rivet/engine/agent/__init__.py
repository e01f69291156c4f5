"""The exec agent: a small static C program (``rivet-agent.c``) that runs inside each
job container and forks the job's commands on request, so that a command costs a
fork instead of a whole ``podman exec``. ``protocol`` is its wire format, ``build``
compiles and caches it, ``client`` talks to one running agent; the Podman backend
uses them through :mod:`rivet.engine.backends.podman_agent`."""
