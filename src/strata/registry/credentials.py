"""Registry credentials in Docker's client configuration (``~/.docker/config.json``).

The file is read and written as the Docker CLI does, so ``docker login`` and ``strata login``
share it: ``auths`` maps a server to ``{"auth": base64("user:password")}`` (or an
``identitytoken``); ``credHelpers`` names a helper per server and ``credsStore`` one for every
server, run as ``docker-credential-<name> get|store|erase`` with the server on stdin. Docker Hub
is keyed ``https://index.docker.io/v1/``. Writes keep every other key of the file, replace it
atomically and leave it mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Final

from strata import jsonload
from strata.errors import FormatError, ToolError

IDENTITY_TOKEN_USER: Final = "<token>"
"""The user name that marks the password as an identity token (Docker's credential helpers)."""
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_DOCKER_HUB_NAMES: Final = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_MAX_CONFIG: Final = 16 << 20
_HELPER_TIMEOUT: Final = 60.0
_NOT_FOUND: Final = "credentials not found"


def hostname(server: str) -> str:
    """A server as Docker keys it, scheme and path dropped: ``https://h:5000/v1/`` is ``h:5000``."""
    text = server.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    return text.split("/", 1)[0].lower()


def server_key(registry: str) -> str:
    """The key Docker files a registry's credentials under."""
    host = hostname(registry)
    return DOCKER_HUB_KEY if host in _DOCKER_HUB_NAMES else host


def default_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


class CredentialStore:
    """Credentials per registry from a Docker client configuration file."""

    __slots__ = ("_data", "insecure_registries", "path")

    def __init__(self, path: Path, data: dict[str, Any] | None = None) -> None:
        self.path = path
        self._data: dict[str, Any] = data if data is not None else {}
        insecure = self._data.get("insecure-registries")
        entries = insecure if isinstance(insecure, list) else []
        # Entries are host[:port], a URL, or a CIDR block (whose "/" is not a URL path).
        names = [
            hostname(n) if "://" in n else n.strip().lower() for n in entries if isinstance(n, str)
        ]
        self.insecure_registries: frozenset[str] = frozenset(names)

    @classmethod
    def load(cls, path: Path | None = None) -> CredentialStore:
        """Read ``path`` (default: Docker's); a missing file is an empty configuration."""
        path = path if path is not None else default_config_path()
        return cls(path, _read(path))

    def get(self, registry: str) -> tuple[str, str] | None:
        """``(username, password)`` for ``registry``, or None when there are none.

        An identity token comes back as ``("<token>", token)``.
        """
        key = server_key(registry)
        helper = self._helper(key)
        if helper is not None:
            return _helper_get(helper, key)
        auths = self._data.get("auths")
        if not isinstance(auths, dict):
            return None
        entry_key = _find_key(auths, key)
        if entry_key is None:
            return None
        return self._decode(entry_key, auths[entry_key])

    def store(self, registry: str, username: str, password: str) -> None:
        """Save credentials for ``registry``: in its helper if one is set, else in ``auths``."""
        key = server_key(registry)
        data = _read(self.path)
        helper = _helper_for(data, key)
        auths = data.get("auths")
        if not isinstance(auths, dict):
            auths = data["auths"] = {}
        for old in [k for k in auths if k != key and server_key(k) == key]:
            del auths[old]
        if helper is not None:
            payload = {"ServerURL": key, "Username": username, "Secret": password}
            _run_helper(helper, "store", json.dumps(payload), key)
            # Docker keeps an entry without secrets so the server is listed as logged in.
            auths[key] = {}
        else:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            auths[key] = {"auth": token}
        _write(self.path, data)
        self._data = data

    def erase(self, registry: str) -> bool:
        """Forget ``registry``'s credentials; True if there were any."""
        key = server_key(registry)
        data = _read(self.path)
        removed = False
        helper = _helper_for(data, key)
        if helper is not None:
            removed = _helper_erase(helper, key)
        auths = data.get("auths")
        if isinstance(auths, dict):
            for old in [k for k in auths if server_key(k) == key]:
                entry = auths.pop(old)
                removed = removed or bool(entry)
            _write(self.path, data)
        self._data = data
        return removed

    def _helper(self, key: str) -> str | None:
        return _helper_for(self._data, key)

    def _decode(self, key: str, entry: object) -> tuple[str, str] | None:
        where = f"{self.path}: auths[{key!r}]"
        if not isinstance(entry, dict):
            raise FormatError(f"{where}: not a JSON object")
        username = entry.get("username") if isinstance(entry.get("username"), str) else ""
        password = entry.get("password") if isinstance(entry.get("password"), str) else ""
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            try:
                decoded = base64.b64decode(auth, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise FormatError(f"{where}: auth is not base64 of 'user:password'") from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise FormatError(f"{where}: auth has no ':' between user and password")
        identity = entry.get("identitytoken")
        if isinstance(identity, str) and identity:
            return IDENTITY_TOKEN_USER, identity
        if not username and not password:
            return None
        return str(username), str(password)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_CONFIG + 1)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise FormatError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > _MAX_CONFIG:
        raise FormatError(f"{path}: over {_MAX_CONFIG} bytes")
    if not raw.strip():
        return {}
    data = jsonload.loads(raw, source=str(path), limit=_MAX_CONFIG)
    if not isinstance(data, dict):
        raise FormatError(f"{path}: not a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    target = path.resolve() if path.is_symlink() else path
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=target.parent)
    except OSError as err:
        raise FormatError(f"{path}: cannot write: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FormatError(f"{path}: cannot write: {err.strerror or err}") from None


def _find_key(auths: dict[str, Any], key: str) -> str | None:
    if key in auths:
        return key
    for candidate in auths:
        if server_key(candidate) == key:
            return candidate
    return None


def _helper_for(data: dict[str, Any], key: str) -> str | None:
    helpers = data.get("credHelpers")
    if isinstance(helpers, dict):
        found = _find_key(helpers, key)
        if found is not None and isinstance(helpers[found], str) and helpers[found]:
            return str(helpers[found])
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(name: str, action: str, stdin: str, key: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise ToolError(f"credential helper {program} for {key}: not found on PATH")
    try:
        proc = subprocess.run(
            [path, action],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ToolError(f"credential helper {program} {action} {key}: {err}") from None
    if proc.returncode != 0 and _NOT_FOUND not in proc.stdout + proc.stderr:
        detail = " ".join((proc.stdout.strip() or proc.stderr.strip()).split())[:300]
        raise ToolError(
            f"credential helper {program} {action} {key}: exit status {proc.returncode}"
            + (f": {detail}" if detail else "")
        )
    return proc


def _helper_get(name: str, key: str) -> tuple[str, str] | None:
    proc = _run_helper(name, "get", key, key)
    if proc.returncode != 0:
        return None
    try:
        body = jsonload.loads(proc.stdout, source="credential helper", limit=_MAX_CONFIG)
    except FormatError:
        raise ToolError(f"credential helper docker-credential-{name} get {key}: not JSON") from None
    if not isinstance(body, dict):
        raise ToolError(f"credential helper docker-credential-{name} get {key}: not an object")
    username, secret = body.get("Username"), body.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    return username, secret


def _helper_erase(name: str, key: str) -> bool:
    return _run_helper(name, "erase", key, key).returncode == 0
