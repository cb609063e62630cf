"""The webhook URL guard: hostile URLs are refused, public and allow-listed ones are admitted."""

from __future__ import annotations

import pytest

from alerts.ssrf import (
    UnresolvableHostError,
    UnsafeUrlError,
    check_url,
    parse_networks,
    resolve_host,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1111"

# A fake DNS: names used in the tables below and the addresses they "resolve" to.
DNS = {
    "hooks.example.org": [PUBLIC_V4],
    "dual.example.org": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.example": ["169.254.169.254"],
    "rebind.example": [PUBLIC_V4, "10.0.0.1"],
    "internal6.example": ["fd00::5"],
    "cgnat.example": ["100.64.1.1"],
    "mapped.example": ["::ffff:192.168.0.10"],
    "garbage.example": ["not-an-ip"],
    "empty.example": [],
}


def fake_resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError(f"[Errno -2] Name or service not known: {host}")
    return DNS[host]


def must_not_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"numeric host {host} must not be resolved")


HOSTILE = [
    # scheme and shape
    ("http://hooks.example.org/hook", "plain http"),
    ("ftp://hooks.example.org/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://hooks.example.org/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("hooks.example.org/hook", "scheme"),
    ("https:///hook", "empty host"),
    ("https://:443/hook", "empty host"),
    ("https://user:secret@hooks.example.org/", "credentials"),
    ("https://hooks.example.org@127.0.0.1/", "credentials"),
    ("https://hooks.example.org\\@127.0.0.1/", "backslash"),
    ("https://hooks.exa mple.org/", "whitespace"),
    ("https://hooks.example.org:0/", "port 0"),
    ("https://hooks.example.org:99999/", "malformed"),
    ("https://" + "a" * 2100 + ".org/", "longer than"),
    # loopback, unspecified
    ("https://127.0.0.1/", "loopback"),
    ("https://127.255.255.254/", "loopback"),
    ("https://localhost/", "loopback"),
    ("https://[::1]/", "loopback"),
    ("https://0.0.0.0/", "unspecified"),
    ("https://[::]/", "unspecified"),
    # private, link-local, CGNAT, unique-local, site-local
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://172.31.255.255/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://metadata.example/", "link-local"),
    ("https://100.64.0.1/", "carrier-grade NAT"),
    ("https://cgnat.example/", "carrier-grade NAT"),
    ("https://[fc00::1]/", "unique-local"),
    ("https://[fd12:3456::1]/", "unique-local"),
    ("https://internal6.example/", "unique-local"),
    ("https://[fe80::1]/", "link-local"),
    ("https://[fe80::1%25eth0]/", "zone index"),
    ("https://[fec0::1]/", "site-local"),
    # multicast, broadcast, reserved, benchmarking, documentation
    ("https://224.0.0.1/", "multicast"),
    ("https://239.255.255.250/", "multicast"),
    ("https://[ff02::1]/", "multicast"),
    ("https://255.255.255.255/", "reserved"),
    ("https://240.0.0.1/", "reserved"),
    ("https://198.18.0.1/", "benchmarking"),
    ("https://198.19.255.1/", "benchmarking"),
    ("https://192.0.2.1/", "documentation"),
    ("https://198.51.100.7/", "documentation"),
    ("https://203.0.113.9/", "documentation"),
    ("https://[2001:db8::1]/", "documentation"),
    ("https://[2001:2::1]/", "IETF protocol assignments"),
    ("https://[100::1]/", "discard-only"),
    # IPv4 embedded in IPv6
    ("https://[::ffff:127.0.0.1]/", "IPv4-mapped form of 127.0.0.1, loopback"),
    ("https://[::ffff:7f00:1]/", "IPv4-mapped form of 127.0.0.1"),
    ("https://[::ffff:169.254.169.254]/", "IPv4-mapped form of 169.254.169.254"),
    ("https://mapped.example/", "IPv4-mapped form of 192.168.0.10, private"),
    ("https://[64:ff9b::a00:1]/", "NAT64 form of 10.0.0.1, private"),
    ("https://[64:ff9b::127.0.0.1]/", "NAT64 form of 127.0.0.1"),
    ("https://[64:ff9b:1::a00:1]/", "local-use NAT64"),
    ("https://[2002:7f00:1::]/", "6to4 tunnel address (embeds 127.0.0.1)"),
    ("https://[2002:c0a8:101::1]/", "6to4 tunnel address (embeds 192.168.1.1)"),
    (
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "Teredo tunnel address (embeds 192.0.2.45)",
    ),
    ("https://[::127.0.0.1]/", "reserved"),
    # numeric hosts in the odd inet_aton forms
    ("https://2130706433/", "127.0.0.1: loopback"),
    ("https://0177.0.0.1/", "127.0.0.1: loopback"),
    ("https://0x7f000001/", "127.0.0.1: loopback"),
    ("https://0x7F.1/", "127.0.0.1: loopback"),
    ("https://127.1/", "127.0.0.1: loopback"),
    ("https://017700000001/", "127.0.0.1: loopback"),
    ("https://0/", "0.0.0.0"),
    ("https://10.1/", "10.0.0.1: private"),
    ("https://3232235777/", "192.168.1.1: private"),
    ("https://0xa9fea9fe/", "169.254.169.254"),
    ("https://127.0.0.1./", "127.0.0.1: loopback"),
    ("https://256.256.256.256/", "malformed numeric host"),
    ("https://1.2.3.4.5/", "malformed numeric host"),
    ("https://08.0.0.1/", "malformed numeric host"),
    ("https://4294967296/", "malformed numeric host"),
    ("https://%31%32%37.0.0.1/", "malformed numeric host"),
    ("https://127.0.0.%31/", "not a valid domain name"),
    ("https://\uff11\uff12\uff17.0.0.1/", "127.0.0.1: loopback"),  # full-width digits
    # DNS answers
    ("https://rebind.example/", "10.0.0.1: private"),
    ("https://garbage.example/", "not an IP"),
    ("https://bad_label-.example..org/", "not a valid domain name"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE)
def test_hostile_url_is_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrlError) as caught:
        check_url(url, resolve=fake_resolve)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "url",
    ["https://127.0.0.1/", "https://localhost/", "https://[::ffff:127.0.0.1]/", "https://127.1/"],
)
def test_loopback_is_admitted_when_allow_listed(url: str) -> None:
    target = check_url(
        url, allowed_networks=parse_networks("127.0.0.0/8, ::1"), resolve=fake_resolve
    )
    assert target.addresses


def test_allow_list_admits_only_its_own_networks() -> None:
    allowed = parse_networks("10.0.0.0/8")
    assert check_url("https://10.1.2.3/hook", allowed_networks=allowed).addresses == ("10.1.2.3",)
    with pytest.raises(UnsafeUrlError, match="private"):
        check_url("https://192.168.1.1/hook", allowed_networks=allowed)


def test_plain_http_needs_every_address_in_the_allow_list() -> None:
    allowed = parse_networks("127.0.0.0/8")
    target = check_url("http://127.0.0.1:8080/hook", allowed_networks=allowed)
    assert (target.scheme, target.port, target.path_and_query) == ("http", 8080, "/hook")
    with pytest.raises(UnsafeUrlError, match="plain http"):
        check_url("http://hooks.example.org/hook", allowed_networks=allowed, resolve=fake_resolve)
    # localhost also resolves to ::1, which 127.0.0.0/8 does not cover
    with pytest.raises(UnsafeUrlError, match="::1"):
        check_url("http://localhost/", allowed_networks=allowed, resolve=fake_resolve)


def test_public_name_is_admitted_with_every_address_checked() -> None:
    target = check_url("HTTPS://Dual.Example.ORG./nps/hook?x=1#frag", resolve=fake_resolve)
    assert target.scheme == "https"
    assert target.host == "dual.example.org"
    assert target.port == 443
    assert target.addresses == (PUBLIC_V4, PUBLIC_V6)
    assert target.path_and_query == "/nps/hook?x=1"
    assert not target.host_is_ip


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        (f"https://{PUBLIC_V4}:8443/", PUBLIC_V4, 8443),
        (f"https://[{PUBLIC_V6}]/x", PUBLIC_V6, 443),
        ("https://[::ffff:93.184.216.34]/", "::ffff:5db8:d822", 443),
        ("https://1572395042/", PUBLIC_V4, 443),
        ("https://0x5db8d822/", PUBLIC_V4, 443),
    ],
)
def test_public_ip_literal_is_admitted_without_resolving(url: str, host: str, port: int) -> None:
    target = check_url(url, resolve=must_not_resolve)
    assert (target.host, target.port) == (host, port)
    assert target.host_is_ip


def test_international_name_is_resolved_in_its_ascii_form() -> None:
    seen: list[str] = []

    def remember(host: str, port: int) -> list[str]:
        seen.append(host)
        return [PUBLIC_V4]

    target = check_url("https://B\u00fccher.example/hook", resolve=remember)
    assert seen == ["xn--bcher-kva.example"]
    assert target.host == "xn--bcher-kva.example"


def test_numeric_forms_denote_the_address_they_mean() -> None:
    allowed = parse_networks("127.0.0.0/8")
    for url in (
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://0x7f000001/",
        "https://127.1/",
    ):
        target = check_url(url, allowed_networks=allowed, resolve=must_not_resolve)
        assert target.host == "127.0.0.1"
        assert target.addresses == ("127.0.0.1",)


def test_unresolvable_host_is_reported_as_such() -> None:
    with pytest.raises(UnresolvableHostError, match="did not resolve"):
        check_url("https://nowhere.example/", resolve=fake_resolve)
    with pytest.raises(UnresolvableHostError, match="no address"):
        check_url("https://empty.example/", resolve=fake_resolve)


def test_parse_networks_reads_comma_separated_cidrs() -> None:
    networks = parse_networks(" 127.0.0.0/8, ::1/128 ,,10.1.2.3/8 ")
    assert [str(network) for network in networks] == ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]
    assert parse_networks("") == ()


@pytest.mark.parametrize("text", ["10.0.0.0/33", "127.0.0.0/8, localhost", "fc00::/129"])
def test_parse_networks_names_the_bad_entry(text: str) -> None:
    bad = text.split(",")[-1].strip()
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        parse_networks(text)


def test_system_resolver_returns_addresses_for_a_numeric_host() -> None:
    assert resolve_host("127.0.0.1", 443) == ["127.0.0.1"]
