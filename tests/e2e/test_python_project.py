"""The proof of issue 11: examples/python-project through a real server and runner, on
SQLite and PostgreSQL. The project is a git repository the test makes (a commit, then
an uncommitted change, and an ignored file that must not travel); `rivet job launch
--source` uploads it, the runner unpacks it, the job tests it, builds a wheel and
uploads the wheel and a report; a second pipeline downloads the wheel through the
permission check and runs it; the CLI lists and downloads the artifacts (checked
byte for byte against the local files) and `rivet job show` names the commit and
the dirty flag."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from live_rivet import ADMIN_TOKEN, remove_job_containers, wait_for
from rivet_processes import Processes, rivet_env, run_cli

pytestmark = pytest.mark.podman

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "python-project"


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    env |= {"HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, str]:
    """The example in a git repository: committed, then changed, with an ignored file."""
    repo = tmp_path / "project"
    shutil.copytree(EXAMPLE, repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "democalc")
    commit = git(repo, "rev-parse", "HEAD")
    (repo / "NOTES.txt").write_text("an uncommitted, unignored file\n")
    (repo / "dist").mkdir()
    (repo / "dist" / "stale.whl").write_text("ignored by .gitignore: must not be uploaded\n")
    return repo, commit


def test_python_project_through_server_and_runner(
    database_url: str,
    project: tuple[Path, str],
    tmp_path: Path,
    podman_image,  # type: ignore[no-untyped-def]
) -> None:
    podman_image("localhost/rivet/debian-git:latest")
    repo, commit = project
    processes = Processes(tmp_path)
    jobs: list[str] = []
    try:
        rivet = processes.start_server(tmp_path / "home", RIVET_DATABASE_URL=database_url)
        rivet.api.close()  # the test drives the CLI
        url, env = rivet.url, rivet.env
        processes.start_runner(
            rivet_env(tmp_path / "runner-home", RIVET_SERVER=url, RIVET_ADMIN_TOKEN=ADMIN_TOKEN),
            "--name",
            "py-runner",
        )

        def cli(*args: str, stdout: bool = False) -> str:
            done = run_cli(list(args), env, timeout=300)
            assert done.returncode == 0, f"rivet {' '.join(args)}:\n{done.stdout}{done.stderr}"
            return done.stdout if stdout else done.stdout + done.stderr

        cli("pipeline", "create", str(repo / "build.lua"))
        cli("pipeline", "create", str(repo / "use-wheel.lua"))
        out = cli("job", "launch", "python-project", "--source", str(repo), "--quiet", stdout=True)
        build_id = out.strip()
        jobs.append(build_id)
        job = wait_for(lambda: _finished(env, build_id), 240, "the build job")
        assert job["status"] == "succeeded", cli("job", "logs", build_id)
        source = job["source_archive"]
        assert source["git_commit"] == commit and source["git_dirty"] is True
        shown = cli("job", "show", build_id)
        assert f"git {commit[:12]} (dirty: uncommitted changes)" in shown

        logs = cli("job", "logs", build_id)
        assert "source: unpacked" in logs
        assert "Ran 3 tests" in logs and "OK" in logs

        listed = json.loads(cli("job", "artifacts", build_id, "--json", stdout=True))
        names = {a["name"]: a for a in listed["artifacts"]}
        assert set(names) == {"wheel", "report"}
        wheel_files = [f["path"] for f in names["wheel"]["files"]]
        assert wheel_files == ["dist/democalc-0.1.0-py3-none-any.whl"]  # not stale.whl
        table = cli("job", "artifacts", build_id)
        assert "dist/democalc-0.1.0-py3-none-any.whl" in table

        out_dir = tmp_path / "downloaded"
        cli("artifact", "download", build_id, "wheel", "-o", str(out_dir))
        wheel = out_dir / "dist" / "democalc-0.1.0-py3-none-any.whl"
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert digest == names["wheel"]["files"][0]["sha256"]
        with zipfile.ZipFile(wheel) as zf:
            assert "democalc/__init__.py" in zf.namelist()
            assert "democalc-0.1.0.dist-info/RECORD" in zf.namelist()
        cli("artifact", "download", build_id, "report", "-o", str(out_dir))
        assert "OK" in (out_dir / "reports" / "tests.txt").read_text()

        use_id = cli("job", "launch", "python-project-consumer", "--quiet", stdout=True).strip()
        jobs.append(use_id)
        used = wait_for(lambda: _finished(env, use_id), 240, "the consumer job")
        assert used["status"] == "succeeded", cli("job", "logs", use_id)
        assert used["outputs"]["result"] == "democalc 0.1.0: sum = 42"
        assert f"from job {build_id}" in cli("job", "logs", use_id)
    finally:
        processes.stop_all()
        for job_id in jobs:
            remove_job_containers(job_id)


def _finished(env: dict[str, str], job_id: str) -> dict[str, object] | None:
    done = run_cli(["job", "show", job_id, "--json"], env)
    if done.returncode != 0:
        return None
    job: dict[str, object] = json.loads(done.stdout)
    return job if job["status"] in ("succeeded", "failed", "cancelled", "timed_out") else None
