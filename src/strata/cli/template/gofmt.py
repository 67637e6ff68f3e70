"""Go's ``fmt`` for the values a template sees: how ``{{.X}}``, ``print`` and ``printf`` write them.

Values are Python's JSON shapes standing for Go's: ``str`` string, ``bool``, ``int``, ``float``
float64, ``list`` ``[]interface {}``, ``dict`` ``map[string]interface {}``, ``None`` nil, and
:class:`GoStruct` for the typed contexts of Docker's list commands.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from strata.gofmt import go_duration, go_quote


class GoStruct(Mapping[str, Any]):
    """A Go struct: fixed fields, and a missing one is an error naming the type (as Docker's
    ``*formatter.imageContext``), never ``<no value>``. ``json_tags`` give each field's JSON
    key and ``omitempty``; ``groups`` number the embedded struct each field came from."""

    def __init__(
        self,
        type_name: str,
        fields: Mapping[str, Any],
        *,
        json_tags: Mapping[str, tuple[str, bool]] | None = None,
        groups: list[int] | None = None,
        pointer: bool = False,
    ) -> None:
        # Reached through a pointer: fmt's print functions show it as &{…}, where the
        # template's own printing (which dereferences first) shows {…}.
        self.pointer = pointer
        self.type_name = type_name
        self.fields = dict(fields)
        self.json_tags = dict(json_tags or {})
        self.groups = groups or [-1] * len(self.fields)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


class RowContext(GoStruct):
    """A row of a list command (Docker's ``*formatter.imageContext`` …): its ``MarshalJSON``
    is ``json.Marshal`` of a map, so ``{{json .}}`` has sorted keys and ``<>&`` escaped."""

    def __init__(self, type_name: str, fields: Mapping[str, Any]) -> None:
        super().__init__(type_name, dict(sorted(fields.items())))


class GoInt64(int):
    """An int64 field of a typed struct (a size): ``%T`` says int64, and Go will not pass it
    where an int is wanted."""


class JsonNumber(str):
    """A number of the raw JSON pass: docker/cli decodes with UseNumber, so it is Go's
    json.Number, a string that prints as the number's text."""


class GoSlice(list[Any]):
    """A typed Go slice (``[]string``): what ``join`` takes, where raw JSON's ``[]interface {}``
    is refused, as Go refuses it."""

    def __init__(self, items: Any, type_name: str = "[]string") -> None:
        super().__init__(items)
        self.type_name = type_name


class GoMap(dict[str, Any]):
    """A typed Go map: a key it lacks reads as its element type's zero value in ``index``."""

    def __init__(self, items: Mapping[str, Any], zero: Any) -> None:
        super().__init__(items)
        self.zero = zero


class GoNil:
    """A typed nil: a nil slice prints ``[]``, a nil map ``map[]``, a nil pointer ``<nil>``."""

    def __init__(self, kind: str, type_name: str, zero: Any = None) -> None:
        self.kind = kind
        self.type_name = type_name
        self.zero = zero

    def __str__(self) -> str:
        return {"slice": "[]", "map": "map[]"}.get(self.kind, "<nil>")


class GoTime:
    """A time.Time from its RFC 3339 text; prints as Go's ``Time.String``."""

    def __init__(self, rfc3339: str) -> None:
        self.rfc3339 = rfc3339 or "0001-01-01T00:00:00Z"

    def __str__(self) -> str:
        match = re.fullmatch(
            r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", self.rfc3339
        )
        if match is None:
            return self.rfc3339
        day, clock, fraction, zone = match.groups()
        fraction = (fraction or "").rstrip("0")
        stamp = f"{day} {clock}" + (f".{fraction}" if fraction else "")
        if zone == "Z":
            return f"{stamp} +0000 UTC"
        offset = zone.replace(":", "")
        return f"{stamp} {offset} {offset}"


class GoDuration(int):
    """A time.Duration (nanoseconds); prints as Go's ``Duration.String`` (``1m30s``)."""

    def __str__(self) -> str:
        return go_duration(int(self))


def type_name(value: Any) -> str:
    """The Go type a value stands for, as error messages name it."""
    if value is None:
        return "<nil>"
    if isinstance(value, GoStruct | GoNil | GoSlice):
        return value.type_name
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, GoDuration):
        return "time.Duration"
    if isinstance(value, GoMap):
        return "map[string]string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, GoInt64):
        return "int64"
    if isinstance(value, JsonNumber):
        return "json.Number"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "uint8"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    return type(value).__name__


def sort_key(key: Any) -> Any:
    """fmtsort's order: numbers by value, strings by bytes."""
    if isinstance(key, str):
        return (1, key.encode())
    return (0, key)


def go_float(value: float, verb: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat for %v/%g (shortest), %e and %f."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if verb in "eE" and prec >= 0:
        return _exp(f"{value:.{prec}e}", verb)
    if verb in "fF" and prec >= 0:
        return f"{value:.{prec}f}"
    if verb in "gG" and prec >= 0:
        text = f"{value:.{max(prec, 1)}g}"
        return _exp(text, "e" if verb == "g" else "E")
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    numerals = "".join(map(str, digits)).rstrip("0") or "0"
    exponent += len(digits) - len(numerals)
    point = len(numerals) + exponent  # position of the decimal point
    if numerals == "0":
        point = 1
    neg = "-" if sign else ""
    x = point - 1
    if verb in "eE" or (verb in "gGv" and (x < -4 or x >= (prec if prec > 0 else 6))):
        mantissa = numerals[0] + ("." + numerals[1:] if len(numerals) > 1 else "")
        return f"{neg}{mantissa}{'E' if verb in 'EG' else 'e'}{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{numerals}"
    if point >= len(numerals):
        return f"{neg}{numerals}{'0' * (point - len(numerals))}"
    return f"{neg}{numerals[:point]}.{numerals[point:]}"


def _exp(text: str, verb: str) -> str:
    text = re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", text)
    return text.upper() if verb.isupper() else text


def sprint_value(value: Any, verb: str = "v", top: bool = True) -> str:
    """``%v`` of one value: ``[a b]``, ``map[k:v]``, ``<nil>`` for nil inside them."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, GoNil | GoTime | GoDuration):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    if isinstance(value, GoStruct):
        return _struct_text(value, verb)
    if isinstance(value, list | tuple):
        return "[" + " ".join(_element(v, verb) for v in value) + "]"
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        return "map[" + " ".join(f"{_element(k, verb)}:{_element(v, verb)}" for k, v in items) + "]"
    return str(value)


def _struct_text(value: GoStruct, verb: str) -> str:
    """``{a b}``; fields promoted from embedded structs print inside their own braces."""
    parts: list[str] = []
    group = -1
    members: list[str] = []
    for field_value, field_group in zip(value.values(), value.groups, strict=True):
        text = sprint_value(field_value, verb, False)
        if field_group != group and members:
            parts.append("{" + " ".join(members) + "}")
            members = []
        group = field_group
        if field_group < 0:
            parts.append(text)
        else:
            members.append(text)
    if members:
        parts.append("{" + " ".join(members) + "}")
    return "{" + " ".join(parts) + "}"


def _element(value: Any, verb: str) -> str:
    if verb == "v":
        return sprint_value(value, verb, False)
    return format_one(verb, value, "", None, None)


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(_operand(arg))
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    return " ".join(_operand(a) for a in args) + "\n"


def _operand(value: Any) -> str:
    """One operand of fmt's print functions: a pointer to a struct is ``&{…}``."""
    text = sprint_value(value)
    return "&" + text if isinstance(value, GoStruct) and value.pointer else text


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.DOTALL)


def sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf, with Go's complaints inline (``%!d(string=x)``, ``%!d(MISSING)``)."""
    out: list[str] = []
    used = 0
    i = 0
    while i < len(fmt):
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        match = _VERB.match(fmt, j)
        assert match is not None
        i = match.end()
        flags, width_s, prec_s, verb = match.groups()
        if verb == "%" and not flags and width_s is None and prec_s is None:
            out.append("%")
            continue
        width: int | None = None
        prec: int | None = None
        if width_s == "*":
            width, used = _star(args, used)
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            prec, used = _star(args, used)
        elif prec_s is not None:
            prec = int(prec_s or "0")
        if verb == "":
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[used]
        used += 1
        out.append(format_one(verb, arg, flags, width, prec))
    if used < len(args):
        extra = ", ".join(f"{type_name(a)}={sprint_value(a)}" for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _star(args: list[Any], used: int) -> tuple[int | None, int]:
    if used < len(args) and isinstance(args[used], int) and not isinstance(args[used], bool):
        return int(args[used]), used + 1
    return None, used + 1


def _bad(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={sprint_value(arg)})"


def format_one(verb: str, arg: Any, flags: str, width: int | None, prec: int | None) -> str:
    """One ``%verb`` of one operand, padded to its width."""
    text = _format_body(verb, arg, flags, prec)
    numeric = isinstance(arg, int | float) and not isinstance(arg, bool)
    if width is not None and len(text) < width:
        if "-" in flags:
            text = text.ljust(width)
        elif "0" in flags and ((numeric and verb not in "vsqcU") or verb in "xX"):
            sign = text[0] if text[:1] in ("-", "+", " ") else ""
            text = sign + text[len(sign) :].rjust(width - len(sign), "0")
        else:
            text = text.rjust(width)
    return text


def _format_body(verb: str, arg: Any, flags: str, prec: int | None) -> str:
    if isinstance(arg, list | tuple) and verb not in "vT" and not isinstance(arg, bytes):
        return "[" + " ".join(_format_body(verb, v, flags, prec) for v in arg) + "]"
    if isinstance(arg, Mapping) and not isinstance(arg, GoStruct) and verb not in "vT":
        items = sorted(arg.items(), key=lambda kv: sort_key(kv[0]))
        return (
            "map["
            + " ".join(
                f"{_format_body(verb, k, flags, prec)}:{_format_body(verb, v, flags, prec)}"
                for k, v in items
            )
            + "]"
        )
    if verb == "T":
        return type_name(arg)
    if isinstance(arg, GoNil | GoTime | GoStruct) or (isinstance(arg, GoDuration) and verb in "vs"):
        return str(arg) if not isinstance(arg, GoStruct) else _operand(arg)
    if arg is None:
        return "<nil>" if verb == "v" else _bad(verb, arg)
    if isinstance(arg, bool):
        return ("true" if arg else "false") if verb in "vt" else _bad(verb, arg)
    if isinstance(arg, int):
        return _format_int(verb, arg, flags, prec)
    if isinstance(arg, float):
        if verb in "vgGeEfF":
            text = go_float(arg, "g" if verb == "v" else verb, -1 if prec is None else prec)
            if verb in "eEfF" and prec is None:
                text = go_float(arg, verb, 6)
            return _signed(text, flags)
        return _bad(verb, arg)
    if isinstance(arg, str):
        if verb in "vs":
            return arg if prec is None else arg[:prec]
        if verb == "q":
            arg = arg if prec is None else arg[:prec]
            if "#" in flags and "`" not in arg:
                return "`" + arg + "`"
            if "+" in flags:
                return go_quote(arg, ascii_only=True)
            return go_quote(arg)
        if verb in "xX":
            data = arg.encode()[: prec if prec is not None else None]
            sep = " " if " " in flags else ""
            text = sep.join(f"{b:02x}" for b in data)
            return text.upper() if verb == "X" else text
        return _bad(verb, arg)
    return sprint_value(arg) if verb in "vs" else _bad(verb, arg)


def _signed(text: str, flags: str) -> str:
    if not text.startswith("-"):
        if "+" in flags:
            return "+" + text
        if " " in flags:
            return " " + text
    return text


def _format_int(verb: str, value: int, flags: str, prec: int | None) -> str:
    if verb in "vd":
        text = str(abs(value))
    elif verb == "b":
        text = format(abs(value), "b")
    elif verb == "o":
        text = format(abs(value), "o")
        text = "0" + text if "#" in flags else text
    elif verb == "O":
        text = "0o" + format(abs(value), "o")
    elif verb in "xX":
        text = format(abs(value), "x" if verb == "x" else "X")
        text = ("0x" if verb == "x" else "0X") + text if "#" in flags else text
    elif verb == "c":
        return chr(value)
    elif verb == "q":
        return "'" + go_quote(chr(value))[1:-1].replace("'", "\\'").replace('\\"', '"') + "'"
    elif verb == "U":
        return f"U+{value:04X}"
    else:
        return _bad(verb, value)
    if prec is not None:
        text = text.rjust(prec, "0")
    return _signed(("-" if value < 0 else "") + text, flags)
