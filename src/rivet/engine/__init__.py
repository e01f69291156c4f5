"""Job execution: the executor, runtime modules bound into the sandbox, container backends."""
