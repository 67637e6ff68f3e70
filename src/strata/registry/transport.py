"""HTTP to one registry: its address and scheme, authentication, retries, and errors by status.

One `httpx.Client` per registry (HTTP/1.1, pooled keep-alive connections, shared by the threads
of a pull or push). The registry is pinged once, lazily, to learn its challenge; each request
then carries the authorization for the scopes it needs, and a 401 is answered once by adopting
the new challenge and fetching a fresh token. Only what waiting can mend is retried, with
exponential backoff: timeouts, resets, 429 and 5xx. What cannot get better fails at once, as
Docker's does: a host name DNS says does not exist, nothing listening on a loopback port, TLS
errors, 401/403/404. Other statuses map to the error tree with one-line messages.

Credentials go only to this registry's own origin (scheme, host and port): an upload
``Location`` or a redirect naming another host gets no ``Authorization``. Every response is
held to `strata.registry.deadline`'s limits, so a registry that trickles fails instead of hanging.

The HTTP transport is a seam: by default it is `deadline_transport` (HTTP/1.1, pooled), and a
caller may give any `httpx.BaseTransport` instead (an `httpx.MockTransport` in tests). The
minimum rate is enforced above the transport, on every response body that streams, so it holds
for a given transport too (a body a mock gives as bytes is whole already: nothing to rate). The
per-read deadline lives inside `deadline_transport`'s sockets: a given transport brings its own.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Collection, Iterable
from typing import Final

import httpx

from strata.errors import (
    AccessDenied,
    AuthenticationRequired,
    DigestMismatch,
    InvalidReference,
    RegistryError,
    RegistryNotFound,
    RegistryUnreachable,
    SizeMismatch,
    StrataError,
)
from strata.registry.auth import Authenticator, Challenge, grant_of, parse_challenges, scopes_of
from strata.registry.credentials import CredentialStore, hostname
from strata.registry.deadline import DEADLINE_VAR, Limits, deadline, deadline_transport, watch
from strata.registry.httperrors import (
    MAX_ERROR_BODY,
    NO_SUCH_HOST,
    describe,
    detail,
    is_tls,
    read_bounded,
    root_os_error,
)

DOCKER_HUB_HOST: Final = "registry-1.docker.io"
_DOCKER_HUB_NAMES: Final = frozenset({"docker.io", "index.docker.io", "registry.hub.docker.com"})
_HOST: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF: Final = 30.0
_MAX_RETRY_AFTER: Final = 60.0
MAX_BODY: Final = 16 << 20

Content = bytes | Iterable[bytes] | None


def registry_host(registry: str) -> str:
    """The host[:port] to talk to: ``docker.io`` is ``registry-1.docker.io``; a URL's scheme and
    path are dropped. Raises `InvalidReference` for anything that is not a host name."""
    host = hostname(registry)
    if host in _DOCKER_HUB_NAMES:
        return DOCKER_HUB_HOST
    if not host or not _HOST.fullmatch(host):
        raise InvalidReference(f"invalid registry {registry!r}: not a host name with optional port")
    return host


def _split_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if ":" in host else host


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (any port): Docker talks plain HTTP to them."""
    name = _split_port(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure_registries: Iterable[str]) -> bool:
    """Whether ``host`` is spoken to over plain HTTP: loopback, or named (host, host:port or a
    CIDR block) in the insecure registries."""
    if is_loopback(host):
        return True
    name = _split_port(host)
    for entry in insecure_registries:
        if entry in (host, name):
            return True
        if "/" in entry:
            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


class PermanentlyUnreachable(RegistryUnreachable):
    """The registry cannot be reached and waiting will not change that (no such host, nothing
    listening on this machine): a caller that restarts operations must not restart this one."""


class Transport:
    """Authenticated, retried requests to one registry."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool | None,
        credentials: CredentialStore | None,
        timeout: float,
        retries: int,
        backoff: float,
        user_agent: str,
        limits: Limits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = registry_host(registry)
        self.limits = Limits.from_env() if limits is None else limits
        self.name = "docker.io" if self.host == DOCKER_HUB_HOST else self.host
        if insecure is None:
            names = credentials.insecure_registries if credentials is not None else ()
            insecure = is_insecure(self.host, names)
        self.base = f"{'http' if insecure else 'https'}://{self.host}"
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        store = credentials
        self._auth = Authenticator(
            self.name,
            (lambda: store.get(self.name)) if store is not None else (lambda: None),
            lambda request: self.send_plain(request, f"{self.name}: token"),
        )
        if transport is None:
            transport = deadline_transport(
                http1=True,
                http2=False,
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": user_agent},
            follow_redirects=False,
        )
        self._pinged = False
        self._ping_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` (``/v2/...``) at this registry."""
        return httpx.URL(self.base + path)

    def resolve(self, location: str, relative_to: httpx.URL | None = None) -> httpx.URL:
        """A ``Location`` header (absolute or relative) as an absolute URL, query kept.

        A relative one is relative to the request that answered with it (``relative_to``;
        RFC 9110), which may be on another host than the registry, as an upload can be.
        """
        try:
            return (relative_to or httpx.URL(self.base + "/")).join(location)
        except httpx.InvalidURL:
            raise RegistryError(f"{self.name}: invalid Location {location!r}") from None

    # -- ping and authentication --------------------------------------------------------------

    def ping(self) -> None:
        """Check that the registry answers the v2 API, and that the credentials (if any) work."""
        self._ensure_pinged(self.name)
        challenge = self._auth.challenge
        credentials = self._auth.credentials
        if challenge is None or credentials is None:
            return
        if challenge.scheme == "bearer":
            self._auth.authorization(())
            return
        self.request("GET", self.url("/v2/"), what=self.name, scopes=())

    def _ensure_pinged(self, what: str) -> None:
        if self._pinged:
            return
        with self._ping_lock:
            if self._pinged:
                return
            request = self._client.build_request("GET", self.url("/v2/"))
            response = self.send_plain(request, what)
            if response.status_code == 401:
                self._auth.set_challenge(_usable_challenge(response))
            elif response.status_code != 200:
                raise RegistryError(
                    f"{what}: {self.name} is not an OCI registry "
                    f"(GET /v2/ answered {detail(response)})"
                )
            self._pinged = True

    # -- requests -----------------------------------------------------------------------------

    def send_plain(self, request: httpx.Request, what: str) -> httpx.Response:
        """Send without registry authentication, retrying; the body is read (bounded)."""
        attempt = 0
        while True:
            with self._deadline(what, request.url):
                try:
                    response = self._client.send(request, stream=True)
                except httpx.TransportError as err:
                    if self._retriable(err) and attempt < self.retries:
                        self._sleep(attempt, None)
                        attempt += 1
                        continue
                    raise self._unreachable(what, err, attempt + 1) from None
                if response.status_code in _RETRY_STATUS and attempt < self.retries:
                    response.close()
                    self._sleep(attempt, response)
                    attempt += 1
                    continue
                self._watch(response, what)
                try:
                    return self._buffer(response, what, MAX_BODY, "response")
                except httpx.TransportError as err:
                    if self._retriable(err) and attempt < self.retries:
                        self._sleep(attempt, None)
                        attempt += 1
                        continue
                    raise self._unreachable(what, err, attempt + 1) from None

    def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        what: str,
        scopes: Iterable[str],
        headers: dict[str, str] | None = None,
        content: Content = None,
        expect: Collection[int] = (200,),
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
        limit: int = MAX_BODY,
        noun: str = "response",
    ) -> httpx.Response:
        """Send an authenticated request; return the response when its status is in ``expect``.

        With ``stream`` the body is left unread (the caller closes the response); otherwise it
        is read, up to ``limit`` bytes (`TooLarge` calls it ``noun``). ``retry=False`` (a body
        that cannot be sent twice) leaves retrying to the caller. Any other status raises the
        matching `RegistryError`.
        """
        self._ensure_pinged(what)
        scopes = tuple(scopes)
        replayable = content is None or isinstance(content, bytes)
        attempt = 0
        fresh = False
        reauthorised = False
        while True:
            with self._deadline(what, url):
                sent = dict(headers or {})
                # Credentials go only where the registry challenged for them, as Docker's
                # challenge manager keys them by the /v2/ endpoint: an upload Location or a
                # Link on another host gets none (redirects are httpx's: it drops the header
                # when one leaves the origin).
                if self.owns(url):
                    authorization = self._auth.authorization(scopes, fresh=fresh)
                    if authorization is not None:
                        sent["Authorization"] = authorization
                fresh = False
                request = self._client.build_request(method, url, headers=sent, content=content)
                try:
                    response = self._client.send(
                        request, stream=True, follow_redirects=follow_redirects
                    )
                except httpx.TooManyRedirects:
                    raise RegistryError(f"{what}: too many redirects") from None
                except httpx.TransportError as err:
                    if retry and replayable and self._retriable(err) and attempt < self.retries:
                        self._sleep(attempt, None)
                        attempt += 1
                        continue
                    raise self._unreachable(what, err, attempt + 1) from None
                status = response.status_code
                if status == 401 and replayable and not reauthorised and status not in expect:
                    challenge = _usable_challenge(response)
                    if challenge is not None and (
                        challenge.scheme == "bearer" or challenge != self._auth.challenge
                    ):
                        # A token expired early, lacks a scope the registry named, or the
                        # registry wants auth only for this repository: adopt its challenge
                        # and try once more.
                        response.close()
                        self._auth.set_challenge(challenge)
                        fresh = reauthorised = True
                        continue
                if (
                    status in _RETRY_STATUS
                    and status not in expect
                    and retry
                    and replayable
                    and attempt < self.retries
                ):
                    response.close()
                    self._sleep(attempt, response)
                    attempt += 1
                    continue
                if status not in expect:
                    try:
                        raise self._error(response, what, scopes, attempt + 1)
                    finally:
                        response.close()
                self._watch(response, what)
                if stream:
                    return response
                try:
                    return self._buffer(response, what, limit, noun)
                except httpx.TransportError as err:
                    # The connection broke inside the body: the whole request is tried again.
                    if retry and replayable and self._retriable(err) and attempt < self.retries:
                        self._sleep(attempt, None)
                        attempt += 1
                        continue
                    raise self._unreachable(what, err, attempt + 1) from None

    def owns(self, url: httpx.URL) -> bool:
        """Whether ``url`` is at this registry (same scheme, host and port as its base)."""
        base = httpx.URL(self.base)
        return (url.scheme, url.host, _port(url)) == (base.scheme, base.host, _port(base))

    def _deadline(self, what: str, url: httpx.URL) -> contextlib.AbstractContextManager[None]:
        host = url.netloc.decode("ascii", "replace")
        message = (
            f"{what}: {host} did not answer within {self.limits.deadline:g}s "
            f"({DEADLINE_VAR} sets the limit)"
        )
        return deadline(self.limits.deadline, message)

    def _watch(self, response: httpx.Response, what: str) -> None:
        host = response.request.url.netloc.decode("ascii", "replace")
        watch(response, self.limits, what=what, host=host)

    def _buffer(self, response: httpx.Response, what: str, limit: int, noun: str) -> httpx.Response:
        try:
            body = read_bounded(response, limit, what, noun=noun)
        except httpx.DecodingError as err:
            raise RegistryError(f"{what}: undecodable {noun}: {err}") from None
        finally:
            response.close()
        # The body is decoded already: a Content-Encoding left on would have it decoded twice.
        headers = httpx.Headers(response.headers)
        headers.pop("Content-Encoding", None)
        return httpx.Response(
            response.status_code, headers=headers, content=body, request=response.request
        )

    def pause(self, attempt: int) -> None:
        """Wait before retry number ``attempt`` (0-based) of an operation made of requests."""
        self._sleep(attempt, None)

    def _sleep(self, attempt: int, response: httpx.Response | None) -> None:
        delay = min(self.backoff * (2**attempt), _MAX_BACKOFF)
        if response is not None:
            after = response.headers.get("Retry-After", "")
            if after.isdigit():
                delay = max(delay, min(float(after), _MAX_RETRY_AFTER))
        if delay > 0:
            time.sleep(delay)

    # -- errors -------------------------------------------------------------------------------

    def _retriable(self, err: httpx.TransportError) -> bool:
        if is_tls(err) or self._lasting(err) is not None:
            return False
        return isinstance(
            err, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        )

    def _lasting(self, err: httpx.TransportError) -> str | None:
        """Why ``err`` cannot get better by waiting, or None when it may."""
        if not isinstance(err, httpx.ConnectError):
            return None
        cause = root_os_error(err)
        if isinstance(cause, socket.gaierror):
            # EAI_AGAIN is a resolver that did not answer in time: that one may pass.
            if cause.errno in NO_SUCH_HOST:
                return f"no such host {_split_port(self.host)} ({cause.strerror})"
            return None
        if isinstance(cause, ConnectionRefusedError) and is_loopback(self.host):
            # On this machine a refusal means nothing listens on that port, and nothing will
            # start listening because we wait: a remote refusal may be a registry restarting.
            return f"connection refused (nothing listens on {self.host})"
        return None

    def _unreachable(self, what: str, err: httpx.TransportError, attempts: int) -> RegistryError:
        reason = " ".join(str(err).split()) or type(err).__name__
        lasting = self._lasting(err)
        if lasting is not None:
            return PermanentlyUnreachable(f"{what}: cannot reach {self.base}: {lasting}")
        if is_tls(err):
            hint = (
                " (a plain-HTTP registry needs --insecure-registry)"
                if self.base.startswith("https:")
                else ""
            )
            return RegistryUnreachable(f"{what}: TLS error talking to {self.host}: {reason}{hint}")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return RegistryUnreachable(f"{what}: cannot reach {self.base}{tries}: {reason}")

    def _error(
        self, response: httpx.Response, what: str, scopes: tuple[str, ...], attempts: int
    ) -> StrataError:
        try:
            body = read_bounded(response, MAX_ERROR_BODY, what, strict=False)
        except httpx.HTTPError:
            body = b""
        codes, detail = describe(response, body)
        status = response.status_code
        if status == 401:
            credentials = self._auth.credentials
            if credentials is None:
                return AuthenticationRequired(
                    f"{what}: authentication required, no credentials for {self.name} "
                    f"(strata login {self.name}) ({detail})"
                )
            challenge = _usable_challenge(response)
            if challenge is not None and challenge.params.get("error") == "insufficient_scope":
                wanted = " ".join(scopes_of(grant_of(challenge.scopes or scopes)))
                return AccessDenied(
                    f"{what}: access denied to user {credentials[0]!r} for {wanted} ({detail})"
                )
            return AuthenticationRequired(
                f"{what}: authentication failed for user {credentials[0]!r} ({detail})"
            )
        if status == 403:
            return AccessDenied(f"{what}: access denied ({detail})")
        if status == 404:
            return RegistryNotFound(f"{what}: not found ({detail})")
        if status == 400 and "DIGEST_INVALID" in codes:
            return DigestMismatch(f"{what}: the registry rejected the digest ({detail})")
        if status == 400 and "SIZE_INVALID" in codes:
            return SizeMismatch(f"{what}: the registry rejected the size ({detail})")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return RegistryError(f"{what}: registry answered {detail}{tries}")


def _port(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else {"http": 80, "https": 443}.get(url.scheme)


def _usable_challenge(response: httpx.Response) -> Challenge | None:
    challenges = [
        c for h in response.headers.get_list("WWW-Authenticate") for c in parse_challenges(h)
    ]
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None
