"""Docker 20.10's builder rules that strata follows, checked on strata alone (the differential
suite, tests/builder/test_docker_diff.py, checks them against Docker itself)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from strata.runtime.options import DEFAULT_PATH
from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]


def _build(st: Strata, tmp_path: Path, dockerfile: str, tag: str, **files: str) -> None:
    ctx = tmp_path / tag
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).write_text(text)
    st("build", "-q", "-t", tag, str(ctx))


def _config(st: Strata, tag: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(st("image", "inspect", tag).stdout)[0]
    return doc


def _saved(st: Strata, tag: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The image's config document and its top layer's members by name."""
    out = tmp_path / f"{tag}.tar"
    st("save", "-o", str(out), tag)
    with tarfile.open(out) as archive:

        def read(name: str) -> bytes:
            handle = archive.extractfile(name)
            assert handle is not None
            return handle.read()

        manifest = json.loads(read("manifest.json"))[0]
        config = json.loads(read(manifest["Config"]))
        data = read(manifest["Layers"][-1])
    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
        return config, {m.name.rstrip("/"): m for m in layer.getmembers()}


def test_from_gives_the_default_path_and_entrypoint_keeps_this_stages_cmd(
    st: Strata, tmp_path: Path
) -> None:
    _build(
        st,
        tmp_path,
        'FROM scratch\nCOPY a /\nENV A=b\nENV PATH=/x:$PATH\nCMD ["c"]\nENTRYPOINT ["e"]\n',
        "rules-scratch",
        a="a\n",
    )
    cfg = _config(st, "rules-scratch")["Config"]
    assert cfg["Env"] == [f"PATH=/x:{DEFAULT_PATH}", "A=b"]
    assert cfg["Cmd"] == ["c"] and cfg["Entrypoint"] == ["e"]


def test_run_writes_below_a_volume_are_dropped_and_an_unchanged_step_has_no_layer(
    st: Strata, tmp_path: Path
) -> None:
    _build(
        st,
        tmp_path,
        "FROM debian:bookworm\nRUN mkdir /data && echo before > /data/a\nVOLUME /data /fresh\n"
        "RUN echo after > /data/a && echo new > /data/b\nRUN true\n",
        "rules-volume",
    )
    config, layer = _saved(st, "rules-volume", tmp_path)
    # The RUN that wrote into /data left only the new mount point /fresh; `RUN true` no layer.
    assert set(layer) == {"fresh"}
    assert layer["fresh"].mode & 0o7777 == 0o755
    assert [h.get("empty_layer", False) for h in config["history"][-3:]] == [True, False, True]
    assert st("run", "--rm", "rules-volume", "cat", "/data/a").stdout == "before\n"


def test_copy_from_keeps_owners_and_a_chowned_copy_drops_setuid(st: Strata, tmp_path: Path) -> None:
    ctx_files = {"su": "su\n"}
    dockerfile = (
        "FROM debian:bookworm AS one\n"
        "RUN echo x > /f && chown 5:6 /f && chmod 4755 /f\n"
        "FROM debian:bookworm\n"
        "COPY --from=one /f /kept\n"
        "COPY --from=one --chown=7:8 /f /chowned\n"
        "COPY su /su\n"
    )
    ctx = tmp_path / "rules-owners"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in ctx_files.items():
        (ctx / name).write_text(text)
    os.chmod(ctx / "su", 0o4755)
    st("build", "-q", "-t", "rules-owners", str(ctx))
    script = "stat -c '%a %u:%g' /kept /chowned /su"
    out = st("run", "--rm", "rules-owners", "sh", "-c", script).stdout.split("\n")
    assert out[:3] == ["4755 5:6", "755 7:8", "755 0:0"]
