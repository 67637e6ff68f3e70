""".dockerignore: reading, matching and exceptions, against moby's own tables and Docker's
documented examples."""

from __future__ import annotations

import pytest

from strata.builder.context.ignore import IgnoreRules, read_patterns
from strata.errors import BuildError


def excluded(patterns: list[str], path: str) -> bool:
    return IgnoreRules.from_patterns(patterns).excluded(path)


# moby/patternmatcher TestMatches: one pattern, does it exclude the path?
SINGLE = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "file/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
    ("a*", "ab/c", True),  # a pattern matching a directory matches what is in it
    ("a*/b", "a/c/b", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SINGLE)
def test_patternmatcher_table(pattern: str, path: str, expected: bool) -> None:
    assert excluded([pattern], path) is expected


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["**", "!util/docker/web"], "util/docker/web/foo", False),
        (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
        (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3-py3-none-any.whl", False),
        (["!fileutils.go", "*.go"], "fileutils.go", True),
        (["*.go", "!fileutils.go"], "fileutils.go", False),
        (["docs", "!docs/README.md"], "docs/README.md", False),
        (["docs/", "!docs/README.md"], "docs/README.md", False),
        (["docs/*", "!docs/README.md"], "docs/README.md", False),
        (["docs", "!docs/README.md"], "docs/other.md", True),
        (["*.go"], ".", False),  # the root is never excluded
    ],
)
def test_exceptions_last_match_wins(patterns: list[str], path: str, expected: bool) -> None:
    assert excluded(patterns, path) is expected


DOCS_EXAMPLE = """
# comment
*/temp*
*/*/temp*
temp?
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("somedir/temporary.txt", True),
        ("somedir/temp", True),
        ("somedir/temp/inside.txt", True),
        ("somedir/subdir/temporary.txt", True),
        ("temporary.txt", False),
        ("tempa", True),
        ("tempb", True),
        ("tempab", False),
        ("a/b/c/temporary.txt", False),
        ("# comment", False),
    ],
)
def test_docker_documented_example(path: str, expected: bool) -> None:
    assert IgnoreRules.parse(DOCS_EXAMPLE).excluded(path) is expected


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        (["**/*.go"], "main.go", True),
        (["**/*.go"], "a/b/c/main.go", True),
        (["**/*.go"], "main.go.txt", False),
        (["*.md", "!README.md"], "CHANGES.md", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
        (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
        (["*.md", "!README*.md", "README-secret.md"], "NOTES.md", True),
        (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    ],
)
def test_docker_documented_exceptions(patterns: list[str], path: str, expected: bool) -> None:
    assert excluded(patterns, path) is expected


def test_read_all_like_moby() -> None:
    text = (
        "\ufefftest1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
        "! /inverted/abs/path\n  spaced  \r\n ./x/../y\n  # not a comment\n"
    )
    assert read_patterns(text) == [
        "test1",
        "test2",
        "a/file/here",
        "lastfile",
        "!inverted/abs/path",
        "spaced",
        "y",
        "# not a comment",
    ]


def test_bad_patterns_name_the_file_and_pattern() -> None:
    for bad in ("[", "a[", "\\", "[z-a]"):
        with pytest.raises(BuildError) as info:
            IgnoreRules.parse(f"ok\n{bad}\n", "ctx/.dockerignore")
        message = str(info.value)
        assert message.startswith("ctx/.dockerignore: invalid pattern ")
        assert repr(bad) in message
        assert "\n" not in message
    with pytest.raises(BuildError, match='illegal exclusion pattern: "!"'):
        IgnoreRules.parse("!\n")


def test_can_skip_dir() -> None:
    rules = IgnoreRules.parse("node_modules\n!node_modules/keep/*.js\n")
    assert rules.excluded("node_modules")
    assert not rules.can_skip_dir("node_modules")
    assert not rules.can_skip_dir("node_modules/keep")
    assert rules.can_skip_dir("node_modules/other")
    assert not rules.excluded("node_modules/keep/a.js")
    assert rules.excluded("node_modules/keep/a.css")
    # Without exceptions every excluded directory may be skipped.
    assert IgnoreRules.parse("build\n").can_skip_dir("build")
    # An exception with ** could match anywhere below: never skip.
    assert not IgnoreRules.parse("vendor\n!**/LICENSE\n").can_skip_dir("vendor")
    # An exception that names only shallower paths cannot re-include anything below.
    assert IgnoreRules.parse("a\n!b\n").can_skip_dir("a")


def test_empty_rules_exclude_nothing() -> None:
    rules = IgnoreRules.parse("# nothing\n\n")
    assert not rules
    assert not rules.excluded("anything/at/all")
