"""Runner policy: what pipeline code may do on this runner, from a TOML file.

One section per concern, each in the module named after its class
(``[http]`` is ``HttpPolicy`` in ``http_policy``); every refusal is a clear error
naming the rule (``policy: process.denied_binaries forbids 'curl'``). Loaded once
per runner process (``rivet runner --policy FILE`` / ``RIVET_POLICY``, or the
``[policy]`` of ``rivet run --policy FILE``) and passed down in ``ExecutorSettings``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from rivet.engine.policy.container_policy import ContainerPolicy
from rivet.engine.policy.errors import describe_error
from rivet.engine.policy.fs_policy import FsPolicy
from rivet.engine.policy.http_policy import HttpPolicy
from rivet.engine.policy.plugin_policy import ArchivePolicy, PluginsPolicy
from rivet.engine.policy.process_policy import ProcessPolicy
from rivet.errors import ConfigError

__all__ = [
    "ArchivePolicy",
    "ContainerPolicy",
    "FsPolicy",
    "HttpPolicy",
    "PluginsPolicy",
    "Policy",
    "ProcessPolicy",
]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    process: ProcessPolicy = ProcessPolicy()
    container: ContainerPolicy = ContainerPolicy()
    http: HttpPolicy = HttpPolicy()
    fs: FsPolicy = FsPolicy()
    plugins: PluginsPolicy = PluginsPolicy()
    archive: ArchivePolicy = ArchivePolicy()

    @classmethod
    def load(cls, path: Path) -> Policy:
        """Read a policy file; errors name the file and the offending key."""
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read policy file: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        nested = isinstance(data.get("policy"), dict)
        try:
            return cls.model_validate(data["policy"] if nested else data)
        except ValidationError as exc:
            prefix = ("policy",) if nested else ()
            problems = "; ".join(describe_error(cls, err, prefix) for err in exc.errors())
            raise ConfigError(f"{path}: {problems}") from None
