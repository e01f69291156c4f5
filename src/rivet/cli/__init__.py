"""The ``rivet`` command line (typer), one module per command group."""
