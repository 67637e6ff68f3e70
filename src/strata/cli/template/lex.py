"""The lexer of Go's ``text/template``: the same items, trim markers and error texts as Go's.

Positions are offsets into the template string; errors quote Go's wording because Docker prints
them verbatim (``template: :1: unclosed action``) and users search for those words.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from strata.gofmt import go_quote


class Item(Enum):
    ERROR = auto()
    BOOL = auto()
    CHAR = auto()  # a printable ASCII character not otherwise used: ',' '@' ...
    CHAR_CONSTANT = auto()
    COMMENT = auto()
    ASSIGN = auto()
    DECLARE = auto()
    EOF = auto()
    FIELD = auto()
    IDENTIFIER = auto()
    LEFT_DELIM = auto()
    LEFT_PAREN = auto()
    NUMBER = auto()
    PIPE = auto()
    RAW_STRING = auto()
    RIGHT_DELIM = auto()
    RIGHT_PAREN = auto()
    SPACE = auto()
    STRING = auto()
    TEXT = auto()
    VARIABLE = auto()
    # keywords
    BLOCK = auto()
    BREAK = auto()
    CONTINUE = auto()
    DOT = auto()
    DEFINE = auto()
    ELSE = auto()
    END = auto()
    IF = auto()
    NIL = auto()
    RANGE = auto()
    TEMPLATE = auto()
    WITH = auto()


KEYWORDS = {
    ".": Item.DOT,
    "block": Item.BLOCK,
    "break": Item.BREAK,
    "continue": Item.CONTINUE,
    "define": Item.DEFINE,
    "else": Item.ELSE,
    "end": Item.END,
    "if": Item.IF,
    "range": Item.RANGE,
    "nil": Item.NIL,
    "template": Item.TEMPLATE,
    "with": Item.WITH,
}

_KEYWORD_ITEMS = frozenset(KEYWORDS.values())
LEFT, RIGHT = "{{", "}}"
SPACES = " \t\r\n"


@dataclass(frozen=True)
class Token:
    typ: Item
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        """As Go's ``item.String``, which parse errors quote (``unexpected <if> in input``)."""
        if self.typ is Item.EOF:
            return "EOF"
        if self.typ is Item.ERROR:
            return self.val
        if self.typ in _KEYWORD_ITEMS:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


class Lexer:
    """Turns a template into tokens, eagerly; the first error token ends the stream."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.paren_depth = 0
        self.tokens: list[Token] = []

    # -- helpers ------------------------------------------------------------------------------

    def _peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if ch:
            self.pos += 1
        return ch

    def _backup(self) -> None:
        self.pos -= 1

    def _line(self) -> int:
        return self.text.count("\n", 0, self.start) + 1

    def _emit(self, typ: Item) -> None:
        self.tokens.append(Token(typ, self.start, self.text[self.start : self.pos], self._line()))
        self._ignore()

    def _ignore(self) -> None:
        self.start = self.pos

    def _error(self, message: str) -> bool:
        self.tokens.append(Token(Item.ERROR, self.start, message, self._line()))
        return False

    def _at_right_delim(self) -> tuple[bool, bool]:
        rest = self.text[self.pos :]
        if len(rest) >= 2 and rest[0] in SPACES and rest[1] == "-" and rest[2:].startswith(RIGHT):
            return True, True
        return rest.startswith(RIGHT), False

    # -- states -------------------------------------------------------------------------------

    def run(self) -> list[Token]:
        inside = False
        while True:
            ok = self._inside_action() if inside else self._text()
            if not ok:
                return self.tokens
            last = self.tokens[-1].typ
            if last is Item.EOF:
                return self.tokens
            if last is Item.LEFT_DELIM:
                inside = True
            elif last in (Item.RIGHT_DELIM, Item.COMMENT):
                inside = False

    def _text(self) -> bool:
        """Text up to the next ``{{``, trimmed when that action starts with ``{{- ``."""
        found = self.text.find(LEFT, self.pos)
        if found < 0:
            self.pos = len(self.text)
            if self.pos > self.start:
                self._emit(Item.TEXT)
            self._emit(Item.EOF)
            return True
        self.pos = found
        after = self.text[found + 2 : found + 4]
        trim = len(after) == 2 and after[0] == "-" and after[1] in SPACES
        end = self.pos
        if trim:
            end = len(self.text[: self.pos].rstrip(SPACES))
        if end > self.start:
            self.pos = end
            self._emit(Item.TEXT)
        self.pos = found
        self._ignore()
        return self._left_delim(trim)

    def _left_delim(self, trim: bool) -> bool:
        self.pos += len(LEFT)
        after_marker = self.pos + (2 if trim else 0)
        if self.text.startswith("/*", after_marker):
            self.pos = after_marker
            self._ignore()
            return self._comment()
        self._emit(Item.LEFT_DELIM)
        self.pos = after_marker
        self._ignore()
        self.paren_depth = 0
        return True

    def _comment(self) -> bool:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            return self._error("unclosed comment")
        self.pos = end + 2
        delim, trim = self._at_right_delim()
        if not delim:
            return self._error("comment ends before closing delimiter")
        self._emit(Item.COMMENT)
        if trim:
            self.pos += 2
        self.pos += len(RIGHT)
        if trim:
            self.pos = len(self.text) - len(self.text[self.pos :].lstrip(SPACES))
        self._ignore()
        return True

    def _right_delim(self) -> bool:
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self._ignore()
        self.pos += len(RIGHT)
        self._emit(Item.RIGHT_DELIM)
        if trim:
            self.pos = len(self.text) - len(self.text[self.pos :].lstrip(SPACES))
            self._ignore()
        return True

    def _inside_action(self) -> bool:
        while True:
            delim, _ = self._at_right_delim()
            if delim:
                if self.paren_depth == 0:
                    return self._right_delim()
                return self._error("unclosed left paren")
            ch = self._next()
            if ch == "":
                return self._error("unclosed action")
            if ch in SPACES:
                self._backup()
                if not self._space():
                    return self._right_delim()
            elif ch == "=":
                self._emit(Item.ASSIGN)
            elif ch == ":":
                if self._next() != "=":
                    return self._error("expected :=")
                self._emit(Item.DECLARE)
            elif ch == "|":
                self._emit(Item.PIPE)
            elif ch == '"':
                if not self._quote():
                    return False
            elif ch == "`":
                if not self._raw_quote():
                    return False
            elif ch == "$":
                if not self._field_or_variable(Item.VARIABLE):
                    return False
            elif ch == "'":
                if not self._char():
                    return False
            elif ch == "." and not ("0" <= self._peek() <= "9" and self._peek() != ""):
                if not self._field_or_variable(Item.FIELD):
                    return False
            elif ch in "+-." or "0" <= ch <= "9":
                self._backup()
                if not self._number():
                    return False
            elif _is_alnum(ch):
                self._backup()
                if not self._identifier():
                    return False
            elif ch == "(":
                self.paren_depth += 1
                self._emit(Item.LEFT_PAREN)
            elif ch == ")":
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    return self._error("unexpected right paren")
                self._emit(Item.RIGHT_PAREN)
            elif ord(ch) < 0x80 and ch.isprintable():
                self._emit(Item.CHAR)
            else:
                return self._error(f"unrecognized character in action: {_rune(ch)}")

    def _space(self) -> bool:
        """A run of spaces; False when it is the one space of a `` -}}`` (then lex the delim)."""
        count = 0
        while self._peek() != "" and self._peek() in SPACES:
            self._next()
            count += 1
        rest = self.text[self.pos - 1 :]
        if len(rest) >= 2 and rest[1] == "-" and rest[2:].startswith(RIGHT):
            self._backup()
            if count == 1:
                return False
        self._emit(Item.SPACE)
        return True

    def _at_terminator(self) -> bool:
        ch = self._peek()
        if ch == "" or ch in SPACES or ch in ".,|:()":
            return True
        return self.text.startswith(RIGHT, self.pos)

    def _identifier(self) -> bool:
        while _is_alnum(self._peek()) and self._peek() != "":
            self._next()
        if not self._at_terminator():
            return self._error(f"bad character {_rune(self._peek())}")
        word = self.text[self.start : self.pos]
        if word in KEYWORDS and word != ".":
            self._emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self._emit(Item.BOOL)
        else:
            self._emit(Item.IDENTIFIER)
        return True

    def _field_or_variable(self, typ: Item) -> bool:
        if self._at_terminator():
            self._emit(Item.VARIABLE if typ is Item.VARIABLE else Item.DOT)
            return True
        while _is_alnum(self._peek()) and self._peek() != "":
            self._next()
        if not self._at_terminator():
            return self._error(f"bad character {_rune(self._peek())}")
        self._emit(typ)
        return True

    def _char(self) -> bool:
        while True:
            ch = self._next()
            if ch == "\\":
                if self._next() not in ("", "\n"):
                    continue
                return self._error("unterminated character constant")
            if ch in ("", "\n"):
                return self._error("unterminated character constant")
            if ch == "'":
                break
        self._emit(Item.CHAR_CONSTANT)
        return True

    def _quote(self) -> bool:
        while True:
            ch = self._next()
            if ch == "\\":
                if self._next() not in ("", "\n"):
                    continue
                return self._error("unterminated quoted string")
            if ch in ("", "\n"):
                return self._error("unterminated quoted string")
            if ch == '"':
                break
        self._emit(Item.STRING)
        return True

    def _raw_quote(self) -> bool:
        end = self.text.find("`", self.pos)
        if end < 0:
            return self._error("unterminated raw quoted string")
        self.pos = end + 1
        self._emit(Item.RAW_STRING)
        return True

    def _number(self) -> bool:
        if not self._scan_number():
            return self._error(f"bad number syntax: {go_quote(self.text[self.start : self.pos])}")
        # Complex: 1+2i. No spaces, must end in 'i'.
        if self._peek() in ("+", "-") and self._peek() != "":  # noqa: SIM102
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                return self._error(
                    f"bad number syntax: {go_quote(self.text[self.start : self.pos])}"
                )
        self._emit(Item.NUMBER)
        return True

    def _accept(self, valid: str) -> bool:
        if self._peek() != "" and self._peek() in valid:
            self._next()
            return True
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 10 + 1 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 16 + 6 + 1 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if _is_alnum(self._peek()) and self._peek() != "":
            self._next()
            return False
        return True


def _rune(ch: str) -> str:
    """Go's %#U: ``U+0040 '@'``."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


def line_and_column(text: str, pos: int) -> tuple[int, int]:
    """Go's ErrorContext: a 1-based line and the byte offset within it."""
    before = text[:pos]
    start = before.rfind("\n") + 1
    return before.count("\n") + 1, len(before[start:].encode())
