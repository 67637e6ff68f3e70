"""Descriptors and platforms."""

from __future__ import annotations

import platform as pyplatform
from typing import Any

import pytest

from strata.digest import Digest
from strata.errors import FormatError, InvalidArgument
from strata.oci.descriptor import Descriptor, Platform, is_uri, matches, platform_for_machine

A = Digest.of(b"a")


def base(**kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": "text/plain", "digest": str(A), "size": 1}
    out.update(kw)
    return out


def test_round_trip_every_field() -> None:
    d = Descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        A,
        2**63 - 1,
        urls=("https://example.com/a", "http://[::1]:5000/b?c=d#e"),
        annotations={"k": "v", "": "empty key is allowed"},
        platform=Platform("arm64", "linux", "v8", "10.0", ("sse4",), ("f",)),
        artifact_type="application/vnd.example+type",
        data=b"\x00\xff",
    )
    assert Descriptor.from_dict(d.to_dict(), "x") == d


def test_other_digest_algorithms_are_kept() -> None:
    d = Descriptor.from_dict(
        base(digest="sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"), "x"
    )
    assert str(d.digest) == "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564"
    assert not d.digest.storable


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("x", "descriptor d: must be an object, not string"),
        (base(mediaType=None), "descriptor d: mediaType: missing"),
        (base(mediaType="a/b c"), "descriptor d: mediaType: 'a/b c' is not a valid media type"),
        (base(size=-1), "descriptor d: size: must be a non-negative integer"),
        (base(size="1"), "descriptor d: size: must be an integer, not string"),
        (base(digest=5), "descriptor d: digest: must be a string, not number"),
        (base(urls="https://x"), "descriptor d: urls: must be an array of strings, not string"),
        (base(urls=[1]), "descriptor d: urls[0]: must be a string, not number"),
        (base(urls=["/relative"]), "descriptor d: urls[0]: '/relative' is not an absolute URI"),
        (base(data="YQ"), "descriptor d: data: must be standard base64 with padding"),
        (base(data="Y Q=="), "descriptor d: data: must be standard base64 with padding"),
        (base(data="YQ-_"), "descriptor d: data: must be standard base64 with padding"),
        (base(platform={"os": "linux"}), "descriptor d: platform.architecture: missing"),
        (base(platform=[]), "descriptor d: platform: must be an object, not array"),
        (
            base(platform={"os": "linux", "architecture": "amd64", "os.features": "x"}),
            "descriptor d: platform.os.features: must be an array of strings, not string",
        ),
        (base(artifactType=""), "descriptor d: artifactType: '' is not a valid media type"),
    ],
)
def test_refused(obj: object, message: str) -> None:
    with pytest.raises(FormatError) as caught:
        Descriptor.from_dict(obj, "descriptor d")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("https://example.com/foo", True),
        ("http://user:pw@host:8080/a/b?q=1&r=%20#frag", True),
        ("http://[fe80::1]/x", True),
        ("urn:isbn:0451450523", True),
        ("file:///etc/hosts", True),
        ("s3://bucket/key", True),
        ("value", False),
        ("/path/only", False),
        ("://no-scheme", False),
        ("1http://x", False),
        ("https://exa mple.com", False),
        ("https://x/%zz", False),
        ("https://x/a#b#c", False),
        ("https://x/<script>", False),
        ("", False),
    ],
)
def test_is_uri(text: str, ok: bool) -> None:
    assert is_uri(text) is ok


@pytest.mark.parametrize(
    ("machine", "arch", "variant"),
    [
        ("x86_64", "amd64", None),
        ("aarch64", "arm64", None),
        ("armv7l", "arm", "v7"),
        ("armv6l", "arm", "v6"),
        ("armv5tel", "arm", "v5"),
        ("i686", "386", None),
        ("ppc64le", "ppc64le", None),
        ("s390x", "s390x", None),
        ("riscv64", "riscv64", None),
        ("loongarch64", "loong64", None),
        ("sparc64", "sparc64", None),
    ],
)
def test_platform_for_machine(machine: str, arch: str, variant: str | None) -> None:
    assert platform_for_machine(machine) == Platform(arch, "linux", variant)


def test_current_platform() -> None:
    current = Platform.current()
    assert current == platform_for_machine(pyplatform.machine())
    assert current.os == "linux"


@pytest.mark.parametrize(
    ("have", "want", "ok"),
    [
        (Platform("amd64", "linux"), Platform("amd64", "linux"), True),
        (Platform("amd64", "linux"), Platform("arm64", "linux"), False),
        (Platform("amd64", "windows"), Platform("amd64", "linux"), False),
        (Platform("amd64", "Linux"), Platform("amd64", "linux"), True),
        (Platform("x86_64", "linux"), Platform("amd64", "linux"), True),
        (Platform("arm64", "linux", "v8"), Platform("arm64", "linux"), True),
        (Platform("aarch64", "linux"), Platform("arm64", "linux", "v8"), True),
        (Platform("arm", "linux", "v7"), Platform("arm", "linux"), True),
        (Platform("arm", "linux"), Platform("arm", "linux", "v7"), True),
        (Platform("arm", "linux", "v6"), Platform("arm", "linux", "v7"), False),
        (Platform("arm", "linux", "v6"), Platform("arm", "linux"), False),
        (Platform("armhf", "linux"), Platform("arm", "linux", "v7"), True),
        (Platform("amd64", "linux", "v3"), Platform("amd64", "linux"), True),
        (Platform("amd64", "linux", "v3"), Platform("amd64", "linux", "v2"), False),
        (Platform("amd64", "linux", "v1"), Platform("amd64", "linux", "v1"), True),
    ],
)
def test_matches(have: Platform, want: Platform, ok: bool) -> None:
    assert matches(have, want) is ok


def test_platform_text() -> None:
    assert Platform.parse("linux/arm/v7") == Platform("arm", "linux", "v7")
    assert str(Platform("arm", "linux", "v7")) == "linux/arm/v7"
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    for bad in ("linux", "linux/", "a/b/c/d", "/amd64"):
        with pytest.raises(InvalidArgument, match="invalid platform"):
            Platform.parse(bad)
