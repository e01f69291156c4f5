"""``[http]`` policy for the ``http`` module: hosts, rate limit, sizes, redirects, timeouts.

Every key and its default is documented in ``docs/runner-policy.md``. Host entries
are checked when the policy is loaded, so a typo is a config error at runner start,
not a silently ineffective rule.

Host entries come in three shapes:

- a host name, ``api.example.com``: that host exactly (case-insensitive, a
  trailing dot ignored, international names compared in their IDNA form, the same
  one the HTTP client sends);
- a wildcard, ``*.example.com``: any host *below* ``example.com`` (not
  ``example.com`` itself: list both when both are meant);
- an IP address or network, ``10.1.2.3``, ``10.0.0.0/8``, ``fd00::/8``. In
  ``denied_hosts`` it is matched against the URL's literal address *and* every
  address a host name resolves to, so a DNS name cannot route around it. In
  ``allowed_hosts`` it admits URLs that name such an address literally.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["HostRules", "HttpPolicy", "IPNetwork", "normalize_host"]

MiB = 1024 * 1024
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_host(host: str) -> str:
    """The comparable form of a host: lower case, no trailing dot, IDNA-encoded the way
    httpx encodes it on the wire (so ``ß.de`` compares as ``xn--zca.de``)."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return httpx.URL(f"http://{host}/").raw_host.decode("ascii").lower().rstrip(".")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise ValueError(f"invalid host {host!r}: {exc}") from None


@dataclass(frozen=True)
class HostRules:
    """Parsed host entries of one list, with the original text kept for messages."""

    names: tuple[tuple[str, str], ...] = ()  # (normalized name, entry)
    suffixes: tuple[tuple[str, str], ...] = ()  # (".example.com", entry)
    networks: tuple[tuple[IPNetwork, str], ...] = ()  # (network, entry)

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> HostRules:
        names: list[tuple[str, str]] = []
        suffixes: list[tuple[str, str]] = []
        networks: list[tuple[IPNetwork, str]] = []
        for entry in entries:
            text = entry.strip()
            if not text:
                raise ValueError("empty host entry")
            if "/" in text:
                try:
                    networks.append((ipaddress.ip_network(text.strip("[]"), strict=False), entry))
                except ValueError:
                    raise ValueError(f"invalid network {entry!r}") from None
                continue
            if text.startswith("*."):
                rest = normalize_host(text[2:])
                if not rest or "*" in rest:
                    raise ValueError(f"invalid wildcard {entry!r} (write '*.example.com')")
                suffixes.append(("." + rest, entry))
                continue
            if "*" in text:
                raise ValueError(f"invalid host {entry!r}: '*' is only allowed as a leading '*.'")
            if any(c in text for c in ":/@ ") and not _is_ip(text.strip("[]")):
                raise ValueError(f"invalid host {entry!r}: give a bare host name (no port, path)")
            name = normalize_host(text)
            if _is_ip(name):
                networks.append((ipaddress.ip_network(name), entry))
            else:
                names.append((name, entry))
        return cls(tuple(names), tuple(suffixes), tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.names or self.suffixes or self.networks)

    def match_name(self, host: str) -> str | None:
        """The entry that matches the normalized host name ``host``, or None."""
        for name, entry in self.names:
            if host == name:
                return entry
        for suffix, entry in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                return entry
        return None

    def match_address(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        """The entry whose network contains ``address`` (an IPv4-mapped IPv6 address
        is also compared as the IPv4 address it carries), or None."""
        candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for network, entry in self.networks:
            if any(c.version == network.version and c in network for c in candidates):
                return entry
        return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class HttpPolicy(BaseModel):
    """What the ``http`` module may reach and how hard it may be used, per job."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Host names, ``*.suffix`` wildcards or IP networks a URL may name; empty = any
    # host not denied below.
    allowed_hosts: tuple[str, ...] = ()
    # Refused even when allowed; IP entries also apply to resolved addresses.
    denied_hosts: tuple[str, ...] = ()
    # Refuse loopback, private, link-local (cloud metadata), CGNAT, unique-local,
    # multicast and other non-global addresses, checked on the resolved addresses.
    deny_private: bool = True
    allowed_schemes: tuple[Literal["http", "https"], ...] = ("http", "https")
    # Token bucket per job: ``rate`` requests per second refill, ``burst`` tokens
    # at most; a request that finds the bucket empty waits for its token up to
    # ``max_wait`` seconds, and fails at once if the wait would be longer.
    rate: float = Field(default=10.0, gt=0)
    burst: int = Field(default=20, ge=1)
    max_wait: float = Field(default=5.0, ge=0)
    max_response_bytes: int = Field(default=10 * MiB, ge=1)
    max_request_bytes: int = Field(default=10 * MiB, ge=0)
    max_redirects: int = Field(default=5, ge=0)
    default_timeout: float = Field(default=30.0, gt=0)
    max_timeout: float = Field(default=300.0, gt=0)

    @field_validator("allowed_hosts", "denied_hosts")
    @classmethod
    def _valid_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        HostRules.parse(value)
        return value

    @field_validator("rate", "max_wait", "default_timeout", "max_timeout")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _timeouts_ordered(self) -> HttpPolicy:
        if self.default_timeout > self.max_timeout:
            raise ValueError(
                f"default_timeout ({self.default_timeout:g} s) is larger than "
                f"max_timeout ({self.max_timeout:g} s)"
            )
        return self

    @property
    def allowed(self) -> HostRules:
        return HostRules.parse(self.allowed_hosts)

    @property
    def denied(self) -> HostRules:
        return HostRules.parse(self.denied_hosts)
