"""Server-side request forgery guard: which webhook URLs we may connect to, and at which address."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}


class UnsafeUrlError(ValueError):
    """The URL must not be fetched; `reason` says why (the URL itself is kept in `url`)."""

    def __init__(self, url: str, *, reason: str) -> None:
        super().__init__(f"unsafe webhook URL: {reason}")
        self.url = url
        self.reason = reason


class UnresolvableHostError(UnsafeUrlError):
    """The host name did not resolve now. Unlike the other refusals this may pass on a retry."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: connect to one of `addresses` (never re-resolve `host`)."""

    url: str
    scheme: str
    host: str  # lower-case; IDNA (ASCII) form for names, compressed form for IP literals
    port: int
    addresses: tuple[str, ...]  # every address the host resolved to, each one checked

    @property
    def path_and_query(self) -> str:
        """The request target (origin form) to send, e.g. `/hooks/nps?x=1`."""
        parts = urlsplit(self.url)
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path

    @property
    def host_is_ip(self) -> bool:
        return _ip_literal(self.host) is not None


def resolve_host(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo, TCP); addresses in its order, deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone index
        if address not in addresses:
            addresses.append(address)
    return addresses


def parse_networks(text: str) -> tuple[Network, ...]:
    """Parse comma-separated CIDRs ("127.0.0.0/8, ::1"); host bits are masked off (strict=False).

    Raises ValueError naming the first entry that is not a network.
    """
    networks: list[Network] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as error:
            raise ValueError(f"not a network in CIDR form: {part!r} ({error})") from None
    return tuple(networks)


def check_url(
    url: str, *, allowed_networks: Iterable[Network] = (), resolve: Resolver = resolve_host
) -> Target:
    """Check a webhook URL and resolve its host once; raise UnsafeUrlError when it is not safe.

    Rules: https only, except that plain http is admitted when every resolved address lies in
    `allowed_networks`; no user:password@; the host is an IP literal (IPv4 also in the odd
    inet_aton forms 2130706433, 0177.0.0.1, 0x7f000001, 127.1, read as the address they denote)
    or a DNS name, which is resolved with `resolve`. Every address must be globally routable
    (see `address_problem`) unless it lies in `allowed_networks`. The caller connects to one of
    `Target.addresses`, so a later DNS answer cannot move the request (no DNS rebinding).
    """
    allowed = tuple(allowed_networks)
    scheme, host, port = _split(url)
    literal = _ip_literal(host)
    if literal is not None:
        found = [str(literal)]
        host = _compressed(literal)
    else:
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as error:
            raise UnresolvableHostError(url, reason=f"{host} did not resolve: {error}") from None
        if not found:
            raise UnresolvableHostError(url, reason=f"{host} resolved to no address")
    addresses: list[IPAddress] = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise UnsafeUrlError(url, reason=f"{host} resolved to {text!r}, not an IP") from None
    for address in addresses:
        problem = address_problem(address, allowed)
        if problem is not None:
            named = str(address) if host == str(address) else f"{host} is {address}"
            raise UnsafeUrlError(url, reason=f"{named}: {problem}")
    if scheme == "http" and not all(_in_networks(address, allowed) for address in addresses):
        raise UnsafeUrlError(url, reason="plain http is only allowed to the allowed networks")
    return Target(
        url=url.strip(),
        scheme=scheme,
        host=host,
        port=port,
        addresses=tuple(str(address) for address in addresses),
    )


# Special-purpose ranges (IANA IPv4/IPv6 Special-Purpose Address Registries, RFC 6890 and later).
_DENIED_V4: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' / unspecified"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "carrier-grade NAT shared space (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (includes cloud metadata 169.254.169.254)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (includes broadcast)"),
)
_DENIED_V6: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("::/8", "reserved (includes IPv4-compatible ::/96)"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments (includes benchmarking 2001:2::/48)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
_V4_TABLE = tuple((ipaddress.IPv4Network(net), why) for net, why in _DENIED_V4)
_V6_TABLE = tuple((ipaddress.IPv6Network(net), why) for net, why in _DENIED_V6)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def address_problem(address: IPAddress, allowed_networks: Iterable[Network] = ()) -> str | None:
    """Why `address` must not be contacted, or None when it may be.

    An address inside `allowed_networks` is always admitted. IPv4-mapped (::ffff:a.b.c.d) and
    NAT64 (64:ff9b::a.b.c.d) addresses are judged by the IPv4 address they reach; 6to4 (2002::/16)
    and Teredo (2001::/32) tunnel addresses are always refused, naming the IPv4 address they
    embed. Anything else not in the tables above and not globally routable per `ipaddress` is
    refused too, so ranges assigned later are refused by default.
    """
    allowed = tuple(allowed_networks)
    if _in_networks(address, allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is None and address in _NAT64:
            mapped = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if mapped is not None:
            inner = address_problem(mapped, allowed)
            form = "IPv4-mapped" if address.ipv4_mapped else "NAT64"
            return None if inner is None else f"{form} form of {mapped}, {inner}"
        if address.sixtofour is not None:
            return f"6to4 tunnel address (embeds {address.sixtofour})"
        if address.teredo is not None:
            return f"Teredo tunnel address (embeds {address.teredo[1]})"
        table: tuple[tuple[Network, str], ...] = _V6_TABLE
    else:
        table = _V4_TABLE
    for network, why in table:
        if address in network:
            return why
    if not address.is_global:
        return "not globally routable"
    return None


def _in_networks(address: IPAddress, networks: tuple[Network, ...]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _in_networks(address.ipv4_mapped, networks)
    return any(address.version == network.version and address in network for network in networks)


_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


def _split(url: str) -> tuple[str, str, int]:
    """Scheme, normalised host and port of `url`; refuse anything ambiguous."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(url[:100], reason=f"longer than {MAX_URL_LENGTH} characters")
    # Whitespace, control characters and backslashes are parsed differently by different URL
    # parsers (the classic checker/fetcher disagreement), so none is accepted anywhere.
    if _FORBIDDEN_CHARS.search(url):
        raise UnsafeUrlError(url, reason="whitespace, control character or backslash in URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeUrlError(url, reason=f"malformed URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsafeUrlError(url, reason=f"scheme {scheme or '(none)'!r} is not https")
    if "@" in parts.netloc:
        raise UnsafeUrlError(url, reason="credentials (user:password@) are not allowed in the URL")
    raw_host = parts.hostname or ""
    if not raw_host:
        raise UnsafeUrlError(url, reason="empty host")
    if port == 0:
        raise UnsafeUrlError(url, reason="port 0")
    return scheme, _normalise_host(url, raw_host), port or DEFAULT_PORTS[scheme]


def _normalise_host(url: str, host: str) -> str:
    if ":" in host:  # urlsplit only yields a colon for a bracketed IPv6 literal
        if "%" in host:
            raise UnsafeUrlError(url, reason="IPv6 zone index in host")
        try:
            return _compressed(ipaddress.IPv6Address(host))
        except ValueError:
            raise UnsafeUrlError(url, reason=f"malformed IPv6 literal {host!r}") from None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UnsafeUrlError(url, reason=f"host {host!r} is not a valid domain name") from None
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    labels = name.split(".")
    # WHATWG URL rule: a host whose last label is a number is an IPv4 address (or invalid),
    # never a name to look up. This is how browsers and glibc's inet_aton read 127.1 etc.
    if labels and _NUMERIC_PART.match(labels[-1]):
        address = _parse_ipv4_loose(name)
        if address is None:
            raise UnsafeUrlError(url, reason=f"malformed numeric host {host!r}")
        return str(address)
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise UnsafeUrlError(url, reason=f"host {host!r} is not a valid domain name")
    return name


def _parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Parse the inet_aton forms: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).

    The last part fills the remaining bytes: 127.1 is 127.0.0.1, 2130706433 is 127.0.0.1.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _NUMERIC_PART.match(part):
            return None
        if part[:2].lower() == "0x":
            value = int(part[2:] or "0", 16)
        elif len(part) > 1 and part.startswith("0"):
            if any(digit in "89" for digit in part):
                return None
            value = int(part, 8)
        else:
            value = int(part)
        values.append(value)
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (4 - len(leading)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _compressed(address: IPAddress) -> str:
    return address.compressed
