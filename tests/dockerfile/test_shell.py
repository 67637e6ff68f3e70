"""The shell-word expander: operators, matches tracking, escapes, options and error messages."""

from __future__ import annotations

import random
import re

import pytest

from strata.dockerfile.shell import ShellLex, WordExpansion
from strata.dockerfile.shell_pattern import Glob
from strata.errors import DockerfileError
from strata.gofmt import go_quote

LEX = ShellLex()


def expand(word: str, env: dict[str, str] | None = None) -> str:
    return LEX.process_word(word, env or {})


def error_of(word: str, env: dict[str, str] | None = None, lex: ShellLex = LEX) -> str:
    with pytest.raises(DockerfileError) as info:
        lex.process_word(word, env or {})
    return str(info.value)


FB = {"FOO": "xxx", "BAR": ""}

# BuildKit's TestProcessWithMatches table: (input, env, expected, matched, unmatched).
MATCHES = [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", FB, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", FB, "xxx bbb ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-}", FB, "xxx", {"FOO"}, set()),
    ("${FOO:-}", {}, "", set(), {"FOO"}),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", FB, "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", FB, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO?aaa}", FB, "xxx", {"FOO"}, set()),
    ("${BAR?bbb}", FB, "", {"BAR"}, set()),
    ("${FOO:?aaa}", FB, "xxx", {"FOO"}, set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}, set()),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}, set()),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}, set()),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
        "/foo.*/*.txt - /foo..*.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
        "/tmp/bar.txt - /bar.txt",
        {"FOO", "NEEDLE"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
        "/foo/b/c.txt - /foo/c.txt",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT}",
        {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
        "https://google.de",
        {"FOO", "NEEDLE", "REPLACEMENT"},
        set(),
    ),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}, set()),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
]


@pytest.mark.parametrize(("word", "env", "expected", "matched", "unmatched"), MATCHES)
def test_matches(
    word: str, env: dict[str, str], expected: str, matched: set[str], unmatched: set[str]
) -> None:
    result = LEX.process_word_result(word, env)
    assert result == WordExpansion(expected, frozenset(matched), frozenset(unmatched))
    assert LEX.process_word_with_matches(word, env) == (expected, frozenset(matched | unmatched))
    assert LEX.process_word(word, env) == expected


@pytest.mark.parametrize(
    "word",
    [
        "${BAZ?ccc}",
        "${BAR:?bbb}",
        "${BAZ:?ccc}",
        "${BAZ:?}",
        "${FOO=aaa}",
        "${FOO=:aaa}",
        "${FOO=}",
        "${FOO:#}",
        "${FOO:##}",
        "${FOO:%}",
        "${FOO:%%}",
        "${FOO//ww}",
        "${FOO//}",
    ],
)
def test_matches_table_errors(word: str) -> None:
    with pytest.raises(DockerfileError):
        LEX.process_word(word, FB)


def test_release_name_with_optional_variant() -> None:
    word = (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz"
    )
    env = {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"}
    assert expand(word, env) == "something-v1.2.3.linux-arm-v7.tar.gz"
    env["TARGETARCH"] = "arm64"
    env["TARGETVARIANT"] = ""
    assert expand(word, env) == "something-v1.2.3.linux-arm64.tar.gz"
    del env["TARGETVARIANT"]
    value, names = LEX.process_word_with_matches(word, env)
    assert value == "something-v1.2.3.linux-arm64.tar.gz"
    # The unset variant is still a name the word depends on (a cache key needs it).
    assert names == {"VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"}


def test_names_in_operands_unused_branches_and_quotes_are_tracked() -> None:
    result = LEX.process_word_result('${A:-$B}"$C"${D:+${E}}', {"A": "a", "C": "c"})
    assert result.value == "ac"
    assert result.matched == {"A", "C"}
    # Operands are expanded before the variable is looked at, as BuildKit does, so B and E
    # count although their branches were not taken.
    assert result.unmatched == {"B", "D", "E"}
    assert result.referenced == {"A", "B", "C", "D", "E"}
    assert LEX.process_word_with_matches("plain", {"X": "1"}) == ("plain", frozenset())


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$V", "v"),
        ("${V}", "v"),
        ("${V:-d}|${E:-d}|${U:-d}", "v|d|d"),
        ("${V-d}|${E-d}|${U-d}", "v||d"),
        ("${V:+s}|${E:+s}|${U:+s}", "s||"),
        ("${V+s}|${E+s}|${U+s}", "s|s|"),
        ("${V:?m}|${V?m}|${E?m}", "v|v|"),
        ("${P#*/}", "b/c.tar.gz"),
        ("${P##*/}", "c.tar.gz"),
        ("${P%.*}", "a/b/c.tar"),
        ("${P%%.*}", "a/b/c"),
        ("${P/\\//-}", "a-b/c.tar.gz"),
        ("${P//\\//-}", "a-b-c.tar.gz"),
        ("${P/?/X}", "X/b/c.tar.gz"),
        ("${P/x/X}", "a/b/c.tar.gz"),
        ("${U#*}|${U/a/b}", "|"),
        ("${1}$1$@$#$?$$$!$0$*$-", ""),
        ("$ $. a$", "$ $. a$"),
    ],
)
def test_each_operator(word: str, expected: str) -> None:
    assert expand(word, {"V": "v", "E": "", "P": "a/b/c.tar.gz"}) == expected


def test_replace_all_follows_go_regexp_replace_all() -> None:
    # An empty match right after a match is not replaced again (Python's re.sub would: "XX").
    assert expand("${F//*/X}", {"F": "foo"}) == "X"
    assert expand("${F//o*/X}", {"F": "foo"}) == "fX"
    # Go expands $0 (the match) in the replace-all template; the single form is literal.
    assert expand("${F//o/<\\$0>}", {"F": "foo"}) == "f<\\o><\\o>"
    assert expand("${F/o/<\\$0>}", {"F": "foo"}) == "f<\\$0>o"


def test_wildcards_do_not_cross_newlines() -> None:
    # Go's "." never matches "\n".
    assert expand("${X%%*}", {"X": "ab\ncd"}) == "ab\n"
    assert expand("${X#?}", {"X": "\nab"}) == "\nab"
    assert expand("${X#*b}", {"X": "a\nb"}) == "a\nb"


def _regex_like_buildkit(pattern: str, greedy: bool) -> re.Pattern[str]:
    # BuildKit's convertShellPatternToRegex; Python's re has Go's leftmost-first semantics here.
    out = []
    chars = iter(pattern)
    for c in chars:
        if c == "*":
            out.append(".*" if greedy else ".*?")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            out.append(re.escape(next(chars)))
        else:
            out.append(re.escape(c))
    return re.compile("".join(out))


def test_glob_matches_like_the_regex_buildkit_builds() -> None:
    rng = random.Random(4)
    for _ in range(3000):
        pattern = "".join(rng.choice(["a", "b", "*", "?", "\n", "\\*"]) for _ in range(5))
        text = "".join(rng.choice("ab\n") for _ in range(rng.randint(0, 8)))
        greedy = rng.random() < 0.5
        glob, regex = Glob(pattern, greedy), _regex_like_buildkit(pattern, greedy)
        anchored = regex.match(text)
        assert glob.match_at(text, 0, set()) == (anchored.end() if anchored else None)
        pos = rng.randint(0, len(text))
        found = regex.search(text, pos)
        assert glob.search(text, pos, set()) == (found.span() if found else None)


def test_hostile_pattern_is_not_exponential() -> None:
    # A backtracking regex would take about 100**20 steps here.
    pattern = "*a" * 20 + "*b"
    assert expand("${X#" + pattern + "}", {"X": "a" * 100}) == "a" * 100
    assert expand("${X%%" + pattern + "}", {"X": "a" * 100}) == "a" * 100
    assert expand("${X//" + pattern + "/-}", {"X": "a" * 60}) == "a" * 60


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    word = "${A:-" * 5000 + "x" + "}" * 5000
    assert "nested substitutions" in error_of(word)
    assert expand("${A:-" * 50 + "x" + "}" * 50) == "x"


def test_backtick_escape() -> None:
    lex = ShellLex("`")
    env = {"PWD": "/home"}
    assert lex.escape == "`"
    assert lex.process_word("he`$PWD", env) == "he$PWD"
    assert lex.process_word("C:\\dir\\$PWD", env) == "C:\\dir\\/home"
    assert lex.process_word('"a`"b``c`x"', env) == 'a"b`c`x'
    assert lex.process_word("a` b", env) == "a b"
    assert lex.process_words("a` b c", env) == ["a b", "c"]
    assert lex.process_word("a`", env) == "a"
    # Patterns keep the escape token raw and use "\" for their own escapes, as BuildKit does.
    assert lex.process_word("${F#`}}", {"F": "`}x"}) == "x"
    assert lex.process_word("${F#\\*}", {"F": "*x"}) == "x"


def test_quotes_and_escapes() -> None:
    env = {"X": "a b"}
    assert expand("'$X \\n'", env) == "$X \\n"
    assert expand('"$X \\$X \\n \\""', env) == 'a b $X \\n "'
    assert expand("\\$X\\ \\'", env) == "$X '"
    assert expand("\ufeff$X", env) == "a b"  # a leading byte order mark is skipped, as Go does


def test_process_words() -> None:
    lex = ShellLex()
    env = {"X": "a  b", "E": ""}
    assert lex.process_words("  one $X '' \"$X\" c'd e'f  ", env) == [
        "one",
        "a",
        "b",
        "a  b",
        "cd ef",
    ]
    assert lex.process_words("$E", env) == []
    assert lex.process_words("a\x1cb", env) == ["a\x1cb"]  # not a space for Go
    assert lex.process_words("a\u3000b", env) == ["a", "b"]
    assert lex.process_words("cat <<  EOF > f", env) == ["cat", "<<  EOF", ">", "f"]
    assert lex.process_words("a<b", env) == ["a<b"]
    # BuildKit quirk: the text before a ${VAR<op>...} in the same word is lost.
    assert lex.process_words("x a${X:-b}c", env) == ["x", "a", "bc"]
    assert lex.process_words("x a${U:-b}c", env) == ["x", "bc"]
    assert lex.process_words("pre${E}post", env) == ["prepost"]


def test_heredoc_detection_options() -> None:
    # What BuildKit's parser runs over a line to find heredoc words.
    raw = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    words = raw.process_words('cat <<"EOF" > $X ${Y:-z} \\"q\\" ${Z/a/b} ${W}', {})
    assert words == ["cat", '<<"EOF"', ">", "$X", "${Y:-z}", '\\"q\\"', "${Z/a/b}", "${W}"]
    assert raw.process_word("'a'", {}) == "'a'"
    assert ShellLex(raw_escapes=True).process_word('a\\b"\\t"', {}) == "a\\b\\\\t"


def test_skip_process_quotes() -> None:
    lex = ShellLex(skip_process_quotes=True)
    assert lex.process_word("'$X' \"$X\"", {"X": "1"}) == "'1' \"1\""
    assert lex.process_word("it's", {}) == "it's"


@pytest.mark.parametrize(
    ("word", "env", "reason"),
    [
        ("${VAR:?}", {}, "VAR: is not allowed to be unset"),
        ("${VAR:?}", {"VAR": ""}, "VAR: is not allowed to be empty"),
        ("${VAR?}", {}, "VAR: is not allowed to be unset"),
        ("${VAR:?set VAR to $H}", {"H": "1.2"}, "VAR: set VAR to 1.2"),
        ("${VAR?oops}", {}, "VAR: oops"),
        ("${}", {}, "syntax error: bad substitution"),
        ("${:-x}", {}, "syntax error: bad substitution"),
        ("${{A}", {}, "syntax error: bad substitution"),
        ("${A", {}, "syntax error: missing '}'"),
        ("${A:-x", {}, "syntax error: missing '}'"),
        ('${A:-"x}', {}, "syntax error: missing '}'"),
        ("${", {}, "syntax error: missing '}'"),
        ("${A/x", {}, "syntax error: missing '/' in ${}"),
        ("${A:=x}", {}, "unsupported modifier (:=) in substitution"),
        ("${A:x}", {}, "unsupported modifier (:x) in substitution"),
        ("${A:#x}", {}, "unsupported modifier (:#) in substitution"),
        ("${A:%%x}", {}, "unsupported modifier (:%) in substitution"),
        ("${A.}", {}, "unsupported modifier (.) in substitution"),
        ("${A#\\x}", {}, "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
        ("${A%a\\x}", {}, "invalid pattern (\\xa) in substitution: invalid escape '\\x'"),
        ("${A/\\x/y}", {}, "invalid pattern (\\x) in substitution: invalid escape '\\x'"),
        ("'abc", {}, "unexpected end of statement while looking for matching single-quote"),
        ('"abc', {}, "unexpected end of statement while looking for matching double-quote"),
        ('"abc\\"', {}, "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_error_messages(word: str, env: dict[str, str], reason: str) -> None:
    assert error_of(word, env) == f"failed to process {go_quote(word)}: {reason}"


def test_error_messages_are_one_line() -> None:
    message = error_of("${V:?line one\nline two}\t")
    assert message == 'failed to process "${V:?line one\\nline two}\\t": V: line one\\nline two'
    with pytest.raises(DockerfileError, match="failed to process"):
        LEX.process_words("a 'b", {})


def test_go_quote() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("\x00\x7f\t\u200b♥한") == '"\\x00\\x7f\\t\\u200b♥한"'
    assert go_quote("\U000e0001") == '"\\U000e0001"'


def test_bad_escape_token() -> None:
    with pytest.raises(DockerfileError, match="escape token"):
        ShellLex("ab")
