"""Image references with Docker's grammar and normalisation (github.com/distribution/reference).

``debian`` is ``docker.io/library/debian``; ``index.docker.io`` is ``docker.io``; a first
component is a registry only if it has a ``.`` or ``:``, is ``localhost``, or has uppercase
letters (which a repository path may not). The tag ``latest`` is added only by
`Reference.with_default_tag`, so callers can tell ``debian`` from ``debian:latest``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Final

from strata.digest import Digest
from strata.errors import InvalidDigest, InvalidReference

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
MAX_PATH_LENGTH: Final = 255
# Far above any valid reference (registry, 255-char path, 128-char tag, sha512 digest); it only
# keeps hostile annotation values from costing regex time.
MAX_REFERENCE_LENGTH: Final = 4096

# Go's \w is ASCII-only, so the classes are spelled out.
_ALNUM: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT: Final = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME: Final = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME: Final = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6: Final = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT: Final = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG: Final = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# Patterns are compiled on first use (re caches them), keeping the import cheap.
_REFERENCE_RE: Final = rf"((?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?"
_NAME_RE: Final = rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})"
_IDENTIFIER_RE: Final = r"[a-f0-9]{64}"
_ID_PREFIX_RE: Final = r"(?:sha256:)?[a-f0-9]{4,64}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """The repository with its registry: ``docker.io/library/debian``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``debian``, ``user/x``, ``localhost:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        if rest != self.path and "/" not in rest:
            return rest
        return self.path

    @property
    def familiar(self) -> str:
        """The whole reference as Docker shows it: ``debian:bookworm``."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        text = f":{self.tag}" if self.tag is not None else ""
        return f"{text}@{self.digest}" if self.digest is not None else text

    def __str__(self) -> str:
        return self.name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This reference with ``tag`` (a digest, if any, is kept)."""
        if not isinstance(tag, str) or not re.fullmatch(_TAG, tag):
            raise InvalidReference(f"invalid tag format: {_quote(str(tag))}")
        return replace(self, tag=tag)

    def with_default_tag(self) -> Reference:
        """``latest`` added when there is neither a tag nor a digest (Docker's TagNameOnly)."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def with_digest(self, digest: Digest | str) -> Reference:
        """This reference pinned to ``digest`` (a tag, if any, is kept)."""
        if isinstance(digest, str):
            digest = _parse_digest(digest, digest)
        return replace(self, digest=digest)

    def without_tag_or_digest(self) -> Reference:
        """Only the repository."""
        return Reference(self.domain, self.path)


def _split_docker_domain(text: str) -> tuple[str, str]:
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == "localhost":
        domain, remainder = first, rest
    elif first == LEGACY_DEFAULT_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _parse_digest(text: str, reference: str) -> Digest:
    try:
        digest = Digest.parse(text)
    except InvalidDigest as err:
        raise InvalidReference(f"invalid reference format: {_quote(reference)}: {err}") from None
    if not digest.storable:
        raise InvalidReference(
            f"invalid reference format: {_quote(reference)}: "
            f"unsupported digest algorithm {digest.algorithm!r}"
        )
    return digest


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text`` as Docker does (ParseNormalizedNamed).

    Raises `InvalidReference` with Docker's wording, e.g. ``invalid reference format:
    repository name (library/Debian) must be lowercase``, always naming the input.
    """
    if not isinstance(text, str):
        raise InvalidReference(f"invalid reference format: not a string: {text!r}")
    if not text:
        raise InvalidReference("invalid reference format: empty reference")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(
            f"invalid reference format: {len(text)} characters is over the limit of "
            f"{MAX_REFERENCE_LENGTH}: {_quote(text[:64])}..."
        )
    if re.fullmatch(_IDENTIFIER_RE, text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidReference(
            f"invalid reference format: repository name ({_shown(remote)}) must be lowercase"
        )
    full = f"{domain}/{remainder}"
    m = re.fullmatch(_REFERENCE_RE, full)
    if m is None:
        if full.lower() != full and re.fullmatch(_REFERENCE_RE, full.lower()):
            raise InvalidReference(
                f"invalid reference format: repository name must be lowercase: {_quote(text)}"
            )
        raise InvalidReference(f"invalid reference format: {_quote(text)}")
    name, tag, digest_text = m.group(1, 2, 3)
    nm = re.fullmatch(_NAME_RE, name)
    if nm is None or nm.group(1) is None:
        # e.g. "a_b.com/x": the registry part is no valid host name.
        raise InvalidReference(
            f"invalid reference format: {_quote(text)}: {_quote(domain)} is not a valid registry"
        )
    path = nm.group(2)
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidReference(
            f"invalid reference format: repository name must not be more than "
            f"{MAX_PATH_LENGTH} characters: {_quote(text)}"
        )
    digest = None if digest_text is None else _parse_digest(digest_text, text)
    return Reference(nm.group(1), path, tag, digest)


def _shown(text: str) -> str:
    # Docker prints the name bare; escape only what would break the one-line message.
    return text if text.isprintable() else _quote(text)[1:-1]


def looks_like_id(text: str) -> bool:
    """True if ``text`` could be an image ID or a prefix of one: 4 to 64 lowercase hex
    characters, optionally after ``sha256:``."""
    return re.fullmatch(_ID_PREFIX_RE, text) is not None
