"""The same templates through Docker and strata, on the same image (strata loads what
``docker save`` wrote): ``inspect -f``, ``image ls --format``, ``history --format``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.anchors import Docker
from tests.conftest import Strata

pytestmark = [pytest.mark.peers]

IMAGE = "debian:bookworm"

INSPECT = [
    "{{.Id}}",
    "{{.ID}} {{.Os}}/{{.Architecture}} {{.Size}}",
    "{{.RepoTags}} {{.RepoDigests}} {{json .RepoTags}} {{index .RepoTags 0}} {{len .RepoTags}}",
    "{{.Created}}|{{.Comment}}|{{.Author}}|{{.Parent}}|{{.DockerVersion}}",
    "{{.Config.Env}} {{.Config.Cmd}} {{.Config.Entrypoint}} {{.Config.Labels}} {{.Config.Volumes}}",
    "{{json .Config}} {{json .Config.Env}} {{json .RootFS}}",
    "{{.RootFS}} {{.RootFS.Type}} {{range .RootFS.Layers}}{{.}} {{end}}",
    "{{range $i, $l := .RootFS.Layers}}{{$i}}:{{slice $l 7 19}}{{end}}",
    '{{if .Config.Env}}env{{else if eq .Os "linux"}}linux{{else}}?{{end}}',
    "{{with .Config.Healthcheck}}hc{{else}}none{{end}} {{.Config.Healthcheck}}",
    '{{$os := .Os}}{{- $os | upper -}}  {{ printf "%s-%d" .Architecture (len .Id) }}',
    '{{.Config.Labels.maintainer}} {{index .Config.Labels "x"}}|',
    # With .Id the typed pass fails (its field is ID) and join refuses the raw []interface {}.
    '{{join .RepoTags ","}} {{split .Id ":"}} {{title .Os}} {{truncate .Id 10}}',
    '{{join .RepoTags ","}} {{split .ID ":"}} {{title .Os}} {{truncate .ID 10}}',
    "{{/* a comment */}}{{.Os}}\\t{{.Architecture}}",
    "{{.Nope}}",
    "{{.Config.Nope.X}}",
    "{{.Os.X}}",
    "{{index .RootFS.Layers 5}}",
    "{{.Os",
    "{{if .Os}}",
    "{{nope .Os}}",
    "{{.Os | 3}}",
]

IMAGE_LS = [
    "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}} {{.Digest}} {{.CreatedAt}}",
    "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}\\t{{.Size}}",
    "table {{.ID}}\\t{{.CreatedAt}}\\t{{.Digest}}\\t{{.Containers}}",
    "table {{upper .Repository}}:{{lower .Tag}} {{pad .ID 1 1}}|",
    "table {{.Repository}}\\t{{.VirtualSize}}\\t{{.SharedSize}}\\t{{.UniqueSize}}",
    "{{json .Repository}} {{json .Size}}",
    "{{.Nope}}",
    "{{.ID",
]

HISTORY = [
    "{{.ID}}\\t|{{.Size}}|{{.Comment}}|{{.CreatedBy}}",
    "table {{.ID}}\\t{{.CreatedBy}}\\t{{.Size}}\\t{{.Comment}}",
    "table {{.ID}}\\t{{.CreatedAt}}",
    "{{json .}}",
    "{{.Nope}}",
    "{{.ID",
]


def _same(docker: Docker, strata: Strata, *args: str) -> None:
    theirs = docker(*args, check=False)
    ours = strata(*args, check=False)
    assert "Traceback" not in ours.stderr, ours.stderr
    assert ours.returncode == theirs.returncode, (args, theirs.stderr, ours.stderr)
    if theirs.returncode == 0:
        assert ours.stdout == theirs.stdout, args
    else:
        # Docker's one line, which strata prefixes with "Error: " as it does every error.
        assert ours.stderr.strip() == "Error: " + theirs.stderr.strip(), args


@pytest.fixture
def loaded(strata: Strata, docker: Docker, tmp_path: Path) -> Strata:
    archive = tmp_path / "image.tar"
    docker("save", "-o", str(archive), IMAGE)
    strata("load", "-i", str(archive))
    return strata


@pytest.fixture
def built(strata: Strata, docker: Docker, tmp_path: Path) -> Iterator[str]:
    """An image Docker built on IMAGE (history rows without a comment), loaded into strata."""
    name = f"peers-tables{os.getpid()}:1"
    (tmp_path / "Dockerfile").write_text(f"FROM {IMAGE}\nENV A=1\nRUN true\n")
    docker("build", "-q", "-t", name, str(tmp_path))
    archive = tmp_path / "built.tar"
    docker("save", "-o", str(archive), name, IMAGE)
    strata("load", "-i", str(archive))
    yield name
    docker("rmi", name, check=False)


def test_templates_print_what_docker_prints(loaded: Strata, docker: Docker) -> None:
    for template in INSPECT:
        _same(docker, loaded, "image", "inspect", "-f", template, IMAGE)
        _same(docker, loaded, "inspect", "--format", template, IMAGE)
    for template in IMAGE_LS:
        _same(docker, loaded, "image", "ls", "--format", template, IMAGE)
    for template in HISTORY:
        _same(docker, loaded, "history", "--format", template, IMAGE)
    # A template that does not parse is refused before the lookup, with Docker's status 64.
    _same(docker, loaded, "inspect", "-f", "{{.Os", "no-such-image:1")
    _same(docker, loaded, "image", "inspect", "-f", "{{.Os", "no-such-image:1")


def test_tables_are_docker_s_byte_for_byte(loaded: Strata, docker: Docker) -> None:
    # Padding included: an empty last cell keeps the spaces before it, as Go's tabwriter does.
    for args in (
        ("history", IMAGE),
        ("history", "--no-trunc", IMAGE),
        ("history", "-H=false", IMAGE),
        ("image", "ls", IMAGE),
        ("images", "--no-trunc", IMAGE),
        ("images", "-q", IMAGE),
    ):
        _same(docker, loaded, *args)


def test_history_of_steps_without_comments(loaded: Strata, docker: Docker, built: str) -> None:
    # Absolute times (-H=false): a fresh image's "N seconds ago" would race the clock.
    for args in (("history", "-H=false", built), ("history", "-H=false", "--no-trunc", built)):
        # The IMAGE column differs by nature: Docker knows the intermediate images of its own
        # build, strata (like any Docker that loads the archive) shows <missing>.
        theirs, ours = docker(*args).stdout, loaded(*args).stdout
        width = 15 if "--no-trunc" not in args else len("sha256:") + 64 + 3
        assert theirs.splitlines()[0] == ours.splitlines()[0]
        assert [ln[width:] for ln in ours.splitlines()] == [
            ln[width:] for ln in theirs.splitlines()
        ]


def test_docker_is_what_the_recording_was_made_from(docker: Docker) -> None:
    """The recorded outputs in data/ came from this Docker; a different one may print
    differently, and this says so instead of failing the engine's tests in a puzzling way."""
    version = docker("version", "--format", "{{.Client.Version}} / {{.Server.Version}}").stdout
    recorded = json.loads((Path(__file__).parent / "data" / "docker_templates.json").read_text())
    client = version.split(" / ")[0]
    assert client.split(".")[0] == recorded["docker"].split(".")[0], (version, recorded["docker"])
