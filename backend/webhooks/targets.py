"""Where a webhook may be sent: the URL rules, and the address check that keeps deliveries from
reaching the service's own network (SSRF).

A URL is checked when it is registered, and every delivery checks again the addresses its host
resolves to *at that moment*, inside the HTTP client's resolver (``GuardedResolver``): the client
connects only to addresses that passed, so a name that resolved to a public address at
registration and to 127.0.0.1 later (DNS rebinding) reaches nothing. A host with any forbidden
address is refused whole, so a resolver answer that mixes public and private addresses cannot
slip one through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Cloud metadata services, named in refusals so an operator sees what was attempted.
_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}


class InvalidTargetError(ValueError):
    """The URL is not one a webhook can have (syntax, scheme, credentials)."""


class ForbiddenTargetError(OSError):
    """The target is not allowed: http without the development setting, or a host that resolves to
    an address of the service's own networks. An OSError, so that raised in the HTTP client's
    resolver it ends that connection attempt like a failed DNS lookup."""


def address_problem(address: IPAddress) -> str | None:
    """Why a delivery must not connect to ``address``; None for a public unicast address."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return address_problem(embedded)
    if address in _METADATA:
        return "cloud metadata service"
    for name, applies in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if applies:
            return name
    # Shared address space (100.64/10), documentation ranges, benchmarking nets and the like.
    return None if address.is_global else "not publicly routable"


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), which is what a
    connection to it would reach."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


@dataclass(frozen=True)
class Target:
    url: URL

    @property
    def host(self) -> str:
        assert self.url.raw_host is not None
        return self.url.raw_host

    @property
    def port(self) -> int:
        assert self.url.port is not None
        return self.url.port


def parse_target(raw: str, allow_private: bool) -> Target:
    """The URL's syntax and scheme; raises InvalidTargetError or ForbiddenTargetError."""
    if not raw or len(raw) > MAX_URL_LENGTH:
        raise InvalidTargetError(f"url must be 1 to {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in raw):
        raise InvalidTargetError("url must not contain spaces or control characters")
    try:
        url = URL(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidTargetError(f"url is not a valid URL: {exc}") from None
    if url.scheme not in ("https", "http") or not url.raw_host:
        raise InvalidTargetError("url must be an absolute https URL with a host")
    if url.user is not None or url.password is not None:
        raise InvalidTargetError("url must not carry credentials; authenticate the messages by their signature")
    if url.fragment:
        raise InvalidTargetError("url must not have a fragment")
    try:
        url.port  # noqa: B018  (yarl raises on a port outside 0-65535 only when it is read)
    except ValueError:
        raise InvalidTargetError("url has an invalid port") from None
    if url.scheme == "http" and not allow_private:
        raise ForbiddenTargetError("webhook URLs must use https")
    return Target(url)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(host: str, address: IPAddress) -> None:
    problem = address_problem(address)
    if problem is not None:
        where = host if str(address) == host.strip("[]") else f"{host} resolves to {address}, which"
        raise ForbiddenTargetError(f"{where} is not an allowed webhook target ({problem})")


async def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
    """Every address ``host`` has now (an IP literal is its own), bounded in time."""
    literal = _literal(host)
    if literal is not None:
        fam = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [{"hostname": host, "host": str(literal), "port": port, "family": fam, "proto": 0, "flags": 0}]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
    )
    results: list[ResolveResult] = []
    for fam, _, proto, _, sockaddr in infos:
        results.append(
            {
                "hostname": host,
                "host": str(sockaddr[0]),
                "port": int(sockaddr[1]),
                "family": fam,
                "proto": proto,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
        )
    return results


async def checked_addresses(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[ResolveResult]:
    """The host's addresses, all of them allowed; ForbiddenTargetError if any is not."""
    results = await resolve(host, port, family)
    for result in results:
        check_address(host, ipaddress.ip_address(result["host"].split("%", 1)[0]))
    return results


async def check_target(target: Target) -> None:
    """At registration: the host resolves, and only to allowed addresses."""
    try:
        await checked_addresses(target.host, target.port)
    except (socket.gaierror, TimeoutError):
        raise InvalidTargetError(f"the host {target.host} does not resolve") from None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: the addresses it returns are the only ones the client
    connects to, and each has passed ``check_address`` (unless private targets are allowed)."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if self._allow_private:
            return await resolve(host, port, family)
        return await checked_addresses(host, port, family)

    async def close(self) -> None:
        return None


def check_literal_host(target: Target, allow_private: bool) -> None:
    """aiohttp connects to an IP literal without asking its resolver: check it here."""
    literal = _literal(target.host)
    if literal is not None and not allow_private:
        check_address(target.host, literal)
