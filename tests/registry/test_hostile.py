"""A hostile registry (small Python servers on 127.0.0.1): credentials sent to another host,
bodies that trickle, JSON nested too deep. Each must end in a one-line error, never a leak,
a hang or a traceback."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strata.digest import Digest
from strata.errors import FormatError, InvalidArgument, RegistryError
from strata.oci import mediatypes as mt
from strata.registry.client import RegistryClient
from strata.registry.credentials import CredentialStore
from strata.registry.deadline import Limits, TooSlow
from tests.conftest import Strata
from tests.registry.conftest import FakeHandler
from tests.registry.fakes import FakeRegistry, fake_registry, make_image, sha

Serve = Callable[[type[FakeHandler]], str]
ACCEPT = [mt.OCI_MANIFEST, mt.OCI_INDEX]
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode()
DEEP = b"[" * 50_000 + b"]" * 50_000
FAST = Limits(deadline=2.0, min_rate=100.0, window=1.0)


def client_for(address: str, **kw: object) -> RegistryClient:
    return RegistryClient(address, retries=2, backoff=0.001, **kw)  # type: ignore[arg-type]


def trickle(handler: FakeHandler, body: bytes, pause: float) -> None:
    """Declare ``body`` whole, then send it a byte at a time, ``pause`` seconds apart."""
    handler.send_response(200)
    handler.send_header("Content-Type", mt.OCI_MANIFEST)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    try:
        for i in range(len(body)):
            handler.wfile.write(body[i : i + 1])
            handler.wfile.flush()
            time.sleep(pause)
    except OSError:
        pass  # the client gave up, as it should


# -- credentials go only to the host that challenged ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

    def add(self, handler: FakeHandler) -> None:
        with self.lock:
            self.seen.append((handler.command, handler.path, handler.headers.get("Authorization")))


def test_an_upload_location_on_another_host_gets_no_credentials(
    fake_http: Serve, tmp_path: Path
) -> None:
    """Push through a token-auth registry whose upload Location names another host: the token
    realm gets the user's credentials, the registry its token, the other host nothing."""
    data = os.urandom(3000)
    digest = Digest.of(data)
    other, realm, registry = Recorder(), Recorder(), Recorder()

    class Other(FakeHandler):
        def do_PUT(self) -> None:  # noqa: N802 (http.server calls it)
            other.add(self)
            body = self.read_body()
            self.send(201 if body == data else 400, b"", {"Docker-Content-Digest": str(digest)})

        do_PATCH = do_PUT  # noqa: N815 (http.server's name)

    class Realm(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            realm.add(self)
            self.send(200, json.dumps({"token": "secret-token"}).encode())

    other_address, realm_address = fake_http(Other), fake_http(Realm)

    class Registry(FakeHandler):
        def _challenge(self) -> bool:
            registry.add(self)
            if self.headers.get("Authorization") == "Bearer secret-token":
                return True
            challenge = f'Bearer realm="http://{realm_address}/token",service="reg"'
            self.send(401, b"", {"WWW-Authenticate": challenge})
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self._challenge():
                self.send(200, b"{}")

        def do_HEAD(self) -> None:  # noqa: N802 (http.server calls it)
            if self._challenge():
                self.send(404)

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            if self._challenge():
                self.send(202, b"", {"Location": f"http://{other_address}/upload/u1?state=1"})

    address = fake_http(Registry)
    store = CredentialStore.load(tmp_path / "config.json")
    store.store(address, "alice", "pw")
    with client_for(address, credentials=store) as client:
        client.upload_blob("app", digest, len(data), io.BytesIO(data))
    assert other.seen and all(auth is None for _, _, auth in other.seen), other.seen
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()
    assert {auth for _, _, auth in realm.seen} == {basic}
    assert ("POST", "/v2/app/blobs/uploads/", "Bearer secret-token") in registry.seen


def test_a_redirect_to_another_host_gets_no_credentials(fake_http: Serve, tmp_path: Path) -> None:
    """A manifest and a blob redirected to storage elsewhere: fetched, without the header."""
    data = os.urandom(2000)
    storage_seen = Recorder()

    class Storage(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            storage_seen.add(self)
            self.send(200, data)

    storage = fake_http(Storage)
    expected = "Basic " + base64.b64encode(b"alice:pw").decode()

    class Registry(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.headers.get("Authorization") != expected:
                self.send(401, b"", {"WWW-Authenticate": 'Basic realm="fake"'})
            elif self.path == "/v2/":
                self.send(200, b"{}")
            else:
                self.send(302, b"", {"Location": f"http://{storage}/blob?sig=1"})

    address = fake_http(Registry)
    store = CredentialStore.load(tmp_path / "config.json")
    store.store(address, "alice", "pw")
    with (
        client_for(address, credentials=store) as client,
        client.get_blob("app", Digest.of(data)) as stream,
    ):
        assert b"".join(stream.iter_chunks()) == data
    assert storage_seen.seen == [("GET", "/blob?sig=1", None)]


def test_strata_push_sends_no_credentials_to_an_upload_host_elsewhere(
    fake_http: Serve, strata: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``docker push`` does (checked against Docker 20.10 with these two servers): the
    registry gets Basic credentials, the host its upload Location names gets none."""
    seen = Recorder()
    basic = "Basic " + base64.b64encode(b"alice:pw").decode()

    class Other(FakeHandler):
        def do_PATCH(self) -> None:  # noqa: N802 (http.server calls it)
            seen.add(self)
            self.read_body()
            self.send(202, b"", {"Location": self.path.split("?")[0], "Range": "0-0"})

        def do_PUT(self) -> None:  # noqa: N802 (http.server calls it)
            seen.add(self)
            self.read_body()
            digest = self.path.split("digest=")[1].replace("%3A", ":")
            self.send(201, b"", {"Docker-Content-Digest": digest})

    other = fake_http(Other)

    class Registry(FakeHandler):
        def _ok(self) -> bool:
            seen.add(self)
            if self.headers.get("Authorization") == basic:
                return True
            self.send(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            return False

        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self._ok():
                self.send(200, b"{}")

        def do_HEAD(self) -> None:  # noqa: N802 (http.server calls it)
            if self._ok():
                self.send(404)

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            if self._ok():
                self.send(202, b"", {"Location": f"http://{other}/upload/u1", "Range": "0-0"})

        def do_PUT(self) -> None:  # noqa: N802 (http.server calls it)
            if self._ok():
                body = self.read_body()
                self.send(201, b"", {"Docker-Content-Digest": str(Digest.of(body))})

    address = fake_http(Registry)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    strata("import", str(rootfs), f"{address}/app:1")
    strata("login", "-u", "alice", "--password-stdin", address, input=b"pw")
    strata("push", f"{address}/app:1")
    to_other = [auth for command, path, auth in seen.seen if path.startswith("/upload/")]
    assert to_other and to_other == [None] * len(to_other), seen.seen
    assert ("PUT", "/v2/app/manifests/1", basic) in seen.seen


def test_strata_pull_sends_no_credentials_to_blob_storage_elsewhere(
    fake_http: Serve, strata: Strata, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blob GETs redirected to storage on another host (as Docker Hub's are): pulled, and the
    storage host never sees the registry's credentials."""
    image = make_image([{"hello": b"hi\n"}])
    storage_seen = Recorder()

    class Storage(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            storage_seen.add(self)
            self.send(200, image.blobs[self.path.rsplit("/", 1)[1]])

    storage = fake_http(Storage)

    def redirect(handler: Any, data: bytes) -> bool:
        handler._send(307, b"", {"Location": f"http://{storage}/blobs/{sha(data)}"})
        return True

    registry = FakeRegistry(require_auth=True)
    registry.add_image("app", "1", image)
    registry.hooks.update(dict.fromkeys(image.blobs, redirect))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    with fake_registry(registry):
        strata("login", "-u", "alice", "--password-stdin", registry.host, input=b"pw")
        strata("pull", f"{registry.host}/app:1")
    assert len(storage_seen.seen) == len(image.blobs)
    assert all(auth is None for _, _, auth in storage_seen.seen), storage_seen.seen
    to_registry = [headers for _, path, headers in registry.requests if "/blobs/" in path]
    assert to_registry and all("Authorization" in headers for headers in to_registry)


# -- nothing hangs -------------------------------------------------------------------------------


def test_a_trickled_manifest_fails_under_the_minimum_rate(fake_http: Serve) -> None:
    class Trickle(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            else:
                trickle(self, MANIFEST, 0.3)

    address = fake_http(Trickle)
    started = time.monotonic()
    with client_for(address, limits=FAST) as client, pytest.raises(TooSlow) as err:
        client.get_manifest("app", "1", ACCEPT)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert message.startswith(f"{address}/app:1: {address} is too slow: "), message
    assert "STRATA_REGISTRY_MIN_RATE" in message and "\n" not in message


def test_a_body_slower_than_its_deadline_fails(fake_http: Serve) -> None:
    class Slow(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            else:
                trickle(self, MANIFEST, 0.1)  # fast enough for the rate, too slow overall

    limits = Limits(deadline=1.0, min_rate=0.0, window=0.0)
    with client_for(fake_http(Slow), limits=limits) as client, pytest.raises(TooSlow) as err:
        client.get_manifest("app", "1", ACCEPT)
    assert "did not answer within 1s" in str(err.value)


def test_an_upload_longer_than_the_deadline_is_not_cut_short(fake_http: Serve) -> None:
    """The deadline counts from the last byte sent: a slow upload keeps its answer's time."""
    pieces = [os.urandom(1000) for _ in range(4)]
    data = b"".join(pieces)

    class Uploads(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, b"{}")

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(202, b"", {"Location": "/v2/app/blobs/uploads/u1"})

        def do_PATCH(self) -> None:  # noqa: N802 (http.server calls it)
            ok = self.read_body() == data
            self.send(202 if ok else 400, b"", {"Location": "/v2/app/blobs/uploads/u1"})

        def do_PUT(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(201, b"", {"Docker-Content-Digest": str(Digest.of(data))})

    def slowly() -> Iterator[bytes]:
        for piece in pieces:
            time.sleep(0.4)
            yield piece

    limits = Limits(deadline=1.0, min_rate=100.0, window=1.0)
    with client_for(fake_http(Uploads), limits=limits) as client:
        client.upload_stream("app", slowly(), lambda: Digest.of(data))


def test_trickled_headers_fail_at_the_deadline(fake_http: Serve) -> None:
    """A server may trickle its status line and headers, where no body is watched yet."""
    head = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 200 + b"\r\n\r\n"

    class SlowHeaders(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            try:
                for i in range(len(head)):
                    self.wfile.write(head[i : i + 1])
                    self.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass

    limits = Limits(deadline=1.0, min_rate=0.0, window=0.0)
    address = fake_http(SlowHeaders)
    started = time.monotonic()
    with client_for(address, limits=limits) as client, pytest.raises(TooSlow) as err:
        client.get_manifest("app", "1", ACCEPT)
    assert time.monotonic() - started < 3
    assert str(err.value) == (
        f"{address}/app:1: {address} did not answer within 1s "
        "(STRATA_REGISTRY_DEADLINE sets the limit)"
    )


def test_a_trickled_blob_fails_under_the_minimum_rate(fake_http: Serve) -> None:
    data = os.urandom(100)

    class Trickle(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            else:
                trickle(self, data, 0.3)

    address = fake_http(Trickle)
    digest = Digest.of(data)
    with (
        client_for(address, limits=FAST) as client,
        client.get_blob("app", digest) as stream,
        pytest.raises(TooSlow) as err,
    ):
        b"".join(stream.iter_chunks())
    assert str(err.value).startswith(f"{address}/app: blob {digest}: {address} is too slow")


def test_a_trickled_pull_fails_with_one_line(
    fake_http: Serve, strata: Strata, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Trickle(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            else:
                trickle(self, MANIFEST, 0.5)

    address = fake_http(Trickle)
    monkeypatch.setenv("STRATA_REGISTRY_MIN_RATE", "100")
    monkeypatch.setenv("STRATA_REGISTRY_RATE_WINDOW", "1")
    started = time.monotonic()
    line = strata.fail("pull", f"{address}/app:1")
    assert time.monotonic() - started < 15
    assert f"{address} is too slow" in line and "STRATA_REGISTRY_MIN_RATE" in line


def test_a_bad_limit_in_the_environment_is_named() -> None:
    with pytest.raises(InvalidArgument) as err:
        Limits.from_env({"STRATA_REGISTRY_MIN_RATE": "fast"})
    assert str(err.value) == "invalid STRATA_REGISTRY_MIN_RATE 'fast': not a non-negative number"


# -- JSON nested too deep ------------------------------------------------------------------------


def test_deep_json_from_a_token_server_is_one_line(fake_http: Serve, strata: Strata) -> None:
    class Realm(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, DEEP, {"Content-Type": "application/json"})

    realm = fake_http(Realm)

    class Registry(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(401, b"", {"WWW-Authenticate": f'Bearer realm="http://{realm}/t"'})

    address = fake_http(Registry)
    line = strata.fail("pull", f"{address}/app:1")
    assert f"token from http://{realm}/t: response: not valid JSON: nested too deeply" in line


def test_deep_json_in_manifests_and_error_bodies(fake_http: Serve) -> None:
    class Deep(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            elif "manifests/deep" in self.path or "tags" in self.path:
                self.send(200, DEEP, {"Content-Type": "application/json"})
            else:
                self.send(404, b'{"errors":' + DEEP[:60_000] + b"}")

    address = fake_http(Deep)
    with client_for(address) as client:
        with pytest.raises(FormatError) as err:
            client.get_manifest("app", "deep", ACCEPT)
        assert "nested too deeply" in str(err.value)
        with pytest.raises(FormatError) as err:
            client.tags("app")
        assert str(err.value).startswith(f"{address}/app: tags list: not valid JSON: nested too")
        with pytest.raises(RegistryError) as missing:
            client.get_manifest("app", "gone", ACCEPT)
        assert "not found (HTTP 404" in str(missing.value)


def test_load_of_an_archive_with_a_deep_manifest_json(strata: Strata, tmp_path: Path) -> None:
    archive = tmp_path / "deep.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(DEEP)
        tar.addfile(info, io.BytesIO(DEEP))
    line = strata.fail("load", "-i", str(archive))
    assert "manifest.json: not valid JSON: nested too deeply" in line, line
