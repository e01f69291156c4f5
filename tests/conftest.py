"""Shared fixtures. Tests needing external tools skip locally when a tool is missing,
but fail under CI (``CI=true``), where a skip would hide a broken setup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

# Helpers shared by several test directories live in tests/support; the importlib
# import mode puts no test directory on sys.path, so add that one here.
SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

# `database_url`: SQLite and again PostgreSQL, for the store and orchestrator tests;
# `exec_agent`: the Podman backend's two exec paths, for the container tests.
pytest_plugins = ["databases", "exec_paths", "moto_s3"]

BUSYBOX_IMAGE = "localhost/rivet/busybox:latest"


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure; run scripts/setup.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def podman_available() -> str:
    """The podman binary, once it has been seen to run the busybox image."""
    podman = shutil.which("podman")
    if podman is None:
        unavailable("podman is not installed")
    try:
        proc = subprocess.run(
            [podman, "run", "--rm", "--pull", "never", BUSYBOX_IMAGE, "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"podman could not run {BUSYBOX_IMAGE} within 60 s")
    if proc.returncode != 0:
        unavailable(f"podman cannot run {BUSYBOX_IMAGE}: {proc.stderr.strip()[-300:]}")
    return podman


@pytest.fixture(scope="session")
def podman_image(podman_available: str) -> Callable[[str], str]:
    """``podman_image(name)`` returns ``name`` if that image exists locally, else skips/fails."""

    def require(image: str) -> str:
        proc = subprocess.run(
            [podman_available, "image", "exists", image],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            unavailable(f"local image {image} is missing")
        return image

    return require
