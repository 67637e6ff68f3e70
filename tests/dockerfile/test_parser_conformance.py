"""BuildKit's parser test data: each case dumps to its ``result``, bad ones fail, lines match."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.dockerfile.dump import dump
from strata.dockerfile.parser import parse
from strata.errors import DockerfileError

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
CASES = CONFORMANCE / "buildkit-parser-testfiles"
NEGATIVE = CONFORMANCE / "buildkit-parser-testfiles-negative"


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def _read(path: Path) -> str:
    # Files are taken byte for byte: some end without a newline or with a backslash.
    return path.read_bytes().decode("utf-8", "surrogateescape")


def test_case_counts() -> None:
    assert len(_names(CASES)) == 33
    assert len(_names(NEGATIVE)) == 4


@pytest.mark.parametrize("case", _names(CASES))
def test_dump_matches_buildkit(case: str) -> None:
    df = parse(_read(CASES / case / "Dockerfile"))
    assert dump(df) + "\n" == _read(CASES / case / "result")


@pytest.mark.parametrize("case", _names(NEGATIVE))
def test_negative_case_fails(case: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(_read(NEGATIVE / case / "Dockerfile"), filename=f"{case}/Dockerfile")
    message = str(info.value)
    assert message.startswith(f"{case}/Dockerfile")
    assert "\n" not in message


def test_line_numbers() -> None:
    df = parse(_read(CONFORMANCE / "buildkit-parser-testfile-line" / "Dockerfile"))
    assert (df.start_line, df.end_line) == (5, 31)
    assert [(n.start_line, n.end_line) for n in df.nodes] == [(5, 5), (11, 12), (17, 31)]
