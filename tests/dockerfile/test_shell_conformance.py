"""BuildKit's own shell-lexer tables (envVarTest, wordsTest), run line by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from strata.dockerfile.shell import ShellLex
from strata.errors import DockerfileError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "buildkit-shell"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(name: str) -> list[tuple[int, str]]:
    # As Go's bufio.Scanner: split on "\n", drop one trailing "\r"; keep other whitespace.
    text = (DATA / name).read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(n, line.removesuffix("\r")) for n, line in enumerate(lines, 1)]


def _env_var_cases() -> list[tuple[int, str, str, str]]:
    cases = []
    for number, raw in _lines("envVarTest"):
        if raw.startswith("#") or not raw.strip():
            continue
        fields = raw.strip().split("|")
        assert len(fields) == 3, f"envVarTest:{number}: {raw!r}"
        platform, source, expected = (f.strip() for f in fields)
        assert platform in ("A", "U", "W"), f"envVarTest:{number}: {raw!r}"
        cases.append((number, platform, source, expected))
    return cases


def _words_cases() -> list[tuple[int, dict[str, str], str, list[str]]]:
    cases = []
    env: dict[str, str] = {}
    for number, raw in _lines("wordsTest"):
        if raw.startswith("#"):
            continue
        if raw.startswith("ENV "):
            key, _, value = raw[3:].lstrip(" ").partition("=")
            env = {**env, key: value}
            continue
        fields = raw.split("|")
        assert len(fields) == 2, f"wordsTest:{number}: {raw!r}"
        cases.append((number, env, fields[0].strip(), fields[1].lstrip(" ").split(",")))
    return cases


ENV_VAR_CASES = _env_var_cases()
LINUX_CASES = [c for c in ENV_VAR_CASES if c[1] != "W"]  # W lines are for Windows only
WORDS_CASES = _words_cases()


def test_tables_have_the_documented_size() -> None:
    assert len(ENV_VAR_CASES) == 230
    assert len(LINUX_CASES) == 228
    assert sum(1 for c in LINUX_CASES if c[3] == "error") == 36
    assert len(WORDS_CASES) == 24


@pytest.mark.parametrize(
    ("source", "expected"),
    [pytest.param(c[2], c[3], id=f"L{c[0]}") for c in LINUX_CASES],
)
def test_env_var(source: str, expected: str) -> None:
    lex = ShellLex("\\")
    if expected == "error":
        with pytest.raises(DockerfileError):
            lex.process_word(source, ENV)
    else:
        assert lex.process_word(source, ENV) == expected


@pytest.mark.parametrize(
    ("env", "source", "expected"),
    [pytest.param(c[1], c[2], c[3], id=f"L{c[0]}") for c in WORDS_CASES],
)
def test_words(env: dict[str, str], source: str, expected: list[str]) -> None:
    lex = ShellLex("\\")
    try:
        words = lex.process_words(source, env)
    except DockerfileError:
        words = ["error"]
    assert words == expected
