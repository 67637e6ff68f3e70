"""The image-spec schema fixtures through the OCI model: our verdict must equal the expectation.

Each of the 82 documents in ``image-spec-schema/fixtures/index.json`` goes through the parser
for its schema; valid ones must parse and invalid ones must be refused with a one-line strata
error naming the document. jsonschema (Draft 4, the spec's own schemas) is a cross-check: we are
never more lenient than the schema, and the schema alone misses only the four documents that
need the extra checks the fixture README lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from strata.errors import FormatError, StrataError
from strata.oci.config import parse_config
from strata.oci.descriptor import Descriptor
from strata.oci.layout import parse_layout_header
from strata.oci.manifest import parse_manifest
from strata.oci.mediatypes import OCI_INDEX, OCI_MANIFEST

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
SCHEMAS = CONFORMANCE / "image-spec-schema"
FIXTURES = SCHEMAS / "fixtures"

# Draft 4 alone accepts these; the checks the fixture README lists reject them.
SCHEMA_ALONE_MISSES = {
    # image-spec's validator.go: digest encoding per algorithm, Env entries NAME=VALUE.
    "content-descriptor/invalid/descriptor_test-TestDescriptor-15.json",
    "config-schema/invalid/config_test-TestConfig-09.json",
    # A strict "uri" format and strict base64.
    "content-descriptor/invalid/descriptor_test-TestDescriptor-17.json",
    "content-descriptor/invalid/descriptor_test-TestDescriptor-28.json",
}


@dataclass(frozen=True)
class Case:
    file: str
    schema: str
    expect: str
    comment: str

    @property
    def path(self) -> Path:
        return FIXTURES / self.file


def _cases() -> list[Case]:
    entries = json.loads((FIXTURES / "index.json").read_text())
    return [Case(e["file"], e["schema"], e["expect"], e["comment"]) for e in entries]


CASES = _cases()


def ours(schema: str, data: bytes, source: str) -> None:
    """Run ``data`` through the strata parser that matches ``schema``; raise if it is refused."""
    if schema == "content-descriptor.json":
        try:
            obj = json.loads(data)
        except ValueError as err:
            raise FormatError(f"{source}: not valid JSON") from err
        Descriptor.from_dict(obj, source)
    elif schema == "image-manifest-schema.json":
        parse_manifest(data, OCI_MANIFEST, source=source)
    elif schema == "image-index-schema.json":
        parse_manifest(data, OCI_INDEX, source=source)
    elif schema == "config-schema.json":
        parse_config(data, source=source)
    elif schema == "image-layout-schema.json":
        parse_layout_header(data, source)
    else:  # pragma: no cover - the index names only these schemas
        raise AssertionError(f"unknown schema {schema}")


def verdict(case: Case) -> tuple[str, str]:
    try:
        ours(case.schema, case.path.read_bytes(), case.file)
    except StrataError as err:
        return "invalid", str(err)
    return "valid", ""


def test_the_index_lists_82_documents() -> None:
    assert len(CASES) == 82
    assert {c.expect for c in CASES} == {"valid", "invalid"}


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_verdict_matches_expectation(case: Case) -> None:
    got, message = verdict(case)
    assert got == case.expect, f"{case.file} ({case.comment}): got {got}: {message}"
    if got == "invalid":
        assert message.startswith(f"{case.file}: "), message
        assert "\n" not in message


@pytest.mark.parametrize(
    ("file", "patch", "field"),
    [
        # These fixtures also carry "os": 123, so they fail early; with os fixed they must still
        # fail, and for the reason the fixture is about.
        ("config-schema/invalid/config_test-TestConfig-03.json", {"os": "linux"}, "history"),
        ("config-schema/invalid/config_test-TestConfig-04.json", {"os": "linux"}, "config.Env[0]"),
        ("config-schema/invalid/config_test-TestConfig-05.json", {"os": "linux"}, "config.Volumes"),
    ],
)
def test_invalid_configs_fail_for_their_own_reason(
    file: str, patch: dict[str, Any], field: str
) -> None:
    doc = json.loads((FIXTURES / file).read_bytes())
    doc.update(patch)
    with pytest.raises(FormatError) as caught:
        parse_config(json.dumps(doc).encode(), source=file)
    assert str(caught.value).startswith(f"{file}: {field}: ")


def _validators() -> dict[str, Any]:
    from jsonschema import Draft4Validator  # type: ignore[import-untyped]
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    aliases = {
        "config-schema.json": ["https://opencontainers.org/schema/image/config"],
        "content-descriptor.json": [
            "https://opencontainers.org/schema/descriptor",
            "https://opencontainers.org/schema/image/content-descriptor.json",
        ],
        "defs-descriptor.json": [
            "https://opencontainers.org/schema/image/descriptor/mediaType",
            "https://opencontainers.org/schema/defs-descriptor.json",
            "https://opencontainers.org/schema/image/defs-descriptor.json",
        ],
        "defs.json": [
            "https://opencontainers.org/schema/defs.json",
            "https://opencontainers.org/schema/image/defs.json",
            "https://opencontainers.org/schema/image/descriptor/defs.json",
        ],
        "image-index-schema.json": ["https://opencontainers.org/schema/image/index"],
        "image-layout-schema.json": ["https://opencontainers.org/schema/image/layout"],
        "image-manifest-schema.json": ["https://opencontainers.org/schema/image/manifest"],
    }
    documents = {name: json.loads((SCHEMAS / name).read_text()) for name in aliases}
    registry: Registry[Any] = Registry()
    for name, urls in aliases.items():
        resource = Resource.from_contents(documents[name], default_specification=DRAFT4)
        registry = registry.with_resources((url, resource) for url in urls)
    return {
        name: Draft4Validator(documents[name], registry=registry)
        for name in aliases
        if not name.startswith("defs")
    }


def _schema_verdict(validators: dict[str, Any], case: Case) -> str:
    try:
        doc = json.loads(case.path.read_bytes())
    except ValueError:
        return "invalid"
    errors = list(validators[case.schema].iter_errors(doc))
    return "invalid" if errors else "valid"


def test_jsonschema_cross_check() -> None:
    validators = _validators()
    disagree = []
    for case in CASES:
        schema_says = _schema_verdict(validators, case)
        we_say, message = verdict(case)
        if schema_says == "invalid":
            # Never more lenient than the spec's own schema.
            assert we_say == "invalid", f"{case.file}: the schema rejects it, we accept it"
        if schema_says != case.expect:
            disagree.append(case.file)
    assert set(disagree) == SCHEMA_ALONE_MISSES
