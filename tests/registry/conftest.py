"""Real registries for the registry tests: Debian's ``docker-registry`` on 127.0.0.1.

Three session-wide instances, each on a free port with its own storage directory (delete
enabled): ``registry`` (anonymous), ``basic_registry`` (htpasswd users, bcrypt from
``htpasswd -B``) and ``token_registry`` (Docker's token auth, with a token server in a thread that
signs RS256 JWTs through the ``openssl`` command and records what it was asked). ``fake_http``
serves a handler class of a test's own for the faults no real registry commits.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
REGISTRY_BIN = "/usr/bin/docker-registry"
USER, PASSWORD = "alice", "wonderland"
READER, READER_PASSWORD = "reader", "only-pull"
TOKEN_SERVICE, TOKEN_ISSUER = "strata-test-registry", "strata-test-tokens"


def need(tool: str) -> str:
    path = tool if os.path.isabs(tool) and os.access(tool, os.X_OK) else shutil.which(tool)
    if path is None:
        if IN_CI:
            raise RuntimeError(f"{tool} is missing (scripts/setup.sh installs it)")
        pytest.skip(f"needs {tool}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running docker-registry: ``address`` is ``127.0.0.1:<port>``."""

    address: str
    root: Path
    process: subprocess.Popen[bytes]


def _start_registry(base: Path, auth: str = "") -> Iterator[Registry]:
    binary = need(REGISTRY_BIN)
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: strata-test-secret\n" + auth
    )
    log = (base / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    registry = Registry(f"127.0.0.1:{port}", base / "data", process)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{registry.address}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # 401: up, and wanting credentials
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"docker-registry did not start: {(base / 'registry.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry."""
    yield from _start_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd basic auth for ``alice:wonderland``."""
    htpasswd = need("htpasswd")
    base = tmp_path_factory.mktemp("basic-registry")
    users = base / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), USER, PASSWORD], check=True, capture_output=True)
    auth = f"auth:\n  htpasswd:\n    realm: strata-test\n    path: {users}\n"
    yield from _start_registry(base, auth)


# -- the token server ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenRequest:
    """What the token server was asked: method, scopes, and the user it authenticated."""

    method: str
    scopes: list[str]
    user: str | None
    service: str | None


@dataclass
class TokenServer:
    """Issues registry tokens: ``alice`` gets what she asks, ``reader`` only pull, and an
    identity (refresh) token stands for ``alice``."""

    key: Path
    cert_der: bytes
    port: int = 0
    requests: list[TokenRequest] = field(default_factory=list)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()

    def sign(self, user: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = [a for a in actions.split(",") if self._allowed(user, a)]
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": user or "",
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{_b64url(signature)}"

    @staticmethod
    def _allowed(user: str | None, action: str) -> bool:
        if user == USER:
            return True
        return user == READER and action == "pull"


def _token_handler(server: TokenServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _basic_user(self) -> tuple[bool, str | None]:
            """(credentials acceptable, user): no header is an anonymous, acceptable request."""
            header = self.headers.get("Authorization")
            if header is None:
                return True, None
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return False, None
            user, _, password = base64.b64decode(value).decode().partition(":")
            ok = {USER: PASSWORD, READER: READER_PASSWORD}.get(user) == password
            return ok, user if ok else None

        def do_GET(self) -> None:  # noqa: N802 (http.server calls it)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            ok, user = self._basic_user()
            scopes = query.get("scope", [])
            with server.lock:
                server.requests.append(
                    TokenRequest("GET", scopes, user, query.get("service", [None])[0])
                )
            if not ok:
                self._answer(401, {"details": "incorrect username or password"})
                return
            self._answer(200, {"token": server.sign(user, scopes), "expires_in": 300})

        def do_POST(self) -> None:  # noqa: N802 (http.server calls it)
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scopes = form.get("scope", [""])[0].split()
            user = server.refresh_tokens.get(form.get("refresh_token", [""])[0])
            with server.lock:
                server.requests.append(
                    TokenRequest("POST", scopes, user, form.get("service", [None])[0])
                )
            if form.get("grant_type") != ["refresh_token"] or user is None:
                self._answer(400, {"error": "invalid_grant"})
                return
            self._answer(200, {"access_token": server.sign(user, scopes), "expires_in": 300})

    return Handler


@dataclass
class TokenRegistry:
    registry: Registry
    tokens: TokenServer

    @property
    def address(self) -> str:
        return self.registry.address


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenRegistry]:
    """A registry with Docker's token auth, and the token server it trusts."""
    openssl = need("openssl")
    base = tmp_path_factory.mktemp("token-registry")
    key, cert = base / "key.pem", base / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=strata-test-tokens", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    der = subprocess.run(
        [openssl, "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    tokens = TokenServer(key, der)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(tokens))
    tokens.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    auth = (
        f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {TOKEN_SERVICE}\n"
        f"    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {cert}\n"
    )
    try:
        for running in _start_registry(base, auth):
            yield TokenRegistry(running, tokens)
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- fakes for faults ----------------------------------------------------------------------------


class FakeHandler(http.server.BaseHTTPRequestHandler):
    """Base for a test's own registry handler: HTTP/1.1, quiet, with a JSON helper."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


@pytest.fixture
def fake_http() -> Iterator[Callable[[type[http.server.BaseHTTPRequestHandler]], str]]:
    """Serve a handler class on 127.0.0.1; returns its ``127.0.0.1:<port>``."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(handler: type[http.server.BaseHTTPRequestHandler]) -> str:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        servers.append(httpd)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        return f"127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
