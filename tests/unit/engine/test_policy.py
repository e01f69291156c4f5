"""The [process] and [container] runner policy: parsing, matching, refusals, load errors.

Pure model tests; that the rules are enforced on real containers is in
tests/integration/engine/test_process_policy.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rivet.engine.backends.base import ContainerOptions
from rivet.engine.policy import ContainerPolicy, Policy, ProcessPolicy
from rivet.engine.policy.images import normalize_image
from rivet.engine.policy.process_policy import binary_matches
from rivet.engine.policy.sizes import memory_bytes
from rivet.engine.policy.violation import PolicyViolation
from rivet.errors import ConfigError
from rivet.runner.config import resolve_settings
from rivet.settings import JobsGroup

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "runner-policy.toml"


def load(tmp_path: Path, text: str) -> Policy:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return Policy.load(path)


def load_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'policy.toml'}: "), message
    assert "\n" not in message and "Traceback" not in message
    return message


# --- defaults -------------------------------------------------------------------------


def test_defaults_are_bounded_but_permissive() -> None:
    policy = Policy()
    assert policy.process.allowed_binaries is None
    assert policy.process.denied_binaries == ()
    assert policy.process.default_timeout == 3600
    assert policy.process.max_timeout == 21600
    options = policy.container.options()
    assert options == ContainerOptions(
        network="bridge", memory="4g", cpus=None, pids=1024, pull="missing", userns="auto"
    )


def test_the_example_policy_file_loads_and_states_every_key_and_default() -> None:
    policy = Policy.load(EXAMPLE)
    text = EXAMPLE.read_text()
    for section, model in (("process", ProcessPolicy), ("container", ContainerPolicy)):
        assert f"[{section}]" in text
        for key in model.model_fields:
            assert f"{key} =" in text, f"examples/runner-policy.toml does not show {key}"
    # The example only uncomments what it changes; the rest are the documented defaults.
    assert policy.container.pull == "missing"


# --- process.* ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "argv0", "expected"),
    [
        ("curl", "curl", True),
        ("curl", "/usr/bin/curl", True),
        ("curl", "./curl", True),
        ("curl", "/usr/bin/../bin/curl", True),
        ("curl", "curl-config", False),
        ("curl", "xcurl", False),
        ("python3*", "/usr/bin/python3.11", True),
        ("/usr/bin/git", "/usr/bin/git", True),
        ("/usr/bin/git", "/usr//bin/./git", True),
        ("/usr/bin/git", "git", False),
        ("/usr/bin/git", "/tmp/git", False),
        ("/opt/*/bin/*", "/opt/tool/bin/run", True),
        ("sh", "/bin/sh", True),
        ("sh", "bash", False),
    ],
)
def test_binary_patterns_match_basename_or_full_path(
    pattern: str, argv0: str, expected: bool
) -> None:
    assert binary_matches(pattern, argv0) is expected


@pytest.mark.parametrize("argv0", ["curl", "/usr/bin/curl", "./curl", "../workspace/curl"])
def test_hostile_denied_binary_by_any_path_is_refused(argv0: str) -> None:
    policy = ProcessPolicy(denied_binaries=("wget", "curl"))
    with pytest.raises(PolicyViolation) as info:
        policy.check_binary(argv0)
    assert info.value.rule == "process.denied_binaries"
    assert f"policy process.denied_binaries forbids '{argv0}'" in str(info.value)


def test_denied_wins_over_allowed() -> None:
    policy = ProcessPolicy(allowed_binaries=("sh", "curl"), denied_binaries=("curl",))
    policy.check_binary("sh")
    with pytest.raises(PolicyViolation, match=re.escape("process.denied_binaries forbids 'curl'")):
        policy.check_binary("curl")


def test_hostile_binary_missing_from_the_allow_list_is_refused() -> None:
    policy = ProcessPolicy(allowed_binaries=("make", "/usr/bin/git"))
    policy.check_binary("/usr/local/bin/make")
    policy.check_binary("/usr/bin/git")
    for argv0 in ("git", "/tmp/git", "sh"):
        with pytest.raises(PolicyViolation) as info:
            policy.check_binary(argv0)
        assert str(info.value) == (
            f"policy process.allowed_binaries does not include '{argv0}' "
            "(allowed: make, /usr/bin/git)"
        )


def test_an_empty_allow_list_allows_nothing() -> None:
    with pytest.raises(PolicyViolation, match=r"\(allowed: nothing\)"):
        ProcessPolicy(allowed_binaries=()).check_binary("true")


def test_timeout_default_applies_and_max_refuses() -> None:
    policy = ProcessPolicy(default_timeout=60, max_timeout=3600)
    assert policy.timeout_for(None) == 60
    assert policy.timeout_for(3600) == 3600
    with pytest.raises(PolicyViolation) as info:
        policy.timeout_for(7200)
    assert str(info.value) == "timeout 7200 s exceeds policy process.max_timeout (3600 s)"
    assert info.value.rule == "process.max_timeout"


def test_zero_turns_a_timeout_off(tmp_path: Path) -> None:
    policy = load(tmp_path, "[process]\ndefault_timeout = 0\nmax_timeout = 0\n").process
    assert policy.timeout_for(None) is None
    assert policy.timeout_for(10**9) == 10**9


# --- container images -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "full", "registry"),
    [
        ("alpine", "docker.io/library/alpine:latest", "docker.io"),
        ("alpine:3.19", "docker.io/library/alpine:3.19", "docker.io"),
        ("library/alpine", "docker.io/library/alpine:latest", "docker.io"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7", "docker.io"),
        ("index.docker.io/evil", "docker.io/library/evil:latest", "docker.io"),
        ("localhost/rivet/busybox:latest", "localhost/rivet/busybox:latest", "localhost"),
        ("LOCALHOST:5000/a/b", "localhost:5000/a/b:latest", "localhost:5000"),
        ("ghcr.io/o/app:1.2", "ghcr.io/o/app:1.2", "ghcr.io"),
        ("ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io"),
        ("docker:24", "docker.io/library/docker:24", "docker.io"),
    ],
)
def test_image_references_are_normalized(reference: str, full: str, registry: str) -> None:
    ref = normalize_image(reference)
    assert (ref.full, ref.registry) == (full, registry)


@pytest.mark.parametrize(
    "reference",
    [
        "oci-archive:/etc/image.tar",
        "oci-archive:image.tar",
        "dir:/",
        "docker-archive:/tmp/x.tar",
        "docker-daemon:alpine:latest",
        "containers-storage:alpine",
        "docker://alpine",
        "Alpine",
        "a//b",
        "name:",
        "bad host!/x",
    ],
)
def test_hostile_transports_and_malformed_references_are_refused_by_default(
    reference: str,
) -> None:
    with pytest.raises(PolicyViolation) as info:
        ContainerPolicy().resolve_image(reference)
    assert info.value.rule == "container.image"
    assert f"image {reference!r} is not a valid image reference" in str(info.value)


def test_without_image_rules_the_reference_is_passed_as_written() -> None:
    assert ContainerPolicy().resolve_image("alpine:latest") == "alpine:latest"


def test_with_image_rules_the_normalized_reference_is_what_runs() -> None:
    policy = ContainerPolicy(allowed_registries=("docker.io",))
    # registries.conf aliases cannot swap the registry after the check.
    assert policy.resolve_image("alpine") == "docker.io/library/alpine:latest"
    assert policy.resolve_image("docker.io/library/alpine:latest") == (
        "docker.io/library/alpine:latest"
    )


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        ("evil:1", "docker.io/library/evil:1"),
        ("docker.io/library/evil:2", "docker.io/library/evil"),
        ("evil@sha256:" + "b" * 64, "docker.io/library/evil"),
        ("localhost/rivet/busybox", "localhost/rivet/*"),
        ("index.docker.io/library/evil:9", "docker.io/library/evil*"),
    ],
)
def test_hostile_denied_image_is_refused_however_it_is_written(image: str, pattern: str) -> None:
    policy = ContainerPolicy(denied_images=(pattern,))
    with pytest.raises(PolicyViolation) as info:
        policy.resolve_image(image)
    assert info.value.rule == "container.denied_images"
    full = normalize_image(image).full
    assert str(info.value).startswith(f"policy container.denied_images forbids image '{full}'")


def test_denied_image_message_matches_the_documented_example() -> None:
    policy = ContainerPolicy(denied_images=("docker.io/library/evil:1",))
    with pytest.raises(PolicyViolation) as info:
        policy.resolve_image("evil:1")
    assert (
        str(info.value) == "policy container.denied_images forbids image 'docker.io/library/evil:1'"
    )


def test_hostile_image_outside_the_allow_list_is_refused() -> None:
    policy = ContainerPolicy(allowed_images=("localhost/rivet/*", "docker.io/library/alpine"))
    assert policy.resolve_image("alpine:3") == "docker.io/library/alpine:3"
    assert policy.resolve_image("localhost/rivet/busybox:latest")
    with pytest.raises(PolicyViolation) as info:
        policy.resolve_image("alpine-evil")
    assert str(info.value) == (
        "policy container.allowed_images does not include image "
        "'docker.io/library/alpine-evil:latest' (allowed: localhost/rivet/*, "
        "docker.io/library/alpine)"
    )


def test_hostile_denied_and_unlisted_registries_are_refused() -> None:
    denied = ContainerPolicy(denied_registries=("*.evil.example", "localhost"))
    assert denied.resolve_image("alpine")
    for image, registry in (
        ("registry.evil.example/x:1", "registry.evil.example"),
        ("localhost/rivet/busybox", "localhost"),
    ):
        with pytest.raises(PolicyViolation) as info:
            denied.resolve_image(image)
        assert info.value.rule == "container.denied_registries"
        assert f"forbids registry '{registry}' of image" in str(info.value)
    allowed = ContainerPolicy(allowed_registries=("docker.io", "ghcr.io"))
    assert allowed.resolve_image("ghcr.io/o/app")
    with pytest.raises(
        PolicyViolation, match=re.escape("container.allowed_registries does not include ")
    ):
        allowed.resolve_image("quay.io/o/app")
    # A registry with a port is a different host.
    with pytest.raises(PolicyViolation, match=re.escape("registry 'ghcr.io:8443'")):
        allowed.resolve_image("ghcr.io:8443/o/app")


# --- container limits and network -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512m", 512 << 20), ("2g", 2 << 30), ("1.5G", 3 << 29), ("1048576", 1 << 20), ("64k", 65536)],
)
def test_memory_sizes_parse_like_podman(text: str, expected: int) -> None:
    assert memory_bytes(text) == expected


def test_policy_limits_go_on_every_container() -> None:
    policy = ContainerPolicy(default_memory="512M", default_cpus=1.5, default_pids=64, pull="never")
    assert policy.options(readonly=True) == ContainerOptions(
        readonly_workspace=True,
        network="bridge",
        memory="512m",
        cpus=1.5,
        pids=64,
        pull="never",
        userns="auto",
    )
    assert ContainerPolicy(userns="host").options().userns == "host"


def test_network_default_and_stage_override() -> None:
    closed = ContainerPolicy(network="none")
    assert closed.options().network == "none"
    assert closed.options(network="bridge").network == "bridge"  # override allowed
    open_ = ContainerPolicy(network="bridge", allow_network_override=False)
    assert open_.options(network="none").network == "none"  # tightening is always allowed


def test_hostile_stage_asking_for_network_when_override_is_off_is_refused() -> None:
    policy = ContainerPolicy(network="none", allow_network_override=False)
    assert policy.options(network="none").network == "none"
    with pytest.raises(PolicyViolation) as info:
        policy.options(network="bridge")
    assert info.value.rule == "container.allow_network_override"
    assert str(info.value) == (
        "network = 'bridge' is refused: policy container.allow_network_override is false "
        "and container.network is 'none'"
    )


# --- policy file errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[container]\ndefault_memory = "8g"\nmax_memory = "2g"\n',
            "container.default_memory (8g) exceeds container.max_memory (2g)",
        ),
        (
            "[container]\ndefault_cpus = 4\nmax_cpus = 2\n",
            "container.default_cpus (4) exceeds container.max_cpus (2)",
        ),
        (
            "[container]\ndefault_pids = 4096\nmax_pids = 512\n",
            "container.default_pids (4096) exceeds container.max_pids (512)",
        ),
        (
            "[container]\nmax_cpus = 2\n",
            "container.default_cpus is unlimited but container.max_cpus is 2",
        ),
        (
            '[container]\ndefault_memory = "0"\nmax_memory = "1g"\n',
            "container.default_memory is unlimited but container.max_memory is 1g",
        ),
        (
            "[process]\ndefault_timeout = 7200\nmax_timeout = 3600\n",
            "process.default_timeout (7200 s) exceeds process.max_timeout (3600 s)",
        ),
    ],
)
def test_hostile_defaults_above_their_maximum_fail_at_load(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in load_error(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[process]\nmax_timout = 5\n",
            "process.max_timout: unknown key (known: allowed_binaries, denied_binaries, "
            "default_timeout, max_timeout, max_capture_bytes)",
        ),
        ("[container]\nmemory = '1g'\n", "container.memory: unknown key (known: default_memory"),
        (
            "[proces]\n",
            "proces: unknown section (known: process, container, http, fs, plugins, archive)",
        ),
        (
            '[process]\nmax_timeout = "1h"\n',
            "process.max_timeout: must be a valid number, got '1h'",
        ),
        (
            "[process]\nmax_timeout = true\n",
            "process.max_timeout: must be a valid number, got true",
        ),
        ("[process]\nmax_timeout = -5\n", "process.max_timeout: must be greater than 0, got -5"),
        ('[process]\ndenied_binaries = "curl"\n', "process.denied_binaries: must be a list"),
        ('[process]\ndenied_binaries = ["sh", 3]\n', "process.denied_binaries (item 2): must be"),
        ("[container]\ndefault_memory = 512\n", "container.default_memory: must be a valid string"),
        ('[container]\ndefault_memory = "lots"\n', "'lots' is not a memory size"),
        ('[container]\ndefault_memory = "1m"\n', "'1m' is below Podman's minimum of 6m"),
        ("[container]\ndefault_pids = 2.5\n", "container.default_pids: must be a valid integer"),
        ("[container]\ndefault_pids = 4\n", "container.default_pids: must be greater than or"),
        ('[container]\npull = "sometimes"\n', "container.pull: must be 'never', 'missing' or"),
        ('[container]\nnetwork = "host"\n', "container.network: must be 'none' or 'bridge'"),
        ('[container]\nuserns = "keep-id"\n', "container.userns: must be 'host' or 'auto'"),
        ('[container]\nallow_network_override = "no"\n', "must be a valid boolean, got 'no'"),
        ('[container]\ndenied_images = ["alpine"]\n', "write e.g. 'docker.io/library/alpine'"),
        ('[container]\nallowed_registries = ["ghcr.io/o"]\n', "must be a host such as"),
        ('[policy.container]\nnetwork = "host"\n', "policy.container.network: must be"),
        ("process = 3\n", "process: must be a table, got 3"),
        ("[process\n", "invalid TOML"),
        ("[process]\nmax_capture_bytes = 0\n", "process.max_capture_bytes: must be at least 1024"),
        ('[process]\nmax_capture_bytes = "512"\n', "max_capture_bytes: must be at least 1024"),
        ('[process]\nmax_capture_bytes = "lots"\n', "'lots' is not a memory size"),
        ("[process]\nmax_capture_bytes = 1.5\n", "process.max_capture_bytes: must be a valid"),
    ],
)
def test_hostile_policy_files_fail_with_one_line_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in load_error(tmp_path, text)


def test_capture_cap_defaults_to_a_quarter_of_the_lua_memory_and_reads_sizes(
    tmp_path: Path,
) -> None:
    assert Policy().process.max_capture_bytes is None
    assert Policy().process.capture_limit(256 << 20) == 64 << 20
    assert Policy().process.capture_limit(64 << 20) == 16 << 20
    policy = load(tmp_path, '[process]\nmax_capture_bytes = "16m"\n')
    assert policy.process.capture_limit(256 << 20) == 16 << 20
    assert load(tmp_path, "[process]\nmax_capture_bytes = 4096\n").process.max_capture_bytes == 4096


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    message = load_error(tmp_path, '[process]\nbogus = 1\n[container]\npull = "x"\n')
    assert "process.bogus: unknown key" in message and "; container.pull: must be" in message


def test_missing_policy_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read policy file"):
        Policy.load(tmp_path / "nope.toml")


def test_policy_may_sit_under_a_policy_table(tmp_path: Path) -> None:
    policy = load(tmp_path, '[policy.process]\ndenied_binaries = ["curl"]\n')
    assert policy.process.denied_binaries == ("curl",)


# --- wiring into the runner's settings ------------------------------------------------


def test_runner_reads_the_policy_from_flag_env_or_config_file(tmp_path: Path) -> None:
    env = {"RIVET_HOME": str(tmp_path)}
    assert resolve_settings({}, env).policy == Policy()
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text('[process]\ndenied_binaries = ["flag"]\n')
    env_file = tmp_path / "env.toml"
    env_file.write_text('[process]\ndenied_binaries = ["env"]\n')
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "p.toml").write_text('[process]\ndenied_binaries = ["file"]\n')
    (tmp_path / "conf" / "runner.toml").write_text('policy = "p.toml"\n')
    conf = {**env, "RIVET_RUNNER_CONFIG": str(tmp_path / "conf" / "runner.toml")}

    def denied(flags: dict[Any, object], environ: dict[str, str]) -> tuple[str, ...]:
        return resolve_settings(flags, environ).policy.process.denied_binaries

    assert denied({}, conf) == ("file",)  # relative to runner.toml
    assert denied({}, {**conf, "RIVET_POLICY": str(env_file)}) == ("env",)
    both = {**conf, "RIVET_POLICY": str(env_file)}
    assert denied({JobsGroup.policy: flag_file}, both) == ("flag",)


def test_hostile_bad_policy_stops_the_runner_at_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[container]\ndefault_pids = 'many'\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings({JobsGroup.policy: bad}, {"RIVET_HOME": str(tmp_path)})
    assert str(info.value).startswith(f"{bad}: container.default_pids: must be a valid integer")
    (tmp_path / "runner.toml").write_text("[policy]\nprocess = {}\n")
    with pytest.raises(
        ConfigError,
        match=re.escape("runner.toml: policy: expected the path of a policy file, got a table"),
    ):
        resolve_settings({}, {"RIVET_HOME": str(tmp_path)})


def test_hostile_rivet_runner_with_a_bad_policy_file_exits_before_contacting_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    from rivet.cli.main import app

    monkeypatch.setenv("RIVET_HOME", str(tmp_path))
    bad = tmp_path / "bad.toml"
    bad.write_text('[process]\ndenied_binaries = "curl"\n')
    # Port 9 (discard) on loopback: nothing answers, and nothing may be tried.
    args = ["runner", "--server", "http://127.0.0.1:9", "--token", "t", "--policy", str(bad)]
    with caplog.at_level("ERROR", logger="rivet.runner"):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert [r.getMessage() for r in caplog.records if r.name == "rivet.runner"] == [
        f"{bad}: process.denied_binaries: must be a list, got 'curl'"
    ]
