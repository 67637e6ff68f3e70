"""``strata build`` end to end on a real Debian image: steps, history, the cache and its reasons.

One store per module (importing the base image once); each test builds its own Dockerfiles in
its own context directory, so the cache records of one test never meet another's.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]


def context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def steps(output: str) -> list[list[str]]:
    """The build output cut into steps: each the lines from ``Step N/M`` to the next."""
    out: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("Step "):
            out.append([line])
        elif out:
            out[-1].append(line)
    return out


def verdicts(output: str) -> list[str]:
    """Per step after FROM: ``hit`` or the miss reason."""
    found = []
    for step in steps(output)[1:]:
        text = "\n".join(step)
        if " ---> Using cache" in text:
            found.append("hit")
        else:
            match = re.search(r" ---> cache miss: (.*)", text)
            found.append(match.group(1) if match else "?")
    return found


BASIC = """\
FROM debian:bookworm
ARG VERSION=1.2
ENV APP=/app
RUN echo "building $VERSION" && mkdir -p $APP && echo hi > $APP/hello.txt
WORKDIR /app
CMD ["cat", "hello.txt"]
"""


def test_build_runs_steps_and_the_image_runs(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, BASIC)
    out = st("build", "-t", "basic:1", str(ctx)).stdout
    lines = out.splitlines()
    assert lines[0] == "Sending build context to Docker daemon  2.048kB"
    assert lines[1] == "Step 1/6 : FROM debian:bookworm"
    assert re.fullmatch(r" ---> [0-9a-f]{12}", lines[2])
    assert "building 1.2" in lines
    assert re.search(r"^ ---> Running in [0-9a-f]{12}$", out, re.M)
    assert re.search(r"^Removing intermediate container [0-9a-f]{12}$", out, re.M)
    assert re.fullmatch(r"Successfully built [0-9a-f]{12}", lines[-2])
    assert lines[-1] == "Successfully tagged basic:1"
    assert verdicts(out)[0] == "no earlier build of this step"
    assert verdicts(out)[1:] == [f"parent layer changed (step {n})" for n in range(2, 6)]
    assert st("run", "--rm", "basic:1").stdout == "hi\n"
    config = json.loads(st("image", "inspect", "basic:1").stdout)[0]["Config"]
    assert config["WorkingDir"] == "/app" and config["Cmd"] == ["cat", "hello.txt"]
    assert "APP=/app" in config["Env"]
    history = st(
        "history", "--no-trunc", "--format", "{{.ID}}\t{{.CreatedBy}}\t{{.Size}}", "basic:1"
    )
    rows = [r.split("\t") for r in history.stdout.splitlines()]
    assert [r[1] for r in rows[:5]] == [
        '/bin/sh -c #(nop)  CMD ["cat" "hello.txt"]',
        "/bin/sh -c #(nop) WORKDIR /app",
        '|1 VERSION=1.2 /bin/sh -c echo "building $VERSION" && mkdir -p $APP'
        " && echo hi > $APP/hello.txt",
        "/bin/sh -c #(nop)  ENV APP=/app",
        "/bin/sh -c #(nop)  ARG VERSION=1.2",
    ]
    # Local ancestors show their IDs, as in Docker (the intermediate images exist here).
    assert all(r[0].startswith("sha256:") for r in rows)
    assert rows[2][2] == "3B"
    # Intermediate images are hidden from `images` but listed with -a.
    shown = st("images", "-q").stdout.split()
    assert len(st("images", "-a", "-q").stdout.split()) >= len(shown) + 4


def test_rebuild_hits_and_each_miss_says_why(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, BASIC)
    st("build", "-t", "why:1", str(ctx))
    again = st("build", "-t", "why:1", str(ctx)).stdout
    assert verdicts(again) == ["hit"] * 5
    # The same image ID both times.
    assert st("images", "-q", "why:1").stdout.strip() in again
    # A build arg only RUN uses: ARG and ENV still hit.
    arg = st("build", "--build-arg", "VERSION=1.3", "-t", "why:1", str(ctx)).stdout
    assert verdicts(arg)[:3] == ["hit", "hit", "build arg VERSION changed 1.2 → 1.3"]
    assert verdicts(arg)[3:] == ["parent layer changed (step 4)", "parent layer changed (step 5)"]
    # An edited instruction.
    (ctx / "Dockerfile").write_text(BASIC.replace("ENV APP=/app", "ENV APP=/srv"))
    edited = st("build", "-t", "why:1", str(ctx)).stdout
    assert verdicts(edited)[:2] == ["hit", "instruction changed (was: ENV APP=/app)"]
    # --no-cache runs everything and says so.
    assert set(verdicts(st("build", "--no-cache", str(ctx)).stdout)) == {
        "cache disabled (--no-cache)"
    }


def test_explain_builds_nothing(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, BASIC)
    st("build", "-t", "explain:1", str(ctx))
    before = st("images", "-a", "-q").stdout
    (ctx / "Dockerfile").write_text(BASIC.replace("WORKDIR /app", "WORKDIR /srv"))
    out = st("build", "--explain", "-t", "explain:2", str(ctx)).stdout
    assert re.search(r"Step 2/6 : ARG VERSION=1.2\n ---> would use cache \([0-9a-f]{12}\)\n", out)
    assert (
        "Step 5/6 : WORKDIR /srv\n ---> would run: instruction changed (was: WORKDIR /app)\n" in out
    )
    assert "Step 6/6 : CMD" in out and "would run: parent layer changed (step 5)" in out
    assert st("images", "-a", "-q").stdout == before
    assert "explain:2" not in st("images").stdout


def test_failing_run_stops_the_build_and_keeps_earlier_steps(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path, 'FROM debian:bookworm\nENV A=1\nRUN echo before-fail; exit 3\nCMD ["x"]\n'
    )
    proc = st("build", "-t", "fails:1", str(ctx), check=False)
    assert proc.returncode == 3
    assert "before-fail" in proc.stdout
    assert proc.stderr == (
        "Error: The command '/bin/sh -c echo before-fail; exit 3' returned a non-zero code: 3\n"
    )
    assert "fails" not in st("images").stdout
    assert st("ps", "-a", "-q").stdout == ""
    # The ENV step was cached; the failed one left no container snapshot behind.
    again = st("build", "-t", "fails:1", str(ctx), check=False).stdout
    assert verdicts(again)[0] == "hit"
    with sqlite3.connect(st.root / "strata.db") as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM snapshots")]
    assert not [k for k in keys if k.startswith(("container-", "build-"))]
    # -q hides the output until the step fails.
    quiet = st("build", "-q", str(ctx), check=False)
    assert quiet.returncode == 3 and quiet.stdout == "before-fail\n"


def test_source_date_epoch_gives_identical_images(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path, 'FROM debian:bookworm\nRUN echo same > /same.txt\nLABEL a=b\nCMD ["true"]\n'
    )
    first = st("build", "-q", "--no-cache", "--timestamp", "1700000000", str(ctx)).stdout
    second = st("build", "-q", "--no-cache", "--timestamp", "1700000000", str(ctx)).stdout
    assert first == second and first.startswith("sha256:")
    other = st("build", "-q", "--no-cache", "--timestamp", "1700000001", str(ctx)).stdout
    assert other != first


def test_multistage_target_and_scratch(st: Strata, tmp_path: Path) -> None:
    ctx = context(
        tmp_path,
        "FROM debian:bookworm AS base\nRUN echo base > /base.txt\n"
        "FROM base AS second\nRUN cat /base.txt > /second.txt\n"
        "FROM scratch AS empty\nLABEL only=metadata\n",
    )
    out = st("build", "--target", "second", "-t", "stages:second", str(ctx)).stdout
    assert "Step 4/4 : RUN cat /base.txt > /second.txt" in out
    assert st("run", "--rm", "stages:second", "cat", "/second.txt").stdout == "base\n"
    st("build", "-t", "stages:empty", str(ctx))
    inspect = json.loads(st("image", "inspect", "stages:empty").stdout)[0]
    assert inspect["Config"]["Labels"] == {"only": "metadata"}
    assert "no stage" in st.fail("build", "--target", "nope", str(ctx)) or "target" in st.fail(
        "build", "--target", "nope", str(ctx)
    )


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("", "file is empty"),
        ("# only a comment\n", "file with no instructions"),
        ("FROM debian:bookworm\nFROBNICATE x\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
        ("FROM debian:bookworm\nSHELL not json\n", "Dockerfile:2:"),
        ("FROM nope-image:1\n", "No such image: nope-image:1"),
        (
            "FROM debian:bookworm\nRUN --mount=type=cache,target=/c true\n",
            "Dockerfile:2: RUN --mount is not supported",
        ),
    ],
)
def test_bad_dockerfiles_fail_in_one_line(
    st: Strata, tmp_path: Path, dockerfile: str, message: str
) -> None:
    before = st("images", "-a", "-q").stdout
    ctx = context(tmp_path, dockerfile)
    assert message in st.fail("build", "-t", "bad:1", str(ctx))
    assert st("images", "-a", "-q").stdout == before


def test_missing_dockerfile_and_context(st: Strata, tmp_path: Path) -> None:
    assert "cannot read Dockerfile" in st.fail("build", str(tmp_path))
    assert "unable to prepare context" in st.fail("build", str(tmp_path / "nope"))
