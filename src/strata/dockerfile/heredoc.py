"""Heredoc words: which words of a RUN/COPY/ADD line open a here-document, and how.

BuildKit finds them by running its shell lexer over the line with quotes and escapes kept raw
and unset variables left alone, then matching each word against ``[fd]<<[-]WORD``. The delimiter
is lexed twice, with quotes removed and kept: if the two differ in quote count, part of it was
quoted and the body is not expanded. This module is that lexer, cut down to word splitting: it
never substitutes a variable (the shell-word expander in ``shell.py`` does that for the builder).
"""

from __future__ import annotations

import re

from strata.dockerfile.ast import Heredoc

# Go's unicode.IsSpace: ASCII and Latin-1 spaces plus the Unicode White_Space property
# (Python's str.isspace also counts \x1c-\x1f, which Go does not).
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE_SET = frozenset(GO_SPACE)

_HEREDOC_WORD = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_ESCAPE = "\\"


class HeredocError(Exception):
    """A heredoc delimiter word does not lex (an unterminated quote); the caller adds the place."""


class _Words:
    """Word accumulation of BuildKit's lexer: unquoted spaces split, raw text never does."""

    __slots__ = ("buf", "in_word", "words")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _GO_SPACE_SET:
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


class _Lexer:
    """Shell word splitting with every variable unset-and-kept (``SkipUnsetEnv``), escape ``\\``."""

    __slots__ = ("pos", "raw_escapes", "raw_quotes", "text")

    def __init__(self, text: str, *, raw_quotes: bool, raw_escapes: bool) -> None:
        self.text = text
        self.pos = 0
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    def words(self) -> list[str]:
        return self._stop_on("", self.raw_escapes)[1]

    def _stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            result: list[str] = []
            words = _Words()
            text = self.text
            while self.pos < len(text):
                ch = text[self.pos]
                if stop and ch == stop:
                    self.pos += 1
                    return "".join(result), words.result()
                if ch == "$":
                    tmp = self._dollar()
                    result.append(tmp)
                    words.add_string(tmp)
                    continue
                if ch in "<'\"":
                    if ch == "<":
                        tmp = self._possible_heredoc()
                    elif ch == "'":
                        tmp = self._single_quote()
                    else:
                        tmp = self._double_quote()
                    result.append(tmp)
                    words.add_raw(tmp)
                    continue
                self.pos += 1
                if ch == _ESCAPE:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise HeredocError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.result()
        finally:
            self.raw_escapes = saved

    def _single_quote(self) -> str:
        opening = self._next()
        out = [opening] if self.raw_quotes else []
        while True:
            ch = self._next()
            if not ch:
                raise HeredocError("unexpected end of statement looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        opening = self._next()
        out = [opening] if self.raw_quotes else []
        while True:
            ch = self._peek()
            if not ch:
                raise HeredocError("unexpected end of statement looking for matching double-quote")
            if ch == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == _ESCAPE:
                if self.raw_escapes:
                    out.append(ch)
                following = self._peek()
                if not following:
                    continue
                if following in '"$\\':
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        ch = self._peek()
        if ch and ch.isdecimal():
            while self._peek() and self._peek().isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        while True:
            ch = self._peek()
            if not ch or not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            self.pos += 1
        return self.text[start : self.pos]

    def _dollar(self) -> str:
        self.pos += 1
        if self._peek() != "{":
            return "$" + self._name()
        self.pos += 1
        ch = self._peek()
        if not ch:
            raise HeredocError("syntax error: missing '}'")
        if ch in "{}:":
            raise HeredocError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if ch == "}":
            return "${" + name + "}"
        modifier = ch
        null_is_unset = ch == ":"
        if null_is_unset:
            ch = self._next()
            modifier += ch
        if null_is_unset or (ch and ch in "+-?#%"):
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise HeredocError(f"unsupported modifier ({modifier}) in substitution")
            try:
                word, _ = self._stop_on("}", raw)
            except HeredocError:
                raise HeredocError("syntax error: missing '}'") from None
            return "${" + name + modifier + word + "}"
        if ch == "/":
            if self._peek() == "/":
                self.pos += 1
            pattern, _ = self._stop_on("/", True)
            replacement, _ = self._stop_on("}", True)
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        raise HeredocError(f"unsupported modifier ({modifier}) in substitution")

    def _possible_heredoc(self) -> str:
        self.pos += 1
        if self._peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self._peek() in ("\t", "\r", " "):
            self.pos += 1
        return "<<" + self.text[start : self.pos]


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc that ``word`` opens (``<<EOF``, ``<<-"EOF"``, ``3<<EOF``), or None.

    Raises `HeredocError` when the delimiter has an unterminated quote.
    """
    match = _HEREDOC_WORD.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    words = _Lexer(rest, raw_quotes=False, raw_escapes=False).words()
    if len(words) != 1:
        return None
    raw_words = _Lexer(rest, raw_quotes=True, raw_escapes=False).words()
    if len(raw_words) != 1:
        raise HeredocError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name, raw = words[0], raw_words[0]
    expand = name.count("'") + name.count('"') == raw.count("'") + raw.count('"')
    return Heredoc(name=name, expand=expand, chomp=match.group(2) == "-")


def heredocs_in_line(line: str) -> list[Heredoc]:
    """The heredocs opened on an instruction line, in order (empty bodies: the parser fills them).

    A line that does not lex (an unbalanced quote) opens none, as in BuildKit.
    """
    try:
        words = _Lexer(line, raw_quotes=True, raw_escapes=True).words()
    except HeredocError:
        return []
    docs = []
    for word in words:
        doc = parse_heredoc(word)
        if doc is not None:
            docs.append(doc)
    return docs
