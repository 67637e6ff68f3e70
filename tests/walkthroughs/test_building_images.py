"""The three build walkthroughs of ../shared/walkthroughs, with strata, step by step.

* building-images-cache.md: a web app's Dockerfile; a rebuild is all cache; changing FROM
  rebuilds everything; editing index.js reruns ``COPY . .`` and every step after it (the
  dependency install too); after the reorder trick (copy package.json, install, then copy the
  rest) the same edit reruns only ``COPY . .`` and what follows.
* docker-layers.md: every instruction of ``docker build . -t docker-kubernetes:dockerfile-basics``
  makes an image, which ``history`` lists by ID.
* image-layers-node-v0.2.md: ``echo ... >> index.js`` then ``build -t hello:v0.2 .``: the
  output starts with the context size and ``Step 1/5 : FROM ...``; v0.2 shares its lower
  layers with v0.1.

The walkthroughs' Node.js base images come from Docker Hub, which this machine has not: the
base here is the bootstrapped debian:bookworm, and ``npm install`` is a shell step that reads
package.json (the same cache behaviour, no network).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.builder.test_build import steps, verdicts
from tests.conftest import Strata, debian_rootfs_tar

pytestmark = [pytest.mark.root, pytest.mark.peers]

INSTALL = "RUN mkdir -p node_modules && cp package.json node_modules/.installed && echo installed"


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> Strata:
    strata = Strata(tmp_path_factory.mktemp("walk") / "store")
    strata("import", "-c", 'CMD ["bash"]', str(debian_rootfs_tar()), "debian:bookworm")
    # Two "node" bases, as node:argon and node:6 are in the walkthrough.
    strata("tag", "debian:bookworm", "node:argon")
    six = strata.root.parent / "node6"
    six.mkdir()
    (six / "Dockerfile").write_text("FROM debian:bookworm\nLABEL node.version=6\n")
    strata("build", "-q", "-t", "node:6", str(six))
    return strata


def app(tmp_path: Path, dockerfile: str) -> Path:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "package.json").write_text('{"name": "docker-testing", "version": "1.0.0"}\n')
    (tmp_path / "index.js").write_text('console.log("Hello world");\n')
    return tmp_path


def test_building_images_cache(st: Strata, tmp_path: Path) -> None:
    naive = (
        "FROM node:argon\n"
        "WORKDIR /usr/src\n"
        'COPY [".", "/usr/src/"]\n'
        f"{INSTALL}\n"
        'CMD ["cat", "index.js"]\n'
    )
    ctx = app(tmp_path, naive)
    first = st("build", "-t", "test-image", str(ctx)).stdout
    assert "Successfully tagged test-image:latest" in first
    assert st("run", "--rm", "test-image").stdout == 'console.log("Hello world");\n'
    # "if you run the same command again, it will take no time at all"
    assert verdicts(st("build", "-t", "test-image", str(ctx)).stdout) == ["hit"] * 4
    # FROM node:argon -> FROM node:6: all layers get rebuilt
    (ctx / "Dockerfile").write_text(naive.replace("node:argon", "node:6"))
    changed = verdicts(st("build", "-t", "test-image", str(ctx)).stdout)
    assert (
        changed[0]
        == "parent image changed (was " + st("images", "-q", "node:argon").stdout.strip() + ")"
    )
    assert changed[1:] == [f"parent layer changed (step {n})" for n in (2, 3, 4)]
    # Edit index.js: the base is reused, everything from COPY on is redone (the install too).
    (ctx / "index.js").write_text('console.log("Hello there");\n')
    edited = st("build", "-t", "test-image", str(ctx)).stdout
    assert verdicts(edited) == [
        "hit",
        "index.js changed (content)",
        "parent layer changed (step 3)",
        "parent layer changed (step 4)",
    ]
    assert "installed" in edited.splitlines()  # its output: the step ran
    # The reorder trick: package.json first, install, then the rest.
    (ctx / "Dockerfile").write_text(
        "FROM node:6\n"
        "WORKDIR /usr/src\n"
        'COPY ["package.json", "/usr/src/"]\n'
        f"{INSTALL}\n"
        'COPY [".", "/usr/src/"]\n'
        'CMD ["cat", "index.js"]\n'
    )
    st("build", "-t", "test-image", str(ctx))  # "it will rebuild all the first time"
    (ctx / "index.js").write_text('console.log("Hello again");\n')
    faster = st("build", "-t", "test-image", str(ctx)).stdout
    assert verdicts(faster) == [
        "hit",
        "hit",
        "hit",
        "index.js changed (content)",
        "parent layer changed (step 5)",
    ]
    assert "installed" not in faster.splitlines()  # npm install did not run again
    assert st("run", "--rm", "test-image").stdout == 'console.log("Hello again");\n'


def test_docker_layers(st: Strata, tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "demo-0.0.1.jar").write_bytes(b"PK\x03\x04 not really a jar\n")
    (tmp_path / "Dockerfile").write_text(
        "FROM debian:bookworm\n"
        "WORKDIR /myApp\n"
        "EXPOSE 8080\n"
        "RUN echo 'apk add --no-cache curl' > /installed-curl\n"
        'COPY ["target/*.jar", "./app.jar"]\n'
        'CMD ["java", "-jar", "app.jar"]\n'
    )
    out = st("build", str(tmp_path), "-t", "docker-kubernetes:dockerfile-basics").stdout
    ids = [[li for li in s if li.startswith(" ---> ")][-1][6:] for s in steps(out)]
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids), ids
    assert len(set(ids)) == 6  # the base and one image per instruction after it
    history = st("history", "-q", "docker-kubernetes:dockerfile-basics").stdout.split()
    assert history[:6] == list(reversed(ids))  # each layer's image, top down
    listing = st("run", "--rm", "docker-kubernetes:dockerfile-basics", "ls", "/myApp").stdout
    assert listing == "app.jar\n"


def test_image_layers_node_v02(st: Strata, tmp_path: Path) -> None:
    ctx = app(
        tmp_path,
        "FROM debian:bookworm\n"
        "RUN mkdir -p /src && echo 'apk add --update nodejs nodejs-npm' > /src/.deps\n"
        "COPY . /src\n"
        "WORKDIR /src\n"
        'CMD ["cat", "/src/index.js"]\n',
    )
    st("build", "-t", "hello:v0.1", str(ctx))
    with (ctx / "index.js").open("a") as f:
        f.write('console.log("this is v0.2");\n')
    out = st("image", "build", "-t", "hello:v0.2", str(ctx)).stdout
    lines = out.splitlines()
    assert re.fullmatch(r"Sending build context to Docker daemon  \d+(\.\d+)?kB", lines[0])
    assert lines[1] == "Step 1/5 : FROM debian:bookworm"
    assert verdicts(out) == [
        "hit",
        "index.js changed (content)",
        "parent layer changed (step 3)",
        "parent layer changed (step 4)",
    ]
    assert st("run", "--rm", "hello:v0.2").stdout.endswith('console.log("this is v0.2");\n')
    v1 = st("history", "-q", "hello:v0.1").stdout.split()
    v2 = st("history", "-q", "hello:v0.2").stdout.split()
    # COPY and the two steps after it are new; the RUN, the base and below are shared.
    assert v1[:3] != v2[:3] and not set(v1[:3]) & set(v2[:3])
    assert v1[3:] == v2[3:]
