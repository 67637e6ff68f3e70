"""Hand-written JSON field validation shared by the OCI parsers.

Every failure is a `FormatError` whose message is ``<source>: <field path>: <reason>`` on one line.
JSON ``null`` counts as absent, as Go's decoder treats it; a required field that is absent or null
is "missing". Type mismatches fail, as they do when Go decodes into the spec's structs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

from strata import jsonload
from strata.errors import FormatError

# RFC 6838 media type, as image-spec's defs-descriptor.json restricts it.
_MEDIA_TYPE: Final = (
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_SHOWN_MAX: Final = 80
INT64_MAX: Final = 2**63 - 1


def show(value: object) -> str:
    """``value`` quoted for a one-line message, shortened if long."""
    text = repr(value)
    if len(text) > _SHOWN_MAX:
        text = text[: _SHOWN_MAX - 3] + "..."
    return text


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def join(path: str, key: str) -> str:
    """The field path of ``key`` inside ``path``."""
    return f"{path}.{key}" if path else key


def fail(source: str, path: str, reason: str) -> NoReturn:
    """Raise the one-line `FormatError` for ``path`` in ``source``."""
    raise FormatError(f"{source}: {path}: {reason}" if path else f"{source}: {reason}")


def load_object(data: bytes, *, source: str, limit: int, what: str) -> dict[str, Any]:
    """Decode ``data`` as one JSON object of at most ``limit`` bytes (and `jsonload`'s depth)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FormatError(f"{source}: expected bytes, got {type(data).__name__}")
    value = jsonload.loads(bytes(data), source=source, limit=limit, what=what)
    if not isinstance(value, dict):
        raise FormatError(f"{source}: must be a JSON object, not {json_type(value)}")
    return value


def as_object(value: object, source: str, path: str) -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        fail(source, path, f"must be an object, not {json_type(value)}")
    return value


def opt_object(obj: dict[str, Any], key: str, source: str, path: str) -> dict[str, Any] | None:
    """The object at ``key``, or None if absent."""
    value = obj.get(key)
    if value is None:
        return None
    return as_object(value, source, join(path, key))


def opt_str(obj: dict[str, Any], key: str, source: str, path: str) -> str | None:
    """The string at ``key``, or None if absent."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    fail(source, join(path, key), f"must be a string, not {json_type(value)}")


def req_str(obj: dict[str, Any], key: str, source: str, path: str) -> str:
    """The string at ``key``; absent is an error."""
    value = opt_str(obj, key, source, path)
    if value is None:
        fail(source, join(path, key), "missing")
    return value


def opt_bool(obj: dict[str, Any], key: str, source: str, path: str) -> bool | None:
    """The boolean at ``key``, or None if absent."""
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    fail(source, join(path, key), f"must be a boolean, not {json_type(value)}")


def req_int(obj: dict[str, Any], key: str, source: str, path: str, *, minimum: int = 0) -> int:
    """The integer at ``key`` in ``minimum``..int64 max; absent is an error."""
    value: object = obj.get(key)
    where = join(path, key)
    if value is None:
        fail(source, where, "missing")
    # bool is an int in Python but not in JSON; 1.0 is not an integer to Go's decoder.
    if isinstance(value, bool) or not isinstance(value, int):
        fail(source, where, f"must be an integer, not {json_type(value)}")
    if not minimum <= value <= INT64_MAX:
        if minimum == 0:
            fail(source, where, "must be a non-negative integer")
        fail(source, where, f"must be an integer from {minimum} to {INT64_MAX}")
    return value


def opt_str_list(obj: dict[str, Any], key: str, source: str, path: str) -> tuple[str, ...] | None:
    """The array of strings at ``key``, or None if absent."""
    value = obj.get(key)
    if value is None:
        return None
    where = join(path, key)
    if not isinstance(value, list):
        fail(source, where, f"must be an array of strings, not {json_type(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            fail(source, f"{where}[{i}]", f"must be a string, not {json_type(item)}")
    return tuple(value)


def opt_str_map(obj: dict[str, Any], key: str, source: str, path: str) -> dict[str, str] | None:
    """The object of string values at ``key``, or None if absent."""
    value = opt_object(obj, key, source, path)
    if value is None:
        return None
    for name, item in value.items():
        if not isinstance(item, str):
            fail(source, f"{join(path, key)}[{name!r}]", f"must be a string, not {json_type(item)}")
    return value


def opt_key_set(obj: dict[str, Any], key: str, source: str, path: str) -> tuple[str, ...] | None:
    """The keys of a Go ``map[string]struct{}`` at ``key`` (``{"80/tcp": {}}``), or None."""
    value = opt_object(obj, key, source, path)
    if value is None:
        return None
    for name, item in value.items():
        if not isinstance(item, dict):
            fail(
                source, f"{join(path, key)}[{name!r}]", f"must be an object, not {json_type(item)}"
            )
    return tuple(value)


def check_media_type(value: str, source: str, path: str) -> str:
    """``value`` if it is an RFC 6838 ``type/subtype``."""
    if not re.fullmatch(_MEDIA_TYPE, value):
        fail(source, path, f"{show(value)} is not a valid media type")
    return value


def dumps(value: object) -> bytes:
    """Compact JSON bytes; UTF-8 text stays readable, lone surrogates fall back to escapes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")
