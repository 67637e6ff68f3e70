"""RegistryClient against small fake registries, for faults no real registry commits on demand:
server errors, wrong or oversized manifests, cut-off blobs, redirects to storage, pages."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    FormatError,
    RegistryError,
    RegistryUnreachable,
    TooLarge,
)
from strata.oci import mediatypes as mt
from strata.registry.client import RegistryClient
from strata.registry.credentials import CredentialStore
from tests.registry.conftest import FakeHandler

Serve = Callable[[type[FakeHandler]], str]
ACCEPT = [mt.OCI_MANIFEST, mt.OCI_INDEX]
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": []}).encode()


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def client_for(address: str, **kw: object) -> RegistryClient:
    return RegistryClient(address, retries=4, backoff=0.001, **kw)  # type: ignore[arg-type]


def test_server_errors_are_retried_until_they_pass(fake_http: Serve) -> None:
    calls = Counter()

    class Flaky(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            elif calls.next() <= 2:
                self.send(503 if calls.n == 1 else 429, b"busy")
            else:
                self.send(200, MANIFEST, {"Content-Type": mt.OCI_MANIFEST})

    with client_for(fake_http(Flaky)) as client:
        got = client.get_manifest("app", "1", ACCEPT)
    assert (got.data, got.media_type, calls.n) == (MANIFEST, mt.OCI_MANIFEST, 3)


def test_server_errors_give_up_after_the_retries(fake_http: Serve) -> None:
    calls = Counter()

    class Broken(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            calls.next()
            body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "disk on fire"}]})
            self.send(500, body.encode(), {"Content-Type": "application/json"})

    address = fake_http(Broken)
    with (
        RegistryClient(address, retries=2, backoff=0.001) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.get_manifest("app", "1", ACCEPT)
    assert calls.n == 3
    assert str(err.value) == (
        f"{address}/app:1: registry answered HTTP 500 UNKNOWN: disk on fire after 3 attempts"
    )


def test_client_errors_are_not_retried(fake_http: Serve) -> None:
    calls = Counter()

    class Refusing(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            calls.next()
            self.send(400, b"bad request")

    with client_for(fake_http(Refusing)) as client, pytest.raises(RegistryError, match="400"):
        client.get_manifest("app", "1", ACCEPT)
    assert calls.n == 1


def test_manifest_by_digest_must_match(fake_http: Serve) -> None:
    asked = Digest.of(b"the manifest that was asked for")

    class Lying(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, MANIFEST, {"Content-Type": mt.OCI_MANIFEST})

    address = fake_http(Lying)
    with client_for(address) as client, pytest.raises(DigestMismatch) as err:
        client.get_manifest("app", str(asked), ACCEPT)
    assert str(err.value) == (
        f"{address}/app@{asked}: manifest digest mismatch (got {Digest.of(MANIFEST)})"
    )


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_manifest_over_4_mib_is_refused(fake_http: Serve, declared: bool) -> None:
    big = b"{" + b" " * (4 * 1024 * 1024) + b"}"

    class Huge(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            try:
                if declared:
                    self.send(200, big, {"Content-Type": mt.OCI_MANIFEST})
                    return
                self.send_response(200)
                self.send_header("Content-Type", mt.OCI_MANIFEST)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(big), 65536):
                    part = big[i : i + 65536]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client hung up, as it should

    address = fake_http(Huge)
    with client_for(address) as client, pytest.raises(TooLarge) as err:
        client.get_manifest("app", "1", ACCEPT)
    assert str(err.value).startswith(f"{address}/app:1: manifest ")
    assert str(err.value).endswith("is over the limit of 4194304 bytes")


def test_media_type_comes_from_the_body_when_the_header_is_generic(fake_http: Serve) -> None:
    class Generic(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            body = MANIFEST if self.path.endswith("/1") else b'{"schemaVersion": 2}'
            self.send(200, body, {"Content-Type": "application/json; charset=utf-8"})

    with client_for(fake_http(Generic)) as client:
        assert client.get_manifest("app", "1", ACCEPT).media_type == mt.OCI_MANIFEST
        with pytest.raises(FormatError, match="manifest has no media type"):
            client.get_manifest("app", "2", ACCEPT)


@pytest.mark.parametrize("honours_range", [True, False], ids=["range", "no-range"])
def test_a_cut_off_blob_download_resumes(fake_http: Serve, honours_range: bool) -> None:
    data = os.urandom(300_000)
    ranges: list[str | None] = []

    class Cutting(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            ranges.append(self.headers.get("Range"))
            if len(ranges) == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:100_000])
                self.wfile.flush()
                self.close_connection = True
                return
            start = int(ranges[-1].removeprefix("bytes=").rstrip("-")) if ranges[-1] else 0
            if not honours_range:
                start = 0
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            self.send(206 if start else 200, data[start:], headers if start else {})

    digest = Digest.of(data)
    with client_for(fake_http(Cutting)) as client, client.get_blob("app", digest) as stream:
        got = b"".join(stream.iter_chunks(32768))
    assert got == data
    assert ranges == [None, "bytes=100000-"]


def test_a_blob_download_cut_every_time_fails_cleanly(fake_http: Serve) -> None:
    class AlwaysCutting(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
                return
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True

    digest = Digest.of(b"whatever")
    address = fake_http(AlwaysCutting)
    with (
        RegistryClient(address, retries=1, backoff=0.001) as client,
        pytest.raises(RegistryUnreachable) as err,
        client.get_blob("app", digest) as stream,
    ):
        b"".join(stream.iter_chunks())
    assert str(err.value).startswith(f"{address}/app: blob {digest}: connection lost after")


def test_blob_redirect_to_storage_drops_credentials(fake_http: Serve, tmp_path: Path) -> None:
    data = os.urandom(5000)
    seen: list[tuple[str | None, str | None]] = []

    class Storage(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            seen.append((self.headers.get("Authorization"), self.headers.get("Range")))
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            self.send(206, data[start:], headers)

    storage = fake_http(Storage)
    expected = "Basic " + base64.b64encode(b"alice:pw").decode()

    class Registry(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.headers.get("Authorization") != expected:
                self.send(401, b"", {"WWW-Authenticate": 'Basic realm="fake"'})
            elif self.path == "/v2/":
                self.send(200, b"{}")
            else:
                self.send(307, b"", {"Location": f"http://{storage}/blob?sig=1"})

    address = fake_http(Registry)
    store = CredentialStore.load(tmp_path / "config.json")
    store.store(address, "alice", "pw")
    with (
        client_for(address, credentials=store) as client,
        client.get_blob("app", Digest.of(data), offset=1000) as stream,
    ):
        assert (stream.offset, stream.total) == (1000, len(data))
        assert b"".join(stream.iter_chunks()) == data[1000:]
    assert seen == [(None, "bytes=1000-")]


def test_tags_follow_the_link_header(fake_http: Serve) -> None:
    class Paged(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            elif "last=" not in self.path:
                body = json.dumps({"name": "app", "tags": ["a", "b"]}).encode()
                link = '</v2/app/tags/list?last=b&n=2>; rel="next"'
                self.send(200, body, {"Link": link, "Content-Type": "application/json"})
            else:
                self.send(200, json.dumps({"name": "app", "tags": ["c"]}).encode())

    with client_for(fake_http(Paged)) as client:
        assert client.tags("app") == ["a", "b", "c"]


def test_a_compressed_json_answer_is_read_once(fake_http: Serve) -> None:
    class Gzipping(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            body = gzip.compress(json.dumps({"name": "app", "tags": ["z"]}).encode())
            self.send(200, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})

    with client_for(fake_http(Gzipping)) as client:
        assert client.tags("app") == ["z"]


def test_an_upload_failing_at_the_end_starts_again(fake_http: Serve) -> None:
    data = os.urandom(2_500_000)
    digest = Digest.of(data)
    puts: list[tuple[str, int]] = []

    class FailsOnce(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, b"{}")

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(202, b"", {"Location": "/v2/app/blobs/uploads/u1?_state=xyz"})

        def do_PUT(self) -> None:  # noqa: N802 (http.server calls it)
            body = self.read_body()
            puts.append((self.path, len(body)))
            if len(puts) == 1:
                self.send(500, b"oops")
            elif body == data:
                self.send(201, b"", {"Docker-Content-Digest": str(digest)})
            else:
                self.send(400, b"wrong bytes")

    reported: list[int] = []
    source = io.BytesIO(data)
    with client_for(fake_http(FailsOnce)) as client:
        client.upload_blob("app", digest, len(data), source, progress=reported.append)
    # The Location's own query survives, with the digest added to it.
    want = f"/v2/app/blobs/uploads/u1?_state=xyz&digest={digest}".replace(":", "%3A")
    assert puts == [(want, len(data)), (want, len(data))]
    assert sum(reported) == len(data)


def test_a_manifest_cut_off_mid_body_is_fetched_again(fake_http: Serve) -> None:
    calls = Counter()

    class CutOnce(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            if self.path == "/v2/":
                self.send(200, b"{}")
            elif calls.next() == 1:
                self.send_response(200)
                self.send_header("Content-Length", str(len(MANIFEST)))
                self.end_headers()
                self.wfile.write(MANIFEST[:10])
                self.close_connection = True
            else:
                self.send(200, MANIFEST, {"Content-Type": mt.OCI_MANIFEST})

    with client_for(fake_http(CutOnce)) as client:
        assert client.get_manifest("app", "1", ACCEPT).data == MANIFEST
    assert calls.n == 2


def test_head_of_a_large_blob_reads_no_body(fake_http: Serve) -> None:
    class Big(FakeHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, b"{}")

        def do_HEAD(self) -> None:  # noqa: N802 (http.server calls it)
            self.send(200, headers={"Content-Length": str(5 << 30)})

    with client_for(fake_http(Big)) as client:
        assert client.blob_size("app", Digest.of(b"large")) == 5 << 30
