"""Differential builds: the same Dockerfiles built by strata and by Docker 20.10's legacy builder.

Both start from the same base image (Docker's ``debian:bookworm``, saved and loaded into strata,
so the IDs match) and must give the same image config (the fields a Dockerfile sets), the same
history (``created_by`` byte for byte, ``empty_layer``) and the same layers, entry for entry
(name, type, mode, owner, link target, content). Creation times, IDs and mtimes differ by
nature and are not compared. Differences strata has on purpose are listed in `KNOWN`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tests.anchors import Docker
from tests.conftest import Strata

pytestmark = [pytest.mark.peers, pytest.mark.root]

BASE = "debian:bookworm"
CONFIG_FIELDS = (
    *("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels"),
    *("Healthcheck", "Shell", "OnBuild", "StopSignal", "ArgsEscaped"),
)
OPAQUE = ".wh..wh..opq"
BIG = 64 << 20  # members this large are the base layer, the same blob in both archives


@dataclass
class Image:
    """What a saved image holds: its config document and its layer tars (base layer left out)."""

    config: dict[str, Any]
    layers: list[bytes | None]  # None for a layer too large to read (the base's)


def read_archive(stream: IO[bytes]) -> Image:
    """The image of a docker-archive read as a stream (one image in it)."""
    members: dict[str, bytes] = {}
    links: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            if member.issym():
                links[member.name] = os.path.normpath(
                    os.path.join(os.path.dirname(member.name), member.linkname)
                )
            elif member.isfile() and member.size < BIG:
                handle = tar.extractfile(member)
                assert handle is not None
                members[member.name] = handle.read()
    manifest = json.loads(members["manifest.json"])[0]
    config = json.loads(members[manifest["Config"]])
    layers = [members.get(links.get(name, name)) for name in manifest["Layers"]]
    return Image(config, layers)


def docker_image(docker: Docker, ref: str) -> Image:
    proc = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE, env=docker.env)
    assert proc.stdout is not None
    try:
        return read_archive(proc.stdout)
    finally:
        proc.stdout.close()
        assert proc.wait() == 0


def strata_image(strata: Strata, ref: str, tmp: Path) -> Image:
    out = tmp / "strata-save.tar"
    strata("save", "-o", str(out), ref)
    try:
        with open(out, "rb") as f:
            return read_archive(f)
    finally:
        out.unlink()


def layer_entries(data: bytes) -> list[tuple[Any, ...]]:
    """A layer tar as comparable rows: everything but times and user/group names.

    The mode is compared without the file-type bits Docker's Go writer also puts in the
    header's mode field (0o100644): the typeflag says the same, and tar readers ignore them.
    An opaque-directory marker is compared by name only: Docker gives it the directory's mode
    and owner, strata 0600 root (what appliers ignore; listed in `KNOWN`).
    """
    rows = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            content = ""
            if m.isfile():
                handle = tar.extractfile(m)
                assert handle is not None
                content = hashlib.sha256(handle.read()).hexdigest()[:16]
            name = m.name.removeprefix("./").rstrip("/")
            xattrs = tuple(
                sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr."))
            )
            if name.endswith(OPAQUE):  # see KNOWN: its own mode and owner mean nothing
                m.mode, m.uid, m.gid = 0, 0, 0
            rows.append(
                (name, m.type, oct(m.mode & 0o7777), m.uid, m.gid, m.linkname, m.size, content,
                 m.devmajor, m.devminor, xattrs)
            )  # fmt: skip
    return sorted(rows)


def config_fields(config: dict[str, Any]) -> dict[str, Any]:
    cfg = config.get("config") or {}
    # Docker leaves out empty values (omitempty): "no value" and an empty one are the same.
    fields = {k: cfg.get(k) for k in CONFIG_FIELDS if cfg.get(k) not in (None, [], {}, "", False)}
    if config.get("author"):
        fields["author"] = config["author"]
    return fields


def history(config: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in config["history"]]


KNOWN = {
    "opaque marker": "a layer's .wh..wh..opq entry is 0600 0:0 in strata's layers, the"
    " directory's own mode and owner in Docker's (appliers read only its name)",
    "header mode": "layer tar headers carry only permission bits, Docker's Go writer adds the"
    " file-type bits (0o100644) too; the typeflag says the same",
    "newer syntax": "HEALTHCHECK --start-interval, --retries=0 and --interval=0s (BuildKit's"
    " current parser) are accepted; Docker 20.10's legacy builder refuses them",
}
"""Where strata's image differs from Docker 20.10's on purpose or by nature (for the README)."""


# -- the Dockerfiles -------------------------------------------------------------------------

Context = Callable[[Path], None]


def _files(tree: dict[str, str | bytes]) -> Context:
    def make(ctx: Path) -> None:
        for name, content in tree.items():
            path = ctx / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    return make


METADATA = """\
ARG BASE=debian:bookworm
FROM $BASE
ARG V=1.2
ARG NOVAL
MAINTAINER someone <a@b.c>
ENV A=b C="d e" PATH=/x:$PATH
ENV OLD style value
LABEL a=b "c d"="e f" v=$V
EXPOSE 80 443/udp 8080/tcp
VOLUME /data ["/v2", "/v3"]
VOLUME /data2 /data3
USER nobody:nogroup
STOPSIGNAL SIGTERM
ONBUILD RUN echo hi
ONBUILD COPY . /x
WORKDIR rel
WORKDIR /abs/$V
WORKDIR /tmp
HEALTHCHECK NONE
HEALTHCHECK CMD ["curl", "-f", "x"]
HEALTHCHECK --retries=3 CMD true
HEALTHCHECK --interval=1m30s --timeout=10s --start-period=1500ms --retries=39 CMD echo "a b"
ENTRYPOINT echo hi
CMD echo there
RUN echo $V
RUN stat -c '%A %U %G %n' /data /data2 > /tmp/volume-modes
SHELL ["/bin/bash", "-e", "-c"]
CMD ["a", "b c"]
ENTRYPOINT ["e"]
"""

COPIES = """\
FROM debian:bookworm
WORKDIR /app
COPY a.txt ./
COPY a.txt /file
COPY src /src
COPY src/ /src2/
COPY . /all/
COPY *.txt /glob/
COPY a.txt src/b.txt /multi/
COPY --chown=1:2 src /owned
COPY --chown=nobody:nogroup a.txt /owned-by-name/
COPY src/link /followed
COPY src/sub/su src/sub/sg src/sub/sgn /modes/
ADD arch.tar /unpacked/
ADD arch.tar /
COPY arch.tar /packed/
ADD arch.tgz /gz/
ADD --chown=5:5 arch.tgz /gz-chown/
COPY --from=debian:bookworm /etc/debian_version /etc/host.conf /from-image/
RUN chmod 700 /src && rm /src/b.txt && ln -s /etc /src/etc
RUN rm -rf /src/sub && mkdir /src/sub && echo new > /src/sub/n && rm -r /etc/apt/apt.conf.d
USER nobody
RUN touch /tmp/mine && mkdir /tmp/dir
"""


def _copy_context(ctx: Path) -> None:
    _files(
        {
            "a.txt": "hello\n",
            "b.txt": "bee\n",
            "src/b.txt": "b\n",
            "src/sub/c.txt": "c\n",
            "src/sub/deep/d": "d\n",
            "src/skip/s.txt": "skipped\n",
            "src/skip/keep.txt": "kept\n",
            "ignored.log": "x\n",
            ".dockerignore": "*.log\nsrc/skip\n!src/skip/keep.txt\nDockerfile\n",
        }
    )(ctx)
    os.chmod(ctx / "src/sub/c.txt", 0o755)
    for name, mode in (("su", 0o4755), ("sg", 0o2755), ("sgn", 0o2744)):
        (ctx / "src/sub" / name).write_text(name)
        os.chmod(ctx / "src/sub" / name, mode)
    os.chmod(ctx / "src/sub", 0o2755)
    os.chmod(ctx / "src/sub/deep", 0o700)
    os.symlink("b.txt", ctx / "src/link")
    os.symlink("/etc/passwd", ctx / "src/abs")
    os.symlink("../nowhere", ctx / "src/dangling")
    os.link(ctx / "src/b.txt", ctx / "src/hard")
    payload = ctx / "payload"
    (payload / "d").mkdir(parents=True)
    (payload / "d" / "x").write_text("x\n")
    (payload / "top").write_text("top\n")
    with tarfile.open(ctx / "arch.tar", "w") as tar:
        tar.add(payload, arcname="p")
    with tarfile.open(ctx / "arch.tgz", "w:gz") as tar:
        tar.add(payload, arcname="q")
        owned = tarfile.TarInfo("q/owned")  # ADD keeps an archive's owners
        owned.uid, owned.gid, owned.mode, owned.size = 1000, 1001, 0o4711, 3
        tar.addfile(owned, io.BytesIO(b"own"))
    shutil.rmtree(payload)


MULTISTAGE = """\
ARG GLOBAL=g1
FROM debian:bookworm AS build
RUN mkdir /h && echo x > /h/one && ln /h/one /h/two && mkfifo /h/fifo && mknod /h/null c 1 3 \
 && ln -s one /h/sym && mkdir -p /h/empty
RUN mkdir -p /out/sub && echo built > /out/sub/f && ln -s sub/f /out/l \\
 && ln -s /nowhere /out/dangling && chown 1:2 /out/sub/f && chmod 4750 /out/sub/f
WORKDIR /out
ENV STAGE=build
VOLUME /out/sub
RUN echo lost > /out/sub/lost && echo changed > /out/sub/f && touch /out/kept

FROM build AS second
RUN echo more > /out/more

FROM debian:bookworm
ARG TAG=final
ARG GLOBAL
COPY --from=0 /h /h
COPY --from=build /h/two /h/sym /single/
RUN echo $GLOBAL > /g
COPY --from=build /out /out
COPY --from=build /out/sub/f /f
COPY --from=0 /etc/os-release /osr
COPY --from=second /out/l /out/more /m/
COPY --from=build --chown=7:8 /out/sub /chowned
RUN true
SHELL ["/bin/bash", "-c"]
RUN echo "$BASH_VERSION" | cut -c1 > /bash-major
LABEL tag=$TAG
CMD ["cat", "/f"]
"""

SCRATCH = """\
FROM scratch
COPY a.txt /
ENV A=b
ENV PATH=/x:$PATH
WORKDIR /w
CMD ["/a.txt"]
"""

ONBUILD_BASE = """\
FROM debian:bookworm
ONBUILD ARG WHO=child
ONBUILD RUN echo "$WHO" > /who
ONBUILD COPY a.txt /from-trigger/
CMD ["base"]
"""

ONBUILD_CHILD = """\
FROM {base}
ENV X=1
"""

DESTS = """\
FROM debian:bookworm
COPY d /etc/
COPY f /etc/hostname
COPY f /new/name
COPY f /var/run/in-run/
WORKDIR /w/x
COPY f d ./sub/
COPY --chown=nobody:nogroup d /deep/new/parents/
COPY --chown=1:1 f /deep/file/parents/f
COPY f /w
COPY d/ .
COPY ["sp ace", "cap", "/odd/"]
"""


def _dests_context(ctx: Path) -> None:
    _files({"f": "f\n", "d/one": "1\n", "d/sub/two": "2\n", "sp ace/ünï/fïle": "u\n"})(ctx)
    # A file capability: Docker sums security.capability (and keeps it in the layer).
    shutil.copy("/bin/true", ctx / "cap")
    if shutil.which("setcap"):
        subprocess.run(["setcap", "cap_net_raw+ep", str(ctx / "cap")], check=True)


CASES: dict[str, tuple[str, Context]] = {
    "metadata": (METADATA, _files({})),
    "copies": (COPIES, _copy_context),
    "multistage": (MULTISTAGE, _files({})),
    "scratch": (SCRATCH, _files({"a.txt": "hello\n"})),
    "dests": (DESTS, _dests_context),
}


# -- the comparison ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both(
    docker: Docker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Docker, Strata]]:
    """A strata store holding Docker's own base image (same image ID)."""
    work = tmp_path_factory.mktemp("diff")
    strata = Strata(work / "store")
    archive = work / "base.tar"
    docker("save", "-o", str(archive), BASE)
    strata("load", "-i", str(archive))
    archive.unlink()
    docker_id = docker("image", "inspect", "-f", "{{.Id}}", BASE).stdout.strip()
    strata_id = strata("image", "inspect", "-f", "{{.Id}}", BASE).stdout.strip()
    assert docker_id == strata_id
    yield docker, strata
    tags = [f"strata-diff-{name}" for name in (*CASES, "onbuild-base", "onbuild", "add-urls")]
    docker("rmi", "-f", *tags, check=False)


def build_both(both: tuple[Docker, Strata], ctx: Path, tag: str) -> tuple[Image, Image]:
    docker, strata = both
    docker("build", "-q", "-t", tag, str(ctx))
    strata("build", "-q", "-t", tag, str(ctx))
    return docker_image(docker, tag), strata_image(strata, tag, ctx.parent)


def assert_same(docker_img: Image, strata_img: Image) -> None:
    assert config_fields(strata_img.config) == config_fields(docker_img.config)
    assert history(strata_img.config) == history(docker_img.config)
    assert len(strata_img.layers) == len(docker_img.layers)
    for index, (ours, theirs) in enumerate(zip(strata_img.layers, docker_img.layers, strict=True)):
        if theirs is None:  # the base layer: the same diff ID is enough
            continue
        assert ours is not None, f"layer {index}"
        mine, docker = layer_entries(ours), layer_entries(theirs)
        only_strata = sorted(set(mine) - set(docker))
        only_docker = sorted(set(docker) - set(mine))
        assert mine == docker, f"layer {index}: strata {only_strata}, docker {only_docker}"
    # (diff IDs differ by nature: the layers hold mtimes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_image_as_docker(both: tuple[Docker, Strata], tmp_path: Path, case: str) -> None:
    dockerfile, make = CASES[case]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    make(ctx)
    (ctx / "Dockerfile").write_text(dockerfile)
    assert_same(*build_both(both, ctx, f"strata-diff-{case}"))


ADD_URLS = """\
FROM debian:bookworm
ADD {url}/served.txt /s/
ADD {url}/served.txt /named
ADD {url}/served.txt {url}/dir/other.txt /two/
"""


def test_add_urls_as_docker(both: tuple[Docker, Strata], tmp_path: Path) -> None:
    """ADD of URLs from a server on loopback (history names a download by its bare sum)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "www"
    (served / "dir").mkdir(parents=True)
    (served / "served.txt").write_text("served file\n")
    (served / "dir" / "other.txt").write_text("other\n")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        (ctx / "Dockerfile").write_text(ADD_URLS.format(url=url))
        assert_same(*build_both(both, ctx, "strata-diff-add-urls"))
    finally:
        server.shutdown()
        server.server_close()


def test_onbuild_triggers_as_docker(both: tuple[Docker, Strata], tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("from the child's context\n")
    (ctx / "Dockerfile").write_text(ONBUILD_BASE)
    assert_same(*build_both(both, ctx, "strata-diff-onbuild-base"))
    (ctx / "Dockerfile").write_text(ONBUILD_CHILD.format(base="strata-diff-onbuild-base"))
    assert_same(*build_both(both, ctx, "strata-diff-onbuild"))
