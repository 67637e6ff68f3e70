"""Every metadata instruction, RUN forms (exec, heredoc, --network), several tags, -f, --chown
by name, and the cache's life: it survives runs, `image prune` keeps it, `builder prune` and gc
remove it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.builder.test_build import context, verdicts
from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]


def config(st: Strata, image: str) -> dict[str, object]:
    doc = json.loads(st("image", "inspect", image).stdout)[0]
    assert isinstance(doc, dict)
    return doc


def test_every_metadata_instruction(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM debian:bookworm\n"
        "MAINTAINER someone@example.org\n"
        'LABEL a=1 b="two words"\n'
        "ENV PATH=/opt/bin:$PATH GREETING=hello\n"
        "EXPOSE 8080 53/udp\n"
        "VOLUME /data\n"
        "USER nobody\n"
        "WORKDIR /tmp\n"
        "STOPSIGNAL SIGINT\n"
        "HEALTHCHECK --interval=30s --retries=2 CMD true\n"
        'SHELL ["/bin/bash", "-c"]\n'
        'ENTRYPOINT ["/bin/echo"]\n'
        'CMD ["from", "cmd"]\n'
        "ONBUILD RUN echo later\n",
    )
    st("build", "-t", "meta:1", "-t", "meta:also", str(ctx))
    doc = config(st, "meta:1")
    cfg = doc["Config"]
    assert isinstance(cfg, dict)
    assert doc["Author"] == "someone@example.org"
    assert cfg["Labels"] == {"a": "1", "b": "two words"}
    assert "GREETING=hello" in cfg["Env"]
    # The imported base sets no PATH: FROM gives Docker's default, which $PATH expands to.
    assert (
        "PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in cfg["Env"]
    )
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert set(cfg["Volumes"]) == {"/data"}
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/tmp"
    assert cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]  # shell form, as Docker
    assert cfg["Healthcheck"]["Interval"] == 30_000_000_000 and cfg["Healthcheck"]["Retries"] == 2
    assert cfg["Shell"] == ["/bin/bash", "-c"]
    assert cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["from", "cmd"]
    assert cfg["OnBuild"] == ["RUN echo later"]
    assert st("run", "--rm", "meta:also").stdout == "from cmd\n"
    history = st("history", "--no-trunc", "--format", "{{.CreatedBy}}", "meta:1").stdout
    assert '/bin/bash -c #(nop)  CMD ["from" "cmd"]' in history  # SHELL changes the prefix
    assert "/bin/sh -c #(nop)  EXPOSE 53/udp 8080" in history  # sorted, as BuildKit parses


def test_run_forms_and_network(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM debian:bookworm\n"
        'RUN ["/bin/sh", "-c", "echo exec form > /exec.txt"]\n'
        "RUN <<EOF\n"
        "echo heredoc one > /heredoc.txt\n"
        "echo heredoc two >> /heredoc.txt\n"
        "EOF\n"
        "RUN --network=none cat /proc/net/dev > /net.txt\n",
    )
    (ctx / "Dockerfile").rename(ctx / "Build.file")
    st("build", "-f", str(ctx / "Build.file"), "-t", "runs:1", str(ctx))
    out = st("run", "--rm", "runs:1", "cat", "/exec.txt", "/heredoc.txt").stdout
    assert out == "exec form\nheredoc one\nheredoc two\n"
    net = st("run", "--rm", "runs:1", "cat", "/net.txt").stdout.splitlines()[2:]
    assert [line.split(":")[0].strip() for line in net] == ["lo"]


def test_chown_by_name(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM debian:bookworm\nCOPY --chown=nobody:nogroup f /f\n", f="x\n")
    st("build", "-t", "chown:1", str(ctx))
    out = st("run", "--rm", "chown:1", "stat", "-c", "%U:%G", "/f").stdout
    assert out == "nobody:nogroup\n"
    assert "no such user" in st.fail(
        "build",
        str(
            context(tmp_path / "bad", "FROM debian:bookworm\nCOPY --chown=ghost f /f\n", f="x\n")
        ),  # fmt: skip
    )


def test_cache_survives_prune_and_builder_prune_removes_it(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM debian:bookworm\nRUN echo cached > /c\nLABEL x=y\n")
    st("build", "-t", "cache:1", str(ctx))
    st(
        "build",
        "-t",
        "cache:other",
        str(context(tmp_path / "o", "FROM debian:bookworm\nLABEL o=1\n")),
    )
    st("rmi", "cache:other")  # its step images stay: they are the build cache
    st("image", "prune", "-f")  # dangling images go; the build cache stays
    assert verdicts(st("build", "-t", "cache:1", str(ctx)).stdout) == ["hit", "hit"]
    before = st("images", "-a", "-q").stdout.split()
    out = st("builder", "prune", "-f").stdout
    assert out.splitlines()[-1].startswith("Total reclaimed space:")
    after = st("images", "-a", "-q").stdout.split()
    assert len(after) < len(before)
    assert st("images", "-q", "cache:1").stdout.strip() in after  # tagged: kept
    # Only the tagged image is left of that build; the next build starts over.
    assert verdicts(st("build", "-t", "cache:2", str(ctx)).stdout)[0] != "hit"


def test_live_progress_on_a_terminal(st: Strata, tmp_path: Path) -> None:
    import shlex
    import sys

    from tests.cli.test_run import Tmux

    ctx = context(tmp_path, "FROM debian:bookworm\nRUN sleep 2.5 && echo slept\n")
    cli = f"env STRATA_ROOT={shlex.quote(str(st.root))} {sys.executable} -m strata"
    tmux = Tmux("buildlive")
    try:
        # The pane outlives the build, so its last screen can still be read.
        tmux.start(f"{cli} build --no-cache {shlex.quote(str(ctx))}; sleep 60")
        tmux.expect(r"\[\+\] Step 2/2 : RUN sleep 2\.5 && echo slept  \d+\.\ds")
        tmux.expect(r"Successfully built [0-9a-f]{12}")
    finally:
        tmux.close()


def test_args_before_from_and_platform(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "ARG BASE=debian:bookworm\n"
        "ARG GREETING=hello\n"
        "FROM --platform=linux/amd64 ${BASE} AS first\n"
        "ARG GREETING\n"
        "RUN echo $GREETING > /greeting\n",
    )
    st("build", "-t", "args:1", str(ctx))
    assert st("run", "--rm", "args:1", "cat", "/greeting").stdout == "hello\n"
    st("build", "--build-arg", "GREETING=bonjour", "-t", "args:2", str(ctx))
    assert st("run", "--rm", "args:2", "cat", "/greeting").stdout == "bonjour\n"
    assert "No such image: nope:1" in st.fail("build", "--build-arg", "BASE=nope:1", str(ctx))
