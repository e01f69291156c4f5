"""``python -m rivet.runner``: the runner without the typer CLI (``rivet up`` uses it,
so a local runner does not depend on the rest of the command line).

Its flags are ``rivet runner``'s, built from the same declarations
(:data:`rivet.settings.flags.RUNNER_FLAGS`); the settings chain behind each is in
:mod:`rivet.runner.config`.
"""

from __future__ import annotations

import argparse
import sys

from rivet.runner.agent import run_runner
from rivet.settings import Flags
from rivet.settings.flags import RUNNER_FLAGS, add_arguments, flags_from


def parse_flags(argv: list[str] | None = None) -> Flags:
    parser = argparse.ArgumentParser(
        prog="python -m rivet.runner", description="Claim and run Rivet jobs."
    )
    add_arguments(parser, RUNNER_FLAGS)
    return flags_from(parser.parse_args(argv), RUNNER_FLAGS)


def main(argv: list[str] | None = None) -> int:
    return run_runner(parse_flags(argv))


if __name__ == "__main__":
    sys.exit(main())
