"""Docker's output conventions: sizes, ages, tables and --format templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from strata.cli.format import ago, human_duration, human_size, render_template, table, truncate


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (33, "33B"),
        (999, "999B"),
        (1000, "1kB"),
        (74_800_000, "74.8MB"),
        (126_000_000, "126MB"),
        (69_200_000, "69.2MB"),
        (1_234_567_890, "1.23GB"),
        (999_999, "1MB"),
    ],
)
def test_human_size_matches_go_units(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (10, "10 seconds"),
        (60, "About a minute"),
        (4 * 60, "4 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (5 * 7 * 86400, "5 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_ago() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ago(now - timedelta(seconds=10), now) == "10 seconds ago"
    assert ago(None, now) == "N/A"


def test_table_aligns_like_docker_tabwriter() -> None:
    out = table(["REPOSITORY", "TAG", "SIZE"], [["debian", "bookworm", "74.8MB"]])
    assert out.splitlines() == [
        "REPOSITORY   TAG        SIZE",
        "debian       bookworm   74.8MB",
    ]


def test_truncate_uses_ellipsis() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"


def test_templates() -> None:
    doc = {"Id": "sha256:ab", "Config": {"Cmd": ["bash"], "Env": None}, "Size": 3}
    assert render_template("{{.Id}} {{.Size}}", doc) == "sha256:ab 3"
    assert render_template("{{json .Config.Cmd}}", doc) == '["bash"]'
    assert render_template("{{.Config.Cmd}}", doc) == "[bash]"
    assert render_template("{{.Config.Env}}", doc) == "<no value>"
    assert render_template("{{.Id}}\\t{{.Size}}", doc) == "sha256:ab\t3"
