"""``[container]`` policy: images, registries, pull policy, resource limits, network,
user namespaces.

Every job container gets the policy's memory, CPU and pids limits, its pull policy,
its network mode (a stage's ``network`` option may tighten it, or loosen it when
``allow_network_override`` is true) and its user namespace mode (``auto``: a private
range of ids per job under rootful Podman, so container root is not host root;
``host``: the runner's own ids). Image rules are checked before any Podman call.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rivet.engine.backends.base import ContainerOptions
from rivet.engine.policy.images import ImageRef, normalize_image
from rivet.engine.policy.sizes import MIN_MEMORY, memory_bytes
from rivet.engine.policy.violation import PolicyViolation

__all__ = ["DEFAULT_MEMORY", "DEFAULT_PIDS", "DEFAULT_USERNS", "ContainerPolicy", "image_matches"]

Network = Literal["none", "bridge"]
Cpus = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
# Fewer would starve the container's own init and the exec machinery.
Pids = Annotated[int, Field(ge=16, strict=True)]

# Enough for a large compile or test suite, yet a runaway job cannot take the host's
# memory; 1024 processes stop a fork bomb and leave room for parallel builds.
DEFAULT_MEMORY = "4g"
DEFAULT_PIDS = 1024
# See docs/runner-policy.md ("User namespaces") for the measured cost and the choice.
DEFAULT_USERNS: Literal["host", "auto"] = "auto"


def image_matches(pattern: str, image: ImageRef) -> bool:
    """A glob on the normalized reference; a pattern with neither tag nor digest
    (``docker.io/library/alpine``) also matches every tag of that repository."""
    return fnmatchcase(image.full, pattern) or fnmatchcase(image.repository, pattern)


class ContainerPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_memory: str | None = DEFAULT_MEMORY
    max_memory: str | None = None
    default_cpus: Cpus | None = None
    max_cpus: Cpus | None = None
    default_pids: Pids | None = DEFAULT_PIDS
    max_pids: Pids | None = None
    allowed_images: tuple[str, ...] | None = None
    denied_images: tuple[str, ...] = ()
    allowed_registries: tuple[str, ...] | None = None
    denied_registries: tuple[str, ...] = ()
    pull: Literal["never", "missing", "always"] = "missing"
    network: Network = "bridge"
    allow_network_override: Annotated[bool, Field(strict=True)] = True
    userns: Literal["host", "auto"] = DEFAULT_USERNS

    # -- validation of the policy file ------------------------------------------------

    @field_validator(
        "default_memory",
        "max_memory",
        "default_cpus",
        "max_cpus",
        "default_pids",
        "max_pids",
        mode="before",
    )
    @classmethod
    def _zero_is_none(cls, value: object) -> object:
        # TOML has no null: 0 (or "0") is how a policy file says "no limit".
        if isinstance(value, bool):
            return value
        return None if value in (0, "0") else value

    @field_validator("default_memory", "max_memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if memory_bytes(value) < MIN_MEMORY:
            raise ValueError(f"{value!r} is below Podman's minimum of 6m")
        return value.strip().lower()

    @field_validator("allowed_images", "denied_images")
    @classmethod
    def _image_patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            # Normalized references always contain '/', so this could never match: a
            # deny rule that silently matches nothing is worse than an error.
            if "/" not in pattern and "*" not in pattern:
                raise ValueError(
                    f"image pattern {pattern!r} can never match; patterns are matched "
                    f"against full references: write e.g. 'docker.io/library/{pattern}'"
                )
        return value

    @field_validator("allowed_registries", "denied_registries")
    @classmethod
    def _registry_patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for pattern in value or ():
            if not pattern.strip() or "/" in pattern:
                raise ValueError(
                    f"registry pattern {pattern!r} must be a host such as 'ghcr.io' or "
                    "'localhost:5000', without a path"
                )
        return tuple(p.lower() for p in value) if value is not None else None

    @model_validator(mode="after")
    def _defaults_within_maxima(self) -> ContainerPolicy:
        if (
            self.default_memory
            and self.max_memory
            and memory_bytes(self.default_memory) > memory_bytes(self.max_memory)
        ):
            raise ValueError(
                f"container.default_memory ({self.default_memory}) exceeds "
                f"container.max_memory ({self.max_memory})"
            )
        if self.max_memory and not self.default_memory:
            raise ValueError(
                f"container.default_memory is unlimited but container.max_memory is "
                f"{self.max_memory}; set a default_memory at or below it"
            )
        for name, default, maximum in (
            ("cpus", self.default_cpus, self.max_cpus),
            ("pids", self.default_pids, self.max_pids),
        ):
            if maximum is not None and default is None:
                raise ValueError(
                    f"container.default_{name} is unlimited but container.max_{name} is "
                    f"{maximum:g}; set a default_{name} at or below it"
                )
            if default is not None and maximum is not None and default > maximum:
                raise ValueError(
                    f"container.default_{name} ({default:g}) exceeds "
                    f"container.max_{name} ({maximum:g})"
                )
        return self

    # -- enforcement --------------------------------------------------------------------

    @property
    def has_image_rules(self) -> bool:
        return bool(
            self.allowed_images is not None
            or self.denied_images
            or self.allowed_registries is not None
            or self.denied_registries
        )

    def resolve_image(self, image: str) -> str:
        """The reference to hand to Podman for ``image``, once the image rules allow it.

        With any image or registry rule set, that is the normalized reference, so the
        image Podman runs is the one that was checked (a short name would otherwise be
        resolved through registries.conf, which may point elsewhere). Raises
        :class:`PolicyViolation` naming the rule.
        """
        try:
            ref = normalize_image(image)
        except ValueError as exc:
            raise PolicyViolation("container.image", str(exc)) from None
        if not self.has_image_rules:
            return image
        for pattern in self.denied_images:
            if image_matches(pattern, ref):
                raise self._refuse("container.denied_images", "forbids", ref, pattern)
        if self.allowed_images is not None and not any(
            image_matches(p, ref) for p in self.allowed_images
        ):
            raise self._refuse("container.allowed_images", "does not include", ref, None)
        for pattern in self.denied_registries:
            if fnmatchcase(ref.registry, pattern):
                raise self._refuse("container.denied_registries", "forbids", ref, pattern)
        if self.allowed_registries is not None and not any(
            fnmatchcase(ref.registry, p) for p in self.allowed_registries
        ):
            raise self._refuse("container.allowed_registries", "does not include", ref, None)
        return ref.full

    def options(self, *, readonly: bool = False, network: str | None = None) -> ContainerOptions:
        """Options for a container, with the policy's limits, pull policy and network.

        ``network`` is the stage's own request (``None``: the policy's default). Asking
        for ``none`` is always allowed; asking for ``bridge`` when the default is
        ``none`` needs ``allow_network_override``.
        """
        mode = network or self.network
        if mode != self.network and mode != "none" and not self.allow_network_override:
            rule = "container.allow_network_override"
            raise PolicyViolation(
                rule,
                f"network = {mode!r} is refused: policy {rule} is false and "
                f"container.network is {self.network!r}",
            )
        return ContainerOptions(
            readonly_workspace=readonly,
            network=mode,
            memory=self.default_memory,
            cpus=self.default_cpus,
            pids=self.default_pids,
            pull=self.pull,
            userns=self.userns,
        )

    def _refuse(self, rule: str, verb: str, ref: ImageRef, pattern: str | None) -> PolicyViolation:
        subject = f"image '{ref.full}'"
        if rule.endswith("_registries"):
            subject = f"registry '{ref.registry}' of {subject}"
            pattern = None if pattern == ref.registry else pattern
        elif pattern == ref.full:
            pattern = None
        if verb == "forbids":
            why = f" (rule '{pattern}')" if pattern is not None else ""
        else:
            allowed = getattr(self, rule.partition(".")[2]) or ()
            why = f" (allowed: {', '.join(allowed) or 'nothing'})"
        return PolicyViolation(rule, f"policy {rule} {verb} {subject}{why}")
