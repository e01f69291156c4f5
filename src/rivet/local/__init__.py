"""Running pipelines on this machine, without a server.

:mod:`.run` is the use case behind ``rivet run`` (and, later, the web UI's local
runs): load a pipeline file under a policy, check its inputs, ready a workspace, run
it with the executor and the Podman backend, report through an events sink.
:mod:`.source` reads pipeline files with errors naming them (``rivet check`` and
``rivet pipeline create`` use it too). Importing this package loads nothing heavy;
:mod:`.run` loads the engine.
"""
