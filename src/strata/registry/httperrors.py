"""Reading registry responses and describing what went wrong, for `strata.registry.transport`.

Bodies are read with a size bound; error answers become one line (``HTTP 404 MANIFEST_UNKNOWN:
...``) from the registry's error JSON, or its text when it sent none; socket errors are traced
to their cause, so the transport can tell a lasting failure from one worth retrying.
"""

from __future__ import annotations

import socket
import ssl
from typing import Final

import httpx

from strata import jsonload
from strata.errors import FormatError, TooLarge

MAX_ERROR_BODY: Final = 64 << 10


def read_bounded(
    response: httpx.Response, limit: int, what: str, *, strict: bool = True, noun: str = "response"
) -> bytes:
    """Read a streamed body of at most ``limit`` bytes (`TooLarge` past it, unless not
    ``strict``, when the rest is dropped)."""
    if response.request.method == "HEAD":
        return b""  # its Content-Length is the resource's size, not a body's
    declared = response.headers.get("Content-Length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{what}: {noun} of {declared} bytes is over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            if strict:
                raise TooLarge(f"{what}: {noun} is over the limit of {limit} bytes")
            parts.append(chunk[: limit - (size - len(chunk))])
            break
        parts.append(chunk)
    return b"".join(parts)


def describe(response: httpx.Response, body: bytes) -> tuple[set[str], str]:
    """The registry's error codes and a one-line account: ``HTTP 404 MANIFEST_UNKNOWN: ...``."""
    codes: set[str] = set()
    parts: list[str] = []
    try:
        document = jsonload.loads(body, source="error body", limit=MAX_ERROR_BODY)
    except FormatError:
        document = None  # not the registry's error JSON: its text is shown instead
    errors = document.get("errors") if isinstance(document, dict) else None
    if isinstance(errors, list):
        for item in errors[:3]:
            if not isinstance(item, dict):
                continue
            code, message = item.get("code"), item.get("message")
            if isinstance(code, str):
                codes.add(code)
            text = ": ".join(str(x) for x in (code, message) if isinstance(x, str) and x)
            if text:
                parts.append(text)
    if not parts and document is None:
        text = body[:200].decode("utf-8", "replace").strip()
        if text and "<" not in text[:1]:
            parts.append(text)
    detail = " ".join(f"HTTP {response.status_code} {'; '.join(parts)}".split())
    return codes, detail


def detail(response: httpx.Response) -> str:
    return describe(response, response.content[:MAX_ERROR_BODY])[1]


NO_SUCH_HOST: Final = frozenset(
    {socket.EAI_NONAME, socket.EAI_FAIL, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
)


def root_os_error(err: BaseException) -> OSError | None:
    """The socket error under httpx's and httpcore's wrappers, if there is one."""
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def is_tls(err: BaseException) -> bool:
    seen: BaseException | None = err
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
