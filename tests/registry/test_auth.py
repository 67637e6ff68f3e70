"""Authentication: challenge parsing, basic auth and Docker's bearer tokens against real registries
(htpasswd and token auth in docker-registry, the token server from conftest)."""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import AccessDenied, AuthenticationRequired
from strata.oci import mediatypes as mt
from strata.registry.auth import Challenge, grant_of, parse_challenges, scopes_of
from strata.registry.client import RegistryClient
from strata.registry.credentials import CredentialStore
from tests.registry.conftest import (
    PASSWORD,
    READER,
    READER_PASSWORD,
    USER,
    Registry,
    TokenRegistry,
)


def repo_name() -> str:
    return f"auth/{secrets.token_hex(4)}"


def credentials(tmp_path: Path, address: str, user: str, password: str) -> CredentialStore:
    store = CredentialStore.load(tmp_path / "config.json")
    store.store(address, user, password)
    return store


def push_blob(client: RegistryClient, repo: str, data: bytes) -> Digest:
    digest = Digest.of(data)
    client.upload_blob(repo, digest, len(data), io.BytesIO(data))
    return digest


# -- challenges and scopes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/debian:pull"',
            [
                Challenge(
                    "bearer",
                    {
                        "realm": "https://auth.docker.io/token",
                        "service": "registry.docker.io",
                        "scope": "repository:library/debian:pull",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
        (
            'Negotiate abc==, BASIC realm=plain , Bearer realm="r", error="insufficient_scope"',
            [
                Challenge("negotiate"),
                Challenge("basic", {"realm": "plain"}),
                Challenge("bearer", {"realm": "r", "error": "insufficient_scope"}),
            ],
        ),
        ('Basic realm="say \\"hi\\", ok"', [Challenge("basic", {"realm": 'say "hi", ok'})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list[Challenge]) -> None:
    assert parse_challenges(header) == expected


def test_scopes_merge_by_resource() -> None:
    grant = grant_of(["repository:a:pull", "repository:a:push,pull", "repository:b/c:pull"])
    assert grant_of(["repository:a:pull"]) <= grant
    assert scopes_of(grant) == ["repository:a:pull,push", "repository:b/c:pull"]
    assert Challenge("bearer", {"scope": "x:y:pull z:w:push"}).scopes == {
        "x:y:pull",
        "z:w:push",
    }


# -- basic ---------------------------------------------------------------------------------


@pytest.mark.peers
def test_basic_auth_without_credentials_is_one_clear_line(basic_registry: Registry) -> None:
    address = basic_registry.address
    with RegistryClient(address, retries=0) as client:
        client.ping()  # reachable; nobody to authenticate yet
        with pytest.raises(AuthenticationRequired) as err:
            client.get_manifest("app", "1", [mt.OCI_MANIFEST])
    message = str(err.value)
    assert message.startswith(
        f"{address}/app:1: authentication required, no credentials for {address} "
        f"(strata login {address})"
    )
    assert "\n" not in message


@pytest.mark.peers
def test_basic_auth_with_wrong_password(basic_registry: Registry, tmp_path: Path) -> None:
    store = credentials(tmp_path, basic_registry.address, USER, "wrong")
    with RegistryClient(basic_registry.address, credentials=store, retries=0) as client:
        with pytest.raises(
            AuthenticationRequired, match=f"authentication failed for user '{USER}'"
        ):
            client.ping()
        with pytest.raises(AuthenticationRequired, match="/app:1: authentication failed"):
            client.get_manifest("app", "1", [mt.OCI_MANIFEST])


@pytest.mark.peers
def test_basic_auth_round_trip(basic_registry: Registry, tmp_path: Path) -> None:
    store = credentials(tmp_path, basic_registry.address, USER, PASSWORD)
    repo = repo_name()
    with RegistryClient(basic_registry.address, credentials=store, retries=0) as client:
        client.ping()
        data = os.urandom(1000)
        digest = push_blob(client, repo, data)
        with client.get_blob(repo, digest) as stream:
            assert b"".join(stream.iter_chunks()) == data


# -- bearer tokens ---------------------------------------------------------------------------


@pytest.mark.peers
def test_token_auth_anonymous_is_refused_clearly(token_registry: TokenRegistry) -> None:
    address = token_registry.address
    with RegistryClient(address, retries=0) as client:
        client.ping()
        with pytest.raises(AuthenticationRequired) as err:
            client.tags("app")
    assert str(err.value).startswith(
        f"{address}/app: authentication required, no credentials for {address}"
    )


@pytest.mark.peers
def test_token_auth_wrong_password(token_registry: TokenRegistry, tmp_path: Path) -> None:
    store = credentials(tmp_path, token_registry.address, USER, "wrong")
    with (
        RegistryClient(token_registry.address, credentials=store, retries=0) as client,
        pytest.raises(AuthenticationRequired) as err,
    ):
        client.ping()
    assert f"authentication failed for user '{USER}'" in str(err.value)
    assert "incorrect username or password" in str(err.value)


@pytest.mark.peers
def test_tokens_are_scoped_and_reused(token_registry: TokenRegistry, tmp_path: Path) -> None:
    store = credentials(tmp_path, token_registry.address, USER, PASSWORD)
    tokens = token_registry.tokens
    source, target = repo_name(), repo_name()
    with RegistryClient(token_registry.address, credentials=store, retries=0) as client:
        tokens.reset()
        data = os.urandom(2000)
        digest = push_blob(client, source, data)
        assert client.blob_size(source, digest) == len(data)
        with client.get_blob(source, digest) as stream:
            assert b"".join(stream.iter_chunks()) == data
        push_blob(client, source, b"second blob")
        # One token (pull,push) served every request on the repository.
        assert [(r.scopes, r.user) for r in tokens.requests] == [
            ([f"repository:{source}:pull,push"], USER)
        ]
        assert tokens.requests[0].service == "strata-test-registry"

        assert client.mount_blob(target, digest, source) is True
        assert sorted(tokens.requests[-1].scopes) == sorted(
            [f"repository:{source}:pull", f"repository:{target}:pull,push"]
        )
        manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
        pushed = client.put_manifest(target, "v1", manifest.encode(), mt.OCI_INDEX)
        assert client.get_manifest(target, "v1", [mt.OCI_INDEX]).digest == pushed
        assert client.tags(target) == ["v1"]
        assert len(tokens.requests) == 2  # the mount token covers the target too


@pytest.mark.peers
def test_push_without_push_access_is_denied(token_registry: TokenRegistry, tmp_path: Path) -> None:
    store = credentials(tmp_path, token_registry.address, READER, READER_PASSWORD)
    repo = repo_name()
    with (
        RegistryClient(token_registry.address, credentials=store, retries=0) as client,
        pytest.raises(AccessDenied) as err,
    ):
        push_blob(client, repo, b"not allowed")
    message = str(err.value)
    assert f"access denied to user '{READER}'" in message
    assert f"repository:{repo}:pull,push" in message and "\n" not in message


@pytest.mark.peers
def test_identity_token_is_exchanged_with_oauth(
    token_registry: TokenRegistry, tmp_path: Path
) -> None:
    refresh = secrets.token_hex(8)
    token_registry.tokens.refresh_tokens[refresh] = USER
    config = tmp_path / "config.json"
    auths = {token_registry.address: {"auth": "", "identitytoken": refresh}}
    config.write_text(json.dumps({"auths": auths}))
    store = CredentialStore.load(config)
    repo = repo_name()
    with RegistryClient(token_registry.address, credentials=store, retries=0) as client:
        token_registry.tokens.reset()
        digest = push_blob(client, repo, b"via refresh token")
        assert client.blob_size(repo, digest) == len(b"via refresh token")
    requests = token_registry.tokens.requests
    assert [(r.method, r.scopes, r.user) for r in requests] == [
        ("POST", [f"repository:{repo}:pull,push"], USER)
    ]
