"""The ``artifacts`` group: where artifacts and uploaded sources are stored, their size
limits and how long they are kept (docs/artifacts.md). Declared beside
:mod:`rivet.settings.model`, which lists it in ``GROUPS``, to keep that module small."""

from __future__ import annotations

from rivet.settings.kinds import FilePath, Optional, Secret, Text, Whole
from rivet.settings.spec import Computed, Group, Setting

__all__ = ["ArtifactsGroup"]

MIB = 1024 * 1024


class ArtifactsGroup(Group, section="artifacts"):
    """Artifacts (``artifact.upload``/``download``) and job sources (``--source``): the
    server's store and limits; ``rivet run`` uses ``local_dir`` and the same limits."""

    store = Setting(
        Text(choices=("filesystem", "s3")),
        "filesystem",
        env="RIVET_ARTIFACT_STORE",
        help="where the server keeps artifact and source bytes: filesystem (under "
        "artifacts.path) or s3 (an S3-compatible object store, for several orchestrators)",
    )
    path = Setting(
        FilePath(),
        Computed(lambda home: home.artifacts, "$RIVET_HOME/artifacts"),
        env="RIVET_ARTIFACT_PATH",
        help="the filesystem store's directory (content-addressed, private)",
    )
    local_dir = Setting(
        FilePath(),
        Computed(lambda home: home.local_artifacts, "$RIVET_HOME/local-artifacts"),
        env="RIVET_LOCAL_ARTIFACTS",
        help="where rivet run keeps the artifacts of local jobs (<job>/<name>/...)",
    )
    s3_bucket = Setting(Optional(Text()), None, env="RIVET_S3_BUCKET", help="the s3 store's bucket")
    s3_endpoint = Setting(
        Optional(Text()),
        None,
        env="RIVET_S3_ENDPOINT",
        help="the s3 store's endpoint URL (MinIO, Ceph…)",
        default_text="AWS",
    )
    s3_region = Setting(Optional(Text()), None, env="RIVET_S3_REGION", help="the s3 region")
    s3_prefix = Setting(
        Optional(Text()),
        None,
        env="RIVET_S3_PREFIX",
        help="key prefix inside the bucket (e.g. rivet/)",
        default_text="none",
    )
    s3_access_key = Setting(
        Optional(Text()),
        None,
        env="RIVET_S3_ACCESS_KEY",
        help="the s3 access key id",
        default_text="boto3's credential chain",
    )
    s3_secret_key = Setting(
        Optional(Secret()),
        None,
        env="RIVET_S3_SECRET_KEY",
        help="the s3 secret access key",
        default_text="boto3's credential chain",
    )
    max_file_bytes = Setting(
        Whole(minimum=1),
        1024 * MIB,
        env="RIVET_ARTIFACT_MAX_FILE_BYTES",
        help="largest file one artifact may hold (bytes)",
    )
    max_job_bytes = Setting(
        Whole(minimum=1),
        4096 * MIB,
        env="RIVET_ARTIFACT_MAX_JOB_BYTES",
        help="most bytes all artifacts of one job may hold together",
    )
    max_source_bytes = Setting(
        Whole(minimum=1),
        256 * MIB,
        env="RIVET_MAX_SOURCE_BYTES",
        help="largest compressed source archive the server accepts (rivet job launch "
        "--source), and the most its files may unpack to is 8 times this",
    )
    retention_days = Setting(
        Whole(minimum=0),
        30,
        env="RIVET_ARTIFACT_RETENTION_DAYS",
        help="days an artifact is kept after its upload; 0 keeps artifacts forever",
    )
    cleanup_interval = Setting(
        Whole(minimum=1),
        600,
        env="RIVET_ARTIFACT_CLEANUP_SECONDS",
        help="how often each orchestrator removes expired artifacts and unused blobs (s)",
    )
