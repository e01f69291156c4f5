"""``artifact.upload`` / ``artifact.download`` through the real executor and fs jail
(fake container backend), with rivet run's local store; hostile inputs included."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fake_jobs import run_job, stage

from rivet.local.artifacts import LocalArtifacts


def store(tmp_path: Path, job_id: str = "current", **limits: int) -> LocalArtifacts:
    return LocalArtifacts(
        tmp_path / "artifacts",
        job_id,
        "t",
        limits.get("max_file_bytes", 10**6),
        limits.get("max_job_bytes", 10**7),
    )


def failed_with(job, text: str) -> None:  # type: ignore[no-untyped-def]
    assert job.result.status == "failed", job.result
    assert text in (job.result.error or ""), job.result.error


def test_upload_then_download_in_another_job(tmp_path: Path) -> None:
    first = run_job(
        tmp_path,
        stage(
            "make",
            'fs.mkdir("dist/sub", { parents = true }); fs.write("dist/a.whl", "wheel");'
            'fs.write("dist/sub/b.txt", "b"); fs.write("other.txt", "no")\n'
            'local r = artifact.upload("wheel", { "dist/*.whl", "dist/sub" })\n'
            "assert(#r.files == 2 and r.size == 6, r.size)\n"
            'assert(r.files[1].path == "dist/a.whl")\n'
            'assert(r.files[1].sha256 == "'
            + __import__("hashlib").sha256(b"wheel").hexdigest()
            + '")',
        ),
        artifacts=store(tmp_path, "first"),
    )
    assert first.result.status == "succeeded", first.result
    manifest = json.loads((tmp_path / "artifacts/first/wheel/manifest.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["dist/a.whl", "dist/sub/b.txt"]
    second = run_job(
        tmp_path,
        stage(
            "take",
            'local r = artifact.download("wheel", { job = "latest:t", to = "deps" })\n'
            'assert(r.job == "first")\n'
            'assert(fs.read("deps/dist/a.whl") == "wheel")\n'
            'assert(fs.read("deps/dist/sub/b.txt") == "b")',
        ),
        artifacts=store(tmp_path, "second"),
    )
    assert second.result.status == "succeeded", second.result


def test_a_symlink_is_refused_naming_it(tmp_path: Path) -> None:
    def plant(workspace: Path) -> None:
        os.symlink("/etc/passwd", workspace / "leak")

    job = run_job(
        tmp_path,
        stage("up", 'artifact.upload("x", { "leak" })'),
        artifacts=store(tmp_path),
        fill_workspace=plant,
    )
    failed_with(job, "artifact.upload: 'leak' is a symlink: an artifact holds regular files only")
    assert not (tmp_path / "artifacts" / "current" / "x" / "files" / "leak").exists()


def test_globs_stay_in_the_workspace(tmp_path: Path) -> None:
    job = run_job(
        tmp_path, stage("up", 'artifact.upload("x", { "../*" })'), artifacts=store(tmp_path)
    )
    failed_with(job, "artifact.upload: '../*' is outside the workspace")
    absolute = run_job(
        tmp_path, stage("up", 'artifact.upload("x", "/etc/passwd")'), artifacts=store(tmp_path)
    )
    assert absolute.result.status == "failed"


def test_no_match_bad_name_and_bad_options_say_what_is_wrong(tmp_path: Path) -> None:
    failed_with(
        run_job(
            tmp_path, stage("a", 'artifact.upload("x", "dist/*.whl")'), artifacts=store(tmp_path)
        ),
        "artifact.upload: 'dist/*.whl' matches no file",
    )
    failed_with(
        run_job(tmp_path, stage("a", 'artifact.upload("../x", "a")'), artifacts=store(tmp_path)),
        "artifact name '../x' is not valid",
    )
    failed_with(
        run_job(
            tmp_path, stage("a", 'artifact.download("x", { jobs = 1 })'), artifacts=store(tmp_path)
        ),
        "unknown option 'jobs' (known: job, to)",
    )
    failed_with(
        run_job(
            tmp_path,
            stage("a", 'artifact.download("x", { job = "latest:none" })'),
            artifacts=store(tmp_path),
        ),
        "no local job of pipeline 'none' has an artifact 'x'",
    )


def test_a_tampered_manifest_cannot_write_outside_the_target(tmp_path: Path) -> None:
    base = tmp_path / "artifacts" / "evil" / "x"
    (base / "files").mkdir(parents=True)
    (base / "manifest.json").write_text(
        json.dumps({"files": [{"path": "../../escape", "size": 1, "sha256": "0" * 64}]})
    )
    job = run_job(
        tmp_path, stage("a", 'artifact.download("x", { job = "evil" })'), artifacts=store(tmp_path)
    )
    failed_with(job, "is not a relative file path inside an artifact")


def test_limits_and_read_only_stages(tmp_path: Path) -> None:
    failed_with(
        run_job(
            tmp_path,
            stage("a", 'fs.write("big", string.rep("x", 2000)); artifact.upload("x", "big")'),
            artifacts=store(tmp_path, max_file_bytes=1000),
        ),
        "big is over 1000 bytes (setting artifacts.max_file_bytes)",
    )
    failed_with(
        run_job(
            tmp_path,
            stage("a", 'artifact.download("x", { job = "latest:t" })', "readonly = true,"),
            artifacts=store(tmp_path),
        ),
        "is read-only (readonly = true): it cannot download",
    )


def test_without_a_store_the_error_says_so(tmp_path: Path) -> None:
    failed_with(
        run_job(tmp_path, stage("a", 'fs.write("f", "x"); artifact.upload("x", "f")')),
        "artifacts are not available to this job",
    )
