"""Per-instruction argument rules (BuildKit's ``line_parsers.go``): one joined line to a `Node`.

The instruction word and its leading ``--flags`` are split off, then the rest is read by the
instruction's own rule: JSON array or shell string (RUN, CMD, ENTRYPOINT, SHELL), JSON array or
whitespace words (COPY, ADD, VOLUME), name/value pairs (ENV, LABEL), quoted words (ARG), one
string (USER, WORKDIR, ...), a type plus a command (HEALTHCHECK), a nested line (ONBUILD).
"""

from __future__ import annotations

import json
import re

from strata.dockerfile.ast import Node
from strata.dockerfile.heredoc import GO_SPACE
from strata.gofmt import go_quote

__all__ = ["ArgumentError", "node_from_line"]

WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


class ArgumentError(Exception):
    """An instruction's arguments do not parse; the parser adds the file and line."""


def node_from_line(line: str, escape: str) -> Node:
    """The node of one instruction line (continuations joined, comments dropped)."""
    keyword, flags, rest = _split_command(line, escape)
    value = keyword.lower()
    nested: Node | None = None
    json_form = False
    if value in ("cmd", "entrypoint", "run", "shell"):
        args, json_form = _maybe_json(rest)
    elif value in ("add", "copy", "volume"):
        args, json_form = _maybe_json_to_list(rest)
    elif value in ("expose", "from"):
        args = _whitespace_words(rest)
    elif value in ("maintainer", "stopsignal", "user", "workdir"):
        args = (rest,) if rest else ()
    elif value in ("env", "label"):
        args = _name_values(rest, value.upper(), escape)
    elif value == "arg":
        args = tuple(_words(rest, escape))
    elif value == "healthcheck":
        args, json_form = _health_config(rest)
    elif value == "onbuild":
        args = ()
        nested = node_from_line(rest, escape) if rest else None
    else:
        # BuildKit keeps an unknown instruction with one empty argument; `instructions`
        # refuses it with a suggestion.
        args = ("",)
    return Node(
        value=value,
        original=line,
        flags=tuple(flags),
        args=args,
        json_form=json_form,
        nested=nested,
    )


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """The instruction word, its ``--flags`` and the rest of the line."""
    parts = WHITESPACE.split(line.strip(GO_SPACE), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip(GO_SPACE)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--word`` arguments (quotes removed, ``--`` ends them) and what follows them."""
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    pos = 0
    size = len(line)
    while pos < size:
        ch = line[pos]
        if not in_word:
            if ch in GO_SPACE:
                pos += 1
                continue
            if ch != "-" or pos + 1 == size or line[pos + 1] != "-":
                return line[pos:], words
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            else:
                if ch == escape:
                    if pos + 1 == size:
                        quote = ""
                        pos += 1
                        continue
                    pos += 1
                    ch = line[pos]
                buf.append(ch)
            pos += 1
            continue
        if ch in GO_SPACE:
            word = "".join(buf)
            if word == "--":
                return line[pos:], words
            if blank_ok or word:
                words.append(word)
            buf.clear()
            blank_ok = False
            in_word = False
            pos += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == size:
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        buf.append(ch)
        pos += 1
    if in_word:
        word = "".join(buf)
        if word != "--" and (blank_ok or word):
            words.append(word)
    return "", words


def _words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words with quotes and escapes kept, BuildKit's ``parseWords``."""
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    quote = ""
    blank_ok = False
    pos = 0
    size = len(rest)
    while pos < size:
        ch = rest[pos]
        if not in_word:
            if ch in GO_SPACE:
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == size:
                    quote = ""
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if ch in GO_SPACE:
            if blank_ok or buf:
                words.append("".join(buf))
            buf.clear()
            blank_ok = False
            in_word = False
            pos += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if pos + 1 == size:
                pos += 1
                continue
            buf.append(ch)
            pos += 1
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


def _name_values(rest: str, keyword: str, escape: str) -> tuple[str, ...]:
    """ENV and LABEL: (name, value, separator) triples; separator "" marks ``ENV name value``."""
    words = _words(rest, escape)
    if not words:
        return ()
    if "=" not in words[0]:
        parts = WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ArgumentError(f"{keyword} must have two arguments")
        return (parts[0], parts[1], "")
    out: list[str] = []
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise ArgumentError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        out += (name, value, "=")
    return tuple(out)


def _whitespace_words(rest: str) -> tuple[str, ...]:
    return tuple(WHITESPACE.split(rest)) if rest else ()


class _NotStringArray(ArgumentError):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def _go_number(text: str) -> float:
    # Go decodes JSON numbers into float64 and fails on overflow.
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return number


def _json_array(rest: str) -> tuple[str, ...] | None:
    """The strings of a JSON array, or None when ``rest`` is not a valid JSON array."""
    rest = rest.lstrip(GO_SPACE)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(
            rest, parse_constant=_reject_constant, parse_float=_go_number, parse_int=_go_number
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _NotStringArray(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    # Go's decoder turns unpaired surrogates into U+FFFD.
    return tuple(_SURROGATE.sub("\ufffd", item) for item in value)


def _maybe_json(rest: str) -> tuple[tuple[str, ...], bool]:
    if not rest:
        return (), False
    array = _json_array(rest)
    if array is not None:
        return array, True
    return (rest,), False


def _maybe_json_to_list(rest: str) -> tuple[tuple[str, ...], bool]:
    array = _json_array(rest)
    if array is not None:
        return array, True
    return _whitespace_words(rest), False


def _health_config(rest: str) -> tuple[tuple[str, ...], bool]:
    sep = 0
    while sep < len(rest) and rest[sep] not in GO_SPACE:
        sep += 1
    if sep == 0:
        return (), False
    following = sep
    while following < len(rest) and rest[following] in GO_SPACE:
        following += 1
    command, json_form = _maybe_json(rest[following:])
    return (rest[:sep], *command), json_form
