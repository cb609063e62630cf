"""Webhooks signed per the Standard Webhooks scheme, sent SSRF-safely to the checked address."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx

from alerts.ssrf import (
    Network,
    Resolver,
    Target,
    UnresolvableHostError,
    UnsafeUrlError,
    check_url,
    resolve_host,
)
from alerts.transports.base import Outcome

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
USER_AGENT = "Sentinel-NPS-Webhooks/1"
# Only these statuses carry a Retry-After that we honour (RFC 9110 15.5.20/15.6.4, RFC 6585 4).
RETRY_AFTER_STATUSES = frozenset({429, 503})


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`, keyed by the secret's bytes.

    The key is the base64 part after `whsec_` (the prefix is optional, as in the reference
    libraries); `timestamp` is in whole seconds since the Unix epoch.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("webhook secret is not whsec_ followed by base64") from None
    if not key:
        raise ValueError("webhook secret is empty")
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated.

    During a secret rotation pass both the new and the old secret, so receivers holding
    either one can verify.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP-date (RFC 9110 10.2.3).

    `now` is the current Unix time, used for the HTTP-date form; past dates give 0.
    Unreadable values give None.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        return None
    return max(0.0, when.timestamp() - now)


class WebhookTransport:
    """Send one signed webhook and classify the result.

    Policy (why): only 2xx is success. 410 Gone is permanent, and `Outcome.status == 410` tells
    the app to disable the endpoint. A URL that fails the SSRF check is permanent. Everything
    else is transient and retried on the schedule, as Standard Webhooks and Svix do: 3xx
    (redirects are never followed), 400/401/403/404 and other 4xx, 5xx, timeouts and connection
    or TLS errors. A 4xx is usually a receiver misconfiguration (path, secret, firewall) that a
    person fixes within hours; retrying delivers the warning then instead of dropping it, and
    the app's endpoint-health rule bounds the cost. 429 and 503 honour Retry-After.

    `timeout` (seconds) bounds connecting and each read and write (httpx semantics), and body
    reading also stops once `timeout` has passed since the attempt began; at most
    `max_response_bytes` of the response body are read (streamed), into `detail`. Connections
    go to the addresses `check_url` returned, in order, moving on only when one cannot be
    reached. Use one instance for many sends (it pools plain-http connections); it is safe to
    share between threads; `close()` it, or use it as a context manager.
    """

    def __init__(
        self,
        *,
        allowed_networks: Iterable[Network] = (),
        timeout: float = 15.0,
        max_response_bytes: int = 4096,
        resolve: Resolver = resolve_host,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = USER_AGENT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.allowed_networks = tuple(allowed_networks)
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.resolve = resolve
        self.user_agent = user_agent
        self.clock = clock
        context = ssl_context or ssl.create_default_context()
        # Plain http keeps connections alive (pooled per checked address: no TLS identity).
        self._http = _client(context, timeout, keepalive=True)
        # https: the pool is keyed by the address we connect to, not by the TLS server name, so a
        # kept connection could be reused for another host name on the same address without its
        # certificate having been checked for that name. One connection per request prevents it.
        self._https = _client(context, timeout, keepalive=False)

    def close(self) -> None:
        self._http.close()
        self._https.close()

    def __enter__(self) -> WebhookTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(
        self, url: str, *, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
    ) -> Outcome:
        """POST `body` (JSON) to `url`, signed with every secret; never raises for network errors.

        `msg_id` is the stable message id (the same on every retry, for receiver deduplication),
        `timestamp` the signing time in Unix seconds. Raises ValueError only for caller bugs:
        no secret, a secret that is not `whsec_` + base64, a msg_id with spaces or controls.
        """
        if not msg_id or any(ord(char) < 0x21 or ord(char) > 0x7E for char in msg_id):
            raise ValueError("msg_id must be printable ASCII without spaces")
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
            "content-type": "application/json",
            "user-agent": self.user_agent,
            "accept-encoding": "identity",  # the capped body stays readable, no decompression
        }
        try:
            target = check_url(url, allowed_networks=self.allowed_networks, resolve=self.resolve)
        except UnresolvableHostError as error:
            return Outcome(ok=False, detail=error.reason)
        except UnsafeUrlError as error:
            return Outcome(ok=False, permanent=True, detail=f"refused: {error.reason}")
        deadline = time.monotonic() + self.timeout
        outcome = Outcome(ok=False, detail="no address to connect to")
        for address in target.addresses:
            outcome, connected = self._attempt(target, address, headers, body, deadline)
            if connected or time.monotonic() >= deadline:
                break
        return outcome

    def _attempt(
        self,
        target: Target,
        address: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
    ) -> tuple[Outcome, bool]:
        """One request to one checked address; the bool says whether a connection was made."""
        request = self._build_request(target, address, headers, body)
        client = self._https if target.scheme == "https" else self._http
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectTimeout:
            return Outcome(ok=False, detail=f"connect to {address} timed out"), False
        except httpx.ConnectError as error:
            return Outcome(ok=False, detail=f"cannot connect to {address}: {error}"), False
        except httpx.TimeoutException as error:
            return Outcome(ok=False, detail=f"timed out ({type(error).__name__})"), True
        except httpx.HTTPError as error:
            return Outcome(ok=False, detail=f"{type(error).__name__}: {error}"), True
        try:
            snippet = self._read_capped(response, deadline)
        except httpx.HTTPError as error:
            snippet = f"(response body unreadable: {type(error).__name__})"
        finally:
            response.close()
        return self._classify(response, snippet), True

    def _build_request(
        self, target: Target, address: str, headers: dict[str, str], body: bytes
    ) -> httpx.Request:
        """A request to the checked IP with Host (and TLS SNI) set to the URL's host name."""
        connect_host = f"[{address}]" if ":" in address else address
        host_header = f"[{target.host}]" if ":" in target.host else target.host
        if target.port != {"https": 443, "http": 80}[target.scheme]:
            host_header = f"{host_header}:{target.port}"
        extensions: dict[str, object] = {}
        if target.scheme == "https" and not target.host_is_ip:
            # Certificate verification uses the server name, so the certificate is checked
            # against the host name even though we connect to an address.
            extensions["sni_hostname"] = target.host
        url = f"{target.scheme}://{connect_host}:{target.port}{target.path_and_query}"
        return httpx.Request(
            "POST",
            url,
            headers={**headers, "host": host_header},
            content=body,
            extensions=extensions,
        )

    def _read_capped(self, response: httpx.Response, deadline: float) -> str:
        limit = self.max_response_bytes
        received = bytearray()
        truncated = False
        for chunk in response.iter_raw():
            received.extend(chunk)
            if len(received) >= limit:
                truncated = len(received) > limit
                break
            if time.monotonic() >= deadline:
                truncated = True
                break
        text = bytes(received[:limit]).decode("utf-8", errors="replace").strip()
        return text + (" [truncated]" if truncated else "")

    def _classify(self, response: httpx.Response, snippet: str) -> Outcome:
        status = response.status_code
        described = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if 200 <= status < 300:
            return Outcome(ok=True, status=status, detail=described)
        if status == 410:
            return Outcome(
                ok=False,
                permanent=True,
                status=status,
                detail=f"endpoint asked to be disabled (410 Gone); {described}",
            )
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=self.clock())
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            described = f"redirect not followed (to {location[:200]!r}); {described}"
        return Outcome(ok=False, retry_after=retry_after, status=status, detail=described)


def _client(context: ssl.SSLContext, timeout: float, *, keepalive: bool) -> httpx.Client:
    # trust_env=False: no proxy, netrc or SSL_CERT_* from the environment may redirect us.
    return httpx.Client(
        verify=context,
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0),
    )
