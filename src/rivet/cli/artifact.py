"""``rivet artifact download``, ``rivet job artifacts`` and the upload behind ``rivet job
launch --source`` (docs/artifacts.md). Bytes stream; large transfers show a progress
bar on a terminal."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from rivet.cli import common
from rivet.cli.common import err_console, out_console, resolve_admin_token, resolve_server
from rivet.cli.options import JsonOption
from rivet.cli.remote import ServerOption, format_ts
from rivet.cli.terminal import echo_json, safe
from rivet.domain.artifact_rules import artifact_path_problem
from rivet.errors import RivetError

if TYPE_CHECKING:
    from rivet.client.artifacts import ArtifactClient
    from rivet.protocol import ArtifactList, JobView, SourceInfo

__all__ = ["app", "artifact_client", "artifacts_command", "source_line", "upload_source_dir"]

app = typer.Typer(no_args_is_help=True, help="Files jobs stored with artifact.upload.")

# Transfers smaller than this show no progress bar.
PROGRESS_FROM = 4 * 1024 * 1024


def artifact_client(server: str | None) -> ArtifactClient:
    from rivet.client.artifacts import ArtifactClient  # httpx is heavy: load it on use

    return ArtifactClient(resolve_server(server), admin_token=resolve_admin_token(None))


@contextlib.contextmanager
def _progress(total: int, what: str, console: Console) -> Iterator[Callable[[int], None] | None]:
    if total < PROGRESS_FROM or not common.is_interactive():
        yield None
        return
    columns = ("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def upload_source_dir(client: ArtifactClient, directory: Path, err: Console) -> SourceInfo:
    """Pack ``directory`` (:mod:`rivet.local.sources`) and upload it; what to launch with."""
    from rivet.local.sources import list_source, pack
    from rivet.protocol import SourceInfo

    tree = list_source(directory)
    with tempfile.TemporaryFile() as spooled:
        total = sum((tree.root / f).lstat().st_size for f in tree.files)
        with _progress(total, "packing", err) as advance:
            packed = pack(tree, spooled, progress=advance)
        spooled.seek(0)
        with _progress(packed.size, "uploading", err) as advance:
            uploaded = client.upload_source(spooled, packed.size, advance)
    err.print(safe(f"source: {tree.describe()}, {packed.size} bytes packed", "dim"))
    return SourceInfo(
        sha256=uploaded.sha256,
        size=uploaded.size,
        files=packed.files,
        git_commit=tree.git_commit,
        git_dirty=tree.git_dirty,
    )


def source_line(view: JobView) -> str | None:
    """``rivet job show``'s line about the job's source, if it has one."""
    source = view.source_archive
    if source is None:
        return None
    text = f"{source.files} files, {source.size} bytes, sha256 {source.sha256[:12]}"
    if source.git_commit:
        text += f", git {source.git_commit[:12]}"
        if source.git_dirty:
            text += " (dirty: uncommitted changes)"
    elif source.git_dirty is not None:
        text += ", git (no commit)"
    return text


def _table(found: ArtifactList, utc: bool) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("artifact", "path", "size", "sha256", "expires"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for artifact in found.artifacts:
        for file in artifact.files:
            table.add_row(
                safe(artifact.name),
                safe(file.path),
                str(file.size),
                file.sha256[:16],
                format_ts(artifact.expires_at, utc) if artifact.expires_at else "never",
            )
    return table


def artifacts_command(job: str, server: str | None, as_json: bool, utc: bool) -> None:
    with artifact_client(server) as client:
        found = client.list_artifacts(job)
    if as_json:
        echo_json(found.model_dump(mode="json"))
        return
    out = out_console()
    if not found.artifacts:
        out.print(f"job {found.job_id} has no artifacts")
        return
    out.print(_table(found, utc))


@app.command("download")
def download(
    job: Annotated[str, typer.Argument(help="job id or a unique prefix", show_default=False)],
    name: Annotated[str, typer.Argument(help="the artifact's name", show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            envvar="RIVET_ARTIFACT_OUTPUT",
            help="directory to write the files into",
        ),
    ] = Path("."),
    server: ServerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download artifact NAME of JOB into a directory (default: the current one).

    Files keep the paths they were uploaded with (dist/x.whl lands in OUTPUT/dist/x.whl);
    each is checked against its size and SHA-256 before it is renamed into place, and
    an interrupted transfer resumes where it stopped.

    Example: rivet artifact download 3f2a9c wheel -o dist/
    """
    err = err_console()
    with artifact_client(server) as client:
        found = client.list_artifacts(job)
        chosen = [a for a in found.artifacts if a.name == name]
        if not chosen:
            known = ", ".join(a.name for a in found.artifacts) or "none"
            raise RivetError(f"job {found.job_id} has no artifact '{name}' (it has: {known})")
        artifact = chosen[0]
        for file in artifact.files:
            problem = artifact_path_problem(file.path)
            if problem is not None:  # the server checks too; never write outside OUTPUT
                raise RivetError(f"artifact '{name}': {problem}")
        with _progress(artifact.size, f"downloading {name}", err) as advance:
            for file in artifact.files:
                target = output / file.path
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download(found.job_id, name, file, target, advance)
    if as_json:
        echo_json(artifact.model_dump(mode="json"))
        return
    out = out_console()
    for file in artifact.files:
        out.print(safe(f"{output / file.path}  {file.size} bytes  sha256 {file.sha256}"))
