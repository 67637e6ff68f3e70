"""Image configs: Docker's field names, omitempty output, kept extras, and RFC 3339 times."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from strata.digest import Digest
from strata.errors import FormatError, TooLarge
from strata.oci.config import (
    ContainerConfig,
    History,
    ImageConfig,
    RootFS,
    format_time,
    parse_config,
    parse_time,
)
from strata.oci.descriptor import Platform
from strata.oci.mediatypes import MAX_CONFIG_SIZE

D1 = Digest.of(b"1")
D2 = Digest.of(b"2")

FULL = ImageConfig(
    architecture="arm",
    os="linux",
    variant="v7",
    os_version="1.0",
    config=ContainerConfig(
        user="1000:1000",
        exposed_ports=("8080/tcp", "53/udp"),
        env=("PATH=/usr/bin", "MULTI=a\nb", "EMPTY="),
        entrypoint=("/bin/sh", "-c"),
        cmd=(),
        volumes=("/data",),
        working_dir="/srv",
        labels={"b": "2", "a": "1"},
        stop_signal="SIGTERM",
        args_escaped=False,
        healthcheck={"Test": ["CMD", "true"], "Interval": 30000000000},
        on_build=("RUN true",),
        shell=("/bin/bash", "-c"),
        extra={"Hostname": "abc", "Tty": False, "Image": ""},
    ),
    rootfs=RootFS("layers", (D1, D2)),
    history=(
        History(created="2023-11-14T22:13:20Z", created_by="ADD x /", comment="c", author="me"),
        History(created_by="ENV a=b", empty_layer=True),
    ),
    created="2023-11-14T22:13:20.123456789Z",
    author="someone",
    extra={"docker_version": "24.0", "container_config": {"Cmd": None}, "os.features": ["x"]},
)


def parsed(value: dict[str, Any]) -> ImageConfig:
    return parse_config(json.dumps(value).encode(), source="config sha256:ab12")


def minimal(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [str(D1)]},
    }
    out.update(kw)
    return {k: v for k, v in out.items() if v is not ...}


def test_round_trip() -> None:
    assert parse_config(FULL.to_json(), source="x") == FULL
    empty = ImageConfig("amd64", "linux")
    assert parse_config(empty.to_json(), source="x") == empty


def test_json_names_and_order() -> None:
    out = json.loads(FULL.to_json())
    assert list(out) == [
        "architecture",
        "variant",
        "os",
        "os.version",
        "config",
        "created",
        "author",
        "rootfs",
        "history",
        "container_config",
        "docker_version",
        "os.features",
    ]
    assert list(out["config"]) == [
        "User",
        "ExposedPorts",
        "Env",
        "Entrypoint",
        "Cmd",
        "Volumes",
        "WorkingDir",
        "Labels",
        "OnBuild",
        "StopSignal",
        "Healthcheck",
        "Shell",
        "ArgsEscaped",
        "Hostname",
        "Image",
        "Tty",
    ]
    assert out["config"]["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert out["config"]["Volumes"] == {"/data": {}}
    assert out["rootfs"] == {"type": "layers", "diff_ids": [str(D1), str(D2)]}
    assert out["history"][1] == {"created_by": "ENV a=b", "empty_layer": True}
    assert list(out["history"][0]) == ["created", "created_by", "author", "comment"]


def test_empty_fields_are_omitted() -> None:
    config = ImageConfig("amd64", "linux", rootfs=RootFS("layers", (D1,)))
    assert config.to_json() == (
        b'{"architecture":"amd64","os":"linux","config":{},'
        b'"rootfs":{"type":"layers","diff_ids":["' + str(D1).encode() + b'"]}}'
    )


def test_docker_nulls_read_as_empty() -> None:
    config = parsed(
        minimal(
            config={
                "Env": None,
                "Cmd": None,
                "Entrypoint": None,
                "Volumes": None,
                "Labels": None,
                "OnBuild": None,
                "ExposedPorts": None,
                "User": "",
                "Shell": None,
            },
            history=None,
            created=None,
        )
    )
    assert config.config == ContainerConfig()
    assert config.history == () and config.created is None


def test_sets_are_sorted_and_unique() -> None:
    cc = ContainerConfig(exposed_ports=("80/tcp", "443/tcp", "80/tcp"), volumes=("/b", "/a"))
    assert cc.exposed_ports == ("443/tcp", "80/tcp")
    assert cc.volumes == ("/a", "/b")


def test_empty_strings_are_none() -> None:
    assert History(created="", created_by="", author="", comment="") == History()
    assert ImageConfig("amd64", "linux", created="", author="").created is None


def test_replace_edits() -> None:
    edited = dataclasses.replace(FULL, config=dataclasses.replace(FULL.config, cmd=("x",)))
    assert parse_config(edited.to_json(), source="x").config.cmd == ("x",)
    assert FULL.config.cmd == ()


def test_extras_cannot_shadow_known_fields() -> None:
    config = ImageConfig(
        "amd64",
        "linux",
        config=ContainerConfig(env=("A=1",), extra={"Env": ["B=2"]}),
        extra={"os": "windows"},
    )
    out = json.loads(config.to_json())
    assert out["os"] == "linux" and out["config"]["Env"] == ["A=1"]


def test_platform_and_created_time() -> None:
    assert FULL.platform == Platform("arm", "linux", "v7", "1.0")
    assert FULL.created_time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (minimal(architecture=...), "architecture: missing"),
        (minimal(os=None), "os: missing"),
        (minimal(rootfs=...), "rootfs: missing"),
        (minimal(rootfs=[]), "rootfs: must be an object, not array"),
        (minimal(rootfs={"type": "layers"}), "rootfs.diff_ids: missing"),
        (minimal(rootfs={"diff_ids": []}), "rootfs.type: missing"),
        (minimal(rootfs={"type": "x", "diff_ids": []}), "rootfs.type: must be 'layers', not 'x'"),
        (minimal(rootfs={"type": "layers", "diff_ids": "x"}), "rootfs.diff_ids: must be an array"),
        (
            minimal(rootfs={"type": "layers", "diff_ids": [1]}),
            "rootfs.diff_ids[0]: must be a string",
        ),
        (
            minimal(rootfs={"type": "layers", "diff_ids": ["sha256:x"]}),
            "rootfs.diff_ids[0]: invalid digest",
        ),
        (minimal(config=[]), "config: must be an object, not array"),
        (minimal(config={"Env": ["A=1", "B"]}), "config.Env[1]: 'B' is not NAME=VALUE"),
        (minimal(config={"Env": ["=x"]}), "config.Env[0]: '=x' is not NAME=VALUE"),
        (minimal(config={"Cmd": "sh"}), "config.Cmd: must be an array of strings, not string"),
        (minimal(config={"Entrypoint": [1]}), "config.Entrypoint[0]: must be a string, not number"),
        (
            minimal(config={"ExposedPorts": {"80": 1}}),
            "config.ExposedPorts['80']: must be an object",
        ),
        (minimal(config={"Volumes": ["/x"]}), "config.Volumes: must be an object, not array"),
        (minimal(config={"Labels": {"a": None}}), "config.Labels['a']: must be a string, not null"),
        (
            minimal(config={"ArgsEscaped": "yes"}),
            "config.ArgsEscaped: must be a boolean, not string",
        ),
        (minimal(config={"Healthcheck": "x"}), "config.Healthcheck: must be an object, not string"),
        (minimal(config={"WorkingDir": 1}), "config.WorkingDir: must be a string, not number"),
        (minimal(history={}), "history: must be an array, not object"),
        (minimal(history=["x"]), "history[0]: must be an object, not string"),
        (minimal(history=[{"empty_layer": "true"}]), "history[0].empty_layer: must be a boolean"),
        (minimal(history=[{"created_by": 1}]), "history[0].created_by: must be a string"),
        (minimal(created=0), "created: must be a string, not number"),
        (minimal(**{"os.features": "x"}), "os.features: must be an array of strings"),
    ],
)
def test_refused(value: dict[str, Any], reason: str) -> None:
    with pytest.raises(FormatError) as caught:
        parsed(value)
    assert str(caught.value).startswith(f"config sha256:ab12: {reason}")


def test_odd_times_are_kept_not_refused() -> None:
    config = parsed(minimal(created="yesterday", history=[{"created": "0001-01-01T00:00:00Z"}]))
    assert config.created == "yesterday" and config.created_time is None
    assert config.history[0].created == "0001-01-01T00:00:00Z"


def test_too_large() -> None:
    data = json.dumps(minimal(pad="x" * MAX_CONFIG_SIZE)).encode()
    with pytest.raises(TooLarge, match=f"^c: .* over the {MAX_CONFIG_SIZE}-byte limit"):
        parse_config(data, source="c")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:20Z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T22:13:20.123456789Z", datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)),
        ("2023-11-14T22:13:20.5Z", datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        ("2023-11-14T23:13:20+01:00", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("2023-11-14T20:43:20-01:30", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1970-01-01T01:00:01+01:00", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("2023-11-14t22:13:20z", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        ("2023-11-14", None),
        ("2023-13-14T22:13:20Z", None),
        ("2023-11-14T22:13:60Z", None),
        ("2023-11-14T22:13:20", None),
        ("2023-11-14T22:13:20+24:00", None),
        ("0001-01-01T00:00:00+01:00", None),
        ("not a time", None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    got = parse_time(text)
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), "2023-11-14T22:13:20Z"),
        (datetime(2023, 11, 14, 22, 13, 20, 120000, tzinfo=UTC), "2023-11-14T22:13:20.12Z"),
        (datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC), "2023-11-14T22:13:20.000001Z"),
        (
            datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1))),
            "2023-11-14T22:13:20Z",
        ),
        (datetime(2023, 11, 14, 22, 13, 20), "2023-11-14T22:13:20Z"),
        (datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC), "0005-01-02T03:04:05Z"),
    ],
)
def test_format_time(when: datetime, text: str) -> None:
    assert format_time(when) == text
    assert parse_time(text) == when.replace(tzinfo=when.tzinfo or UTC)
