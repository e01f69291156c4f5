"""Errors a Rivet user can act on.

Every user-facing failure is a subclass of :class:`RivetError` whose message says
what was wrong, where (file, line, field, input name) and, where it helps, how to
fix it. The CLI prints ``str(error)`` on one line and never a traceback for these;
the server turns them into HTTP answers in ``rivet.orchestrator.http_errors`` alone.
The classes shared by several parts of Rivet are defined here; a class that only
one part raises is defined beside that code (its module under ``rivet`` in
brackets, which holds its subclasses too), under the node it belongs to.
``tests/unit/test_error_tree.py`` holds this drawing to the code.

    RivetError
    ├── DefinitionError          a pipeline file failed validation (one or more problems)
    ├── InputError               launch-time inputs were rejected (names every bad input)
    ├── LuaError                 pipeline code raised at run time (file:line in the message)
    │   ├── ResourceLimitError   a Lua memory cap or CPU budget was exceeded
    │   └── PluginError          [engine.plugins] a listed plugin is denied, missing or broken
    ├── ContainerError           a container could not be started or used
    │   ├── AgentGone            [engine.agent.client] a container's exec agent is unusable
    │   └── ProtocolError        [engine.agent.protocol] an exec agent broke its protocol
    ├── ConfigError              a settings value or config file is invalid
    │   └── SettingError         [settings.spec] one setting's value, named by its source
    ├── NotFoundError            a named object (pipeline, job, runner…) does not exist
    ├── ConflictError            the request contradicts current state (a finished job…)
    │   ├── AmbiguousIdError     an id prefix matches more than one object
    │   └── AttemptEnded         [orchestrator.services.endings] a late report on an ended attempt
    ├── InvalidRequest           a request field breaks a rule of the API (names every field)
    ├── RequestTooLarge          a request body is over the server's size limit
    ├── StorageUnavailable       the database cannot be reached or used right now (retry)
    │   ├── StorageFull          the database has no space left (disk full): nothing stored
    │   ├── BlobStoreError       [blobstore.base] the artifact store cannot be used right now
    │   └── BlobBeingDeleted     [store.artifacts] a cleanup is removing the blob an upload needs
    ├── AuthenticationError      a request lacks a valid bearer token (HTTP 401)
    │   └── RunnerRemoved        [orchestrator.services.runners] the runner was removed
    ├── PermissionDeniedError    the caller may not touch this object (HTTP 403)
    ├── ApiError                 the server answered with an error (client side)
    ├── EnvNameError             [domain.env_names] not an environment-variable name
    ├── SecretRuleError          [domain.secret_rules] a secret name, value or grant is refused
    ├── PolicyViolation          [engine.policy.violation] the runner policy forbids it
    ├── ArtifactError            [engine.artifacts] an artifact cannot be stored or fetched
    ├── ArchiveError             [engine.archives] an archive entry is unsafe, or a bomb
    ├── SecretDecryptError       [orchestrator.keyring] a stored secret does not decrypt
    ├── ServerUnreachableError   [client.api] the CLI cannot reach the server
    ├── RegistrationFailed       [runner.registration] the runner could not register
    ├── RunnerClientError        [runner.client] a runner request failed
    │   ├── ServerUnavailable    no usable answer: retry with backoff
    │   ├── TokenRejected        the runner or registration token is not valid
    │   ├── JobGone              the job is no longer this runner's
    │   │   └── AttemptRefused   409: the server ended this attempt; stop the job
    │   └── RequestRejected      the request itself is wrong
    │       └── BodyTooLarge     over the server's size limit: a smaller one may pass
    ├── UsageProblem             [cli.common] the command line is wrong (exit 2)
    └── Crashed                  [supervisor.process] a supervised process ended

Not RivetErrors, because none reaches a user as itself (each becomes a
``LuaError`` at the pipeline's line, with its message):

    LuaCallError                 [lua.sandbox] a Rivet function called from Lua refuses
    JailError                    [engine.modules.fs_module.jail] a path leaves the workspace
    └── MissingError             [engine.modules.fs_module.jail] a path does not exist
    ResolveError                 [engine.modules.http_module.transport] a name does not resolve
    UnsupportedEncoding          [engine.modules.http_module.body] a body cannot be decoded
    RateLimited                  [engine.modules.http_module.rate_limit] the bucket is empty
    _Failure                     [engine.modules.http_module.api] an HTTP call failed
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AmbiguousIdError",
    "ApiError",
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "ContainerError",
    "DefinitionError",
    "InputError",
    "InvalidRequest",
    "LuaError",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "RequestTooLarge",
    "ResourceLimitError",
    "RivetError",
    "StorageUnavailable",
]


class RivetError(Exception):
    """Base of every error whose message is meant for the user."""


@dataclass(frozen=True)
class Problem:
    """One validation problem: a field path (``stages[2].condition``), a message, a line."""

    path: str
    message: str
    line: int | None = None

    def render(self, file: str | None = None) -> str:
        where = file or ""
        if self.line is not None and where:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.path) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "message": self.message, "line": self.line}


class DefinitionError(RivetError):
    """A pipeline file is not a valid definition; carries every problem found."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(p.render(file) for p in problems))

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "problems": [p.to_dict() for p in self.problems],
            "messages": [p.render(self.file) for p in self.problems],
        }


class InputError(RivetError):
    """Launch inputs were rejected; ``problems`` maps each bad input name to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(sorted(problems.items()))
        detail = "; ".join(f"{name}: {why}" for name, why in self.problems.items())
        super().__init__(f"invalid inputs: {detail}")


class LuaError(RivetError):
    """Pipeline code raised an error; the message starts with ``file:line:`` when known."""


class ResourceLimitError(LuaError):
    """Pipeline code hit its memory cap or Lua CPU budget and was stopped."""


class ContainerError(RivetError):
    """A container could not be created, started or used."""


class ConfigError(RivetError):
    """A setting, flag or config file has an invalid value."""


class NotFoundError(RivetError):
    """A pipeline, job, runner or other named object does not exist."""


class ConflictError(RivetError):
    """The request contradicts the current state (ambiguous prefix, finished job…)."""


class AmbiguousIdError(ConflictError):
    """An id prefix matches more than one object; ``matches`` says how many."""

    def __init__(self, kind: str, prefix: str, matches: int) -> None:
        self.kind = kind
        self.prefix = prefix
        self.matches = matches
        super().__init__(
            f"{kind} id prefix {prefix!r} is ambiguous: it matches {matches} {kind}s; "
            "type more characters"
        )


class InvalidRequest(RivetError):
    """Request fields break rules of the API; ``problems`` lists ``(field, why)``, the
    field as a path like ``body.inputs.name`` or ``query.pipeline``. Never holds values."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("invalid request: " + "; ".join(f"{f}: {why}" for f, why in problems))


class RequestTooLarge(RivetError):
    """A request body is larger than ``limit`` bytes, the value of server setting ``setting``."""

    def __init__(self, limit: int, setting: str) -> None:
        self.limit = limit
        self.setting = setting
        super().__init__(
            f"request body too large: the server accepts at most {limit} bytes "
            f"({limit / 1048576:.1f} MiB; server setting {setting})"
        )


class StorageUnavailable(RivetError):
    """The database cannot be reached or used right now (down, restarting, unreadable);
    the same request may succeed later. The message (shown to API clients) names only
    the kind of database; ``reason`` (for the server log) says where and why."""

    def __init__(self, dialect: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"the {dialect} database is unavailable right now; try again shortly "
            "(the server log says why)"
        )


class StorageFull(StorageUnavailable):
    """The database has no space left (disk or database full): the write was not made,
    and the same request succeeds once space is freed (HTTP 507)."""

    def __init__(self, dialect: str, reason: str) -> None:
        super().__init__(dialect, reason)
        self.args = (
            f"the server's {dialect} database has no space left (disk full); nothing was "
            "stored; retry once an administrator frees space (the server log says where)",
        )


class AuthenticationError(RivetError):
    """A request lacks a valid bearer token (HTTP 401)."""


class PermissionDeniedError(RivetError):
    """An authenticated caller may not touch this object (HTTP 403)."""


class ApiError(RivetError):
    """The Rivet server answered with an error status."""

    def __init__(self, status: int, message: str, detail: object = None) -> None:
        self.status = status
        self.detail = detail
        super().__init__(message)
