"""Container backends behind one interface: ``base.ContainerBackend``."""
