"""``strata volume create/ls/inspect/rm/prune``: Docker 20.10's output and errors, and nothing
half-made by a refused create."""

from __future__ import annotations

import json

from tests.conftest import Strata, store_state


def test_create_inspect_ls(strata: Strata) -> None:
    assert strata("volume", "create", "--label", "a=b", "data").stdout == "data\n"
    anonymous = strata("volume", "create").stdout.strip()
    assert len(anonymous) == 64 and all(c in "0123456789abcdef" for c in anonymous)
    [doc] = json.loads(strata("volume", "inspect", "data").stdout)
    assert list(doc) == [
        "CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope",
    ]  # fmt: skip
    assert doc["Labels"] == {"a": "b"} and doc["Options"] is None
    assert doc["Mountpoint"] == str(strata.root / "volumes" / "data" / "_data")
    assert (strata.root / "volumes" / "data" / "_data").is_dir()
    assert doc["Driver"] == "local" and doc["Scope"] == "local"
    lines = strata("volume", "ls").stdout.splitlines()
    assert lines == ["DRIVER    VOLUME NAME", f"local     {anonymous}", "local     data"]
    assert strata("volume", "ls", "-q", "--filter", "label=a").stdout == "data\n"
    assert strata("volume", "ls", "-q", "--filter", "name=at").stdout == "data\n"
    assert strata("volume", "ls", "-q", "--filter", "dangling=true").stdout.split() == sorted(
        [anonymous, "data"]
    )
    fmt = "{{.Name}} {{.Driver}} {{.Labels}}"
    assert strata("volume", "ls", "-f", "label=a=b", "--format", fmt).stdout == "data local a=b\n"
    # Creating it again gives the same volume, as Docker.
    assert strata("volume", "create", "data").stdout == "data\n"


def test_refusals_are_one_line_and_leave_nothing(strata: Strata) -> None:
    strata("volume", "ls")
    before = store_state(strata.root)
    cases = {
        ("--driver", "foo", "xx"): 'create xx: error looking up volume plugin foo: plugin "foo"',
        ("-o", "foo=bar", "vb"): 'create vb: invalid option: "foo"',
        ("-o", "type=tmpfs", "vt"): 'create vt: option "type" is not supported',
        ("bad/name",): '"bad/name" includes invalid characters for a local volume name',
        ("a",): "create a: volume name is too short",
    }
    for args, message in cases.items():
        assert message in strata.fail("volume", "create", *args)
    assert store_state(strata.root) == before
    assert strata.fail("volume", "inspect", "nope") == "Error: get nope: no such volume"
    assert strata.fail("volume", "rm", "nope") == "Error: get nope: no such volume"
    assert strata("volume", "rm", "-f", "nope").stdout == "nope\n"
    assert strata.fail("volume", "ls", "--filter", "foo=bar") == "Error: Invalid filter 'foo'"


def test_rm_and_prune(strata: Strata) -> None:
    for name in ("v1", "v2", "v3"):
        strata("volume", "create", "--label", f"n={name}", name)
    (strata.root / "volumes" / "v2" / "_data" / "f").write_bytes(b"x" * 3000)
    assert strata("volume", "rm", "v1").stdout == "v1\n"
    assert not (strata.root / "volumes" / "v1").exists()
    out = strata("volume", "prune", "-f", "--filter", "label!=n=v3").stdout
    assert out == "Deleted Volumes:\nv2\n\nTotal reclaimed space: 3kB\n"
    assert strata("volume", "prune", "-f", "--filter", "label=n=v2").stdout == (
        "Total reclaimed space: 0B\n"
    )
    assert strata("volume", "prune", "-f").stdout == (
        "Deleted Volumes:\nv3\n\nTotal reclaimed space: 0B\n"
    )
    assert sorted(p.name for p in (strata.root / "volumes").iterdir()) == []
    refused = strata("volume", "prune", input=b"n\n")
    assert refused.stdout.startswith("WARNING! This will remove all local volumes not used by")
