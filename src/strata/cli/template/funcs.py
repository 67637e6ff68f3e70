"""The functions a Docker template can call: Go's builtins and docker/cli's ``templates.go``.

Each has Go's signature (parameter types decide how arguments are checked, and Go's messages
name them), so ``{{upper 3}}`` fails as Docker fails: ``expected string; found 3``.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from strata.cli.template.gofmt import (
    GoDuration,
    GoMap,
    GoNil,
    GoSlice,
    GoStruct,
    GoTime,
    JsonNumber,
    RowContext,
    go_float,
    sprint,
    sprintf,
    sprintln,
    type_name,
)


class CallError(Exception):
    """A function failed; the executor reports ``error calling NAME: <this>``."""


@dataclass(frozen=True)
class Func:
    """A function's Go signature: fixed parameter types, the variadic element type if any."""

    impl: Callable[..., Any]
    params: tuple[str, ...]
    variadic: str | None = None


def is_true(value: Any) -> bool:
    """Go's truth: the zero value of its type is false; structs are always true."""
    if value is None or isinstance(value, GoNil):
        return False
    if isinstance(value, GoStruct | GoTime):
        return True
    if isinstance(value, bool | int | float):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping | bytes):
        return len(value) > 0
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(arg1: Any, *others: Any) -> bool:
    if not others:
        raise CallError("missing argument for comparison")
    k1 = _kind(arg1)
    for arg in others:
        k2 = _kind(arg)
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise CallError("incompatible types for comparison")
            continue
        if k1 == "other":
            for value in (arg1, arg):
                if isinstance(value, list | tuple | Mapping):
                    raise CallError(f"non-comparable type {_sprint1(value)}: {type_name(value)}")
        if arg1 == arg:
            return True
    return False


def _sprint1(value: Any) -> str:
    return sprint([value])


def _lt(arg1: Any, arg2: Any) -> bool:
    k1, k2 = _kind(arg1), _kind(arg2)
    if k1 in ("bool", "other", "invalid") or k2 in ("bool", "other", "invalid"):
        raise CallError("invalid type for comparison")
    if k1 != k2:
        raise CallError("incompatible types for comparison")
    return bool(arg1 < arg2)


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


def _not(arg: Any) -> bool:
    return not is_true(arg)


def _len(item: Any) -> int:
    if item is None:
        raise CallError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, GoNil):
        if item.kind == "ptr":
            raise CallError("len of nil pointer")
        return 0
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | bytes) or (
        isinstance(item, Mapping) and not isinstance(item, GoStruct)
    ):
        return len(item)
    raise CallError(f"len of type {type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if isinstance(index, bool) or not isinstance(index, int):
        raise CallError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise CallError(f"index out of range: {index}")
    return int(index)


def _index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise CallError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise CallError("index of untyped nil")
        if isinstance(item, GoNil):
            if item.kind == "ptr":
                raise CallError("index of nil pointer")
            if item.kind == "slice":
                raise CallError(f"index out of range: {index}")
            item = item.zero
            continue
        if isinstance(item, GoMap):
            item = item.get(index, item.zero) if isinstance(index, str) else item.zero
            continue
        if isinstance(item, str):
            data = item.encode()
            at = _index_arg(index, len(data))
            if at == len(data):
                raise CallError(f"index out of range: {at}")
            item = data[at]
        elif isinstance(item, list | tuple):
            at = _index_arg(index, len(item))
            if at == len(item):
                raise CallError(f"index out of range: {at}")
            item = item[at]
        elif isinstance(item, Mapping) and not isinstance(item, GoStruct):
            if index is None:
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise CallError(f"value has type {type_name(index)}; should be string")
            item = item.get(index)
        else:
            raise CallError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise CallError("cannot 3-index slice a string")
        data = item.encode()
    elif isinstance(item, list | tuple):
        data = item  # type: ignore[assignment]
    else:
        raise CallError(f"can't slice item of type {type_name(item)}")
    bounds = [0, len(data)]
    for i, index in enumerate(indexes[:2]):
        bounds[i] = _index_arg(index, len(data))
    if len(indexes) == 3:
        _index_arg(indexes[2], len(data))
    if bounds[0] > bounds[1]:
        raise CallError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    part = data[bounds[0] : bounds[1]]
    if isinstance(part, bytes):
        return part.decode(errors="replace")
    return list(part)


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None else a for a in args])


def _html(*args: Any) -> str:
    text = _eval_args(args)
    for old, new in (
        ("&", "&amp;"),
        ("'", "&#39;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&#34;"),
        ("\0", "\ufffd"),
    ):
        text = text.replace(old, new)
    return text


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026"}
_JS["="] = "\\u003D"


def _js(*args: Any) -> str:
    out = []
    for ch in _eval_args(args):
        if ch in _JS:
            out.append(_JS[ch])
        elif ord(ch) < 0x20 or (not ch.isprintable() and ch != " "):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="-_.~")


def _print(*args: Any) -> str:
    return sprint(list(args))


def _printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, list(args))


def _println(*args: Any) -> str:
    return sprintln(list(args))


# -- docker/cli templates.go ----------------------------------------------------------------


def to_json(value: Any) -> str:
    """encoding/json without HTML escaping, as Docker's ``json`` writes (one line)."""
    if value is None or isinstance(value, GoNil):
        return "null"
    if isinstance(value, GoTime):
        return _json_string(value.rfc3339)
    if isinstance(value, JsonNumber):
        return str.__str__(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        size = abs(value)
        if size != 0 and (size < 1e-6 or size >= 1e21):
            return re.sub(r"e-0(\d)$", r"e-\1", go_float(value, "e"))
        return go_float(value, "f")
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, bytes):
        return _json_string(base64.b64encode(value).decode())
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, RowContext):
        text = to_json(dict(value.fields))
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(char, escaped)
        return text
    if isinstance(value, GoStruct):
        parts = []
        for name, field in value.items():
            key, omitempty = value.json_tags.get(name, (name, False))
            if omitempty and _empty(field):
                continue
            parts.append(f"{_json_string(key)}:{to_json(field)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, GoMap):
        pairs = sorted(value.items())
        return "{" + ",".join(f"{_json_string(str(k))}:{to_json(v)}" for k, v in pairs) + "}"
    if isinstance(value, Mapping):
        items = value.items()
        return "{" + ",".join(f"{_json_string(str(k))}:{to_json(v)}" for k, v in items) + "}"
    return _json_string(str(value))


def _empty(value: Any) -> bool:
    """encoding/json's omitempty: false, 0, "", nil, and empty slices and maps (never structs)."""
    if value is None or isinstance(value, GoNil):
        return True
    if isinstance(value, GoStruct | GoTime):
        return False
    if isinstance(value, bool | int | float | GoDuration):
        return value == 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


def _json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif code < 0x20 or ch in "\u2028\u2029":
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _split(text: str, sep: str) -> GoSlice:
    return GoSlice(list(text) if sep == "" else text.split(sep))


def _join(elems: Any, sep: str) -> str:
    return sep.join(elems or [])


def _is_separator(ch: str) -> bool:
    if ord(ch) <= 0x7F:
        return not (ch.isascii() and (ch.isalnum() or ch == "_"))
    if ch.isalpha() or unicodedata.category(ch) == "Nd":
        return False
    return ch.isspace()


def _title(text: str) -> str:
    out = []
    prev = " "
    for ch in text:
        out.append(_one_rune(ch.title()) if _is_separator(prev) else ch)
        prev = ch
    return "".join(out)


def _one_rune(mapped: str, original: str | None = None) -> str:
    return mapped if len(mapped) == 1 else (original or mapped[:1])


def _lower(text: str) -> str:
    return "".join(_one_rune(c.lower(), c) for c in text)


def _upper(text: str) -> str:
    return "".join(_one_rune(c.upper(), c) for c in text)


def _pad(source: str, prefix: int, suffix: int) -> str:
    if source == "":
        return source
    return " " * prefix + source + " " * suffix


def _truncate(source: str, length: int) -> str:
    data = source.encode()
    if len(data) < length:
        return source
    if length < 0:
        raise CallError(f"runtime error: slice bounds out of range [:{length}]")
    return data[:length].decode(errors="replace")


def _identity(value: str, *_: Any) -> str:
    return value


V, A, S, N = "value", "any", "string", "int"

FUNCS: dict[str, Func] = {
    "and": Func(lambda *a: a[-1], (V,), V),
    "or": Func(lambda *a: a[-1], (V,), V),
    "not": Func(_not, (V,)),
    "len": Func(_len, (V,)),
    "index": Func(_index, (V,), V),
    "slice": Func(_slice, (V,), V),
    "eq": Func(_eq, (V,), V),
    "ne": Func(_ne, (V, V)),
    "lt": Func(_lt, (V, V)),
    "le": Func(_le, (V, V)),
    "gt": Func(_gt, (V, V)),
    "ge": Func(_ge, (V, V)),
    "html": Func(_html, (), A),
    "js": Func(_js, (), A),
    "urlquery": Func(_urlquery, (), A),
    "print": Func(_print, (), A),
    "printf": Func(_printf, (S,), A),
    "println": Func(_println, (), A),
    "json": Func(to_json, (A,)),
    "split": Func(_split, (S, S)),
    "join": Func(_join, ("[]string", S)),
    "title": Func(_title, (S,)),
    "lower": Func(_lower, (S,)),
    "upper": Func(_upper, (S,)),
    "pad": Func(_pad, (S, N, N)),
    "truncate": Func(_truncate, (S, N)),
}

# Docker renders a table's header with these in place of the formatting ones, so the header
# reads ``REPOSITORY`` where a row reads ``upper .Repository``; ``pad`` keeps its effect.
HEADER_FUNCS: dict[str, Func] = {
    **FUNCS,
    "json": Func(_identity, (S,)),
    "split": Func(_identity, (S, S)),
    "join": Func(_identity, (S, S)),
    "title": Func(_identity, (S,)),
    "lower": Func(_identity, (S,)),
    "upper": Func(_identity, (S,)),
    "truncate": Func(_identity, (S, N)),
}
