"""RegistryClient against a real registry (Debian's docker-registry on 127.0.0.1)."""

from __future__ import annotations

import io
import json
import os
import secrets
from collections.abc import Iterator

import pytest

from strata.digest import Digest
from strata.errors import (
    DigestMismatch,
    InvalidReference,
    RegistryNotFound,
    SizeMismatch,
    TooLarge,
)
from strata.oci import mediatypes as mt
from strata.registry.client import RegistryClient
from tests.registry.conftest import Registry

pytestmark = pytest.mark.peers

ACCEPT = [mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST]


def repo_name() -> str:
    return f"client/{secrets.token_hex(4)}"


@pytest.fixture
def client(registry: Registry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.address, retries=1, backoff=0.01) as c:
        yield c


def push_blob(client: RegistryClient, repo: str, data: bytes) -> Digest:
    digest = Digest.of(data)
    client.upload_blob(repo, digest, len(data), io.BytesIO(data))
    return digest


def image_manifest(client: RegistryClient, repo: str, *, docker: bool = False) -> bytes:
    """Upload a config and a layer; return a manifest (OCI or Docker schema 2) naming them."""
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": secrets.token_hex(4)})
    config_digest = push_blob(client, repo, config.encode())
    layer_digest = push_blob(client, repo, layer)
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
            "digest": str(config_digest),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
                "digest": str(layer_digest),
                "size": len(layer),
            }
        ],
    }
    return json.dumps(manifest, indent=2).encode()


def test_ping_and_scheme(client: RegistryClient, registry: Registry) -> None:
    client.ping()
    assert client.base_url == f"http://{registry.address}"


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker"])
def test_manifest_put_get_head_by_tag_and_digest(client: RegistryClient, docker: bool) -> None:
    repo = repo_name()
    data = image_manifest(client, repo, docker=docker)
    media_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
    digest = client.put_manifest(repo, "v1", data, media_type)
    assert digest == Digest.of(data)

    by_tag = client.get_manifest(repo, "v1", ACCEPT)
    by_digest = client.get_manifest(repo, str(digest), ACCEPT)
    for got in (by_tag, by_digest):
        assert (got.media_type, got.digest, got.data) == (media_type, digest, data)
    assert client.head_manifest(repo, "v1", ACCEPT) == (digest, len(data), media_type)
    assert client.head_manifest(repo, str(digest), ACCEPT) == (digest, len(data), media_type)
    assert client.head_manifest(repo, "nope", ACCEPT) is None


def test_put_manifest_by_digest_and_index(client: RegistryClient) -> None:
    repo = repo_name()
    data = image_manifest(client, repo)
    digest = client.put_manifest(repo, str(Digest.of(data)), data, mt.OCI_MANIFEST)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": str(digest),
                    "size": len(data),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    index_digest = client.put_manifest(repo, "multi", index, mt.OCI_INDEX)
    got = client.get_manifest(repo, "multi", ACCEPT)
    assert (got.media_type, got.digest, got.data) == (mt.OCI_INDEX, index_digest, index)


def test_put_manifest_refuses_wrong_digest_and_oversize(client: RegistryClient) -> None:
    repo = repo_name()
    with pytest.raises(DigestMismatch, match="manifest digest mismatch"):
        client.put_manifest(repo, str(Digest.of(b"other")), b"{}", mt.OCI_MANIFEST)
    with pytest.raises(TooLarge, match="over the 4 MiB limit"):
        client.put_manifest(repo, "big", b" " * (4 * 1024 * 1024 + 1), mt.OCI_MANIFEST)


def test_chunked_upload(client: RegistryClient) -> None:
    repo = repo_name()
    data = os.urandom(2 * 1024 * 1024 + 5)
    digest = Digest.of(data)
    reported: list[int] = []
    source = io.BytesIO(b"skip" + data)
    source.seek(4)
    client.upload_blob(
        repo, digest, len(data), source, chunk_size=1024 * 1024, progress=reported.append
    )
    assert reported == [1024 * 1024, 1024 * 1024, 5]
    assert client.blob_size(repo, digest) == len(data)


def test_empty_blob_both_ways(client: RegistryClient) -> None:
    repo = repo_name()
    digest = Digest.of(b"")
    client.upload_blob(repo, digest, 0, io.BytesIO(b""))
    client.upload_blob(repo, digest, 0, io.BytesIO(b""), chunk_size=10)
    assert client.blob_size(repo, digest) == 0


def test_get_blob_resumes_from_an_offset(client: RegistryClient) -> None:
    repo = repo_name()
    data = os.urandom(200_000)
    digest = push_blob(client, repo, data)
    with client.get_blob(repo, digest, offset=123_456) as stream:
        assert (stream.offset, stream.total) == (123_456, len(data))
        assert b"".join(stream.iter_chunks()) == data[123_456:]


def test_upload_with_wrong_digest_or_short_source(client: RegistryClient) -> None:
    repo = repo_name()
    wrong = Digest.of(b"something else")
    with pytest.raises(DigestMismatch, match=f"blob {wrong}: the registry rejected the digest"):
        client.upload_blob(repo, wrong, 5, io.BytesIO(b"hello"))
    with pytest.raises(SizeMismatch, match="source ended after 5 of 9 bytes"):
        client.upload_blob(repo, Digest.of(b"hellohell"), 9, io.BytesIO(b"hello"))
    with pytest.raises(SizeMismatch, match="source ended after 5 of 9 bytes"):
        client.upload_blob(repo, Digest.of(b"hellohell"), 9, io.BytesIO(b"hello"), chunk_size=4)


def test_cross_repository_mount(client: RegistryClient) -> None:
    source, target = repo_name(), repo_name()
    digest = push_blob(client, source, os.urandom(1000))
    assert client.mount_blob(target, digest, source) is True
    assert client.blob_size(target, digest) == 1000
    # A blob the source does not have: the registry opens an upload instead (202).
    absent = Digest.of(os.urandom(10))
    assert client.mount_blob(target, absent, source) is False
    assert client.blob_size(target, absent) is None


def test_tags_list_and_delete(client: RegistryClient, registry: Registry) -> None:
    repo = repo_name()
    data = image_manifest(client, repo)
    digest = client.put_manifest(repo, "b", data, mt.OCI_MANIFEST)
    client.put_manifest(repo, "a", data, mt.OCI_MANIFEST)
    assert sorted(client.tags(repo)) == ["a", "b"]
    client.delete_manifest(repo, digest)
    assert client.head_manifest(repo, str(digest), ACCEPT) is None
    with pytest.raises(RegistryNotFound) as err:
        client.get_manifest(repo, str(digest), ACCEPT)
    assert str(err.value).startswith(f"{registry.address}/{repo}@{digest}: not found")
    with pytest.raises(RegistryNotFound):
        client.delete_manifest(repo, digest)


def test_bad_names_are_refused_before_any_request(client: RegistryClient) -> None:
    with pytest.raises(InvalidReference, match="invalid repository name"):
        client.tags("../v2")
    with pytest.raises(InvalidReference, match="invalid tag"):
        client.get_manifest("ok", "bad/tag", ACCEPT)
    with pytest.raises(InvalidReference):
        RegistryClient("not a host")
