"""Registry authentication: challenges, basic credentials and bearer tokens with scopes.

A registry says how to authenticate in the ``WWW-Authenticate`` header of a 401 (RFC 7235):
``Basic realm=...`` wants the user's credentials on every request; ``Bearer realm=...,service=...``
(Docker's token protocol) wants a token from ``realm`` for the resource scopes a request needs,
fetched with the user's credentials when there are some and anonymously otherwise. Tokens are
cached per set of scopes and reused, also for requests needing fewer scopes, until shortly before
they expire. A ``(username, password)`` pair whose user is ``<token>`` carries an identity
(refresh) token, which is exchanged with an OAuth2 POST as Docker does.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import httpx

from strata import jsonload
from strata.errors import AccessDenied, AuthenticationRequired, FormatError, RegistryError
from strata.registry.credentials import IDENTITY_TOKEN_USER

PULL: Final = "pull"
PUSH: Final = "pull,push"
DELETE: Final = "delete"

# Tokens the realm does not date live 60 s (the token spec's minimum); renew a little early so a
# token does not expire between being chosen and reaching the registry.
_DEFAULT_TOKEN_LIFETIME: Final = 60.0
_EXPIRY_MARGIN: Final = 10.0
_MAX_TOKEN_RESPONSE: Final = 1 << 20
_CLIENT_ID: Final = "strata"

_TOKEN_CHARS: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a lower-cased scheme and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> frozenset[str]:
        """The scopes the registry asked for (space-separated in the ``scope`` parameter)."""
        return frozenset(self.params.get("scope", "").split())


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into its challenges; unparsable tails are ignored."""
    found: list[Challenge] = []
    i, n = 0, len(header)
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        m = _TOKEN_CHARS.match(header, i)
        if m is None:
            break
        word, j = m.group(), m.end()
        k = j
        while k < n and header[k] in " \t":
            k += 1
        if found and k < n and header[k] == "=" and not header.startswith("==", k):
            value, i = _param_value(header, k + 1)
            found[-1].params[word.lower()] = value
            continue
        found.append(Challenge(word.lower()))
        i = k
        # A token68 (``Negotiate abc==``) carries no parameters we use; skip it.
        t = _TOKEN68.match(header, i)
        if (
            t is not None
            and t.group().endswith("=")
            and (t.end() == n or header[t.end()] in " \t,")
        ):
            i = t.end()
    return found


def _param_value(header: str, i: int) -> tuple[str, int]:
    n = len(header)
    while i < n and header[i] in " \t":
        i += 1
    if i < n and header[i] == '"':
        out: list[str] = []
        i += 1
        while i < n and header[i] != '"':
            if header[i] == "\\" and i + 1 < n:
                i += 1
            out.append(header[i])
            i += 1
        return "".join(out), i + 1
    m = _TOKEN_CHARS.match(header, i)
    if m is None:
        return "", i
    return m.group(), m.end()


def repository_scope(repo: str, actions: str) -> str:
    """``repository:<repo>:<actions>``, the resource scope of Docker's token protocol."""
    return f"repository:{repo}:{actions}"


Grant = frozenset[tuple[str, str]]
"""A set of scopes split into (resource, action) atoms, so coverage is a subset test."""


def grant_of(scopes: Iterable[str]) -> Grant:
    """Split scopes such as ``repository:a:pull,push`` into their (resource, action) atoms."""
    atoms: set[tuple[str, str]] = set()
    for scope in scopes:
        resource, sep, actions = scope.rpartition(":")
        if not sep:
            continue
        atoms.update((resource, action) for action in actions.split(",") if action)
    return frozenset(atoms)


def scopes_of(grant: Grant) -> list[str]:
    """The scope strings for a grant, one per resource, in a stable order."""
    by_resource: dict[str, set[str]] = {}
    for resource, action in grant:
        by_resource.setdefault(resource, set()).add(action)
    return [f"{r}:{','.join(sorted(a))}" for r, a in sorted(by_resource.items())]


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value for basic credentials."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    grant: Grant
    expires: float


Send = Callable[[httpx.Request], httpx.Response]


class Authenticator:
    """The ``Authorization`` header for each request to one registry, following its challenge.

    Thread-safe: pulls and pushes send requests from several threads through one client.
    """

    def __init__(
        self,
        registry: str,
        credentials: Callable[[], tuple[str, str] | None],
        send: Send,
    ) -> None:
        self._registry = registry
        self._credentials_source = credentials
        self._credentials: tuple[str, str] | None = None
        self._credentials_loaded = False
        self._send = send
        self._challenge: Challenge | None = None
        self._tokens: list[_Token] = []
        self._lock = threading.Lock()

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    @property
    def credentials(self) -> tuple[str, str] | None:
        """The user's credentials for this registry, looked up once, when first needed."""
        with self._lock:
            return self._load_credentials()

    def _load_credentials(self) -> tuple[str, str] | None:
        if not self._credentials_loaded:
            self._credentials = self._credentials_source()
            self._credentials_loaded = True
        return self._credentials

    def set_challenge(self, challenge: Challenge | None) -> None:
        """Adopt the registry's challenge (from the ping, or from a 401 later on)."""
        with self._lock:
            self._challenge = challenge

    def authorization(self, scopes: Iterable[str], *, fresh: bool = False) -> str | None:
        """The header value for a request needing ``scopes``; None when anonymous.

        With ``fresh`` a cached token is not used (it was just refused).
        """
        with self._lock:
            challenge = self._challenge
            if challenge is None:
                return None
            credentials = self._load_credentials()
            if challenge.scheme == "basic":
                if credentials is None or credentials[0] == IDENTITY_TOKEN_USER:
                    return None
                return basic_authorization(*credentials)
            if challenge.scheme != "bearer":
                return None
            grant = grant_of(scopes) | grant_of(challenge.scopes) if fresh else grant_of(scopes)
            now = time.monotonic()
            self._tokens = [t for t in self._tokens if t.expires > now]
            if fresh:
                self._tokens = [t for t in self._tokens if not grant <= t.grant]
            else:
                for token in self._tokens:
                    if grant <= token.grant:
                        return f"Bearer {token.value}"
            token = self._fetch_token(challenge, grant, credentials)
            self._tokens.append(token)
            return f"Bearer {token.value}"

    def _fetch_token(
        self, challenge: Challenge, grant: Grant, credentials: tuple[str, str] | None
    ) -> _Token:
        realm = challenge.realm
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"{self._registry}: bearer challenge has no usable realm {realm!r}")
        scopes = scopes_of(grant)
        params: list[tuple[str, str]] = []
        if challenge.service is not None:
            params.append(("service", challenge.service))
        headers = {"Accept": "application/json"}
        if credentials is not None and credentials[0] == IDENTITY_TOKEN_USER:
            # OAuth2 refresh-token grant, as Docker does with an identity token.
            form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", credentials[1]),
                ("client_id", _CLIENT_ID),
                *params,
            ]
            if scopes:
                form.append(("scope", " ".join(scopes)))
            request = httpx.Request("POST", realm, data=dict(form), headers=headers)
        else:
            params += [("scope", s) for s in scopes]
            if credentials is not None:
                params.append(("account", credentials[0]))
                headers["Authorization"] = basic_authorization(*credentials)
            url = httpx.URL(realm)
            for key, value in params:
                url = url.copy_add_param(key, value)
            request = httpx.Request("GET", url, headers=headers)
        start = time.monotonic()
        response = self._send(request)
        return self._token_from(response, grant, start, credentials)

    def _token_from(
        self,
        response: httpx.Response,
        grant: Grant,
        start: float,
        credentials: tuple[str, str] | None,
    ) -> _Token:
        where = f"{self._registry}: token from {response.request.url.copy_with(query=None)}"
        status = response.status_code
        if status in (401, 403):
            who = "" if credentials is None else f" for user {credentials[0]!r}"
            if status == 401:
                raise AuthenticationRequired(
                    f"{where}: authentication failed{who} ({_snippet(response)})"
                )
            raise AccessDenied(f"{where}: access denied{who} ({_snippet(response)})")
        if status != 200:
            raise RegistryError(f"{where}: HTTP {status} ({_snippet(response)})")
        try:
            body = jsonload.loads(
                response.content, source=f"{where}: response", limit=_MAX_TOKEN_RESPONSE
            )
        except FormatError as err:
            raise RegistryError(str(err)) from None
        if not isinstance(body, dict):
            raise RegistryError(f"{where}: response is not a JSON object")
        value = body.get("token") or body.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryError(f"{where}: response has no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_TOKEN_LIFETIME
        margin = min(_EXPIRY_MARGIN, float(lifetime) / 2)
        return _Token(value, grant, start + float(lifetime) - margin)


def _snippet(response: httpx.Response) -> str:
    """A short, one-line account of an error response for messages."""
    text = response.content[:300].decode("utf-8", "replace")
    try:
        body = jsonload.loads(text, source="error body", limit=len(text) + 1)
    except FormatError:
        body = None
    if isinstance(body, dict):
        for key in ("details", "error_description", "error", "message"):
            if isinstance(body.get(key), str):
                text = body[key]
                break
    line = " ".join(text.split())
    return f"HTTP {response.status_code}: {line}" if line else f"HTTP {response.status_code}"
