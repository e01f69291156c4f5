"""Container backends behind one interface (:class:`rivet.engine.backends.base.ContainerBackend`)."""
