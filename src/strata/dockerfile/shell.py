"""Dockerfile shell-word expansion, as BuildKit's ``frontend/dockerfile/shell.Lex`` does it.

Handles ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``${VAR:+x}``, ``${VAR+x}``,
``${VAR:?msg}``, ``${VAR?msg}``, ``${VAR#pat}``, ``${VAR##pat}``, ``${VAR%pat}``,
``${VAR%%pat}``, ``${VAR/pat/repl}``, ``${VAR//pat/repl}``, single and double quotes and the
escape token of the ``# escape=`` directive; positional (``$1``) and special (``$@``, ``$#``...)
parameters are looked up like any name, so they expand to nothing in a Dockerfile.

Quirks kept on purpose, because BuildKit (and so Docker's builders) have them:

- Splitting into words (:meth:`ShellLex.process_words`) drops the part of a word written
  before a ``${VAR<op>...}`` operand: BuildKit shares one word buffer between the outer word
  and the operand (since v0.15), so ``a${X:-b}`` is the word ``b``.
- An empty quoted string (``''``) makes no word on its own.
- ``<<`` followed by blanks stays glued to the next word, so heredoc markers survive splitting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from strata.dockerfile.shell_pattern import replace, trim_prefix, trim_suffix
from strata.errors import DockerfileError
from strata.gofmt import go_quote

_EOF_RUNE = "\ufffd"  # what Go prints for the scanner's EOF rune
# Go's unicode.IsSpace; Python's str.isspace also counts \x1c-\x1f, which Go does not.
_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_HEREDOC_BLANK = frozenset(" \t\r")
_SPECIAL = "$<"
_SPECIAL_QUOTED = "$<'\""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Each nested ${VAR<op>...} costs a few Python frames; Go has no such limit, but no real
# Dockerfile comes near it and a hostile one must get an error, not a RecursionError.
_MAX_NESTING = 100
_NO_NAMES: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class WordExpansion:
    """An expanded word and the variables it referenced, split by whether ``env`` had them."""

    value: str
    matched: frozenset[str]
    unmatched: frozenset[str]

    @property
    def referenced(self) -> frozenset[str]:
        """Every name the word looked up, set or not."""
        return self.matched | self.unmatched


class ShellLex:
    """Expands variables and removes quotes in Dockerfile words. Stateless between calls.

    ``escape`` is the escape token (``\\`` or the backtick of ``# escape=```). The keyword
    options are BuildKit's ``Lex`` fields, used by the parser's heredoc detection:
    ``raw_quotes`` keeps quote characters in the result, ``raw_escapes`` keeps escape tokens,
    ``skip_process_quotes`` treats quotes as ordinary characters, ``skip_unset_env`` leaves a
    reference to an unset variable as written (``${X:-y}`` stays ``${X:-y}``).
    """

    __slots__ = ("_escape", "_plain", "_raw_escapes", "_raw_quotes", "_skip_quotes", "_skip_unset")

    def __init__(
        self,
        escape: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape) != 1:
            raise DockerfileError(f"invalid escape token {escape!r}: must be one character")
        self._escape = escape
        self._raw_quotes = raw_quotes
        self._raw_escapes = raw_escapes
        self._skip_quotes = skip_process_quotes
        self._skip_unset = skip_unset_env
        # Characters that make a word need the scanner when only the expanded string is wanted
        # ("<" is absent: it only changes how words split, never the string).
        self._plain = ("$", escape) if skip_process_quotes else ("$", escape, "'", '"')

    @property
    def escape(self) -> str:
        """The escape token."""
        return self._escape

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word`` into one string: variables substituted, quotes and escapes removed."""
        if self._is_plain(word):
            return word
        return self._run(word, env, False)[0].value

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split it at unquoted whitespace, as BuildKit's ``ProcessWords``.

        Whitespace from a variable's value splits too (``$X`` with ``X="a b"`` gives two words);
        quoted text stays in one word; a word that ends up empty is dropped.
        """
        return self._run(word, env, True)[1]

    def process_word_with_matches(
        self, word: str, env: Mapping[str, str]
    ) -> tuple[str, frozenset[str]]:
        """Expand ``word``; also return the names of every variable it referenced, set or not."""
        if self._is_plain(word):
            return word, _NO_NAMES
        result = self._run(word, env, False)[0]
        return result.value, result.referenced

    def process_word_result(self, word: str, env: Mapping[str, str]) -> WordExpansion:
        """Expand ``word``, keeping the referenced names split into matched and unmatched."""
        if self._is_plain(word):
            return WordExpansion(word, _NO_NAMES, _NO_NAMES)
        return self._run(word, env, False)[0]

    def _is_plain(self, word: str) -> bool:
        for c in self._plain:
            if c in word:
                return False
        return not word.startswith("\ufeff")

    def _run(
        self, word: str, env: Mapping[str, str], want_words: bool
    ) -> tuple[WordExpansion, list[str]]:
        scan = _Scanner(self, word, env, want_words)
        try:
            value, words = scan.stop_on("", self._raw_escapes)
        except DockerfileError as err:
            reason = f"failed to process {go_quote(word)}: {err}"
            raise DockerfileError(reason.replace("\r", "\\r").replace("\n", "\\n")) from None
        expansion = WordExpansion(value, frozenset(scan.matched), frozenset(scan.unmatched))
        return expansion, words


class _Scanner:
    """One expansion in progress: BuildKit's ``shellWord``, a cursor over the source word."""

    __slots__ = (
        "buf",
        "depth",
        "end",
        "env",
        "esc",
        "matched",
        "pos",
        "raw_quotes",
        "skip_quotes",
        "skip_unset",
        "src",
        "unmatched",
        "want_words",
    )

    def __init__(self, lex: ShellLex, src: str, env: Mapping[str, str], want_words: bool) -> None:
        self.src = src
        # Go's text/scanner skips a byte order mark at the start of its input.
        self.pos = 1 if src.startswith("\ufeff") else 0
        self.end = len(src)
        self.env = env
        self.esc = lex._escape
        self.raw_quotes = lex._raw_quotes
        self.skip_quotes = lex._skip_quotes
        self.skip_unset = lex._skip_unset
        self.want_words = want_words
        self.buf: list[str] = []  # the word being built, shared by every nesting level
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.depth = 0

    def stop_on(self, stop: str, raw: bool) -> tuple[str, list[str]]:
        """Scan to ``stop`` (consumed; "" means the end): the expanded text and its words."""
        src, end, esc = self.src, self.end, self.esc
        want_words = self.want_words
        buf = self.buf
        buf.clear()  # on purpose, even when nested: BuildKit's shared buffer (module docstring)
        words: list[str] = []
        in_word = False
        out: list[str] = []
        quotes = not self.skip_quotes
        # Characters that end a run of literal text when only the string is wanted.
        special = (_SPECIAL_QUOTED if quotes else _SPECIAL) + esc + stop
        while self.pos < end:
            ch = src[self.pos]
            if ch == stop:
                self.pos += 1
                if buf:
                    words.append("".join(buf))
                    buf.clear()
                return "".join(out), words
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                if want_words:
                    for c in tmp:
                        if c in _SPACE:
                            if in_word and buf:
                                words.append("".join(buf))
                                buf.clear()
                                in_word = False
                        else:
                            buf.append(c)
                            in_word = True
                continue
            if ch == "<":
                tmp = self.heredoc_marker()
            elif quotes and ch == "'":
                tmp = self.single_quote()
            elif quotes and ch == '"':
                tmp = self.double_quote(raw)
            else:
                self.pos += 1
                if ch == esc:
                    if raw:
                        out.append(ch)
                        buf.append(ch)
                        in_word = True
                    if self.pos >= end:
                        break  # a trailing escape token is dropped
                    ch = src[self.pos]
                    self.pos += 1
                    buf.append(ch)
                    in_word = True
                elif not want_words:
                    # Copy the whole literal run: most of a word is plain text.
                    run_end = self.pos
                    while run_end < end and src[run_end] not in special:
                        run_end += 1
                    out.append(src[self.pos - 1 : run_end])
                    self.pos = run_end
                    continue
                elif ch in _SPACE:
                    if in_word and buf:
                        words.append("".join(buf))
                        buf.clear()
                        in_word = False
                else:
                    buf.append(ch)
                    in_word = True
                out.append(ch)
                continue
            out.append(tmp)
            if tmp:  # an empty '' marks a word begun but adds no text, so it makes no word
                buf.append(tmp)  # quoted text and heredoc markers never split
            in_word = True
        if stop:
            raise DockerfileError(f"unexpected end of statement while looking for matching {stop}")
        if buf:
            words.append("".join(buf))
            buf.clear()
        return "".join(out), words

    def single_quote(self) -> str:
        """Everything up to the next ``'`` as is; nothing escapes inside single quotes."""
        start = self.pos
        close = self.src.find("'", start + 1)
        if close < 0:
            self.pos = self.end
            raise DockerfileError(
                "unexpected end of statement while looking for matching single-quote"
            )
        self.pos = close + 1
        return self.src[start : close + 1] if self.raw_quotes else self.src[start + 1 : close]

    def double_quote(self, raw: bool) -> str:
        """Up to the next ``"``: ``$`` expands; only ``"``, ``$`` and the escape token escape."""
        src, end, esc = self.src, self.end, self.esc
        self.pos += 1
        out = ['"'] if self.raw_quotes else []
        while True:
            if self.pos >= end:
                raise DockerfileError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            ch = src[self.pos]
            if ch == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == esc:
                if raw:
                    out.append(ch)
                if self.pos >= end:
                    continue
                nxt = src[self.pos]
                if nxt in ('"', "$", esc):
                    ch = nxt
                    self.pos += 1
            out.append(ch)

    def heredoc_marker(self) -> str:
        """``<`` or ``<<`` with the blanks after it, kept whole so word splitting leaves it."""
        src, end = self.src, self.end
        self.pos += 1
        if self.pos >= end or src[self.pos] != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self.pos < end and src[self.pos] in _HEREDOC_BLANK:
            self.pos += 1
        return "<<" + src[start : self.pos]

    def name(self) -> str:
        """A variable name: letters, digits, ``_``; or all digits; or one special parameter."""
        src, end = self.src, self.end
        start = pos = self.pos
        if pos >= end:
            return ""
        ch = src[pos]
        if ch.isdecimal():
            pos += 1
            while pos < end and src[pos].isdecimal():
                pos += 1
        elif ch in _SPECIAL_PARAMS:
            pos += 1
        else:
            while pos < end and ((c := src[pos]).isalpha() or c.isdecimal() or c == "_"):
                pos += 1
        self.pos = pos
        return src[start:pos]

    def lookup(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
        else:
            self.matched.add(name)
        return value

    def operand(self, stop: str, raw: bool, missing: str) -> str:
        """The text after a ``${VAR<op>`` up to ``stop``, expanded in turn."""
        self.depth += 1
        if self.depth > _MAX_NESTING:
            raise DockerfileError(f"syntax error: more than {_MAX_NESTING} nested substitutions")
        try:
            return self.stop_on(stop, raw)[0]
        except DockerfileError:
            if self.pos >= self.end:
                raise DockerfileError(missing) from None
            raise
        finally:
            self.depth -= 1

    def dollar(self) -> str:
        """Expand the ``$...`` reference at the cursor."""
        src, end = self.src, self.end
        self.pos += 1
        if self.pos >= end or src[self.pos] != "{":
            name = self.name()
            if not name:
                return "$"
            value = self.lookup(name)
            if value is None:
                return "$" + name if self.skip_unset else ""
            return value

        self.pos += 1
        if self.pos >= end:
            raise DockerfileError("syntax error: missing '}'")
        if src[self.pos] in "{}:":
            raise DockerfileError("syntax error: bad substitution")
        name = self.name()
        if self.pos >= end:
            # BuildKit says "unsupported modifier (\ufffd) in substitution" here.
            raise DockerfileError("syntax error: missing '}'")
        op = src[self.pos]
        self.pos += 1
        if op == "}":
            value = self.lookup(name)
            if value is None:
                return "${" + name + "}" if self.skip_unset else ""
            return value
        if op == "/":
            return self.substitute(name)

        mod = op
        null_is_unset = op == ":"
        if null_is_unset:
            op = src[self.pos] if self.pos < end else ""
            self.pos += 1 if op else 0
            mod += op or _EOF_RUNE
        elif op not in "+-?#%":
            raise DockerfileError(f"unsupported modifier ({mod}) in substitution")
        trim = op in ("#", "%")
        if null_is_unset and trim:
            raise DockerfileError(f"unsupported modifier ({mod}) in substitution")
        word = self.operand("}", trim, "syntax error: missing '}'")

        value = self.lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + mod + word + "}"
        unset = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if unset else (value or "")
        if op == "+":
            return "" if unset else word
        if op == "?":
            if value is None:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise DockerfileError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if trim:
            # "##" and "%%" take the longest match; BuildKit tests the expanded operand.
            greedy = word[:1] == op
            if greedy:
                word = word[1:]
            if op == "%":
                return trim_suffix(word, value or "", greedy)
            return trim_prefix(word, value or "", greedy)
        raise DockerfileError(f"unsupported modifier ({mod}) in substitution")

    def substitute(self, name: str) -> str:
        """``${VAR/pat/repl}`` and ``${VAR//pat/repl}``, the cursor just after the first ``/``."""
        replace_all = self.pos < self.end and self.src[self.pos] == "/"
        if replace_all:
            self.pos += 1
        pattern = self.operand("/", True, "syntax error: missing '/' in ${}")
        replacement = self.operand("}", True, "syntax error: missing '}'")
        value = self.lookup(name)
        if value is None and self.skip_unset:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        return replace(pattern, value or "", replacement, replace_all)
