"""Checking an HTTP request against the ``[http]`` policy, in two steps.

1. :meth:`HttpGuard.check_url`, before anything touches the network (and again for
   every redirect target): scheme, denied and allowed host names, and — when the
   URL names an IP address literally — that address.
2. :meth:`HttpGuard.check_addresses`, from the connecting transport
   (``transport``), on every address the host name resolved to, right before
   the transport connects to one of exactly those addresses. Checking resolved
   addresses is what stops ``localhost``, ``2130706433``, ``0x7f.1`` or a DNS name
   pointing at 169.254.169.254: whatever the spelling, the address is what counts.

Every refusal is a :class:`PolicyViolation` naming the rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import httpx

from rivet.engine.policy.http_policy import HttpPolicy, IPNetwork, normalize_host
from rivet.engine.policy.violation import PolicyViolation

__all__ = ["HttpGuard", "IPAddress", "non_public_reason"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ordered: the first match names the reason. Anything not listed but also not
# globally routable (documentation ranges, ...) is refused as "not globally routable".
_V4_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified address ('this network', reaches the local host)"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private network, RFC 1918"),
    ("172.16.0.0/12", "private network, RFC 1918"),
    ("192.168.0.0/16", "private network, RFC 1918"),
    ("169.254.169.254/32", "link-local, the cloud metadata service"),
    ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "carrier-grade NAT, RFC 6598"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("198.18.0.0/15", "benchmarking network"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (or broadcast)"),
)
_V6_RANGES: tuple[tuple[str, str], ...] = (
    ("::1/128", "loopback"),
    ("::/128", "unspecified address"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)
# IPv6 forms that carry an IPv4 address: the IPv4 address decides.
_V6_EMBEDDING: tuple[tuple[str, str], ...] = (
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("::/96", "IPv4-compatible"),
    ("64:ff9b::/96", "NAT64"),
)


def _networks(table: tuple[tuple[str, str], ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), why) for net, why in table)


_V4 = _networks(_V4_RANGES)
_V6 = _networks(_V6_RANGES)
_V6_EMBEDDED = _networks(_V6_EMBEDDING)


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public Internet address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        for network, why in _V6:
            if address in network:
                return why
        for network, form in _V6_EMBEDDED:
            if address in network:
                inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                reason = non_public_reason(inner)
                return f"{reason}: {inner} {form} into IPv6" if reason else None
        if address.sixtofour is not None:
            reason = non_public_reason(address.sixtofour)
            return f"{reason}: {address.sixtofour} inside a 6to4 address" if reason else None
    else:
        for network, why in _V4:
            if address in network:
                return why
    if not address.is_global:
        return "not globally routable"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class HttpGuard:
    """The ``[http]`` host and scheme rules; stateless after construction, thread-safe."""

    def __init__(self, policy: HttpPolicy) -> None:
        self.policy = policy
        self.allowed = policy.allowed
        self.denied = policy.denied

    def check_url(self, url: httpx.URL) -> None:
        """Refuse ``url`` by scheme and host before any connection is made."""
        scheme = url.scheme
        if scheme not in self.policy.allowed_schemes:
            allowed = ", ".join(self.policy.allowed_schemes) or "none"
            raise PolicyViolation(
                "http.allowed_schemes",
                f"policy http.allowed_schemes forbids scheme '{scheme}' (allowed: {allowed})",
            )
        host = normalize_host(url.raw_host.decode("ascii"))
        entry = self.denied.match_name(host)
        if entry is not None:
            raise PolicyViolation(
                "http.denied_hosts",
                f"policy http.denied_hosts forbids host '{host}' (entry '{entry}')",
            )
        address = _literal(host)
        if address is not None:
            self.check_address(host, address)
        if self.allowed and not (
            self.allowed.match_name(host)
            or (address is not None and self.allowed.match_address(address))
        ):
            raise PolicyViolation(
                "http.allowed_hosts",
                f"policy http.allowed_hosts does not list host '{host}'",
            )

    def check_addresses(self, host: str, addresses: Sequence[str]) -> None:
        """Refuse the connection unless *every* resolved address passes: a host name
        with one public and one private address is refused, not half-trusted."""
        for text in addresses:
            self.check_address(host, ipaddress.ip_address(text.split("%", 1)[0]))

    def check_address(self, host: str, address: IPAddress) -> None:
        via = "" if str(address) == host else f" (host '{host}' resolves to it)"
        entry = self.denied.match_address(address)
        if entry is not None:
            raise PolicyViolation(
                "http.denied_hosts",
                f"policy http.denied_hosts forbids {address}{via} (entry '{entry}')",
            )
        if self.policy.deny_private:
            reason = non_public_reason(address)
            if reason is not None:
                raise PolicyViolation(
                    "http.deny_private",
                    f"policy http.deny_private forbids {address} ({reason}){via}",
                )
