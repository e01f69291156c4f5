"""Wire models of artifacts and job sources, re-exported by :mod:`rivet.protocol`.

Bytes never travel in these models: uploads and downloads are raw streamed bodies
(``application/octet-stream``), these describe them (docs/artifacts.md lists the
routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

__all__ = [
    "ArtifactFileView",
    "ArtifactList",
    "ArtifactView",
    "SourceInfo",
    "SourceUploaded",
]

Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Commit = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]


class SourceUploaded(BaseModel):
    """The answer to ``POST /api/sources``: the stored archive, to name at launch."""

    sha256: str
    size: int


class SourceInfo(BaseModel):
    """A job's source: the archive ``rivet job launch --source`` uploaded (by digest),
    and, when it was a git work tree, its commit and whether it had changes."""

    sha256: Digest = Field(description="SHA-256 of the tar.gz archive (POST /api/sources)")
    size: int = Field(ge=0, le=2**53, description="the archive's size in bytes")
    files: int = Field(ge=0, le=2**31 - 1, description="how many files it holds")
    git_commit: Commit | None = Field(default=None, description="HEAD of the work tree")
    git_dirty: bool | None = Field(
        default=None, description="true when the work tree had uncommitted changes"
    )


class ArtifactFileView(BaseModel):
    path: str = Field(description="relative to the job's workspace, as uploaded")
    size: int
    sha256: str
    mode: int = Field(default=0o644, description="permission bits (no setuid/setgid)")


class ArtifactView(BaseModel):
    job_id: str
    name: str
    created_at: datetime
    expires_at: datetime | None = Field(default=None, description="null: kept forever")
    size: int
    files: list[ArtifactFileView]


class ArtifactList(BaseModel):
    """``GET /api/jobs/{ref}/artifacts``; also what a runner learns of the artifact a
    job downloads (``job_id`` then names the job it comes from)."""

    job_id: str
    artifacts: list[ArtifactView]
