"""Which registry failures are retried: only those that waiting can mend.

A name DNS says does not exist, a closed port on this machine, a TLS mismatch, 401/403/404 fail
at once (Docker's daemon answers them in milliseconds too); timeouts, resets and 5xx/429 are
tried again. The clients here get a long backoff, so a wrongly retried error shows as seconds.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from strata.digest import Digest
from strata.errors import (
    AccessDenied,
    AuthenticationRequired,
    RegistryError,
    RegistryNotFound,
    RegistryUnreachable,
)
from strata.oci import mediatypes as mt
from strata.registry.client import RegistryClient
from strata.registry.transport import PermanentlyUnreachable
from tests.anchors import Docker
from tests.conftest import Strata
from tests.registry.conftest import FakeHandler, free_port

Serve = Callable[[type[FakeHandler]], str]
ACCEPT = [mt.OCI_MANIFEST, mt.OCI_INDEX]
# Retrying with this backoff would take 1 + 2 + 4 = 7 s: anything under a second did not retry.
SLOW = {"retries": 3, "backoff": 1.0}
AT_ONCE = 1.0


class Listener:
    """A loopback TCP port that counts connections and does ``behaviour`` with each."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self._behaviour = behaviour
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._behaviour, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def listen() -> Iterator[Callable[[Callable[[socket.socket], None]], Listener]]:
    listeners: list[Listener] = []

    def start(behaviour: Callable[[socket.socket], None]) -> Listener:
        listeners.append(Listener(behaviour))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.close()


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(RegistryError) as err:
        call()
    return err.value, time.monotonic() - start


def test_a_closed_loopback_port_fails_at_once() -> None:
    address = f"127.0.0.1:{free_port()}"
    with RegistryClient(address, **SLOW) as client:  # type: ignore[arg-type]
        err, took = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert took < AT_ONCE
    assert isinstance(err, PermanentlyUnreachable)
    assert str(err) == (
        f"{address}/app:1: cannot reach http://{address}: "
        f"connection refused (nothing listens on {address})"
    )


def test_a_name_that_does_not_exist_fails_at_once() -> None:
    # .invalid is reserved (RFC 6761): resolvers answer NXDOMAIN without asking anyone.
    with RegistryClient("registry.invalid", **SLOW) as client:  # type: ignore[arg-type]
        err, took = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert took < AT_ONCE
    assert isinstance(err, PermanentlyUnreachable)
    assert str(err).startswith(
        "registry.invalid/app:1: cannot reach https://registry.invalid: "
        "no such host registry.invalid ("
    )


def test_tls_to_a_plain_http_server_fails_at_once(fake_http: Serve) -> None:
    class Plain(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, b"{}")

    address = fake_http(Plain)
    with RegistryClient(address, insecure=False, **SLOW) as client:  # type: ignore[arg-type]
        err, took = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert took < AT_ONCE
    assert isinstance(err, RegistryUnreachable)
    assert str(err).startswith(f"{address}/app:1: TLS error talking to {address}: ")
    assert str(err).endswith("(a plain-HTTP registry needs --insecure-registry)")


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationRequired), (403, AccessDenied), (404, RegistryNotFound)],
)
def test_client_statuses_fail_at_once(
    fake_http: Serve, status: int, error: type[RegistryError]
) -> None:
    calls: list[str] = []

    class Refusing(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            calls.append(self.path)
            self.send(status, b'{"errors": [{"code": "DENIED", "message": "no"}]}')

    with RegistryClient(fake_http(Refusing), **SLOW) as client:  # type: ignore[arg-type]
        err, took = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert took < AT_ONCE
    assert isinstance(err, error)
    assert len(calls) == 1


def test_a_server_that_never_answers_is_retried(
    listen: Callable[[Callable[[socket.socket], None]], Listener],
) -> None:
    held: list[socket.socket] = []
    silent = listen(held.append)  # accepts, then says nothing until the client gives up
    with RegistryClient(silent.address, timeout=0.2, retries=2, backoff=0.01) as client:
        err, _ = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert isinstance(err, RegistryUnreachable)
    assert not isinstance(err, PermanentlyUnreachable)
    assert str(err).startswith(f"{silent.address}/app:1: cannot reach http://{silent.address} ")
    assert "after 3 attempts" in str(err)
    assert silent.accepted == 3
    for conn in held:
        conn.close()


def test_a_connection_reset_before_the_answer_is_retried(
    listen: Callable[[Callable[[socket.socket], None]], Listener],
) -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: an RST, not a FIN

    resetting = listen(reset)
    with RegistryClient(resetting.address, retries=2, backoff=0.01) as client:
        err, _ = timed(lambda: client.get_manifest("app", "1", ACCEPT))
    assert isinstance(err, RegistryUnreachable)
    assert "after 3 attempts" in str(err)
    assert resetting.accepted == 3


def test_an_upload_to_a_registry_that_went_away_is_not_restarted(fake_http: Serve) -> None:
    started: list[str] = []
    gone = f"http://127.0.0.1:{free_port()}/upload"  # where the upload session is: closed

    class Session(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, b"{}")

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            started.append(self.path)
            self.send(202, b"", {"Location": gone})

    with RegistryClient(fake_http(Session), **SLOW) as client:  # type: ignore[arg-type]
        data = b"layer"
        err, took = timed(
            lambda: client.upload_blob("app", Digest.of(data), len(data), io.BytesIO(data))
        )
    # An upload starts again after a transient failure of its data request, not after this one.
    assert took < AT_ONCE
    assert isinstance(err, PermanentlyUnreachable)
    assert len(started) == 1


def test_pull_from_a_closed_port_says_so_in_one_line_at_once(strata: Strata) -> None:
    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    line = strata.fail("pull", f"{address}/app:1")
    assert time.monotonic() - start < 5  # the interpreter's start included; retries took 7 s
    assert line == (
        f"Error: pull {address}/app:1: cannot reach http://{address}: "
        f"connection refused (nothing listens on {address})"
    )


def test_pull_from_a_name_that_does_not_exist_says_so_in_one_line(strata: Strata) -> None:
    line = strata.fail("pull", "registry.invalid/app:1")
    assert line.startswith(
        "Error: pull registry.invalid/app:1: cannot reach https://registry.invalid: "
        "no such host registry.invalid ("
    )


@pytest.mark.peers
def test_docker_also_fails_at_once_on_a_closed_port_and_an_unknown_name(docker: Docker) -> None:
    """The reference: Docker 20.10's daemon answers both without retrying."""
    for name in (f"127.0.0.1:{free_port()}/app:1", "registry.invalid/app:1"):
        start = time.monotonic()
        done = docker("pull", name, check=False)
        assert done.returncode != 0
        assert time.monotonic() - start < 5
        assert ("connection refused" in done.stderr) or ("no such host" in done.stderr)
