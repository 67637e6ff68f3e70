"""Image references behave as github.com/distribution/reference's ParseNormalizedNamed.

The expectations are taken from that package's behaviour (its normalize and reference tests);
the table is ours.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from strata.digest import Digest
from strata.errors import InvalidReference
from strata.oci.reference import Reference, looks_like_id, parse_reference

F64 = "f" * 64
SHA = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"

# input -> (full normalised string, familiar string, domain, path)
VALID = [
    ("debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    (
        "debian:bookworm",
        "docker.io/library/debian:bookworm",
        "debian:bookworm",
        "docker.io",
        "library/debian",
    ),
    ("library/debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    ("docker.io/debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    (
        "docker.io/library/debian",
        "docker.io/library/debian",
        "debian",
        "docker.io",
        "library/debian",
    ),
    ("index.docker.io/debian", "docker.io/library/debian", "debian", "docker.io", "library/debian"),
    (
        "index.docker.io/docker/docker",
        "docker.io/docker/docker",
        "docker/docker",
        "docker.io",
        "docker/docker",
    ),
    ("docker/docker", "docker.io/docker/docker", "docker/docker", "docker.io", "docker/docker"),
    (
        "dmcgowan/myapp:latest",
        "docker.io/dmcgowan/myapp:latest",
        "dmcgowan/myapp:latest",
        "docker.io",
        "dmcgowan/myapp",
    ),
    (
        "library/foo/bar",
        "docker.io/library/foo/bar",
        "library/foo/bar",
        "docker.io",
        "library/foo/bar",
    ),
    ("store/foo/bar", "docker.io/store/foo/bar", "store/foo/bar", "docker.io", "store/foo/bar"),
    ("other/library", "docker.io/other/library", "other/library", "docker.io", "other/library"),
    ("localhost/foo", "localhost/foo", "localhost/foo", "localhost", "foo"),
    (
        "localhost:5000/a/b:t",
        "localhost:5000/a/b:t",
        "localhost:5000/a/b:t",
        "localhost:5000",
        "a/b",
    ),
    (
        "127.0.0.1:5000/debian",
        "127.0.0.1:5000/debian",
        "127.0.0.1:5000/debian",
        "127.0.0.1:5000",
        "debian",
    ),
    (
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        "example.com",
        "private/moonbase",
    ),
    (
        "example.com:8000/privatebase",
        "example.com:8000/privatebase",
        "example.com:8000/privatebase",
        "example.com:8000",
        "privatebase",
    ),
    (
        "example.com/library/foo",
        "example.com/library/foo",
        "example.com/library/foo",
        "example.com",
        "library/foo",
    ),
    ("test-com:8080/foo", "test-com:8080/foo", "test-com:8080/foo", "test-com:8080", "foo"),
    (
        "xn--n3h.com:18080/foo",
        "xn--n3h.com:18080/foo",
        "xn--n3h.com:18080/foo",
        "xn--n3h.com:18080",
        "foo",
    ),
    (
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000/docker",
        "[fc00::1]:5000",
        "docker",
    ),
    (
        "[2001:db8::1]/repo:tag",
        "[2001:db8::1]/repo:tag",
        "[2001:db8::1]/repo:tag",
        "[2001:db8::1]",
        "repo",
    ),
    # An uppercase first component can only be a registry: paths are lowercase.
    ("Foo/bar", "Foo/bar", "Foo/bar", "Foo", "bar"),
    ("DOCKER/docker", "DOCKER/docker", "DOCKER/docker", "DOCKER", "docker"),
    # Without "/", "host:port" reads as name:tag.
    (
        "192.168.0.1:80",
        "docker.io/library/192.168.0.1:80",
        "192.168.0.1:80",
        "docker.io",
        "library/192.168.0.1",
    ),
    ("test_com/foo", "docker.io/test_com/foo", "test_com/foo", "docker.io", "test_com/foo"),
    (
        "docker-rules/docker",
        "docker.io/docker-rules/docker",
        "docker-rules/docker",
        "docker.io",
        "docker-rules/docker",
    ),
    (
        "docker---rules/docker",
        "docker.io/docker---rules/docker",
        "docker---rules/docker",
        "docker.io",
        "docker---rules/docker",
    ),
    (
        "dock__er/docker",
        "docker.io/dock__er/docker",
        "dock__er/docker",
        "docker.io",
        "dock__er/docker",
    ),
    ("d/docker", "docker.io/d/docker", "d/docker", "docker.io", "d/docker"),
    (
        "lowercase:Uppercase",
        "docker.io/library/lowercase:Uppercase",
        "lowercase:Uppercase",
        "docker.io",
        "library/lowercase",
    ),
    (
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io",
        "library/ubuntu-12.04-base",
    ),
    (f"docker.io/{HEX64}", f"docker.io/library/{HEX64}", HEX64, "docker.io", f"library/{HEX64}"),
    (
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker.io",
        "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    ),
    (
        f"busybox@{SHA}",
        f"docker.io/library/busybox@{SHA}",
        f"busybox@{SHA}",
        "docker.io",
        "library/busybox",
    ),
    (
        f"busybox:latest@{SHA}",
        f"docker.io/library/busybox:latest@{SHA}",
        f"busybox:latest@{SHA}",
        "docker.io",
        "library/busybox",
    ),
    (
        f"test:5000/repo:tag@sha256:{F64}",
        f"test:5000/repo:tag@sha256:{F64}",
        f"test:5000/repo:tag@sha256:{F64}",
        "test:5000",
        "repo",
    ),
    (
        f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{'f' * 128}",
        f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{'f' * 128}",
        f"xn--7o8h.com/myimage:xn--7o8h.com@sha512:{'f' * 128}",
        "xn--7o8h.com",
        "myimage",
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
    ),
    (
        "a/" * 126 + "a:tag-puts-this-over-max",
        "docker.io/" + "a/" * 126 + "a:tag-puts-this-over-max",
        "a/" * 126 + "a:tag-puts-this-over-max",
        "docker.io",
        "a/" * 126 + "a",
    ),
    (
        "debian:" + "t" * 128,
        "docker.io/library/debian:" + "t" * 128,
        "debian:" + "t" * 128,
        "docker.io",
        "library/debian",
    ),
]

GENERIC = "invalid reference format: "
# input -> exact message (the input is always named)
INVALID = [
    ("", "invalid reference format: empty reference"),
    ("Debian", GENERIC + "repository name (library/Debian) must be lowercase"),
    ("docker.io/library/Debian", GENERIC + "repository name (library/Debian) must be lowercase"),
    ("docker/Docker", GENERIC + "repository name (docker/Docker) must be lowercase"),
    (
        "test:5000/Uppercase/lowercase:tag",
        GENERIC + "repository name (Uppercase/lowercase) must be lowercase",
    ),
    ("Uppercase:tag", GENERIC + "repository name (library/Uppercase) must be lowercase"),
    (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    ("https://github.com/docker/docker", GENERIC + '"https://github.com/docker/docker"'),
    ("-docker", GENERIC + '"-docker"'),
    ("-docker/docker", GENERIC + '"-docker/docker"'),
    ("docker-/docker", GENERIC + '"docker-/docker"'),
    ("-docker.io/docker/docker", GENERIC + '"-docker.io/docker/docker"'),
    ("docker///docker", GENERIC + '"docker///docker"'),
    ("docker.io/docker///docker", GENERIC + '"docker.io/docker///docker"'),
    ("____/____", GENERIC + '"____/____"'),
    ("_docker/_docker", GENERIC + '"_docker/_docker"'),
    ("dock..er/docker", GENERIC + '"dock..er/docker"'),
    ("dock_.er/docker", GENERIC + '"dock_.er/docker"'),
    ("dock-.er/docker", GENERIC + '"dock-.er/docker"'),
    ("docker/", GENERIC + '"docker/"'),
    (":justtag", GENERIC + '":justtag"'),
    (f"@sha256:{F64}", GENERIC + f'"@sha256:{F64}"'),
    ("[fc00::1]", GENERIC + '"[fc00::1]"'),
    ("[fc00::1]:5000", GENERIC + '"[fc00::1]:5000"'),
    ("fc00::1:5000/debian", GENERIC + '"fc00::1:5000/debian"'),
    ("[fe80::1%eth0]:5000/debian", GENERIC + '"[fe80::1%eth0]:5000/debian"'),
    (
        "[2001:db8:3:4::192.0.2.33]:5000/debian",
        GENERIC + '"[2001:db8:3:4::192.0.2.33]:5000/debian"',
    ),
    ("aa/asdf$$^/aa", GENERIC + '"aa/asdf$$^/aa"'),
    ("debian:-tag", GENERIC + '"debian:-tag"'),
    ("debian:" + "t" * 129, GENERIC + '"debian:' + "t" * 129 + '"'),
    ("ubuntu\n", GENERIC + '"ubuntu\\n"'),
    ("a_b.com/x", GENERIC + '"a_b.com/x": "a_b.com" is not a valid registry'),
    (
        "a/" * 128 + "a:tag",
        GENERIC + 'repository name must not be more than 255 characters: "' + "a/" * 128 + 'a:tag"',
    ),
    (
        "repo@sha256:" + "f" * 34,
        GENERIC + f"\"repo@sha256:{'f' * 34}\": invalid digest 'sha256:{'f' * 34}': "
        "sha256 needs 64 lowercase hex characters",
    ),
    (
        f"validname@invaliddigest:{F64}",
        GENERIC
        + f"\"validname@invaliddigest:{F64}\": unsupported digest algorithm 'invaliddigest'",
    ),
    (
        f"repo@sha256:{F64.upper()}",
        GENERIC + f"\"repo@sha256:{F64.upper()}\": invalid digest 'sha256:{F64.upper()}': "
        "sha256 needs 64 lowercase hex characters",
    ),
]


def test_the_table_is_big_enough() -> None:
    assert len(VALID) + len(INVALID) >= 40


@pytest.mark.parametrize(
    ("text", "full", "familiar", "domain", "path"), VALID, ids=[v[0][:60] for v in VALID]
)
def test_valid(text: str, full: str, familiar: str, domain: str, path: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert (ref.domain, ref.path) == (domain, path)
    assert ref.name == f"{domain}/{path}"
    # The normalised and familiar forms both parse back to the same reference.
    assert parse_reference(str(ref)) == ref
    if ref.familiar != HEX64:  # as in Docker, a bare 64-hex name cannot be given unqualified
        assert parse_reference(ref.familiar) == ref


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[i[0][:60] for i in INVALID])
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_absurdly_long_input_is_refused_cheaply() -> None:
    with pytest.raises(InvalidReference, match=r"^invalid reference format: 1000000 characters"):
        parse_reference("a" * 1_000_000)


def test_parts() -> None:
    ref = parse_reference(f"localhost:5000/a/b:t@{SHA}")
    assert ref == Reference("localhost:5000", "a/b", "t", Digest.parse(SHA))
    assert ref.familiar_name == "localhost:5000/a/b"
    assert parse_reference("user/x").familiar_name == "user/x"
    assert parse_reference("debian").tag is None


def test_default_tag_only_when_neither_tag_nor_digest() -> None:
    assert str(parse_reference("debian").with_default_tag()) == "docker.io/library/debian:latest"
    assert parse_reference("debian:12").with_default_tag().tag == "12"
    pinned = parse_reference(f"debian@{SHA}")
    assert pinned.with_default_tag() == pinned


def test_with_tag_and_digest() -> None:
    ref = parse_reference("debian")
    assert str(ref.with_tag("bookworm")) == "docker.io/library/debian:bookworm"
    both = ref.with_tag("x").with_digest(SHA)
    assert str(both) == f"docker.io/library/debian:x@{SHA}"
    assert both.with_tag("y").digest == Digest.parse(SHA)
    assert ref.with_digest(Digest.parse(SHA)) == ref.with_digest(SHA)
    assert both.without_tag_or_digest() == ref
    for bad in ("", "-x", "a" * 129, "a/b", "tag with space"):
        with pytest.raises(InvalidReference, match="^invalid tag format: "):
            ref.with_tag(bad)
    with pytest.raises(InvalidReference, match="unsupported digest algorithm"):
        ref.with_digest(f"md5:{F64}")


def test_replace_works() -> None:
    ref = parse_reference("debian:12")
    assert dataclasses.replace(ref, tag=None) == parse_reference("debian")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abcd", True),
        ("3f5", False),
        ("0123456789ab", True),
        ("sha256:0123456789ab", True),
        (HEX64, True),
        (HEX64 + "0", False),
        ("sha256:" + HEX64, True),
        ("ABCD", False),
        ("abcg", False),
        ("sha512:abcd", False),
        ("debian", False),
        ("", False),
    ],
)
def test_looks_like_id(text: str, expected: bool) -> None:
    assert looks_like_id(text) is expected


def test_importing_reference_does_not_load_the_rest_of_the_model() -> None:
    code = (
        "import sys, strata.oci.reference;"
        "print(sorted(m for m in sys.modules if m.startswith('strata.oci')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['strata.oci', 'strata.oci.reference']"
