"""``build --explain`` on multi-stage Dockerfiles: a stage that would rebuild is named by the
steps that depend on it (``FROM stage``, ``COPY --from=stage``), every step is explained, and
nothing is built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.builder.test_build import context, steps
from tests.conftest import Strata

pytestmark = [pytest.mark.root, pytest.mark.peers]

MULTI = """\
FROM debian:bookworm AS builder
COPY a.txt /src/a.txt
RUN cp /src/a.txt /out.txt
FROM builder AS mid
RUN echo mid > /mid.txt
FROM debian:bookworm
COPY --from=builder /out.txt /final.txt
COPY --from=1 /mid.txt /mid.txt
CMD ["cat", "/final.txt"]
"""


def decisions(output: str) -> list[str]:
    """Per step: the line under it (`` ---> …``)."""
    return [step[1] if len(step) > 1 else "" for step in steps(output)]


def test_explain_multi_stage_never_built(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, MULTI, **{"a.txt": "one\n"})
    before = st("images", "-a", "-q").stdout
    out = st("build", "--explain", "-t", "never:1", str(ctx)).stdout
    said = decisions(out)
    assert len(said) == 9, out
    assert said[1:3] == [
        " ---> would run: no earlier build of this step",
        " ---> would run: parent layer changed (step 2)",
    ]
    # Not the stale image of the stage (it has none yet): what it waits for.
    assert said[3] == " ---> would run: depends on stage 'builder', which rebuilds (step 3)"
    assert said[4] == " ---> would run: parent layer changed (step 3)"
    assert re.fullmatch(r" ---> [0-9a-f]{12}", said[5])
    assert said[6] == " ---> would run: depends on stage 'builder', which rebuilds (step 3)"
    assert said[7] == " ---> would run: depends on stage '1', which rebuilds (step 5)"
    assert said[8] == " ---> would run: parent layer changed (step 8)"
    assert st("images", "-a", "-q").stdout == before
    assert "never" not in st("images").stdout


def test_explain_multi_stage_after_a_change(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, MULTI, **{"a.txt": "one\n"})
    st("build", "-t", "multi:1", str(ctx))
    # Nothing changed: every step would come from the cache, the stages' images are shown.
    same = decisions(st("build", "--explain", str(ctx)).stdout)
    assert all(re.fullmatch(r" ---> (would use cache \()?[0-9a-f]{12}\)?", d) for d in same), same
    # The first stage's source changes: the stages that depend on it say so.
    (ctx / "a.txt").write_text("two\n")
    before = st("images", "-a", "-q").stdout
    said = decisions(st("build", "--explain", str(ctx)).stdout)
    assert said[1] == " ---> would run: a.txt changed (content)"
    assert said[3] == " ---> would run: depends on stage 'builder', which rebuilds (step 3)"
    assert said[6] == " ---> would run: depends on stage 'builder', which rebuilds (step 3)"
    assert said[7] == " ---> would run: depends on stage '1', which rebuilds (step 5)"
    assert st("images", "-a", "-q").stdout == before
    # The build the explanation announced, then the image holds the new file.
    st("build", "-t", "multi:2", str(ctx))
    assert st("run", "--rm", "multi:2").stdout == "two\n"


def test_explain_copy_chown_by_name_after_a_step_that_would_run(st: Strata, tmp_path: Path) -> None:
    # The user is made by a step that has not run: the name cannot be looked up in a dry run.
    dockerfile = "FROM debian:bookworm\nRUN useradd app\nCOPY --chown=app a.txt /a.txt\n"
    ctx = context(tmp_path, dockerfile, **{"a.txt": "x\n"})
    said = decisions(st("build", "--explain", str(ctx)).stdout)
    assert said[2] == " ---> would run: parent layer changed (step 2)"


def test_explain_still_fails_on_what_the_build_would_fail_on(st: Strata, tmp_path: Path) -> None:
    ctx = context(tmp_path, "FROM debian:bookworm\nCOPY missing.txt /m\n")
    assert "missing.txt" in st.fail("build", "--explain", str(ctx))
