"""Builds that read files: COPY/ADD from the context, other stages and URLs; .dockerignore;
ONBUILD triggers; and the bad inputs of each, which fail in one line and leave no image."""

from __future__ import annotations

import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builder.test_build import context, verdicts
from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A static file server on 127.0.0.1 (ADD of a URL)."""
    root = tmp_path_factory.mktemp("web")
    (root / "remote.txt").write_text("from the web\n")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def cat(st: Strata, image: str, *paths: str) -> str:
    return st("run", "--rm", image, "cat", *paths).stdout


def test_copy_rules_and_dockerignore(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM debian:bookworm\n"
        "WORKDIR /app\n"
        "COPY src/ ./src/\n"
        "COPY *.txt /texts/\n"
        "COPY --chown=1000:1000 --chmod=0750 run.sh /usr/local/bin/run\n"
        "COPY . /all/\n",
        src__a__one="1\n",
        src__b="b\n",
        a_txt="a\n",
        run_sh="echo run\n",
        secret__key="hidden\n",
        notes_txt="notes\n",
    )
    (ctx / "a_txt").rename(ctx / "a.txt")
    (ctx / "notes_txt").rename(ctx / "notes.txt")
    (ctx / "run_sh").rename(ctx / "run.sh")
    (ctx / ".dockerignore").write_text("secret\n*.md\n!keep.md\n")
    (ctx / "drop.md").write_text("dropped\n")
    (ctx / "keep.md").write_text("kept\n")
    st("build", "-t", "files:1", str(ctx))
    assert (
        cat(st, "files:1", "/app/src/a/one", "/texts/a.txt", "/texts/notes.txt") == "1\na\nnotes\n"
    )
    stat = st("run", "--rm", "files:1", "stat", "-c", "%a %u:%g", "/usr/local/bin/run").stdout
    assert stat == "750 1000:1000\n"
    listing = st("run", "--rm", "files:1", "ls", "-A", "/all").stdout.split()
    assert "keep.md" in listing and "drop.md" not in listing and "secret" not in listing
    # An ignored file changing is no change at all.
    (ctx / "secret" / "key").write_text("still hidden, and changed\n")
    (ctx / "drop.md").write_text("changed\n")
    assert verdicts(st("build", "-t", "files:1", str(ctx)).stdout) == ["hit"] * 5
    # A mode change is a change, explained.
    (ctx / "a.txt").chmod(0o755)
    again = verdicts(st("build", "-t", "files:1", str(ctx)).stdout)
    assert again[:2] == ["hit", "hit"]
    assert again[2] == "a.txt changed (mode 0644 → 0755)"


def test_copy_from_stage_add_archive_and_url(st: Strata, tmp_path: Path, web: str) -> None:
    ctx = context(tmp_path, "")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside the archive\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    (ctx / "Dockerfile").write_text(
        "FROM debian:bookworm AS builder\n"
        "RUN mkdir /out && echo built > /out/artifact\n"
        "FROM debian:bookworm\n"
        "COPY --from=builder /out/artifact /artifact\n"
        "COPY --from=0 /out /out-copy\n"
        "ADD pkg.tar.gz /opt/\n"
        f"ADD {web}/remote.txt /downloads/\n"
    )
    st("build", "-t", "files:2", str(ctx))
    out = cat(st, "files:2", "/artifact", "/out-copy/artifact", "/opt/pkg/readme",
              "/downloads/remote.txt")  # fmt: skip
    assert out == "built\nbuilt\ninside the archive\nfrom the web\n"
    assert verdicts(st("build", "-t", "files:2", str(ctx)).stdout).count("hit") == 5


def test_onbuild_triggers_run_in_the_child(st: Strata, tmp_path: Path) -> None:
    parent = context(
        tmp_path / "parent",
        "FROM debian:bookworm\n"
        "ONBUILD COPY greeting.txt /greeting.txt\n"
        "ONBUILD RUN echo triggered\n",
    )
    st("build", "-t", "onbuild:parent", str(parent))
    child = context(tmp_path / "child", "FROM onbuild:parent\nCMD [\"cat\", \"/greeting.txt\"]\n",
                    greeting_txt="hi from the child context\n")  # fmt: skip
    (child / "greeting_txt").rename(child / "greeting.txt")
    out = st("build", "-t", "onbuild:child", str(child)).stdout
    assert "# Executing 2 build triggers" in out and "triggered" in out.splitlines()
    assert st("run", "--rm", "onbuild:child").stdout == "hi from the child context\n"
    inspect = st("image", "inspect", "--format", "{{json .Config.OnBuild}}", "onbuild:child")
    assert inspect.stdout.strip() in ("null", "[]")


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM debian:bookworm\nCOPY missing.txt /\n", "file not found in build context"),
        ("FROM debian:bookworm\nCOPY ../outside /\n", "forbidden path outside the build context"),
        ("FROM debian:bookworm\nCOPY a b /not-a-dir\n", "must be a directory and end with a /"),
        ("FROM debian:bookworm\nCOPY --from=nostage /x /x\n", "nostage"),
        ("FROM debian:bookworm\nADD http://127.0.0.1:1/x /x\n", "http://127.0.0.1:1/x"),
        ('FROM debian:bookworm\nCMD ["unterminated"\n', None),
    ],
)
def test_bad_file_steps_fail_in_one_line(
    st: Strata, tmp_path: Path, dockerfile: str, message: str | None
) -> None:
    ctx = context(tmp_path, dockerfile, a="a\n", b="b\n")
    before = st("images", "-a", "-q").stdout
    if message is None:
        # Docker's parser takes a bad JSON form as the shell form: it builds.
        st("build", str(ctx))
        return
    assert message in st.fail("build", "-t", "bad:2", str(ctx))
    assert "bad" not in st("images").stdout
    after = st("images", "-a", "-q").stdout.split()
    # Only the cached steps before the failing one may have been added (none here but FROM).
    assert set(after) == set(before.split())


def test_workdir_makes_its_directory_and_dot_is_it(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM debian:bookworm\nWORKDIR /srv/app\nCOPY pkg.json .\nWORKDIR /tmp\n",
        pkg_json="{}\n",
    )
    (ctx / "pkg_json").rename(ctx / "pkg.json")
    st("build", "-t", "workdir:1", str(ctx))
    assert cat(st, "workdir:1", "/srv/app/pkg.json") == "{}\n"
    layers = json.loads(st("image", "inspect", "workdir:1").stdout)[0]["RootFS"]["Layers"]
    base = json.loads(st("image", "inspect", "debian:bookworm").stdout)[0]["RootFS"]["Layers"]
    # WORKDIR /srv/app made the directory (a layer); /tmp existed (no layer); COPY: a layer.
    assert len(layers) == len(base) + 2
