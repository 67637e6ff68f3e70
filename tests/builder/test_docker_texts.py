"""Docker's history texts without Docker: Go's formatting of HEALTHCHECK and the tarsum names of
COPY sources. Every expected value here was printed by Docker 20.10 (``docker history
--no-trunc``) for the same input; tests/builder/test_docker_diff.py checks the same live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strata.builder.context.scan import scan_context
from strata.builder.copy import plan_copy
from strata.builder.healthcheck import healthcheck_text
from strata.builder.tarsum import docker_description
from strata.gofmt import go_duration, go_quote_rune

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (100, "100ns"),
        (1500, "1.5µs"),
        (500_000_000, "500ms"),
        (1_500_000_000, "1.5s"),
        (90 * SECOND, "1m30s"),
        (3600 * SECOND, "1h0m0s"),
        (7384 * SECOND + SECOND // 2, "2h3m4.5s"),
        (-5 * SECOND, "-5s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("retries", "text"),
    [
        (0, "'\\x00'"),
        (3, "'\\x03'"),
        (12, "'\\f'"),
        (39, "'\\''"),
        (92, "'\\\\'"),
        (65, "'A'"),
        (127, "'\\x7f'"),
        (128, "'\\u0080'"),
        (300, "'Ĭ'"),
        (1234567, "'�'"),
    ],
)
def test_go_quote_rune(retries: int, text: str) -> None:
    assert go_quote_rune(retries) == text


def test_healthcheck_text_as_docker_prints_it() -> None:
    assert (
        healthcheck_text({"Test": ["NONE"]}) == 'HEALTHCHECK &{["NONE"] "0s" "0s" "0s" \'\\x00\'}'
    )
    check = {
        "Test": ["CMD-SHELL", 'echo "a b"'],
        "Interval": 90 * SECOND,
        "Timeout": 10 * SECOND,
        "StartPeriod": 5 * SECOND,
        "Retries": 12,
    }
    assert healthcheck_text(check) == (
        'HEALTHCHECK &{["CMD-SHELL" "echo \\"a b\\""] "1m30s" "10s" "5s" \'\\f\'}'
    )


def _context(root: Path) -> Path:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "src" / "b.txt").write_text("b\n")
    (root / "src" / "sub" / "c.txt").write_text("c\n")
    os.symlink("b.txt", root / "src" / "link")
    for path, mode in (("a.txt", 0o644), ("src", 0o755), ("src/b.txt", 0o644)):
        os.chmod(root / path, mode)
    os.chmod(root / "src" / "sub", 0o755)
    os.chmod(root / "src" / "sub" / "c.txt", 0o755)
    return root


@pytest.mark.parametrize(
    ("sources", "name"),
    [
        (["a.txt"], "file:00ec16333078d287782d462baefc8bb9eb0231dc3aefba3ca3e2f7e5cf0cadda"),
        (["src"], "dir:b6451a57e90a172f59be762ee18f7b80bacb6cabf0efe28d63c7b355396b2565"),
        (
            ["a.txt", "src/b.txt"],
            "multi:370479f371dba88b19c856af57bbad516a6fce380de1bbb6d5f63c4a195f7f65",
        ),
        (["*.txt"], "file:00ec16333078d287782d462baefc8bb9eb0231dc3aefba3ca3e2f7e5cf0cadda"),
    ],
)
def test_context_sources_named_by_their_tarsums(
    tmp_path: Path, sources: list[str], name: str
) -> None:
    context = scan_context(_context(tmp_path))
    with plan_copy(list(sources), "/dest/", root=context) as plan:
        assert docker_description(plan.items, context, plan.description) == name


def test_a_heredoc_has_no_docker_name(tmp_path: Path) -> None:
    context = scan_context(_context(tmp_path))
    with plan_copy([("doc", b"x\n")], "/dest", root=context) as plan:
        assert docker_description(plan.items, context, plan.description) == plan.description
