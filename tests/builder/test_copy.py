"""COPY and ADD onto a rootfs: Docker's rules, its error messages, and hostile images."""

from __future__ import annotations

import bz2
import gzip
import http.server
import io
import lzma
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import ClassVar

import pytest

from strata.builder.context.ignore import IgnoreRules
from strata.builder.context.scan import Context, scan_context
from strata.builder.copy import (
    CopyPlan,
    CopyStats,
    apply_copy,
    copy_sources,
    normalize_dest,
    plan_copy,
)
from strata.builder.owner import Owner, parse_chmod, resolve_chown
from strata.errors import BuildError

MTIME = 1_600_000_000


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    root = tmp_path / "ctx"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "node_modules").mkdir()
    files = {
        "index.js": "console.log('hi')\n",
        "package.json": "{}\n",
        "run.sh": "#!/bin/sh\n",
        "src/a.js": "a\n",
        "src/b.ts": "b\n",
        "src/sub/c.js": "c\n",
        "node_modules/dep.js": "dep\n",
        "secret.txt": "secret\n",
        "Dockerfile": "FROM scratch\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
        os.utime(root / name, (MTIME, MTIME))
    os.chmod(root / "run.sh", 0o755)
    (root / "link.js").symlink_to("index.js")
    (root / "src" / "rel").symlink_to("../index.js")
    os.link(root / "src" / "a.js", root / "src" / "a-hard.js")
    rules = IgnoreRules.parse("node_modules\nsecret.txt\n")
    return scan_context(root, rules)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "srv").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1001:\nstaff:x:50:\n")
    return root


def copy(
    sources: list[str | tuple[str, bytes]],
    dest: str,
    rootfs: Path,
    root: Context | Path,
    **kw: object,
) -> tuple[CopyPlan, CopyStats]:
    return copy_sources(sources, dest, rootfs, root=root, **kw)  # type: ignore[arg-type]


def read(path: Path) -> str:
    return path.read_text()


def test_file_into_directory_keeps_mode_and_mtime(ctx: Context, rootfs: Path) -> None:
    plan, stats = copy(["run.sh"], "/app/bin/", rootfs, ctx)
    target = rootfs / "app" / "bin" / "run.sh"
    assert read(target) == "#!/bin/sh\n"
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_mtime == MTIME
    assert stat.S_IMODE((rootfs / "app").stat().st_mode) == 0o755
    assert stats == CopyStats(1, len("#!/bin/sh\n"))
    assert plan.description.startswith("file:")


def test_file_destination_rules(ctx: Context, rootfs: Path) -> None:
    copy(["index.js"], "/app/main.js", rootfs, ctx)
    assert read(rootfs / "app" / "main.js") == "console.log('hi')\n"
    copy(["index.js"], "/srv", rootfs, ctx)  # an existing directory receives it by name
    assert (rootfs / "srv" / "index.js").is_file()
    copy(["index.js"], ".", rootfs, ctx, workdir="/srv")
    copy(["package.json"], "conf/", rootfs, ctx, workdir="/srv")
    assert (rootfs / "srv" / "conf" / "package.json").is_file()
    (rootfs / "srv" / "old").mkdir()
    (rootfs / "srv" / "old" / "x").write_text("x")
    copy(["index.js"], "/srv/old2", rootfs, ctx)
    copy(["index.js"], "/srv/", rootfs, ctx)
    assert (rootfs / "srv" / "old2").is_file()


def test_existing_entries_are_replaced_not_written_through(ctx: Context, rootfs: Path) -> None:
    (rootfs / "srv" / "index.js").mkdir()
    (rootfs / "srv" / "index.js" / "x").write_text("x")
    copy(["index.js"], "/srv/", rootfs, ctx)
    assert (rootfs / "srv" / "index.js").is_file()
    (rootfs / "etc" / "shadow").write_text("keep")
    (rootfs / "srv" / "package.json").symlink_to("/etc/shadow")
    copy(["package.json"], "/srv/", rootfs, ctx)
    assert not (rootfs / "srv" / "package.json").is_symlink()
    assert read(rootfs / "etc" / "shadow") == "keep"


def test_directory_copies_its_contents(ctx: Context, rootfs: Path) -> None:
    plan, _ = copy(["src"], "/app", rootfs, ctx)
    app = rootfs / "app"
    assert sorted(p.name for p in app.iterdir()) == ["a-hard.js", "a.js", "b.ts", "rel", "sub"]
    assert read(app / "sub" / "c.js") == "c\n"
    assert os.readlink(app / "rel") == "../index.js"  # a link inside a directory stays a link
    assert (app / "a.js").stat().st_ino == (app / "a-hard.js").stat().st_ino
    assert (app / "sub").stat().st_mtime == (ctx.root / "src" / "sub").stat().st_mtime
    assert plan.description.startswith("dir:")
    assert set(plan.sources.table) == {
        "src/a.js",
        "src/a-hard.js",
        "src/b.ts",
        "src/rel",
        "src/sub",
        "src/sub/c.js",
    }


def test_whole_context_minus_dockerignore(ctx: Context, rootfs: Path) -> None:
    copy(["."], ".", rootfs, ctx, workdir="/usr/src/app")
    app = rootfs / "usr" / "src" / "app"
    names = sorted(p.name for p in app.iterdir())
    assert names == [
        "Dockerfile",
        "index.js",
        "link.js",
        "package.json",
        "run.sh",
        "src",
    ]
    assert (app / "link.js").is_symlink()


def test_named_symlink_is_followed(ctx: Context, rootfs: Path) -> None:
    copy(["link.js"], "/app/", rootfs, ctx)
    target = rootfs / "app" / "link.js"
    assert not target.is_symlink()
    assert read(target) == "console.log('hi')\n"


def test_globs(ctx: Context, rootfs: Path) -> None:
    plan, _ = copy(["*.js"], "/g/", rootfs, ctx)
    assert sorted(p.name for p in (rootfs / "g").iterdir()) == ["index.js", "link.js"]
    assert plan.description.startswith("multi:")
    one, _ = copy(["src/*.ts"], "/one.ts", rootfs, ctx)
    assert read(rootfs / "one.ts") == "b\n"
    assert one.description.startswith("file:")
    copy(["s?c/s*"], "/h/", rootfs, ctx)  # a matching directory copies its contents
    assert (rootfs / "h" / "c.js").is_file()
    with pytest.raises(BuildError) as info:
        copy(["*.js"], "/g", rootfs, ctx)
    assert str(info.value) == (
        "When using COPY with more than one source file, "
        "the destination must be a directory and end with a /"
    )
    with pytest.raises(BuildError, match="^COPY failed: no source files were specified$"):
        copy(["*.nothing"], "/x/", rootfs, ctx)
    with pytest.raises(BuildError, match="invalid pattern"):
        copy(["[a-"], "/x/", rootfs, ctx)


def test_several_sources_need_a_slash(ctx: Context, rootfs: Path) -> None:
    with pytest.raises(BuildError, match="must be a directory and end with a /$"):
        copy(["index.js", "package.json"], ".", rootfs, ctx, workdir="/srv")
    plan, _ = copy(["index.js", "package.json"], "./", rootfs, ctx, workdir="/srv")
    assert plan.dest == "/srv/"
    assert (rootfs / "srv" / "package.json").is_file()


@pytest.mark.parametrize("source", ["../x", "a/../../x", "/../etc/passwd", ".."])
def test_outside_the_context_is_forbidden(ctx: Context, rootfs: Path, source: str) -> None:
    with pytest.raises(BuildError) as info:
        copy([source], "/x/", rootfs, ctx)
    trimmed = source[1:] if source.startswith("/") else source
    assert str(info.value) == f"COPY failed: forbidden path outside the build context: {trimmed}"


@pytest.mark.parametrize("source", ["missing.txt", "secret.txt", "node_modules/dep.js", "/nope"])
def test_missing_or_excluded(ctx: Context, rootfs: Path, source: str) -> None:
    with pytest.raises(BuildError) as info:
        copy([source], "/x/", rootfs, ctx)
    assert str(info.value) == (
        "COPY failed: file not found in build context or excluded by .dockerignore: "
        f"stat {source.lstrip('/')}: file does not exist"
    )


def test_symlink_out_of_the_context_stays_in_it(tmp_path: Path, rootfs: Path) -> None:
    root = tmp_path / "ctx2"
    root.mkdir()
    (tmp_path / "outside.txt").write_text("host secret")
    (root / "escape").symlink_to("../outside.txt")
    (root / "abs").symlink_to("/etc/hostname")
    context = scan_context(root)
    for name in ("escape", "abs"):
        with pytest.raises(BuildError, match="file not found in build context"):
            copy([name], "/x/", rootfs, context)


def test_heredoc_sources(ctx: Context, rootfs: Path) -> None:
    plan, _ = copy([("EOF", b"hello\n")], "/etc/motd", rootfs, ctx)
    assert read(rootfs / "etc" / "motd") == "hello\n"
    assert stat.S_IMODE((rootfs / "etc" / "motd").stat().st_mode) == 0o644
    assert plan.sources.table == {"EOF": plan.sources.table["EOF"]}
    copy([("a.txt", b"a"), ("b.txt", b"b")], "/notes/", rootfs, ctx)
    assert read(rootfs / "notes" / "b.txt") == "b"


def test_chmod_applies_to_files_and_directories(ctx: Context, rootfs: Path) -> None:
    copy(["src"], "/m", rootfs, ctx, chmod=0o750)
    for path in (rootfs / "m", rootfs / "m" / "a.js", rootfs / "m" / "sub"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert parse_chmod("0755") == 0o755
    for bad in ("", "9", "u+x", "17777"):
        with pytest.raises(BuildError, match="invalid chmod"):
            parse_chmod(bad)


@pytest.mark.root
def test_owner_is_root_unless_chown(ctx: Context, rootfs: Path) -> None:
    os.chown(ctx.root / "index.js", 1234, 1234)
    refreshed = scan_context(ctx.root, ctx.rules)
    copy(["index.js"], "/plain/", rootfs, refreshed)
    assert (rootfs / "plain" / "index.js").stat().st_uid == 0
    owner = resolve_chown(rootfs, "app:staff")
    assert owner == Owner(1000, 50)
    copy(["index.js"], "/new/parent/", rootfs, refreshed, owner=owner)
    for path in (rootfs / "new", rootfs / "new" / "parent", rootfs / "new" / "parent" / "index.js"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (1000, 50)
    copy(["src"], "/tree/dest", rootfs, refreshed, owner=Owner(7, 8))
    assert (rootfs / "tree").stat().st_uid == 0  # Docker: only the destination itself
    for path in (rootfs / "tree" / "dest", rootfs / "tree" / "dest" / "sub" / "c.js"):
        assert (path.stat().st_uid, path.stat().st_gid) == (7, 8)
    assert os.lstat(rootfs / "tree" / "dest" / "rel").st_uid == 7


def test_resolve_chown_like_docker(rootfs: Path) -> None:
    assert resolve_chown(rootfs, "1000") == Owner(1000, 1000)
    assert resolve_chown(rootfs, "12:34") == Owner(12, 34)
    assert resolve_chown(None, "5:6") == Owner(5, 6)
    assert resolve_chown(rootfs, "app:1001") == Owner(1000, 1001)
    # A lone user name doubles as the group name (Docker's legacy builder), not its primary.
    assert resolve_chown(rootfs, "app") == Owner(1000, 1001)
    with (rootfs / "etc" / "passwd").open("a") as f:
        f.write("solo:x:2000:2000::/:\n")
    with pytest.raises(BuildError) as info:
        resolve_chown(rootfs, "solo")
    assert str(info.value) == (
        "unable to convert uid/gid chown string to host mapping: "
        "can't find gid for group solo: no such group: solo"
    )
    with pytest.raises(BuildError, match="can't find uid for user nobody: no such user: nobody"):
        resolve_chown(rootfs, "nobody:0")
    with pytest.raises(BuildError, match="invalid chown string format"):
        resolve_chown(rootfs, "a:b:c")


def test_hostile_destination_symlinks_stay_inside(ctx: Context, tmp_path: Path) -> None:
    root = tmp_path / "hostile"
    (root / "etc").mkdir(parents=True)
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "index.js").write_text("untouched")
    (root / "abs").symlink_to("/etc")
    (root / "up").symlink_to("../../../../../../..")
    (root / "canary-link").symlink_to(os.fspath(canary))
    (root / "etc" / "file-link").symlink_to("../../canary/index.js")
    before = sorted(os.listdir(tmp_path))
    copy(["index.js"], "/abs/", root, ctx)
    assert (root / "etc" / "index.js").is_file()
    copy(["package.json"], "/up/", root, ctx)
    assert (root / "package.json").is_file()
    copy(["index.js"], "/canary-link/", root, ctx)
    assert (root / os.fspath(canary).lstrip("/") / "index.js").is_file()
    copy(["index.js"], "/etc/file-link", root, ctx)
    copy(["src"], "/up/up/abs", root, ctx)
    assert (root / "etc" / "sub" / "c.js").is_file()
    assert read(canary / "index.js") == "untouched"
    assert sorted(os.listdir(canary)) == ["index.js"]
    assert sorted(os.listdir(tmp_path)) == before


def test_hostile_directory_member_positions(tmp_path: Path, ctx: Context) -> None:
    root = tmp_path / "hostile2"
    (root / "app").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "app" / "sub").symlink_to(os.fspath(outside))  # where src/sub will go
    copy(["src"], "/app/", root, ctx)
    assert os.listdir(outside) == []
    # Its target does not exist inside the rootfs: the link is replaced by a directory.
    assert not (root / "app" / "sub").is_symlink()
    assert (root / "app" / "sub" / "c.js").is_file()
    # A link to a directory inside the rootfs is followed (merged-/usr: /lib -> usr/lib).
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("/usr/lib")
    tree = tmp_path / "tree"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / "x.so").write_text("so")
    copy(["/"], "/", root, tree)
    assert (root / "lib").is_symlink()
    assert read(root / "usr" / "lib" / "x.so") == "so"


def test_copy_from_a_stage_root(tmp_path: Path, rootfs: Path) -> None:
    stage = tmp_path / "stage"
    (stage / "usr" / "bin").mkdir(parents=True)
    (stage / "usr" / "bin" / "tool").write_text("tool")
    (stage / "bin").symlink_to("usr/bin")
    (stage / "etc").mkdir()
    (stage / "etc" / "alias").symlink_to("/usr/bin/tool")
    copy(["/bin/tool"], "/opt/", rootfs, stage)
    assert read(rootfs / "opt" / "tool") == "tool"
    copy(["../../etc/alias"], "/opt/alias", rootfs, stage)  # ".." stops at the stage's root
    assert read(rootfs / "opt" / "alias") == "tool"
    plan, _ = copy(["/usr/*/t*"], "/g/", rootfs, stage)
    assert list(plan.sources.table) == ["usr/bin/tool"]
    copy(["/"], "/whole/", rootfs, stage)
    assert (rootfs / "whole" / "bin").is_symlink()
    with pytest.raises(BuildError, match="^COPY failed: stat nope: file does not exist$"):
        copy(["/nope"], "/x/", rootfs, stage)


def make_tar(members: dict[str, str | None], compress: str = "") -> bytes:
    """A tar of files (text), directories (None, name ending in "/") and symlinks ("-> t")."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = MTIME
            info.uid, info.gid = 42, 43
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
            elif content.startswith("-> "):
                info.type, info.linkname = tarfile.SYMTYPE, content[3:]
                tar.addfile(info)
            elif content.startswith("=> "):
                info.type, info.linkname = tarfile.LNKTYPE, content[3:]
                tar.addfile(info)
            else:
                data = content.encode()
                info.size, info.mode = len(data), 0o640
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if compress == "gz":
        return gzip.compress(raw)
    if compress == "bz2":
        return bz2.compress(raw)
    if compress == "xz":
        return lzma.compress(raw)
    return raw


@pytest.mark.parametrize("compress", ["", "gz", "bz2", "xz"])
def test_add_extracts_local_archives(tmp_path: Path, rootfs: Path, compress: str) -> None:
    root = tmp_path / "actx"
    root.mkdir()
    archive = make_tar({"pkg/": None, "pkg/a.txt": "A", "pkg/l": "-> a.txt"}, compress)
    (root / "bundle.data").write_bytes(archive)  # detected by content, not by name
    plan, _ = copy(["bundle.data"], "/opt", rootfs, scan_context(root), command="ADD")
    pkg = rootfs / "opt" / "pkg"
    assert read(pkg / "a.txt") == "A"
    assert os.readlink(pkg / "l") == "a.txt"
    assert stat.S_IMODE(pkg.stat().st_mode) == 0o750
    assert stat.S_IMODE((pkg / "a.txt").stat().st_mode) == 0o640
    assert (pkg / "a.txt").stat().st_mtime == MTIME
    if os.geteuid() == 0:
        assert (pkg / "a.txt").stat().st_uid == 42
    assert plan.description.startswith("file:")
    # COPY never extracts.
    copy(["bundle.data"], "/copied/", rootfs, scan_context(root))
    assert (rootfs / "copied" / "bundle.data").read_bytes() == archive


def test_add_of_a_non_archive_copies_it(tmp_path: Path, rootfs: Path) -> None:
    root = tmp_path / "actx"
    root.mkdir()
    (root / "fake.tar.gz").write_bytes(b"\x1f\x8bnot really gzip")
    (root / "empty.tar").write_bytes(b"")
    copy(["fake.tar.gz", "empty.tar"], "/d/", rootfs, scan_context(root), command="ADD")
    assert (rootfs / "d" / "fake.tar.gz").read_bytes() == b"\x1f\x8bnot really gzip"
    assert (rootfs / "d" / "empty.tar").read_bytes() == b""


def test_add_hostile_archives_stay_inside(tmp_path: Path, rootfs: Path) -> None:
    root = tmp_path / "actx"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "climb.tar").write_bytes(make_tar({"../../evil": "x"}))
    (root / "via-link.tar").write_bytes(
        make_tar(
            {
                "esc": "-> " + os.fspath(outside),
                "esc/evil": "x",
                "up": "-> ../../../..",
                "up/top": "t",
            }
        )
    )
    (root / "hard.tar").write_bytes(make_tar({"h": "=> ../../../../etc/passwd"}))
    (root / "wh.tar").write_bytes(make_tar({".wh.passwd": "", "ok": "ok"}))
    context = scan_context(root)
    with pytest.raises(BuildError, match=r"ADD failed: climb\.tar: member '\.\./\.\./evil'"):
        copy(["climb.tar"], "/x/", rootfs, context, command="ADD")
    copy(["via-link.tar"], "/y/", rootfs, context, command="ADD")
    assert os.listdir(outside) == []
    assert (rootfs / os.fspath(outside).lstrip("/") / "evil").is_file()
    assert (rootfs / "top").is_file()
    with pytest.raises(BuildError, match="hard.tar: hardlink target"):
        copy(["hard.tar"], "/z/", rootfs, context, command="ADD")
    copy(["wh.tar"], "/etc/", rootfs, context, command="ADD")
    assert (rootfs / "etc" / "passwd").is_file()
    assert (rootfs / "etc" / "ok").is_file()


class _Handler(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", formatdate(MTIME, usegmt=True))
        if self.path.endswith("/"):
            self.send_header("Content-Disposition", 'attachment; filename="named.bin"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_add_url(ctx: Context, rootfs: Path, server: str, tmp_path: Path) -> None:
    tar = make_tar({"inside.txt": "i"})
    _Handler.bodies = {"/files/tool.tar": tar, "/dir/": b"disposition", "/raw": b"raw"}
    plan, _ = copy(
        [f"{server}/files/tool.tar"], "/dl/", rootfs, ctx, command="ADD", tempdir=tmp_path
    )
    target = rootfs / "dl" / "tool.tar"
    assert target.read_bytes() == tar  # downloads are never extracted
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_mtime == MTIME
    assert list(plan.sources.table) == [f"{server}/files/tool.tar"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("add-")] == []
    copy([f"{server}/dir/"], "/dl/", rootfs, ctx, command="ADD")
    assert (rootfs / "dl" / "named.bin").read_bytes() == b"disposition"
    copy([f"{server}/raw"], "/dl/renamed", rootfs, ctx, command="ADD")
    assert (rootfs / "dl" / "renamed").read_bytes() == b"raw"
    # The sum covers the bytes: new content, new key.
    first = plan_copy([f"{server}/raw"], "/x", root=ctx, command="ADD")
    first.close()
    _Handler.bodies["/raw"] = b"changed"
    with plan_copy([f"{server}/raw"], "/x", root=ctx, command="ADD") as second:
        assert second.sources.digest != first.sources.digest
    with pytest.raises(BuildError) as info:
        copy([f"{server}/missing"], "/dl/", rootfs, ctx, command="ADD")
    assert (
        str(info.value) == f"ADD failed: failed to GET {server}/missing with status 404 Not Found"
    )
    with pytest.raises(BuildError, match="source can't be a URL for COPY"):
        copy([f"{server}/raw"], "/dl/", rootfs, ctx)


def test_add_unreachable_url(ctx: Context, rootfs: Path) -> None:
    url = "http://127.0.0.1:1/file.txt"
    with pytest.raises(BuildError) as info:
        copy([url], "/dl/", rootfs, ctx, command="ADD", timeout=5)
    message = str(info.value)
    assert message.startswith(f"ADD failed: cannot download {url}: ")
    assert "refused" in message
    assert "\n" not in message


def test_normalize_dest() -> None:
    assert normalize_dest("/app", ".") == "/app/"  # "." is a directory: COPY f . -> /app/f
    assert normalize_dest("/app", "lib/.") == "/app/lib/"
    assert normalize_dest("/app", "./") == "/app/"
    assert normalize_dest("/app", "lib/") == "/app/lib/"
    assert normalize_dest("/", "x") == "/x"
    assert normalize_dest("/app", "/abs") == "/abs"


def test_reincluded_files_and_special_entries(tmp_path: Path, rootfs: Path) -> None:
    root = tmp_path / "ctx3"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "README.md").write_text("readme")
    (root / "docs" / "deep" / "x.md").write_text("x")
    (root / "docs" / "notes.txt").write_text("n")
    os.mkfifo(root / "docs" / "pipe")
    os.chmod(root / "docs", 0o700)
    context = scan_context(root, IgnoreRules.parse("docs\n!docs/README.md\n!docs/pipe\n"))
    plan, _ = copy(["docs"], "/d/", rootfs, context)
    assert sorted(os.listdir(rootfs / "d")) == ["README.md", "pipe"]
    assert stat.S_ISFIFO(os.lstat(rootfs / "d" / "pipe").st_mode)
    assert plan.sources.table["docs/pipe"].startswith("p ")
    # The excluded directory itself is recreated plain, as the daemon's untar does.
    copy(["."], "/all/", rootfs, context)
    assert stat.S_IMODE((rootfs / "all" / "docs").stat().st_mode) == 0o755
    assert sorted(os.listdir(rootfs / "all" / "docs")) == ["README.md", "pipe"]


def test_plan_then_apply_elsewhere(ctx: Context, tmp_path: Path) -> None:
    with plan_copy(["src", "index.js"], "/app/", root=ctx) as plan:
        assert plan.dest == "/app/"
        assert [item.key for item in plan.items] == ["src", "index.js"]
        for name in ("one", "two"):
            target = tmp_path / name
            target.mkdir()
            stats = apply_copy(plan, target)
            assert stats.files == 6
            assert read(target / "app" / "sub" / "c.js") == "c\n"
