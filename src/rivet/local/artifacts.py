"""``rivet run``'s artifacts: a plain directory per job, readable without Rivet.

Layout under ``artifacts.local_dir`` (default ``$RIVET_HOME/local-artifacts``)::

    <job id>/job.json                 {"pipeline": ..., "created_at": ...}
    <job id>/<name>/manifest.json     {"files": [{path, size, sha256, mode}, ...]}
    <job id>/<name>/files/<path>      the files, as uploaded

Each file is streamed to a temporary file beside its place, hashed on the way, and
renamed into place; the manifest is rewritten (atomically) after each upload, so a
reader sees a file listed only once it is complete. ``latest:PIPELINE`` is the
newest other local job of that pipeline holding the artifact. The size limits are
the server's settings (``artifacts.max_file_bytes``, ``max_job_bytes``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rivet.engine.artifacts import (
    ArtifactError,
    ArtifactManifest,
    FileWriter,
    StoredFile,
    UploadFile,
    check_artifact_name,
    check_artifact_path,
)

__all__ = ["LocalArtifacts"]

CHUNK = 1024 * 1024


def _write_json(path: Path, value: Any) -> None:
    temp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    temp.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(temp, path)


class LocalArtifacts:
    def __init__(
        self, root: Path, job_id: str, pipeline: str, max_file_bytes: int, max_job_bytes: int
    ) -> None:
        self.root = root
        self.job_id = job_id
        self.pipeline = pipeline
        self.max_file_bytes = max_file_bytes
        self.max_job_bytes = max_job_bytes
        self._stored = 0

    def _job_dir(self) -> Path:
        path = self.root / self.job_id
        if not path.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.mkdir(mode=0o700, exist_ok=True)
            created = datetime.now(UTC).isoformat()
            _write_json(path / "job.json", {"pipeline": self.pipeline, "created_at": created})
        return path

    def upload(self, name: str, files: Sequence[UploadFile]) -> ArtifactManifest:
        base = self._job_dir() / check_artifact_name(name)
        manifest_path = base / "manifest.json"
        current = {f.path: f for f in _read_manifest(manifest_path)}
        for file in files:
            path = check_artifact_path(file.path)
            target = base / "files" / path
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            stored = self._store(file, target, name)
            current[path] = StoredFile(path, stored[1], stored[0], file.mode)
        _write_json(
            manifest_path,
            {"files": [f.__dict__ for f in sorted(current.values(), key=lambda f: f.path)]},
        )
        return ArtifactManifest(self.job_id, name, sorted(current.values(), key=lambda f: f.path))

    def _store(self, file: UploadFile, target: Path, name: str) -> tuple[str, int]:
        temp = target.with_name(f".tmp-{uuid.uuid4().hex}")
        digest = hashlib.sha256()
        size = 0
        try:
            with file.open() as src, temp.open("xb") as dst:
                while chunk := src.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_file_bytes:
                        raise ArtifactError(
                            f"artifact '{name}': {file.path} is over {self.max_file_bytes} "
                            "bytes (setting artifacts.max_file_bytes)"
                        )
                    if self._stored + size > self.max_job_bytes:
                        raise ArtifactError(
                            f"artifact '{name}': {file.path} takes the job's artifacts over "
                            f"{self.max_job_bytes} bytes (setting artifacts.max_job_bytes)"
                        )
                    digest.update(chunk)
                    dst.write(chunk)
            os.chmod(temp, file.mode & 0o755 | 0o600)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self._stored += size
        return digest.hexdigest(), size

    def download(self, name: str, job: str, write: FileWriter) -> ArtifactManifest:
        check_artifact_name(name)
        source = self._find(name, job)
        base = self.root / source / name
        files = _read_manifest(base / "manifest.json")
        for file in files:
            path = base / "files" / check_artifact_path(file.path)
            with path.open("rb") as f:
                write(file, iter(lambda f=f: f.read(CHUNK), b""))  # type: ignore[misc]
        return ArtifactManifest(source, name, files)

    def _find(self, name: str, job: str) -> str:
        if job.startswith("latest:"):
            pipeline = job.removeprefix("latest:")
            best: tuple[str, str] | None = None
            for entry in self.root.iterdir() if self.root.is_dir() else []:
                if entry.name == self.job_id or not (entry / name / "manifest.json").is_file():
                    continue
                try:
                    info = json.loads((entry / "job.json").read_text())
                except (OSError, ValueError):
                    continue
                if info.get("pipeline") == pipeline:
                    key = (str(info.get("created_at", "")), entry.name)
                    best = key if best is None or key > best else best
            if best is None:
                raise ArtifactError(
                    f"no local job of pipeline '{pipeline}' has an artifact '{name}' "
                    f"(in {self.root}; run that pipeline first)"
                )
            return best[1]
        if "/" in job or job in ("", ".", "..") or not (self.root / job / name).is_dir():
            raise ArtifactError(f"local job {job[:80]!r} has no artifact '{name}' (in {self.root})")
        return job


def _read_manifest(path: Path) -> list[StoredFile]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest: {exc}") from None
    return [
        StoredFile(str(f["path"]), int(f["size"]), str(f["sha256"]), int(f.get("mode", 0o644)))
        for f in data.get("files", [])
    ]
