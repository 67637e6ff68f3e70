"""Time limits on registry responses: an overall deadline and a minimum transfer rate.

httpx's timeouts bound each socket operation, so a server that sends one byte every few seconds
never trips them and a pull waits forever. Here a response body is watched as it arrives: it
must keep to ``min_rate`` bytes a second, measured over ``window`` seconds (as curl's
``--speed-limit``/``--speed-time``), and a body read whole (ping, token, manifest, tags, error
bodies) must be complete within ``deadline`` seconds of the request being sent. The deadline
also covers the wait for the status line and headers of every response (a server can trickle
those too): it is enforced on each socket read, through a network backend under httpx. A blob
body is streamed and has no fixed deadline: the rate bounds it to about its size over the rate.

Defaults and their variables (0 turns a limit off):

- ``STRATA_REGISTRY_DEADLINE``: 300 seconds for a response read whole;
- ``STRATA_REGISTRY_MIN_RATE``: 1024 bytes a second ...
- ``STRATA_REGISTRY_RATE_WINDOW``: ... over 30 seconds.

Docker itself has no rate limit; these are loose enough that any working registry passes and
tight enough that a stuck one fails within a minute.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpcore
import httpx

from strata.errors import InvalidArgument, RegistryError

DEADLINE_VAR: Final = "STRATA_REGISTRY_DEADLINE"
MIN_RATE_VAR: Final = "STRATA_REGISTRY_MIN_RATE"
WINDOW_VAR: Final = "STRATA_REGISTRY_RATE_WINDOW"


class TooSlow(RegistryError):
    """A response missed its deadline or fell under the minimum rate. Not retried: a registry
    that trickled once is expected to trickle again, and retries would multiply the wait."""


@dataclass(frozen=True, slots=True)
class Limits:
    deadline: float = 300.0
    min_rate: float = 1024.0
    window: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The limits the environment sets, the defaults for what it does not."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            deadline=_number(env, DEADLINE_VAR, default.deadline),
            min_rate=_number(env, MIN_RATE_VAR, default.min_rate),
            window=_number(env, WINDOW_VAR, default.window),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise InvalidArgument(f"invalid {name} {text!r}: not a non-negative number")
    return value


class WatchedStream(httpx.SyncByteStream):
    """A response body that raises `TooSlow` when it arrives too slowly or too late.

    The check runs as each piece arrives; a server that sends nothing at all is caught by
    httpx's read timeout instead.
    """

    def __init__(
        self,
        inner: httpx.SyncByteStream,
        limits: Limits,
        *,
        started: float,
        whole: bool,
        what: str,
        host: str,
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._started = started
        self._whole = whole
        self._what = what
        self._host = host
        # The rate is measured from the headers on: the wait for them is the deadline's.
        self._window_start = time.monotonic()
        self._window_bytes = 0
        self._total = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._check(len(chunk))
            yield chunk

    def close(self) -> None:
        self._inner.close()

    def _check(self, size: int) -> None:
        now = time.monotonic()
        self._total += size
        self._window_bytes += size
        limits = self._limits
        elapsed = now - self._started
        if self._whole and limits.deadline and elapsed > limits.deadline:
            raise TooSlow(
                f"{self._what}: {self._host} did not answer within {limits.deadline:g}s "
                f"({self._total} bytes received; {DEADLINE_VAR} sets the limit)"
            )
        span = now - self._window_start
        if limits.min_rate and limits.window and span >= limits.window:
            if self._window_bytes < limits.min_rate * span:
                raise TooSlow(
                    f"{self._what}: {self._host} is too slow: {self._window_bytes} bytes in "
                    f"{span:.1f}s, under the minimum of {limits.min_rate:g} bytes/s "
                    f"({MIN_RATE_VAR} sets the limit)"
                )
            self._window_start = now
            self._window_bytes = 0


def watch(
    response: httpx.Response,
    limits: Limits,
    *,
    started: float,
    whole: bool,
    what: str,
    host: str,
) -> httpx.Response:
    """Put ``response``'s unread body under ``limits``; ``whole`` for a body read at once."""
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = WatchedStream(
            response.stream, limits, started=started, whole=whole, what=what, host=host
        )
    return response


# -- the deadline on each socket read ----------------------------------------------------------

_current = threading.local()


@contextlib.contextmanager
def deadline(seconds: float, message: str) -> Iterator[None]:
    """Within the block, socket reads of this thread's requests end by ``seconds`` from now;
    a read past it raises `TooSlow` with ``message``. 0 means no deadline."""
    previous = getattr(_current, "end", None)
    _current.end = (time.monotonic() + seconds, message) if seconds else None
    try:
        yield
    finally:
        _current.end = previous


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        end: tuple[float, str] | None = getattr(_current, "end", None)
        if end is not None:
            left = end[0] - time.monotonic()
            if left <= 0:
                raise TooSlow(end[1])
            timeout = left if timeout is None else min(timeout, left)
            try:
                return self._inner.read(max_bytes, timeout)
            except httpcore.ReadTimeout:
                if time.monotonic() >= end[0]:
                    raise TooSlow(end[1]) from None
                raise
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(**options: Any) -> httpx.HTTPTransport:
    """An `httpx.HTTPTransport` whose socket reads keep to the thread's `deadline`.

    httpx has no parameter for httpcore's (public) network backend, so it is set on the pool
    httpx made; were that attribute ever gone, only the header-phase deadline would be lost
    (`WatchedStream` still bounds bodies).
    """
    transport = httpx.HTTPTransport(**options)
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if isinstance(inner, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(inner)  # type: ignore[union-attr]
    return transport
