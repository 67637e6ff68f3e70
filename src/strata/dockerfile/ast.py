"""The Dockerfile syntax tree: one `Node` per instruction, as BuildKit's parser produces it.

Words are kept raw (quotes, escapes and ``$VAR`` untouched): expansion happens when the builder
runs the step, with the ARG and ENV values in force at that point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Heredoc:
    """A here-document attached to a RUN, COPY or ADD line (``<<EOF`` ... ``EOF``).

    ``content`` is the raw text between the opening line and the delimiter, line endings kept.
    ``expand`` is false when any part of the delimiter word was quoted (``<<"EOF"``, ``<<'EOF'``):
    the body is then taken literally. ``chomp`` is ``<<-``: leading tabs are stripped.
    """

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False

    @property
    def body(self) -> str:
        """The content as the instruction sees it: leading tabs removed when ``chomp``."""
        return _LEADING_TABS.sub("", self.content) if self.chomp else self.content


@dataclass(frozen=True, slots=True)
class Node:
    """One instruction: BuildKit's ``Node`` with its ``Next`` chain flattened into ``args``.

    ``value`` is the instruction keyword in lower case; ``original`` the instruction's text with
    continuations joined and comments dropped. ``flags`` are the raw ``--name=value`` words;
    ``json_form`` tells the exec (JSON array) form from the shell form. ``nested`` is the
    trigger of an ONBUILD. Lines are 1-based and inclusive, heredoc bodies included.
    """

    value: str
    original: str
    flags: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    json_form: bool = False
    start_line: int = 0
    end_line: int = 0
    heredocs: tuple[Heredoc, ...] = ()
    nested: Node | None = None

    @property
    def keyword(self) -> str:
        """The instruction word as written (``RUN``, ``run``, ``Run``), for messages."""
        words = self.original.split(None, 1)
        return words[0] if words else self.value


@dataclass(frozen=True, slots=True)
class Directive:
    """A parser directive from the top of the file: ``# syntax=``, ``# escape=``, ``# check=``."""

    name: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class ParseWarning:
    """Something BuildKit accepts but warns about (an empty line inside a continuation)."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions in order, the escape character and directives."""

    nodes: tuple[Node, ...]
    escape: str = "\\"
    directives: tuple[Directive, ...] = ()
    start_line: int = 0
    end_line: int = 0
    warnings: tuple[ParseWarning, ...] = ()
    filename: str = "Dockerfile"

    def directive(self, name: str) -> str | None:
        """The value of directive ``name`` (lower case), or None when the file has none."""
        for d in self.directives:
            if d.name == name:
                return d.value
        return None
