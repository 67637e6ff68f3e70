"""The image commands end to end, through the real ``strata`` entry point."""

from __future__ import annotations

import http.server
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.tarballs import (
    oci_layout_archive,
    rootfs_tar,
    tar_with_members,
    truncate_inside_last_member,
)
from tests.conftest import Strata, store_state


def image_id(strata: Strata, name: str) -> str:
    return strata("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return rootfs_tar(tmp_path / "rootfs.tar")


def test_import_lists_and_inspects_like_docker(strata: Strata, rootfs: Path) -> None:
    out = strata(
        "image", "import", "-m", "first import", "-c", "CMD /bin/hello", str(rootfs), "hello:v1"
    )
    new_id = out.stdout.strip()
    assert new_id.startswith("sha256:") and len(new_id) == 71
    lines = strata("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["hello", "v1", new_id[7:19]]
    doc = json.loads(strata("image", "inspect", "hello:v1").stdout)[0]
    assert doc["Id"] == new_id
    assert doc["RepoTags"] == ["hello:v1"]
    assert doc["Comment"] == "first import"
    assert doc["Config"]["Cmd"] == ["/bin/sh", "-c", "/bin/hello"]
    assert len(doc["RootFS"]["Layers"]) == 1
    # Docker's import comment when -m is not given.
    strata("image", "import", str(rootfs), "hello:v2")
    assert (
        strata("inspect", "-f", "{{.Comment}}", "hello:v2").stdout.strip()
        == "Imported from -"  # the Docker CLI sends a file as the request body, as stdin
    )


def test_import_same_content_gives_same_layer(strata: Strata, tmp_path: Path) -> None:
    plain = rootfs_tar(tmp_path / "a.tar")
    gz = rootfs_tar(tmp_path / "a.tar.gz", compress=True)
    strata("import", str(plain), "a:plain")
    strata("import", str(gz), "a:gz")
    layers = [
        json.loads(strata("inspect", "-f", "{{json .RootFS.Layers}}", n).stdout)
        for n in ("a:plain", "a:gz")
    ]
    assert layers[0] == layers[1]


def test_import_from_stdin_and_url(strata: Strata, rootfs: Path) -> None:
    strata("import", "-", "from:stdin", input=rootfs.read_bytes())

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(rootfs.parent), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{rootfs.name}"
        strata("import", url, "from:url")
        assert (
            strata("inspect", "-f", "{{.Comment}}", "from:url").stdout.strip()
            == f"Imported from {url}"
        )
        missing = strata.fail("import", url + ".missing", "from:nothing")
        assert url + ".missing" in missing
    finally:
        server.shutdown()
    ids = {image_id(strata, n) for n in ("from:stdin",)}
    assert len(ids) == 1


def test_names_normalise_like_docker(strata: Strata, rootfs: Path) -> None:
    strata("import", str(rootfs), "debian")
    strata("tag", "debian", "localhost:5000/team/debian:1.0")
    strata("tag", "debian", "docker.io/library/debian:other")
    rows = {tuple(line.split()[:2]) for line in strata("images").stdout.splitlines()[1:]}
    assert rows == {
        ("debian", "latest"),
        ("localhost:5000/team/debian", "1.0"),
        ("debian", "other"),
    }
    assert image_id(strata, "docker.io/library/debian:latest") == image_id(strata, "debian")
    short = image_id(strata, "debian")[7:19]
    assert image_id(strata, short) == image_id(strata, "debian")
    assert strata("images", "-q").stdout.split() == [short] * 3


def test_rmi_follows_dockers_rules(strata: Strata, rootfs: Path) -> None:
    strata("import", str(rootfs), "app:1")
    strata("tag", "app:1", "app:2")
    full = image_id(strata, "app:1")
    error = strata.fail("rmi", full[7:19])
    assert "must be forced" in error and "referenced in multiple repositories" in error
    out = strata("rmi", "app:1").stdout
    assert out.splitlines() == ["Untagged: app:1"]
    out = strata("rmi", "app:2").stdout.splitlines()
    assert out == ["Untagged: app:2", f"Deleted: {full}"]
    assert strata("images", "-q").stdout == ""
    # Nothing is left behind: every blob of the image was collected.
    assert not any((strata.root / "blobs" / "sha256").iterdir())


def test_rmi_force_by_id_and_prune(strata: Strata, rootfs: Path, tmp_path: Path) -> None:
    strata("import", str(rootfs), "app:1")
    strata("tag", "app:1", "app:2")
    out = strata("rmi", "-f", image_id(strata, "app:1")).stdout.splitlines()
    assert sorted(out[:2]) == ["Untagged: app:1", "Untagged: app:2"]
    assert out[2].startswith("Deleted: sha256:")
    # A re-tag leaves the old image dangling; prune removes it.
    strata("import", str(rootfs), "app:1")
    other = rootfs_tar(tmp_path / "other.tar", {"./etc/extra": b"x"})
    strata("import", str(other), "app:1")
    rows = [line.split() for line in strata("images").stdout.splitlines()[1:]]
    assert ["<none>", "<none>"] in [r[:2] for r in rows]
    assert strata("images", "--filter", "dangling=true", "-q").stdout.strip() != ""
    out = strata("image", "prune", "-f").stdout
    assert "Deleted Images:" in out and "Total reclaimed space:" in out
    assert [r.split()[:2] for r in strata("images").stdout.splitlines()[1:]] == [["app", "1"]]
    out = strata("image", "prune", "-a", "-f").stdout
    assert strata("images", "-q").stdout == ""


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_save_load_round_trip(strata: Strata, tmp_path: Path, fmt: str) -> None:
    one = rootfs_tar(tmp_path / "one.tar")
    two = rootfs_tar(tmp_path / "two.tar", {"./etc/two": b"2"})
    strata("import", str(one), "one:latest")
    strata("import", str(two), "example.com/two:v2")
    ids = {n: image_id(strata, n) for n in ("one", "example.com/two:v2")}
    archive = tmp_path / "images.tar"
    strata("save", "--format", fmt, "-o", str(archive), "one", "example.com/two:v2")
    strata("rmi", "one", "example.com/two:v2")
    out = strata("load", "-i", str(archive)).stdout.splitlines()
    assert sorted(out) == ["Loaded image: example.com/two:v2", "Loaded image: one:latest"]
    assert {n: image_id(strata, n) for n in ids} == ids
    # Loading from standard input works too, and loading twice changes nothing.
    before = store_state(strata.root)
    strata("load", input=archive.read_bytes())
    assert store_state(strata.root)["files"] == before["files"]


def test_save_to_stdout_loads_from_stdin(strata: Strata, rootfs: Path) -> None:
    import os
    import subprocess
    import sys

    strata("import", str(rootfs), "one")
    env = {**os.environ, "STRATA_ROOT": str(strata.root)}
    saved = subprocess.run(
        [sys.executable, "-m", "strata", "save", "one"], capture_output=True, env=env, check=True
    ).stdout
    assert saved[257:262] == b"ustar"
    strata("rmi", "one")
    loaded = subprocess.run(
        [sys.executable, "-m", "strata", "load"],
        input=saved,
        capture_output=True,
        env=env,
        check=True,
    )
    assert loaded.stdout == b"Loaded image: one:latest\n"


# Runs the CLI in-process, then names the heavy modules it loaded.
_HEAVY_PROBE = (
    "import sys\n"
    "from strata.cli.main import main\n"
    "sys.argv = ['strata'] + sys.argv[1:]\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "heavy = [m for m in ('httpx', 'rich', 'requests', 'strata.image.archive', 'isal',"
    " 'zstandard') if m in sys.modules]\n"
    "print('HEAVY', heavy)\n"
)


def _heavy(strata: Strata, *args: str) -> str:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _HEAVY_PROBE, *args],
        capture_output=True,
        text=True,
        env={"STRATA_ROOT": str(strata.root), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return proc.stdout


def test_help_and_ls_import_nothing_heavy(strata: Strata) -> None:
    for args in (["--help"], ["image", "ls"], ["images", "-q"]):
        out = _heavy(strata, *args)
        assert "HEAVY []" in out, (args, out)


def test_a_cached_build_imports_no_compression(
    strata: Strata, rootfs: Path, tmp_path: Path
) -> None:
    # Every step a cache hit: nothing is compressed or decompressed, so neither library loads
    # (isal alone costs ~10 ms, multiprocessing with it).
    strata("import", str(rootfs), "seed:1")
    (tmp_path / "Dockerfile").write_text("FROM seed:1\nENV A=1\nLABEL b=2\n")
    strata("build", "-q", "-t", "cached:1", str(tmp_path))
    out = _heavy(strata, "build", "-q", "-t", "cached:1", str(tmp_path))
    assert out.endswith("HEAVY []\n"), out


# -- bad input: one line, non-zero, the store exactly as before ------------------------------


@pytest.fixture
def seeded(strata: Strata, rootfs: Path) -> Iterator[Strata]:
    strata("import", str(rootfs), "seed:1")
    yield strata


def assert_untouched(strata: Strata, *args: str, reason: str) -> None:
    before = store_state(strata.root)
    error = strata.fail(*args)
    assert reason in error, error
    assert store_state(strata.root) == before


def test_bad_references_and_unknown_images(seeded: Strata) -> None:
    assert_untouched(seeded, "tag", "seed:1", "Bad/Name", reason="must be lowercase")
    assert_untouched(seeded, "tag", "seed:1", "a:b:c:d", reason="invalid reference format")
    assert_untouched(seeded, "inspect", "nope", reason="No such object: nope")
    assert_untouched(seeded, "image", "inspect", "nope", reason="No such image: nope")
    assert_untouched(seeded, "rmi", "nope:1", reason="No such image: nope:1")
    assert_untouched(seeded, "tag", "nope", "x", reason="No such image: nope")
    assert_untouched(seeded, "save", "-o", "/tmp/never.tar", "nope", reason="No such image: nope")


def test_bad_imports(seeded: Strata, tmp_path: Path) -> None:
    good_tar = rootfs_tar(tmp_path / "good.tar", {"./usr/big": bytes(range(256)) * 256})
    good = good_tar.read_bytes()
    truncated = truncate_inside_last_member(good_tar, tmp_path / "truncated.tar")
    corrupt_gz = tmp_path / "corrupt.tar.gz"
    import gzip

    data = gzip.compress(good)
    corrupt_gz.write_bytes(data[:20] + bytes(b ^ 0xFF for b in data[20:60]) + data[60:])
    assert_untouched(seeded, "import", str(truncated), "t:1", reason=str(truncated))
    assert_untouched(seeded, "import", str(corrupt_gz), "t:2", reason=str(corrupt_gz))
    assert_untouched(seeded, "import", str(tmp_path / "missing.tar"), "t:4", reason="missing.tar")
    assert_untouched(
        seeded, "import", "-c", "RUN x", str(tmp_path / "good.tar"), "t:5", reason="RUN"
    )
    assert_untouched(seeded, "import", str(tmp_path / "good.tar"), "UPPER", reason="lowercase")


def test_import_stops_dot_dot_at_the_root(seeded: Strata, tmp_path: Path) -> None:
    # As `docker import` applies such a tar (checked with Docker 20.10): ../../etc/passwd is
    # etc/passwd inside the image, and nothing outside the store is touched.
    climbing = tar_with_members(tmp_path / "climbing.tar", [("../../etc/passwd", b"x")])
    seeded("import", str(climbing), "climbing:1")
    exported = seeded("create", "--name", "climbing", "climbing:1", "/x")
    assert exported.returncode == 0
    out = tmp_path / "fs.tar"
    seeded("export", "-o", str(out), "climbing")
    with tarfile.open(out) as tar:
        assert tar.extractfile("etc/passwd").read() == b"x"  # type: ignore[union-attr]


def test_bad_archives(seeded: Strata, tmp_path: Path) -> None:
    good = oci_layout_archive(tmp_path / "good.tar")
    seeded("load", "-i", str(good))  # the fixture itself is valid
    seeded("rmi", "hostile:test")
    truncated = truncate_inside_last_member(good, tmp_path / "truncated.tar")
    wrong_digest = oci_layout_archive(tmp_path / "digest.tar", corrupt_layer_name=True)
    media = oci_layout_archive(tmp_path / "media.tar", layer_media_type="application/x-unknown")
    huge = oci_layout_archive(tmp_path / "huge.tar", manifest=b" " * (4 * 1024 * 1024 + 1))
    escape = tar_with_members(tmp_path / "escape.tar", [("../evil", b"x"), ("index.json", b"{}")])
    absolute = tar_with_members(tmp_path / "abs.tar", [("/etc/evil", b"x")])
    random_bytes = tmp_path / "random.bin"
    random_bytes.write_bytes(bytes(range(256)) * 64)
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    for path in (truncated, wrong_digest, media, huge, escape, absolute, random_bytes, empty):
        assert_untouched(seeded, "load", "-i", str(path), reason=str(path))
    assert_untouched(seeded, "load", "-i", str(tmp_path / "nothing.tar"), reason="nothing.tar")


def test_save_never_leaves_a_partial_file(seeded: Strata, tmp_path: Path) -> None:
    assert_untouched(
        seeded, "save", "-o", str(tmp_path / "no" / "dir" / "x.tar"), "seed:1", reason="x.tar"
    )
    assert not (tmp_path / "no").exists()
