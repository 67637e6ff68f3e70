"""Docker's config.json: auths, credential helpers (a real helper program on PATH), login and
logout writes, insecure registries."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from strata.digest import Digest
from strata.errors import FormatError, ToolError
from strata.registry.client import RegistryClient
from strata.registry.credentials import DOCKER_HUB_KEY, CredentialStore
from tests.registry.conftest import PASSWORD, USER, Registry

HELPER = """#!{python}
# A docker-credential-* helper keeping its secrets in a JSON file beside it.
import json, pathlib, sys
here = pathlib.Path(__file__).parent
db = here / "helper-db.json"
data = json.loads(db.read_text()) if db.exists() else {{}}
action, given = sys.argv[1], sys.stdin.read()
with open(here / "helper-calls", "a") as log:
    log.write(json.dumps([action, given]) + "\\n")
if action == "store":
    entry = json.loads(given)
    data[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
elif given not in data:
    print("credentials not found in native keychain")
    sys.exit(1)
elif action == "get":
    user, secret = data[given]
    print(json.dumps({{"ServerURL": given, "Username": user, "Secret": secret}}))
elif action == "erase":
    del data[given]
db.write_text(json.dumps(data))
"""


def auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``docker-credential-test`` helper, first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-test"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def helper_calls(bin_dir: Path) -> list[list[str]]:
    log = bin_dir / "helper-calls"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_auths_entries(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {
            "auths": {
                "localhost:5000": {"auth": auth("alice", "pa:ss")},
                "http://other.example:5000/v1/": {"username": "bob", "password": "pw"},
                DOCKER_HUB_KEY: {"auth": auth("hubuser", "hubpw")},
                "ghcr.io": {"auth": auth("x", ""), "identitytoken": "refresh-me"},
                "empty.example": {},
            }
        },
    )
    store = CredentialStore.load(config)
    assert store.get("localhost:5000") == ("alice", "pa:ss")
    assert store.get("other.example:5000") == ("bob", "pw")
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY):
        assert store.get(hub) == ("hubuser", "hubpw")
    assert store.get("ghcr.io") == ("<token>", "refresh-me")
    assert store.get("empty.example") is None
    assert store.get("unknown.example") is None


def test_missing_file_and_docker_config_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    store = CredentialStore.load()
    assert store.path == tmp_path / "dockercfg" / "config.json"
    assert store.get("localhost:5000") is None
    assert store.insecure_registries == frozenset()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ("[" * 5000 + "]" * 5000, "not valid JSON: nested too deeply"),
        ('{"auths": {"r.example": {"auth": "%%%"}}}', "auths['r.example']: auth is not base64"),
        ('{"auths": {"r.example": {"auth": "bm9jb2xvbg=="}}}', "auth has no ':'"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, content: str, reason: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    with pytest.raises(FormatError) as err:
        CredentialStore.load(config).get("r.example")
    message = str(err.value)
    assert message.startswith(str(config)) and reason in message and "\n" not in message


def test_login_and_logout_write_the_file_0600(tmp_path: Path) -> None:
    config = tmp_path / "new" / ".docker" / "config.json"
    store = CredentialStore.load(config)
    store.store("localhost:5000", "alice", "secret")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    # Another program's keys survive our writes.
    data = json.loads(config.read_text())
    data["psFormat"] = "table {{.ID}}"
    config.write_text(json.dumps(data))
    store.store("docker.io", "hubuser", "hubpw")
    data = json.loads(config.read_text())
    assert data["psFormat"] == "table {{.ID}}"
    assert data["auths"] == {
        "localhost:5000": {"auth": auth("alice", "secret")},
        DOCKER_HUB_KEY: {"auth": auth("hubuser", "hubpw")},
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.json"]
    assert CredentialStore.load(config).get("localhost:5000") == ("alice", "secret")

    assert store.erase("localhost:5000") is True
    assert store.erase("localhost:5000") is False
    assert CredentialStore.load(config).get("localhost:5000") is None
    assert json.loads(config.read_text())["auths"] == {
        DOCKER_HUB_KEY: {"auth": auth("hubuser", "hubpw")}
    }


def test_cred_helpers_get_store_erase(tmp_path: Path, helper_dir: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {"credHelpers": {"localhost:5000": "test"}, "auths": {"localhost:5000": {}}},
    )
    store = CredentialStore.load(config)
    assert store.get("localhost:5000") is None  # the helper has nothing yet
    store.store("localhost:5000", "alice", "from-helper")
    assert CredentialStore.load(config).get("localhost:5000") == ("alice", "from-helper")
    # The secret went to the helper; the file only lists the server, as Docker leaves it.
    assert json.loads(config.read_text())["auths"] == {"localhost:5000": {}}
    assert store.erase("localhost:5000") is True
    assert store.get("localhost:5000") is None
    assert [c[0] for c in helper_calls(helper_dir)] == ["get", "store", "get", "erase", "get"]
    assert helper_calls(helper_dir)[0] == ["get", "localhost:5000"]


def test_creds_store_is_for_every_registry_but_cred_helpers_win(
    tmp_path: Path, helper_dir: Path
) -> None:
    config = write_config(
        tmp_path / "config.json",
        {
            "credsStore": "test",
            "credHelpers": {"plain.example": "missing-helper"},
            "auths": {"localhost:5000": {"auth": auth("ignored", "because-of-credsStore")}},
        },
    )
    store = CredentialStore.load(config)
    store.store("docker.io", "hubuser", "hubpw")
    assert store.get("index.docker.io") == ("hubuser", "hubpw")
    assert store.get("localhost:5000") is None
    assert helper_calls(helper_dir)[0][1] == json.dumps(
        {"ServerURL": DOCKER_HUB_KEY, "Username": "hubuser", "Secret": "hubpw"}
    )
    with pytest.raises(ToolError) as err:
        store.get("plain.example")
    assert str(err.value) == (
        "credential helper docker-credential-missing-helper for plain.example: not found on PATH"
    )


def test_a_failing_helper_is_a_tool_error(tmp_path: Path, helper_dir: Path) -> None:
    broken = helper_dir / "docker-credential-broken"
    broken.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    broken.chmod(0o755)
    config = write_config(tmp_path / "config.json", {"credsStore": "broken"})
    with pytest.raises(ToolError) as err:
        CredentialStore.load(config).get("r.example")
    assert str(err.value) == (
        "credential helper docker-credential-broken get r.example: exit status 3: keychain locked"
    )


def test_scheme_follows_docker_rules(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.json",
        {"insecure-registries": ["plain.example:5000", "10.1.0.0/16", "http://other.example/"]},
    )
    store = CredentialStore.load(config)
    assert store.insecure_registries == {"plain.example:5000", "10.1.0.0/16", "other.example"}
    cases = {
        "localhost:5000": "http://localhost:5000",
        "127.0.0.1:5000": "http://127.0.0.1:5000",
        "[::1]:5000": "http://[::1]:5000",
        "plain.example:5000": "http://plain.example:5000",
        "other.example:443": "http://other.example:443",
        "10.1.2.3:5000": "http://10.1.2.3:5000",
        "10.2.0.1": "https://10.2.0.1",
        "ghcr.io": "https://ghcr.io",
        "docker.io": "https://registry-1.docker.io",
        "https://index.docker.io/v1/": "https://registry-1.docker.io",
    }
    for name, url in cases.items():
        with RegistryClient(name, credentials=store) as client:
            assert client.base_url == url, name
    with RegistryClient("localhost:5000", insecure=False) as client:
        assert client.base_url == "https://localhost:5000"
    with RegistryClient("ghcr.io", insecure=True) as client:
        assert client.base_url == "http://ghcr.io"
    with RegistryClient("docker.io") as client:
        assert client.registry == "docker.io"


@pytest.mark.peers
def test_helper_credentials_reach_the_registry(
    basic_registry: Registry, tmp_path: Path, helper_dir: Path
) -> None:
    address = basic_registry.address
    config = write_config(tmp_path / "config.json", {"credHelpers": {address: "test"}})
    CredentialStore.load(config).store(address, USER, PASSWORD)
    with RegistryClient(address, credentials=CredentialStore.load(config), retries=0) as client:
        client.ping()
        assert client.blob_size("anything", Digest.of(b"absent")) is None
    assert [c[0] for c in helper_calls(helper_dir)] == ["store", "get"]


def test_the_package_and_credentials_import_without_httpx() -> None:
    # `strata login`/`logout` and the light modules of the package must not pay for httpx.
    code = "import sys, strata.registry, strata.registry.credentials; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
