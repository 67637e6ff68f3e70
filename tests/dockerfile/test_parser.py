"""The Dockerfile parser: continuations, comments, directives, argument forms, heredocs, dump."""

from __future__ import annotations

import pytest

from strata.dockerfile.ast import Heredoc, Node
from strata.dockerfile.dump import dump, go_quote
from strata.dockerfile.heredoc import HeredocError, heredocs_in_line, parse_heredoc
from strata.dockerfile.parser import parse
from strata.errors import DockerfileError


def _one(text: str) -> Node:
    df = parse(text)
    assert len(df.nodes) == 1
    return df.nodes[0]


def _dump(text: str) -> str:
    return dump(parse(text))


# -- lines, continuations, comments ------------------------------------------------------------


def test_continuation_joins_lines_and_keeps_indent() -> None:
    node = _one("RUN apt-get update \\\n    && apt-get install -y x\n")
    assert node.args == ("apt-get update     && apt-get install -y x",)
    assert node.original == "RUN apt-get update     && apt-get install -y x"
    assert (node.start_line, node.end_line) == (1, 2)


def test_comment_inside_continuation_is_dropped() -> None:
    node = _one("RUN a \\\n  # a comment \\\n# another\n  b\n")
    assert node.args == ("a   b",)
    assert (node.start_line, node.end_line) == (1, 4)


def test_empty_continuation_line_warns() -> None:
    df = parse("FROM x\nRUN a \\\n\n  b\nRUN c \\\n  d\n")
    assert [n.args for n in df.nodes[1:]] == [("a   b",), ("c   d",)]
    assert len(df.warnings) == 1
    assert df.warnings[0].line == 4
    assert df.warnings[0].message == "Empty continuation line found in: RUN a   b"


def test_escaped_escape_does_not_continue() -> None:
    df = parse("ENV C trailing\\\\\nENV D next\n")
    assert [n.args for n in df.nodes] == [("C", "trailing\\\\", ""), ("D", "next", "")]


def test_continuation_at_end_of_file() -> None:
    assert _one("RUN something \\").args == ("something",)


def test_crlf_line_endings() -> None:
    df = parse("FROM a\r\nRUN b \\\r\n  c\r\n")
    assert [n.args for n in df.nodes] == [("a",), ("b   c",)]


def test_byte_order_mark_is_ignored() -> None:
    assert _one("\ufeffFROM scratch\n").args == ("scratch",)


def test_keyword_case_and_leading_whitespace() -> None:
    node = _one("   run   echo hi  \n")
    assert node.value == "run"
    assert node.keyword == "run"
    assert node.args == ("echo hi",)


def test_unknown_instruction_is_kept_for_later() -> None:
    node = _one("FOO bar\n")
    assert node.value == "foo"
    assert _dump("FOO bar\n") == '(foo "")'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile: file is empty"),
        ("\n  \n", "Dockerfile: file is empty"),
        ("# only\n# comments\n", "Dockerfile: file with no instructions"),
    ],
)
def test_empty_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=f"^{message}$"):
        parse(text)


def test_errors_name_the_file_and_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM x\n\nENV PATH\n", filename="app/Dockerfile.dev")
    assert str(info.value) == "app/Dockerfile.dev:3: ENV must have two arguments"


# -- directives ----------------------------------------------------------------------------------


def test_directives_at_the_top() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# check=skip=all\n#escape=`\nFROM x\n")
    assert [(d.name, d.value, d.line) for d in df.directives] == [
        ("syntax", "docker/dockerfile:1", 1),
        ("check", "skip=all", 2),
        ("escape", "`", 3),
    ]
    assert df.escape == "`"
    assert df.directive("syntax") == "docker/dockerfile:1"
    assert df.directive("nope") is None


def test_directive_after_a_comment_is_a_comment() -> None:
    df = parse("# hello\n# escape=`\nENV A \\\n  b\n")
    assert df.directives == ()
    assert df.escape == "\\"
    assert df.nodes[0].args == ("A", "b", "")


def test_directive_after_an_instruction_is_a_comment() -> None:
    df = parse("FROM x\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\"
    assert df.nodes[1].args == ("a  b",)


def test_unknown_directive_ends_the_directive_block() -> None:
    df = parse("# foo=bar\n# escape=`\nFROM x\n")
    assert df.directives == ()


def test_backtick_escape() -> None:
    df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\nCOPY a\\b c\n")
    assert df.nodes[1].args == ("dir c:\\   && echo hi",)
    assert df.nodes[2].args == ("a\\b", "c")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# escape=x\nFROM a\n", "Dockerfile:1: invalid escape token 'x' does not match ` or \\"),
        (
            "# syntax=a\n# SYNTAX=b\nFROM a\n",
            "Dockerfile:2: only one syntax parser directive can be used",
        ),
    ],
)
def test_bad_directives(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert str(info.value) == message


# -- argument forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args", "json_form"),
    [
        ('CMD ["a", "b c"]', ("a", "b c"), True),
        ("CMD a b", ("a b",), False),
        ("CMD ['a']", ("['a']",), False),
        ('CMD ["a"', ('["a"',), False),
        ("CMD []", (), True),
        ('RUN ["a", "\\u00e9\\n"]', ("a", "é\n"), True),
        ('ENTRYPOINT [ "x" ] ', ("x",), True),
        ('COPY ["a b", "c"]', ("a b", "c"), True),
        ("COPY a  b\tc", ("a", "b", "c"), False),
        ('VOLUME ["/a", "/b"]', ("/a", "/b"), True),
        ("VOLUME /a /b", ("/a", "/b"), False),
        ("EXPOSE 80 443/udp", ("80", "443/udp"), False),
        ("FROM x AS y", ("x", "AS", "y"), False),
        ("USER a b", ("a b",), False),
        ("WORKDIR /a b", ("/a b",), False),
        ("MAINTAINER Jo <jo@x>", ("Jo <jo@x>",), False),
        ("STOPSIGNAL SIGKILL", ("SIGKILL",), False),
        ('ARG a b="c d" e=', ("a", 'b="c d"', "e="), False),
        ("ENV a=1 b='2 3'", ("a", "1", "=", "b", "'2 3'", "="), False),
        ('ENV k "v w"  x', ("k", '"v w"  x', ""), False),
        ('LABEL "a b"=c', ('"a b"', "c", "="), False),
        ("HEALTHCHECK NONE", ("NONE",), False),
        ('HEALTHCHECK CMD ["a", "b"]', ("CMD", "a", "b"), True),
        ("HEALTHCHECK CMD a b", ("CMD", "a b"), False),
        ("HEALTHCHECK", (), False),
        ("CMD", (), False),
    ],
)
def test_argument_forms(line: str, args: tuple[str, ...], json_form: bool) -> None:
    node = _one(line + "\n")
    assert node.args == args
    assert node.json_form is json_form


def test_json_array_of_non_strings_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="^Dockerfile:1: when using JSON array syntax"):
        parse('CMD ["a", 1]\n')


def test_json_constants_are_not_go_json() -> None:
    assert _one("CMD [NaN]\n").args == ("[NaN]",)


def test_flags_are_split_off_with_quotes_removed() -> None:
    node = _one('COPY --from=build --chown="a b" -- --weird /dst\n')
    assert node.flags == ("--from=build", "--chown=a b")
    assert node.args == ("--weird", "/dst")
    assert _dump("RUN --mount=type=cache,target=/c make\n") == (
        '(run ["--mount=type=cache,target=/c"] "make")'
    )


def test_env_equals_form_requires_equals_everywhere() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("ENV a=1 b\n")
    assert str(info.value) == (
        'Dockerfile:1: Syntax error - can\'t find = in "b". Must be of the form: name=value'
    )


def test_onbuild_nests_its_trigger() -> None:
    node = _one("ONBUILD COPY --from=x a b\n")
    assert node.args == ()
    assert node.nested is not None
    assert node.nested.value == "copy"
    assert node.nested.flags == ("--from=x",)
    assert node.nested.start_line == 1
    assert _dump("ONBUILD COPY --from=x a b\n") == '(onbuild (copy ["--from=x"] "a" "b"))'
    assert _dump("ONBUILD\n") == "(onbuild)"


# -- heredocs ------------------------------------------------------------------------------------


def test_run_heredoc() -> None:
    node = _one("RUN <<EOF\necho $HOME\nEOF\n")
    assert node.args == ("<<EOF",)
    assert node.heredocs == (Heredoc("EOF", "echo $HOME\n", expand=True, chomp=False),)
    assert (node.start_line, node.end_line) == (1, 3)


@pytest.mark.parametrize("delimiter", ["'EOF'", '"EOF"', "E'OF'", '"E"OF'])
def test_quoted_delimiter_means_no_expansion(delimiter: str) -> None:
    node = _one(f"RUN <<{delimiter}\necho $HOME\nEOF\n")
    assert node.heredocs == (Heredoc("EOF", "echo $HOME\n", expand=False),)


def test_dash_heredoc_strips_tabs_from_body_and_delimiter() -> None:
    node = _one("RUN <<-EOF\n\tif x; then\n\t\ty\n\tfi\n\tEOF\n")
    (doc,) = node.heredocs
    assert doc.chomp
    assert doc.content == "\tif x; then\n\t\ty\n\tfi\n"
    assert doc.body == "if x; then\ny\nfi\n"


def test_several_heredocs_on_one_line() -> None:
    df = parse("FROM x\nCOPY <<A <<B /dst/\none\nA\ntwo\nB\nRUN ls\n")
    copy = df.nodes[1]
    assert [(h.name, h.content) for h in copy.heredocs] == [("A", "one\n"), ("B", "two\n")]
    assert (copy.start_line, copy.end_line) == (2, 6)
    assert df.nodes[2].start_line == 7


def test_heredoc_body_is_verbatim() -> None:
    node = _one("RUN <<EOF python3\n# not a comment \\\n\nprint('x')\nEOF\n")
    assert node.heredocs[0].content == "# not a comment \\\n\nprint('x')\n"
    assert node.args == ("<<EOF python3",)


def test_heredoc_with_file_descriptor_and_redirect() -> None:
    node = _one("RUN 3<<EOF cat <&3 > /out\ndata\nEOF\n")
    assert node.heredocs == (Heredoc("EOF", "data\n"),)


@pytest.mark.parametrize(
    "text",
    [
        'RUN ["<<EOF"]\n',
        "USER <<EOF\n",
        "RUN '<<EOF'\n",
        'RUN "<<EOF"\n',
        'RUN echo "a <<EOF"\n',
        "RUN echo a<<EOF\n",
    ],
)
def test_not_heredocs(text: str) -> None:
    assert parse(text).nodes[0].heredocs == ()


def test_heredoc_in_onbuild_trigger() -> None:
    node = _one("ONBUILD RUN <<EOF\nhi\nEOF\n")
    assert node.heredocs == (Heredoc("EOF", "hi\n"),)
    assert node.nested is not None
    assert node.nested.heredocs == node.heredocs


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError, match="^Dockerfile:2: unterminated heredoc EOF$"):
        parse("FROM x\nRUN <<EOF\necho\nEOFX\n")


@pytest.mark.parametrize(
    ("word", "name", "expand", "chomp"),
    [
        ("<<EOF", "EOF", True, False),
        ("<<-EOF", "EOF", True, True),
        ("<<'EOF'", "EOF", False, False),
        ('<<-"EOF"', "EOF", False, True),
        ("<< EOF", "EOF", True, False),
        ("2<<EOF", "EOF", True, False),
        ("<<eo\\'f", "eo'f", True, False),
        ("<<'one two'", "one two", False, False),
        ("<<$EOF", "$EOF", True, False),
        ("<<${X:-y}", "${X:-y}", True, False),
    ],
)
def test_parse_heredoc_word(word: str, name: str, expand: bool, chomp: bool) -> None:
    assert parse_heredoc(word) == Heredoc(name, "", expand, chomp)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_parse_heredoc_not_a_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_parse_heredoc_unterminated_quote(word: str) -> None:
    with pytest.raises(HeredocError):
        parse_heredoc(word)


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("RUN <<EOF", ["EOF"]),
        ("RUN << -EOF", ["-EOF"]),
        ("RUN 4<<EOF", ["EOF"]),
        ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
        ("RUN cat <<A | sh -c \"$(cat <<'B')\"", ["A"]),
        ("RUN <<'A' ${X:-a b}", ["A"]),
        ('RUN "<<EOF', []),
    ],
)
def test_heredocs_in_line(line: str, names: list[str]) -> None:
    assert [doc.name for doc in heredocs_in_line(line)] == names


# -- dump ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("plain", '"plain"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\n\t\r\a\b\f\v", '"\\n\\t\\r\\a\\b\\f\\v"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("♥ é 한국어", '"♥ é 한국어"'),
        ("\u00a0\u2028\ufeff", '"\\u00a0\\u2028\\ufeff"'),
        ("\U000e0001", '"\\U000e0001"'),
        ("\U0001f600", '"\U0001f600"'),
        ("a\udcffb", '"a\\xffb"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


def test_dump_layout() -> None:
    text = 'FROM a\nCOPY --chown=1 x y\nCMD ["p", "q"]\nENV k=v\n'
    assert _dump(text) == (
        '(from "a")\n(copy ["--chown=1"] "x" "y")\n(cmd "p" "q")\n(env "k" "v" "=")'
    )
