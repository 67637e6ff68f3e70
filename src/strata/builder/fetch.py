"""``ADD http(s)://…``: download a source, as Docker's legacy builder does.

The file name comes from the URL's path (its last element), else from a Content-Disposition
header, else there is none (and the destination must then name the file). The modification
time is the Last-Modified header, or the epoch; the sha256 is computed while streaming to
disk, so the cache key covers exactly the bytes downloaded. Failures are one `BuildError`
line naming the URL.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strata.errors import BuildError

DEFAULT_TIMEOUT: Final = 60.0
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Download:
    """A downloaded source: ``path`` holds its bytes, ``filename`` is "" if none is known."""

    url: str
    path: Path
    filename: str
    size: int
    sha256: str
    mtime: int


def is_url(source: str) -> bool:
    """True for the sources ``ADD`` downloads (moby's ``urlutil.IsURL``)."""
    return source.startswith(("http://", "https://"))


def _filename(url_path: str, response: http.client.HTTPResponse) -> str:
    path = urllib.parse.unquote(url_path)
    candidates = [path]
    disposition = response.headers.get_filename()
    if disposition:
        candidates.append(disposition)
    for candidate in candidates:
        if candidate and not candidate.endswith("/"):
            name = posixpath.basename(candidate)
            if name not in ("", ".", ".."):
                return name
    return ""


def _mtime(response: http.client.HTTPResponse) -> int:
    header = response.headers.get("Last-Modified")
    if not header:
        return 0
    try:
        return max(0, int(email.utils.parsedate_to_datetime(header).timestamp()))
    except (TypeError, ValueError, OverflowError):
        return 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        inner = exc.reason
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror.lower()
        if isinstance(inner, TimeoutError):
            return "timed out"
        return str(inner)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def download(url: str, directory: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Download:
    """Fetch ``url`` into a new file in ``directory`` (mode 0600)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BuildError(f"ADD failed: invalid URL {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "strata-build"})
    target = directory / "download"
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise BuildError(
            f"ADD failed: failed to GET {url} with status {e.code} {e.reason}"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        raise BuildError(f"ADD failed: cannot download {url}: {_reason(e)}") from None
    try:
        digest = hashlib.sha256()
        size = 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        expected = response.headers.get("Content-Length")
        if expected is not None and expected.isdigit() and int(expected) != size:
            raise BuildError(f"ADD failed: cannot download {url}: got {size} of {expected} bytes")
        return Download(
            url, target, _filename(parts.path, response), size, digest.hexdigest(), _mtime(response)
        )
    except (http.client.HTTPException, OSError, ValueError) as e:
        raise BuildError(f"ADD failed: cannot download {url}: {_reason(e)}") from None
    finally:
        response.close()
