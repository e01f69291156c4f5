"""The [http] runner policy: host entries, address classification, URL checks, load
errors, and the LSP stub against the real option names. No network."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import httpx
import pytest

from rivet.engine.modules.http_module.guard import HttpGuard, non_public_reason
from rivet.engine.modules.http_module.options import REQUEST_OPTIONS, VERB_OPTIONS
from rivet.engine.policy import HttpPolicy, Policy
from rivet.engine.policy.http_policy import HostRules, normalize_host
from rivet.engine.policy.violation import PolicyViolation
from rivet.errors import ConfigError
from rivet.lua.stubs import stub_files

# --- host entries -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "host", "expected"),
    [
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "API.Example.COM.", True),
        ("api.example.com", "example.com", False),
        ("api.example.com", "xapi.example.com", False),
        ("api.example.com", "api.example.com.evil", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),  # the wildcard is for subdomains only
        ("*.example.com", "badexample.com", False),
        ("*.example.com", "example.com.evil.net", False),
        ("ß.de", "xn--zca.de", True),  # IDNA 2008, as httpx puts it on the wire
        ("xn--zca.de", "ß.de", True),
        ("localhost", "LOCALHOST", True),
    ],
)
def test_name_entries(entry: str, host: str, expected: bool) -> None:
    rules = HostRules.parse((entry,))
    assert (rules.match_name(normalize_host(host)) == entry) is expected


@pytest.mark.parametrize(
    ("entry", "address", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.0.0.1", False),
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),  # IPv4-mapped counts as the IPv4 address
        ("fd00::/8", "fd12::1", True),
        ("[::1]", "::1", True),
        ("::1", "127.0.0.1", False),
    ],
)
def test_address_entries(entry: str, address: str, expected: bool) -> None:
    rules = HostRules.parse((entry,))
    assert (rules.match_address(ipaddress.ip_address(address)) == entry) is expected


@pytest.mark.parametrize(
    "entry",
    ["", "*", "a.*.com", "*.", "host:8080", "http://host", "10.0.0.0/33", "bad/net", "a b"],
)
def test_invalid_entries_are_config_errors(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f'[http]\ndenied_hosts = ["{entry}"]\n')
    with pytest.raises(ConfigError) as info:
        Policy.load(path)
    assert str(info.value).startswith(f"{path}: http.denied_hosts: ")


# --- address classification -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("0.0.0.0", "unspecified address"),
        ("10.0.0.1", "private network, RFC 1918"),
        ("172.31.255.255", "private network, RFC 1918"),
        ("192.168.0.1", "private network, RFC 1918"),
        ("169.254.169.254", "link-local, the cloud metadata service"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "not globally routable"),  # documentation range
        ("::1", "loopback"),
        ("::", "unspecified address"),
        ("fc00::1", "unique-local"),
        ("fdff::1", "unique-local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback: 127.0.0.1 IPv4-mapped into IPv6"),
        ("::ffff:169.254.169.254", "cloud metadata service: 169.254.169.254 IPv4-mapped"),
        ("::127.0.0.1", "loopback: 127.0.0.1 IPv4-compatible into IPv6"),
        ("64:ff9b::a00:1", "private network, RFC 1918: 10.0.0.1 NAT64 into IPv6"),
        ("2002:7f00:1::", "loopback: 127.0.0.1 inside a 6to4 address"),
    ],
)
def test_non_public_addresses_have_a_named_reason(address: str, reason: str) -> None:
    found = non_public_reason(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


# --- URL checks -----------------------------------------------------------------------------


def refusal(policy: HttpPolicy, url: str) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as info:
        HttpGuard(policy).check_url(httpx.URL(url))
    return info.value


def test_default_policy_refuses_private_literals_and_allows_public_names() -> None:
    guard = HttpGuard(HttpPolicy())
    guard.check_url(httpx.URL("https://api.example.com/v1"))  # names wait for resolution
    guard.check_url(httpx.URL("http://93.184.216.34/"))
    assert refusal(HttpPolicy(), "http://[::ffff:a9fe:a9fe]/").rule == "http.deny_private"
    assert refusal(HttpPolicy(), "http://127.0.0.1/").rule == "http.deny_private"


def test_deny_wins_over_allow() -> None:
    policy = HttpPolicy(allowed_hosts=("*.example.com",), denied_hosts=("admin.example.com",))
    HttpGuard(policy).check_url(httpx.URL("https://api.example.com/"))
    error = refusal(policy, "https://admin.example.com/")
    assert error.rule == "http.denied_hosts"
    assert (
        str(error)
        == "policy http.denied_hosts forbids host 'admin.example.com' (entry 'admin.example.com')"
    )


def test_allow_list_with_addresses() -> None:
    policy = HttpPolicy(allowed_hosts=("203.0.113.0/24",), deny_private=False)
    HttpGuard(policy).check_url(httpx.URL("http://203.0.113.7/"))
    error = refusal(policy, "http://example.com/")
    assert error.rule == "http.allowed_hosts"
    assert str(error) == "policy http.allowed_hosts does not list host 'example.com'"


def test_resolved_addresses_are_all_checked() -> None:
    guard = HttpGuard(HttpPolicy())
    guard.check_addresses("example.com", ["93.184.216.34", "2606:2800:220:1::1"])
    with pytest.raises(PolicyViolation) as info:
        guard.check_addresses("example.com", ["93.184.216.34", "10.0.0.5"])
    assert str(info.value) == (
        "policy http.deny_private forbids 10.0.0.5 (private network, RFC 1918) "
        "(host 'example.com' resolves to it)"
    )
    with pytest.raises(PolicyViolation):
        guard.check_addresses("x", ["fe80::1%eth0"])  # scoped link-local


def test_schemes() -> None:
    assert refusal(HttpPolicy(), "ftp://example.com/").rule == "http.allowed_schemes"
    only_https = HttpPolicy(allowed_schemes=("https",))
    assert str(refusal(only_https, "http://example.com/")) == (
        "policy http.allowed_schemes forbids scheme 'http' (allowed: https)"
    )


# --- loading ---------------------------------------------------------------------------------


def test_defaults() -> None:
    policy = HttpPolicy()
    assert policy.allowed_hosts == () and policy.denied_hosts == ()
    assert policy.deny_private is True
    assert policy.allowed_schemes == ("http", "https")
    assert (policy.rate, policy.burst, policy.max_wait) == (10.0, 20, 5.0)
    assert policy.max_response_bytes == 10 * 1024 * 1024
    assert policy.max_request_bytes == 10 * 1024 * 1024
    assert policy.max_redirects == 5
    assert (policy.default_timeout, policy.max_timeout) == (30.0, 300.0)


def test_policy_file_section(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        "[http]\n"
        'allowed_hosts = ["api.example.com", "*.internal.example"]\n'
        'denied_hosts = ["10.0.0.0/8"]\n'
        "deny_private = false\n"
        "rate = 2.5\nburst = 4\nmax_wait = 0\n"
        "max_response_bytes = 1048576\nmax_redirects = 0\n"
    )
    policy = Policy.load(path).http
    assert policy.allowed_hosts == ("api.example.com", "*.internal.example")
    assert policy.rate == 2.5 and policy.burst == 4 and policy.max_wait == 0
    assert policy.max_redirects == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate = 0", "http.rate: must be greater than 0, got 0"),
        ("burst = 0", "http.burst: must be greater than or equal to 1, got 0"),
        (
            'allowed_schemes = ["ftp"]',
            "http.allowed_schemes (item 1): must be 'http' or 'https', got 'ftp'",
        ),
        (
            "default_timeout = 600",
            "http: default_timeout (600 s) is larger than max_timeout (300 s)",
        ),
        ("rate = inf", "http.rate: must be a finite number"),
        ("hosts = []", "http.hosts: unknown key (known: allowed_hosts, denied_hosts"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"[http]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        Policy.load(path)
    assert expected in str(info.value)


# --- stub == options ---------------------------------------------------------------------


def stub_class_fields(cls: str) -> set[str]:
    text = stub_files()["http.lua"]
    block = text.split(f"---@class {cls}", 1)[1].split("\n\n", 1)[0]
    return {
        line.split()[1].rstrip("?") for line in block.splitlines() if line.startswith("---@field ")
    }


def test_stub_declares_exactly_the_options() -> None:
    assert stub_class_fields("HttpOptions") == set(VERB_OPTIONS)
    assert stub_class_fields("HttpOptions") | stub_class_fields("HttpRequestOptions") == set(
        REQUEST_OPTIONS
    )
    assert stub_class_fields("HttpResponse") == {"status", "ok", "headers", "body", "json", "url"}
