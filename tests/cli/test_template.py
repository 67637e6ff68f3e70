"""Go templates as Docker runs them: the engine against outputs recorded from real Docker.

``data/docker_templates.json`` holds, for an image and a container, the inspect document Docker
returned and what ``docker inspect -f TEMPLATE`` printed for each of 341 templates (stdout,
stderr, status), recorded from Docker 28.2 (client) on 20.10 (engine). Left out, as known
differences: a struct holding pointers printed whole (``{{.}}``: Go prints addresses), complex
literals (``{{1i}}``), ``%X`` of a float (hex floats), and ``truncate`` cutting a UTF-8 sequence
(Go prints the broken bytes, strata U+FFFD).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from strata.cli.format import (
    TemplateError,
    emit_formatted,
    emit_inspect,
    format_rows,
    render_template,
    tabwriter,
)
from strata.cli.template import ExecError, ParseError, Template, render_inspect
from strata.cli.template.gofmt import GoDuration, GoTime, go_float, sprint, sprintf
from tests.conftest import Strata

RECORDED = json.loads((Path(__file__).parent / "data" / "docker_templates.json").read_text())


def _docker_inspect(template: str, doc: dict[str, Any], kind: str) -> tuple[str, str, int]:
    """What ``docker inspect -f`` would print: stdout, stderr, status."""
    try:
        return render_inspect(Template(template), doc, kind) + "\n", "", 0
    except ParseError as exc:
        return "", f"template parsing error: {exc}", 64
    except ExecError as exc:
        return "\n", f"template parsing error: {exc}", 1


@pytest.mark.parametrize(
    "case", RECORDED["cases"], ids=[f"{c['kind']}:{c['template']!r}" for c in RECORDED["cases"]]
)
def test_inspect_templates_print_what_docker_printed(case: dict[str, Any]) -> None:
    got = _docker_inspect(case["template"], RECORDED[case["kind"]], case["kind"])
    assert got == (case["stdout"], case["stderr"], case["status"])


def test_the_recording_covers_the_language() -> None:
    """The recorded cases exercise every construct and function the brief names."""
    text = " ".join(c["template"] for c in RECORDED["cases"])
    for word in (
        "range $i, $e :=",
        "else if",
        "{{with",
        "{{-",
        "-}}",
        "/*",
        "{{define",
        "{{block",
        "{{template",
        "{{break}}",
        "{{continue}}",
        "$x :=",
        "$x =",
        "| printf",
        "(printf",
        "nil",
        "`raw",
        "'a'",
        "0x1F",
        *(
            f"{{{{{name} "
            for name in (
                "and", "or", "not", "len", "index", "slice", "print", "printf", "println",
                "eq", "ne", "lt", "le", "gt", "ge", "html", "js", "urlquery", "json", "join",
                "lower", "upper", "title", "split", "truncate", "pad",
            )
        ),
    ):  # fmt: skip
        assert word in text, word
    statuses = {c["status"] for c in RECORDED["cases"]}
    assert statuses == {0, 1, 64}


# -- the pieces: Go's fmt, its float printing, tabwriter ---------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (1e7, "1e+07"),
        (100000.0, "100000"),
        (1000000.0, "1e+06"),
        (123456789.0, "1.23456789e+08"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (0.0, "0"),
        (-2.5, "-2.5"),
        (1e21, "1e+21"),
        (float("inf"), "+Inf"),
    ],
)
def test_floats_print_as_go_prints_them(value: float, text: str) -> None:
    assert go_float(value) == text


def test_sprint_and_sprintf_follow_go() -> None:
    assert sprint(["a", "b", 1, 2, "c"]) == "ab1 2c"
    assert sprint([[1, "a"], {"b": None, "a": True}]) == "[1 a] map[a:true b:<nil>]"
    assert sprintf("%d|%5d|%-5d|%05d|%x|%X|%o|%b", [42, 42, 42, 42, 255, 255, 8, 5]) == (
        "42|   42|42   |00042|ff|FF|10|101"
    )
    assert sprintf("%s %q %v %10s|%-4s|", ["a", "b\n", "c", "d", "e"]) == (
        'a "b\\n" c          d|e   |'
    )
    assert sprintf("%.2f %e %g %5.1f", [3.14159, 1234.5678, 0.000012, 3.14159]) == (
        "3.14 1.234568e+03 1.2e-05   3.1"
    )
    assert sprintf("%d %d", ["x"]) == "%!d(string=x) %!d(MISSING)"
    assert sprintf("%d", [1, 2]) == "1%!(EXTRA int=2)"
    assert sprintf("%q %c %U %%", [["a", "b"], 65, 65]) == '["a" "b"] A U+0041 %'


def test_durations_and_times_print_as_go() -> None:
    assert [str(GoDuration(n)) for n in (0, 5_000_000_000, 90_000_000_000, 3_600_000_000_000)] == [
        "0s",
        "5s",
        "1m30s",
        "1h0m0s",
    ]
    assert str(GoDuration(1_500_000)) == "1.5ms"
    assert str(GoTime("2026-12-07T15:46:12.773998470Z")) == "2026-12-07 15:46:12.77399847 +0000 UTC"
    assert str(GoTime("2026-12-07T15:46:12+02:00")) == "2026-12-07 15:46:12 +0200 +0200"


def test_tabwriter_aligns_blocks_of_lines_as_go() -> None:
    # Docker's setup: min width 10, padding 3; the text after a line's last tab is not padded.
    assert tabwriter("A\tBB\tC\nxxxxxxxxxxxx\ty\tz") == (
        "A              BB        C\nxxxxxxxxxxxx   y         z"
    )
    # A line with fewer cells ends the column's block: lines after it align on their own.
    assert tabwriter("a\tb\nno tabs\nlonger cell\tc") == "a         b\nno tabs\nlonger cell   c"
    assert tabwriter("x y\nz") == "x y\nz"


# -- list commands: Docker's header names, json rows, errors -----------------------------------


def test_table_headers_are_dockers_column_names() -> None:
    row = {"ID": "823118f0139d", "Repository": "debian", "Tag": "bookworm", "Size": "199MB"}
    out = format_rows("table {{.Repository}}:{{.Tag}}\\t{{.ID}}\\t{{upper .Size}}", [row], "image")
    assert out.splitlines() == [
        "REPOSITORY:TAG    IMAGE ID       SIZE",
        "debian:bookworm   823118f0139d   199MB",
    ]
    history = format_rows(
        "table {{.ID}}\\t{{.CreatedAt}}", [{"ID": "x", "CreatedAt": "t"}], "history"
    )
    assert history.splitlines()[0] == "IMAGE     CREATED AT"
    ps = format_rows(
        "table {{.ID}}\\t{{.RunningFor}}", [{"ID": "c", "RunningFor": "now"}], "container"
    )
    assert ps.splitlines()[0] == "CONTAINER ID   CREATED"


def test_list_rows_as_json_are_sorted_and_html_escaped() -> None:
    row = {"Tag": "<none>", "ID": "a&b"}
    assert (
        format_rows("{{json .}}", [row], "image") == '{"ID":"a\\u0026b","Tag":"\\u003cnone\\u003e"}'
    )
    assert format_rows("{{json .Tag}}", [row], "image") == '"<none>"'
    lines: list[str] = []
    emit_formatted("json", ["REPOSITORY"], [row, row], lambda r: [], lines.append)
    one = '{"ID":"a\\u0026b","Tag":"\\u003cnone\\u003e"}'
    assert lines == [f"{one}\n{one}"]


def test_list_errors_use_dockers_words() -> None:
    with pytest.raises(Exception, match=r"in type \*formatter\.imageContext$") as exc:
        format_rows("{{.Nope}}", [{"ID": "x"}], "image")
    assert str(exc.value) == (
        'template parsing error: template: :1:2: executing "" at <.Nope>: '
        "can't evaluate field Nope in type *formatter.imageContext"
    )
    # A row's fields are strings (docker/cli's methods return string), not interface {}.
    with pytest.raises(Exception, match=r"<\.ID\.X>: can't evaluate field X in type string$"):
        format_rows("{{.ID.X}}", [{"ID": "x"}], "image")
    with pytest.raises(Exception, match="^failed to execute template: "):
        format_rows("{{.Nope}}", [{"ID": "x"}], "container")
    with pytest.raises(Exception, match="^failed to parse template: .*unclosed action$"):
        format_rows("{{.ID", [], "container")


def test_render_template_knows_an_inspect_document() -> None:
    image = {"Id": "sha256:ab", "RootFS": {"Type": "layers"}, "Config": {"Env": None}}
    # Docker's typed pass prints a nil list as []; .Id is not a field of its struct (ID is), so
    # with .Id the raw pass runs, where the JSON null prints <no value>.
    assert render_template("{{.Config.Env}}|{{.ID}}\\t", image) == "[]|sha256:ab\\t"
    assert render_template("{{.Config.Env}}|{{.Id}}", image) == "<no value>|sha256:ab"
    with pytest.raises(Exception, match='map has no entry for key "Nope"'):
        render_template("{{.Nope}}", image)
    assert render_template("{{.ID}}\\t{{.Size}}", {"ID": "x", "Size": "1B"}) == "x\t1B"


def test_inspect_goes_on_past_a_document_the_template_fails_on() -> None:
    """docker/cli's inspect prints every document it can and then fails (status 1)."""
    with_health = {"Id": "a", "RootFS": {}, "Config": {"Healthcheck": {"Test": ["CMD", "true"]}}}
    without = {"Id": "b", "RootFS": {}, "Config": {}}
    printed: list[str] = []
    with pytest.raises(TemplateError, match='map has no entry for key "Healthcheck"') as exc:
        emit_inspect(
            "{{.Config.Healthcheck.Test}}", [without, with_health, without], printed.append
        )
    assert printed == ["[CMD true]"]
    assert exc.value.exit_code == 1


# -- the command line ----------------------------------------------------------------------------


def _modules_after(strata: Strata, *args: str) -> str:
    code = (
        "import sys\n"
        "from strata.cli.main import main\n"
        "sys.argv = ['strata'] + sys.argv[1:]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('TEMPLATE', 'strata.cli.template' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={"STRATA_ROOT": str(strata.root), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return proc.stdout.splitlines()[-1]


def test_the_engine_loads_only_for_a_template(strata: Strata) -> None:
    for args in (["image", "ls"], ["ps", "-a"], ["images", "--format", "table"]):
        assert _modules_after(strata, *args) == "TEMPLATE False", args
    assert _modules_after(strata, "image", "ls", "--format", "{{.ID}}") == "TEMPLATE True"


def test_bad_templates_are_one_line_with_dockers_status(strata: Strata) -> None:
    # Docker refuses a template that does not parse before looking the object up: status 64.
    proc = strata("inspect", "-f", "{{.Os", "no-such-image", check=False)
    assert proc.returncode == 64
    assert strata.fail("inspect", "-f", "{{.Os", "nope") == (
        "Error: template parsing error: template: :1: unclosed action"
    )
    assert strata.fail("images", "--format", "{{if}}") == (
        "Error: template parsing error: template: :1: missing value for if"
    )
    assert strata.fail("ps", "--format", "{{nope}}") == (
        'Error: failed to parse template: template: :1: function "nope" not defined'
    )
