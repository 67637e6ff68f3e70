"""Time limits on registry responses: an overall deadline and a minimum transfer rate.

httpx's timeouts bound each socket operation, so a server that sends one byte every few seconds
never trips them and a pull waits forever. Two limits close that:

- the deadline: a response (status line, headers, and the body when it is read whole: ping,
  token, manifest, tags, error bodies) must be complete within ``deadline`` seconds of the last
  byte of its request being sent. It is enforced on every socket read, through a network
  backend under httpx, so a server trickling its headers is caught too. Counting from the last
  byte sent keeps a long upload from eating its own answer's time.
- the rate: a body must keep to ``min_rate`` bytes a second, measured over ``window`` seconds
  from its headers on (as curl's ``--speed-limit``/``--speed-time``). A streamed blob has no
  fixed deadline: the rate bounds it to about its size over the rate.

Defaults and their variables (0 turns a limit off): ``STRATA_REGISTRY_DEADLINE`` 300 seconds;
``STRATA_REGISTRY_MIN_RATE`` 1024 bytes a second over ``STRATA_REGISTRY_RATE_WINDOW`` 30
seconds. Docker has neither (a trickling registry keeps ``docker pull`` waiting); these are
loose enough for any working registry and make a stuck one fail within a minute or so.
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
    """A response body that raises `TooSlow` when it arrives too slowly.

    The check runs as each piece arrives; a server that sends nothing at all is caught by
    httpx's read timeout instead.
    """

    def __init__(
        self,
        inner: httpx.SyncByteStream,
        limits: Limits,
        *,
        what: str,
        host: str,
    ) -> None:
        self._inner = inner
        self._limits = limits
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
    what: str,
    host: str,
) -> httpx.Response:
    """Put ``response``'s unread body under the minimum rate of ``limits``."""
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = WatchedStream(response.stream, limits, what=what, host=host)
    return response


# -- the deadline on each socket read ----------------------------------------------------------

_current = threading.local()


@contextlib.contextmanager
def deadline(seconds: float, message: str) -> Iterator[None]:
    """Within the block, socket reads of this thread's requests end ``seconds`` after the last
    write; a read past that raises `TooSlow` with ``message``. 0 means no deadline."""
    previous = getattr(_current, "armed", None)
    _current.armed = _Armed(seconds, message, time.monotonic() + seconds) if seconds else None
    try:
        yield
    finally:
        _current.armed = previous


@dataclass(slots=True)
class _Armed:
    seconds: float
    message: str
    end: float


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        armed: _Armed | None = getattr(_current, "armed", None)
        if armed is None:
            return self._inner.read(max_bytes, timeout)
        left = armed.end - time.monotonic()
        if left <= 0:
            raise TooSlow(armed.message)
        try:
            return self._inner.read(max_bytes, left if timeout is None else min(timeout, left))
        except httpcore.ReadTimeout:
            if time.monotonic() >= armed.end:
                raise TooSlow(armed.message) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)
        armed: _Armed | None = getattr(_current, "armed", None)
        if armed is not None:
            armed.end = time.monotonic() + armed.seconds

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
