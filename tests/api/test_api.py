"""`strata.api` for real: a Debian image, runc, overlayfs and a docker-registry on loopback.

Each call returns typed values, raises `strata.errors` types, reports through ``progress`` and
prints nothing (the library never writes to stdout or stderr).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import strata
import strata.api
from strata.api import Container, HistoryEntry, Image, Progress, RunResult
from strata.errors import ImageNotFound, InvalidArgument, NotFound, StepFailed, StrataError
from tests.api.conftest import BASE
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.peers]


@pytest.fixture(autouse=True)
def _silent(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Nothing any API call does reaches our stdout or stderr."""
    yield
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.fixture(autouse=True)
def _no_store_left_open() -> Iterator[None]:
    """No call leaves a connection to a store's database open behind it: a process that later
    forks a container's monitor (a second `run`) would break SQLite's locks in the child."""
    yield
    fds = Path("/proc/self/fd")
    held = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed since it was listed (the listing's own descriptor)
        if Path(target).name.startswith("strata.db"):
            held.append(target)
    assert held == []


def test_import_strata_is_lazy_and_gives_the_api() -> None:
    code = (
        "import sys, strata\n"
        "assert 'strata.api' not in sys.modules, 'import strata loaded the API'\n"
        "import strata.api\n"
        "assert strata.pull is strata.api.pull and strata.Image is strata.api.Image\n"
        "assert set(strata.__all__) >= {'pull', 'push', 'build', 'run', 'commit', 'save',"
        " 'load', 'images', 'containers', 'history'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError):
        strata.nothing_here  # noqa: B018


def test_images_and_history_are_typed(debian_root: Path) -> None:
    found = strata.images(root=debian_root)
    assert len(found) == 1
    image = found[0]
    assert isinstance(image, Image)
    assert image.tags == (BASE,)
    assert image.id.startswith("sha256:") and image.digest.startswith("sha256:")
    assert str(image) == image.id and image.size > 0
    assert image.config.config.env or image.config.architecture
    entries = image.history()
    assert entries == strata.history(BASE, root=debian_root)
    assert [type(e) for e in entries] == [HistoryEntry]
    assert entries[0].id == image.id and entries[0].tags == (BASE,) and entries[0].size > 0
    with pytest.raises(ImageNotFound):
        strata.history("no/such:image", root=debian_root)
    quick = strata.history(image, sizes=False, root=debian_root)
    assert [e.size for e in quick] == [0] * len(entries)
    detailed = strata.history(image, files=2, root=debian_root)
    layer = next(e for e in detailed if not e.empty_layer)
    assert layer.files is not None and layer.files.added.count > 0
    assert len(layer.files.added.largest) == 2


def test_run_captures_output_and_exit_code(debian_root: Path) -> None:
    out = strata.run(
        BASE, ["sh", "-c", "echo hi; echo oops >&2; exit 3"], remove=True, root=debian_root
    )
    assert isinstance(out, RunResult)
    assert (out.exit_code, out.stdout, out.stderr) == (3, b"hi\n", b"oops\n")
    assert out.container.state == "exited" and out.container.exit_code == 3
    assert strata.containers(all=True, root=debian_root) == []  # removed

    kept = strata.run(BASE, ["cat", "/etc/hostname"], name="c1", env={"A": "1"}, root=debian_root)
    assert kept.exit_code == 0 and kept.stderr == b""
    listed = strata.containers(all=True, root=debian_root)
    assert [(c.name, c.state, c.exit_code) for c in listed] == [("c1", "exited", 0)]
    assert isinstance(listed[0], Container) and listed[0].command == ("cat", "/etc/hostname")
    assert strata.containers(root=debian_root) == []  # none running

    env = strata.run(BASE, ["sh", "-c", "echo $A"], env=["A=2"], remove=True, root=debian_root)
    assert env.stdout == b"2\n"
    with pytest.raises(StrataError):
        strata.run(BASE, ["/no/such/command"], remove=True, root=debian_root)
    with pytest.raises(InvalidArgument):  # a terminal in the foreground needs stdio
        strata.run(BASE, ["true"], tty=True, remove=True, root=debian_root)


def test_detached_run_is_listed_while_it_runs(debian_root: Path) -> None:
    out = strata.run(BASE, ["sleep", "60"], detach=True, name="bg", root=debian_root)
    assert out.exit_code is None and out.container.state == "running"
    assert [c.name for c in strata.containers(root=debian_root)] == ["bg"]
    subprocess.run(
        [sys.executable, "-m", "strata", "--root", str(debian_root), "rm", "-f", "bg"],
        check=True,
        capture_output=True,
    )


def test_commit_makes_an_image_with_a_history(debian_root: Path) -> None:
    strata.run(BASE, ["sh", "-c", "echo made > /made"], name="w", root=debian_root)
    image = strata.commit("w", "app:committed", message="a file", root=debian_root)
    assert image.tags == ("app:committed",)
    entries = image.history()
    assert entries[0].comment == "a file" and entries[0].id == image.id
    assert len(entries) == len(strata.history(BASE, root=debian_root)) + 1
    out = strata.run(image, ["cat", "/made"], remove=True, root=debian_root)
    assert out.stdout == b"made\n"
    with pytest.raises(NotFound):
        strata.commit("nope", root=debian_root)


def test_build_reports_steps_and_output(debian_root: Path, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f'FROM {BASE}\nRUN echo building > /built && echo said\nCMD ["cat", "/built"]\n'
    )
    events: list[Progress] = []
    new = strata.build(context, tags=["app:2"], root=debian_root, progress=events.append)
    assert isinstance(new, Image) and new.tags == ("app:2",)
    steps = [e for e in events if e.kind == "step"]
    assert [(e.current, e.total) for e in steps] == [(1, 3), (2, 3), (3, 3)]
    assert steps[1].text.startswith("RUN echo building")
    assert b"said\n" in b"".join(e.data for e in events if e.kind == "output")
    assert events[-1] == Progress("image", new.short_id)
    assert new.history()[0].created_by.endswith('CMD ["cat" "/built"]')
    assert strata.run(new, remove=True, root=debian_root).stdout == b"building\n"
    # A second build hits the cache and says so.
    again: list[Progress] = []
    assert strata.build(context, root=debian_root, progress=again.append).id == new.id
    assert [e.kind for e in again].count("cache-hit") == 2
    plan: list[Progress] = []
    strata.api.explain(context, root=debian_root, progress=plan.append)
    assert [e.kind for e in plan if e.kind.startswith("plan")] == ["plan-hit"] * 2  # after FROM
    (context / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo failing; exit 3\n")
    failed: list[Progress] = []
    with pytest.raises(StepFailed):
        strata.build(context, root=debian_root, progress=failed.append)
    assert b"failing\n" in b"".join(e.data for e in failed)


def test_save_and_load_round_trip(debian_root: Path, tmp_path: Path) -> None:
    archive = tmp_path / "out.tar"
    strata.save(BASE, archive, root=debian_root)
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    stream = io.BytesIO()
    strata.save([BASE], stream, format="oci-archive", root=debian_root)
    with tarfile.open(fileobj=io.BytesIO(stream.getvalue())) as tar:
        assert "index.json" in tar.getnames()

    other = tmp_path / "other"
    events: list[Progress] = []
    loaded = strata.load(archive, root=other, progress=events.append)
    assert [i.tags for i in loaded] == [(BASE,)]
    assert loaded[0].id == strata.images(root=debian_root)[0].id
    assert events == [Progress("loaded", loaded[0].id, text=BASE)]
    stream.seek(0)
    assert strata.load(stream, root=tmp_path / "third")[0].id == loaded[0].id
    with pytest.raises(ImageNotFound):
        strata.save("no/such:image", tmp_path / "x.tar", root=debian_root)
    assert not (tmp_path / "x.tar").exists()


def test_push_and_pull_through_a_registry(
    debian_root: Path,
    tmp_path: Path,
    registry: Registry,  # noqa: F811
) -> None:
    name = f"{registry.address}/api/app:1"
    pushed_events: list[Progress] = []
    pushed = strata.push(BASE, name, root=debian_root, progress=pushed_events.append)
    assert pushed.reference == name and pushed.digest.startswith("sha256:")
    assert {"start", "advance", "done"} <= {e.kind for e in pushed_events}

    fresh = tmp_path / "fresh"
    events: list[Progress] = []
    img = strata.pull(name, root=fresh, progress=events.append)
    assert isinstance(img, Image) and img.tags == (name,)
    assert img.repo_digests == (f"{registry.address}/api/app@{pushed.digest}",)
    advances = [e for e in events if e.kind == "advance"]
    assert advances and advances[-1].current == advances[-1].total
    assert any(e.kind == "done" and e.text == "Pull complete" for e in events)
    out = strata.run(img, ["echo", "hi"], remove=True, root=fresh)
    assert out.stdout == b"hi\n"
    # A name that is missing is pulled by `run` itself, through its progress.
    later: list[Progress] = []
    out = strata.run(name, ["true"], remove=True, root=tmp_path / "x", progress=later.append)
    assert out.exit_code == 0 and later
    with pytest.raises(ImageNotFound):
        strata.push("no/such:image", f"{registry.address}/api/none:1", root=debian_root)
    with pytest.raises(StrataError):
        strata.pull(f"{registry.address}/api/missing:1", root=fresh)
