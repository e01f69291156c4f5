"""What a job's ``artifact.*`` calls reach: the :class:`JobArtifacts` contract, and the
rules every implementation shares (artifact names, file paths inside an artifact).

Two implementations: ``rivet run`` keeps artifacts in a local directory
(:mod:`rivet.local.artifacts`), the runner sends them to its server
(:mod:`rivet.runner.artifacts`). The engine only gathers files from the workspace
(through the fs jail) and writes downloaded ones back into it; where bytes go, size
limits and permissions are the implementation's (and the server's) business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from rivet.domain.artifact_rules import artifact_name_problem, artifact_path_problem
from rivet.errors import RivetError

__all__ = [
    "ArtifactError",
    "ArtifactManifest",
    "FileWriter",
    "JobArtifacts",
    "StoredFile",
    "UploadFile",
    "check_artifact_name",
    "check_artifact_path",
]


class ArtifactError(RivetError):
    """An artifact cannot be stored or fetched: too large, not found, not permitted,
    the server unreachable. The message says which and names the artifact."""


def check_artifact_name(name: object) -> str:
    """``name`` if it is an artifact name (:mod:`rivet.domain.artifact_rules`)."""
    problem = artifact_name_problem(name)
    if problem is not None:
        raise ArtifactError(problem)
    assert isinstance(name, str)
    return name


def check_artifact_path(path: str) -> str:
    """``path`` if it can name a file inside an artifact (the domain rule)."""
    problem = artifact_path_problem(path)
    if problem is not None:
        raise ArtifactError(problem)
    return path


@dataclass(frozen=True)
class UploadFile:
    """A workspace file to upload: ``open()`` gives it open for reading (the jail
    opened it without following links); ``path`` is its workspace-relative name."""

    path: str
    size: int
    mode: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int
    sha256: str
    mode: int = 0o644


@dataclass(frozen=True)
class ArtifactManifest:
    job_id: str
    name: str
    files: list[StoredFile]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


# Writes one downloaded file (its chunks) to its place in the workspace.
FileWriter = Callable[[StoredFile, Iterator[bytes]], None]


class JobArtifacts(Protocol):
    """Artifacts as one job sees them. Thread-safe; raises :class:`ArtifactError`."""

    def upload(self, name: str, files: Sequence[UploadFile]) -> ArtifactManifest:
        """Store ``files`` as (or into) this job's artifact ``name``."""
        ...

    def download(self, name: str, job: str, write: FileWriter) -> ArtifactManifest:
        """Fetch artifact ``name`` of ``job`` (an id or ``latest:PIPELINE``), handing
        each file to ``write``; what was fetched."""
        ...


class NoArtifacts:
    """Where artifacts are not available (a test's executor without a store)."""

    def upload(self, name: str, files: Sequence[UploadFile]) -> ArtifactManifest:
        raise ArtifactError("artifacts are not available to this job (no artifact store)")

    def download(self, name: str, job: str, write: FileWriter) -> ArtifactManifest:
        raise ArtifactError("artifacts are not available to this job (no artifact store)")
