"""Docker's output conventions: human sizes and ages, tab-aligned tables, ``--format`` templates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 3 significant digits (``74.8MB``, ``126MB``, ``0B``)."""
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    text = f"{value:.3g}"
    if "e" in text:  # 999.6 rounds to 1e+03: that is the next unit
        value /= 1000
        unit += 1
        text = f"{value:.3g}"
    return f"{text}{_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as Docker prints ``CREATED`` ages."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "N/A"
    now = now or datetime.now(UTC)
    return f"{human_duration(max(0.0, (now - when).total_seconds()))} ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align like Docker's tabwriter (min width 10, padding 3, last column unpadded)."""
    if not headers:
        return ""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [
            cell if i == len(row) - 1 else cell.ljust(max(10, widths[i] + 3))
            for i, cell in enumerate(row)
        ]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def truncate(text: str, width: int) -> str:
    """Docker's ellipsis truncation (``…`` counts as one character)."""
    return text if len(text) <= width else text[: width - 1] + "…"


_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render_template(template: str, obj: Mapping[str, Any]) -> str:
    """The subset of Go templates ``--format`` needs: ``{{.A.B}}``, ``{{json .A}}``."""

    def field(match: re.Match[str]) -> str:
        as_json, path = match.group(1), match.group(2)
        value: Any = obj
        for part in filter(None, path.split(".")):
            value = value.get(part) if isinstance(value, Mapping) else None
        if as_json:
            return json.dumps(value, separators=(",", ":"))
        return _go_string(value)

    return _FIELD.sub(field, template.replace("\\t", "\t").replace("\\n", "\n"))


def _go_string(value: Any) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_string(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_go_string(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def emit_formatted(
    fmt: str | None,
    headers: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    cells: Callable[[Mapping[str, Any]], Sequence[str]],
    echo: Callable[[str], None],
) -> None:
    """Print ``items`` as Docker does for ``--format``: a table, JSON lines, or a template."""
    if fmt is None or fmt in ("", "table"):
        echo(table(headers, [cells(i) for i in items]))
    elif fmt == "json":
        for item in items:
            echo(json.dumps(item, separators=(",", ":")))
    elif fmt.startswith("table "):
        body = fmt[len("table ") :]
        head = _FIELD.sub(lambda m: m.group(2).upper(), body.replace("\\t", "\t"))
        rows = [render_template(body, i) for i in items]
        echo(table(head.split("\t"), [r.split("\t") for r in rows]))
    else:
        for item in items:
            echo(render_template(fmt, item))
