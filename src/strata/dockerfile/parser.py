"""Dockerfile text to `Dockerfile` nodes, with BuildKit's parser rules.

Lines are joined on the escape character (``\\`` or, after ``# escape=```, a backtick); comment
lines inside a continuation are dropped; parser directives are read only from the top comment
block; each instruction's arguments are split by its own rule (JSON or shell form, name/value
pairs, whitespace words, ONBUILD's nested instruction, HEALTHCHECK's type); heredoc bodies
follow RUN, COPY and ADD lines. Unknown instructions are kept: `instructions` rejects them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from strata.dockerfile.arguments import ArgumentError, node_from_line
from strata.dockerfile.ast import Directive, Dockerfile, Heredoc, Node, ParseWarning
from strata.dockerfile.heredoc import GO_SPACE, HeredocError, heredocs_in_line
from strata.errors import DockerfileError

__all__ = ["parse"]

# Go's regexp \s is [\t\n\f\r ]; Python's would also take \v and Unicode spaces.
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})


class _Reason(Exception):
    """A parse failure without its place: the line loop adds the file and line."""


@dataclass(slots=True)
class _State:
    """What parsing carries from line to line: the escape character and the directives."""

    escape: str = "\\"
    continuation: re.Pattern[str] = field(default_factory=lambda: _continuation_regex("\\"))
    directives: list[Directive] = field(default_factory=list)
    directives_done: bool = False
    directive_line: int = 0

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise _Reason(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        self.continuation = _continuation_regex(token)

    def directive(self, line: str) -> None:
        """Feed one line to the directive reader, which stops at the first non-directive."""
        self.directive_line += 1
        if self.directives_done:
            return
        if not line.startswith("#"):
            self.directives_done = True
            return
        match = _DIRECTIVE.match(line[1:].lstrip(GO_SPACE))
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.directives_done = True
            return
        name = match.group(1).lower()
        if any(d.name == name for d in self.directives):
            raise _Reason(f"only one {name} parser directive can be used")
        value = match.group(2)
        if name == "escape":
            self.set_escape(value)
        self.directives.append(Directive(name, value, self.directive_line))


def _continuation_regex(token: str) -> re.Pattern[str]:
    # The escape character as the last non-blank one continues the line, unless it is itself
    # escaped; the second branch is a line holding nothing but the escape character.
    esc = re.escape(token)
    return re.compile(rf"([^{esc}]){esc}[ \t]*\Z|^{esc}[ \t]*\Z")


def _is_comment(line: str) -> bool:
    return line.lstrip(GO_SPACE).startswith("#")


def _process_line(state: _State, raw: str, strip_left: bool) -> str:
    token = raw.rstrip("\r\n")
    if strip_left:
        token = token.lstrip(GO_SPACE)
    state.directive(token)
    return "" if _is_comment(token) else token


def _trim_continuation(state: _State, line: str) -> tuple[str, bool]:
    """The line without its continuation character, and whether the instruction ends here."""
    match = state.continuation.search(line)
    if match is None:
        return line, True
    return line[: match.start()] + (match.group(1) or ""), False


def _split_lines(text: str) -> list[str]:
    # Line endings are kept: heredoc bodies are taken verbatim.
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text`` into its instruction nodes, as BuildKit's parser does.

    ``filename`` names the file in error messages (``Dockerfile:7: unterminated heredoc``).
    Raises `DockerfileError` on bad syntax and on a file with no instructions.
    """
    state = _State()
    lines = _split_lines(text)
    nodes: list[Node] = []
    warnings: list[ParseWarning] = []
    total = len(lines)
    index = 0
    current = 0
    while index < total:
        raw = lines[index]
        index += 1
        if current == 0:
            raw = raw.removeprefix("\ufeff")
        try:
            token = _process_line(state, raw, True)
        except _Reason as err:
            raise DockerfileError(f"{filename}:{current + 1}: {err}") from None
        current += 1
        start = current
        token, end_of_line = _trim_continuation(state, token)
        if end_of_line and not token:
            continue
        parts = [token]
        empty_continuation = False
        while not end_of_line and index < total:
            raw = lines[index]
            index += 1
            try:
                token = _process_line(state, raw, False)
            except _Reason as err:
                raise DockerfileError(f"{filename}:{current + 1}: {err}") from None
            current += 1
            if _is_comment(raw):
                continue
            if not token.lstrip(GO_SPACE):
                empty_continuation = True
                continue
            token, end_of_line = _trim_continuation(state, token)
            parts.append(token)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(ParseWarning(current, f"Empty continuation line found in: {line}"))
        try:
            node = node_from_line(line, state.escape)
            heredocs: list[Heredoc] = []
            if _can_contain_heredoc(node) and "<<" in line:
                for doc in heredocs_in_line(line):
                    body: list[str] = []
                    terminated = False
                    while index < total:
                        raw = lines[index]
                        index += 1
                        current += 1
                        candidate = raw.rstrip("\r\n")
                        if doc.chomp:
                            candidate = candidate.lstrip("\t")
                        if candidate == doc.name:
                            terminated = True
                            break
                        body.append(raw)
                    if not terminated:
                        raise _Reason(f"unterminated heredoc {doc.name}")
                    heredocs.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp))
        except (_Reason, ArgumentError, HeredocError) as err:
            raise DockerfileError(f"{filename}:{start}: {err}") from None
        nodes.append(_placed(node, start, current, tuple(heredocs)))
    if not nodes:
        if not text.strip(GO_SPACE):
            raise DockerfileError(f"{filename}: file is empty")
        raise DockerfileError(f"{filename}: file with no instructions")
    return Dockerfile(
        nodes=tuple(nodes),
        escape=state.escape,
        directives=tuple(state.directives),
        start_line=nodes[0].start_line,
        end_line=nodes[-1].end_line,
        warnings=tuple(warnings),
        filename=filename,
    )


def _placed(node: Node, start: int, end: int, heredocs: tuple[Heredoc, ...]) -> Node:
    # An ONBUILD trigger shares its parent's lines and heredocs (BuildKit keeps the bodies on
    # the ONBUILD node only; the trigger needs them when it runs).
    nested = node.nested
    if nested is not None:
        nested = _placed(nested, start, end, heredocs)
    return Node(
        value=node.value,
        original=node.original,
        flags=node.flags,
        args=node.args,
        json_form=node.json_form,
        start_line=start,
        end_line=end,
        heredocs=heredocs,
        nested=nested,
    )


def _can_contain_heredoc(node: Node) -> bool:
    if node.value == "onbuild" and node.nested is not None:
        node = node.nested
    return node.value in _HEREDOC_INSTRUCTIONS and not node.json_form
