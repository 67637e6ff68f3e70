"""One suite of `RegistryClient` behaviours, held against every backend it may talk to.

The backends: the in-memory registry of `tests/registry/memory.py` behind `httpx.MockTransport`
(anonymous, and with anonymous token auth), and Debian's docker-registry on loopback (peers).
Each test runs on all of them; where the memory registry and the real one differ, the memory
registry is the one to fix, so fault tests built on it stay true to a real registry.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from strata.digest import Digest
from strata.errors import DigestMismatch, RegistryError, RegistryNotFound
from strata.oci import mediatypes as mt
from strata.registry.client import RegistryClient
from strata.registry.deadline import Limits, TooSlow
from tests.registry.memory import HOST, MemoryRegistry

ACCEPT = [mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST]


@dataclass
class Backend:
    """A client and the name the client's messages give its registry."""

    client: RegistryClient
    address: str
    memory: MemoryRegistry | None = None


@pytest.fixture(
    params=[
        "memory",
        "memory-token",
        pytest.param("docker-registry", marks=pytest.mark.peers),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "docker-registry":
        registry = request.getfixturevalue("registry")
        with RegistryClient(registry.address, retries=1, backoff=0.01) as client:
            yield Backend(client, registry.address)
        return
    memory = MemoryRegistry(token=request.param == "memory-token")
    with RegistryClient(HOST, retries=1, backoff=0.01, transport=memory.transport()) as client:
        yield Backend(client, HOST, memory)


def repo_name() -> str:
    return f"conformance/{secrets.token_hex(4)}"


def push_blob(client: RegistryClient, repo: str, data: bytes) -> Digest:
    digest = Digest.of(data)
    client.upload_blob(repo, digest, len(data), io.BytesIO(data))
    return digest


def image_manifest(client: RegistryClient, repo: str) -> bytes:
    """Upload a config and a layer; return an OCI manifest naming them."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": secrets.token_hex(4)})
    layer = os.urandom(2048)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.OCI_CONFIG,
            "digest": str(push_blob(client, repo, config.encode())),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": mt.OCI_LAYER_GZIP,
                "digest": str(push_blob(client, repo, layer)),
                "size": len(layer),
            }
        ],
    }
    return json.dumps(manifest).encode()


def test_ping(backend: Backend) -> None:
    backend.client.ping()


def test_anonymous_token_is_fetched_and_used() -> None:
    # Only the memory registry offers anonymous tokens (the token_registry fixture grants
    # nothing to anonymous users); the suite's memory-token backend runs every test through it.
    memory = MemoryRegistry(token=True)
    with RegistryClient(HOST, retries=0, transport=memory.transport()) as client:
        push_blob(client, repo_name(), b"hello")
    requests = memory.requests
    assert requests[0] == "GET /v2/"  # the ping learns the challenge
    assert "GET /token" in requests
    # One token per scope set, not one per request.
    assert requests.count("GET /token") < len(requests) // 2


def test_manifest_put_get_head_by_tag_and_digest(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    data = image_manifest(client, repo)
    digest = client.put_manifest(repo, "v1", data, mt.OCI_MANIFEST)
    assert digest == Digest.of(data)
    for ref in ("v1", str(digest)):
        got = client.get_manifest(repo, ref, ACCEPT)
        assert (got.media_type, got.digest, got.data) == (mt.OCI_MANIFEST, digest, data)
        assert client.head_manifest(repo, ref, ACCEPT) == (digest, len(data), mt.OCI_MANIFEST)
    assert client.head_manifest(repo, "v2", ACCEPT) is None


def test_manifests_that_the_registry_refuses(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    with pytest.raises(RegistryError, match="MANIFEST_INVALID") as err:
        client.put_manifest(repo, "j", b"not json", mt.OCI_MANIFEST)
    assert "\n" not in str(err.value)
    child = {"mediaType": mt.OCI_MANIFEST, "digest": str(Digest.of(b"x")), "size": 1}
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [child]}
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
        client.put_manifest(repo, "i", json.dumps(index).encode(), mt.OCI_INDEX)


def test_manifest_by_digest_only_and_its_blobs_must_exist(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    data = image_manifest(client, repo)
    digest = client.put_manifest(repo, str(Digest.of(data)), data, mt.OCI_MANIFEST)
    assert client.get_manifest(repo, str(digest), ACCEPT).data == data
    # A manifest naming a blob the repository lacks is refused by the registry.
    other = repo_name()
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN") as err:
        client.put_manifest(other, "v1", data, mt.OCI_MANIFEST)
    assert "\n" not in str(err.value)


def test_monolithic_upload_head_and_get(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    data = os.urandom(300_017)
    digest = Digest.of(data)
    assert client.blob_size(repo, digest) is None
    reported: list[int] = []
    client.upload_blob(repo, digest, len(data), io.BytesIO(data), progress=reported.append)
    assert sum(reported) == len(data)
    assert client.blob_size(repo, digest) == len(data)
    with client.get_blob(repo, digest) as stream:
        assert (stream.offset, stream.total) == (0, len(data))
        got = b"".join(stream.iter_chunks(65536))
    assert Digest.of(got) == digest


def test_chunked_upload_and_ranged_get(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    data = os.urandom(250_003)
    digest = Digest.of(data)
    reported: list[int] = []
    client.upload_blob(
        repo, digest, len(data), io.BytesIO(data), chunk_size=100_000, progress=reported.append
    )
    assert reported == [100_000, 100_000, 50_003]
    with client.get_blob(repo, digest, offset=123_456) as stream:
        assert (stream.offset, stream.total) == (123_456, len(data))
        assert b"".join(stream.iter_chunks()) == data[123_456:]
    # A Range past the end is refused (416) and the download starts over from byte 0.
    with client.get_blob(repo, digest, offset=len(data)) as stream:
        assert (stream.offset, stream.total) == (0, len(data))
        assert b"".join(stream.iter_chunks()) == data


def test_empty_blob_both_ways(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    digest = Digest.of(b"")
    client.upload_blob(repo, digest, 0, io.BytesIO(b""))
    client.upload_blob(repo, digest, 0, io.BytesIO(b""), chunk_size=10)
    assert client.blob_size(repo, digest) == 0


def test_wrong_digest_is_refused(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    wrong = Digest.of(b"something else")
    for chunk_size in (None, 3):
        with pytest.raises(DigestMismatch, match=f"blob {wrong}: the registry rejected") as err:
            client.upload_blob(repo, wrong, 5, io.BytesIO(b"hello"), chunk_size=chunk_size)
        assert "DIGEST_INVALID" in str(err.value) and "\n" not in str(err.value)
    assert client.blob_size(repo, wrong) is None
    with pytest.raises(DigestMismatch, match="manifest digest mismatch"):
        client.put_manifest(repo, str(wrong), b"{}", mt.OCI_MANIFEST)


def test_not_found_maps_to_one_line_errors(backend: Backend) -> None:
    client, address = backend.client, backend.address
    with pytest.raises(RegistryNotFound) as err:
        client.get_manifest("no/such-repo", "1", ACCEPT)
    message = str(err.value)
    assert message.startswith(f"{address}/no/such-repo:1: not found")
    assert "MANIFEST_UNKNOWN" in message and "\n" not in message
    with pytest.raises(RegistryNotFound, match="NAME_UNKNOWN"):
        client.tags("no/such-repo")
    missing = Digest.of(b"missing")
    with (
        pytest.raises(RegistryNotFound, match=f"blob {missing}: not found"),
        client.get_blob("no/such-repo", missing),
    ):
        pass


def test_tags_list_and_delete(backend: Backend) -> None:
    client, repo = backend.client, repo_name()
    data = image_manifest(client, repo)
    digest = client.put_manifest(repo, "b", data, mt.OCI_MANIFEST)
    client.put_manifest(repo, "a", data, mt.OCI_MANIFEST)
    assert sorted(client.tags(repo)) == ["a", "b"]
    client.delete_manifest(repo, digest)
    assert client.head_manifest(repo, str(digest), ACCEPT) is None
    assert client.tags(repo) == []  # the tags went with the manifest, the repository stays
    with pytest.raises(RegistryNotFound, match=f"{repo}@{digest}: not found"):
        client.get_manifest(repo, str(digest), ACCEPT)
    with pytest.raises(RegistryNotFound):
        client.delete_manifest(repo, digest)


def test_cross_repository_mount(backend: Backend) -> None:
    client = backend.client
    source, target = repo_name(), repo_name()
    digest = push_blob(client, source, os.urandom(1000))
    assert client.blob_size(target, digest) is None  # blobs are per repository
    assert client.mount_blob(target, digest, source) is True
    assert client.blob_size(target, digest) == 1000
    absent = Digest.of(os.urandom(10))
    assert client.mount_blob(target, absent, source) is False
    assert client.blob_size(target, absent) is None


# -- the seam itself: what holds for any given transport -------------------------------------


def test_a_given_transport_keeps_the_minimum_rate() -> None:
    # The rate is checked above the transport, on bodies that stream (a MockTransport body
    # given as bytes is whole before the client sees it, so the test streams it). With a window
    # of a nanosecond and a rate no transfer reaches, the first chunk already falls under it.
    memory = MemoryRegistry()

    def streamed(request: httpx.Request) -> httpx.Response:
        answer = memory.handle(request)
        if request.method != "GET" or "/blobs/sha256:" not in request.url.path:
            return answer
        return httpx.Response(
            answer.status_code, headers=answer.headers, content=iter([answer.content])
        )

    limits = Limits(deadline=0, min_rate=1e15, window=1e-9)
    with RegistryClient(HOST, retries=0, transport=memory.transport()) as client:
        digest = push_blob(client, "seam/rate", b"x" * 1000)
    slow = RegistryClient(HOST, retries=0, limits=limits, transport=httpx.MockTransport(streamed))
    with slow, slow.get_blob("seam/rate", digest) as stream:
        with pytest.raises(TooSlow, match=f"{HOST} is too slow") as err:
            b"".join(stream.iter_chunks())
        assert "\n" not in str(err.value)


def test_a_given_transport_gets_retries_and_auth() -> None:
    # A fault test in a few lines: the memory registry, answering 503 to the first blob GET.
    memory = MemoryRegistry(token=True)
    failed: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/blobs/sha256:" in request.url.path and not failed:
            failed.append(request.url.path)
            return httpx.Response(503)
        return memory.handle(request)

    with RegistryClient(HOST, retries=2, backoff=0, transport=httpx.MockTransport(flaky)) as c:
        digest = push_blob(c, "seam/retry", b"hello")
        with c.get_blob("seam/retry", digest) as stream:
            assert b"".join(stream.iter_chunks()) == b"hello"
    assert len(failed) == 1
    assert memory.requests.count(f"GET /v2/seam/retry/blobs/{digest}") == 1
