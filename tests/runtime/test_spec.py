"""config.json generation: Docker's defaults, users, env, mounts, bad input; etc files; volumes."""

from __future__ import annotations

import json
import resource
from dataclasses import replace
from pathlib import Path

import pytest

from strata.errors import InvalidArgument
from strata.runtime.spec import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    MASKED_PATHS,
    READONLY_PATHS,
    BindMount,
    EtcFiles,
    Network,
    ProcessSpec,
    RunSpec,
    default_hostname,
    generate_config,
    nofile_limit,
    parse_volume,
    write_bundle,
    write_etc_files,
)

PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nalice:x:1001:\nstaff:x:50:alice,bob\naudio:x:29:alice\n"


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def spec_for(root: Path, *args: str, **process: object) -> RunSpec:
    proc = replace(ProcessSpec(args=args or ("true",)), **process)  # type: ignore[arg-type]
    return RunSpec(rootfs=root, process=proc, hostname="box")


def env_of(config: dict[str, object]) -> dict[str, str]:
    entries = config["process"]["env"]  # type: ignore[index]
    return dict(e.split("=", 1) for e in entries)


def test_docker_defaults(tiny: Path) -> None:
    config = generate_config(spec_for(tiny, "echo", "hi"), container_id="c1")
    assert config["ociVersion"] == "1.0.2"
    assert config["root"] == {"path": str(tiny.resolve()), "readonly": False}
    process = config["process"]
    assert process["args"] == ["echo", "hi"]
    assert process["cwd"] == "/"
    assert process["terminal"] is False
    assert "consoleSize" not in process
    assert process["noNewPrivileges"] is False
    caps = process["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}  # never ambient or inheritable
    for kind in caps.values():
        assert kind == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    (nofile,) = process["rlimits"]
    assert nofile["type"] == "RLIMIT_NOFILE"
    _, host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert nofile["soft"] <= nofile["hard"]
    assert host_hard == resource.RLIM_INFINITY or nofile["hard"] <= host_hard
    assert (nofile["soft"], nofile["hard"]) == nofile_limit()
    assert config["hostname"] == "box"
    linux = config["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert "/proc/kcore" in MASKED_PATHS and "/sys/firmware" in MASKED_PATHS
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["cgroupsPath"] == "strata/c1"
    assert "seccomp" not in linux
    destinations = [m["destination"] for m in config["mounts"]]
    expected = ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    assert destinations == expected
    sys_mount = config["mounts"][3]
    assert sys_mount["type"] == "sysfs" and "ro" in sys_mount["options"]
    assert "ro" in config["mounts"][4]["options"]
    json.dumps(config)  # plain JSON all the way down


def test_network_none_adds_a_namespace(tiny: Path) -> None:
    spec = replace(spec_for(tiny), network=Network.NONE)
    namespaces = [
        ns["type"] for ns in generate_config(spec, container_id="c")["linux"]["namespaces"]
    ]
    assert "network" in namespaces
    host = [
        ns["type"]
        for ns in generate_config(spec_for(tiny), container_id="c")["linux"]["namespaces"]
    ]
    assert "network" not in host


def test_env_defaults_and_overrides(tiny: Path) -> None:
    env = env_of(generate_config(spec_for(tiny, env=("A=1", "B=2", "A=3")), container_id="c"))
    assert env["PATH"] == DEFAULT_PATH
    assert env["HOSTNAME"] == "box"
    assert env["HOME"] == "/root"
    assert env["A"] == "3" and env["B"] == "2"
    assert "TERM" not in env
    own = env_of(
        generate_config(spec_for(tiny, env=("PATH=/opt/bin", "HOME=/x")), container_id="c")
    )
    assert own["PATH"] == "/opt/bin" and own["HOME"] == "/x"
    tty = env_of(generate_config(spec_for(tiny, terminal=True), container_id="c"))
    assert tty["TERM"] == "xterm"


def test_terminal_console_size(tiny: Path) -> None:
    spec = spec_for(tiny, terminal=True, console_size=(33, 101))
    process = generate_config(spec, container_id="c")["process"]
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 33, "width": 101}


@pytest.mark.parametrize(
    ("user", "uid", "gid", "groups", "home"),
    [
        ("", 0, 0, [0], "/root"),
        ("alice", 1001, 1001, [1001, 50, 29], "/home/alice"),
        ("1001", 1001, 1001, [1001, 50, 29], "/home/alice"),
        ("alice:staff", 1001, 50, [50], "/home/alice"),
        ("4242", 4242, 0, [0], "/"),
        ("4242:4343", 4242, 4343, [4343], "/"),
    ],
)
def test_users(tiny: Path, user: str, uid: int, gid: int, groups: list[int], home: str) -> None:
    config = generate_config(spec_for(tiny, user=user), container_id="c")
    assert config["process"]["user"] == {"uid": uid, "gid": gid, "additionalGids": groups}
    assert env_of(config)["HOME"] == home


def test_unknown_user_is_dockers_error(tiny: Path) -> None:
    with pytest.raises(InvalidArgument) as err:
        generate_config(spec_for(tiny, user="nope"), container_id="c")
    assert str(err.value) == "unable to find user nope: no matching entries in passwd file"


def test_etc_and_user_binds(tiny: Path, tmp_path: Path) -> None:
    etc = write_etc_files(tmp_path / "etc", hostname="box", network=Network.HOST)
    data = tmp_path / "data"
    data.mkdir()
    spec = replace(
        spec_for(tiny),
        etc=etc,
        mounts=(BindMount(data, "/a/b/c", readonly=True), BindMount(data, "/a")),
    )
    mounts = generate_config(spec, container_id="c")["mounts"]
    binds = {m["destination"]: m for m in mounts if m["type"] == "bind"}
    for name in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        assert binds[name]["options"][:1] == ["rbind"]
        assert "ro" not in binds[name]["options"]
    assert binds["/etc/hostname"]["source"] == str(etc.hostname)
    assert "ro" in binds["/a/b/c"]["options"] and "ro" not in binds["/a"]["options"]
    order = [m["destination"] for m in mounts]
    assert order.index("/a") < order.index("/a/b/c")  # parents first


def test_init_is_bound_and_runs_first(tiny: Path, tmp_path: Path) -> None:
    init = tmp_path / "tini"
    init.write_bytes(b"\x7fELF")
    config = generate_config(replace(spec_for(tiny, "sleep", "1"), init=init), container_id="c")
    assert config["process"]["args"] == ["/dev/init", "--", "sleep", "1"]
    assert any(m["destination"] == "/dev/init" for m in config["mounts"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"args": ()}, "no command specified"),
        ({"cwd": "rel"}, "needs to be an absolute path"),
        ({"env": ("NOVALUE",)}, "invalid environment variable"),
        ({"user": "a:b:c"}, "invalid user"),
        (
            {"user": "alice:nogroup"},
            "unable to find group nogroup: no matching entries in group file",
        ),
        ({"user": "99999999999"}, "out of range"),
    ],
)
def test_bad_process(tiny: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        generate_config(spec_for(tiny, **change), container_id="c")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_spec(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not a directory"):
        generate_config(replace(spec_for(tiny), rootfs=tmp_path / "missing"), container_id="c")
    with pytest.raises(InvalidArgument, match="invalid hostname"):
        generate_config(replace(spec_for(tiny), hostname="x" * 65), container_id="c")
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        bind = BindMount(tmp_path / "missing", "/x")
        generate_config(replace(spec_for(tiny), mounts=(bind,)), container_id="c")
    with pytest.raises(InvalidArgument, match="invalid mount destination"):
        generate_config(
            replace(spec_for(tiny), mounts=(BindMount(tmp_path, "/"),)), container_id="c"
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/h:/c", BindMount(Path("/h"), "/c")),
        ("/h:/c:ro", BindMount(Path("/h"), "/c", readonly=True)),
        ("/h:/c:rw", BindMount(Path("/h"), "/c")),
    ],
)
def test_parse_volume(text: str, expected: BindMount) -> None:
    assert parse_volume(text) == expected


@pytest.mark.parametrize("text", ["/h", "h:/c", "/h:/c:rx", ":/c", "/h:", "/a:/b:ro:x"])
def test_parse_volume_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid volume specification"):
        parse_volume(text)


def test_write_bundle(tiny: Path, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", spec_for(tiny, "ls"), container_id="c")
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json"]
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["ls"]


def test_etc_files(tmp_path: Path) -> None:
    none = write_etc_files(tmp_path / "n", hostname="abc", network=Network.NONE)
    assert isinstance(none, EtcFiles)
    assert none.hostname.read_text() == "abc\n"
    assert none.hosts.read_text().startswith("127.0.0.1\tlocalhost\n")
    assert none.resolv_conf.read_bytes() == Path("/etc/resolv.conf").read_bytes()
    host = write_etc_files(tmp_path / "h", hostname="abc", network=Network.HOST)
    assert host.hosts.read_bytes() == Path("/etc/hosts").read_bytes()
    assert oct(host.hosts.stat().st_mode & 0o777) == "0o644"


def test_default_hostname() -> None:
    import socket

    assert default_hostname("0123456789abcdef", Network.NONE) == "0123456789ab"
    assert default_hostname("0123456789abcdef", Network.HOST) == socket.gethostname()
