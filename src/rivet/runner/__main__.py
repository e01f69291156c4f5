"""``python -m rivet.runner``: the runner without the typer CLI (``rivet up`` uses it,
so a local runner does not depend on the rest of the command line).

Same options as ``rivet runner``; see :mod:`rivet.runner.config` for the environment
variables and the config file behind each flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rivet.runner.agent import run_runner
from rivet.runner.config import RunnerOptions


def parse_options(argv: list[str] | None = None) -> RunnerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m rivet.runner", description="Claim and run Rivet jobs."
    )
    parser.add_argument("--server", help="orchestrator URL (RIVET_SERVER)")
    parser.add_argument("--token", help="runner token (RIVET_RUNNER_TOKEN)")
    parser.add_argument(
        "--registration-token", help="one-time registration token (RIVET_REGISTRATION_TOKEN)"
    )
    parser.add_argument("--name", help="runner name (default: the host name)")
    parser.add_argument("--tag", action="append", default=[], help="k=v, repeatable")
    parser.add_argument("--concurrency", type=int, help="jobs at once (default 1)")
    parser.add_argument("--workspace-root", type=Path)
    parser.add_argument("--default-image", help="default: RIVET_DEFAULT_IMAGE or alpine:latest")
    parser.add_argument("--config", type=Path, help="default: $RIVET_HOME/runner.toml")
    parser.add_argument("--policy", type=Path, help="runner policy file (RIVET_POLICY)")
    args = parser.parse_args(argv)
    return RunnerOptions(
        server=args.server,
        token=args.token,
        registration_token=args.registration_token,
        name=args.name,
        tags=tuple(args.tag),
        concurrency=args.concurrency,
        workspace_root=args.workspace_root,
        default_image=args.default_image,
        config_file=args.config,
        policy_file=args.policy,
    )


def main(argv: list[str] | None = None) -> int:
    return run_runner(parse_options(argv))


if __name__ == "__main__":
    sys.exit(main())
